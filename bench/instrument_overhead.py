"""What exporter.instrument costs per call: instrumented vs bare cache gets and pool acquires.

    python -m bench.instrument_overhead [--dsn postgresql://...] [--redis redis://...] [-n 20000]

Cache calls are timed against an in-memory dict, so the table shows the wrapper's own cost
rather than a Redis round trip (which is ~50-100 us and dwarfs it). Acquires are timed on a
real asyncpg pool (acquire + release of an idle connection, whose reset is a round trip, so
that row is mostly noise) and around a no-I/O stand-in context, which isolates the wrapper.
Counts are flushed to Redis in the background as in production, under a throw-away prefix with
a short TTL. ``CacheStats.cached`` hits are timed twice against a hand-written GET + json.loads:
on an in-memory client (the decorator's own cost: key hash, timing, histogram) and on the real
Redis (what an application sees).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from exporter.instrument import CacheStats, PoolReporter, Publisher
from exporter.instrument.pool import _TimedAcquire


async def _run_ns(call: Callable[[], Awaitable[Any]], n: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(n):
        await call()
    return (time.perf_counter_ns() - started) / n


async def compare(
    bare: Callable[[], Awaitable[Any]],
    instrumented: Callable[[], Awaitable[Any]],
    n: int,
    rounds: int = 7,
) -> tuple[float, float]:
    """Best of ``rounds`` runs of each, alternating so drift hits both alike; ns per call."""
    best_bare = best_instrumented = float("inf")
    for _ in range(rounds):
        best_bare = min(best_bare, await _run_ns(bare, n))
        best_instrumented = min(best_instrumented, await _run_ns(instrumented, n))
    return best_bare, best_instrumented


class _MemoryRedis:
    """The two commands ``cached`` uses, on a dict: isolates the decorator from the network."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def set(self, key: str, value: str, ex: int | None = None) -> None:
        self.data[key] = value.encode()


class _ReadyContext:
    """Stands in for asyncpg's acquire context with no I/O, to time the wrapper alone."""

    async def __aenter__(self) -> object:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dsn", default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres")
    )
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("-n", type=int, default=20_000, help="calls per timed run")
    args = parser.parse_args()

    redis = aioredis.from_url(args.redis)
    publisher = Publisher(redis, prefix=f"perf:bench:{os.getpid()}:", ttl=10)
    stats = CacheStats("bench", publisher)
    store = {"present": b"value"}

    async def bare_get() -> Any:
        return store.get("present")

    tracked_get = stats.track_get(bare_get)

    async def explicit_hit() -> Any:
        value = store.get("present")
        stats.hit()
        return value

    memory = _MemoryRedis()
    payload = {"items": list(range(10)), "total": 10}

    async def compute(n: int) -> dict[str, Any]:
        return payload

    cached_memory = stats.cached(ttl=300, redis=memory)(compute)
    cached_redis = stats.cached(ttl=60, prefix=f"perf:bench:{os.getpid()}:")(compute)
    await cached_memory(1)
    await cached_redis(1)  # both now hit
    (memory_key,) = memory.data
    redis_key = f"perf:bench:{os.getpid()}:bench:" + memory_key.split(":")[-1]

    async def bare_memory_get() -> Any:
        return json.loads(await memory.get(memory_key) or b"null")

    async def bare_redis_get() -> Any:
        return json.loads(await redis.get(redis_key) or b"null")

    async def memory_hit() -> Any:
        return await cached_memory(1)

    async def redis_hit() -> Any:
        return await cached_redis(1)

    bare_pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=1)
    timed_pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=1)

    async def bare_acquire() -> None:
        async with bare_pool.acquire():
            pass

    async def timed_acquire() -> None:
        async with timed_pool.acquire():
            pass

    reporter = PoolReporter(timed_pool, "bench", publisher)

    async def bare_context() -> None:
        async with _ReadyContext():
            pass

    async def timed_context() -> None:
        async with _TimedAcquire(reporter, _ReadyContext()):
            pass

    n = args.n
    rows = [
        ("cache get (decorator)", *await compare(bare_get, tracked_get, n)),
        ("cache get (stats.hit())", *await compare(bare_get, explicit_hit, n)),
        ("cached hit (memory client)", *await compare(bare_memory_get, memory_hit, n)),
        ("cached hit (real Redis)", *await compare(bare_redis_get, redis_hit, n // 10)),
        ("acquire wrapper alone", *await compare(bare_context, timed_context, n)),
        ("pool acquire+release", *await compare(bare_acquire, timed_acquire, n // 10)),
    ]
    print(f"{'operation':<28} {'bare ns':>10} {'instrumented ns':>16} {'overhead ns':>12}")
    for name, bare, instrumented in rows:
        print(f"{name:<28} {bare:>10.0f} {instrumented:>16.0f} {instrumented - bare:>12.0f}")
    print(f"flushes to Redis during the run: {publisher.flushes} (one round trip each)")

    await redis.delete(redis_key)
    await publisher.close()
    await bare_pool.close()
    await timed_pool.close()
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
