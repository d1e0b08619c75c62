"""The namespace scan on 200,000 keys: each cycle stays within its budget, the counts converge.

The budget is measured on the server side, from INFO commandstats deltas, not from what the
collector believes it sent, on both paths: the script (one EVALSHA per batch; the SCAN, TTLs
and MEMORY USAGE it runs inside Redis are counted in commandstats too) and the pipelines an ACL
user without scripting falls back to.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from tests.support.redis_collector import admin, command_calls, make_collector
from tests.support.registry import registry_of
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

COUNT = 1000
MAX_KEYS = 20_000
NAMESPACES = {
    # label: (keys, of which with a TTL)
    "api_response": (90_000, 0),
    "search_results": (60_000, 0),
    "llm_response": (20_000, 20_000),
    "user_session": (10_000, 4_000),
    "other": (20_000, 0),
}
TOTAL = sum(keys for keys, _ in NAMESPACES.values())


@pytest.fixture(scope="module")
def big_server() -> Iterator[RedisServer]:
    """200,000 keys, loaded in about a second with DEBUG POPULATE plus pipelined EXPIREs."""
    with closing(RedisServer("--enable-debug-command", "local")) as server:
        client = admin(server)
        client.execute_command("DEBUG", "POPULATE", 90_000, "cache:api_response", 16)
        client.execute_command("DEBUG", "POPULATE", 60_000, "cache:search_results", 16)
        client.execute_command("DEBUG", "POPULATE", 20_000, "cache:llm_response", 16)
        client.execute_command("DEBUG", "POPULATE", 10_000, "cache:user_session", 16)
        client.execute_command("DEBUG", "POPULATE", 20_000, "jobs", 16)
        pipe = client.pipeline(transaction=False)
        for i in range(20_000):
            pipe.expire(f"cache:llm_response:{i}", 1800)
        for i in range(4_000):
            pipe.expire(f"cache:user_session:{i}", 3600)
        pipe.execute()
        assert client.dbsize() == TOTAL == 200_000
        client.execute_command(
            "ACL", "SETUSER", "noscript", "on", ">pw", "resetkeys", "%R~*", "-@all", "+ping",
            "+info", "+scan", "+ttl", "+memory|usage", "+client|setname",
        )  # fmt: skip
        yield server


@pytest.mark.parametrize("scripted", [True, False], ids=["script", "pipelines"])
async def test_each_cycle_stays_within_budget_and_counts_converge(
    big_server: RedisServer, scripted: bool
) -> None:
    client = admin(big_server)
    target: dict[str, Any] = {"url": big_server.url}
    if not scripted:
        target["url"] = f"redis://noscript:pw@127.0.0.1:{big_server.port}/0"
    collector = make_collector(
        settings={
            "scan_count": COUNT,
            "scan_max_keys_per_cycle": MAX_KEYS,
            "scan_max_seconds_per_cycle": 5,
        },
        **target,
    )
    expected_cycles = math.ceil(TOTAL / MAX_KEYS)
    result = None
    cycles = 0
    for cycles in range(1, expected_cycles + 3):  # noqa: B007 - cycles is read after the loop
        before = command_calls(client)
        started = time.perf_counter()
        result = await collector.collect()
        elapsed = time.perf_counter() - started
        after = command_calls(client)
        delta = {cmd: after.get(cmd, 0) - before.get(cmd, 0) for cmd in after}

        # SCAN may return a few more keys than COUNT; the TTL count is the keys visited
        assert 1 <= delta.get("scan", 0) <= MAX_KEYS // COUNT
        # the script path sends one EVALSHA per SCAN (which runs inside it), and nothing else
        # per key; the pipelines send the SCANs, TTLs and MEMORY USAGE themselves
        assert delta.get("evalsha", 0) == (delta["scan"] if scripted else 0)
        assert delta.get("ttl", 0) <= MAX_KEYS * 1.05
        assert delta.get("memory|usage", 0) <= len(NAMESPACES) * 20
        assert delta.get("keys", 0) == 0
        assert elapsed < 5
        registry = registry_of(result.families)
        if registry.get_sample_value("perf_redis_namespace_scan_passes_total") == 1:
            break
        # until the first pass completes nothing partial is published
        assert (
            registry.get_sample_value("perf_redis_namespace_keys", {"namespace": "other"}) is None
        )
        assert result.facts["namespaces"] is None
    await collector.close()

    assert cycles in (expected_cycles, expected_cycles + 1)
    assert result is not None
    registry = registry_of(result.families)
    for label, (keys, with_ttl) in NAMESPACES.items():
        assert registry.get_sample_value("perf_redis_namespace_keys", {"namespace": label}) == keys
        assert (
            registry.get_sample_value("perf_redis_namespace_keys_without_ttl", {"namespace": label})
            == keys - with_ttl
        )
    assert registry.get_sample_value("perf_redis_namespace_scan_keys_total") == TOTAL
    assert registry.get_sample_value("perf_redis_exporter_keyspace_hits_total") == TOTAL
    assert collector.scan is not None and collector.scan.scripted is scripted


async def test_time_budget_cuts_a_cycle_short(big_server: RedisServer) -> None:
    collector = make_collector(
        big_server,
        settings={
            "scan_count": 100,
            "scan_max_keys_per_cycle": 200_000,
            "scan_max_seconds_per_cycle": 0.05,
        },
    )
    await collector.collect()
    cost = collector.scan.last_cycle  # type: ignore[union-attr]
    await collector.close()

    assert 0 < cost.keys < TOTAL / 4
    # the deadline is checked between batches: one batch may run past it
    assert cost.seconds < 0.05 + 0.25


async def test_pass_pause_sends_no_scan_and_keeps_the_published_counts() -> None:
    server = RedisServer()
    try:
        client = admin(server)
        for i in range(30):
            client.set(f"cache:system_stats:{i}", "1", ex=120)
        collector = make_collector(server, settings={"scan_pass_pause": 3600})
        await collector.collect()
        before = command_calls(client)
        result = await collector.collect()
        after = command_calls(client)
        await collector.close()
    finally:
        server.close()
    assert after.get("scan") == before.get("scan") and after.get("ttl") == before.get("ttl")
    registry = registry_of(result.families)
    assert (
        registry.get_sample_value("perf_redis_namespace_keys", {"namespace": "system_stats"}) == 30
    )
    assert registry.get_sample_value("perf_redis_namespace_scan_passes_total") == 1
