"""Faults survived by a Redis target: crash, out of memory, CLIENT PAUSE, DEBUG SLEEP.
See :mod:`tests.support.faults_world` for what every fault asserts.
"""

from __future__ import annotations

import subprocess

import pytest
import redis

from tests.support.faults_world import World
from tests.support.servers import require_binary

pytestmark = pytest.mark.integration


@pytest.mark.timeout(60)
def test_redis_killed_and_restarted(world: World) -> None:
    world.fault("cache", "connection", world.cache.kill, world.cache.start)


@pytest.mark.timeout(60)
def test_redis_out_of_memory_keeps_reporting_and_counts_the_rejections(world: World) -> None:
    client = redis.Redis(port=world.cache.port, socket_timeout=5)
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for i in range(10_000):  # bounded: 10 MB cannot fit in 4 MB
                client.set(f"cache:blob:{i}", "v" * 1000)
        world.wait(
            lambda: (
                world.observe().get(
                    (
                        "perf_redis_errors_total",
                        frozenset({"target": "cache", "error": "OOM"}.items()),
                    ),
                    0.0,
                )
                >= 1
            ),
            5,
            "the OOM rejection counted",
        )
        assert world.up("cache") == 1.0  # monitoring a full Redis must keep working
        samples = world.observe()
        used = samples[("perf_redis_memory_used_bytes", frozenset({("target", "cache")}))]
        assert used > 3 * 1024 * 1024
    finally:
        client.flushall()
        client.close()


def _redis_cli(port: int, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [require_binary("redis-cli"), "-p", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.timeout(60)
def test_redis_client_pause_is_a_timeout(world: World) -> None:
    world.fault(
        "cache",
        "timeout",
        lambda: _redis_cli(world.cache.port, "CLIENT", "PAUSE", "3000", "ALL").wait(5),
        lambda: None,  # the pause expires by itself
    )


@pytest.mark.timeout(60)
def test_redis_debug_sleep_is_a_timeout(world: World) -> None:
    sleeper: list[subprocess.Popen[bytes]] = []
    world.fault(
        "cache",
        "timeout",
        lambda: sleeper.append(_redis_cli(world.cache.port, "DEBUG", "SLEEP", "3")),
        lambda: sleeper[0].wait(10),
    )
