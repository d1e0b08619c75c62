"""The performance summary the daemon serves at /summary (JSON) and / (HTML).

The same signals and :class:`~exporter.mixin.thresholds.Thresholds` as the alerts, evaluated
by the daemon itself over its last interval: counters as deltas between the last two samples
of a target, gauges as they are, histograms as quantiles of the bucket deltas (interpolated as
Prometheus' ``histogram_quantile`` does). Each signal row keeps a short history for an inline
SVG sparkline. Pure: no HTTP, no clock reads except the defaults of ``as_json``/``as_html``.

**Score** (0-100): every signal with a current value counts once, at the status of its worst
row: ok = 1, warn = 0.5, crit = 0; the score is ``round(100 * sum / count)``. Signals without
data (a source not configured, a first sample with no delta yet) do not count; with no signal
at all the score is ``null``. The summary has no ``for:``: it shows now, the alerts wait.
"""

from __future__ import annotations

import html
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from prometheus_client.metrics_core import Metric

from exporter import __version__
from exporter.mixin.catalog import BY_KEY, SIGNALS, Signal
from exporter.mixin.rules import format_level
from exporter.mixin.thresholds import Thresholds

Status = Literal["ok", "warn", "crit"]
WEIGHT: dict[Status, float] = {"ok": 1.0, "warn": 0.5, "crit": 0.0}
SCORE_FORMULA = (
    "round(100 * mean over signals with data of (ok=1, warn=0.5, crit=0)), "
    "each signal at the status of its worst row"
)
LabelKey = tuple[tuple[str, str], ...]
Samples = dict[str, list[tuple[dict[str, str], float]]]


def status_of(signal: Signal, value: float, t: Thresholds) -> Status:
    """ok, warn or crit with the alerts' strict comparisons."""
    level = t.level(signal.key)
    if signal.above:
        return "crit" if value > level.crit else "warn" if value > level.warn else "ok"
    return "crit" if value < level.crit else "warn" if value < level.warn else "ok"


def _samples(families: Iterable[Metric]) -> Samples:
    out: Samples = {}
    for family in families:
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


@dataclass
class _Source:
    """The last two samples of one (collector, target)."""

    now: Samples = field(default_factory=dict)
    before: Samples | None = None
    t_now: float = 0.0
    t_before: float = 0.0
    up: bool = True
    last_run: float = 0.0
    last_success: float | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)


Values = dict[LabelKey, float]


class _View:
    """Helpers an evaluator uses: group, sum, delta and rate over one source's samples."""

    def __init__(self, src: _Source) -> None:
        self.src = src

    def group(self, samples: Samples | None, name: str, by: Sequence[str], **match: str) -> Values:
        out: Values = {}
        for labels, value in (samples or {}).get(name, []):
            if all(labels.get(k) == v for k, v in match.items()):
                key = tuple((k, labels.get(k, "")) for k in by)
                out[key] = out.get(key, 0.0) + value
        return out

    def gauge(self, name: str, by: Sequence[str] = (), agg: str = "sum", **match: str) -> Values:
        if agg == "sum":
            return self.group(self.src.now, name, by, **match)
        out: Values = {}
        for labels, value in self.src.now.get(name, []):
            if all(labels.get(k) == v for k, v in match.items()):
                key = tuple((k, labels.get(k, "")) for k in by)
                out[key] = max(out.get(key, -math.inf), value)
        return out

    def delta(self, name: str, by: Sequence[str] = (), **match: str) -> Values:
        if self.src.before is None:
            return {}
        now = self.group(self.src.now, name, by, **match)
        before = self.group(self.src.before, name, by, **match)
        # a counter that went down was reset: no delta this time
        return {k: v - before[k] for k, v in now.items() if k in before and v >= before[k]}

    def rate(self, name: str, by: Sequence[str] = (), **match: str) -> Values:
        dt = self.src.t_now - self.src.t_before
        if dt <= 0:
            return {}
        return {k: v / dt for k, v in self.delta(name, by, **match).items()}

    def quantile(self, q: float, bucket: str, by: Sequence[str] = ()) -> Values:
        deltas = self.delta(bucket, (*by, "le"))
        groups: dict[LabelKey, list[tuple[float, float]]] = {}
        for key, count in deltas.items():
            labels = dict(key)
            le = float(labels.pop("le"))
            groups.setdefault(tuple(labels.items()), []).append((le, count))
        return {k: v for k, b in groups.items() if (v := histogram_quantile(q, b)) is not None}


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' interpolation over cumulative ``(le, count)`` buckets."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][0] != math.inf or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == math.inf:
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return None


