"""The overview: the performance summary on one screen (hit ratios, the saturation chain
app pool -> PgBouncer -> max_connections, latency, resources, collector health)."""

from __future__ import annotations

from typing import Any

from exporter.mixin.dashboards.panels import Row, dashboard, signal_graph, signal_stat
from exporter.mixin.thresholds import Thresholds


def overview(t: Thresholds) -> dict[str, Any]:
    s = signal_stat
    g = signal_graph
    rows: list[Row] = [
        (
            "Cache hit ratios",
            [
                s(t, "postgres_cache_hit_ratio", 8),
                s(t, "redis_hit_ratio", 8),
                s(t, "app_cache_hit_ratio", 8),
                g(t, "redis_hit_ratio", 12),
                g(t, "app_cache_hit_ratio", 12),
            ],
        ),
        (
            "Saturation chain: app pool -> PgBouncer -> PostgreSQL",
            [
                s(t, "app_pool_utilisation"),
                s(t, "app_pool_waiting"),
                s(t, "pgbouncer_waiting_clients"),
                s(t, "pgbouncer_max_wait"),
                s(t, "postgres_connection_utilisation", 8),
                g(t, "app_pool_utilisation", 8),
                g(t, "pgbouncer_max_wait", 8),
                g(t, "postgres_connection_utilisation", 8),
            ],
        ),
        (
            "Latency",
            [
                s(t, "postgres_probe_p99", 6),
                s(t, "redis_probe_p99", 6),
                s(t, "app_pool_acquire_p99", 6),
                s(t, "postgres_statement_mean_latency", 6),
                g(t, "postgres_probe_p99", 12),
                g(t, "redis_probe_p99", 12),
            ],
        ),
        (
            "Resources",
            [
                s(t, "host_cpu_utilisation", 6),
                s(t, "host_memory_utilisation", 6),
                s(t, "host_cgroup_memory_utilisation", 6),
                s(t, "host_filesystem_avail_ratio", 6),
                s(t, "redis_memory_utilisation", 6),
            ],
        ),
        (
            "Collector health",
            [
                s(t, "exporter_collector_success", 6),
                s(t, "exporter_collector_staleness", 6),
                g(t, "exporter_collector_success", 12),
            ],
        ),
    ]
    return dashboard(
        t,
        "perf-exporter-overview",
        "perf-exporter / Overview",
        "The performance summary: is the cache working, is a pool saturated, what got slow.",
        rows,
        remote=True,
    )
