"""The PostgreSQL dashboard: cache, connections, latency, transactions and locks."""

from __future__ import annotations

from typing import Any

from exporter.mixin.dashboards.panels import (
    Graph,
    Row,
    dashboard,
    raw_graph,
    signal_graph,
    sum_by,
    summary_row,
    top10,
    with_kind,
)
from exporter.mixin.thresholds import Thresholds


def postgres(t: Thresholds) -> dict[str, Any]:
    by = "target, state"
    rows: list[Row] = [
        summary_row(
            t,
            (
                "postgres_cache_hit_ratio",
                "postgres_connection_utilisation",
                "postgres_probe_p99",
                "postgres_statement_mean_latency",
            ),
            6,
        ),
        (
            "Cache",
            [
                signal_graph(t, "postgres_cache_hit_ratio"),
                raw_graph(
                    Graph(
                        "Blocks read from disk per database",
                        lambda q: sum_by(
                            "target, datname", q.rate("perf_postgres_blocks_read_total")
                        ),
                        "ops",
                        "{{target}} {{datname}}",
                    )
                ),
            ],
        ),
        (
            "Connections",
            [
                signal_graph(t, "postgres_connection_utilisation"),
                raw_graph(
                    Graph(
                        "Connections by state",
                        lambda q: sum_by(by, q.m("perf_postgres_connections")),
                        "short",
                        "{{target}} {{state}}",
                    )
                ),
                signal_graph(t, "postgres_longest_transaction"),
                signal_graph(t, "postgres_idle_in_transaction"),
            ],
        ),
        (
            "Latency",
            [
                signal_graph(t, "postgres_probe_p99"),
                signal_graph(t, "postgres_statement_mean_latency"),
                raw_graph(
                    Graph(
                        "Top statements by execution time",
                        lambda q: top10(
                            sum_by(
                                "target, datname, queryid",
                                q.rate("perf_postgres_statement_exec_seconds_total"),
                            )
                        ),
                        "s",
                        "{{target}} {{datname}} {{queryid}}",
                        description="Execution seconds per second: the statements that keep "
                        "the server busy.",
                    )
                ),
                raw_graph(
                    Graph(
                        "Top statements by calls",
                        lambda q: top10(
                            sum_by(
                                "target, datname, queryid",
                                q.rate("perf_postgres_statement_calls_total"),
                            )
                        ),
                        "ops",
                        "{{target}} {{datname}} {{queryid}}",
                    )
                ),
            ],
        ),
    ]
    rows.append(
        (
            "Transactions and locks",
            [
                raw_graph(
                    Graph(
                        "Transactions per second",
                        lambda q: with_kind(
                            sum_by(
                                "target, datname",
                                q.rate("perf_postgres_transactions_committed_total"),
                            ),
                            sum_by(
                                "target, datname",
                                q.rate("perf_postgres_transactions_rolled_back_total"),
                            ),
                            "rollback",
                        ),
                        "ops",
                        "{{target}} {{datname}} {{kind}}",
                        description="Commits per database; rollbacks are marked kind=rollback.",
                    ),
                    8,
                ),
                raw_graph(
                    Graph(
                        "Sessions waiting on a lock",
                        lambda q: sum_by("target, datname", q.m("perf_postgres_lock_waiters")),
                        "short",
                        "{{target}} {{datname}}",
                    ),
                    8,
                ),
                raw_graph(
                    Graph(
                        "Deadlocks and temp bytes written",
                        lambda q: with_kind(
                            sum_by("target, datname", q.rate("perf_postgres_deadlocks_total")),
                            sum_by("target, datname", q.rate("perf_postgres_temp_bytes_total")),
                            "temp bytes",
                        ),
                        "short",
                        "{{target}} {{datname}} {{kind}}",
                        description="Deadlocks per second, and bytes per second spilled to "
                        "temporary files (kind=temp bytes: raise work_mem or fix the sort).",
                    ),
                    8,
                ),
            ],
        )
    )
    return dashboard(
        t,
        "perf-exporter-postgres",
        "perf-exporter / PostgreSQL",
        "Buffer-cache hit ratio, connections against max_connections, probe and statement latency.",
        rows,
        remote=True,
    )
