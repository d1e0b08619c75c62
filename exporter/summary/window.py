"""What a signal's evaluator reads: one source's last two samples, as PromQL reads a range.

The daemon judges a signal over its last collection interval: counters as deltas between the
last two samples of a target, gauges as they are now, histograms as quantiles of the bucket
deltas (interpolated as Prometheus' ``histogram_quantile`` does), a trend as the slope over the
trail of recent values. Every evaluator in :mod:`exporter.mixin.catalog` is written with the
operations of :class:`Window` and the value algebra below, so it reads like its PromQL twin.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import (
    Callable,
    Container,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from typing import Literal, cast

from prometheus_client.metrics_core import Metric

from exporter.collectors.interned import Interned

LabelKey = tuple[tuple[str, str], ...]


class SampleColumn:
    """The samples of one name as (labels, value) pairs: label dicts in a list, values in doubles.

    The board keeps two collections of these per target (now and before): at a thousand targets
    some 300,000 samples, which as (labels, value) tuples were 88 bytes each beyond the labels
    and as many objects for the garbage collector to walk; here 16 bytes and none.
    """

    __slots__ = ("labels", "values")

    def __init__(self) -> None:
        self.labels: list[dict[str, str]] = []
        self.values = array("d")

    @classmethod
    def of(cls, pairs: Iterable[tuple[dict[str, str], float]]) -> SampleColumn:
        column = cls()
        for labels, value in pairs:
            column.append(labels, value)
        return column

    def append(self, labels: dict[str, str], value: float) -> None:
        self.labels.append(labels)
        self.values.append(value)

    def __iter__(self) -> Iterator[tuple[dict[str, str], float]]:
        return zip(self.labels, self.values, strict=True)

    def __len__(self) -> int:
        return len(self.labels)


Samples = dict[str, SampleColumn]
#: One value per series of a signal, keyed by the labels the signal groups by.
Values = dict[LabelKey, float]
Trails = MutableMapping[tuple[str, LabelKey], deque[tuple[float, float]]]
#: What one grouping asks: (name, by, aggregation, match).
Grouping = tuple[str, tuple[str, ...], str, tuple[tuple[str, str], ...]]
#: A histogram's buckets summed by (by, le), per series: the ``by`` pairs -> (the bounds
#: rising, the count at each).
Buckets = dict[LabelKey, tuple["array[float]", "array[float]"]]
#: Groupings of one set of samples already made (a histogram's buckets as :data:`Buckets`).
Groups = dict[Grouping, Values | Buckets]


#: One point of a coarse trail every this many seconds, kept for a day and the compared window.
COARSE_STEP = 600.0
COARSE_SPAN = 86400.0 + 1800.0 + COARSE_STEP


class CoarseClock:
    """The times of the coarse points of one source, shared by all its trails.

    Every trail of a source takes its points in the same windows, so one array of times serves
    them all; ``base`` is the running number of ``times[0]``, which the trails' own ``first``
    counts against.
    """

    __slots__ = ("base", "times")

    def __init__(self) -> None:
        self.times = array("d")
        self.base = 0

    def tick(self, t: float) -> None:
        """Take a point at ``t`` if the last one is a step old (again at the same ``t``: no-op)."""
        times = self.times
        if times and t - times[-1] < COARSE_STEP:
            return
        times.append(t)
        cut = bisect_left(times, t - COARSE_SPAN)
        if cut:
            del times[:cut]
            self.base += cut

    @property
    def last(self) -> int:
        """The running number of the newest point (``base - 1`` before the first)."""
        return self.base + len(self.times) - 1


class CoarseTrail:
    """One counter's value every :data:`COARSE_STEP` seconds over :data:`COARSE_SPAN`.

    What ``offset 1d`` reads, kept by the daemon itself: the values in an array of doubles at
    the points of the source's :class:`CoarseClock` (NaN where the series was not listed), the
    times once per source. A day of a series is ~1.3 kB; with a time array of its own it was
    2.9 kB, and a thousand targets' statements keep some 25,000 of them.
    """

    __slots__ = ("clock", "first", "values")

    def __init__(self, clock: CoarseClock | None = None) -> None:
        self.clock = CoarseClock() if clock is None else clock
        self.values = array("d")
        #: The clock's running number of ``values[0]``.
        self.first = 0

    def add(self, t: float, value: float) -> None:
        clock = self.clock
        clock.tick(t)
        if clock.times[-1] != t:
            return
        at = clock.last
        values = self.values
        if not values:
            self.first = at
        else:
            have = self.first + len(values)
            if have > at:  # this point is already taken
                return
            values.extend([_NAN] * (at - have))
            if self.first < clock.base:
                del values[: clock.base - self.first]
                self.first = clock.base
        values.append(value)

    @property
    def times(self) -> array[float]:
        """The times of the points this trail still holds (a copy)."""
        clock = self.clock
        lo = max(self.first, clock.base) - clock.base
        return clock.times[lo : self.first + len(self.values) - clock.base]

    @property
    def last(self) -> int:
        """The clock's running number of this trail's newest point."""
        return self.first + len(self.values) - 1

    def at(self, t: float) -> tuple[float, float] | None:
        """The point at or before ``t`` if it is less than a step older and the series had one."""
        clock = self.clock
        i = bisect_right(clock.times, t) - 1
        if i < 0 or t - clock.times[i] >= COARSE_STEP:
            return None
        j = clock.base + i - self.first
        if j < 0 or j >= len(self.values):
            return None
        value = self.values[j]
        return None if value != value else (clock.times[i], value)


class Coarse(dict[tuple[str, LabelKey], CoarseTrail]):
    """The coarse trails of one source by (name, labels), with the clock they share."""

    __slots__ = ("checked", "clock")

    def __init__(self) -> None:
        super().__init__()
        self.clock = CoarseClock()
        #: the clock's ``base`` at the last :meth:`forget_old`: nothing ages out until it moves
        self.checked = -1

    def trail(self, key: tuple[str, LabelKey]) -> CoarseTrail:
        found = self.get(key)
        if found is None:
            found = self[key] = CoarseTrail(self.clock)
        return found

    def forget_old(self) -> None:
        """Drop the trails of series not listed for a whole span (statements gone a day)."""
        base = self.clock.base
        if base == self.checked:
            return
        self.checked = base
        for old in [k for k, t in self.items() if t.last < base]:
            del self[old]


_NAN = math.nan


def samples_of(families: Iterable[Metric], names: Container[str] | None = None) -> Samples:
    """Sample name -> (labels, value) of the samples of ``families`` (those in ``names``)."""
    out: Samples = {}
    for family in families:
        for sample in family.samples:
            if names is None or sample.name in names:
                column = out.get(sample.name)
                if column is None:
                    column = out[sample.name] = SampleColumn()
                # the sample's own labels, not a copy: nothing changes them once collected
                column.append(sample.labels, sample.value)
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
        coarse: Coarse | None = None,
        settings: Mapping[str, float] | None = None,
        groups: tuple[Groups, Groups] | None = None,
    ) -> None:
        self.now, self.t_now = now, t_now
        self.before, self.t_before = before, t_before
        # the recent values deriv() regresses over; kept by the caller across windows
        self.trails: Trails = {} if trails is None else trails
        self.trail_length = trail_length
        # a day of counters at a coarse step, for comparisons with the day before
        self.coarse = Coarse() if coarse is None else coarse
        #: The thresholds' settings some evaluations read (minimum call rates, CPU fallback).
        self.settings: Mapping[str, float] = settings or {}
        # groupings of ``now`` and of ``before`` already made: the caller hands this window's
        # ``now`` groupings to the next window as its ``before`` ones, so a histogram's buckets
        # are grouped once per collection, not twice
        self._groups: tuple[Groups, Groups] = groups if groups is not None else ({}, {})

    def _group(
        self,
        samples: Samples | None,
        name: str,
        by: Sequence[str],
        agg: Literal["sum", "max", "min"],
        match: Mapping[str, str],
    ) -> Values:
        """The grouping as the window keeps it: read it, never change it (see :meth:`gauge`)."""
        grouping: Grouping = (name, tuple(by), agg, tuple(match.items()))
        # one object per grouping for the windows that keep it (see _grouped's keys)
        grouping = _groupings(grouping)
        return cast(Values, self._kept(samples, grouping, lambda: _grouped(samples, grouping)))

    def _buckets(self, samples: Samples | None, bucket: str, by: tuple[str, ...]) -> Buckets:
        """``sum by (by, le) (bucket)`` by series and bound, kept like :meth:`_group`'s."""
        grouping = _groupings((bucket, by, "buckets", ()))
        return cast(Buckets, self._kept(samples, grouping, lambda: _bucketed(samples, bucket, by)))

    def _kept(
        self, samples: Samples | None, grouping: Grouping, make: Callable[[], Values | Buckets]
    ) -> Values | Buckets:
        """``make()``, kept in the groupings of ``now`` or ``before`` when it is over one."""
        if samples is self.now or samples is self.before:
            groups = self._groups[0 if samples is self.now else 1]
            found = groups.get(grouping)
            if found is None:
                found = groups[grouping] = make()
            return found
        return make()

    def gauge(
        self,
        name: str,
        by: Sequence[str] = (),
        agg: Literal["sum", "max", "min"] = "sum",
        **match: str,
    ) -> Values:
        """``agg by (by) (name{match})`` now."""
        # a copy: the evaluators may change what they get, the next window reuses the grouping
        return dict(self._group(self.now, name, by, agg, match))

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
        """``histogram_quantile(q, sum by (by, le) (rate(bucket)))``.

        Per series, the buckets' increase where a bucket is in both collections and did not go
        down (what :meth:`delta` keeps); a series none of whose buckets moved has no quantile,
        and is passed over after comparing its bounds and counts (most commands of a Redis
        server are not called between two cycles).
        """
        if self.before is None:
            return {}
        by = tuple(by)
        now = self._buckets(self.now, bucket, by)
        before = self._buckets(self.before, bucket, by)
        out: Values = {}
        for series, (bounds, counts) in now.items():
            old = before.get(series)
            if old is None:
                continue
            old_bounds, old_counts = old
            if bounds == old_bounds:
                if counts == old_counts:
                    continue
                increase = [
                    (bound, count - was)
                    for bound, count, was in zip(bounds, counts, old_counts, strict=True)
                    if count >= was
                ]
            else:
                was_at = dict(zip(old_bounds, old_counts, strict=True))
                increase = [
                    (bound, count - was)
                    for bound, count in zip(bounds, counts, strict=True)
                    if (was := was_at.get(bound)) is not None and count >= was
                ]
            value = histogram_quantile(q, increase)
            if value is not None:
                out[series] = value
        return out

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

    def rate_over(self, name: str, by: Sequence[str], span: float, ago: float = 0.0) -> Values:
        """``sum by (by) (rate(name[span] offset ago))`` from the coarse trail of each series.

        The window's start (and, with ``ago``, its end) is the trail point at or just before
        it, so a series with less history than ``ago + span`` has no value.
        """
        out: Values = {}
        for key, value in self._group(self.now, name, by, "sum", {}).items():
            trail = self.coarse.trail((name, key))
            trail.add(self.t_now, value)
            end = (self.t_now, value) if ago == 0 else trail.at(self.t_now - ago)
            start = trail.at(self.t_now - ago - span)
            if end is not None and start is not None and end[0] > start[0] and end[1] >= start[1]:
                out[key] = (end[1] - start[1]) / (end[0] - start[0])
        # statements no longer listed: their trails go once they are a day old
        self.coarse.forget_old()
        return out


