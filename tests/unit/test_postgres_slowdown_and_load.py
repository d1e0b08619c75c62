"""The daemon's side of the slowdown and load signals, and where the server's CPU count comes
from: /summary must not judge a statement without a day of history or without calls, and a
remote server never borrows the exporter host's CPUs."""

from __future__ import annotations

import os

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.collectors.postgres import server_cpus
from exporter.config import ConfigError, PostgresTarget
from exporter.mixin.thresholds import Thresholds
from exporter.summary.board import SummaryBoard
from exporter.summary.window import COARSE_SPAN, COARSE_STEP, Coarse, CoarseTrail

STEP = 60.0
DAY = 86400.0


def statement(calls: float, exec_seconds: float) -> list[Metric]:
    labels = ["queryid", "datname", "user"]
    c = CounterMetricFamily("perf_postgres_statement_calls", "calls", labels=labels)
    c.add_metric(["42", "app", "api"], calls)
    e = CounterMetricFamily("perf_postgres_statement_exec_seconds", "exec", labels=labels)
    e.add_metric(["42", "app", "api"], exec_seconds)
    return [c, e]


def slowdown(board: SummaryBoard, at: float) -> float | None:
    for row in board.rows(at):
        if row["signal"] == "postgres_statement_slowdown":
            value: float | None = row["value"]
            return value
    return None


def run(board: SummaryBoard, minutes: int, calls_per_s: float, slow_after: float) -> float:
    """A statement of 10 ms a call that takes 30 ms from ``slow_after`` on; returns the end."""
    calls = exec_s = 0.0
    t = 0.0
    for n in range(minutes + 1):
        t = n * STEP
        board.update("postgres", "main", statement(calls, exec_s), {}, t)
        calls += calls_per_s * STEP
        exec_s += calls_per_s * STEP * (0.03 if t >= slow_after else 0.01)
    return t


def test_a_statement_three_times_slower_than_a_day_ago_is_three() -> None:
    board = SummaryBoard(Thresholds())
    end = run(board, 25 * 60, 2.0, slow_after=25 * 3600 - 3600)
    assert slowdown(board, end) == pytest.approx(3.0)


def test_no_slowdown_without_a_day_of_history() -> None:
    board = SummaryBoard(Thresholds())
    end = run(board, 20 * 60, 2.0, slow_after=19 * 3600)
    assert slowdown(board, end) is None


def test_no_slowdown_for_a_rarely_called_statement() -> None:
    board = SummaryBoard(Thresholds())
    # 0.05 calls a second: under the 0.1 the guard wants
    end = run(board, 25 * 60, 0.05, slow_after=25 * 3600 - 3600)
    assert slowdown(board, end) is None
    lenient = SummaryBoard(
        Thresholds.from_overrides(
            {"statement_min_calls_now": 0.01, "statement_min_calls_before": 0.01}
        )
    )
    end = run(lenient, 25 * 60, 0.05, slow_after=25 * 3600 - 3600)
    assert slowdown(lenient, end) == pytest.approx(3.0)


def test_the_coarse_trail_keeps_a_point_per_step_for_a_day_and_a_bit() -> None:
    trail = CoarseTrail()
    for n in range(4 * 24 * 60):  # four days, a point a minute offered
        trail.add(n * 60.0, float(n))
    assert len(trail.times) <= COARSE_SPAN / 600 + 1
    assert trail.times[-1] - trail.times[0] <= COARSE_SPAN
    assert trail.at(trail.times[-1] - DAY) is not None


