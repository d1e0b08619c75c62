"""The PostgreSQL dashboard: cache, connections, latency, transactions and locks."""

from __future__ import annotations

from typing import Any

from exporter.mixin.dashboards.panels import Panels, gauge, rate, top10, with_kind
from exporter.mixin.thresholds import Thresholds

_DB = "target, datname"
_STATEMENT = "target, datname, queryid"


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
