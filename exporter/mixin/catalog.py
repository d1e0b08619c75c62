"""The signals of the performance summary: one :class:`Signal` entry each, everything in it.

A signal carries its question, title, unit, direction, default levels, the PromQL of its
recording rule and alert, the evaluation /summary does in the daemon, its runbook text and,
through its source, its home dashboard. The rule, dashboard, runbook and /summary code and
:class:`~exporter.mixin.thresholds.Thresholds` all read :data:`SIGNALS`, so a signal is defined
exactly once; tests/integration/test_signal_agreement.py proves each signal's PromQL and its
evaluation agree on the same input. Expressions are rendered from a :class:`Query`: the rules
pass the configured selector and rate window, the dashboards Grafana variables and
``$__rate_interval``.

Adding a signal is one ``Signal(...)`` in :data:`SIGNALS` (its place in the tuple is its place
in the rule files, runbooks and /summary). Its key starts with its source; ``formula`` is one of
the shapes below (``counter_ratio``, ``p99``, ``gauge_max``...) or a new :class:`Formula` giving
the PromQL and the same computation over a :class:`~exporter.summary.window.Window`. Then run
``python -m exporter mixin --out .`` and commit the regenerated files: levels become a
``thresholds:`` key, the signal gets alerts, a recording rule, a runbook section, a graph on its
home dashboard and a row on /summary, and the agreement test covers it.

A ratio whose denominator can be tiny (a hit ratio of a source that is nearly idle) is judged
only above a minimum traffic: give its formula a ``traffic`` (another :class:`Formula`, events
per second; ``counter_ratio`` does it for you) and its levels a ``min_rate``. The traffic gets a
recording rule of its own, the alerts require ``traffic >= min_rate``, and below it /summary
reads "idle" and leaves the signal out of the score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from exporter.summary.window import (
    Values,
    Window,
    divide,
    less_own,
    one_minus,
    ratio,
    subtract,
)

# Labels every remote-source series carries after the scrape.
REMOTE = ("job", "instance", "target")
LOCAL = ("job", "instance")
#: Labels the scrape adds; the daemon's evaluation sees one target's samples without them.
SCRAPE_LABELS = frozenset(("job", "instance", "target"))

SOURCES = ("postgres", "redis", "app", "pgbouncer", "host", "exporter")
#: The dashboard each source's signals live on (the application's pools sit with PgBouncer's).
HOME_DASHBOARD = {
    "postgres": "postgres",
    "redis": "redis",
    "app": "pools",
    "pgbouncer": "pools",
    "host": "host",
    "exporter": "overview",
}
Question = Literal["cache", "pools", "queries", "resources", "exporter"]

#: Numbers some signals' expressions read besides their levels, with their defaults; each is a
#: ``thresholds:`` key of its own. The slowdown alert needs this many calls a second now and a
#: day earlier (the reference app's hot statements run several a second; a statement called a
#: few times an hour has a mean that is noise); the load signal counts this many active
#: sessions as a full server when the target has no ``cpus`` and is not on the exporter's host.
SETTINGS: dict[str, float] = {
    "statement_min_calls_now": 0.1,
    "statement_min_calls_before": 0.1,
    "load_sessions_without_cpus": 4.0,
}


@dataclass(frozen=True)
class Query:
    """Selector and windows one rendering of the expressions uses."""

    selector: str
    window: str
    predict_window: str
    settings: Mapping[str, float] = field(default_factory=lambda: dict(SETTINGS))

    def setting(self, name: str) -> str:
        """A setting as a PromQL number."""
        return f"{self.settings[name]:g}"

    def m(self, name: str, extra: str = "") -> str:
        """``name{selector, extra}``."""
        matchers = ", ".join(part for part in (self.selector, extra) if part)
        return f"{name}{{{matchers}}}"

    def rate(self, name: str, extra: str = "") -> str:
        return f"rate({self.m(name, extra)}[{self.window}])"


def _by(labels: tuple[str, ...]) -> str:
    return ", ".join(labels)


def _matchers(match: dict[str, str]) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in match.items())


PromQL = Callable[[Query, tuple[str, ...]], str]
#: The daemon's twin of the PromQL: a window and the labels a series is grouped by.
Evaluation = Callable[[Window, tuple[str, ...]], Values]


@dataclass(frozen=True)
class Formula:
    """How a signal is computed, twice: as PromQL and over the daemon's :class:`Window`.

    ``promql`` gets the labels of the result (job and instance included), ``evaluate`` the
    labels the daemon groups one target's samples by (the scrape adds the others).
    """

    promql: PromQL
    evaluate: Evaluation
    #: The metrics it reads, in the order the runbook lists them.
    metrics: tuple[str, ...]
    #: Events per second the value is computed from (lookups of a hit ratio): below the
    #: signal's ``min_rate`` the value is too noisy to judge. None: always judged.
    traffic: Formula | None = None
    #: Seconds of history it reads when that is more than a rate window (``offset 1d``).
    span: float = 0.0


def _rate_sum(names: tuple[str, ...]) -> PromQL:
    return lambda q, by: " + ".join(f"sum by ({_by(by)}) ({q.rate(n)})" for n in names)


def lookups(good: str, bad: str) -> Formula:
    """``rate(good) + rate(bad)``: the traffic of a hit ratio, in lookups per second."""

    return Formula(
        _rate_sum((good, bad)),
        lambda v, by: _sum_matched(v.rate(good, by), v.rate(bad, by)),
        (good, bad),
    )


def _sum_matched(a: Values, b: Values) -> Values:
    """``a + b`` of one-to-one matched series: a series missing on either side has no sum."""
    return {k: v + b[k] for k, v in a.items() if k in b}


def counter_ratio(good: str, bad: str) -> Formula:
    """``good / (good + bad)`` of two counters' rates: a hit ratio."""

    def promql(q: Query, by: tuple[str, ...]) -> str:
        g = f"sum by ({_by(by)}) ({q.rate(good)})"
        b = f"sum by ({_by(by)}) ({q.rate(bad)})"
        return f"{g} / ({g} + {b})"

    return Formula(
        promql,
        lambda v, by: ratio(v.delta(good, by), v.delta(bad, by)),
        (good, bad),
        lookups(good, bad),
    )


