"""The pools dashboard: application asyncpg pools, PgBouncer pools, application cache."""

from __future__ import annotations

from typing import Any

from exporter.mixin.dashboards.panels import Panels, gauge, plus, rate, with_kind
from exporter.mixin.thresholds import Thresholds

_BY_STATE = "target, pool, state"


def pools(t: Thresholds) -> dict[str, Any]:
    p = Panels(t)
    app_pool = ("app_pool_utilisation", "app_pool_waiting", "app_pool_acquire_p99")
    pgbouncer = ("pgbouncer_waiting_clients", "pgbouncer_max_wait")
    size = with_kind(gauge("perf_app_pool_size"), gauge("perf_app_pool_max"), "max")
    lookups = plus(rate("perf_app_cache_hits_total"), rate("perf_app_cache_misses_total"))
    return p.dashboard(
        "perf-exporter-pools",
        "perf-exporter / PgBouncer and application pools",
        "The saturation chain: the application's asyncpg pools, PgBouncer pools, and the "
        "application's cache namespaces.",
        [
            (
                "Application pools",
                [
                    *(p.graph(key) for key in app_pool),
                    p.raw("Pool size, idle and max", "short", "target, pool", size),
                ],
            ),
            (
                "PgBouncer",
                [
                    *(p.graph(key) for key in pgbouncer),
                    p.raw("Clients by state", "short", _BY_STATE, gauge("perf_pgbouncer_clients")),
                    p.raw("Servers by state", "short", _BY_STATE, gauge("perf_pgbouncer_servers")),
                ],
            ),
            (
                "Application cache",
                [
                    p.graph("app_cache_hit_ratio"),
                    p.raw("Cache lookups per namespace", "ops", "target, namespace", lookups),
                ],
            ),
        ],
        headline=(*app_pool, *pgbouncer, "app_cache_hit_ratio"),
    )
