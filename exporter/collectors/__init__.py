"""The registry of collectors: name -> class. One module per source."""

from __future__ import annotations

from typing import Any

from exporter.collectors.app import AppCollector
from exporter.collectors.base import Collector
from exporter.collectors.host import HostCollector
from exporter.collectors.pgbouncer import PgBouncerCollector
from exporter.collectors.postgres import PostgresCollector
from exporter.collectors.redis import RedisCollector

#: Every collector the daemon knows, by the name used in config and ``--collector.<name>``.
COLLECTORS: dict[str, type[Collector[Any, Any]]] = {
    HostCollector.name: HostCollector,
    PostgresCollector.name: PostgresCollector,
    RedisCollector.name: RedisCollector,
    PgBouncerCollector.name: PgBouncerCollector,
    AppCollector.name: AppCollector,
}
