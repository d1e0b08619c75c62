"""Each signal's PromQL (run by the real promtool) and the daemon's evaluation agree.

For every signal of the catalog the same input histories go to ``promtool test rules`` (as
``input_series`` of a ``promql_expr_test`` on the signal's expression) and, sample by sample,
to a :class:`SummaryBoard` as collections. The test is generated from the catalog: a new signal
is covered without an edit here, and a signal whose either side gives nothing fails.

Inputs are built from each metric's name so every signal gets a value that depends on every
metric it reads: counters rise linearly at a different rate each (Prometheus' extrapolated rate
is then exact), histograms have buckets the 99th percentile falls inside, gauges fall slowly
(so the filesystem fill prediction has a trend). A signal reading more than a rate window
(the slowdown's ``offset 1d``) gets a sample every 5 minutes over its span plus a margin, and
its counters bend half way, so the day before differs from now. The values prove the
arithmetic, not a realistic server (a utilisation may exceed 1). The exporter's own signals
get the history of a collector that succeeded every run but the last.

A guarded signal (a hit ratio judged only above ``min_rate``) also has its traffic compared the
same way, and an idle input (every counter slowed below the minimum) reads "idle" on /summary
exactly where the alerts' guard ``traffic >= min_rate`` gives nothing in Prometheus.
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from exporter.mixin.catalog import SIGNALS, Signal
from exporter.mixin.rules import rule_query
from exporter.mixin.thresholds import Thresholds
from exporter.summary.board import SummaryBoard

pytestmark = pytest.mark.integration

PROMTOOL = "/usr/bin/promtool"
STEP = 15  # seconds between samples; both sides see every one
STEPS = 30  # the 5m rate window lies inside the history, so no extrapolation to zero
TOLERANCE = 1e-9  # relative: float noise between Go and Python, nothing more
BASE = {"job": "perf-exporter", "instance": "host:9839"}
TARGET = "t1"
#: A value for each label a signal groups by; a signal grouping by a new label needs one here.
LABEL_VALUES = {
    "namespace": "api_response",
    "pool": "main",
    "datname": "app",
    "user": "app",
    "queryid": "42",
    "mountpoint": "/",
    "cmd": "get",
    "scope": "host",
}
#: Metrics an expression filters on a label of: both the matched and another value are fed.
SPLITS = {
    "perf_host_cpu_seconds_total": ("mode", ("idle", "user")),
    "perf_pgbouncer_clients": ("state", ("waiting", "active")),
    # only context normal is shared_buffers pressure: the ring's evictions must be left out
    "perf_postgres_io_evictions_total": ("context", ("normal", "bulkread")),
    "perf_app_cache_request_seconds_sum": ("result", ("hit", "miss")),
    "perf_app_cache_request_seconds_count": ("result", ("hit", "miss")),
}
LONG_STEP = 300  # seconds between samples of a signal reading a day or more
BUCKETS = ((0.005, 2.0), (0.05, 5.0), (0.5, 10.0), (math.inf, 10.0))

History = dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]


def _series_labels(signal: Signal) -> dict[str, str]:
    missing = [label for label in signal.series_by if label not in LABEL_VALUES]
    assert not missing, f"{signal.key}: give LABEL_VALUES a value for {missing}"
    labels = {label: LABEL_VALUES[label] for label in signal.series_by}
    return {"target": TARGET, **labels} if "target" in signal.labels else labels


def _variants(name: str, labels: dict[str, str]) -> list[dict[str, str]]:
    if name not in SPLITS:
        return [labels]
    label, values = SPLITS[name]
    return [{**labels, label: value} for value in values]


def timing(signal: Signal) -> tuple[int, int]:
    """(seconds between samples, samples) the input of ``signal`` has."""
    if signal.formula.span <= 0:
        return STEP, STEPS
    return LONG_STEP, math.ceil(signal.formula.span / LONG_STEP) + STEPS


def collector_history(signal: Signal) -> History:
    """Every series the signal reads, one value per step, shaped by the metric's kind."""
    history: History = {}
    labels = _series_labels(signal)
    step, steps = timing(signal)
    bend = steps // 2 if signal.formula.span > 0 else steps
    for i, name in enumerate(signal.metrics):
        # later metrics move less: the exporter's own lookups stay below the server's total
        scale = 1.0 / (i + 1)
        for j, variant in enumerate(_variants(name, labels)):
            factor = scale * (j + 1)
            if name.endswith("_bucket"):
                for le, count in BUCKETS:
                    key = tuple(sorted({**variant, "le": repr(le).replace("inf", "+Inf")}.items()))
                    history[(name, key)] = [count * factor * (n + 10) for n in range(steps)]
            elif name.endswith(("_total", "_sum", "_count")):
                rate = 10.0 * factor
                # past the bend the first metric speeds up most (exec time more than calls)
                history[(name, tuple(sorted(variant.items())))] = [
                    rate * step * (n + 10 + max(0, n - bend) / (i + 1)) for n in range(steps)
                ]
            else:
                history[(name, tuple(sorted(variant.items())))] = [
                    1000.0 * factor - 0.5 * factor * n for n in range(steps)
                ]
    return history


