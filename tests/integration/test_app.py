"""exporter.instrument in two real worker processes, read back by the app collector."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from exporter.collectors.app import AppCollector
from exporter.collectors.base import CollectError
from exporter.config import AppSettings, AppTarget
from exporter.instrument import CacheStats, Publisher
from tests.support.app_worker_process import AppWorker
from tests.support.daemon import DaemonProcess
from tests.support.promtool import promtool
from tests.support.registry import registry_of
from tests.support.servers import PostgresServer, RedisServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

MAIN = {"pool": "main"}


@pytest.fixture
def prefix() -> str:
    return f"perf:test:{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def workers(
    pg_server: PostgresServer, redis_server: RedisServer, prefix: str
) -> Iterator[list[AppWorker]]:
    options = {
        "redis": redis_server.url,
        "dsn": pg_server.dsn,
        "prefix": prefix,
        "flush": 0.2,
        "ttl": 2.0,
        "pool_interval": 0.3,
        "pool_max": 2,
    }
    started: list[AppWorker] = []
    try:
        for _ in range(2):
            started.append(AppWorker(options))
        yield started
    finally:
        for worker in started:
            worker.close()


@pytest.fixture
def collector(redis_server: RedisServer, prefix: str) -> AppCollector:
    return AppCollector(AppTarget(name="app", url=redis_server.url, prefix=prefix), AppSettings())


async def test_saturated_pool_shows_waiters_latency_and_timeouts(
    workers: list[AppWorker], collector: AppCollector
) -> None:
    busy, calm = workers
    try:
        # two connections, five holders of 1 s: three wait, the last one about two seconds
        busy.send(cmd="hold", clients=5, seconds=1.0)
        busy.send(cmd="acquire_timeout", timeout=0.05)
        busy.send(cmd="flush")
        calm.send(cmd="flush")
        saturated = await collector.collect()
        reg = registry_of(saturated)
        assert reg.get_sample_value("perf_app_pool_acquire_waiting", MAIN) == 3
        assert reg.get_sample_value("perf_app_pool_max", MAIN) == 4  # 2 per worker
        assert reg.get_sample_value("perf_app_pool_workers", MAIN) == 2
        assert reg.get_sample_value("perf_app_pool_acquire_timeouts_total", MAIN) == 1
        assert saturated.facts["pools"]["main"]["waiting"] == 3

        busy.send(cmd="wait_idle")
        busy.send(cmd="flush")
        drained = registry_of(await collector.collect())
        assert drained.get_sample_value("perf_app_pool_acquire_waiting", MAIN) == 0
        assert drained.get_sample_value("perf_app_pool_acquire_seconds_count", MAIN) == 5
        # two got a connection at once; two waited ~1 s and one ~2 s
        fast = drained.get_sample_value(
            "perf_app_pool_acquire_seconds_bucket", {**MAIN, "le": "0.5"}
        )
        assert fast == 2
        within_2_5s = drained.get_sample_value(
            "perf_app_pool_acquire_seconds_bucket", {**MAIN, "le": "2.5"}
        )
        assert within_2_5s == 5
        total = drained.get_sample_value("perf_app_pool_acquire_seconds_sum", MAIN)
        assert total is not None and 3.5 < total < 8
        assert drained.get_sample_value("perf_app_pool_size", MAIN) == 3  # 2 + the calm one's 1
        assert drained.get_sample_value("perf_app_pool_idle", MAIN) == 3
    finally:
        await collector.close()


PATTERN = {
    "api_response": [{"hits": 7, "misses": 3, "sets": 3}, {"hits": 4, "misses": 1, "sets": 1}],
    "search_results": [{"hits": 2, "misses": 5, "sets": 5, "errors": 1}, {"misses": 2}],
    "user_session": [{"misses": 1, "fallbacks": 2}, {"hits": 6, "sets": 2, "fallbacks": 1}],
}


async def test_cache_counters_are_exact_sums_over_workers(
    workers: list[AppWorker], collector: AppCollector
) -> None:
    try:
        for namespace, per_worker in PATTERN.items():
            for worker, counts in zip(workers, per_worker, strict=True):
                worker.send(cmd="cache", namespace=namespace, **counts)
        for worker in workers:
            worker.send(cmd="flush")
        collected = await collector.collect()
        reg = registry_of(collected)
        for namespace, per_worker in PATTERN.items():
            for kind in ("hits", "misses", "sets", "errors", "fallbacks"):
                expected = sum(counts.get(kind, 0) for counts in per_worker)
                value = reg.get_sample_value(
                    f"perf_app_cache_{kind}_total", {"namespace": namespace}
                )
                assert value == expected, (namespace, kind)
        assert collected.facts["cache"]["api_response"]["hit_ratio"] == pytest.approx(11 / 15)
        assert reg.get_sample_value("perf_app_processes") == 2

        workers[0].send(cmd="cache", namespace="api_response", hits=3)
        workers[0].send(cmd="flush")
        again = await collector.collect()
        # the facts cover the last interval only: three hits, no misses (and no timed calls)
        assert again.facts["cache"]["api_response"] == {
            "hits": 3,
            "misses": 0,
            "hit_ratio": 1.0,
            "mean_hit_seconds": None,
            "mean_miss_seconds": None,
            "speedup": None,
        }
    finally:
        await collector.close()


async def test_killed_worker_keeps_counters_monotonic_and_its_pool_expires_then_restarts(
    workers: list[AppWorker], collector: AppCollector, pg_server: PostgresServer
) -> None:
    doomed, survivor = workers
    try:
        doomed.send(cmd="cache", namespace="api_response", hits=5, misses=2, sets=2)
        survivor.send(cmd="cache", namespace="api_response", hits=1, misses=1, sets=1)
        doomed.send(cmd="flush")
        survivor.send(cmd="flush")
        first = registry_of(await collector.collect())
        hits = {"namespace": "api_response"}
        assert first.get_sample_value("perf_app_cache_hits_total", hits) == 6
        assert first.get_sample_value("perf_app_pool_workers", MAIN) == 2

        doomed.kill()
        seen: list[float] = []
        deadline = time.monotonic() + 10
        workers_left = 2.0
        while time.monotonic() < deadline:
            reg = registry_of(await collector.collect())
            value = reg.get_sample_value("perf_app_cache_hits_total", hits)
            assert value is not None
            seen.append(value)
            workers_left = reg.get_sample_value("perf_app_pool_workers", MAIN) or 0.0
            if workers_left == 1 and reg.get_sample_value("perf_app_processes") == 1:
                break
            await asyncio.sleep(0.25)
        assert workers_left == 1, "the killed worker's pool did not expire"
        assert seen == sorted(seen), "a counter went backwards"
        assert seen[-1] == 6  # the dead worker's five hits are kept
        assert reg.get_sample_value("perf_app_pool_max", MAIN) == 2

        survivor.send(cmd="cache", namespace="api_response", hits=4)
        survivor.send(cmd="flush")
        after = registry_of(await collector.collect())
        assert after.get_sample_value("perf_app_cache_hits_total", hits) == 10
        assert after.get_sample_value("perf_app_cache_misses_total", hits) == 3

        # the restarted worker starts from zero; the exported counter goes on from 10
        restarted = AppWorker(doomed.options)
        try:
            restarted.send(cmd="cache", namespace="api_response", hits=2, sets=1)
            restarted.send(cmd="flush")
            again = registry_of(await collector.collect())
            assert again.get_sample_value("perf_app_cache_hits_total", hits) == 12
            assert again.get_sample_value("perf_app_pool_workers", MAIN) == 2
        finally:
            restarted.close()
    finally:
        await collector.close()


async def test_cache_counts_reach_redis_in_a_few_pipelined_flushes(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    publisher = Publisher(redis_client, prefix=prefix, flush_interval=0.2, ttl=5)
    stats = CacheStats("api_response", publisher)
    try:
        started = time.monotonic()
        for i in range(2000):
            stats.hit() if i % 4 else stats.miss()
            if i % 200 == 0:
                await asyncio.sleep(0.05)
        await publisher.flush()
        elapsed = time.monotonic() - started
        key = f"{prefix}cache:{publisher.process}"
        assert await redis_client.hgetall(key) == {
            "api_response:hits": "1500",
            "api_response:misses": "500",
        }
        # one round trip per flush interval at most, never one per call
        assert publisher.flushes <= elapsed / 0.2 + 2
        ttl = await redis_client.ttl(key)
        assert 0 < ttl <= 5
    finally:
        await publisher.close()


async def test_unreachable_redis_is_a_connection_error(redis_server: RedisServer) -> None:
    target = AppTarget(name="app", url=f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    collector = AppCollector(target, AppSettings())
    with pytest.raises(CollectError) as err:
        await collector.collect()
    assert err.value.reason == "connection"
    assert "hunter2" not in err.value.message
    await collector.close()


async def test_daemon_exports_published_stats_and_passes_promtool(
    workers: list[AppWorker], redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    workers[0].send(cmd="cache", namespace="api_response", hits=3, misses=1, sets=1)
    workers[1].send(cmd="hold", clients=1, seconds=0.05)
    workers[1].send(cmd="wait_idle")
    for worker in workers:
        worker.send(cmd="flush")
    config = {
        "interval": "1s",
        "timeout": "900ms",
        "collectors": {"host": {"enabled": False}},
        "targets": {"app": [{"name": "shop", "url": redis_server.url, "prefix": prefix}]},
    }
    with DaemonProcess(config, tmp_path) as daemon:
        labels = {"target": "shop", "namespace": "api_response"}
        daemon.wait_for(
            lambda: daemon.value("perf_app_cache_hits_total", labels) == 3,
            timeout=30,
            what="the app's cache hits",
        )
        assert daemon.value("perf_app_up", {"target": "shop"}) == 1
        assert daemon.value("perf_app_pool_workers", {"target": "shop", "pool": "main"}) == 2
        count = daemon.value("perf_app_pool_acquire_seconds_count", {"target": "shop"})
        assert count is not None and count >= 1
        text = daemon.scrape()
        out = promtool("check", "metrics", stdin=text)
        assert out.returncode == 0, out.stdout + out.stderr


async def test_more_keys_than_max_keys_fail_the_cycle_instead_of_reading_a_part(
    redis_server: RedisServer, redis_client: aioredis.Redis, prefix: str
) -> None:
    for i in range(12):
        await redis_client.hset(f"{prefix}cache:host:{i}:tok", "api_response:hits", 1)
        await redis_client.expire(f"{prefix}cache:host:{i}:tok", 30)
    roomy = AppCollector(AppTarget(name="app", url=redis_server.url, prefix=prefix), AppSettings())
    reg = registry_of(await roomy.collect())
    hits = {"namespace": "api_response"}
    assert reg.get_sample_value("perf_app_cache_hits_total", hits) == 12
    assert reg.get_sample_value("perf_app_processes") == 12
    await roomy.close()
    tight = AppCollector(
        AppTarget(name="app", url=redis_server.url, prefix=prefix), AppSettings(max_keys=10)
    )
    with pytest.raises(CollectError) as err:
        await tight.collect()
    assert err.value.reason == "query"
    assert "max_keys" in err.value.message
    await tight.close()


async def test_glob_characters_in_the_prefix_match_only_themselves(
    redis_server: RedisServer, redis_client: aioredis.Redis, prefix: str
) -> None:
    odd = prefix + "[ab]?:"
    await redis_client.hset(f"{odd}cache:h:1:t", "api_response:hits", 2)
    # matches the prefix read as a glob pattern, but is not under the prefix
    await redis_client.hset(f"{prefix}aX:cache:h:2:t", "api_response:hits", 40)
    for key in (f"{odd}cache:h:1:t", f"{prefix}aX:cache:h:2:t"):
        await redis_client.expire(key, 30)
    collector = AppCollector(AppTarget(name="app", url=redis_server.url, prefix=odd), AppSettings())
    reg = registry_of(await collector.collect())
    assert reg.get_sample_value("perf_app_cache_hits_total", {"namespace": "api_response"}) == 2
    await collector.close()
