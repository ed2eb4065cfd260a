"""The tour (tests/tour.py) in the suite: every screen in every (colour mode, size), each
experiment run for real once, spread over those combinations. The full matrix (every
experiment in every combination) is `python benchmarks/tour.py`."""

from __future__ import annotations

import pytest

from tests.tour import COMBINATIONS, SMALL, tour

pytestmark = pytest.mark.slow

NAMES = sorted(SMALL)


@pytest.mark.parametrize("index", range(len(COMBINATIONS)),
                         ids=["%s-%dx%d" % (c, *s) for c, s in COMBINATIONS])
async def test_the_tour_finds_no_crash_no_overflow_no_survivor(index):
    colour, size = COMBINATIONS[index]
    experiments = NAMES[index::len(COMBINATIONS)]
    problems = await tour(colour, size, experiments)
    assert problems == [], "\n".join(problems)


def test_the_suite_covers_every_experiment_and_combination():
    import workloads

    covered = [name for i in range(len(COMBINATIONS)) for name in NAMES[i::len(COMBINATIONS)]]
    assert sorted(covered) == sorted(workloads.experiment_names())
