"""Objects made once per key and shared by every target and cycle.

Label dicts and series keys repeat across a fleet's targets (the same commands, the same bucket
bounds): made once and shared, the summary board and the monotonic sums keep references instead
of copies. Shared objects are never changed once made. A cache that fills up is cleared rather
than grown, so odd keys never pile up.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Interned(Generic[K, V]):
    """``interned(key)``: ``make(key)`` the first time, the same object after that."""

    def __init__(self, make: Callable[[K], V], limit: int) -> None:
        self._make = make
        self._limit = limit
        self._made: dict[K, V] = {}

    def __call__(self, key: K) -> V:
        value = self._made.get(key)
        if value is None:
            if len(self._made) >= self._limit:
                self._made.clear()
            value = self._made[key] = self._make(key)
        return value
