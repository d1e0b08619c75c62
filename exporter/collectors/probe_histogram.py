"""The round-trip histogram every remote collector keeps for its probe (SELECT 1, PING).

Families are rebuilt every cycle, so the cumulative counts live in this object, owned by one
collector instance for its lifetime, not in a global prometheus_client metric.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from prometheus_client.core import HistogramMetricFamily

#: From 0.1 ms (a local round trip) to 5 s (a server in trouble): 1, 2.5 and 5 of each decade.
#: Written from their text so each bound is exactly the float its ``le`` label shows.
LATENCY_BUCKETS: tuple[float, ...] = tuple(
    float(f"{step}e{exponent}") for exponent in range(-4, 1) for step in ("1", "2.5", "5")
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
