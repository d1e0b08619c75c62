"""The generated rules and Alertmanager example, proven with the real promtool and amtool.

For every alert: ``promtool test rules`` with input series putting the signal just on the good
side and just on the bad side of each level, so each warning and critical rule is seen firing
and not firing at its edge, with its rendered annotations.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.mixin.alertmanager import alertmanager_config
from exporter.mixin.catalog import BY_KEY, SIGNALS, Signal
from exporter.mixin.generate import render, to_yaml
from exporter.mixin.thresholds import Thresholds

pytestmark = pytest.mark.integration

PROMTOOL = "/usr/bin/promtool"
AMTOOL = "/usr/bin/amtool"
STEPS = 480  # one sample a minute for 8 h: covers the 6 h prediction window plus every for:
BASE = {"job": "perf-exporter", "instance": "host:9839"}
REMOTE = {**BASE, "target": "t1"}
EXTRA = {
    "namespace": "api_response",
    "pool": "main",
    "datname": "app",
    "queryid": "42",
    "mountpoint": "/",
    "collector": "redis",
    "user": "app",
    "cmd": "get",
    "scope": "host",
}


def sel(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def counter(per_minute: float) -> str:
    return f"0+{per_minute:g}x{STEPS}"


def gauge(value: float) -> str:
    return f"{value:g}+0x{STEPS}"


Series = list[tuple[str, str]]


def ratio(good: str, bad: str) -> Callable[..., Series]:
    """Hit ratio ``v`` of ``per_minute`` lookups a minute (1000: busy enough to be judged)."""

    def make(v: float, labels: dict[str, str], per_minute: float = 1000) -> Series:
        hits = v * per_minute
        return [
            (good + sel(labels), counter(hits)),
            (bad + sel(labels), counter(per_minute - hits)),
        ]

    return make


def redis_ratio(
    v: float, labels: dict[str, str], per_minute: float = 1000, own_per_minute: float = 5000
) -> Series:
    # the application's lookups give ratio v; the exporter's own TTL checks add 5000 hits a
    # minute on top, which must neither lift the ratio nor count as traffic
    app = ratio("perf_redis_keyspace_hits_total", "perf_redis_keyspace_misses_total")(
        v, labels, per_minute
    )
    hits = v * per_minute
    return [
        (app[0][0], counter(hits + own_per_minute)),
        app[1],
        ("perf_redis_exporter_keyspace_hits_total" + sel(labels), counter(own_per_minute)),
        ("perf_redis_exporter_keyspace_misses_total" + sel(labels), counter(0)),
    ]


def speedup(v: float, labels: dict[str, str], per_minute: float = 600) -> Series:
    """Half the cached calls hit in 1 ms, half miss in ``v`` ms: a speedup of ``v``."""
    calls = per_minute / 2
    name = "perf_app_cache_request_seconds"
    hit, miss = {**labels, "result": "hit"}, {**labels, "result": "miss"}
    return [
        (f"{name}_count" + sel(hit), counter(calls)),
        (f"{name}_sum" + sel(hit), counter(calls * 0.001)),
        (f"{name}_count" + sel(miss), counter(calls)),
        (f"{name}_sum" + sel(miss), counter(calls * 0.001 * v)),
    ]


def histogram(bucket: str) -> Callable[[float, dict[str, str]], Series]:
    # 99 of 100 observations a minute fall at or below v: the p99 is v (interpolation aside)
    def make(v: float, labels: dict[str, str]) -> Series:
        return [
            (bucket + sel({**labels, "le": f"{v:g}"}), counter(99)),
            (bucket + sel({**labels, "le": "+Inf"}), counter(100)),
        ]

    return make


def one_gauge(name: str, scale: float = 1.0) -> Callable[[float, dict[str, str]], Series]:
    return lambda v, labels: [(name + sel(labels), gauge(v * scale))]


def per_second(name: str) -> Callable[[float, dict[str, str]], Series]:
    return lambda v, labels: [(name + sel(labels), counter(v * 60))]


def evictions(v: float, labels: dict[str, str]) -> Series:
    # a bulk read's ring evicting far above the critical level must not count: only normal does
    name = "perf_postgres_io_evictions_total"
    normal = {**labels, "backend_type": "client backend", "object": "relation", "context": "normal"}
    return [
        (name + sel(normal), counter(v * 60)),
        (name + sel({**normal, "context": "bulkread"}), counter(5000 * 60)),
    ]


def connections(v: float, labels: dict[str, str]) -> Series:
    used = round(v * 100)
    return [
        ("perf_postgres_connections" + sel({**labels, "state": "active"}), gauge(used - 1)),
        ("perf_postgres_connections" + sel({**labels, "state": "idle"}), gauge(1)),
        ("perf_postgres_max_connections" + sel(labels), gauge(103)),
        ("perf_postgres_superuser_reserved_connections" + sel(labels), gauge(3)),
    ]


def waiting_clients(v: float, labels: dict[str, str]) -> Series:
    return [
        ("perf_pgbouncer_clients" + sel({**labels, "state": "waiting"}), gauge(v)),
        ("perf_pgbouncer_clients" + sel({**labels, "state": "active"}), gauge(7)),
    ]


def app_pool(v: float, labels: dict[str, str]) -> Series:
    return [
        ("perf_app_pool_size" + sel(labels), gauge(100)),
        ("perf_app_pool_idle" + sel(labels), gauge(100 - round(v * 100))),
        ("perf_app_pool_max" + sel(labels), gauge(100)),
    ]


def statements(v: float, labels: dict[str, str]) -> Series:
    return [
        ("perf_postgres_statement_calls_total" + sel({**labels, "user": "app"}), counter(100)),
        (
            "perf_postgres_statement_exec_seconds_total" + sel({**labels, "user": "app"}),
            counter(100 * v),
        ),
    ]


def slowdown_minutes() -> tuple[int, int]:
    """(minute the statement slows down, evaluation minute) of the slowdown fixtures.

    Evaluated late enough for the 30 minute window after the change plus the for:, early
    enough that the day-earlier window lies wholly before the change at every evaluation.
    """
    end = eval_minutes(Thresholds(), BY_KEY["postgres_statement_slowdown"])
    return end - 45, end


def slowdown(
    v: float, labels: dict[str, str], calls_per_minute: float = 100, start: int = 0
) -> Series:
    # mean 10 ms a call until the change, then v times that; nothing before ``start``
    change, end = slowdown_minutes()
    total = end + 5
    before, after = calls_per_minute * 0.01, calls_per_minute * 0.01 * v
    row = {**labels, "user": "app"}
    gap = f"_x{start} " if start else ""
    exec_values = (
        f"{gap}0+{before:g}x{change - start} "
        f"{before * (change - start) + after:g}+{after:g}x{total - change}"
    )
    return [
        (
            "perf_postgres_statement_calls_total" + sel(row),
            f"{gap}0+{calls_per_minute:g}x{total - start}",
        ),
        ("perf_postgres_statement_exec_seconds_total" + sel(row), exec_values),
    ]


def database_load(v: float, labels: dict[str, str], cpus: float | None = 4) -> Series:
    # one sampling round a second; v * cpus sessions active on average, all on CPU
    sessions = v * (4 if cpus is None else cpus)
    waits = {**labels, "datname": "app", "wait_event_type": "CPU", "wait_event": "CPU"}
    series = [
        ("perf_postgres_wait_samples_total" + sel(waits), counter(round(sessions * 60, 6))),
        ("perf_postgres_wait_sample_rounds_total" + sel(labels), counter(60)),
    ]
    if cpus is not None:
        series.append(("perf_postgres_server_cpus" + sel(labels), gauge(cpus)))
    return series


def used_of_max(used: str, limit: str) -> Callable[[float, dict[str, str]], Series]:
    return lambda v, labels: [
        (used + sel(labels), gauge(round(v * 1000))),
        (limit + sel(labels), gauge(1000)),
    ]


def xid_age(v: float, labels: dict[str, str]) -> Series:
    # the oldest of two databases decides; the younger one must not
    return [
        (
            "perf_postgres_database_xid_age" + sel({**labels, "datname": "app"}),
            gauge(round(v * 1000)),
        ),
        ("perf_postgres_database_xid_age" + sel({**labels, "datname": "template0"}), gauge(10)),
        ("perf_postgres_autovacuum_freeze_max_age" + sel(labels), gauge(1000)),
    ]


def cpu(v: float, labels: dict[str, str]) -> Series:
    busy = round(v * 600)
    name = "perf_host_cpu_seconds_total"
    return [
        (name + sel({**labels, "mode": "idle"}), counter(600 - busy)),
        (name + sel({**labels, "mode": "user"}), counter(busy)),
    ]


def memory(v: float, labels: dict[str, str]) -> Series:
    return [
        ("perf_host_memory_available_bytes" + sel(labels), gauge(round((1 - v) * 1000))),
        ("perf_host_memory_total_bytes" + sel(labels), gauge(1000)),
    ]


def filesystem(v: float, labels: dict[str, str]) -> Series:
    fs = {**labels, "fstype": "ext4", "device": "/dev/sda1"}
    return [
        ("perf_host_filesystem_avail_bytes" + sel(fs), gauge(round(v * 1000))),
        ("perf_host_filesystem_size_bytes" + sel(fs), gauge(1000)),
    ]


def filling(v: float, labels: dict[str, str]) -> Series:
    # one byte less a minute: at the evaluation time v hours (v * 60 bytes) are left
    fs = {**labels, "fstype": "ext4", "device": "/dev/sda1"}
    start = round(v * 60) + eval_minutes(Thresholds(), BY_KEY["host_filesystem_fill_hours"])
    return [
        ("perf_host_filesystem_avail_bytes" + sel(fs), f"{start}-1x{STEPS}"),
        ("perf_host_filesystem_size_bytes" + sel(fs), gauge(100_000)),
    ]


def staleness(v: float, labels: dict[str, str]) -> Series:
    # the last success stays v seconds behind the clock at every sample
    return [
        (
            "perf_exporter_collector_last_success_timestamp_seconds" + sel(labels),
            f"{-v:g}+60x{STEPS}",
        )
    ]


@dataclass(frozen=True)
class Fixture:
    series: Callable[[float, dict[str, str]], Series]
    delta: float
    low: float = 0.0
    high: float = math.inf


FIXTURES: dict[str, Fixture] = {
    "postgres_cache_hit_ratio": Fixture(
        ratio("perf_postgres_blocks_hit_total", "perf_postgres_blocks_read_total"), 0.01
    ),
    "postgres_buffer_evictions": Fixture(evictions, 10),
    "redis_hit_ratio": Fixture(redis_ratio, 0.01),
    "app_cache_hit_ratio": Fixture(
        ratio("perf_app_cache_hits_total", "perf_app_cache_misses_total"), 0.01
    ),
    "app_cache_speedup": Fixture(speedup, 0.1),
    "postgres_connection_utilisation": Fixture(connections, 0.01),
    "pgbouncer_waiting_clients": Fixture(waiting_clients, 1),
    "pgbouncer_max_wait": Fixture(one_gauge("perf_pgbouncer_max_wait_seconds"), 0.01),
    "app_pool_utilisation": Fixture(app_pool, 0.01),
    "app_pool_waiting": Fixture(one_gauge("perf_app_pool_acquire_waiting"), 1),
    "app_pool_acquire_p99": Fixture(histogram("perf_app_pool_acquire_seconds_bucket"), 0.01),
    "postgres_probe_p99": Fixture(histogram("perf_postgres_probe_duration_seconds_bucket"), 0.01),
    "redis_probe_p99": Fixture(histogram("perf_redis_probe_duration_seconds_bucket"), 0.002),
    "redis_command_p99": Fixture(histogram("perf_redis_command_latency_seconds_bucket"), 0.002),
    "postgres_statement_mean_latency": Fixture(statements, 0.01),
    "postgres_statement_slowdown": Fixture(slowdown, 0.1),
    "postgres_lock_blocking": Fixture(one_gauge("perf_postgres_blocked_max_seconds"), 1),
    "postgres_database_load": Fixture(database_load, 0.05),
    "postgres_longest_transaction": Fixture(
        one_gauge("perf_postgres_transaction_max_age_seconds"), 1
    ),
    "postgres_idle_in_transaction": Fixture(
        one_gauge("perf_postgres_idle_in_transaction_max_age_seconds"), 1
    ),
    "postgres_xid_wraparound": Fixture(xid_age, 0.01),
    "redis_memory_utilisation": Fixture(
        used_of_max("perf_redis_memory_used_bytes", "perf_redis_memory_max_bytes"), 0.01
    ),
    "redis_evictions": Fixture(per_second("perf_redis_evicted_keys_total"), 1),
    "redis_rejected_connections": Fixture(per_second("perf_redis_rejected_connections_total"), 0.5),
    "host_cpu_utilisation": Fixture(cpu, 0.01),
    "host_memory_utilisation": Fixture(memory, 0.01),
    "host_cgroup_memory_utilisation": Fixture(
        used_of_max("perf_host_cgroup_memory_current_bytes", "perf_host_cgroup_memory_max_bytes"),
        0.01,
    ),
    "host_memory_pressure": Fixture(
        per_second("perf_host_pressure_memory_stalled_seconds_total"), 0.01, 0, 1
    ),
    "host_io_pressure": Fixture(
        per_second("perf_host_pressure_io_stalled_seconds_total"), 0.01, 0, 1
    ),
    "host_filesystem_avail_ratio": Fixture(filesystem, 0.005),
    "host_filesystem_fill_hours": Fixture(filling, 2),
    "exporter_collector_success": Fixture(one_gauge("perf_exporter_collector_success"), 1, 0, 1),
    "exporter_collector_staleness": Fixture(staleness, 30),
}


def minutes(duration: str) -> int:
    scale = {"s": 1 / 60, "m": 1, "h": 60, "d": 1440}
    return math.ceil(float(duration[:-1]) * scale[duration[-1]])


def eval_minutes(t: Thresholds, signal: Signal) -> int:
    """Late enough for the rate window, the prediction window and both for: durations."""
    level = t.level(signal.key)
    hold = max(minutes(level.for_warn), minutes(level.for_crit))
    window = minutes(t.predict_window) if signal.key == "host_filesystem_fill_hours" else 0
    # a signal comparing with the day before needs that day of input first
    window += math.ceil(signal.formula.span / 60)
    return window + hold + minutes(t.rate_window) + 2


def labels_for(signal: Signal) -> dict[str, str]:
    base = REMOTE if "target" in signal.labels else BASE
    return {**base, **{k: EXTRA[k] for k in signal.labels if k in EXTRA}}


def go_percentage(v: float) -> str:
    return f"{_go_g(v * 100)}%"


def _go_g(v: float) -> str:
    # Go's %.4g
    text = f"{v:.4g}"
    return text


def go_duration(v: float) -> str:
    if abs(v) >= 1:
        s = int(v)
        days, hours, minutes, secs = s // 86400, s // 3600 % 24, s // 60 % 60, s % 60
        if days:
            return f"{days}d {hours}h {minutes}m {secs}s"
        if hours:
            return f"{hours}h {minutes}m {secs}s"
        if minutes:
            return f"{minutes}m {secs}s"
        return f"{_go_g(v)}s"
    if v == 0:
        return "0s"
    prefix = ""
    for p in ("m", "u", "n"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return f"{_go_g(v)}{prefix}s"


def rendered_value(signal: Signal, v: float) -> str:
    if signal.unit == "percentunit":
        return go_percentage(v)
    if signal.unit == "s":
        return go_duration(v)
    if signal.unit == "h":
        return f"{v:.1f}h"
    if signal.unit == "suffix:x":
        return f"{v:.1f}x"
    if signal.unit == "ops":
        return f"{v:.2f}/s"
    if signal.unit == "suffix:x":
        return f"{v:.1f}x"
    return f"{v:.0f}"


def expected(
    t: Thresholds, signal: Signal, v: float, severities: list[str], labels: dict[str, str]
) -> list[dict[str, Any]]:
    out = []
    word = "above" if signal.above else "below"
    level = t.level(signal.key)
    for severity in severities:
        threshold = level.warn if severity == "warning" else level.crit
        subject = " ".join(
            ([f"target {labels['target']}"] if "target" in labels else [])
            + [f"{k} {labels[k]}" for k in signal.labels if k in EXTRA]
            + [f"on {labels['instance']}"]
        )
        out.append(
            {
                "exp_labels": {**labels, "severity": severity},
                "exp_annotations": {
                    "summary": f"{signal.title} is {word} its {severity} level.",
                    "description": f"{signal.title} of {subject} is "
                    f"{rendered_value(signal, v)}, {word} the {severity} level of "
                    f"{signal.format_level(threshold)}.",
                    "runbook_url": t.runbook_with_instance(signal.anchor, labels["instance"]),
                },
            }
        )
    return out


def cases(t: Thresholds, signal: Signal) -> list[tuple[float, list[str]]]:
    """(value, severities expected to fire) on both sides of each level."""
    fx = FIXTURES[signal.key]
    level = t.level(signal.key)
    sign = 1 if signal.above else -1

    def clamp(v: float) -> float:
        return round(min(max(v, fx.low), fx.high), 6)

    out = [(clamp(level.warn - sign * fx.delta), [])]
    if level.warn != level.crit:
        out += [
            (clamp(level.warn + sign * fx.delta), ["warning"]),
            (clamp(level.crit - sign * fx.delta), ["warning"]),
        ]
    out.append((clamp(level.crit + sign * fx.delta), ["warning", "critical"]))
    return out


def unit_tests(t: Thresholds) -> list[dict[str, Any]]:
    tests = []
    for signal in SIGNALS:
        labels = labels_for(signal)
        for value, severities in cases(t, signal):
            tests.append(
                {
                    "name": f"{signal.alert} at {value:g}",
                    "interval": "1m",
                    "input_series": [
                        {"series": s, "values": v}
                        for s, v in FIXTURES[signal.key].series(value, labels)
                    ],
                    "alert_rule_test": [
                        {
                            "eval_time": f"{eval_minutes(t, signal)}m",
                            "alertname": signal.alert,
                            "exp_alerts": expected(t, signal, value, severities, labels),
                        }
                    ],
                }
            )
    return tests


#: Histograms change their bucket labels with the value, the staleness and fill series are
#: built around the evaluation time: their edges are tested above, their for: here would need
#: fixtures of their own.
NO_PENDING_TEST = {
    "host_filesystem_fill_hours",
    "exporter_collector_staleness",
    "app_pool_acquire_p99",
    "postgres_probe_p99",
    "redis_probe_p99",
    "postgres_statement_slowdown",  # its own fixtures: test_statement_slowdown_*
    "redis_command_p99",
}


def pending_tests(t: Thresholds) -> list[dict[str, Any]]:
    """The critical condition has held for less than the shorter for: nothing fires yet."""
    tests = []
    for signal in SIGNALS:
        if signal.key in NO_PENDING_TEST:
            continue
        level = t.level(signal.key)
        hold = min(minutes(level.for_warn), minutes(level.for_crit))
        longest = max(minutes(level.for_warn), minutes(level.for_crit))
        if hold < 2:
            continue
        fx = FIXTURES[signal.key]
        sign = 1 if signal.above else -1
        bad = round(min(max(level.crit + sign * fx.delta, fx.low), fx.high), 6)
        good = round(min(max(level.warn - sign * fx.delta, fx.low), fx.high), 6)
        labels = labels_for(signal)
        # healthy for 30 minutes, then bad: true at 31 m at the earliest, so still pending at
        # 29 + hold minutes, and firing once the rate window holds only bad samples plus hold
        before = {s: v for s, v in fx.series(good, labels)}
        after = {s: v for s, v in fx.series(bad, labels)}
        series = []
        for name, values in after.items():
            counter = name.split("{")[0].endswith("_total")
            series.append({"series": name, "values": _switch(before[name], values, 30, counter)})
        tests.append(
            {
                "name": f"{signal.alert} pending",
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": f"{29 + hold}m",
                        "alertname": signal.alert,
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": f"{30 + minutes(t.rate_window) + longest + 2}m",
                        "alertname": signal.alert,
                        "exp_alerts": expected(t, signal, bad, ["warning", "critical"], labels),
                    },
                ],
            }
        )
    return tests


def _switch(before: str, after: str, at: int, counter: bool) -> str:
    """Series notation: ``before`` for ``at`` minutes, then continue as ``after`` would."""
    b_start, b_step = _parse(before)
    a_start, a_step = _parse(after)
    # counters keep rising from where they were; gauges jump to the new value
    start = b_start + b_step * (at - 1) + a_step if counter else a_start
    first = f"{b_start:g}+{b_step:g}x{at}" if b_step >= 0 else f"{b_start:g}-{-b_step:g}x{at}"
    then = (
        f"{start:g}+{a_step:g}x{STEPS - at}"
        if a_step >= 0
        else f"{start:g}-{-a_step:g}x{STEPS - at}"
    )
    return f"{first} {then}"


def _parse(values: str) -> tuple[float, float]:
    match = re.fullmatch(r"(-?[\d.e+]+)([+-])([\d.e+]+)x\d+", values)
    assert match, values
    step = float(match.group(3)) * (1 if match.group(2) == "+" else -1)
    return float(match.group(1)), step


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def run_rule_tests(
    generated: Path, name: str, tests: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` of ``tests`` against the generated alert rules."""
    # the alerts compare recorded series: without the recording rules they never fire
    spec = {
        "rule_files": [
            str(generated / "alerts/recording.rules.yml"),
            str(generated / "alerts/perf-exporter.rules.yml"),
        ],
        "evaluation_interval": "1m",
        "tests": tests,
    }
    path = generated / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False, width=10_000))
    return run(PROMTOOL, "test", "rules", str(path))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mixin")
    for rel, text in render(Thresholds()).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    return out


