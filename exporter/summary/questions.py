"""The summary by question: which signals answer "is my cache working", "is a pool saturated"...

Each signal of :data:`~exporter.mixin.catalog.SIGNALS` says which question it answers; this
module groups the board's rows by that field (never by a list of keys, so a signal added to the
catalog lands in its section by itself), adds a ``no_data`` row for every configured target
that gave a signal nothing and says why in one sentence, and puts each question's own facts
beside its signals: the cache namespaces, the pools' saturation chain, the slow statements and
lock chains, the host and container. Pure: the board hands in its rows and sources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from exporter.mixin.catalog import SIGNALS, Question, Signal
from exporter.mixin.thresholds import Thresholds
from exporter.summary.window import SampleColumn

#: The questions in the order the page shows them, with the title a person reads.
TITLES: dict[str, str] = {
    "cache": "Is my cache working?",
    "pools": "Is a pool saturated?",
    "queries": "Which query got slow?",
    "resources": "Is the box out of room?",
    "exporter": "Is the exporter itself healthy?",
}
QUESTIONS: tuple[str, ...] = get_args(Question)
#: The container's memory and its limit, which the resources question shows beside the signals.
CONTAINER_MEMORY = ("perf_host_cgroup_memory_current_bytes", "perf_host_cgroup_memory_max_bytes")
RANK = {"crit": 0, "warn": 1, "ok": 2, "idle": 3, "no_data": 4}


@dataclass(frozen=True)
class SourceView:
    """What the questions need of one (collector, target): up, its facts and error."""

    collector: str
    target: str
    up: bool
    #: Collections so far that succeeded (a rate needs two).
    successes: int
    facts: Mapping[str, Any]
    #: The latest samples by sample name (the container's memory, which metrics exist).
    gauges: Mapping[str, SampleColumn]
    #: Why the last collection failed, one sentence, or None.
    error: str | None


def sentence(row: Mapping[str, Any], signal: Signal) -> str | None:
    """The one sentence a row that is not ok carries; None for an ok row."""
    status = row["status"]
    if status in ("idle", "no_data"):
        return str(row["reason"])
    if status not in ("warn", "crit"):
        return None
    where = f"{row['collector']} target {row['target']}"
    extra = ", ".join(f"{k} {v}" for k, v in row["labels"].items() if k not in ("collector",))
    if extra and signal.source != "exporter":
        where += f" ({extra})"
    level = row["crit"] if status == "crit" else row["warn"]
    word = "above" if row["bad_when"] == "above" else "below"
    name = "critical" if status == "crit" else "warning"
    return (
        f"{signal.title} on {where} is {row['display']}, {word} the {name} level of "
        f"{signal.format_level(level)}: see {row['runbook_url']}"
    )


def _no_data_reason(signal: Signal, src: SourceView) -> str:
    where = f"{src.collector} target {src.target}"
    if not src.up:
        error = (src.error or "its last collection failed").rstrip(". ")
        return f"{where} is down: {error}."
    if (
        any(m.startswith("perf_postgres_statement_") for m in signal.metrics)
        and src.facts.get("stat_statements_available") is False
    ):
        return (
            f"pg_stat_statements is not loaded on {where}, so statement metrics are off: "
            "add it to shared_preload_libraries and CREATE EXTENSION pg_stat_statements."
        )
    if src.successes < 2:
        return f"{where} has been collected once so far; this signal needs two collections."
    present = [m for m in signal.metrics if m in src.gauges]
    if present:
        return (
            f"{where} reports {', '.join(present)} but they give no value now "
            "(no limit set, no change yet, or no traffic in the interval)."
        )
    return f"{where} reports none of {', '.join(signal.metrics)}."


def _row_status(row: Mapping[str, Any]) -> str:
    return "no_data" if row["status"] is None else str(row["status"])


def question_rows(
    rows: list[dict[str, Any]], sources: list[SourceView], t: Thresholds
) -> dict[str, list[dict[str, Any]]]:
    """Rows by question: every row of the board plus one ``no_data`` row per target without."""
    by_signal: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_signal.setdefault(row["signal"], []).append(row)
    out: dict[str, list[dict[str, Any]]] = {q: [] for q in QUESTIONS}
    for signal in SIGNALS:
        mine = by_signal.get(signal.key, [])
        answered = {(r["collector"], r["target"]) for r in mine if r["value"] is not None}
        listed = []
        for row in mine:
            row = dict(row, status=_row_status(row))
            if row["status"] == "no_data" and row["reason"] is None:
                src = next(
                    (
                        s
                        for s in sources
                        if (s.collector, s.target) == (row["collector"], row["target"])
                    ),
                    None,
                )
                if src is None:
                    row["reason"] = "No value yet."
                else:
                    row["status"], row["reason"] = _without_value(signal, src, t)
            listed.append(row)
        if signal.source != "exporter":
            seen = {(r["collector"], r["target"]) for r in mine}
            for src in sources:
                key = (src.collector, src.target)
                if src.collector != signal.source or key in answered or key in seen:
                    continue
                listed.append(_empty_row(signal, src, t))
        for row in listed:
            row["question"] = signal.question
            row["sentence"] = sentence(row, signal)
        out[signal.question].extend(listed)
    return out


def _without_value(signal: Signal, src: SourceView, t: Thresholds) -> tuple[str, str]:
    """Status and reason of a signal with no value on a source: a guarded ratio whose metrics
    are there but saw no event is idle (a hit ratio of no lookups), anything else no data."""
    min_rate = t.min_rate(signal.key)
    quiet = (
        src.up
        and src.successes >= 2
        and min_rate is not None
        and any(m in src.gauges for m in signal.metrics)
    )
    if quiet:
        return "idle", (
            f"No traffic on {src.collector} target {src.target} over the last interval, below "
            f"the {min_rate:g}/s needed to judge this ratio."
        )
    return "no_data", _no_data_reason(signal, src)


def _empty_row(signal: Signal, src: SourceView, t: Thresholds) -> dict[str, Any]:
    level = t.level(signal.key)
    status, reason = _without_value(signal, src, t)
    return {
        "signal": signal.key,
        "title": signal.title,
        "source": signal.source,
        "collector": src.collector,
        "target": src.target,
        "labels": {},
        "value": None,
        "display": "no data",
        "unit": signal.unit,
        "bad_when": "above" if signal.above else "below",
        "warn": level.warn,
        "crit": level.crit,
        "status": status,
        "reason": reason,
        "traffic": None,
        "alert": signal.alert,
        "runbook_url": t.runbook_here(signal.anchor),
        "history": [],
    }


def question_status(rows: Iterable[Mapping[str, Any]]) -> str:
    """The worst judged status of the rows; idle or no_data when nothing was judged."""
    statuses = [str(r["status"]) for r in rows]
    return min(statuses, key=RANK.__getitem__) if statuses else "no_data"


# --- each question's facts -----------------------------------------------------------------


def _of(sources: list[SourceView], collector: str) -> list[SourceView]:
    return [s for s in sources if s.collector == collector]


def cache_namespaces(sources: list[SourceView]) -> list[dict[str, Any]]:
    """Per namespace: Redis' keys, keys without TTL, memory; the app's hit ratio and speedup."""
    names: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return names.setdefault(
            name,
            {
                "namespace": name,
                "redis_target": None,
                "keys": None,
                "keys_without_ttl": None,
                "memory_bytes": None,
                "app_target": None,
                "hit_ratio": None,
                "speedup": None,
                "mean_hit_seconds": None,
                "mean_miss_seconds": None,
            },
        )

    for src in _of(sources, "redis"):
        for name, info in (src.facts.get("namespaces") or {}).items():
            e = entry(str(name))
            e["redis_target"] = src.target
            for k in ("keys", "keys_without_ttl", "memory_bytes"):
                e[k] = info.get(k)
    for src in _of(sources, "app"):
        for name, info in (src.facts.get("cache") or {}).items():
            e = entry(str(name))
            e["app_target"] = src.target
            for k in ("hit_ratio", "speedup", "mean_hit_seconds", "mean_miss_seconds"):
                e[k] = info.get(k)
    return [names[k] for k in sorted(names)]


def _gauge(src: SourceView, name: str) -> float | None:
    column = src.gauges.get(name)
    return sum(column.values) if column else None


def saturation_chain(
    sources: list[SourceView], judge: Callable[[str, float], str]
) -> list[dict[str, Any]]:
    """App pool -> PgBouncer -> PostgreSQL: each link's use against its limit.

    ``judge(signal key, utilisation)`` gives a link its status with the levels of the signal
    that watches that tier.
    """
    chain: list[dict[str, Any]] = []
    for src in _of(sources, "app"):
        for pool, info in sorted((src.facts.get("pools") or {}).items()):
            use = info.get("utilisation")
            chain.append(
                {
                    "tier": "app_pool",
                    "target": src.target,
                    "name": pool,
                    "in_use": info.get("in_use"),
                    "limit": info.get("max"),
                    "utilisation": use,
                    "status": "no_data" if use is None else judge("app_pool_utilisation", use),
                }
            )
    for src in _of(sources, "pgbouncer"):
        for pool, info in sorted((src.facts.get("pools") or {}).items()):
            use = info.get("utilisation")
            waiting = info.get("clients_waiting") or 0.0
            chain.append(
                {
                    "tier": "pgbouncer",
                    "target": src.target,
                    "name": pool,
                    "in_use": info.get("servers_active"),
                    "limit": info.get("pool_size"),
                    "utilisation": use,
                    "status": judge("pgbouncer_waiting_clients", waiting),
                }
            )
    for src in _of(sources, "postgres"):
        facts = src.facts
        if "connections" not in facts:
            continue
        usable = (facts.get("max_connections") or 0) - (
            facts.get("superuser_reserved_connections") or 0
        )
        use = facts["connections"] / usable if usable > 0 else None
        chain.append(
            {
                "tier": "postgres",
                "target": src.target,
                "name": "max_connections",
                "in_use": facts["connections"],
                "limit": usable if usable > 0 else None,
                "utilisation": use,
                "status": "no_data"
                if use is None
                else judge("postgres_connection_utilisation", use),
            }
        )
    return chain


def queries_facts(sources: list[SourceView]) -> dict[str, list[Any]]:
    """Slow statements and lock chains from whichever collector provides them, by target."""
    out: dict[str, list[Any]] = {"slow_statements": [], "blocking": [], "index_recommendations": []}
    for src in sources:
        for name, items in out.items():
            for item in src.facts.get(name) or []:
                items.append({"target": src.target, **item} if isinstance(item, Mapping) else item)
    return out


def resources_facts(sources: list[SourceView]) -> dict[str, Any]:
    """The host's utilisation facts, the container's memory against its limit, pressure."""
    host = next(iter(_of(sources, "host")), None)
    if host is None:
        return {"host": None, "container": None, "pressure": None}
    current = _gauge(host, CONTAINER_MEMORY[0])
    limit = _gauge(host, CONTAINER_MEMORY[1])
    container = None
    if current is not None:
        container = {
            "memory_current_bytes": current,
            "memory_max_bytes": limit or None,
            "memory_utilisation": current / limit if limit else None,
        }
    facts = dict(host.facts)
    pressure = facts.pop("pressure", None)
    return {"host": facts, "container": container, "pressure": pressure}