def _ratio(good: Values, bad: Values) -> Values:
    return {k: g / (g + bad[k]) for k, g in good.items() if k in bad and g + bad[k] > 0}


def _minus(total: Values, own: Values) -> Values:
    """``total`` less the part the exporter caused itself (absent counts as none)."""
    return {k: max(0.0, v - own.get(k, 0.0)) for k, v in total.items()}


def _divide(num: Values, den: Values) -> Values:
    return {k: n / den[k] for k, n in num.items() if den.get(k, 0) > 0 and math.isfinite(den[k])}


Evaluator = Callable[[_View], Values]

EVALUATORS: dict[str, Evaluator] = {
    "postgres_cache_hit_ratio": lambda v: _ratio(
        v.delta("perf_postgres_blocks_hit_total"), v.delta("perf_postgres_blocks_read_total")
    ),
    "redis_hit_ratio": lambda v: _ratio(
        _minus(
            v.delta("perf_redis_keyspace_hits_total"),
            v.delta("perf_redis_exporter_keyspace_hits_total"),
        ),
        _minus(
            v.delta("perf_redis_keyspace_misses_total"),
            v.delta("perf_redis_exporter_keyspace_misses_total"),
        ),
    ),
    "app_cache_hit_ratio": lambda v: _ratio(
        v.delta("perf_app_cache_hits_total", ("namespace",)),
        v.delta("perf_app_cache_misses_total", ("namespace",)),
    ),
    "postgres_connection_utilisation": lambda v: _divide(
        v.gauge("perf_postgres_connections"),
        {
            k: m - v.gauge("perf_postgres_superuser_reserved_connections").get(k, 0.0)
            for k, m in v.gauge("perf_postgres_max_connections", agg="max").items()
        },
    ),
    "pgbouncer_waiting_clients": lambda v: v.gauge(
        "perf_pgbouncer_clients", ("pool",), state="waiting"
    ),
    "pgbouncer_max_wait": lambda v: v.gauge("perf_pgbouncer_max_wait_seconds", ("pool",), "max"),
    "app_pool_utilisation": lambda v: _divide(
        {
            k: s - v.gauge("perf_app_pool_idle", ("pool",)).get(k, 0.0)
            for k, s in v.gauge("perf_app_pool_size", ("pool",)).items()
        },
        v.gauge("perf_app_pool_max", ("pool",)),
    ),
    "app_pool_waiting": lambda v: v.gauge("perf_app_pool_acquire_waiting", ("pool",)),
    "app_pool_acquire_p99": lambda v: v.quantile(
        0.99, "perf_app_pool_acquire_seconds_bucket", ("pool",)
    ),
    "postgres_probe_p99": lambda v: v.quantile(0.99, "perf_postgres_probe_duration_seconds_bucket"),
    "redis_probe_p99": lambda v: v.quantile(0.99, "perf_redis_probe_duration_seconds_bucket"),
    "postgres_statement_mean_latency": lambda v: _divide(
        v.delta("perf_postgres_statement_exec_seconds_total", ("datname", "queryid")),
        v.delta("perf_postgres_statement_calls_total", ("datname", "queryid")),
    ),
    "postgres_longest_transaction": lambda v: v.gauge(
        "perf_postgres_transaction_max_age_seconds", agg="max"
    ),
    "postgres_idle_in_transaction": lambda v: v.gauge(
        "perf_postgres_idle_in_transaction_max_age_seconds", agg="max"
    ),
    "redis_memory_utilisation": lambda v: _divide(
        v.gauge("perf_redis_memory_used_bytes", agg="max"),
        v.gauge("perf_redis_memory_max_bytes", agg="max"),
    ),
    "redis_evictions": lambda v: v.rate("perf_redis_evicted_keys_total"),
    "redis_rejected_connections": lambda v: v.rate("perf_redis_rejected_connections_total"),
    "host_cpu_utilisation": lambda v: {
        k: 1 - v.delta("perf_host_cpu_seconds_total", mode="idle").get(k, 0.0) / total
        for k, total in v.delta("perf_host_cpu_seconds_total").items()
        if total > 0
    },
    "host_memory_utilisation": lambda v: {
        k: 1 - a
        for k, a in _divide(
            v.gauge("perf_host_memory_available_bytes"), v.gauge("perf_host_memory_total_bytes")
        ).items()
    },
    "host_cgroup_memory_utilisation": lambda v: _divide(
        v.gauge("perf_host_cgroup_memory_current_bytes"),
        v.gauge("perf_host_cgroup_memory_max_bytes"),
    ),
    "host_filesystem_avail_ratio": lambda v: _divide(
        v.gauge("perf_host_filesystem_avail_bytes", ("mountpoint",), "max"),
        v.gauge("perf_host_filesystem_size_bytes", ("mountpoint",), "max"),
    ),
}