#: Groupings asked for, each kept once (see Window._group); the signals ask for a few hundred.
_groupings: Interned[Grouping, Grouping] = Interned(lambda grouping: grouping, 10_000)
#: Grouping keys seen, each kept once (see _grouped); cleared when there are too many.
_KEYS: dict[LabelKey, LabelKey] = {}
_KEYS_MAX = 200_000
#: A histogram's grouping key by its label dict's identity, per ``by`` (see _grouped). A fleet's
#: Redis commands and probes share some 600 dicts; a collector that made new ones each cycle
#: would only fill this up to the bound, a few MB, and start it again.
_KEY_OF: dict[tuple[str, ...], dict[int, tuple[dict[str, str], LabelKey]]] = {}
_KEY_OF_MAX = 10_000


def _grouped(samples: Samples | None, grouping: Grouping) -> Values:
    """``agg by (by) (name{match})`` over ``samples``, ``grouping`` being (name, by, agg, match)."""
    name, by, agg, match = grouping
    out: Values = {}
    column = samples.get(name) if samples else None
    if not column:
        return out
    items: Iterable[tuple[dict[str, str], float]] = column
    if match:
        items = [(ls, v) for ls, v in column if all(ls.get(k) == m for k, m in match)]
    # this runs for every signal of every target each cycle: plain loops, no generators.
    # Every key is kept once (``_KEYS``): the board keeps two groupings per signal and target
    # for a whole interval, and keys made anew each cycle (with a tuple per label pair) were a
    # third of the objects a young garbage collection walks at a thousand targets; kept once,
    # the collector stops tracking them after it has seen them, and a statement's key outlives
    # it only until the bound clears the table.
    keys = _KEYS
    if len(keys) >= _KEYS_MAX:
        keys.clear()
    memo: dict[int, tuple[dict[str, str], LabelKey]] | None = None
    if "le" in by:
        # the collectors make a histogram's label dicts once for every target and cycle: their
        # key is looked up by the dict's identity (the entry holds the dict, so no other dict
        # can have its id while it is there)
        memo = _KEY_OF.setdefault(by, {})
    for labels, value in items:
        if memo is None:
            key = tuple([(k, labels.get(k, "")) for k in by])
            key = keys.setdefault(key, key)
        else:
            hit = memo.get(id(labels))
            if hit is not None:
                key = hit[1]
            else:
                key = tuple([(k, labels.get(k, "")) for k in by])
                key = keys.setdefault(key, key)
                if len(memo) >= _KEY_OF_MAX:
                    memo.clear()
                memo[id(labels)] = (labels, key)
        old = out.get(key)
        if old is None:
            out[key] = value
        elif agg == "sum":
            out[key] = old + value
        else:
            out[key] = max(old, value) if agg == "max" else min(old, value)
    return out


