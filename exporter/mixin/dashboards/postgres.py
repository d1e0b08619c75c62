"""The PostgreSQL dashboard: cache, connections, latency, transactions and locks."""

from __future__ import annotations

from typing import Any

from exporter.mixin.catalog import Query
from exporter.mixin.dashboards.panels import Expr, Panels, gauge, rate, top10, with_kind
from exporter.mixin.thresholds import Thresholds

_DB = "target, datname"
_STATEMENT = "target, datname, queryid"
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
            ("Summary", p.stats(headline, 6)),
            (
                "Cache",
                [
                    p.graph("postgres_cache_hit_ratio"),
                    p.raw(
                        "Blocks read from disk per database",
                        "ops",
                        _DB,
                        rate("perf_postgres_blocks_read_total"),
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
        ],
    )
