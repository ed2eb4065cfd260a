"""The too-small screen shows its whole message at any size (it wraps, never cuts)."""

from __future__ import annotations

import html
import re

import pytest

from lab.tui.app import LabApp
from lab.tui.screens.too_small import TooSmallScreen
from tests.tui_fakes import MACHINE, fake_controller


@pytest.mark.parametrize("size", [(20, 5), (30, 8), (40, 10), (60, 20), (79, 23)])
async def test_the_whole_message_shows(size):
    app = LabApp(controller=fake_controller(), live_gauge=False, machine_line=MACHINE)
    async with app.run_test(size=size) as pilot:
        for _ in range(100):
            await pilot.pause()
            if isinstance(app.screen, TooSmallScreen) and app.screen.is_mounted:
                break
        assert isinstance(app.screen, TooSmallScreen)
        await pilot.pause()
        svg = app.export_screenshot()
    rows = [html.unescape(r).replace("\xa0", " ") for r in re.findall(r"<text[^>]*>(.*?)</text>", svg)]
    text = " ".join(" ".join(rows).split())
    width, height = size
    for words in ("terminal too small:", "need 80x24,", "have %dx%d" % (width, height), "(q quits)"):
        assert words in text, (words, text)