def counter_quotient(num: str, den: str) -> Formula:
    """One counter's rate over another's: seconds per call."""
    return Formula(
        lambda q, by: f"sum by ({_by(by)}) ({q.rate(num)}) / sum by ({_by(by)}) ({q.rate(den)})",
        lambda v, by: divide(v.delta(num, by), v.delta(den, by)),
        (num, den),
    )


def counter_rate(name: str, **match: str) -> Formula:
    """Events per second (of the series matching ``match``)."""
    return Formula(
        lambda q, by: f"sum by ({_by(by)}) ({q.rate(name, _matchers(match))})",
        lambda v, by: v.rate(name, by, **match),
        (name,),
    )


def p99(bucket: str) -> Formula:
    """The 99th percentile of a histogram over the window."""
    return Formula(
        lambda q, by: f"histogram_quantile(0.99, sum by ({_by((*by, 'le'))}) ({q.rate(bucket)}))",
        lambda v, by: v.quantile(0.99, bucket, by),
        (bucket,),
    )


def _gauge(agg: Literal["sum", "max", "min"], name: str, match: dict[str, str]) -> Formula:
    return Formula(
        lambda q, by: f"{agg} by ({_by(by)}) ({q.m(name, _matchers(match))})",
        lambda v, by: v.gauge(name, by, agg, **match),
        (name,),
    )


def gauge_sum(name: str, **match: str) -> Formula:
    """A gauge summed over the series of one result series (waiting clients of every user)."""
    return _gauge("sum", name, match)


def gauge_max(name: str) -> Formula:
    """The largest value of a gauge (the oldest transaction)."""
    return _gauge("max", name, {})


def gauge_min(name: str) -> Formula:
    """The smallest value of a gauge (any failing collection fails the series)."""
    return _gauge("min", name, {})


def gauge_quotient(num: str, den: str, *, limited: bool = False, busy: bool = False) -> Formula:
    """``num / den`` of two gauges; ``busy`` gives ``1 - num / den`` (used from available).

    ``limited`` is for a limit of 0 meaning none (maxmemory, a cgroup without memory.max): the
    ``> 0`` filter drops those series instead of dividing by 0.
    """

    def promql(q: Query, by: tuple[str, ...]) -> str:
        d = f"max by ({_by(by)}) ({q.m(den)})"
        text = f"max by ({_by(by)}) ({q.m(num)}) / {f'({d} > 0)' if limited else d}"
        return f"1 - {text}" if busy else text

    def evaluate(v: Window, by: tuple[str, ...]) -> Values:
        share = divide(v.gauge(num, by, "max"), v.gauge(den, by, "max"))
        return one_minus(share) if busy else share

    return Formula(promql, evaluate, (num, den))


# --- formulas of one signal each ---

_HITS, _MISSES = "perf_redis_keyspace_hits_total", "perf_redis_keyspace_misses_total"
_OWN_HITS = "perf_redis_exporter_keyspace_hits_total"
_OWN_MISSES = "perf_redis_exporter_keyspace_misses_total"


def _own_excluded(q: Query, by: tuple[str, ...], total: str, own: str) -> str:
    return f"(sum by ({_by(by)}) ({q.rate(total)}) - sum by ({_by(by)}) ({q.rate(own)}))"


# the namespace scan's TTL lookups count as keyspace hits inside Redis; the collector reports how
# many it caused so the ratio is the application's own
REDIS_OWN_EXCLUDED_RATIO = Formula(
    lambda q, by: (
        f"{_own_excluded(q, by, _HITS, _OWN_HITS)} / ({_own_excluded(q, by, _HITS, _OWN_HITS)}"
        f" + {_own_excluded(q, by, _MISSES, _OWN_MISSES)})"
    ),
    lambda v, by: ratio(
        less_own(v.delta(_HITS, by), v.delta(_OWN_HITS, by)),
        less_own(v.delta(_MISSES, by), v.delta(_OWN_MISSES, by)),
    ),
    (_HITS, _MISSES, _OWN_HITS, _OWN_MISSES),
    # the application's lookups: the exporter's own are no traffic
    Formula(
        lambda q, by: (
            f"{_own_excluded(q, by, _HITS, _OWN_HITS)} + "
            f"{_own_excluded(q, by, _MISSES, _OWN_MISSES)}"
        ),
        lambda v, by: _sum_matched(
            less_own(v.rate(_HITS, by), v.rate(_OWN_HITS, by)),
            less_own(v.rate(_MISSES, by), v.rate(_OWN_MISSES, by)),
        ),
        (_HITS, _MISSES, _OWN_HITS, _OWN_MISSES),
    ),
)

_REQ_SUM = "perf_app_cache_request_seconds_sum"
_REQ_COUNT = "perf_app_cache_request_seconds_count"


def _mean_call(q: Query, by: tuple[str, ...], result: str) -> str:
    match = f'result="{result}"'
    return (
        f"(sum by ({_by(by)}) ({q.rate(_REQ_SUM, match)}) / "
        f"sum by ({_by(by)}) ({q.rate(_REQ_COUNT, match)}))"
    )


def _mean_call_values(v: Window, by: tuple[str, ...], result: str) -> Values:
    return divide(v.delta(_REQ_SUM, by, result=result), v.delta(_REQ_COUNT, by, result=result))


# how many times faster a hit is than the work it saves: mean miss time over mean hit time;
# judged only with enough calls, as a ratio of two small means is noise
CACHE_SPEEDUP = Formula(
    lambda q, by: f"{_mean_call(q, by, 'miss')} / {_mean_call(q, by, 'hit')}",
    lambda v, by: divide(_mean_call_values(v, by, "miss"), _mean_call_values(v, by, "hit")),
    (_REQ_SUM, _REQ_COUNT),
    Formula(
        lambda q, by: f"sum by ({_by(by)}) ({q.rate(_REQ_COUNT)})",
        lambda v, by: v.rate(_REQ_COUNT, by),
        (_REQ_COUNT,),
    ),
)

_CONNECTIONS = "perf_postgres_connections"
_MAX_CONNECTIONS = "perf_postgres_max_connections"
_RESERVED = "perf_postgres_superuser_reserved_connections"

# the superuser reserve is not usable by the application
CONNECTIONS_OF_USABLE = Formula(
    lambda q, by: (
        f"sum by ({_by(by)}) ({q.m(_CONNECTIONS)}) / on ({_by(by)}) "
        f"(max by ({_by(by)}) ({q.m(_MAX_CONNECTIONS)}) - on ({_by(by)}) "
        f"max by ({_by(by)}) ({q.m(_RESERVED)}))"
    ),
    lambda v, by: divide(
        v.gauge(_CONNECTIONS, by),
        subtract(v.gauge(_MAX_CONNECTIONS, by, "max"), v.gauge(_RESERVED, by, "max")),
    ),
    (_CONNECTIONS, _MAX_CONNECTIONS, _RESERVED),
)

