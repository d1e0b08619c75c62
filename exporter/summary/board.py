"""The summary board: every signal per target, its status, recent history and the score.

The same signals and :class:`~exporter.mixin.thresholds.Thresholds` as the alerts, evaluated
by the daemon itself over its last interval (see :mod:`exporter.summary.window`). Each series
keeps a short history for an inline SVG sparkline. Pure: no HTTP, no clock reads except the
defaults of ``as_json``/``as_html``.

**Score** (0-100): every signal with a current value counts once, at the status of its worst
series: ok = 1, warn = 0.5, crit = 0; the score is ``round(100 * sum / count)``. Signals without
data (a source down, a first sample with no delta yet, pg_stat_statements off) do not count,
nor do idle ones (a ratio whose traffic is below its ``min_rate``: too few lookups to judge);
``score_signals`` says how many of each there were, so a score of 100 over three signals reads
as what it is. With no signal at all the score is ``null``. The summary has no ``for:``: it
shows now, the alerts wait. The JSON's shape is documented field by field in docs/summary.md.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from prometheus_client.metrics_core import Metric

from exporter import __version__
from exporter.mixin.catalog import BY_KEY, SIGNALS, Signal
from exporter.mixin.thresholds import Thresholds
from exporter.summary.page import render_html
from exporter.summary.questions import (
    CONTAINER_MEMORY,
    QUESTIONS,
    TITLES,
    SourceView,
    cache_namespaces,
    queries_facts,
    question_rows,
    question_status,
    resources_facts,
    saturation_chain,
)
from exporter.summary.text import render_text
from exporter.summary.window import (
    Coarse,
    Groups,
    LabelKey,
    SampleColumn,
    Samples,
    Trails,
    Values,
    Window,
    samples_of,
)

#: Bumped when a field of /summary changes meaning or goes away (docs/summary.md).
SCHEMA_VERSION = 2
Status = Literal["ok", "warn", "crit"]
WEIGHT: dict[Status, float] = {"ok": 1.0, "warn": 0.5, "crit": 0.0}
SCORE_FORMULA = (
    "round(100 * mean over signals with data of (ok=1, warn=0.5, crit=0)), "
    "each signal at the status of its worst row; idle rows (traffic below min_rate) do not count"
)
#: Signals about the exporter's own runs: evaluated for every collector, from the board's record.
OWN = tuple(s for s in SIGNALS if s.source == "exporter")
STALENESS = BY_KEY["exporter_collector_staleness"]
#: The only samples the board keeps of a collection: what the signals and the questions read.
#: A Redis target sends hundreds of series; copying every label set twice per target made the
#: board the daemon's largest consumer of memory and a fifth of its CPU at a thousand targets.
READ: frozenset[str] = frozenset(
    name
    for s in SIGNALS
    for f in (s.formula, s.formula.traffic)
    if f is not None
    for name in f.metrics
) | frozenset(CONTAINER_MEMORY)


def status_of(signal: Signal, value: float, t: Thresholds) -> Status:
    """ok, warn or crit with the alerts' strict comparisons."""
    level = t.level(signal.key)
    if signal.above:
        return "crit" if value > level.crit else "warn" if value > level.warn else "ok"
    return "crit" if value < level.crit else "warn" if value < level.warn else "ok"


def idle(traffic: float | None, min_rate: float) -> bool:
    """Too little traffic to judge a ratio: below ``min_rate``, as the alerts' ``>=`` guard."""
    return traffic is None or traffic < min_rate


@dataclass(slots=True)
class _Source:
    """The last two samples of one (collector, target)."""

    now: Samples = field(default_factory=dict)
    before: Samples | None = None
    t_now: float = 0.0
    t_before: float = 0.0
    up: bool = True
    last_run: float = 0.0
    last_success: float | None = None
    #: Successful collections since the source was last down.
    successes: int = 0
    facts: Mapping[str, Any] = field(default_factory=dict)
    # recent gauge values for trends; they outlive a failed run, as the filesystem does
    trails: Trails = field(default_factory=dict)
    # a day of statement counters for the slowdown signal; also outlives a failed run
    coarse: Coarse = field(default_factory=Coarse)
    # what the signals grouped of ``now``: the next window's groupings of ``before``
    groups: Groups = field(default_factory=dict)


@dataclass(slots=True)
class SignalSeries:
    """One series of one signal on one target, with its recent values."""

    signal: Signal
    collector: str
    target: str
    labels: LabelKey
    value: float | None = None
    #: Events per second behind the value, for a signal guarded by a ``min_rate``.
    traffic: float | None = None
    updated: float = 0.0
    history: History = field(default_factory=lambda: History(60))