COLLECTOR_OF = {"postgres": "postgres", "redis": "redis", "app": "app", "pgbouncer": "pgbouncer"}


STALENESS = BY_KEY["exporter_collector_staleness"]


@dataclass
class Row:
    """One series of one signal, with its recent history."""

    signal: Signal
    collector: str
    target: str
    labels: LabelKey
    value: float | None = None
    updated: float = 0.0
    history: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=60))


class SummaryBoard:
    """Signals per target, their statuses, history and the overall score.

    The daemon calls :meth:`update` after every successful collection, :meth:`failed` after a
    failed one and :meth:`drop` when a reload removes a target.
    """

    def __init__(self, thresholds: Thresholds | None = None, history: int = 60) -> None:
        self.thresholds = thresholds or Thresholds()
        self.history = history
        self._sources: dict[tuple[str, str], _Source] = {}
        # rows by (signal key, collector, target), then by labels: an update touches only the
        # rows of its own target, so a cycle costs the same with 1 or 100 targets
        self._rows: dict[tuple[str, str, str], dict[LabelKey, Row]] = {}
        # (time, avail bytes) per mountpoint for the fill prediction
        self._fill: dict[tuple[str, LabelKey], deque[tuple[float, float]]] = {}

    # --- input ---------------------------------------------------------------------------

    def update(
        self,
        collector: str,
        target: str,
        families: Sequence[Metric],
        facts: Mapping[str, Any],
        now: float,
    ) -> None:
        """A successful collection of ``collector`` for ``target`` at ``now``."""
        src = self._sources.get((collector, target))
        if src is None or not src.up:
            src = _Source()
            self._sources[(collector, target)] = src
        else:
            src.before, src.t_before = src.now, src.t_now
        src.now, src.t_now = _samples(families), now
        src.up, src.last_run, src.last_success, src.facts = True, now, now, dict(facts)
        view = _View(src)
        for signal in SIGNALS:
            evaluate = EVALUATORS.get(signal.key)
            if evaluate is None or COLLECTOR_OF.get(signal.source, signal.source) != collector:
                continue
            self._set(signal, collector, target, evaluate(view), now)
        if collector == "host":
            self._predict_fill(collector, target, view, now)
        self._set_exporter(collector, target, now)

    def failed(self, collector: str, target: str, now: float) -> None:
        """A failed collection: the target's signals have no value until it recovers."""
        src = self._sources.setdefault((collector, target), _Source())
        src.up, src.before, src.now, src.facts = False, None, {}, {}
        src.last_run = now
        for key, rows in self._rows.items():
            if key[1:3] != (collector, target):
                continue
            for row in rows.values():
                if row.signal.source != "exporter":
                    row.value = None
        self._set_exporter(collector, target, now)

    def drop(self, collector: str, target: str) -> None:
        """Forget a target (removed by a config reload)."""
        self._sources.pop((collector, target), None)
        for key in [k for k in self._rows if k[1:3] == (collector, target)]:
            del self._rows[key]
        for fill_key in [k for k in self._fill if k[0] == f"{collector}/{target}"]:
            del self._fill[fill_key]

    # the core's scheduler speaks Collected | None and a set of live keys
    def record(self, collector: str, target: str, result: Any, now: float) -> None:
        """``result`` is a ``Collected`` (families, facts) or None for a failed run."""
        if result is None:
            self.failed(collector, target, now)
        else:
            self.update(collector, target, result.families, result.facts, now)

    def forget_except(self, keys: set[tuple[str, str]]) -> None:
        for key in [k for k in self._sources if k not in keys]:
            self.drop(*key)

    def _set(self, signal: Signal, collector: str, target: str, values: Values, now: float) -> None:
        rows = self._rows.setdefault((signal.key, collector, target), {})
        for labels, old in rows.items():
            if labels not in values:
                old.value = None
        for labels, value in values.items():
            if not math.isfinite(value):
                continue
            row = rows.get(labels)
            if row is None:
                row = Row(signal, collector, target, labels, history=deque(maxlen=self.history))
                rows[labels] = row
            row.value, row.updated = value, now
            row.history.append((now, value))

    def _set_exporter(self, collector: str, target: str, now: float) -> None:
        src = self._sources[(collector, target)]
        labels: LabelKey = (("collector", collector),)
        success = BY_KEY["exporter_collector_success"]
        self._set(success, collector, target, {labels: 1.0 if src.up else 0.0}, now)
        if src.last_success is not None:
            # history gets one point per run; the value shown is recomputed on every read
            self._set(STALENESS, collector, target, {labels: now - src.last_success}, now)

    def _predict_fill(self, collector: str, target: str, view: _View, now: float) -> None:
        signal = BY_KEY["host_filesystem_fill_hours"]
        hours: Values = {}
        for labels, avail in view.gauge(
            "perf_host_filesystem_avail_bytes", ("mountpoint",), "max"
        ).items():
            trail = self._fill.setdefault(
                (f"{collector}/{target}", labels), deque(maxlen=self.history)
            )
            trail.append((now, avail))
            (t0, a0), (t1, a1) = trail[0], trail[-1]
            if t1 - t0 >= 60 and a1 < a0:
                hours[labels] = a1 / ((a0 - a1) / (t1 - t0)) / 3600
        self._set(signal, collector, target, hours, now)

    # --- output --------------------------------------------------------------------------

    def rows(self, now: float) -> list[dict[str, Any]]:
        t = self.thresholds
        out = []
        order = {s.key: i for i, s in enumerate(SIGNALS)}
        for row in sorted(
            (row for rows in self._rows.values() for row in rows.values()),
            key=lambda r: (order[r.signal.key], r.collector, r.target, r.labels),
        ):
            signal = row.signal
            level = t.level(signal.key)
            value = row.value
            src = self._sources.get((row.collector, row.target))
            if signal is STALENESS and src is not None and src.last_success is not None:
                value = now - src.last_success  # grows between runs; reading changes nothing
            out.append(
                {
                    "signal": signal.key,
                    "title": signal.title,
                    "source": signal.source,
                    "collector": row.collector,
                    "target": row.target,
                    "labels": dict(row.labels),
                    "value": value,
                    "display": _display(signal, value),
                    "unit": signal.unit,
                    "bad_when": "above" if signal.above else "below",
                    "warn": level.warn,
                    "crit": level.crit,
                    "status": None if value is None else status_of(signal, value, t),
                    "alert": signal.alert,
                    "runbook_url": t.runbook(signal.anchor),
                    "history": [v for _, v in row.history],
                }
            )
        return out

    def as_json(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        rows = self.rows(now)
        worst: dict[str, Status] = {}
        for row in rows:
            status = row["status"]
            if status is None:
                continue
            old = worst.get(row["signal"])
            if old is None or WEIGHT[status] < WEIGHT[old]:
                worst[row["signal"]] = status
        score = round(100 * sum(WEIGHT[s] for s in worst.values()) / len(worst)) if worst else None
        sources: dict[str, dict[str, Any]] = {}
        recommendations: list[Any] = []
        for (collector, target), src in sorted(self._sources.items()):
            sources.setdefault(collector, {})[target] = {
                "up": src.up,
                "last_run": src.last_run,
                "last_success": src.last_success,
                "facts": dict(src.facts),
            }
            for item in src.facts.get("index_recommendations") or []:
                recommendations.append(
                    {"target": target, **item} if isinstance(item, dict) else item
                )
        return {
            "version": __version__,
            "generated_at": now,
            "score": score,
            "score_formula": SCORE_FORMULA,
            "status": {k: worst[k] for k in worst},
            "signals": rows,
            "sources": sources,
            "index_recommendations": recommendations,
        }

    def as_html(self, now: float | None = None) -> str:
        return render_html(self.as_json(now))


# --- presentation ------------------------------------------------------------------------------

COLOURS = {"ok": "#1a7f37", "warn": "#b35900", "crit": "#c00", None: "#666"}


def _display(signal: Signal, value: float | None) -> str:
    if value is None:
        return "no data"
    if signal.unit == "percentunit":
        return f"{value * 100:.1f} %"
    if signal.unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.1f} s"
    if signal.unit == "h":
        return f"{value:.1f} h"
    if signal.unit == "ops":
        return f"{value:.2f}/s"
    return f"{value:g}"


