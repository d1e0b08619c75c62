"""Publish an application's own pool and cache statistics for the ``app`` collector.

Optional and framework-free: an app using asyncpg and ``redis.asyncio`` creates, at startup::

    publisher = Publisher(redis)                    # one per process, owned by the app
    PoolReporter(pool, "main", publisher)           # wraps pool.acquire
    api_cache = CacheStats("api_response", publisher)  # hits/misses/... per namespace

    @api_cache.cached(ttl=300, key=lambda user_id: f"profile:{user_id}")
    async def profile(user_id: int) -> dict: ...    # Redis first, memory if Redis is down

and closes the publisher at shutdown (``await publisher.close()``). Every process publishes to
its own Redis hashes (``<prefix>cache:<process>``, ``<prefix>pool:<process>:<name>``) with a
TTL; the exporter sums the processes and keeps counters monotonic when workers come and go.
See docs/instrument.md.
"""

from __future__ import annotations

from exporter.instrument.cache import CacheStats
from exporter.instrument.layout import (
    ACQUIRE_BUCKETS,
    CACHE_KINDS,
    DEFAULT_PREFIX,
    REQUEST_BUCKETS,
)
from exporter.instrument.pool import PoolReporter
from exporter.instrument.publisher import Publisher

__all__ = [
    "ACQUIRE_BUCKETS",
    "CACHE_KINDS",
    "DEFAULT_PREFIX",
    "REQUEST_BUCKETS",
    "CacheStats",
    "PoolReporter",
    "Publisher",
]