_POOL = ("perf_app_pool_size", "perf_app_pool_idle", "perf_app_pool_max")

# connections in use are the pool's open ones less its idle ones
POOL_BUSY_OF_MAX = Formula(
    lambda q, by: (
        f"(sum by ({_by(by)}) ({q.m(_POOL[0])}) - sum by ({_by(by)}) "
        f"({q.m(_POOL[1])})) / sum by ({_by(by)}) ({q.m(_POOL[2])})"
    ),
    lambda v, by: divide(
        subtract(v.gauge(_POOL[0], by), v.gauge(_POOL[1], by)), v.gauge(_POOL[2], by)
    ),
    _POOL,
)

_CPU, _IDLE = "perf_host_cpu_seconds_total", 'mode="idle"'

CPU_BUSY = Formula(
    lambda q, by: (
        f"1 - sum by ({_by(by)}) ({q.rate(_CPU, _IDLE)}) / sum by ({_by(by)}) ({q.rate(_CPU)})"
    ),
    lambda v, by: one_minus(
        {
            k: v.delta(_CPU, by, mode="idle").get(k, 0.0) / t
            for k, t in v.delta(_CPU, by).items()
            if t > 0
        }
    ),
    (_CPU,),
)

_AVAIL = "perf_host_filesystem_avail_bytes"

# only shrinking filesystems get a value: growth or no change means never full
HOURS_UNTIL_FULL = Formula(
    lambda q, by: (
        f"max by ({_by(by)}) ({q.m(_AVAIL)}) / "
        f"-(max by ({_by(by)}) (deriv({q.m(_AVAIL)}[{q.predict_window}])) < 0) / 3600"
    ),
    lambda v, by: {
        k: a / -d / 3600
        for k, d in v.deriv(_AVAIL, by).items()
        if d < 0 and (a := v.gauge(_AVAIL, by, "max").get(k)) is not None
    },
    (_AVAIL,),
)

_LAST_SUCCESS = "perf_exporter_collector_last_success_timestamp_seconds"

SECONDS_SINCE_SUCCESS = Formula(
    lambda q, by: f"time() - max by ({_by(by)}) ({q.m(_LAST_SUCCESS)})",
    lambda v, by: {k: v.t_now - t for k, t in v.gauge(_LAST_SUCCESS, by, "max").items()},
    (_LAST_SUCCESS,),
)


_EXEC = "perf_postgres_statement_exec_seconds_total"
_CALLS = "perf_postgres_statement_calls_total"
#: The slowdown compares this window now with the same window a day earlier.
COMPARED, COMPARED_SECONDS, AGO, AGO_SECONDS = "30m", 1800.0, "1d", 86400.0


def _slowdown_promql(q: Query, by: tuple[str, ...]) -> str:
    labels = _by(by)

    def r(name: str, offset: str = "") -> str:
        return f"sum by ({labels}) (rate({q.m(name)}[{COMPARED}]{offset}))"

    then = f" offset {AGO}"
    return (
        f"({r(_EXEC)} / {r(_CALLS)}) / (({r(_EXEC, then)} / {r(_CALLS, then)}) > 0)"
        f" and on ({labels}) {r(_CALLS)} > {q.setting('statement_min_calls_now')}"
        f" and on ({labels}) {r(_CALLS, then)} > {q.setting('statement_min_calls_before')}"
    )


def _slowdown(v: Window, by: tuple[str, ...]) -> Values:
    calls_now = v.rate_over(_CALLS, by, COMPARED_SECONDS)
    calls_then = v.rate_over(_CALLS, by, COMPARED_SECONDS, AGO_SECONDS)
    now = divide(v.rate_over(_EXEC, by, COMPARED_SECONDS), calls_now)
    then = divide(v.rate_over(_EXEC, by, COMPARED_SECONDS, AGO_SECONDS), calls_then)
    low_now = v.settings.get("statement_min_calls_now", SETTINGS["statement_min_calls_now"])
    low_then = v.settings.get("statement_min_calls_before", SETTINGS["statement_min_calls_before"])
    return {
        k: mean / then[k]
        for k, mean in now.items()
        if then.get(k, 0) > 0 and calls_now[k] > low_now and calls_then[k] > low_then
    }


# the statement's mean latency now against the same window a day earlier; no history (a new
# statement, an exporter younger than a day) or too few calls on either side gives no value
STATEMENT_SLOWDOWN = Formula(
    _slowdown_promql, _slowdown, (_EXEC, _CALLS), span=AGO_SECONDS + COMPARED_SECONDS
)

_WAITS = "perf_postgres_wait_samples_total"
_ROUNDS = "perf_postgres_wait_sample_rounds_total"
_SERVER_CPUS = "perf_postgres_server_cpus"


def _load_promql(q: Query, by: tuple[str, ...]) -> str:
    labels = _by(by)
    rounds = f"sum by ({labels}) ({q.rate(_ROUNDS)})"
    cpus = (
        f"(max by ({labels}) ({q.m(_SERVER_CPUS)}) or {rounds} * 0 + "
        f"{q.setting('load_sessions_without_cpus')})"
    )
    return f"sum by ({labels}) ({q.rate(_WAITS)}) / {rounds} / {cpus}"


def _load(v: Window, by: tuple[str, ...]) -> Values:
    sessions = divide(v.delta(_WAITS, by), v.delta(_ROUNDS, by))
    cpus = v.gauge(_SERVER_CPUS, by, "max")
    fallback = v.settings.get("load_sessions_without_cpus", SETTINGS["load_sessions_without_cpus"])
    return divide(sessions, {k: cpus.get(k, fallback) for k in sessions})


# average active sessions (the sampled "database load") per CPU of the database server
DATABASE_LOAD = Formula(_load_promql, _load, (_WAITS, _ROUNDS, _SERVER_CPUS))


class Levels(NamedTuple):
    """A signal's default warning and critical levels and how long each holds before alerting."""

    warn: float
    crit: float
    for_warn: str = "5m"
    for_crit: str = "5m"
    #: Events per second of the formula's ``traffic`` below which the signal is not judged.
    min_rate: float | None = None


