"""What a signal's evaluator reads: one source's last two samples, as PromQL reads a range.

The daemon judges a signal over its last collection interval: counters as deltas between the
last two samples of a target, gauges as they are now, histograms as quantiles of the bucket
deltas (interpolated as Prometheus' ``histogram_quantile`` does), a trend as the slope over the
trail of recent values. Every evaluator in :mod:`exporter.mixin.catalog` is written with the
operations of :class:`Window` and the value algebra below, so it reads like its PromQL twin.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Literal

from prometheus_client.metrics_core import Metric

LabelKey = tuple[tuple[str, str], ...]
Samples = dict[str, list[tuple[dict[str, str], float]]]
#: One value per series of a signal, keyed by the labels the signal groups by.
Values = dict[LabelKey, float]
Trails = MutableMapping[tuple[str, LabelKey], deque[tuple[float, float]]]


def samples_of(families: Iterable[Metric]) -> Samples:
    """Sample name -> (labels, value) of every sample of ``families``."""
    out: Samples = {}
    for family in families:
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


class Window:
    """The samples of one (collector, target) at ``t_now`` and, when known, one run earlier."""

    def __init__(
        self,
        now: Samples,
        t_now: float,
        before: Samples | None = None,
        t_before: float = 0.0,
        trails: Trails | None = None,
        trail_length: int = 60,
    ) -> None:
        self.now, self.t_now = now, t_now
        self.before, self.t_before = before, t_before
        # the recent values deriv() regresses over; kept by the caller across windows
        self.trails: Trails = {} if trails is None else trails
        self.trail_length = trail_length

    def _group(
        self,
        samples: Samples | None,
        name: str,
        by: Sequence[str],
        agg: Literal["sum", "max", "min"],
        match: Mapping[str, str],
    ) -> Values:
        out: Values = {}
        for labels, value in (samples or {}).get(name, []):
            if all(labels.get(k) == v for k, v in match.items()):
                key = tuple((k, labels.get(k, "")) for k in by)
                old = out.get(key)
                if old is None:
                    out[key] = value
                elif agg == "sum":
                    out[key] = old + value
                else:
                    out[key] = max(old, value) if agg == "max" else min(old, value)
        return out

    def gauge(
        self,
        name: str,
        by: Sequence[str] = (),
        agg: Literal["sum", "max", "min"] = "sum",
        **match: str,
    ) -> Values:
        """``agg by (by) (name{match})`` now."""
        return self._group(self.now, name, by, agg, match)

    def delta(self, name: str, by: Sequence[str] = (), **match: str) -> Values:
        """``sum by (by) (increase(name{match}))`` over the window; none on a counter reset."""
        if self.before is None:
            return {}
        now = self._group(self.now, name, by, "sum", match)
        before = self._group(self.before, name, by, "sum", match)
        return {k: v - before[k] for k, v in now.items() if k in before and v >= before[k]}

    def rate(self, name: str, by: Sequence[str] = (), **match: str) -> Values:
        """``sum by (by) (rate(name{match}))``: the delta per second."""
        dt = self.t_now - self.t_before
        if dt <= 0:
            return {}
        return {k: v / dt for k, v in self.delta(name, by, **match).items()}

    def quantile(self, q: float, bucket: str, by: Sequence[str] = ()) -> Values:
        """``histogram_quantile(q, sum by (by, le) (rate(bucket)))``."""
        groups: dict[LabelKey, list[tuple[float, float]]] = {}
        for key, count in self.delta(bucket, (*by, "le")).items():
            labels = dict(key)
            le = float(labels.pop("le"))
            groups.setdefault(tuple(labels.items()), []).append((le, count))
        return {k: v for k, b in groups.items() if (v := histogram_quantile(q, b)) is not None}

    def deriv(self, name: str, by: Sequence[str] = ()) -> Values:
        """``max by (by) (deriv(name[...]))``: per-second slope over the trail of this gauge.

        The trail grows by one point per window; a slope needs a minute of it.
        """
        out: Values = {}
        for key, value in self.gauge(name, by, "max").items():
            trail = self.trails.setdefault((name, key), deque(maxlen=self.trail_length))
            if not trail or trail[-1][0] != self.t_now:
                trail.append((self.t_now, value))
            (t0, v0), (t1, v1) = trail[0], trail[-1]
            if t1 - t0 >= 60:
                out[key] = (v1 - v0) / (t1 - t0)
        return out


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' interpolation over cumulative ``(le, count)`` buckets."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][0] != math.inf or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == math.inf:
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return None


# --- the value algebra: PromQL's binary operators over one-to-one matched series ---


def ratio(good: Values, bad: Values) -> Values:
    """``good / (good + bad)``; series with no traffic at all have no ratio."""
    return {k: g / (g + bad[k]) for k, g in good.items() if k in bad and g + bad[k] > 0}


def subtract(a: Values, b: Values) -> Values:
    """``a - b``, an absent ``b`` counting as zero."""
    return {k: v - b.get(k, 0.0) for k, v in a.items()}


def less_own(total: Values, own: Values) -> Values:
    """``total`` less the part the exporter caused itself, never below zero.

    The exporter counts its own lookups as it makes them while the server's counter is read
    once per run, so one window may see the exporter's part before the server's total.
    """
    return {k: max(0.0, v) for k, v in subtract(total, own).items()}


def divide(num: Values, den: Values) -> Values:
    """``num / (den > 0)``: a zero or missing denominator drops the series."""
    return {k: n / den[k] for k, n in num.items() if den.get(k, 0) > 0 and math.isfinite(den[k])}


def one_minus(values: Values) -> Values:
    """``1 - values``: the busy share from an idle or available share."""
    return {k: 1 - v for k, v in values.items()}
