"""The registry of collectors: name -> class. One module per source.

A collector's module is imported the first time its class is asked for, so a daemon that only
watches the host never loads asyncpg or redis, and importing one collector module does not
import every driver.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from exporter.collectors.base import Collector

CollectorClass = type[Collector[Any, Any]]


class CollectorClasses(Mapping[str, CollectorClass]):
    """Collector classes by name, each imported from ``module:Class`` on first use."""

    def __init__(self, locations: Mapping[str, str]) -> None:
        self._locations = dict(locations)
        self._loaded: dict[str, CollectorClass] = {}

    def __getitem__(self, name: str) -> CollectorClass:
        if name not in self._loaded:
            module, _, attribute = self._locations[name].partition(":")
            cls: CollectorClass = getattr(importlib.import_module(module), attribute)
            self._loaded[name] = cls
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._locations)

    def __len__(self) -> int:
        return len(self._locations)

    def __contains__(self, name: object) -> bool:
        return name in self._locations


#: Every collector the daemon knows, by the name used in config and ``--collector.<name>``.
COLLECTORS = CollectorClasses(
    {
        "host": "exporter.collectors.host:HostCollector",
        "postgres": "exporter.collectors.postgres:PostgresCollector",
        "redis": "exporter.collectors.redis:RedisCollector",
        "pgbouncer": "exporter.collectors.pgbouncer:PgBouncerCollector",
        "app": "exporter.collectors.app:AppCollector",
    }
)
