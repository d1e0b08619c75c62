"""The application owns its publisher: closing one namespace or pool leaves the rest publishing."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from exporter.instrument import CacheStats, Publisher

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def prefix() -> str:
    return f"perf:own:{uuid.uuid4().hex[:8]}:"


async def test_closing_one_namespace_keeps_the_publisher_running_for_the_others(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    publisher = Publisher(redis_client, prefix=prefix, flush_interval=60, ttl=120)
    api = CacheStats("api_response", publisher)
    sessions = CacheStats("user_session", publisher)
    key = f"{prefix}cache:{publisher.process}"
    try:
        api.hit()
        api.miss()
        sessions.hit()
        await api.close()
        # the closed namespace sent its last counts at once; the other one is still pending
        assert await redis_client.hgetall(key) == {
            "api_response:hits": "1",
            "api_response:misses": "1",
        }
        assert publisher.running
        sessions.hit()
        api.hit()  # counted after close: nobody publishes it any more
        assert await publisher.flush()
        assert await redis_client.hgetall(key) == {
            "api_response:hits": "1",
            "api_response:misses": "1",
            "user_session:hits": "2",
        }
    finally:
        await publisher.close()
        await redis_client.delete(key)


async def test_two_publishers_on_one_client_are_independent(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    first = Publisher(redis_client, prefix=prefix, flush_interval=60, ttl=120)
    second = Publisher(redis_client, prefix=prefix, flush_interval=60, ttl=120)
    CacheStats("api_response", first).hit()
    other = CacheStats("api_response", second)
    try:
        assert first is not second and first.process != second.process
        await first.close()
        assert not first.running and second.running
        other.miss()
        assert await second.flush()
        assert await redis_client.hgetall(f"{prefix}cache:{first.process}") == {
            "api_response:hits": "1"
        }
        assert await redis_client.hgetall(f"{prefix}cache:{second.process}") == {
            "api_response:misses": "1"
        }
    finally:
        await second.close()
        for publisher in (first, second):
            await redis_client.delete(f"{prefix}cache:{publisher.process}")
