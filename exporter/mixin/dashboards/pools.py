"""The pools dashboard: application asyncpg pools, PgBouncer pools, application cache."""

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
    with_kind,
)
from exporter.mixin.thresholds import Thresholds


def pools(t: Thresholds) -> dict[str, Any]:
    rows: list[Row] = [
        summary_row(
            t,
            (
                "app_pool_utilisation",
                "app_pool_waiting",
                "app_pool_acquire_p99",
                "pgbouncer_waiting_clients",
                "pgbouncer_max_wait",
                "app_cache_hit_ratio",
            ),
            4,
        ),
        (
            "Application pools",
            [
                signal_graph(t, "app_pool_utilisation"),
                signal_graph(t, "app_pool_waiting"),
                signal_graph(t, "app_pool_acquire_p99"),
                raw_graph(
                    Graph(
                        "Pool size, idle and max",
                        lambda q: with_kind(
                            sum_by("target, pool", q.m("perf_app_pool_size")),
                            sum_by("target, pool", q.m("perf_app_pool_max")),
                            "max",
                        ),
                        "short",
                        "{{target}} {{pool}} {{kind}}",
                    )
                ),
            ],
        ),
        (
            "PgBouncer",
            [
                signal_graph(t, "pgbouncer_waiting_clients"),
                signal_graph(t, "pgbouncer_max_wait"),
                raw_graph(
                    Graph(
                        "Clients by state",
                        lambda q: sum_by("target, pool, state", q.m("perf_pgbouncer_clients")),
                        "short",
                        "{{target}} {{pool}} {{state}}",
                    )
                ),
                raw_graph(
                    Graph(
                        "Servers by state",
                        lambda q: sum_by("target, pool, state", q.m("perf_pgbouncer_servers")),
                        "short",
                        "{{target}} {{pool}} {{state}}",
                    )
                ),
            ],
        ),
        (
            "Application cache",
            [
                signal_graph(t, "app_cache_hit_ratio"),
                raw_graph(
                    Graph(
                        "Cache lookups per namespace",
                        lambda q: (
                            sum_by("target, namespace", q.rate("perf_app_cache_hits_total"))
                            + " + "
                            + sum_by("target, namespace", q.rate("perf_app_cache_misses_total"))
                        ),
                        "ops",
                        "{{target}} {{namespace}}",
                    )
                ),
            ],
        ),
    ]
    return dashboard(
        t,
        "perf-exporter-pools",
        "perf-exporter / PgBouncer and application pools",
        "The saturation chain: the application's asyncpg pools, PgBouncer pools, and the "
        "application's cache namespaces.",
        rows,
        remote=True,
    )