def own_history() -> History:
    """The exporter's self-metrics of a postgres target that succeeded every run but the last."""
    key = (("collector", "postgres"), ("target", TARGET))
    success = [1.0] * (STEPS - 1) + [0.0]
    last = [float(n * STEP) for n in range(STEPS - 1)]
    return {
        ("perf_exporter_collector_success", key): success,
        ("perf_exporter_collector_last_success_timestamp_seconds", key): [*last, last[-1]],
    }


def daemon_rows(signal: Signal, history: History) -> list[dict[str, Any]]:
    """The signal's /summary rows after the board saw the history run by run."""
    board = SummaryBoard(Thresholds())
    own = signal.source == "exporter"
    collector = "postgres" if own else signal.source
    step, steps = timing(signal)
    for n in range(steps):
        if own and n == steps - 1:
            board.failed(collector, TARGET, n * step)
            continue
        family = Metric("input", "the test's input series", "untyped")
        if not own:
            for (name, labels), values in history.items():
                kept = {k: v for k, v in labels if k != "target"}
                family.add_sample(name, kept, values[n])
        board.update(collector, TARGET, [family], {}, n * step)
    return [row for row in board.rows((steps - 1) * step) if row["signal"] == signal.key]


def _key(signal: Signal, row: dict[str, Any]) -> frozenset[tuple[str, str]]:
    labels = dict(row["labels"])
    if "target" in signal.labels:
        labels["target"] = row["target"]
    return frozenset(labels.items())


def daemon_values(signal: Signal, history: History) -> dict[frozenset[tuple[str, str]], float]:
    """What /summary shows for the signal after the board saw the history run by run."""
    return {
        _key(signal, row): row["value"]
        for row in daemon_rows(signal, history)
        if row["value"] is not None
    }


def daemon_traffic(signal: Signal, history: History) -> dict[frozenset[tuple[str, str]], float]:
    """The traffic /summary judged the signal's guard on, at the end of the history."""
    rows = daemon_rows(signal, history)
    assert all(row["traffic"] is not None for row in rows), rows
    return {_key(signal, row): row["traffic"] for row in rows}


