"""The row of a declarative table that maps one field of a server's reply to one metric.

PgBouncer's SHOW columns and Redis' INFO fields are both read through such tables: reading the
table tells the metric's name, type, unit and HELP without reading any code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


@dataclass(frozen=True)
class FieldMetric:
    """One field of a server's reply (``source``) published as the metric ``metric``."""

    source: str
    metric: str
    kind: Literal["gauge", "counter"]
    help: str
    #: Multiplier to base units (microseconds to seconds, ...).
    scale: float = 1.0

    def family(self, labels: Sequence[str] = ()) -> GaugeMetricFamily | CounterMetricFamily:
        """An empty family of this metric's type, to add samples to."""
        kind = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        return kind(self.metric, self.help, labels=list(labels))
