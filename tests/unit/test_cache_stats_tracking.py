"""CacheStats' decorators count sync and async cache calls the same way."""

from __future__ import annotations

import asyncio

import pytest

from exporter.instrument import CacheStats, Publisher


def counts(stats: CacheStats) -> dict[str, int]:
    return {"hits": stats.hits, "misses": stats.misses, "sets": stats.sets, "errors": stats.errors}


def test_sync_get_and_set_count_hits_misses_sets_and_errors() -> None:
    stats = CacheStats("api_response", Publisher(None))
    store = {"a": "1"}

    @stats.track_get
    def get(key: str) -> str | None:
        if key == "boom":
            raise ConnectionError("redis went away")
        return store.get(key)

    @stats.track_set
    def put(key: str, value: str) -> bool:
        store[key] = value
        return True

    assert get("a") == "1" and get("b") is None
    assert put("b", "2") is True and get("b") == "2"
    with pytest.raises(ConnectionError):
        get("boom")
    assert counts(stats) == {"hits": 2, "misses": 1, "sets": 1, "errors": 1}
    assert get.__name__ == "get"


def test_async_get_and_set_count_alike_and_start_the_publisher() -> None:
    publisher = Publisher(None, flush_interval=60, ttl=120)  # created before the loop runs
    stats = CacheStats("api_response", publisher)
    store: dict[str, str] = {}

    @stats.track_get
    async def get(key: str) -> str | None:
        return store.get(key)

    @stats.track_set
    async def put(key: str, value: str) -> None:
        if not value:
            raise ValueError("empty")
        store[key] = value

    async def run() -> bool:
        assert await get("a") is None
        await put("a", "1")
        assert await get("a") == "1"
        with pytest.raises(ValueError):
            await put("b", "")
        return publisher.running

    assert asyncio.run(run()) is True
    assert counts(stats) == {"hits": 1, "misses": 1, "sets": 1, "errors": 1}
    assert stats.take() == {
        "api_response:hits": 1,
        "api_response:misses": 1,
        "api_response:sets": 1,
        "api_response:errors": 1,
    }
    assert counts(stats) == {"hits": 0, "misses": 0, "sets": 0, "errors": 0}