class History:
    """The last ``maxlen`` values of one series, for its sparkline, as doubles.

    At a thousand targets the board holds ~15,000 series: as a deque of (time, value) tuples a
    full history was ~5 kB a series (~80 MB once an hour's runs had filled them, after the
    benchmark had measured); the times were never read.
    """

    __slots__ = ("maxlen", "values")

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self.values = array("d")

    def append(self, value: float) -> None:
        values = self.values
        values.append(value)
        if len(values) > self.maxlen:
            del values[0]

    def __iter__(self) -> Iterator[float]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


class SummaryBoard:
    """Signals per target, their statuses, history and the overall score.

    The daemon calls :meth:`update` after every successful collection, :meth:`failed` after a
    failed one and :meth:`drop` when a reload removes a target.
    """

    def __init__(self, thresholds: Thresholds | None = None, history: int = 60) -> None:
        self.thresholds = thresholds or Thresholds()
        self.history = history
        self._settings = self.thresholds.settings()
        #: Why a (collector, target)'s last collection failed, one sentence (the daemon asks
        #: its scheduler); None when unknown.
        self.error_of: Callable[[str, str], str | None] = lambda collector, target: None
        #: Seconds between collections: the page refreshes this often (None: no refresh).
        self.refresh_seconds: float | None = None
        self._sources: dict[tuple[str, str], _Source] = {}
        # series by (collector, target), signal key and labels: an update or a failure touches
        # only the series of its own target, so a cycle costs the same with 1 or 1,000 targets
        self._series: dict[tuple[str, str], dict[str, dict[LabelKey, SignalSeries]]] = {}

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
        before_groups: Groups = {}
        if src is None or not src.up:
            src = _Source(trails=src.trails, coarse=src.coarse) if src is not None else _Source()
            self._sources[(collector, target)] = src
        else:
            src.before, src.t_before = src.now, src.t_now
            before_groups = src.groups
        src.now, src.t_now, src.groups = samples_of(families, READ), now, {}
        src.up, src.last_run, src.last_success, src.facts = True, now, now, dict(facts)
        src.successes += 1
        window = Window(
            src.now,
            now,
            src.before,
            src.t_before,
            src.trails,
            self.history,
            src.coarse,
            self._settings,
            (src.groups, before_groups),
        )
        for signal in SIGNALS:
            if signal.source == collector:
                self._set(
                    signal,
                    collector,
                    target,
                    signal.evaluate(window),
                    now,
                    signal.evaluate_traffic(window),
                )
        self._set_own(collector, target, now)

    def failed(self, collector: str, target: str, now: float) -> None:
        """A failed collection: the target's signals have no value until it recovers."""
        src = self._sources.setdefault((collector, target), _Source())
        src.up, src.before, src.now, src.facts = False, None, {}, {}
        src.last_run = now
        for series in self._series.get((collector, target), {}).values():
            for one in series.values():
                if one.signal.source != "exporter":
                    one.value = None
        self._set_own(collector, target, now)

    def drop(self, collector: str, target: str) -> None:
        """Forget a target (removed by a config reload)."""
        self._sources.pop((collector, target), None)
        self._series.pop((collector, target), None)

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

    def _set(
        self,
        signal: Signal,
        collector: str,
        target: str,
        values: Values,
        now: float,
        traffic: Values | None = None,
    ) -> None:
        series = self._series.setdefault((collector, target), {}).setdefault(signal.key, {})
        for labels, old in series.items():
            if labels not in values:
                old.value = None
        for labels, value in values.items():
            if not math.isfinite(value):
                continue
            one = series.get(labels)
            if one is None:
                one = SignalSeries(signal, collector, target, labels, history=History(self.history))
                series[labels] = one
            one.value, one.updated = value, now
            one.traffic = (traffic or {}).get(labels)
            one.history.append(value)

    def _set_own(self, collector: str, target: str, now: float) -> None:
        """The exporter's signals, from the samples its self-metrics show for this run."""
        src = self._sources[(collector, target)]
        labels = {"collector": collector}
        own: Samples = {
            "perf_exporter_collector_success": SampleColumn.of([(labels, 1.0 if src.up else 0.0)])
        }
        if src.last_success is not None:
            own["perf_exporter_collector_last_success_timestamp_seconds"] = SampleColumn.of(
                [(labels, src.last_success)]
            )
        window = Window(own, now)
        for signal in OWN:
            # history gets one point per run; the staleness shown is recomputed on every read
            self._set(signal, collector, target, signal.evaluate(window), now)

    # --- output --------------------------------------------------------------------------

    def rows(self, now: float) -> list[dict[str, Any]]:
        t = self.thresholds
        out = []
        order = {s.key: i for i, s in enumerate(SIGNALS)}
        for one in sorted(
            (
                one
                for signals in self._series.values()
                for series in signals.values()
                for one in series.values()
            ),
            key=lambda r: (order[r.signal.key], r.collector, r.target, r.labels),
        ):
            signal = one.signal
            level = t.level(signal.key)
            value = one.value
            src = self._sources.get((one.collector, one.target))
            if signal is STALENESS and src is not None and src.last_success is not None:
                value = now - src.last_success  # grows between runs; reading changes nothing
            status: str | None = None if value is None else status_of(signal, value, t)
            reason = None
            min_rate = t.min_rate(signal.key)
            if value is not None and min_rate is not None and idle(one.traffic, min_rate):
                status = "idle"
                reason = (
                    f"Only {one.traffic or 0:.2f} events/s over the last interval, below the "
                    f"{min_rate:g}/s needed to judge this ratio."
                )
            out.append(
                {
                    "signal": signal.key,
                    "title": signal.title,
                    "source": signal.source,
                    "collector": one.collector,
                    "target": one.target,
                    "labels": dict(one.labels),
                    "value": value,
                    "display": signal.display(value),
                    "unit": signal.unit,
                    "bad_when": "above" if signal.above else "below",
                    "warn": level.warn,
                    "crit": level.crit,
                    "status": status,
                    "reason": reason,
                    # events per second behind a guarded ratio (None: not guarded)
                    "traffic": one.traffic if signal.guarded else None,
                    "alert": signal.alert,
                    "runbook_url": t.runbook_here(signal.anchor),
                    "history": list(one.history),
                }
            )
        return out

    def views(self) -> list[SourceView]:
        """Every (collector, target) as the questions read it."""
        return [
            SourceView(
                collector,
                target,
                src.up,
                src.successes,
                src.facts,
                src.now,
                None if src.up else self.error_of(collector, target),
            )
            for (collector, target), src in sorted(self._sources.items())
        ]

    def as_json(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        t = self.thresholds
        rows = self.rows(now)
        views = self.views()
        by_question = question_rows(rows, views, t)
        worst: dict[str, Status] = {}
        shown: dict[str, set[str]] = {}
        for listed in by_question.values():
            for row in listed:
                status = row["status"]
                shown.setdefault(row["signal"], set()).add(status)
                if status in ("idle", "no_data"):
                    continue
                old = worst.get(row["signal"])
                if old is None or WEIGHT[status] < WEIGHT[old]:
                    worst[row["signal"]] = status
        score = round(100 * sum(WEIGHT[s] for s in worst.values()) / len(worst)) if worst else None
        idle_only = [k for k, st in shown.items() if k not in worst and "idle" in st]
        without = [k for k, st in shown.items() if k not in worst and "idle" not in st]
        counted = {
            "with_data": len(worst),
            "without_data": len(without),
            "idle": len(idle_only),
        }
        sources: dict[str, dict[str, Any]] = {}
        for view in views:
            src = self._sources[(view.collector, view.target)]
            sources.setdefault(view.collector, {})[view.target] = {
                "up": src.up,
                "last_run": src.last_run,
                "last_success": src.last_success,
                "error": view.error,
                "facts": dict(src.facts),
            }

        def judge(key: str, value: float) -> str:
            return status_of(BY_KEY[key], value, t)

        queries = queries_facts(views)
        extras: dict[str, dict[str, Any]] = {
            "cache": {"namespaces": cache_namespaces(views)},
            "pools": {"chain": saturation_chain(views, judge)},
            "queries": queries,
            "resources": resources_facts(views),
            "exporter": {
                "collectors": [
                    {
                        "collector": v.collector,
                        "target": v.target,
                        "up": v.up,
                        "error": v.error,
                        "last_success": self._sources[(v.collector, v.target)].last_success,
                    }
                    for v in views
                ]
            },
        }
        questions = [
            {
                "id": q,
                "title": TITLES[q],
                "status": question_status(by_question[q]),
                "signals": by_question[q],
                **extras[q],
            }
            for q in QUESTIONS
        ]
        return {
            "schema_version": SCHEMA_VERSION,
            "version": __version__,
            "generated_at": now,
            "refresh_seconds": self.refresh_seconds,
            "score": score,
            "score_signals": counted,
            "score_note": (
                f"Counted: {counted['with_data']} signals with data; not counted: "
                f"{counted['without_data']} without data, {counted['idle']} idle."
            ),
            "score_formula": SCORE_FORMULA,
            "status": {k: worst[k] for k in worst},
            "questions": questions,
            "signals": rows,
            "sources": sources,
            "index_recommendations": queries["index_recommendations"],
            # the same lists at the top level, where the first readers of /summary found them
            "slow_statements": queries["slow_statements"],
            "blocking": queries["blocking"],
        }

    def as_html(self, now: float | None = None) -> str:
        return render_html(self.as_json(now))

    def as_text(self, now: float | None = None) -> str:
        return render_text(self.as_json(now))
