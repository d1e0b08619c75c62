"""The overview: the performance summary on one screen (hit ratios, the saturation chain
app pool -> PgBouncer -> max_connections, latency, resources, collector health)."""

from __future__ import annotations

from typing import Any

from exporter.mixin.dashboards.panels import Panels
from exporter.mixin.thresholds import Thresholds


def overview(t: Thresholds) -> dict[str, Any]:
    p = Panels(t)
    saturation = ("app_pool_utilisation", "pgbouncer_max_wait", "postgres_connection_utilisation")
    latency = ("postgres_probe_p99", "redis_probe_p99")
    resources = (
        "host_cpu_utilisation",
        "host_memory_utilisation",
        "host_cgroup_memory_utilisation",
        "host_filesystem_avail_ratio",
        "redis_memory_utilisation",
    )
    return p.dashboard(
        "perf-exporter-overview",
        "perf-exporter / Overview",
        "The performance summary: is the cache working, is a pool saturated, what got slow.",
        [
            (
                "Cache hit ratios",
                [
                    *p.stats(("postgres_cache_hit_ratio", "redis_hit_ratio"), 8),
                    p.stat("app_cache_hit_ratio", 8),
                    p.graph("redis_hit_ratio"),
                    p.graph("app_cache_hit_ratio"),
                ],
            ),
            (
                "Saturation chain: app pool -> PgBouncer -> PostgreSQL",
                [
                    *p.stats(("app_pool_utilisation", "app_pool_waiting"), 4),
                    *p.stats(("pgbouncer_waiting_clients", "pgbouncer_max_wait"), 4),
                    p.stat("postgres_connection_utilisation", 8),
                    *(p.graph(key, 8) for key in saturation),
                ],
            ),
            (
                "Latency",
                [
                    *p.stats((*latency, "app_pool_acquire_p99"), 6),
                    p.stat("postgres_statement_mean_latency", 6),
                    *(p.graph(key) for key in latency),
                ],
            ),
            ("Resources", p.stats(resources, 6)),
            (
                "Collector health",
                [
                    *p.stats(("exporter_collector_success", "exporter_collector_staleness"), 6),
                    p.graph("exporter_collector_success"),
                ],
            ),
        ],
    )
