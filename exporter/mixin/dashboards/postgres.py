"""The PostgreSQL dashboard: cache, connections, latency, transactions and locks."""

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
