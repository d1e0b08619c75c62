"""Totals that never go backwards, summed from counters of sources that restart.

Shared by the collectors whose sources reset their counters under them: the application's
worker processes (a restarted worker starts at 0) and Redis (CONFIG RESETSTAT, a restart).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

#: The label values of one exported series.
Series = tuple[str, ...]


class MonotonicSums:
    """Sums per-source counters into totals that never go backwards.

    Each cycle passes the current values keyed by (source, series). A source that vanishes, or
    whose value went down (it restarted), keeps what it had counted in a base that is added to
    every later total; a source key seen for the first time counts from its current value.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, Series], float] = {}
        self._base: dict[Series, float] = defaultdict(float)

    def update(self, current: dict[tuple[str, Series], float]) -> dict[Series, float]:
        """Take this cycle's values by (source, series); return the totals by series."""
        for key, previous in self._last.items():
            value = current.get(key)
            if value is None or value < previous:
                # the source vanished, or its counter restarted: keep what it had counted
                self._base[key[1]] += previous
        self._last = dict(current)
        totals: dict[Series, float] = dict(self._base)
        for (_, series), value in current.items():
            totals[series] = totals.get(series, 0.0) + value
        return totals

    def update_some(
        self, keys: Iterable[tuple[str, Series]], current: Mapping[tuple[str, Series], float]
    ) -> None:
        """:meth:`update` for ``keys`` alone: a key of them missing from ``current`` vanished;
        every other key keeps its last value. Read the totals with :meth:`total`.

        For a caller that knows which of its sources did not change in a cycle (their values
        are what they were) and so need not be handed over again.
        """
        last, base = self._last, self._base
        for key in keys:
            previous = last.get(key)
            value = current.get(key)
            if previous is not None and (value is None or value < previous):
                base[key[1]] += previous
            if value is None:
                last.pop(key, None)
            else:
                last[key] = value

    def rebase(self) -> None:
        """Every source vanished at once (all restarted): what they counted goes to the bases."""
        for (_, series), previous in self._last.items():
            self._base[series] += previous
        self._last = {}

    def total(self, key: tuple[str, Series]) -> float | None:
        """The total of ``key``'s series when ``key`` is its only live source (None: nothing
        counted for that series yet)."""
        value = self._last.get(key)
        base = self._base.get(key[1])
        if value is None:
            return base
        return value if base is None else base + value
