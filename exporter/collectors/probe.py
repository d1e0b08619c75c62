"""The round-trip histogram every remote collector keeps for its probe (SELECT 1, PING).

Families are rebuilt every cycle, so the cumulative counts live in this object, owned by one
collector instance for its lifetime, not in a global prometheus_client metric.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from prometheus_client.core import HistogramMetricFamily

#: From 0.1 ms (a local round trip) to 5 s (a server in trouble).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class ProbeHistogram:
    """Cumulative bucket counts of one probe, rendered as a fresh family each cycle."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: an observation equal to a bound belongs to that bound's bucket (le)
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def family(self) -> HistogramMetricFamily:
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return HistogramMetricFamily(
            self.name, self.documentation, buckets=cumulative, sum_value=self.total
        )
