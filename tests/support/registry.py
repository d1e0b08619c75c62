"""One collection's families in a registry, read back with ``get_sample_value``."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from exporter.collectors.base import Collected


class FamiliesCollector:
    """Serves a fixed list of families to a registry."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> list[Metric]:
        return self.families


def registry_of(source: Collected | Iterable[Metric]) -> CollectorRegistry:
    """A registry holding ``source``'s families (a cycle's result or the families themselves).

    ``auto_describe`` makes the registry refuse two families with the same name, as the daemon's
    own registry does.
    """
    families = source.families if isinstance(source, Collected) else source
    registry = CollectorRegistry(auto_describe=True)
    registry.register(FamiliesCollector(families))
    return registry


def sample_value(
    source: Collected | Iterable[Metric], name: str, labels: dict[str, str] | None = None
) -> float | None:
    """The value of one sample of ``source``; None when there is no such sample."""
    return registry_of(source).get_sample_value(name, labels or {})
