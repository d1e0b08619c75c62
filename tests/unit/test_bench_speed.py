"""The machine-speed probe of the fleet point (bench/speed.py) and its column in the report."""

from __future__ import annotations

import time

from bench.report import fleet_lines
from bench.speed import SpeedProbe, unit, unit_ms


def test_a_unit_is_fixed_work_and_is_timed_in_thread_cpu() -> None:
    assert unit() == unit()  # the same work every time
    ms = unit_ms()
    assert 0 < ms < 1000


def test_probe_windows_take_the_median_over_the_fastest_sample_of_the_whole_probe() -> None:
    probe = SpeedProbe()
    probe.samples = [1.0, 1.2, 2.0, 2.2, 2.4, 1.1]
    # the fastest of all (1.0) is the reference of every window, not the window's own
    assert probe.window(2, 5) == {
        "samples": 3,
        "median_ms": 2.2,
        "fastest_ms": 2.0,
        "slowest_ms": 2.4,
        "factor": 2.2,
    }
    assert probe.window(0, 2)["factor"] == 1.1
    assert probe.window(6) == {"samples": 0}


def test_probe_samples_while_it_runs_and_stops_when_left() -> None:
    with SpeedProbe(period=0.01, units=1) as probe:
        deadline = time.monotonic() + 10
        while probe.mark() < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    taken = probe.mark()
    assert taken >= 3
    time.sleep(0.05)
    assert probe.mark() == taken
    assert all(ms > 0 for ms in probe.samples)


def _fleet(**extra: object) -> dict[str, object]:
    return {
        "kind": "fleet",
        "targets": 4,
        "postgres_targets": 1,
        "redis_targets": 3,
        "series": 100,
        "bytes_plain": 10_000,
        "bytes_gzip": 1_000,
        "rss_bytes": 50 * 2**20,
        "rss_peak_bytes": 51 * 2**20,
        "cpu_core_pct": 1.0,
        "cpu_core_pct_loaded": 2.0,
        "quiet_collections": 4,
        "loaded_collections": 4,
        "wrk_p50_ms": 1.0,
        "wrk_p99_ms": 2.0,
        "wrk_rps": 100.0,
        "seq_p50_ms": 0.5,
        "seq_p99_ms": 0.9,
        "collector_duration_ms": {},
        **extra,
    }


def _speed_cell(lines: list[str]) -> str:
    row = next(line for line in lines if line.startswith("| 4 (1 + 3)"))
    return row.split("|")[-2].strip()


def test_the_fleet_table_shows_the_speed_of_each_window() -> None:
    lines = fleet_lines(
        [
            _fleet(
                speed_idle={"samples": 8, "factor": 1.25},
                speed_quiet={"samples": 15, "factor": 1.8},
                speed_loaded={"samples": 15, "factor": 2.0},
            )
        ]
    )
    assert _speed_cell(lines) == "1.25 / 1.80 / 2.00"
    # a record from before the probe, or a window without samples, reads as unmeasured
    assert _speed_cell(fleet_lines([_fleet()])) == "- / - / -"
    assert _speed_cell(fleet_lines([_fleet(speed_quiet={"samples": 0})])) == "- / - / -"
