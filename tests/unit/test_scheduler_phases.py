"""Periodic runs are spread over the interval, so many targets never run in one burst."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.scheduler import Job, spread_phases


def _job(i: int, interval: float) -> Job:
    collector: Any = None
    return Job("redis", f"t{i}", collector, interval, interval / 3)


@pytest.mark.parametrize("count", [1, 2, 7, 1000])
def test_phases_spread_evenly_over_the_interval_and_start_within_a_result_lifetime(
    count: int,
) -> None:
    jobs = [_job(i, 15.0) for i in range(count)]
    phases = spread_phases(jobs)
    # between a quarter of an interval and one and a quarter after the first run
    assert all(3.75 <= p < 18.75 for p in phases)
    offsets = sorted(p % 15.0 for p in phases)
    assert offsets == pytest.approx([15.0 * k / count for k in range(count)])


def test_each_interval_is_spread_on_its_own() -> None:
    jobs = [_job(i, 15.0) for i in range(4)] + [_job(i, 60.0) for i in range(2)]
    phases = spread_phases(jobs)
    assert sorted(p % 15.0 for p in phases[:4]) == pytest.approx([0.0, 3.75, 7.5, 11.25])
    assert sorted(p % 60.0 for p in phases[4:]) == pytest.approx([0.0, 30.0])
