"""The round-trip histogram every remote collector keeps for its probe (SELECT 1, PING).

Families are rebuilt every cycle, so the cumulative counts live in this object, owned by one
collector instance for its lifetime, not in a global prometheus_client metric.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.samples import Sample

from exporter.collectors.interned import Interned

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
        """The samples ``HistogramMetricFamily(buckets=..., sum_value=...)`` would hold, with
        label dicts shared by every target and cycle (the summary board keeps two collections of
        the buckets per target)."""
        family = HistogramMetricFamily(self.name, self.documentation)
        bucket = f"{self.name}_bucket"
        running = 0
        for labels, count in zip(_le_labels(self.bounds), self.counts, strict=True):
            running += count
            family.samples.append(Sample(bucket, labels, float(running)))
        family.samples.append(Sample(f"{self.name}_count", _NO_LABELS, float(running)))
        family.samples.append(Sample(f"{self.name}_sum", _NO_LABELS, self.total))
        return family


#: ``{"le": ...}`` of each set of bounds, and +Inf, shared by every probe (a handful of bucket
#: layouts exist).
_le_labels: Interned[tuple[float, ...], tuple[dict[str, str], ...]] = Interned(
    lambda bounds: (*({"le": repr(b)} for b in bounds), {"le": "+Inf"}), 100
)
_NO_LABELS: dict[str, str] = {}
