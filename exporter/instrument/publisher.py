"""The one background task per process that ships counters and pool snapshots to Redis.

Counting is in memory and costs a few attribute increments; every ``flush_interval`` (1 s) the
publisher sends everything that changed in ONE pipelined round trip (HINCRBY per changed
counter, HSET per due pool snapshot, EXPIRE per key). If Redis is down the counts are kept and
sent with the next successful flush; the application never sees an error from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

from exporter.instrument.layout import DEFAULT_PREFIX, cache_key, pool_key, request_key

if TYPE_CHECKING:
    from exporter.instrument.cache import CacheStats
    from exporter.instrument.pool import PoolReporter

log = logging.getLogger("exporter.instrument")


def process_identity() -> str:
    """``<hostname>:<pid>:<token>``: unique even when a container restarts with the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Publisher:
    """Batches the counters of the :class:`CacheStats` and :class:`PoolReporter` given to it.

    The application creates one per process (in its startup, while the event loop runs, so the
    flush task starts), hands it to every stats object and closes it at shutdown: whoever
    created it owns it, and nothing else stops it. ``ttl`` (seconds) is how long a worker's
    keys outlive its last publish; the ``app`` collector's interval must be shorter, so it sees
    a dead worker's final counts before they vanish.
    """

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = DEFAULT_PREFIX,
        flush_interval: float = 1.0,
        ttl: float = 30.0,
    ) -> None:
        if ttl <= flush_interval:
            raise ValueError("ttl must be longer than flush_interval")
        self.redis = redis
        self.prefix = prefix
        self.flush_interval = flush_interval
        self.ttl = ttl
        self._pid = os.getpid()
        self.process = process_identity()
        self._caches: list[CacheStats] = []
        self._pools: list[PoolReporter] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._cache_refreshed = 0.0
        #: Flushes that reached Redis, and those that failed (their counts were kept).
        self.flushes = 0
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._task is not None

    def ensure_started(self) -> None:
        """Start the flush task if an event loop runs here (otherwise on a later call)."""
        if self._task is not None or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._run(), name="perf-instrument-publisher")

    def add_cache(self, stats: CacheStats) -> None:
        self._caches.append(stats)
        self.ensure_started()

    def add_pool(self, reporter: PoolReporter) -> None:
        self._pools.append(reporter)
        self.ensure_started()

    async def remove_cache(self, stats: CacheStats) -> None:
        """Forget one namespace after sending its last counts; the others keep publishing."""
        if stats not in self._caches:
            return
        self._caches.remove(stats)
        deltas = stats.take()
        timings = stats.timings()
        if not deltas and timings is None:
            return
        key = cache_key(self.prefix, self.process)
        pipe = self.redis.pipeline(transaction=False)
        for field, delta in deltas.items():
            pipe.hincrby(key, field, delta)
        if deltas:
            pipe.expire(key, max(1, round(self.ttl)))
        if timings is not None:
            rkey = request_key(self.prefix, self.process)
            pipe.hset(rkey, mapping=timings)
            pipe.expire(rkey, max(1, round(self.ttl)))
        try:
            await pipe.execute()
        except Exception as exc:  # nothing is left to retry them: say so once, never raise
            log.warning("cannot publish the last stats of %s to Redis: %s", stats.namespace, exc)
            self.failures += 1

    async def remove_pool(self, reporter: PoolReporter) -> None:
        """Forget a pool and delete its key at once (a closed pool has no size to report)."""
        if reporter in self._pools:
            self._pools.remove(reporter)
        with contextlib.suppress(Exception):
            await self.redis.delete(pool_key(self.prefix, self.process, reporter.name))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    async def flush(self) -> bool:
        """Send what changed since the last flush in one round trip; False if Redis failed."""
        if os.getpid() != self._pid:  # forked after creation: become a process of our own
            self._pid = os.getpid()
            self.process = process_identity()
        now = time.monotonic()
        pipe = self.redis.pipeline(transaction=False)
        commands = 0
        taken: list[tuple[CacheStats, dict[str, int]]] = []
        ckey = cache_key(self.prefix, self.process)
        for stats in self._caches:
            deltas = stats.take()
            if deltas:
                taken.append((stats, deltas))
                for field, delta in deltas.items():
                    pipe.hincrby(ckey, field, delta)
                    commands += 1
        refresh = bool(taken) or (bool(self._caches) and now - self._cache_refreshed > self.ttl / 3)
        if refresh:
            pipe.expire(ckey, max(1, round(self.ttl)))
            commands += 1
        # cached-call timings go as totals (HSET): a failed flush is simply sent again later
        rkey = request_key(self.prefix, self.process)
        timed: list[tuple[CacheStats, int]] = []
        for stats in self._caches:
            fields = stats.timings()
            if fields is not None:
                timed.append((stats, stats.observed))
                pipe.hset(rkey, mapping=fields)
                commands += 1
        if timed or (refresh and any(stats.observed for stats in self._caches)):
            pipe.expire(rkey, max(1, round(self.ttl)))
            commands += 1
        due = [reporter for reporter in self._pools if reporter.due(now)]
        for reporter in due:
            key = pool_key(self.prefix, self.process, reporter.name)
            pipe.hset(key, mapping=reporter.snapshot())
            pipe.expire(key, max(1, round(self.ttl)))
            commands += 2
        if commands == 0:
            return True
        try:
            await pipe.execute()
        except Exception as exc:  # Redis down or slow: keep the counts, never bother the app
            for stats, deltas in taken:
                stats.give_back(deltas)
            if self.failures == 0:
                log.warning("cannot publish app stats to Redis: %s", exc)
            self.failures += 1
            return False
        if taken or self._caches:
            self._cache_refreshed = now
        for stats, observed in timed:
            stats.timings_published(observed)
        for reporter in due:
            reporter.published(now)
        self.flushes += 1
        return True

    async def close(self) -> None:
        """Stop the task and send the last counts (call on application shutdown)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for reporter in list(self._pools):
            reporter.unwrap()
            await self.remove_pool(reporter)
        await self.flush()
