"""Cache statistics per namespace: hits, misses, sets, errors and fallbacks to memory.

Counting is an integer increment in this process; the application's :class:`Publisher` flushes
the differences to Redis once a second in one pipelined round trip, never once per call.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from exporter.instrument.layout import CACHE_KINDS
from exporter.instrument.publisher import Publisher

P = ParamSpec("P")
R = TypeVar("R")


class CacheStats:
    """Counters of one cache namespace (``api_response``, ``user_session`` ...).

    Call :meth:`hit`, :meth:`miss`, :meth:`set`, :meth:`error` and :meth:`fallback` where the
    cache does those things, or decorate the cache's get with :meth:`track_get` (a ``None``
    result is a miss, an exception an error) and its set with :meth:`track_set`.

    The ``publisher`` the application created ships the counts; closing these stats detaches
    them from it and leaves the publisher (and every other namespace) running. Meant for
    asyncio code: the counters are plain integers, not guarded for threads.
    """

    def __init__(self, namespace: str, publisher: Publisher) -> None:
        self.namespace = namespace
        self.publisher = publisher
        self.hits = 0
        self.misses = 0
        self.sets = 0
        self.errors = 0
        self.fallbacks = 0
        self._fields = {kind: f"{namespace}:{kind}" for kind in CACHE_KINDS}
        publisher.add_cache(self)

    def hit(self) -> None:
        self.hits += 1

    def miss(self) -> None:
        self.misses += 1

    def set(self) -> None:
        self.sets += 1

    def error(self) -> None:
        self.errors += 1

    def fallback(self) -> None:
        """The value came from (or went to) the in-memory fallback because Redis failed."""
        self.fallbacks += 1

    def take(self) -> dict[str, int]:
        """The counts since the last call, by Redis hash field, and reset them (publisher use)."""
        counts = {
            "hits": self.hits,
            "misses": self.misses,
            "sets": self.sets,
            "errors": self.errors,
            "fallbacks": self.fallbacks,
        }
        self.hits = self.misses = self.sets = self.errors = self.fallbacks = 0
        return {self._fields[kind]: n for kind, n in counts.items() if n}

    def give_back(self, deltas: dict[str, int]) -> None:
        """A flush failed: add its counts back so the next one sends them."""
        for field, n in deltas.items():
            kind = field.rpartition(":")[2]
            setattr(self, kind, getattr(self, kind) + n)

    def _counted(self, func: Callable[P, R], *, get: bool) -> Callable[P, R]:
        """``func`` (sync or async) counted: an exception is an error; a return is a hit or a
        miss (``get``) or a set. Inline branches, not a callback: this runs on every cache call."""
        if inspect.iscoroutinefunction(func):
            afunc = cast(Callable[P, Awaitable[Any]], func)
            publisher = self.publisher

            @functools.wraps(func)
            async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                if not publisher.running:  # created before the loop ran: start now
                    publisher.ensure_started()
                try:
                    result = await afunc(*args, **kwargs)
                except Exception:
                    self.errors += 1
                    raise
                if not get:
                    self.sets += 1
                elif result is None:
                    self.misses += 1
                else:
                    self.hits += 1
                return result

            return cast(Callable[P, R], awrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                result = func(*args, **kwargs)
            except Exception:
                self.errors += 1
                raise
            if not get:
                self.sets += 1
            elif result is None:
                self.misses += 1
            else:
                self.hits += 1
            return result

        return wrapper

    def track_get(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a cache get (sync or async): ``None`` is a miss, a value a hit."""
        return self._counted(func, get=True)

    def track_set(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a cache set (sync or async): each call that returns is a set."""
        return self._counted(func, get=False)

    async def close(self) -> None:
        """Send this namespace's last counts and stop publishing it (its publisher runs on)."""
        await self.publisher.remove_cache(self)