@dataclass(frozen=True)
class UnitFormat:
    """How values of one Grafana unit read in thresholds, on /summary and in alert text."""

    level: Callable[[float], str]
    display: Callable[[float], str]
    template: str


UNITS: dict[str, UnitFormat] = {
    "percentunit": UnitFormat(
        lambda v: f"{v * 100:g}%",
        lambda v: f"{v * 100:.1f} %",
        "{{ $value | humanizePercentage }}",
    ),
    "s": UnitFormat(
        lambda v: f"{v * 1000:g}ms" if v < 1 else f"{v:g}s",
        lambda v: f"{v * 1000:.1f} ms" if v < 1 else f"{v:.1f} s",
        "{{ $value | humanizeDuration }}",
    ),
    "h": UnitFormat(lambda v: f"{v:g}h", lambda v: f"{v:.1f} h", '{{ printf "%.1f" $value }}h'),
    "ops": UnitFormat(lambda v: f"{v:g}/s", lambda v: f"{v:.2f}/s", '{{ printf "%.2f" $value }}/s'),
    "short": UnitFormat(lambda v: f"{v:g}", lambda v: f"{v:g}", '{{ printf "%.0f" $value }}'),
    # Grafana's custom-suffix unit: a factor against a baseline (a speedup, a slowdown): "4.2x"
    "suffix:x": UnitFormat(
        lambda v: f"{v:g}x", lambda v: f"{v:.1f}x", '{{ printf "%.1f" $value }}x'
    ),
}


@dataclass(frozen=True)
class Signal:
    """One thing the summary judges, with everything rules, dashboards and /summary need.

    ``key`` names its levels under ``thresholds:``; ``formula`` is required, so a signal cannot
    exist without the evaluation /summary does.
    """

    #: Starts with the source it reads (postgres, redis, app, pgbouncer, host, exporter).
    key: str
    #: Which question of the summary it answers.
    question: Question
    title: str
    alert: str
    #: True when values above the levels are bad, False when values below them are.
    above: bool
    #: Grafana unit id; also decides how values are printed (see UNITS).
    unit: str
    levels: Levels
    #: ``metric:operation`` of the recording rule; the labels make its level (``{w}``: window).
    record: str
    formula: Formula
    meaning: str
    diagnosis: str
    mitigation: str
    #: Labels a series has beyond the source's own (job, instance and, if remote, target).
    by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"{self.key}: a key starts with its source, one of {SOURCES}")
        if self.unit not in UNITS:
            raise ValueError(f"{self.key}: unit {self.unit!r} is none of {', '.join(UNITS)}")
        if not (callable(self.formula.promql) and callable(self.formula.evaluate)):
            raise TypeError(f"{self.key}: a signal needs both its PromQL and its evaluation")
        if (self.levels.min_rate is None) != (self.formula.traffic is None):
            raise ValueError(f"{self.key}: a traffic formula and a min_rate go together")

    @property
    def anchor(self) -> str:
        return self.alert.lower()

    @property
    def source(self) -> str:
        """The collector whose samples it reads ("exporter": the exporter's own runs)."""
        return self.key.split("_", 1)[0]

    @property
    def remote(self) -> bool:
        """Whether the series come from a remote source (and dashboards filter on target)."""
        return self.source not in ("host", "exporter")

    @property
    def dashboard(self) -> str:
        """Its home dashboard: a signal not laid out there is added under "More signals"."""
        return HOME_DASHBOARD[self.source]

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels identifying one series of the result (job and instance included)."""
        return (*(REMOTE if self.remote else LOCAL), *self.by)

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.formula.metrics

    @property
    def series_by(self) -> tuple[str, ...]:
        """The labels the daemon groups one target's samples by (the scrape adds the rest)."""
        return tuple(label for label in self.labels if label not in SCRAPE_LABELS)

    def expr(self, q: Query) -> str:
        return self.formula.promql(q, self.labels)

    def evaluate(self, window: Window) -> Values:
        """This signal over one target's window, as /summary shows it."""
        return self.formula.evaluate(window, self.series_by)

    @property
    def guarded(self) -> bool:
        """Whether the signal is judged only above a minimum traffic (see ``min_rate``)."""
        return self.formula.traffic is not None

    def traffic_expr(self, q: Query) -> str:
        assert self.formula.traffic is not None, self.key
        return self.formula.traffic.promql(q, self.labels)

    def evaluate_traffic(self, window: Window) -> Values:
        """Events per second behind the value; empty for a signal without a guard."""
        if self.formula.traffic is None:
            return {}
        return self.formula.traffic.evaluate(window, self.series_by)

    def traffic_record_name(self, window: str) -> str:
        """The recording rule of the traffic: ``level:metric:traffic_rate<window>``."""
        metric = self.record.split(":", 1)[0]
        return f"{'_'.join(self.labels)}:{metric}:traffic_rate{window}"

    def record_name(self, window: str) -> str:
        """``level:metric:operation``, the level naming the labels it keeps."""
        return f"{'_'.join(self.labels)}:{self.record.replace('{w}', window)}"

    def format_level(self, value: float) -> str:
        """A threshold as people read it: 80%, 200ms, 24h, 0."""
        return UNITS[self.unit].level(value)

    def display(self, value: float | None) -> str:
        """A current value as /summary prints it."""
        return "no data" if value is None else UNITS[self.unit].display(value)


