"""The PostgreSQL dashboard: cache, connections, latency, transactions and locks, I/O,
checkpoints and WAL."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.models import common as common_m

from exporter.mixin.catalog import BY_KEY, Query
from exporter.mixin.dashboards.panels import Expr, Panels, gauge, rate, top10, with_kind
from exporter.mixin.thresholds import Thresholds

_DB = "target, datname"
_STATEMENT = "target, datname, queryid"
_ROW = "target, datname, queryid, user"
_CALLS = "perf_postgres_statement_calls_total"
_EXEC = "perf_postgres_statement_exec_seconds_total"


# samples per wait event type over the target's sampling rounds: average active sessions
_LOAD = Expr(
    lambda q, by: (
        f"sum by ({by}) ({q.rate('perf_postgres_wait_samples_total')}) / on (target) "
        f"group_left sum by (target) ({q.rate('perf_postgres_wait_sample_rounds_total')})"
    )
)


def _statement_row(expr: str, q: Query) -> str:
    """``expr`` per statement, labelled with its text (when exported) and main wait type.

    The ``or on`` fallbacks keep statements without text (statement_text off) or without
    waits sampled in the table, with the label absent.
    """
    calls = q.rate(_CALLS)
    text = f"max by (target, queryid, query) ({q.m('perf_postgres_statement_info')})"
    waits = (
        "topk by (target, datname, queryid) (1, sum by (target, datname, queryid, "
        f"wait_event_type) ({q.rate('perf_postgres_statement_wait_samples_total')}))"
    )
    return (
        f"({expr}) * on (target, queryid) group_left (query) ({text} or on (target, queryid) "
        f"0 * max by (target, queryid) ({calls}) + 1) * on (target, datname, queryid) "
        f"group_left (wait_event_type) (0 * {waits} + 1 or on (target, datname, queryid) "
        f"0 * max by (target, datname, queryid) ({calls}) + 1)"
    )


def _statements_table(p: Panels) -> Any:
    slower = BY_KEY["postgres_statement_slowdown"]
    by = tuple(_ROW.split(", "))

    def calls(q: Query) -> str:
        return _statement_row(f"sum by ({_ROW}) ({q.rate(_CALLS)})", q)

    def mean(q: Query) -> str:
        return _statement_row(
            f"sum by ({_ROW}) ({q.rate(_EXEC)}) / sum by ({_ROW}) ({q.rate(_CALLS)})", q
        )

    def change(q: Query) -> str:
        return _statement_row(slower.formula.promql(q, by), q)

    return p.table(
        "Statements: calls, mean and change against a day ago",
        "The listed statements of pg_stat_statements: calls per second and mean execution time "
        "over the rate interval, the mean over 30 minutes against the same 30 minutes a day "
        "earlier (what PerfPostgresStatementSlower alerts on; empty without a day of history or "
        "enough calls), the wait type most sampled for it, and its text when statement_text is "
        "on. Find an alert's queryid here, then /summary for its waits and blocking chains.",
        [("calls/s", "ops", calls), ("mean", "s", mean), ("vs 1d ago", "suffix:x", change)],
    )


_BACKEND = "target, backend_type"


def kinds(*named: tuple[str, str]) -> Expr:
    """Rates of several counters on one graph, each series labelled ``kind`` (pg_stat_io)."""

    def render(q: Query, by: str) -> str:
        return " or ".join(
            f'label_replace(sum by ({by}) ({q.rate(name)}), "kind", "{kind}", "", "")'
            for name, kind in named
        )

    return Expr(render, kinds=True)


def _io(*operations: str) -> Expr:
    return kinds(*((f"perf_postgres_io_{op}_total", op) for op in operations))


_TABLE = "target, datname, schemaname, relname"


def _since(name: str) -> Expr:
    """Seconds since the Unix time a gauge holds (the exporter exports times, not ages)."""
    return Expr(lambda q, by: f"time() - max by ({by}) ({q.m(name)})")


def _dead_share(q: Query, by: str) -> str:
    dead = f"max by ({by}) ({q.m('perf_postgres_table_dead_tuples')})"
    live = f"max by ({by}) ({q.m('perf_postgres_table_live_tuples')})"
    return f"topk(10, {dead} / ({dead} + {live} > 0))"


def postgres(t: Thresholds) -> dict[str, Any]:
    p = Panels(t)
    headline = (
        "postgres_cache_hit_ratio",
        "postgres_connection_utilisation",
        "postgres_probe_p99",
        "postgres_statement_mean_latency",
    )
    committed = rate("perf_postgres_transactions_committed_total")
    rolled_back = rate("perf_postgres_transactions_rolled_back_total")
    deadlocks = rate("perf_postgres_deadlocks_total")
    temp_bytes = rate("perf_postgres_temp_bytes_total")
    return p.dashboard(
        "perf-exporter-postgres",
        "perf-exporter / PostgreSQL",
        "Buffer-cache hit ratio, connections against max_connections, probe and statement latency.",
        [
            (
                "Cache",
                [
                    p.graph("postgres_cache_hit_ratio"),
                    p.graph("postgres_buffer_evictions"),
                    p.raw(
                        "Blocks read from disk per database",
                        "ops",
                        _DB,
                        rate("perf_postgres_blocks_read_total"),
                    ),
                    p.raw(
                        "Buffer operations by backend type",
                        "ops",
                        _BACKEND,
                        _io("hits", "reads", "evictions", "reuses", "writes", "extends", "fsyncs"),
                        description="pg_stat_io (PostgreSQL 16+), every object and context: "
                        "evictions make room in shared_buffers, reuses recycle the rings of "
                        "bulk reads, writes and vacuum.",
                    ),
                    p.raw(
                        "I/O time by backend type",
                        "s",
                        _BACKEND,
                        _io("read_seconds", "write_seconds"),
                        8,
                        "Seconds per second spent reading and writing (pg_stat_io; needs "
                        "track_io_timing = on).",
                    ),
                    p.raw(
                        "I/O bytes by backend type",
                        "Bps",
                        _BACKEND,
                        _io("read_bytes", "write_bytes", "extend_bytes"),
                        16,
                        "Bytes per second read, written and added by extends (pg_stat_io, "
                        "PostgreSQL 18+).",
                    ),
                ],
            ),
            (
                "Connections",
                [
                    p.graph("postgres_connection_utilisation"),
                    p.raw(
                        "Connections by state",
                        "short",
                        "target, state",
                        gauge("perf_postgres_connections"),
                    ),
                    p.graph("postgres_longest_transaction"),
                    p.graph("postgres_idle_in_transaction"),
                ],
            ),
            (
                "Latency",
                [
                    p.graph("postgres_probe_p99"),
                    p.graph("postgres_statement_mean_latency"),
                    p.raw(
                        "Top statements by execution time",
                        "s",
                        _STATEMENT,
                        top10(rate("perf_postgres_statement_exec_seconds_total")),
                        description="Execution seconds per second: the statements that keep "
                        "the server busy.",
                    ),
                    p.raw(
                        "Top statements by calls",
                        "ops",
                        _STATEMENT,
                        top10(rate("perf_postgres_statement_calls_total")),
                    ),
                    p.raw(
                        "Top statements by block I/O time",
                        "s",
                        _STATEMENT,
                        top10(
                            kinds(
                                ("perf_postgres_statement_block_read_seconds_total", "read"),
                                ("perf_postgres_statement_block_write_seconds_total", "write"),
                            )
                        ),
                        description="Seconds per second the statements spent reading and "
                        "writing shared and local blocks (needs track_io_timing = on): the "
                        "statements that wait on the disk.",
                    ),
                ],
            ),
            (
                "Statements",
                [
                    _statements_table(p),
                    p.graph("postgres_statement_slowdown", 24),
                ],
            ),
            (
                "Database load and blocking",
                [
                    p.raw(
                        "Database load by wait event type",
                        "short",
                        "target, wait_event_type",
                        _LOAD,
                        12,
                        "Average active sessions by what they wait for (CPU: running), sampled "
                        "from pg_stat_activity; stack it against perf_postgres_server_cpus. Lock "
                        "means blocking, IO missing cache or indexes.",
                    ).stacking(common_b.StackingConfig().mode(common_m.StackingMode.NORMAL)),
                    p.graph("postgres_database_load"),
                    p.raw(
                        "Blocked sessions",
                        "short",
                        _DB,
                        gauge("perf_postgres_blocked_sessions"),
                        8,
                        "Sessions waiting for a lock another session holds.",
                    ),
                    p.graph("postgres_lock_blocking", 8),
                    p.raw(
                        "Blocking roots by application",
                        "short",
                        "target, datname, application_name",
                        gauge("perf_postgres_blocking_sessions"),
                        8,
                        "Sessions at the root of a blocking chain (blocking others, not blocked "
                        "themselves); /summary lists each chain with its pid and queryid.",
                    ),
                ],
            ),
            (
                "Vacuum and wraparound",
                [
                    p.graph("postgres_xid_wraparound"),
                    p.raw(
                        "Transaction ID age per database",
                        "short",
                        _DB,
                        gauge("perf_postgres_database_xid_age", "max"),
                        description="age(datfrozenxid): autovacuum forces a freeze at "
                        "autovacuum_freeze_max_age; writes stop near 2^31 (2.1 billion).",
                    ),
                    p.raw(
                        "Dead rows share, top 10 tables",
                        "percentunit",
                        _TABLE,
                        Expr(_dead_share),
                        8,
                        "Dead rows over all rows of the table: vacuum is behind where this stays "
                        "high (a long transaction holds the horizon, or cost limits are too low).",
                    ),
                    p.raw(
                        "Since the last vacuum and analyze, top 10 tables",
                        "s",
                        _TABLE,
                        with_kind(
                            top10(_since("perf_postgres_table_last_vacuum_timestamp_seconds")),
                            top10(_since("perf_postgres_table_last_analyze_timestamp_seconds")),
                            "analyze",
                        ),
                        8,
                        "Time since the last vacuum (manual or auto) of each listed table; "
                        "analyze marked kind=analyze. Tables never vacuumed have no line.",
                    ),
                    p.raw(
                        "Vacuums in progress by phase",
                        "short",
                        "target, datname, phase",
                        gauge("perf_postgres_vacuums_in_progress"),
                        8,
                        "pg_stat_progress_vacuum: a vacuum stuck in one phase for long is held "
                        "back (cost delay, locks, an index that takes long to scan).",
                    ),
                    p.raw(
                        "Table statistics per database: up and age",
                        "s",
                        _DB,
                        with_kind(
                            _since("perf_postgres_table_stats_timestamp_seconds"),
                            gauge("perf_postgres_table_stats_up", "min"),
                            "up",
                        ),
                        8,
                        "Seconds since each database's table statistics were read (refreshed "
                        "every table_stats_interval); kind=up is 1 when the last refresh "
                        "succeeded.",
                    ),
                    p.raw(
                        "Table statistics failures and databases over the cap",
                        "short",
                        "target, datname, reason",
                        with_kind(
                            rate("perf_postgres_table_stats_errors_total"),
                            gauge("perf_postgres_table_stats_databases_skipped", "max"),
                            "over cap",
                        ),
                        8,
                        "Failed refreshes per second by database and reason (gone, privilege, "
                        "too_many_connections, timeout); kind=over cap counts databases "
                        "beyond table_stats_max_databases.",
                    ),
                ],
            ),
            (
                "Transactions and locks",
                [
                    p.raw(
                        "Transactions per second",
                        "ops",
                        _DB,
                        with_kind(committed, rolled_back, "rollback"),
                        8,
                        "Commits per database; rollbacks are marked kind=rollback.",
                    ),
                    p.raw(
                        "Sessions waiting on a lock",
                        "short",
                        _DB,
                        gauge("perf_postgres_lock_waiters"),
                        8,
                    ),
                    p.raw(
                        "Deadlocks and temp bytes written",
                        "short",
                        _DB,
                        with_kind(deadlocks, temp_bytes, "temp bytes"),
                        8,
                        "Deadlocks per second, and bytes per second spilled to temporary files "
                        "(kind=temp bytes: raise work_mem or fix the sort).",
                    ),
                ],
            ),
            (
                "Checkpoints and WAL",
                [
                    p.raw(
                        "Checkpoints by trigger",
                        "ops",
                        "target, kind",
                        rate("perf_postgres_checkpoints_total"),
                        6,
                        "Checkpoints per second: timed (checkpoint_timeout) or requested (WAL "
                        "volume reached max_wal_size, or CHECKPOINT). Mostly requested: raise "
                        "max_wal_size.",
                    ),
                    p.raw(
                        "Buffers written by checkpoints and the background writer",
                        "ops",
                        "target",
                        kinds(
                            ("perf_postgres_checkpoint_buffers_written_total", "checkpoint"),
                            ("perf_postgres_bgwriter_buffers_written_total", "bgwriter"),
                        ),
                        6,
                    ),
                    p.raw(
                        "Checkpoint write and sync time",
                        "s",
                        "target",
                        kinds(
                            ("perf_postgres_checkpoint_write_seconds_total", "write"),
                            ("perf_postgres_checkpoint_sync_seconds_total", "sync"),
                        ),
                        6,
                        "Seconds per second checkpoints spent writing and fsyncing; a long sync "
                        "is a disk that cannot keep up.",
                    ),
                    p.raw(
                        "WAL generated and WAL buffers full",
                        "short",
                        "target",
                        kinds(
                            ("perf_postgres_wal_bytes_total", "bytes"),
                            ("perf_postgres_wal_buffers_full_total", "buffers full"),
                        ),
                        6,
                        "WAL bytes per second (PostgreSQL 14+), and times per second a backend "
                        "had to write WAL because wal_buffers was full (kind=buffers full: raise "
                        "wal_buffers).",
                    ),
                ],
            ),
        ],
        headline=headline,
    )
