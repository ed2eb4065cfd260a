"""Which live view draws which experiment.

By convention the view for experiment `foo-bar` is `VIEW` in `widgets/foo_bar_view.py`;
experiments without one get the generic per-thread view.
"""

from __future__ import annotations

import importlib

from widgets.live_view import LiveView


def view_class(experiment: str) -> type[LiveView]:
    module_name = "widgets.%s_view" % experiment.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        from widgets.threads_view import ThreadsView

        return ThreadsView
    return module.VIEW


def extra_views(experiment: str) -> list[LiveView]:
    """Views the experiment screen shows under the main one (the GIL timeline for the
    experiments whose threads leave stamps)."""
    from widgets.gil_timeline_view import GilTimelineView, mounted_on

    return [GilTimelineView(dial_keys=True)] if mounted_on(experiment) else []
