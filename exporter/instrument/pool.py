"""An asyncpg pool's size, idle connections, waiters, timeouts and acquire latency.

The reporter wraps the pool's ``acquire`` (so ``pool.fetch()`` and friends, which acquire
internally, are measured too) by giving this one pool object a subclass of its own class with a
timed ``acquire``: asyncpg pools use ``__slots__``, so the method cannot be replaced on the
instance. ``isinstance(pool, asyncpg.Pool)`` still holds, and :meth:`PoolReporter.unwrap`
restores the original class.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Generator
from typing import Any

from exporter.instrument.layout import ACQUIRE_BUCKETS, bucket_field
from exporter.instrument.publisher import Publisher


class _TimedAcquire:
    """Stands in for asyncpg's PoolAcquireContext: both ``await`` and ``async with`` work."""

    __slots__ = ("_context", "_reporter")

    def __init__(self, reporter: PoolReporter, context: Any) -> None:
        self._reporter = reporter
        self._context = context

    def __await__(self) -> Generator[Any, None, Any]:
        return self._reporter.timed(self._plain()).__await__()

    async def _plain(self) -> Any:
        return await self._context

    async def __aenter__(self) -> Any:
        return await self._reporter.timed(self._context.__aenter__())

    async def __aexit__(self, *exc: object) -> None:
        await self._context.__aexit__(*exc)


class PoolReporter:
    """Publishes one asyncpg pool's state every ``interval`` seconds under ``name``.

    The application's ``publisher`` ships it; :meth:`close` removes this pool only.

    ``waiting`` counts callers inside ``acquire`` right now; ``timeouts`` the acquires that gave
    up; the latency histogram observes every successful acquire.
    """

    def __init__(
        self,
        pool: Any,
        name: str,
        publisher: Publisher,
        *,
        interval: float = 5.0,
        buckets: tuple[float, ...] = ACQUIRE_BUCKETS,
    ) -> None:
        self.pool = pool
        self.name = name
        self.interval = interval
        self.buckets = tuple(sorted(buckets))
        self.waiting = 0
        self.timeouts = 0
        self.acquire_count = 0
        self.acquire_sum = 0.0
        self._bucket_counts = [0] * (len(self.buckets) + 1)  # last one: above every bound
        self._fields = [bucket_field(b) for b in self.buckets] + [bucket_field(float("inf"))]
        self._next_publish = 0.0
        self._original_class = type(pool)
        self._wrap()
        self.publisher = publisher
        publisher.add_pool(self)

    def _wrap(self) -> None:
        base = self._original_class
        reporter = self

        def acquire(pool: Any, *, timeout: float | None = None) -> _TimedAcquire:
            return _TimedAcquire(reporter, base.acquire(pool, timeout=timeout))

        subclass = type(f"Reported{base.__name__}", (base,), {"__slots__": (), "acquire": acquire})
        self.pool.__class__ = subclass

    def unwrap(self) -> None:
        """Give the pool its own class back (acquires are no longer measured)."""
        self.pool.__class__ = self._original_class

    async def timed(self, acquiring: Awaitable[Any]) -> Any:
        self.waiting += 1
        started = time.perf_counter()
        try:
            connection = await acquiring
        except TimeoutError:
            self.timeouts += 1
            raise
        finally:
            self.waiting -= 1
        self.observe(time.perf_counter() - started)
        return connection

    def observe(self, seconds: float) -> None:
        self._bucket_counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.acquire_count += 1
        self.acquire_sum += seconds

    def due(self, now: float) -> bool:
        return now >= self._next_publish

    def published(self, now: float) -> None:
        self._next_publish = now + self.interval

    def snapshot(self) -> dict[str, str | int | float]:
        """The hash fields to publish: gauges now, counters and cumulative buckets so far."""
        pool = self.pool
        out: dict[str, str | int | float] = {
            "pool": self.name,
            "size": pool.get_size(),
            "idle": pool.get_idle_size(),
            "min": pool.get_min_size(),
            "max": pool.get_max_size(),
            "waiting": self.waiting,
            "timeouts": self.timeouts,
            "acquire_count": self.acquire_count,
            "acquire_sum": repr(self.acquire_sum),
            "updated": repr(time.time()),
        }
        running = 0
        for field, count in zip(self._fields, self._bucket_counts, strict=True):
            running += count
            out[field] = running
        return out

    async def close(self) -> None:
        """Stop measuring and remove this pool's key (the pool is going away)."""
        self.unwrap()
        await self.publisher.remove_pool(self)
