"""The signals of the performance summary: what each measures, as PromQL, and what it means.

One entry per signal; the rule, dashboard, runbook and /summary generators all read this list
with a :class:`~exporter.mixin.thresholds.Thresholds`, so a signal is defined exactly once.
Expressions are built from a :class:`Query` context: the rules pass the configured selector and
rate window, the dashboards pass Grafana variables and ``$__rate_interval``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Labels every remote-source series carries after the scrape.
REMOTE = ("job", "instance", "target")
LOCAL = ("job", "instance")
WAITING = 'state="waiting"'
IDLE = 'mode="idle"'


@dataclass(frozen=True)
class Query:
    """Selector and windows one rendering of the expressions uses."""

    selector: str
    window: str
    predict_window: str

    def m(self, name: str, extra: str = "") -> str:
        """``name{selector, extra}``."""
        matchers = ", ".join(part for part in (self.selector, extra) if part)
        return f"{name}{{{matchers}}}"

    def rate(self, name: str, extra: str = "") -> str:
        return f"rate({self.m(name, extra)}[{self.window}])"


def _by(labels: tuple[str, ...]) -> str:
    return ", ".join(labels)


def _ratio(q: Query, good: str, bad: str, by: tuple[str, ...]) -> str:
    g = f"sum by ({_by(by)}) ({q.rate(good)})"
    b = f"sum by ({_by(by)}) ({q.rate(bad)})"
    return f"{g} / ({g} + {b})"


def _p99(q: Query, bucket: str, by: tuple[str, ...]) -> str:
    return f"histogram_quantile(0.99, sum by ({_by((*by, 'le'))}) ({q.rate(bucket)}))"


@dataclass(frozen=True)
class Signal:
    """One thing the summary judges; ``key`` names its levels in Thresholds."""

    key: str
    source: str  # postgres | redis | app | pgbouncer | host | exporter
    title: str
    alert: str
    #: True when values above the levels are bad, False when values below them are.
    above: bool
    #: Grafana unit id; also decides how values are printed (percentunit, s, short, ops, h).
    unit: str
    #: Labels identifying one series of the result (job and instance included).
    labels: tuple[str, ...]
    record: str
    build: Callable[[Query, tuple[str, ...]], str]
    metrics: tuple[str, ...]
    meaning: str
    diagnosis: str
    mitigation: str

    @property
    def anchor(self) -> str:
        return self.alert.lower()

    @property
    def remote(self) -> bool:
        """Whether the series come from a remote source (and dashboards filter on target)."""
        return self.source not in ("host", "exporter")

    def expr(self, q: Query) -> str:
        return self.build(q, self.labels)

    def record_name(self, window: str) -> str:
        return self.record.replace("{w}", window)


SIGNALS: tuple[Signal, ...] = (
    Signal(
        key="postgres_cache_hit_ratio",
        source="postgres",
        title="PostgreSQL buffer cache hit ratio",
        alert="PerfPostgresCacheHitRatioLow",
        above=False,
        unit="percentunit",
        labels=REMOTE,
        record="job_instance_target:perf_postgres_blocks_hit:ratio_rate{w}",
        build=lambda q, by: _ratio(
            q, "perf_postgres_blocks_hit_total", "perf_postgres_blocks_read_total", by
        ),
        metrics=("perf_postgres_blocks_hit_total", "perf_postgres_blocks_read_total"),
        meaning="Reads are served from disk instead of shared_buffers: queries slow down and "
        "the disk gets busy.",
        diagnosis="Compare the hit ratio per database and the tables with most reads on the "
        "PostgreSQL dashboard; look for new sequential scans over large tables.",
        mitigation="Add the missing index the summary recommends, raise shared_buffers if the "
        "working set grew, or move the scan off the hot path.",
    ),
    Signal(
        key="redis_hit_ratio",
        source="redis",
        title="Redis keyspace hit ratio",
        alert="PerfRedisHitRatioLow",
        above=False,
        unit="percentunit",
        labels=REMOTE,
        record="job_instance_target:perf_redis_keyspace_hit:ratio_rate{w}",
        build=lambda q, by: _ratio(
            q, "perf_redis_keyspace_hits_total", "perf_redis_keyspace_misses_total", by
        ),
        metrics=("perf_redis_keyspace_hits_total", "perf_redis_keyspace_misses_total"),
        meaning="Most cache lookups miss, so requests fall through to PostgreSQL and the API "
        "gets slower (the application aims at 70-90 % hits).",
        diagnosis="Check evictions and memory on the Redis dashboard, TTLs per namespace and "
        "whether a deploy changed cache keys or flushed the cache.",
        mitigation="Give Redis more maxmemory if it evicts, lengthen TTLs of hot namespaces, or "
        "fix keys that vary per request (timestamps, unsorted parameters).",
    ),
    Signal(
        key="app_cache_hit_ratio",
        source="app",
        title="Application cache hit ratio",
        alert="PerfAppCacheHitRatioLow",
        above=False,
        unit="percentunit",
        labels=(*REMOTE, "namespace"),
        record="job_instance_target_namespace:perf_app_cache_hit:ratio_rate{w}",
        build=lambda q, by: _ratio(
            q, "perf_app_cache_hits_total", "perf_app_cache_misses_total", by
        ),
        metrics=("perf_app_cache_hits_total", "perf_app_cache_misses_total"),
        meaning="One cache namespace of the application mostly misses; the work it should save "
        "is done on every request.",
        diagnosis="Find the namespace on the app dashboard; compare with its TTL and with "
        "invalidations done by the application.",
        mitigation="Lengthen the namespace's TTL, stop invalidating it on unrelated writes, or "
        "stop caching values that are never read twice.",
    ),
    Signal(
        key="postgres_connection_utilisation",
        source="postgres",
        title="PostgreSQL connection utilisation",
        alert="PerfPostgresConnectionsSaturated",
        above=True,
        unit="percentunit",
        labels=REMOTE,
        record="job_instance_target:perf_postgres_connections:utilisation",
        build=lambda q, by: (
            f"sum by ({_by(by)}) ({q.m('perf_postgres_connections')}) / on ({_by(by)}) "
            f"(max by ({_by(by)}) ({q.m('perf_postgres_max_connections')}) - on ({_by(by)}) "
            f"max by ({_by(by)}) ({q.m('perf_postgres_superuser_reserved_connections')}))"
        ),
        metrics=(
            "perf_postgres_connections",
            "perf_postgres_max_connections",
            "perf_postgres_superuser_reserved_connections",
        ),
        meaning="Connections approach max_connections minus the superuser reserve; new "
        "connections will fail with 'too many clients'.",
        diagnosis="See connections by state and application on the PostgreSQL dashboard; many "
        "idle connections point at oversized pools, idle in transaction at leaks.",
        mitigation="Shrink application pools or put PgBouncer in front, fix transactions left "
        "open, and only then raise max_connections.",
    ),
    Signal(
        key="pgbouncer_waiting_clients",
        source="pgbouncer",
        title="PgBouncer waiting clients",
        alert="PerfPgBouncerClientsWaiting",
        above=True,
        unit="short",
        labels=(*REMOTE, "pool"),
        record="job_instance_target_pool:perf_pgbouncer_clients_waiting:sum",
        build=lambda q, by: f"sum by ({_by(by)}) ({q.m('perf_pgbouncer_clients', WAITING)})",
        metrics=("perf_pgbouncer_clients",),
        meaning="Clients queue for a server connection: the pool is too small for the load or "
        "server connections are held too long.",
        diagnosis="Compare active servers with the pool size and look at query time on the "
        "PgBouncer dashboard.",
        mitigation="Raise default_pool_size within PostgreSQL's budget, shorten transactions, or "
        "use transaction pooling.",
    ),
    Signal(
        key="pgbouncer_max_wait",
        source="pgbouncer",
        title="PgBouncer longest client wait",
        alert="PerfPgBouncerMaxWaitHigh",
        above=True,
        unit="s",
        labels=(*REMOTE, "pool"),
        record="job_instance_target_pool:perf_pgbouncer_max_wait_seconds:max",
        build=lambda q, by: f"max by ({_by(by)}) ({q.m('perf_pgbouncer_max_wait_seconds')})",
        metrics=("perf_pgbouncer_max_wait_seconds",),
        meaning="The oldest waiting client has waited this long for a server connection; every "
        "request through this pool pays it.",
        diagnosis="Same as waiting clients: pool size against active servers and query time.",
        mitigation="Raise the pool size or shorten what holds server connections.",
    ),
    Signal(
        key="app_pool_utilisation",
        source="app",
        title="Application pool utilisation",
        alert="PerfAppPoolSaturated",
        above=True,
        unit="percentunit",
        labels=(*REMOTE, "pool"),
        record="job_instance_target_pool:perf_app_pool:utilisation",
        build=lambda q, by: (
            f"(sum by ({_by(by)}) ({q.m('perf_app_pool_size')}) - sum by ({_by(by)}) "
            f"({q.m('perf_app_pool_idle')})) / sum by ({_by(by)}) ({q.m('perf_app_pool_max')})"
        ),
        metrics=("perf_app_pool_size", "perf_app_pool_idle", "perf_app_pool_max"),
        meaning="Almost every connection of the application's asyncpg pool is busy; the next "
        "requests will wait in acquire().",
        diagnosis="Check acquire latency and waiters, then slow statements holding connections.",
        mitigation="Fix the slow statements, release connections before slow non-database work, "
        "or raise max_size if PostgreSQL has room.",
    ),
    Signal(
        key="app_pool_waiting",
        source="app",
        title="Application pool waiters",
        alert="PerfAppPoolWaiters",
        above=True,
        unit="short",
        labels=(*REMOTE, "pool"),
        record="job_instance_target_pool:perf_app_pool_acquire_waiting:sum",
        build=lambda q, by: f"sum by ({_by(by)}) ({q.m('perf_app_pool_acquire_waiting')})",
        metrics=("perf_app_pool_acquire_waiting",),
        meaning="Requests are waiting for a connection from the application's pool.",
        diagnosis="See pool utilisation and acquire latency on the pools dashboard.",
        mitigation="As for a saturated pool.",
    ),
    Signal(
        key="app_pool_acquire_p99",
        source="app",
        title="Application pool acquire latency p99",
        alert="PerfAppPoolAcquireSlow",
        above=True,
        unit="s",
        labels=(*REMOTE, "pool"),
        record="job_instance_target_pool:perf_app_pool_acquire_seconds:p99_rate{w}",
        build=lambda q, by: _p99(q, "perf_app_pool_acquire_seconds_bucket", by),
        metrics=("perf_app_pool_acquire_seconds_bucket",),
        meaning="Getting a connection from the pool takes long; it adds to every request's "
        "latency and ends in acquire timeouts.",
        diagnosis="See pool utilisation and waiters; check PostgreSQL connection saturation.",
        mitigation="As for a saturated pool.",
    ),
    Signal(
        key="postgres_probe_p99",
        source="postgres",
        title="PostgreSQL probe latency p99",
        alert="PerfPostgresProbeSlow",
        above=True,
        unit="s",
        labels=REMOTE,
        record="job_instance_target:perf_postgres_probe_duration_seconds:p99_rate{w}",
        build=lambda q, by: _p99(q, "perf_postgres_probe_duration_seconds_bucket", by),
        metrics=("perf_postgres_probe_duration_seconds_bucket",),
        meaning="A trivial SELECT 1 round trip is slow: the server, the network or the host "
        "is overloaded.",
        diagnosis="Check host CPU and load, PostgreSQL connections and locks, and network.",
        mitigation="Remove the overload (runaway queries, CPU contention) before tuning queries.",
    ),
    Signal(
        key="redis_probe_p99",
        source="redis",
        title="Redis probe latency p99",
        alert="PerfRedisProbeSlow",
        above=True,
        unit="s",
        labels=REMOTE,
        record="job_instance_target:perf_redis_probe_duration_seconds:p99_rate{w}",
        build=lambda q, by: _p99(q, "perf_redis_probe_duration_seconds_bucket", by),
        metrics=("perf_redis_probe_duration_seconds_bucket",),
        meaning="A PING round trip is slow: Redis is busy with slow commands, swapping or "
        "persisting, or the network is congested.",
        diagnosis="Look at command latency and calls on the Redis dashboard (KEYS, large "
        "SMEMBERS, Lua scripts) and at the host.",
        mitigation="Replace slow commands (SCAN instead of KEYS), spread large values, move "
        "persistence off the hot instance.",
    ),
    Signal(
        key="postgres_statement_mean_latency",
        source="postgres",
        title="PostgreSQL statement mean latency",
        alert="PerfPostgresStatementSlow",
        above=True,
        unit="s",
        labels=(*REMOTE, "datname", "queryid"),
        record="job_instance_target_datname_queryid:perf_postgres_statement_exec_seconds:mean_rate{w}",
        build=lambda q, by: (
            f"sum by ({_by(by)}) ({q.rate('perf_postgres_statement_exec_seconds_total')}) / "
            f"sum by ({_by(by)}) ({q.rate('perf_postgres_statement_calls_total')})"
        ),
        metrics=(
            "perf_postgres_statement_exec_seconds_total",
            "perf_postgres_statement_calls_total",
        ),
        meaning="A statement's mean execution time over the window (execution seconds over "
        "calls, both rates of counters) exceeds what a cached endpoint can afford.",
        diagnosis="Find the queryid on the PostgreSQL dashboard (enable statement_text to see "
        "the text) and EXPLAIN ANALYZE it.",
        mitigation="Add the index it needs, cache its result, or rewrite it.",
    ),
    Signal(
        key="postgres_longest_transaction",
        source="postgres",
        title="PostgreSQL longest running transaction",
        alert="PerfPostgresLongTransaction",
        above=True,
        unit="s",
        labels=REMOTE,
        record="job_instance_target:perf_postgres_transaction_max_age_seconds:max",
        build=lambda q, by: (
            f"max by ({_by(by)}) ({q.m('perf_postgres_transaction_max_age_seconds')})"
        ),
        metrics=("perf_postgres_transaction_max_age_seconds",),
        meaning="A transaction has been open for long: it holds locks and stops vacuum from "
        "removing dead rows.",
        diagnosis="Find it in pg_stat_activity ordered by xact_start.",
        mitigation="End it (pg_cancel_backend, then pg_terminate_backend) and fix the code path "
        "that keeps it open.",
    ),
    Signal(
        key="postgres_idle_in_transaction",
        source="postgres",
        title="PostgreSQL longest idle in transaction",
        alert="PerfPostgresIdleInTransaction",
        above=True,
        unit="s",
        labels=REMOTE,
        record="job_instance_target:perf_postgres_idle_in_transaction_max_age_seconds:max",
        build=lambda q, by: (
            f"max by ({_by(by)}) ({q.m('perf_postgres_idle_in_transaction_max_age_seconds')})"
        ),
        metrics=("perf_postgres_idle_in_transaction_max_age_seconds",),
        meaning="A session opened a transaction and went idle: a connection leak in the "
        "application that also holds locks.",
        diagnosis="pg_stat_activity where state = 'idle in transaction', by application_name.",
        mitigation="Set idle_in_transaction_session_timeout and fix the code that forgets to "
        "commit.",
    ),
    Signal(
        key="redis_memory_utilisation",
        source="redis",
        title="Redis memory utilisation",
        alert="PerfRedisMemoryHigh",
        above=True,
        unit="percentunit",
        labels=REMOTE,
        record="job_instance_target:perf_redis_memory_used_bytes:ratio_max",
        # maxmemory 0 means unlimited: the > 0 filter drops those targets instead of dividing by 0
        build=lambda q, by: (
            f"max by ({_by(by)}) ({q.m('perf_redis_memory_used_bytes')}) / "
            f"(max by ({_by(by)}) ({q.m('perf_redis_memory_max_bytes')}) > 0)"
        ),
        metrics=("perf_redis_memory_used_bytes", "perf_redis_memory_max_bytes"),
        meaning="Redis is close to maxmemory; it will evict keys or refuse writes depending on "
        "maxmemory-policy.",
        diagnosis="Memory per namespace and keys without TTL on the Redis dashboard.",
        mitigation="Set TTLs on keys that never expire, raise maxmemory, or use an allkeys "
        "eviction policy for a pure cache.",
    ),
    Signal(
        key="redis_evictions",
        source="redis",
        title="Redis evictions",
        alert="PerfRedisEvictions",
        above=True,
        unit="ops",
        labels=REMOTE,
        record="job_instance_target:perf_redis_evicted_keys:rate{w}",
        build=lambda q, by: f"sum by ({_by(by)}) ({q.rate('perf_redis_evicted_keys_total')})",
        metrics=("perf_redis_evicted_keys_total",),
        meaning="Redis evicts keys to stay under maxmemory: cached values disappear before "
        "their TTL and the hit ratio drops.",
        diagnosis="Memory utilisation and namespaces without TTL.",
        mitigation="As for high Redis memory.",
    ),
    Signal(
        key="redis_rejected_connections",
        source="redis",
        title="Redis rejected connections",
        alert="PerfRedisRejectedConnections",
        above=True,
        unit="ops",
        labels=REMOTE,
        record="job_instance_target:perf_redis_rejected_connections:rate{w}",
        build=lambda q, by: (
            f"sum by ({_by(by)}) ({q.rate('perf_redis_rejected_connections_total')})"
        ),
        metrics=("perf_redis_rejected_connections_total",),
        meaning="Redis refuses connections because maxclients is reached; the application "
        "falls back to its in-memory cache or fails.",
        diagnosis="Connected clients against maxclients; which clients leak connections.",
        mitigation="Use a bounded connection pool in every client and raise maxclients.",
    ),
    Signal(
        key="host_cpu_utilisation",
        source="host",
        title="Host CPU utilisation",
        alert="PerfHostCpuHigh",
        above=True,
        unit="percentunit",
        labels=LOCAL,
        record="job_instance:perf_host_cpu_utilisation:rate{w}",
        build=lambda q, by: (
            f"1 - sum by ({_by(by)}) ({q.rate('perf_host_cpu_seconds_total', IDLE)}) / "
            f"sum by ({_by(by)}) ({q.rate('perf_host_cpu_seconds_total')})"
        ),
        metrics=("perf_host_cpu_seconds_total",),
        meaning="The host's CPUs are nearly always busy; every request queues for CPU.",
        diagnosis="Load average against CPU count; which process uses the CPU (top).",
        mitigation="Find the hot process, scale out, or give the host more CPU.",
    ),
    Signal(
        key="host_memory_utilisation",
        source="host",
        title="Host memory utilisation",
        alert="PerfHostMemoryHigh",
        above=True,
        unit="percentunit",
        labels=LOCAL,
        record="job_instance:perf_host_memory_utilisation:ratio",
        build=lambda q, by: (
            f"1 - max by ({_by(by)}) ({q.m('perf_host_memory_available_bytes')}) / "
            f"max by ({_by(by)}) ({q.m('perf_host_memory_total_bytes')})"
        ),
        metrics=("perf_host_memory_available_bytes", "perf_host_memory_total_bytes"),
        meaning="Little memory is available; the kernel will swap or kill processes.",
        diagnosis="Which process grows (a leak shows as steady growth), swap usage.",
        mitigation="Restart the leaking process and fix the leak, or add memory.",
    ),
    Signal(
        key="host_cgroup_memory_utilisation",
        source="host",
        title="Container memory utilisation",
        alert="PerfHostCgroupMemoryHigh",
        above=True,
        unit="percentunit",
        labels=LOCAL,
        record="job_instance:perf_host_cgroup_memory:ratio",
        # no memory limit: the > 0 filter drops the series instead of dividing by 0
        build=lambda q, by: (
            f"max by ({_by(by)}) ({q.m('perf_host_cgroup_memory_current_bytes')}) / "
            f"(max by ({_by(by)}) ({q.m('perf_host_cgroup_memory_max_bytes')}) > 0)"
        ),
        metrics=("perf_host_cgroup_memory_current_bytes", "perf_host_cgroup_memory_max_bytes"),
        meaning="The container uses most of its memory limit; the OOM killer is next.",
        diagnosis="Memory of the processes in the container over time.",
        mitigation="Fix the growth or raise the container's memory limit.",
    ),
    Signal(
        key="host_filesystem_avail_ratio",
        source="host",
        title="Filesystem space available",
        alert="PerfHostFilesystemAlmostFull",
        above=False,
        unit="percentunit",
        labels=(*LOCAL, "mountpoint"),
        record="job_instance_mountpoint:perf_host_filesystem_avail:ratio",
        build=lambda q, by: (
            f"max by ({_by(by)}) ({q.m('perf_host_filesystem_avail_bytes')}) / "
            f"max by ({_by(by)}) ({q.m('perf_host_filesystem_size_bytes')})"
        ),
        metrics=("perf_host_filesystem_avail_bytes", "perf_host_filesystem_size_bytes"),
        meaning="The filesystem is nearly full; PostgreSQL and Redis persistence fail when it is.",
        diagnosis="du on the mountpoint: WAL, logs, RDB/AOF files, temp files.",
        mitigation="Remove what is not needed (old logs, stale WAL from a dead replication "
        "slot) and grow the volume.",
    ),
    Signal(
        key="host_filesystem_fill_hours",
        source="host",
        title="Filesystem predicted full in",
        alert="PerfHostFilesystemFillingUp",
        above=False,
        unit="h",
        labels=(*LOCAL, "mountpoint"),
        record="job_instance_mountpoint:perf_host_filesystem_hours_until_full:deriv",
        # only shrinking filesystems get a value: growth or no change means never full
        build=lambda q, by: (
            f"max by ({_by(by)}) ({q.m('perf_host_filesystem_avail_bytes')}) / "
            f"-(max by ({_by(by)}) (deriv({q.m('perf_host_filesystem_avail_bytes')}"
            f"[{q.predict_window}])) < 0) / 3600"
        ),
        metrics=("perf_host_filesystem_avail_bytes",),
        meaning="At the current rate of growth the filesystem is full within this many hours.",
        diagnosis="What is growing on the mountpoint (du, the dashboard's fill trend).",
        mitigation="Stop the growth or grow the volume before it is full.",
    ),
    Signal(
        key="exporter_collector_success",
        source="exporter",
        title="Collector success",
        alert="PerfExporterCollectorFailing",
        above=False,
        unit="short",
        labels=(*LOCAL, "collector", "target"),
        record="job_instance_collector_target:perf_exporter_collector_success:min",
        build=lambda q, by: f"min by ({_by(by)}) ({q.m('perf_exporter_collector_success')})",
        metrics=("perf_exporter_collector_success",),
        meaning="The exporter cannot sample this target: it is down, refuses the exporter's "
        "credentials, or times out. Its series are absent meanwhile.",
        diagnosis="The exporter's log says why once per state change; "
        "perf_exporter_collector_errors_total gives the reason.",
        mitigation="Bring the target back or fix the exporter's credentials or timeout.",
    ),
    Signal(
        key="exporter_collector_staleness",
        source="exporter",
        title="Time since last successful collection",
        alert="PerfExporterCollectorStale",
        above=True,
        unit="s",
        labels=(*LOCAL, "collector", "target"),
        record="job_instance_collector_target:perf_exporter_collector_last_success:age",
        build=lambda q, by: (
            f"time() - max by ({_by(by)}) "
            f"({q.m('perf_exporter_collector_last_success_timestamp_seconds')})"
        ),
        metrics=("perf_exporter_collector_last_success_timestamp_seconds",),
        meaning="The last good sample of this target is old: dashboards and the summary show "
        "a gap.",
        diagnosis="As for a failing collector.",
        mitigation="As for a failing collector.",
    ),
)

BY_KEY: dict[str, Signal] = {s.key: s for s in SIGNALS}
