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

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from examples.namespaces import NAMESPACES
from exporter.instrument import DEFAULT_PREFIX, CacheStats, PoolReporter, Publisher

try:  # FastAPI is only the web layer; the core below runs without it
    from fastapi import Depends, FastAPI, Request
except ImportError:
    Depends = FastAPI = Request = None  # type: ignore[assignment,misc]

#: The ``orders`` table the budget, vector, report and payment routes read; create it once
#: (``psql -c "$(python -c 'import examples.fastapi_app as m; print(m.SCHEMA)')"``; the demo
#: does). The item, search, session, LLM and stats routes need no table.
SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id int PRIMARY KEY,
    user_id int NOT NULL,
    amount numeric(10, 2) NOT NULL,
    status text NOT NULL,
    note text NOT NULL,
    paid_at timestamptz
);
CREATE INDEX IF NOT EXISTS orders_user_id ON orders (user_id);
INSERT INTO orders
SELECT g, g % 5000, (g % 997) / 10.0, (ARRAY['new', 'paid', 'shipped', 'refunded'])[g % 4 + 1],
       md5(g::text), NULL
FROM generate_series(1, 100000) g
ON CONFLICT DO NOTHING;
"""


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

    async def session(self, user_id: int) -> dict[str, Any]:
        # the user's profile and preferences, never a token: secrets are not cached
        cached = await self.cache.get("user_session", f"user:{user_id}")
        if cached is not None:
            return dict(cached)
        row = await self.pool.fetchrow(
            "SELECT $1::int AS user_id, 'en' AS locale, md5($1::text) AS display_name", user_id
        )
        value = dict(row)
        await self.cache.set("user_session", f"user:{user_id}", value)
        return value

    async def budget(self, user_id: int) -> dict[str, Any]:
        cached = await self.cache.get("budget_status", f"user:{user_id}")
        if cached is not None:
            return dict(cached)
        row = await self.pool.fetchrow(
            "SELECT count(*) AS orders, coalesce(sum(amount), 0)::float8 AS spent "
            "FROM orders WHERE user_id = $1",
            user_id,
        )
        value = {"user_id": user_id, **dict(row)}
        await self.cache.set("budget_status", f"user:{user_id}", value)
        return value

    async def llm(self, prompt: str) -> dict[str, Any]:
        cached = await self.cache.get("llm_response", prompt)
        if cached is not None:
            return dict(cached)
        await asyncio.sleep(0.08)  # stands in for a model call: slow, and no database
        value = {"prompt": prompt, "answer": hashlib.sha256(prompt.encode()).hexdigest()[:16]}
        await self.cache.set("llm_response", prompt, value)
        return value

    async def vector(self, query: str) -> list[int]:
        cached = await self.cache.get("vector_search", query)
        if cached is not None:
            return list(cached)
        # a nearest-neighbour search without an index: a full sort, the slow query to cache
        ids = await self.pool.fetchval(
            "SELECT array_agg(id) FROM (SELECT id FROM orders "
            "ORDER BY abs(hashtext(note)::int8 - hashtext($1)) LIMIT 5) nearest",
            query,
        )
        result = list(ids or [])
        await self.cache.set("vector_search", query, result)
        return result

    async def stats(self) -> dict[str, Any]:
        cached = await self.cache.get("system_stats", "database")
        if cached is not None:
            return dict(cached)
        row = await self.pool.fetchrow(
            "SELECT numbackends, xact_commit, blks_hit, blks_read FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        value = dict(row)
        await self.cache.set("system_stats", "database", value)
        return value

    async def report(self, status: str) -> list[dict[str, Any]]:
        # uncached and unindexed on purpose: the report a dashboard calls too often
        rows = await self.pool.fetch(
            "SELECT user_id % 10 AS region, count(*) AS orders, sum(amount)::float8 AS total "
            "FROM orders WHERE status = $1 GROUP BY 1 ORDER BY 1",
            status,
        )
        return [dict(r) for r in rows]

    async def pay(self, order_id: int) -> dict[str, Any]:
        async with self.pool.acquire(timeout=30) as conn:
            paid = await conn.fetchval(
                "UPDATE orders SET status = 'paid', paid_at = now() WHERE id = $1 RETURNING id",
                order_id,
            )
        return {"order_id": order_id, "paid": paid is not None}

    async def close(self) -> None:
        await self.publisher.close()  # last counts out, this worker's pool key removed
        await self.pool.close()
        await self.redis.aclose()


def current_service(request: Request) -> Service:
    """The :class:`Service` the app's lifespan started (a FastAPI dependency)."""
    service: Service = request.app.state.service
    return service


#: A route parameter of this type gets the running Service. Module-level, because FastAPI
#: resolves the routes' annotations in the module's namespace.
CurrentService = Annotated[Service, Depends(current_service)] if Depends is not None else Service


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
    async def get_item(item_id: int, service: CurrentService) -> dict[str, Any]:
        return await service.item(item_id)

    @app.get("/search")
    async def search(q: str, service: CurrentService) -> list[int]:
        return await service.search(q)

    @app.get("/users/{user_id}/session")
    async def session(user_id: int, service: CurrentService) -> dict[str, Any]:
        return await service.session(user_id)

    @app.get("/users/{user_id}/budget")
    async def budget(user_id: int, service: CurrentService) -> dict[str, Any]:
        return await service.budget(user_id)

    @app.get("/llm")
    async def llm(prompt: str, service: CurrentService) -> dict[str, Any]:
        return await service.llm(prompt)

    @app.get("/vector")
    async def vector(q: str, service: CurrentService) -> list[int]:
        return await service.vector(q)

    @app.get("/stats")
    async def stats(service: CurrentService) -> dict[str, Any]:
        return await service.stats()

    @app.get("/reports/{status}")
    async def report(status: str, service: CurrentService) -> list[dict[str, Any]]:
        return await service.report(status)

    @app.post("/orders/{order_id}/pay")
    async def pay(order_id: int, service: CurrentService) -> dict[str, Any]:
        return await service.pay(order_id)

    return app


#: What ``uvicorn examples.fastapi_app:app`` serves (None without FastAPI).
app = create_app() if FastAPI is not None else None