#: A histogram bucket's series and bound by its label dict's identity, per ``by`` (see
#: _bucketed); bounded like _KEY_OF.
_BOUND_OF: dict[tuple[str, ...], dict[int, tuple[dict[str, str], LabelKey, float]]] = {}


def _bucketed(samples: Samples | None, bucket: str, by: tuple[str, ...]) -> Buckets:
    """``sum by (by, le) (bucket)`` over ``samples`` as series -> (bounds, counts).

    Two arrays of doubles per series, rather than a key of two label pairs and a float per
    bucket: a thousand targets' Redis commands are ~500 buckets a target, kept for two cycles,
    and such a key is hashed anew at every lookup. A series' buckets come one after the other
    with their bounds rising; any other order is summed all the same.
    """
    out: Buckets = {}
    column = samples.get(bucket) if samples else None
    if not column:
        return out
    keys = _KEYS
    if len(keys) >= _KEYS_MAX:
        keys.clear()
    memo = _BOUND_OF.setdefault(by, {})
    last: LabelKey | None = None
    bounds, counts = array("d"), array("d")  # replaced at the first sample
    for labels, value in column:
        hit = memo.get(id(labels))
        if hit is None:
            series = tuple([(k, labels.get(k, "")) for k in by])
            series = keys.setdefault(series, series)
            if len(memo) >= _KEY_OF_MAX:
                memo.clear()
            hit = memo[id(labels)] = (labels, series, float(labels.get("le", "")))
        if hit[1] is not last:
            last = hit[1]
            found = out.get(last)
            if found is None:
                found = out[last] = (array("d"), array("d"))
            bounds, counts = found
        bound = hit[2]
        if not bounds or bound > bounds[-1]:
            bounds.append(bound)
            counts.append(value)
        else:  # a bound again (series summed) or out of order
            i = bisect_left(bounds, bound)
            if i < len(bounds) and bounds[i] == bound:
                counts[i] = counts[i] + value
            else:
                bounds.insert(i, bound)
                counts.insert(i, value)
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