def _selector(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    matchers = ", ".join(f'{k}="{v}"' for k, v in (*BASE.items(), *labels))
    return f"{name}{{{matchers}}}"


def promtool_file(
    signal: Signal, history: History, expected: dict[Any, float], expr: str | None = None
) -> dict[str, Any]:
    step, steps = timing(signal)
    return {
        "rule_files": [],
        "evaluation_interval": f"{step}s",
        "tests": [
            {
                "interval": f"{step}s",
                "input_series": [
                    {"series": _selector(name, labels), "values": " ".join(map(repr, values))}
                    for (name, labels), values in history.items()
                ],
                "promql_expr_test": [
                    {
                        "expr": expr or signal.expr(rule_query(Thresholds())),
                        "eval_time": f"{(steps - 1) * step}s",
                        "exp_samples": [
                            {
                                "labels": "{"
                                + ", ".join(
                                    f'{k}="{v}"' for k, v in sorted({**BASE, **dict(k)}.items())
                                )
                                + "}",
                                "value": value,
                            }
                            for k, value in expected.items()
                        ],
                    }
                ],
            }
        ],
    }


_GOT = re.compile(r"\{([^}]*)\} ([-+0-9.eE]+|NaN|[-+]?Inf)")


def prometheus_values(output: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples promtool reports it got, from its failure report."""
    got = next(line for line in output.splitlines() if line.strip().startswith("got:"))
    out = {}
    for labels, value in _GOT.findall(got):
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        kept = {k: v for k, v in pairs.items() if k not in BASE}
        out[frozenset(kept.items())] = float(value)
    return out


def agree(
    signal: Signal,
    history: History,
    ours: dict[frozenset[tuple[str, str]], float],
    tmp_path: Path,
    expr: str | None = None,
) -> None:
    """promtool evaluates ``expr`` (the signal's own by default) to exactly ``ours``."""
    path = tmp_path / "agreement.yml"
    path.write_text(yaml.safe_dump(promtool_file(signal, history, ours, expr), sort_keys=False))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    if result.returncode == 0:
        return  # promtool found exactly the daemon's values
    theirs = prometheus_values(result.stdout + result.stderr)
    assert theirs, f"{signal.key}: Prometheus gave no value\n{result.stdout}{result.stderr}"
    assert set(theirs) == set(ours), f"{signal.key}: series differ: {theirs} vs {ours}"
    for key, value in ours.items():
        assert math.isclose(theirs[key], value, rel_tol=TOLERANCE), (signal.key, key, theirs, ours)


@pytest.mark.parametrize("signal", SIGNALS, ids=[s.key for s in SIGNALS])
def test_promql_and_daemon_evaluation_agree(signal: Signal, tmp_path: Path) -> None:
    history = own_history() if signal.source == "exporter" else collector_history(signal)
    ours = daemon_values(signal, history)
    assert ours, f"{signal.key}: the daemon's evaluation gave no value for the input"
    assert all(math.isfinite(v) for v in ours.values()), ours
    agree(signal, history, ours, tmp_path)


GUARDED = [s for s in SIGNALS if s.guarded]


def _guard(signal: Signal) -> str:
    """The alerts' guard, evaluated from the raw series as the recording rule would."""
    t = Thresholds()
    return f"({signal.traffic_expr(rule_query(t))}) >= {t.min_rate(signal.key):g}"


def test_every_ratio_signal_is_guarded() -> None:
    assert {s.key for s in GUARDED} == {
        "postgres_cache_hit_ratio",
        "redis_hit_ratio",
        "app_cache_hit_ratio",
        "app_cache_speedup",
    }


@pytest.mark.parametrize("signal", GUARDED, ids=[s.key for s in GUARDED])
def test_promql_and_daemon_traffic_agree(signal: Signal, tmp_path: Path) -> None:
    history = collector_history(signal)
    ours = daemon_traffic(signal, history)
    assert ours and all(v > 0 for v in ours.values()), ours
    agree(signal, history, ours, tmp_path, signal.traffic_expr(rule_query(Thresholds())))
    # busy: the guard passes on both sides
    assert all(row["status"] != "idle" for row in daemon_rows(signal, history))
    agree(signal, history, ours, tmp_path, _guard(signal))


@pytest.mark.parametrize("signal", GUARDED, ids=[s.key for s in GUARDED])
def test_an_idle_source_is_idle_on_summary_and_quiet_in_prometheus(
    signal: Signal, tmp_path: Path
) -> None:
    # every counter a thousand times slower: the same ratio, a hundredth of a lookup a second
    history = {k: [v / 1000 for v in values] for k, values in collector_history(signal).items()}
    rows = daemon_rows(signal, history)
    assert rows and all(r["value"] is not None for r in rows), rows
    assert [r["status"] for r in rows] == ["idle"] * len(rows)
    assert all(r["reason"].endswith("needed to judge this ratio.") for r in rows), rows
    path = tmp_path / "idle.yml"
    spec = promtool_file(signal, history, {}, _guard(signal))
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
