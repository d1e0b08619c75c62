"""``CacheStats.cached`` against a real Redis: the speedup the summary reports for a function of
known cost, the in-memory fallback when Redis is down, and request-time counters that stay
monotonic when a worker goes away."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client.metrics_core import Metric

from exporter.collectors.app import AppCollector
from exporter.config import AppSettings, AppTarget
from exporter.instrument import CacheStats, Publisher
from exporter.summary.board import SummaryBoard
from tests.support.servers import RedisServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

COST = 0.02  # seconds of work a miss does


def _samples(families: list[Metric], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in families
        for s in f.samples
        if s.name == name
    }


async def test_summary_speedup_matches_the_known_cost_of_a_miss(
    redis_server: RedisServer,
) -> None:
    prefix = f"perf:test:{uuid.uuid4().hex[:8]}:"
    client = aioredis.from_url(redis_server.url)
    publisher = Publisher(client, prefix=prefix, flush_interval=60.0, ttl=120.0)
    api = CacheStats("api_response", publisher)
    ran = 0

    @api.cached(ttl=300, key=lambda n: f"{prefix}item:{n}")
    async def item(n: int) -> dict[str, Any]:
        nonlocal ran
        ran += 1
        await asyncio.sleep(COST)
        return {"n": n, "name": f"item {n}"}

    collector = AppCollector(
        AppTarget(name="web", url=redis_server.url, prefix=prefix), AppSettings()
    )
    board = SummaryBoard()
    try:
        # the namespace's series exist from the first collection on; a rate needs them twice
        await item(-1)
        await item(-1)
        assert await publisher.flush()
        first = await collector.collect()
        board.update("app", "web", first.families, first.facts, now=0.0)
        ran = 0
        timings: dict[str, list[float]] = {"hit": [], "miss": []}
        for n in range(50):
            before = ran
            started = time.perf_counter()
            value = await item(n % 10)
            took = time.perf_counter() - started
            assert value == {"n": n % 10, "name": f"item {n % 10}"}
            timings["miss" if ran > before else "hit"].append(took)
        assert (len(timings["miss"]), len(timings["hit"])) == (10, 40)
        assert await publisher.flush()
        second = await collector.collect()
        board.update("app", "web", second.families, second.facts, now=10.0)
    finally:
        await collector.close()
        await publisher.close()
        await client.aclose()

    def delta(name: str, key: tuple[tuple[str, str], ...]) -> float:
        return _samples(second.families, name)[key] - _samples(first.families, name)[key]

    count, total = "perf_app_cache_request_seconds_count", "perf_app_cache_request_seconds_sum"
    miss = (("namespace", "api_response"), ("result", "miss"))
    hit = (("namespace", "api_response"), ("result", "hit"))
    assert (delta(count, miss), delta(count, hit)) == (10, 40)
    assert _samples(second.families, count)[hit] == 41
    mean_miss, mean_hit = delta(total, miss) / 10, delta(total, hit) / 40
    # a miss is the 20 ms of work plus a GET and a SET on localhost
    assert COST <= mean_miss < COST + 0.015, mean_miss
    assert mean_hit < 0.005, mean_hit
    (row,) = [r for r in board.rows(10.0) if r["signal"] == "app_cache_speedup"]
    measured = (sum(timings["miss"]) / 10) / (sum(timings["hit"]) / 40)
    assert math.isclose(row["value"], mean_miss / mean_hit, rel_tol=1e-9)
    # the decorator's own clock agrees with the caller's within 15 %
    assert math.isclose(row["value"], measured, rel_tol=0.15), (row["value"], measured)
    assert row["value"] > 3 and row["status"] == "ok"
    assert math.isclose(row["traffic"], 50 / 10)
    assert second.facts["cache"]["api_response"]["speedup"] == pytest.approx(row["value"])


async def test_redis_down_serves_from_memory_and_counts_fallbacks() -> None:
    down = aioredis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5, socket_timeout=0.5
    )
    publisher = Publisher(down, flush_interval=60.0, ttl=120.0)
    api = CacheStats("search_results", publisher)
    calls: list[str] = []

    @api.cached(ttl=600)
    async def search(query: str) -> list[str]:
        calls.append(query)
        if query == "boom":
            raise ValueError("backend failed")
        return [query.upper()]

    try:
        assert await search("pg") == ["PG"]  # miss: Redis down, computed, kept in memory
        assert await search("pg") == ["PG"]  # hit from memory
        with pytest.raises(ValueError, match="backend failed"):
            await search("boom")
        with pytest.raises(ValueError):
            await search("boom")  # a failure is not cached
    finally:
        await publisher.close()
        await down.aclose()
    assert calls == ["pg", "boom", "boom"]
    assert (api.hits, api.misses, api.sets, api.errors) == (1, 3, 1, 2)
    # every call's GET failed over to memory
    assert api.fallbacks == 4
    assert api.observed == 2  # one hit and one miss timed; failures are errors, not timings


async def test_request_counters_stay_monotonic_when_a_worker_goes_away(
    redis_server: RedisServer,
) -> None:
    prefix = f"perf:test:{uuid.uuid4().hex[:8]}:"
    client = aioredis.from_url(redis_server.url)
    collector = AppCollector(
        AppTarget(name="web", url=redis_server.url, prefix=prefix), AppSettings()
    )
    name = "perf_app_cache_request_seconds_count"
    hit = (("namespace", "api_response"), ("result", "hit"))
    try:
        workers = [
            Publisher(client, prefix=prefix, flush_interval=60.0, ttl=120.0) for _ in range(2)
        ]
        stats = [CacheStats("api_response", p) for p in workers]
        for n, s in enumerate(stats):
            for _ in range(3 + n):
                s.observe("hit", 0.001)
        for p in workers:
            assert await p.flush()
        assert _samples((await collector.collect()).families, name)[hit] == 7
        # the first worker dies and its hash expires: its three hits stay counted
        await client.delete(f"{prefix}request:{workers[0].process}")
        assert _samples((await collector.collect()).families, name)[hit] == 7
        stats[1].observe("hit", 0.001)
        assert await workers[1].flush()
        assert _samples((await collector.collect()).families, name)[hit] == 8
    finally:
        for p in workers:
            await p.close()
        await collector.close()
        await client.aclose()