SIGNALS: tuple[Signal, ...] = (
    Signal(
        key="postgres_cache_hit_ratio",
        question="cache",
        title="PostgreSQL buffer cache hit ratio",
        alert="PerfPostgresCacheHitRatioLow",
        above=False,
        unit="percentunit",
        levels=Levels(0.95, 0.90, "10m", "10m", min_rate=1.0),
        record="perf_postgres_blocks_hit:ratio_rate{w}",
        formula=counter_ratio("perf_postgres_blocks_hit_total", "perf_postgres_blocks_read_total"),
        meaning="Reads are served from disk instead of shared_buffers: queries slow down and the "
        "disk gets busy.",
        diagnosis="Compare the hit ratio per database and the tables with most reads on the "
        "PostgreSQL dashboard; look for new sequential scans over large tables.",
        mitigation="Add the missing index the summary recommends, raise shared_buffers if the "
        "working set grew, or move the scan off the hot path.",
    ),
    Signal(
        key="postgres_buffer_evictions",
        question="cache",
        title="PostgreSQL shared buffer evictions",
        alert="PerfPostgresBufferEvictionsHigh",
        above=True,
        unit="ops",
        levels=Levels(500, 2000, "15m", "15m"),
        record="perf_postgres_io_evictions:rate{w}",
        formula=counter_rate("perf_postgres_io_evictions_total", context="normal"),
        meaning="Blocks are pushed out of shared_buffers to make room for others (pg_stat_io, "
        "PostgreSQL 16+): the working set does not fit, even while the hit ratio looks high, "
        "and every eviction of a dirty buffer is a write on the query's path.",
        diagnosis="Evictions by backend type on the PostgreSQL dashboard beside the hit ratio; "
        "the tables with most blocks read; bulk operations (vacuum, COPY) use their own rings "
        "and are not counted here.",
        mitigation="Raise shared_buffers if memory allows, add the index that turns a large scan "
        "into a lookup, or move the scan off the hot path.",
    ),
    Signal(
        key="redis_hit_ratio",
        question="cache",
        title="Redis keyspace hit ratio",
        alert="PerfRedisHitRatioLow",
        above=False,
        unit="percentunit",
        levels=Levels(0.80, 0.70, "10m", "10m", min_rate=1.0),
        record="perf_redis_keyspace_hit:ratio_rate{w}",
        formula=REDIS_OWN_EXCLUDED_RATIO,
        meaning="Most cache lookups miss, so requests fall through to PostgreSQL and the API gets "
        "slower (the application aims at 70-90 % hits).",
        diagnosis="Check evictions and memory on the Redis dashboard, TTLs per namespace and "
        "whether a deploy changed cache keys or flushed the cache.",
        mitigation="Give Redis more maxmemory if it evicts, lengthen TTLs of hot namespaces, or "
        "fix keys that vary per request (timestamps, unsorted parameters).",
    ),
    Signal(
        key="app_cache_hit_ratio",
        question="cache",
        title="Application cache hit ratio",
        alert="PerfAppCacheHitRatioLow",
        above=False,
        unit="percentunit",
        levels=Levels(0.80, 0.70, "10m", "10m", min_rate=1.0),
        by=("namespace",),
        record="perf_app_cache_hit:ratio_rate{w}",
        formula=counter_ratio("perf_app_cache_hits_total", "perf_app_cache_misses_total"),
        meaning="One cache namespace of the application mostly misses; the work it should save is "
        "done on every request.",
        diagnosis="Find the namespace on the app dashboard; compare with its TTL and with "
        "invalidations done by the application.",
        mitigation="Lengthen the namespace's TTL, stop invalidating it on unrelated writes, or "
        "stop caching values that are never read twice.",
    ),
    Signal(
        key="app_cache_speedup",
        question="cache",
        title="Application cache speedup",
        alert="PerfAppCacheSpeedupLow",
        above=False,
        unit="suffix:x",
        levels=Levels(3.0, 1.5, "15m", "15m", min_rate=0.1),
        by=("namespace",),
        record="perf_app_cache_request_seconds:speedup_rate{w}",
        formula=CACHE_SPEEDUP,
        meaning="A cached call that hits is not much faster than one that misses and does the "
        "work (the application aims at 3-5x): the cache costs memory and a round trip without "
        "saving much.",
        diagnosis="Compare mean hit and miss time of the namespace on the pools dashboard; a slow "
        "hit points at Redis latency or large values, a fast miss at work that is cheap anyway.",
        mitigation="Cache something more expensive (the whole response, not one query), shrink "
        "the values, or stop caching what is cheap to compute.",
    ),
    Signal(
        key="postgres_connection_utilisation",
        question="pools",
        title="PostgreSQL connection utilisation",
        alert="PerfPostgresConnectionsSaturated",
        above=True,
        unit="percentunit",
        levels=Levels(0.80, 0.90),
        record="perf_postgres_connections:utilisation",
        formula=CONNECTIONS_OF_USABLE,
        meaning="Connections approach max_connections minus the superuser reserve; new "
        "connections will fail with 'too many clients'.",
        diagnosis="See connections by state and application on the PostgreSQL dashboard; many "
        "idle connections point at oversized pools, idle in transaction at leaks.",
        mitigation="Shrink application pools or put PgBouncer in front, fix transactions left "
        "open, and only then raise max_connections.",
    ),
    Signal(
        key="pgbouncer_waiting_clients",
        question="pools",
        title="PgBouncer waiting clients",
        alert="PerfPgBouncerClientsWaiting",
        above=True,
        unit="short",
        levels=Levels(0, 10, "2m", "2m"),
        by=("pool",),
        record="perf_pgbouncer_clients_waiting:sum",
        formula=gauge_sum("perf_pgbouncer_clients", state="waiting"),
        meaning="Clients queue for a server connection: the pool is too small for the load or "
        "server connections are held too long.",
        diagnosis="Compare active servers with the pool size and look at query time on the "
        "PgBouncer dashboard.",
        mitigation="Raise default_pool_size within PostgreSQL's budget, shorten transactions, or "
        "use transaction pooling.",
    ),
    Signal(
        key="pgbouncer_max_wait",
        question="pools",
        title="PgBouncer longest client wait",
        alert="PerfPgBouncerMaxWaitHigh",
        above=True,
        unit="s",
        levels=Levels(0.1, 1.0, "2m", "2m"),
        by=("pool",),
        record="perf_pgbouncer_max_wait_seconds:max",
        formula=gauge_max("perf_pgbouncer_max_wait_seconds"),
        meaning="The oldest waiting client has waited this long for a server connection; every "
        "request through this pool pays it.",
        diagnosis="Same as waiting clients: pool size against active servers and query time.",
        mitigation="Raise the pool size or shorten what holds server connections.",
    ),
    Signal(
        key="app_pool_utilisation",
        question="pools",
        title="Application pool utilisation",
        alert="PerfAppPoolSaturated",
        above=True,
        unit="percentunit",
        levels=Levels(0.80, 0.95),
        by=("pool",),
        record="perf_app_pool:utilisation",
        formula=POOL_BUSY_OF_MAX,
        meaning="Almost every connection of the application's asyncpg pool is busy; the next "
        "requests will wait in acquire().",
        diagnosis="Check acquire latency and waiters, then slow statements holding connections.",
        mitigation="Fix the slow statements, release connections before slow non-database work, "
        "or raise max_size if PostgreSQL has room.",
    ),
    Signal(
        key="app_pool_waiting",
        question="pools",
        title="Application pool waiters",
        alert="PerfAppPoolWaiters",
        above=True,
        unit="short",
        levels=Levels(0, 5, "2m", "2m"),
        by=("pool",),
        record="perf_app_pool_acquire_waiting:sum",
        formula=gauge_sum("perf_app_pool_acquire_waiting"),
        meaning="Requests are waiting for a connection from the application's pool.",
        diagnosis="See pool utilisation and acquire latency on the pools dashboard.",
        mitigation="As for a saturated pool.",
    ),
    Signal(
        key="app_pool_acquire_p99",
        question="pools",
        title="Application pool acquire latency p99",
        alert="PerfAppPoolAcquireSlow",
        above=True,
        unit="s",
        levels=Levels(0.05, 0.5),
        by=("pool",),
        record="perf_app_pool_acquire_seconds:p99_rate{w}",
        formula=p99("perf_app_pool_acquire_seconds_bucket"),
        meaning="Getting a connection from the pool takes long; it adds to every request's "
        "latency and ends in acquire timeouts.",
        diagnosis="See pool utilisation and waiters; check PostgreSQL connection saturation.",
        mitigation="As for a saturated pool.",
    ),
    Signal(
        key="postgres_probe_p99",
        question="queries",
        title="PostgreSQL probe latency p99",
        alert="PerfPostgresProbeSlow",
        above=True,
        unit="s",
        levels=Levels(0.05, 0.2),
        record="perf_postgres_probe_duration_seconds:p99_rate{w}",
        formula=p99("perf_postgres_probe_duration_seconds_bucket"),
        meaning="A trivial SELECT 1 round trip is slow: the server, the network or the host is "
        "overloaded.",
        diagnosis="Check host CPU and load, PostgreSQL connections and locks, and network.",
        mitigation="Remove the overload (runaway queries, CPU contention) before tuning queries.",
    ),
    Signal(
        key="redis_probe_p99",
        question="queries",
        title="Redis probe latency p99",
        alert="PerfRedisProbeSlow",
        above=True,
        unit="s",
        levels=Levels(0.01, 0.05),
        record="perf_redis_probe_duration_seconds:p99_rate{w}",
        formula=p99("perf_redis_probe_duration_seconds_bucket"),
        meaning="A PING round trip is slow: Redis is busy with slow commands, swapping or "
        "persisting, or the network is congested.",
        diagnosis="Look at command latency and calls on the Redis dashboard (KEYS, large "
        "SMEMBERS, Lua scripts) and at the host.",
        mitigation="Replace slow commands (SCAN instead of KEYS), spread large values, move "
        "persistence off the hot instance.",
    ),
    Signal(
        key="redis_command_p99",
        question="queries",
        title="Redis command latency p99",
        alert="PerfRedisCommandSlow",
        above=True,
        unit="s",
        levels=Levels(0.005, 0.05),
        by=("cmd",),
        record="perf_redis_command_latency_seconds:p99_rate{w}",
        formula=p99("perf_redis_command_latency_seconds_bucket"),
        meaning="A command's own execution time inside Redis (LATENCY HISTOGRAM, Redis 7+ and "
        "Valkey, network excluded) is slow now: a cache that should answer in microseconds "
        "holds every other client up, Redis being single-threaded.",
        diagnosis="Which cmd it is on the Redis dashboard; the slowlog entries per command "
        "show the calls that took longest (SLOWLOG GET, COMMANDLOG on Valkey).",
        mitigation="Replace O(N) calls on large keys (KEYS, SMEMBERS, HGETALL, LRANGE 0 -1) "
        "by SCAN-style or bounded ones, split large values, move Lua work to the application.",
    ),
    Signal(
        key="postgres_statement_mean_latency",
        question="queries",
        title="PostgreSQL statement mean latency",
        alert="PerfPostgresStatementSlow",
        above=True,
        unit="s",
        levels=Levels(0.1, 0.5, "10m", "10m"),
        # a statement is a queryid per database and role, as pg_stat_statements keeps it
        by=("datname", "queryid", "user"),
        record="perf_postgres_statement_exec_seconds:mean_rate{w}",
        formula=counter_quotient(
            "perf_postgres_statement_exec_seconds_total", "perf_postgres_statement_calls_total"
        ),
        meaning="A statement's mean execution time over the window (execution seconds over calls, "
        "both rates of counters) exceeds what a cached endpoint can afford.",
        diagnosis="Find the queryid on the PostgreSQL dashboard (enable statement_text to see the "
        "text) and EXPLAIN ANALYZE it.",
        mitigation="Add the index it needs, cache its result, or rewrite it.",
    ),
    Signal(
        key="postgres_statement_slowdown",
        question="queries",
        title="PostgreSQL statement slower than a day ago",
        alert="PerfPostgresStatementSlower",
        above=True,
        unit="suffix:x",
        levels=Levels(2, 4, "10m", "10m"),
        by=("datname", "queryid", "user"),
        record="perf_postgres_statement_exec_seconds:mean_rate30m_vs_1d",
        formula=STATEMENT_SLOWDOWN,
        meaning="A statement's mean execution time over the last 30 minutes is this many times "
        "its mean over the same 30 minutes a day earlier, with enough calls in both (the "
        "statement_min_calls_now and statement_min_calls_before thresholds): a plan changed, "
        "a table grew past an index, or it now waits on something.",
        diagnosis="Find the queryid in the statements table of the PostgreSQL dashboard (mean, "
        "change against a day ago, main wait type), then /summary's slow_statements and "
        "blocking for what it waits on now; EXPLAIN ANALYZE it.",
        mitigation="Lock waits: end or shorten the blocking transaction. IO or CPU: restore "
        "the plan (ANALYZE, the missing index) or cache the result.",
    ),
    Signal(
        key="postgres_lock_blocking",
        question="queries",
        title="PostgreSQL longest lock wait",
        alert="PerfPostgresLockBlocking",
        above=True,
        unit="s",
        levels=Levels(10, 60, "1m", "1m"),
        by=("datname",),
        record="perf_postgres_blocked_max_seconds:max",
        formula=gauge_max("perf_postgres_blocked_max_seconds"),
        meaning="A session has waited this long for a lock another session holds; the "
        "application's requests behind it stall (at 60 s asyncpg's command_timeout fails "
        "them).",
        diagnosis="/summary's blocking chains name the root session (pid, application_name, "
        "state, transaction age, queryid) and how many wait behind it.",
        mitigation="End the root (pg_cancel_backend, then pg_terminate_backend), then fix what "
        "holds the lock: a long transaction, an idle in transaction session, DDL at peak time; "
        "set lock_timeout for migrations.",
    ),
    Signal(
        key="postgres_database_load",
        question="resources",
        title="PostgreSQL database load per CPU",
        alert="PerfPostgresDatabaseLoadHigh",
        above=True,
        unit="percentunit",
        levels=Levels(1.0, 2.0, "10m", "10m"),
        record="perf_postgres_active_sessions:per_cpu_rate{w}",
        formula=DATABASE_LOAD,
        meaning="Average active sessions (sampled from pg_stat_activity: running or waiting) "
        "over the server's CPU count (perf_postgres_server_cpus, or the "
        "load_sessions_without_cpus threshold when unknown). Above 100 % sessions queue for "
        "CPU or wait on IO and locks.",
        diagnosis="Database load by wait event type on the PostgreSQL dashboard: CPU means too "
        "much work, IO missing cache or indexes, Lock blocking sessions.",
        mitigation="Remove the top statements' work (indexes, caching), end blockers, or give "
        "the server more CPU.",
    ),
    Signal(
        key="postgres_longest_transaction",
        question="queries",
        title="PostgreSQL longest running transaction",
        alert="PerfPostgresLongTransaction",
        above=True,
        unit="s",
        levels=Levels(300, 1800, "1m", "1m"),
        record="perf_postgres_transaction_max_age_seconds:max",
        formula=gauge_max("perf_postgres_transaction_max_age_seconds"),
        meaning="A transaction has been open for long: it holds locks and stops vacuum from "
        "removing dead rows.",
        diagnosis="Find it in pg_stat_activity ordered by xact_start.",
        mitigation="End it (pg_cancel_backend, then pg_terminate_backend) and fix the code path "
        "that keeps it open.",
    ),
    Signal(
        key="postgres_idle_in_transaction",
        question="queries",
        title="PostgreSQL longest idle in transaction",
        alert="PerfPostgresIdleInTransaction",
        above=True,
        unit="s",
        levels=Levels(60, 600, "1m", "1m"),
        record="perf_postgres_idle_in_transaction_max_age_seconds:max",
        formula=gauge_max("perf_postgres_idle_in_transaction_max_age_seconds"),
        meaning="A session opened a transaction and went idle: a connection leak in the "
        "application that also holds locks.",
        diagnosis="pg_stat_activity where state = 'idle in transaction', by application_name.",
        mitigation="Set idle_in_transaction_session_timeout and fix the code that forgets to "
        "commit.",
    ),
    Signal(
        key="postgres_xid_wraparound",
        question="resources",
        title="PostgreSQL transaction ID age of its freeze limit",
        alert="PerfPostgresXidWraparound",
        above=True,
        unit="percentunit",
        levels=Levels(0.50, 0.80, "15m", "15m"),
        record="perf_postgres_database_xid_age:ratio_max",
        formula=gauge_quotient(
            "perf_postgres_database_xid_age", "perf_postgres_autovacuum_freeze_max_age"
        ),
        meaning="The oldest unfrozen transaction ID of a database is this share of "
        "autovacuum_freeze_max_age old. At 100 % autovacuum runs aggressive anti-wraparound "
        "vacuums on every old table; near 2^31 transactions PostgreSQL stops accepting writes.",
        diagnosis="perf_postgres_database_xid_age per database on the PostgreSQL dashboard; in "
        "that database, SELECT relname, age(relfrozenxid) FROM pg_class ORDER BY 2 DESC. Look for "
        "what holds the xmin horizon back: long transactions, prepared transactions, stale "
        "replication slots, vacuums in progress that never finish.",
        mitigation="End the long transaction or drop the stale slot, then VACUUM (FREEZE) the "
        "oldest tables; make autovacuum keep up (autovacuum_vacuum_cost_limit, more workers).",
    ),
    Signal(
        key="redis_memory_utilisation",
        question="resources",
        title="Redis memory utilisation",
        alert="PerfRedisMemoryHigh",
        above=True,
        unit="percentunit",
        levels=Levels(0.80, 0.95),
        record="perf_redis_memory_used_bytes:ratio_max",
        formula=gauge_quotient(
            "perf_redis_memory_used_bytes", "perf_redis_memory_max_bytes", limited=True
        ),
        meaning="Redis is close to maxmemory; it will evict keys or refuse writes depending on "
        "maxmemory-policy.",
        diagnosis="Memory per namespace and keys without TTL on the Redis dashboard.",
        mitigation="Set TTLs on keys that never expire, raise maxmemory, or use an allkeys "
        "eviction policy for a pure cache.",
    ),
    Signal(
        key="redis_evictions",
        question="resources",
        title="Redis evictions",
        alert="PerfRedisEvictions",
        above=True,
        unit="ops",
        levels=Levels(0, 10),
        record="perf_redis_evicted_keys:rate{w}",
        formula=counter_rate("perf_redis_evicted_keys_total"),
        meaning="Redis evicts keys to stay under maxmemory: cached values disappear before their "
        "TTL and the hit ratio drops.",
        diagnosis="Memory utilisation and namespaces without TTL.",
        mitigation="As for high Redis memory.",
    ),
    Signal(
        key="redis_rejected_connections",
        question="resources",
        title="Redis rejected connections",
        alert="PerfRedisRejectedConnections",
        above=True,
        unit="ops",
        levels=Levels(0, 1, "1m", "1m"),
        record="perf_redis_rejected_connections:rate{w}",
        formula=counter_rate("perf_redis_rejected_connections_total"),
        meaning="Redis refuses connections because maxclients is reached; the application falls "
        "back to its in-memory cache or fails.",
        diagnosis="Connected clients against maxclients; which clients leak connections.",
        mitigation="Use a bounded connection pool in every client and raise maxclients.",
    ),
    Signal(
        key="host_cpu_utilisation",
        question="resources",
        title="Host CPU utilisation",
        alert="PerfHostCpuHigh",
        above=True,
        unit="percentunit",
        levels=Levels(0.80, 0.95, "15m", "15m"),
        record="perf_host_cpu_utilisation:rate{w}",
        formula=CPU_BUSY,
        meaning="The host's CPUs are nearly always busy; every request queues for CPU.",
        diagnosis="Load average against CPU count; which process uses the CPU (top).",
        mitigation="Find the hot process, scale out, or give the host more CPU.",
    ),
    Signal(
        key="host_memory_utilisation",
        question="resources",
        title="Host memory utilisation",
        alert="PerfHostMemoryHigh",
        above=True,
        unit="percentunit",
        levels=Levels(0.90, 0.95, "15m", "15m"),
        record="perf_host_memory_utilisation:ratio",
        formula=gauge_quotient(
            "perf_host_memory_available_bytes", "perf_host_memory_total_bytes", busy=True
        ),
        meaning="Little memory is available; the kernel will swap or kill processes.",
        diagnosis="Which process grows (a leak shows as steady growth), swap usage.",
        mitigation="Restart the leaking process and fix the leak, or add memory.",
    ),
    Signal(
        key="host_cgroup_memory_utilisation",
        question="resources",
        title="Container memory utilisation",
        alert="PerfHostCgroupMemoryHigh",
        above=True,
        unit="percentunit",
        levels=Levels(0.90, 0.95, "15m", "15m"),
        record="perf_host_cgroup_memory:ratio",
        formula=gauge_quotient(
            "perf_host_cgroup_memory_current_bytes",
            "perf_host_cgroup_memory_max_bytes",
            limited=True,
        ),
        meaning="The container uses most of its memory limit; the OOM killer is next.",
        diagnosis="Memory of the processes in the container over time.",
        mitigation="Fix the growth or raise the container's memory limit.",
    ),
    Signal(
        key="host_memory_pressure",
        question="resources",
        title="Host memory pressure (all tasks stalled)",
        alert="PerfHostMemoryPressure",
        above=True,
        unit="percentunit",
        levels=Levels(0.05, 0.20, "10m", "10m"),
        by=("scope",),
        record="perf_host_pressure_memory_stalled:ratio_rate{w}",
        formula=counter_rate("perf_host_pressure_memory_stalled_seconds_total"),
        meaning="Out of room is pressure, not only utilisation: this share of the time every "
        "runnable task of the host (scope=host) or the daemon's cgroup (scope=cgroup) stalled "
        "on memory (reclaim, swap-in, refaults), while memory utilisation may still look fine.",
        diagnosis="Memory and swap on the host dashboard, the cgroup's limit against its "
        "usage, page cache being thrown out (PostgreSQL and Redis reads from disk again).",
        mitigation="Give the host or container more memory, lower what the processes hold "
        "(shared_buffers, work_mem, Redis maxmemory) or move a workload elsewhere.",
    ),
    Signal(
        key="host_io_pressure",
        question="resources",
        title="Host I/O pressure (all tasks stalled)",
        alert="PerfHostIoPressure",
        above=True,
        unit="percentunit",
        levels=Levels(0.10, 0.30, "10m", "10m"),
        by=("scope",),
        record="perf_host_pressure_io_stalled:ratio_rate{w}",
        formula=counter_rate("perf_host_pressure_io_stalled_seconds_total"),
        meaning="This share of the time every runnable task waited for I/O at once: queries "
        "and persistence (WAL, RDB/AOF) queue on the disk even when its throughput looks "
        "moderate.",
        diagnosis="Disk I/O time and bytes on the host dashboard; checkpoints, vacuum, RDB "
        "saves or a noisy neighbour on shared storage.",
        mitigation="Spread checkpoints (checkpoint_completion_target), move persistence off "
        "the hot volume, or give the volume more IOPS.",
    ),
    Signal(
        key="host_filesystem_avail_ratio",
        question="resources",
        title="Filesystem space available",
        alert="PerfHostFilesystemAlmostFull",
        above=False,
        unit="percentunit",
        levels=Levels(0.05, 0.03, "30m", "30m"),
        by=("mountpoint",),
        record="perf_host_filesystem_avail:ratio",
        formula=gauge_quotient(
            "perf_host_filesystem_avail_bytes", "perf_host_filesystem_size_bytes"
        ),
        meaning="The filesystem is nearly full; PostgreSQL and Redis persistence fail when it is.",
        diagnosis="du on the mountpoint: WAL, logs, RDB/AOF files, temp files.",
        mitigation="Remove what is not needed (old logs, stale WAL from a dead replication slot) "
        "and grow the volume.",
    ),
    Signal(
        key="host_filesystem_fill_hours",
        question="resources",
        title="Filesystem predicted full in",
        alert="PerfHostFilesystemFillingUp",
        above=False,
        unit="h",
        levels=Levels(24, 4, "1h", "1h"),
        by=("mountpoint",),
        record="perf_host_filesystem_hours_until_full:deriv",
        formula=HOURS_UNTIL_FULL,
        meaning="At the current rate of growth the filesystem is full within this many hours.",
        diagnosis="What is growing on the mountpoint (du, the dashboard's fill trend).",
        mitigation="Stop the growth or grow the volume before it is full.",
    ),
    Signal(
        key="exporter_collector_success",
        question="exporter",
        title="Collector success",
        alert="PerfExporterCollectorFailing",
        above=False,
        unit="short",
        levels=Levels(1, 1, "5m", "15m"),
        by=("collector", "target"),
        record="perf_exporter_collector_success:min",
        formula=gauge_min("perf_exporter_collector_success"),
        meaning="The exporter cannot sample this target: it is down, refuses the exporter's "
        "credentials, or times out. Its series are absent meanwhile.",
        diagnosis="The exporter's log says why once per state change; "
        "perf_exporter_collector_errors_total gives the reason.",
        mitigation="Bring the target back or fix the exporter's credentials or timeout.",
    ),
    Signal(
        key="exporter_collector_staleness",
        question="exporter",
        title="Time since last successful collection",
        alert="PerfExporterCollectorStale",
        above=True,
        unit="s",
        levels=Levels(120, 600, "5m", "5m"),
        by=("collector", "target"),
        record="perf_exporter_collector_last_success:age",
        formula=SECONDS_SINCE_SUCCESS,
        meaning="The last good sample of this target is old: dashboards and the summary show a "
        "gap.",
        diagnosis="As for a failing collector.",
        mitigation="As for a failing collector.",
    ),
)

BY_KEY: dict[str, Signal] = {s.key: s for s in SIGNALS}