def test_every_signal_has_a_rule_test_fixture() -> None:
    assert set(FIXTURES) == {s.key for s in SIGNALS}


def test_rule_files_pass_promtool_check_with_duplicate_lint(generated: Path) -> None:
    result = run(
        PROMTOOL,
        "check",
        "rules",
        "--lint=duplicate-rules",
        "--lint-fatal",
        str(generated / "alerts/perf-exporter.rules.yml"),
        str(generated / "alerts/recording.rules.yml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {2 * len(SIGNALS)} rules found" in result.stdout
    guarded = sum(s.guarded for s in SIGNALS)
    assert f"SUCCESS: {len(SIGNALS) + guarded} rules found" in result.stdout


@pytest.mark.timeout(120)
def test_every_alert_fires_and_stays_quiet_at_its_threshold_edges(generated: Path) -> None:
    tests = unit_tests(Thresholds())
    assert len(tests) >= 3 * len(SIGNALS)
    result = run_rule_tests(generated, "alerts/perf-exporter.test.yml", tests)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "SUCCESS" in result.stdout


@pytest.mark.timeout(120)
def test_alerts_wait_for_their_for_duration(generated: Path) -> None:
    tests = pending_tests(Thresholds())
    assert len(tests) >= 12  # every signal with a for: of 2 minutes or more
    result = run_rule_tests(generated, "pending.test.yml", tests)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


GUARDED = [s for s in SIGNALS if s.guarded]


def traffic_tests(t: Thresholds, signal: Signal) -> list[dict[str, Any]]:
    """A ratio far under its critical level at half, exactly at and 20 times its min_rate."""
    min_rate = t.min_rate(signal.key)
    assert min_rate is not None and min_rate > 0
    poor = round(t.level(signal.key).crit / 2, 6)
    labels = labels_for(signal)
    tests = []
    for per_second, severities in (
        (min_rate / 2, []),
        (min_rate, ["warning", "critical"]),
        (min_rate * 20, ["warning", "critical"]),
    ):
        # exactly at the edge the rates must add up exactly: the exporter's own Redis lookups
        # (subtracted, a float difference) are left out there and tested on both sides
        extra = (
            {"own_per_minute": 0}
            if signal.key == "redis_hit_ratio" and per_second == min_rate
            else {}
        )
        tests.append(
            {
                "name": f"{signal.alert} at {per_second:g} lookups/s",
                "interval": "1m",
                "input_series": [
                    {"series": name, "values": values}
                    for name, values in FIXTURES[signal.key].series(
                        poor, labels, per_minute=per_second * 60, **extra
                    )
                ],
                "alert_rule_test": [
                    {
                        "eval_time": f"{eval_minutes(t, signal)}m",
                        "alertname": signal.alert,
                        "exp_alerts": expected(t, signal, poor, severities, labels),
                    }
                ],
            }
        )
    return tests


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signal", GUARDED, ids=[s.key for s in GUARDED])
def test_a_poor_ratio_pages_only_above_the_minimum_traffic(generated: Path, signal: Signal) -> None:
    result = run_rule_tests(
        generated, f"{signal.key}.traffic.test.yml", traffic_tests(Thresholds(), signal)
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.timeout(60)
def test_a_min_rate_override_moves_the_guard(tmp_path: Path) -> None:
    # an operator lowering the guard makes the same idle source page
    t = Thresholds.from_overrides({"app_cache_hit_ratio": {"min_rate": 0.25}})
    for rel, text in render(t).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    signal = BY_KEY["app_cache_hit_ratio"]
    tests = traffic_tests(t, signal)
    assert tests[0]["name"].endswith("at 0.125 lookups/s")
    result = run_rule_tests(tmp_path, "override.test.yml", tests)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def _alert_test(name: str, alert: str, series: Series, at: int, fires: list[str]) -> dict[str, Any]:
    signal = next(s for s in SIGNALS if s.alert == alert)
    return {
        "name": name,
        "interval": "1m",
        "input_series": [{"series": k, "values": v} for k, v in series],
        "alert_rule_test": [
            {
                "eval_time": f"{at}m",
                "alertname": alert,
                "exp_alerts": [
                    {"exp_labels": {**labels_for(signal), "severity": severity}}
                    for severity in fires
                ],
            }
        ],
    }


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.timeout(120)
def test_statement_slowdown_needs_calls_and_history(generated: Path) -> None:
    signal = BY_KEY["postgres_statement_slowdown"]
    labels = labels_for(signal)
    _change, end = slowdown_minutes()
    tests = [
        _alert_test(
            "3x slower, called often",
            signal.alert,
            slowdown(3, labels),
            end,
            ["warning"],
        ),
        # 3 calls a minute (0.05/s) is under the 0.1/s the guard wants now and then
        _alert_test(
            "3x slower, rarely called",
            signal.alert,
            slowdown(3, labels, calls_per_minute=3),
            end,
            [],
        ),
        # the statement appeared 90 minutes ago: nothing a day earlier to compare with
        _alert_test(
            "5x slower, no history",
            signal.alert,
            slowdown(5, labels, start=end - 90),
            end,
            [],
        ),
    ]
    tests[0]["alert_rule_test"][0]["exp_alerts"] = expected(
        Thresholds(), signal, 3, ["warning"], labels
    )
    result = run_rule_tests(generated, "slowdown.test.yml", tests)
    assert result.returncode == 0, _tail(result)


@pytest.mark.timeout(120)
def test_database_load_uses_the_cpu_count_or_the_configured_sessions(generated: Path) -> None:
    t = Thresholds()
    signal = BY_KEY["postgres_database_load"]
    labels = labels_for(signal)
    at = eval_minutes(t, signal)
    fallback = t.load_sessions_without_cpus  # 4 active sessions count as a full server

    def case(name: str, v: float, cpus: float | None, fires: list[str]) -> dict[str, Any]:
        test = _alert_test(name, signal.alert, database_load(v, labels, cpus), at, fires)
        test["alert_rule_test"][0]["exp_alerts"] = expected(t, signal, v, fires, labels)
        return test

    tests = [
        # 8 CPUs: 7.6 active sessions are under, 8.4 over the warning level of 100 %
        case("8 cpus, 7.6 sessions", 0.95, 8, []),
        case("8 cpus, 8.4 sessions", 1.05, 8, ["warning"]),
        # no gauge: the configured 4 sessions are the capacity
        case("no cpus, 3.8 sessions", 3.8 / fallback, None, []),
        case("no cpus, 4.2 sessions", 4.2 / fallback, None, ["warning"]),
    ]
    result = run_rule_tests(generated, "load.test.yml", tests)
    assert result.returncode == 0, _tail(result)


@pytest.mark.timeout(60)
def test_redis_without_maxmemory_never_alerts_on_memory(generated: Path) -> None:
    labels = REMOTE
    test = {
        "interval": "1m",
        "input_series": [
            {"series": "perf_redis_memory_used_bytes" + sel(labels), "values": gauge(5e9)},
            {"series": "perf_redis_memory_max_bytes" + sel(labels), "values": gauge(0)},
        ],
        "alert_rule_test": [
            {"eval_time": "1h", "alertname": "PerfRedisMemoryHigh", "exp_alerts": []}
        ],
    }
    result = run_rule_tests(generated, "maxmemory0.test.yml", [test])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(60)
def test_a_rule_file_with_a_duplicate_fails_the_lint(generated: Path) -> None:
    # the lint must really run: a copied recording rule is caught
    data = yaml.safe_load((generated / "alerts/recording.rules.yml").read_text())
    rules = data["groups"][0]["rules"]
    rules.append(dict(rules[0]))
    path = generated / "dup.rules.yml"
    path.write_text(to_yaml(data))
    result = run(PROMTOOL, "check", "rules", "--lint=duplicate-rules", "--lint-fatal", str(path))
    assert result.returncode != 0


def test_alertmanager_example_passes_amtool_check(generated: Path) -> None:
    result = run(AMTOOL, "check-config", str(generated / "alerts/alertmanager.example.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 inhibit rules" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ("severity=critical alertname=PerfRedisHitRatioLow", "critical"),
        ("severity=warning alertname=PerfRedisHitRatioLow", "warning"),
        ("severity=info alertname=Something", "info"),
        ("alertname=Unlabelled", "default"),
    ],
)
def test_alertmanager_routes_by_severity(generated: Path, labels: str, receiver: str) -> None:
    result = run(
        AMTOOL,
        "config",
        "routes",
        "test",
        "--config.file",
        str(generated / "alerts/alertmanager.example.yml"),
        "--verify.receivers",
        receiver,
        *labels.split(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_alertmanager_inhibits_warning_only_for_the_same_series() -> None:
    cfg = alertmanager_config(Thresholds())
    (rule,) = cfg["inhibit_rules"]
    assert rule["source_matchers"] == ['severity="critical"']
    assert rule["target_matchers"] == ['severity="warning"']
    # every label that tells two series of one alert apart takes part in the comparison
    for signal in SIGNALS:
        assert set(signal.labels) <= set(rule["equal"])
    assert all(w["send_resolved"] for r in cfg["receivers"] for w in r["webhook_configs"])