def sparkline(
    values: Sequence[float], status: str | None, width: int = 120, height: int = 24
) -> str:
    """An inline SVG polyline of ``values`` (no script, no external reference)."""
    points = [v for v in values if math.isfinite(v)]
    if len(points) < 2:
        return ""
    lo, hi = min(points), max(points)
    span = (hi - lo) or 1.0
    step = width / (len(points) - 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}"
        for i, v in enumerate(points)
    )
    colour = COLOURS.get(status, "#666")
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="recent history"><polyline fill="none" stroke="{colour}" '
        f'stroke-width="1.5" points="{coords}"/></svg>'
    )


def render_html(data: Mapping[str, Any]) -> str:
    e = html.escape
    score = data["score"]
    score_text = "-" if score is None else str(score)
    score_colour = (
        COLOURS[None]
        if score is None
        else COLOURS["ok" if score >= 90 else "warn" if score >= 60 else "crit"]
    )
    rows = []
    for row in data["signals"]:
        extra = " ".join(f"{k}={v}" for k, v in row["labels"].items() if k != "collector")
        signal = BY_KEY[row["signal"]]
        word = "&gt;" if row["bad_when"] == "above" else "&lt;"
        status = row["status"]
        rows.append(
            f'<tr class="{e(status or "none")}"><td><a href="{e(row["runbook_url"])}">'
            f"{e(row['title'])}</a></td><td>{e(row['target'])}</td><td>{e(extra)}</td>"
            f'<td class="num">{e(row["display"])}</td>'
            f"<td>warn {word} {e(format_level(signal, row['warn']))}, crit {word} "
            f"{e(format_level(signal, row['crit']))}</td>"
            f'<td class="st" style="color:{COLOURS.get(status, "#666")}">'
            f"{e((status or 'no data').upper())}</td>"
            f"<td>{sparkline(row['history'], status)}</td></tr>"
        )
    sources = []
    for collector, targets in data["sources"].items():
        for target, info in targets.items():
            state = "up" if info["up"] else "DOWN"
            sources.append(
                f"<tr><td>{e(collector)}</td><td>{e(target)}</td>"
                f'<td class="{state.lower()}">{state}</td></tr>'
            )
    recs = "".join(
        f"<li>{e(_recommendation(r))}</li>" for r in data.get("index_recommendations", [])
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>perf-exporter: performance summary</title><style>"
        "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}"
        "td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}"
        ".num{text-align:right;font-variant-numeric:tabular-nums}.st{font-weight:bold}"
        ".score{font-size:3em;font-weight:bold}.down{color:#c00;font-weight:bold}.up{color:#1a7f37}"
        "tr.crit{background:#fde8e8}tr.warn{background:#fff4e0}"
        "</style></head><body>"
        f"<h1>Performance summary</h1><p>perf-exporter {e(data['version'])} · "
        "<a href='/metrics'>/metrics</a> · <a href='/summary'>/summary</a> · "
        "<a href='/healthz'>/healthz</a></p>"
        f'<p>Score <span class="score" style="color:{score_colour}">{score_text}</span>'
        f" / 100 <small>({e(data['score_formula'])})</small></p>"
        "<h2>Signals</h2><table><tr><th>signal</th><th>target</th><th>series</th>"
        "<th>value</th><th>thresholds</th><th>status</th><th>recent</th></tr>"
        + "".join(rows)
        + "</table><h2>Sources</h2><table><tr><th>collector</th><th>target</th><th>state</th></tr>"
        + "".join(sources)
        + "</table><h2>Index recommendations</h2>"
        + (f"<ul>{recs}</ul>" if recs else "<p>None.</p>")
        + "</body></html>"
    )


def _recommendation(item: Any) -> str:
    if isinstance(item, Mapping):
        if "advice" in item:
            where = "/".join(str(item[k]) for k in ("target", "datname") if item.get(k))
            return f"{where}: {item['advice']}" if where else str(item["advice"])
        return ", ".join(f"{k}: {v}" for k, v in item.items())
    return str(item)
