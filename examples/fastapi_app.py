"""A FastAPI service on asyncpg and Redis, instrumented for perf-exporter's ``app`` collector.

Run it (FastAPI and uvicorn installed)::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    REDIS_URL=redis://127.0.0.1:6379/0 \\
    uvicorn examples.fastapi_app:app --workers 2

and point the exporter at the same Redis::

    targets:
      app:
        - {name: shop, url: "redis://127.0.0.1:6379/0"}

Everything that matters lives in :class:`Service`, which knows nothing of FastAPI: the web layer
at the bottom only maps routes to its methods and starts/stops it in the lifespan.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from exporter.instrument import DEFAULT_PREFIX, CacheStats, PoolReporter, Publisher

try:  # FastAPI is only the web layer; the core below runs without it
    from fastapi import FastAPI, Request
except ImportError:
    FastAPI = Request = None  # type: ignore[assignment,misc]

#: Cache namespaces and their TTLs in seconds, as in the reference application.
NAMESPACES = {"api_response": 300, "search_results": 600, "user_session": 3600}


class Cache:
    """Redis first, an in-memory dict when Redis fails; every outcome counted per namespace."""

    def __init__(self, redis: aioredis.Redis, publisher: Publisher) -> None:
        self.redis = redis
        self.memory: dict[str, tuple[float, str]] = {}
        self.stats = {ns: CacheStats(ns, publisher) for ns in NAMESPACES}

    @staticmethod
    def key(namespace: str, raw: str) -> str:
        return f"cache:{namespace}:{hashlib.sha256(raw.encode()).hexdigest()[:32]}"

    async def get(self, namespace: str, raw: str) -> Any | None:
        stats, key = self.stats[namespace], self.key(namespace, raw)
        try:
            text = await self.redis.get(key)
        except RedisError:
            stats.fallback()
            expires, text = self.memory.get(key, (0.0, None))
            if expires < time.monotonic():
                text = None
        if text is None:
            stats.miss()
            return None
        stats.hit()
        return json.loads(text)

    async def set(self, namespace: str, raw: str, value: Any) -> None:
        stats, key, ttl = self.stats[namespace], self.key(namespace, raw), NAMESPACES[namespace]
        text = json.dumps(value, default=str)
        try:
            await self.redis.set(key, text, ex=ttl)
        except RedisError:
            stats.fallback()
            self.memory[key] = (time.monotonic() + ttl, text)
        stats.set()


class Service:
    """The application core: an instrumented asyncpg pool and a counted cache."""

    def __init__(
        self, pool: asyncpg.Pool, redis: aioredis.Redis, publisher: Publisher, reporter: Any
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.publisher = publisher
        self.reporter = reporter
        self.cache = Cache(redis, publisher)

    @classmethod
    async def start(
        cls,
        dsn: str,
        redis_url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        pool_min: int = 5,
        pool_max: int = 20,
    ) -> Service:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=pool_min,
            max_size=pool_max,
            max_queries=50_000,
            max_inactive_connection_lifetime=300,
            command_timeout=60,
        )
        redis = aioredis.from_url(redis_url, decode_responses=True, socket_timeout=1.0)
        # one publisher per process, owned here: one pipelined round trip per second for all
        publisher = Publisher(redis, prefix=prefix)
        reporter = PoolReporter(pool, "main", publisher)
        return cls(pool, redis, publisher, reporter)

    async def item(self, item_id: int) -> dict[str, Any]:
        cached = await self.cache.get("api_response", f"item:{item_id}")
        if cached is not None:
            return dict(cached)
        async with self.pool.acquire(timeout=30) as conn:
            row = await conn.fetchrow(
                "SELECT $1::int AS id, md5($1::text) AS name, now() AS fetched_at", item_id
            )
        value = dict(row)
        await self.cache.set("api_response", f"item:{item_id}", value)
        return json.loads(json.dumps(value, default=str))

    async def search(self, query: str) -> list[int]:
        cached = await self.cache.get("search_results", query)
        if cached is not None:
            return list(cached)
        ids = await self.pool.fetchval(
            "SELECT array_agg(g) FROM generate_series(1, 50) g WHERE md5(g::text) LIKE $1",
            f"%{query[:8]}%",
        )
        result = list(ids or [])
        await self.cache.set("search_results", query, result)
        return result

    async def close(self) -> None:
        await self.publisher.close()  # last counts out, this worker's pool key removed
        await self.pool.close()
        await self.redis.aclose()


def create_app(
    dsn: str | None = None, redis_url: str | None = None, prefix: str = DEFAULT_PREFIX
) -> Any:
    """The FastAPI application; routes only map to :class:`Service` methods."""
    if FastAPI is None:
        raise RuntimeError("FastAPI is not installed: pip install fastapi uvicorn")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = await Service.start(
            dsn or os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres"),
            redis_url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            prefix=prefix,
        )
        yield
        await app.state.service.close()

    app = FastAPI(title="instrumented example", lifespan=lifespan)

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, request: Request) -> dict[str, Any]:
        service: Service = request.app.state.service
        return await service.item(item_id)

    @app.get("/search")
    async def search(q: str, request: Request) -> list[int]:
        service: Service = request.app.state.service
        return await service.search(q)

    return app


#: What ``uvicorn examples.fastapi_app:app`` serves (None without FastAPI).
app = create_app() if FastAPI is not None else None
