"""The registry of collectors: name -> class. One module per source."""

from __future__ import annotations

from typing import Any

from exporter.collectors.app import AppCollector
from exporter.collectors.base import Collector
from exporter.collectors.host import HostCollector
from exporter.collectors.pgbouncer import PgBouncerCollector

#: Every collector the daemon knows, by the name used in config and ``--collector.<name>``.
COLLECTORS: dict[str, type[Collector[Any, Any]]] = {
    HostCollector.name: HostCollector,
    PgBouncerCollector.name: PgBouncerCollector,
    AppCollector.name: AppCollector,
}
