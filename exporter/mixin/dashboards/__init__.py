"""Grafana dashboards built with grafana-foundation-sdk from the signal catalog and Thresholds.

An overview (the performance summary on one screen) and one dashboard per source, one module
each, over the shared panel builder :mod:`~exporter.mixin.dashboards.panels`.
"""

from __future__ import annotations

from typing import Any

from exporter.mixin.dashboards import host, overview, pools, postgres, redis
from exporter.mixin.thresholds import Thresholds


def dashboards(t: Thresholds) -> dict[str, dict[str, Any]]:
    """Every dashboard, file name -> Grafana JSON model."""
    return {
        "overview.json": overview.overview(t),
        "postgres.json": postgres.postgres(t),
        "redis.json": redis.redis(t),
        "pools.json": pools.pools(t),
        "host.json": host.host(t),
    }
