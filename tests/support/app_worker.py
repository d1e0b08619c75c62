"""One application worker process for the instrument tests: a real asyncpg pool and Redis cache.

Started by tests/integration/test_app.py as
``python -m tests.support.app_worker <json options>`` from the repository root; it
prints ``ready`` and then obeys one JSON command per stdin line, answering ``ok`` (or
``error <text>``) on stdout when the command is done:

* ``{"cmd": "cache", "namespace": ns, "hits": n, "misses": n, "sets": n, "errors": n,
  "fallbacks": n}``: real Redis gets/sets through decorated cache functions;
* ``{"cmd": "hold", "clients": n, "seconds": s}``: n tasks each hold a pooled connection for
  ``pg_sleep(s)`` (started in the background, answered at once);
* ``{"cmd": "acquire_timeout", "timeout": s}``: one acquire that must time out;
* ``{"cmd": "wait_idle"}``: wait for the held connections to come back;
* ``{"cmd": "flush"}``: publish now instead of waiting for the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from exporter.instrument import CacheStats, PoolReporter, Publisher


class Worker:
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.tasks: set[asyncio.Task[None]] = set()
        self.caches: dict[str, CacheStats] = {}

    async def start(self) -> None:
        opts = self.options
        self.redis = aioredis.from_url(opts["redis"], decode_responses=True)
        self.publisher = Publisher(
            self.redis, prefix=opts["prefix"], flush_interval=opts["flush"], ttl=opts["ttl"]
        )
        self.pool = await asyncpg.create_pool(
            opts["dsn"], min_size=1, max_size=opts["pool_max"], statement_cache_size=0
        )
        self.reporter = PoolReporter(
            self.pool, "main", self.publisher, interval=opts["pool_interval"]
        )

    def cache(self, namespace: str) -> CacheStats:
        if namespace not in self.caches:
            self.caches[namespace] = CacheStats(namespace, self.publisher)
        return self.caches[namespace]

    async def run_cache(self, cmd: dict[str, Any]) -> None:
        stats = self.cache(cmd["namespace"])
        key_base = f"test:{cmd['namespace']}:{id(self)}"

        @stats.track_get
        async def get(key: str) -> str | None:
            value: str | None = await self.redis.get(key)
            return value

        @stats.track_set
        async def put(key: str, value: str) -> None:
            await self.redis.set(key, value, ex=60)

        for i in range(cmd.get("sets", 0)):
            await put(f"{key_base}:present:{i}", "v")
        for i in range(cmd.get("hits", 0)):
            assert await get(f"{key_base}:present:{i % max(1, cmd.get('sets', 1))}") == "v"
        for i in range(cmd.get("misses", 0)):
            assert await get(f"{key_base}:absent:{i}") is None
        if cmd.get("errors", 0):
            await self.redis.hset(f"{key_base}:hash", "f", "v")
        for _ in range(cmd.get("errors", 0)):
            with contextlib.suppress(Exception):
                await get(f"{key_base}:hash")  # GET on a hash: WRONGTYPE
        for _ in range(cmd.get("fallbacks", 0)):
            stats.fallback()
        if cmd.get("cached", 0):
            # the function cache: a first call per key misses and pays, the repeats hit
            @stats.cached(ttl=60, key=lambda i: f"{key_base}:{i}")
            async def compute(i: int) -> int:
                await asyncio.sleep(0.005)
                return i

            for n in range(cmd["cached"]):
                assert await compute(n % 4) == n % 4

    async def hold(self, seconds: float) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(f"SELECT pg_sleep({float(seconds)})")

    async def handle(self, cmd: dict[str, Any]) -> None:
        kind = cmd["cmd"]
        if kind == "cache":
            await self.run_cache(cmd)
        elif kind == "hold":
            for _ in range(cmd["clients"]):
                task = asyncio.create_task(self.hold(cmd["seconds"]))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            await asyncio.sleep(0.05)  # let them all reach acquire()
        elif kind == "acquire_timeout":
            try:
                await self.pool.acquire(timeout=cmd["timeout"])
            except TimeoutError:
                pass
            else:
                raise AssertionError("acquire did not time out")
        elif kind == "wait_idle":
            await asyncio.wait_for(asyncio.gather(*self.tasks), 30)
        elif kind == "flush":
            self.reporter._next_publish = 0.0  # publish the pool snapshot now too
            if not await self.publisher.flush():
                raise RuntimeError("flush failed")
        else:
            raise ValueError(f"unknown command {kind}")


def reply(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main() -> None:
    worker = Worker(json.loads(sys.argv[1]))
    await worker.start()
    reply("ready")
    for _ in range(10_000):
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            break
        try:
            await worker.handle(json.loads(line))
        except Exception as exc:
            reply(f"error {type(exc).__name__}: {exc}")
        else:
            reply("ok")
    await worker.publisher.close()
    await worker.pool.close()
    await worker.redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
