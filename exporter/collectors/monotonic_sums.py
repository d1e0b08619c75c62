"""Totals that never go backwards, summed from counters of sources that restart.

Shared by the collectors whose sources reset their counters under them: the application's
worker processes (a restarted worker starts at 0) and Redis (CONFIG RESETSTAT, a restart).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

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

    @property
    def last(self) -> Mapping[tuple[str, Series], float]:
        """The values the last :meth:`update` took (replaced, not changed, by the next)."""
        return self._last

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