def test_the_trails_of_a_source_share_one_clock_and_know_where_they_were_missing() -> None:
    coarse = Coarse()
    a, b = coarse.trail(("calls", (("q", "1"),))), coarse.trail(("calls", (("q", "2"),)))
    assert a.clock is b.clock is coarse.clock
    a.add(0.0, 1.0)  # the first window ticks the clock; b is not listed yet
    b.add(60.0, 5.0)  # between points: nothing to keep
    assert b.at(100.0) is None and a.at(100.0) == (0.0, 1.0)
    for t in (600.0, 1200.0):
        a.add(t, t)
        b.add(t, t + 5)
    b.add(1800.0, 9.0)  # a is not listed at 1800
    assert a.at(1900.0) is None  # no point of a at 1800: as if it had none, not 1200's
    assert (a.at(1300.0), b.at(1300.0)) == ((1200.0, 1200.0), (1200.0, 1205.0))
    assert b.at(1800.0 + COARSE_STEP - 1) == (1800.0, 9.0)
    assert b.at(1800.0 + COARSE_STEP) is None
    assert len(coarse.clock.times) == 4 and len(a.values) == 3 and len(b.values) == 3
    # a day later a series no longer listed is forgotten, the listed one keeps a day
    t = 1800.0
    while t < 1800.0 + COARSE_SPAN + COARSE_STEP:
        t += COARSE_STEP
        b.add(t, t)
        coarse.forget_old()
    assert list(coarse) == [("calls", (("q", "2"),))]
    assert b.at(t - 86400.0) is not None
    assert len(b.values) == len(coarse.clock.times) <= COARSE_SPAN / COARSE_STEP + 1


def load(board: SummaryBoard, cpus: float | None) -> float | None:
    for t, (samples, rounds) in enumerate(((0.0, 0.0), (60.0, 10.0))):
        waits = CounterMetricFamily(
            "perf_postgres_wait_samples", "w", labels=["datname", "wait_event_type", "wait_event"]
        )
        waits.add_metric(["app", "CPU", "CPU"], samples)
        families: list[Metric] = [
            waits,
            CounterMetricFamily("perf_postgres_wait_sample_rounds", "r", value=rounds),
        ]
        if cpus is not None:
            families.append(GaugeMetricFamily("perf_postgres_server_cpus", "c", value=cpus))
        board.update("postgres", "main", families, {}, t * 10.0)
    for row in board.rows(10.0):
        if row["signal"] == "postgres_database_load":
            value: float | None = row["value"]
            return value
    return None


def test_database_load_is_active_sessions_per_cpu_or_per_configured_sessions() -> None:
    # 6 active sessions on average
    assert load(SummaryBoard(Thresholds()), 8) == pytest.approx(6 / 8)
    assert load(SummaryBoard(Thresholds()), None) == pytest.approx(6 / 4)
    custom = Thresholds.from_overrides({"load_sessions_without_cpus": 12})
    assert load(SummaryBoard(custom), None) == pytest.approx(6 / 12)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"host": "db1.internal"}, None),
        ({"dsn": "postgresql://monitor@10.0.0.5:5432/app"}, None),
        ({"host": "db1.internal", "cpus": 16}, 16),
        ({"host": "127.0.0.1"}, os.cpu_count()),
        ({"host": "localhost"}, os.cpu_count()),
        ({"dsn": "postgresql://monitor@[::1]:5432/app"}, os.cpu_count()),
        ({"dsn": "postgresql:///app?host=/var/run/postgresql"}, os.cpu_count()),
        ({"host": "/var/run/postgresql"}, os.cpu_count()),
    ],
)
def test_the_server_cpus_are_configured_or_this_hosts_only_for_a_local_target(
    target: dict[str, object], expected: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGHOST", raising=False)
    assert server_cpus(PostgresTarget.model_validate({"name": "t", **target})) == expected


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"load_sessions_without_cpus": 0}, "load_sessions_without_cpus: must be a number above 0"),
        ({"statement_min_calls_now": -1}, "statement_min_calls_now: must be 0 or more"),
    ],
)
def test_settings_beside_the_levels_are_checked(overrides: dict[str, float], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        Thresholds.from_overrides(overrides)
    assert f"thresholds.{problem}" in str(info.value)
