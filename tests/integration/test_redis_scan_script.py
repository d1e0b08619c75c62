"""The namespace scan as a server-side script, and its fallback to pipelines.

Counts are compared between the two paths on the same dataset; the commands each cycle sends
are measured on the server, from INFO commandstats deltas. Commands a script runs inside Redis
(its SCAN, TTLs, MEMORY USAGE) show up in commandstats too: a cycle *sends* the EVALSHA calls,
INFO, PING and, once per connection, SCRIPT LOAD.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from exporter.collectors.redis import RedisCollector
from exporter.collectors.redis_namespaces import NamespaceCounts
from exporter.config import NamespaceSplit
from tests.support.redis_collector import admin, command_calls, linked_replica, make_collector
from tests.support.registry import registry_of
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PASSWORD = "scan-script-pw"
#: What a cycle may send on the script path with the default budget: 2 EVALSHA, INFO, PING and
#: one pipeline of LATENCY HISTOGRAM and SLOWLOG GET (whose reply gives the length: no LEN).
COMMANDS_PER_CYCLE = 6
#: Commands a script step runs inside Redis (counted in commandstats, not sent by us).
INSIDE_SCRIPT = ("scan", "ttl", "memory|usage")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "redis.md"


def _documented_acl_without_scripts() -> list[str]:
    """docs/redis.md's ACL line for a user that may scan but not run scripts."""
    lines = re.findall(r"^ACL SETUSER perf-exporter on .+$", DOCS.read_text(), re.MULTILINE)
    without = [line for line in lines if "+eval" not in line]
    assert len(lines) == 2 and len(without) == 1, "docs/redis.md must show both ACL lines"
    words = without[0].replace("<password>", PASSWORD).split()
    words[2] = "noscript"
    return words


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A quiet dataset in several namespaces, with and without TTL, under odd prefixes too."""
    with closing(RedisServer()) as instance:
        client = admin(instance)
        pipe = client.pipeline(transaction=False)
        sizes = {"api_response": 1200, "search_results": 700, "llm_response": 300}
        for namespace, keys in sizes.items():
            for i in range(keys):
                # a fixed key and value length per namespace: every sample weighs the same
                key = f"cache:{namespace}:{i:05d}"
                if i % 3:
                    pipe.set(key, namespace * 4, ex=3600)
                else:
                    pipe.set(key, namespace * 4)
        for i in range(150):
            pipe.set(f"app-1.tenant{i % 7}|cache:sessions:{i:04d}", "s", ex=600)
        for i in range(80):
            pipe.set(f"queue:jobs:{i:03d}", "j")
        for i in range(40):
            pipe.set(f"user:{i:03d}:profile", "p")  # 40 labels under a split rule: over the limit
        pipe.execute()
        client.execute_command(*_documented_acl_without_scripts())
        yield instance


def _scripted(server: RedisServer, **target: Any) -> RedisCollector:
    return make_collector(server, settings={"scan_count": 100, "namespace_limit": 12}, **target)


def _pipelined(server: RedisServer, **target: Any) -> RedisCollector:
    return make_collector(
        settings={"scan_count": 100, "namespace_limit": 12},
        url=f"redis://noscript:{PASSWORD}@127.0.0.1:{server.port}/0",
        **target,
    )


async def _full_pass(collector: RedisCollector) -> dict[str, NamespaceCounts]:
    assert collector.scan is not None
    for _ in range(20):  # bounded: 2,500 keys at 2,000 a cycle take two cycles
        await collector.collect()
        if collector.scan.published is not None:
            break
    await collector.close()
    assert collector.scan.published is not None, "the pass never completed"
    return collector.scan.published


@pytest.mark.parametrize(
    "namespaces",
    [
        None,
        ["cache:*:", "app-1.*|cache:*:", "queue:"],
        NamespaceSplit(separator=":", depth=2),
    ],
    ids=["default-prefixes", "wildcards", "split-over-the-limit"],
)
async def test_script_and_pipelines_count_exactly_the_same(
    server: RedisServer, namespaces: list[str] | NamespaceSplit | None
) -> None:
    scripted = _scripted(server, namespaces=namespaces)
    pipelined = _pipelined(server, namespaces=namespaces)
    by_script = await _full_pass(scripted)
    by_pipelines = await _full_pass(pipelined)

    assert scripted.scan is not None and scripted.scan.scripted is True
    assert pipelined.scan is not None and pipelined.scan.scripted is False
    assert by_script == by_pipelines
    assert scripted.scan.own_hits == pipelined.scan.own_hits == 2470
    assert scripted.scan.own_misses == pipelined.scan.own_misses == 0
    if namespaces is None:
        assert by_script["api_response"] == NamespaceCounts(
            keys=1200,
            keys_without_ttl=400,
            sampled=20,
            sampled_bytes=by_script["api_response"].sampled_bytes,
        )
        assert by_script["other"].keys == 150 + 80 + 40
        assert by_script["budget_status"].keys == 0
    elif isinstance(namespaces, list):
        # the first matching pattern wins; stars name the namespace, joined with ":"
        assert by_script["llm_response"].keys == 300
        assert by_script["tenant3:sessions"].keys == 21
        assert by_script["other"].keys == 40
    else:
        # 51 labels: the first 12 the pass meets are kept, keys of the others count as other
        assert len(by_script) == 12 + 1
        assert sum(c.keys for c in by_script.values()) == 2470


async def test_fallback_when_the_acl_user_may_not_run_scripts(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = admin(server)
    refused = int(client.info("commandstats")["cmdstat_script|load"]["rejected_calls"])
    collector = _pipelined(server)
    with caplog.at_level(logging.WARNING, logger="exporter.collectors.redis_namespaces"):
        first = await collector.collect()
        await collector.close()  # the next cycle reconnects and tries the script again, quietly
        second = await collector.collect()
        await collector.close()
    warnings = [r for r in caplog.records if "refused the namespace scan script" in r.message]
    assert len(warnings) == 1
    assert "script|load" in warnings[0].message and "docs/redis.md" in warnings[0].message
    assert first.families and second.families
    assert collector.scan is not None and collector.scan.scripted is False
    assert collector.scan.fallback_reason is not None
    # the pipelines scanned instead (a reconnect restarts the pass: two cycles of 2,000 keys)
    registry = registry_of(second.families)
    assert 4000 <= registry.get_sample_value("perf_redis_namespace_scan_keys_total") <= 4100  # type: ignore[operator]
    # one refused SCRIPT LOAD per connection, nothing else
    stats = client.info("commandstats")["cmdstat_script|load"]
    assert int(stats["rejected_calls"]) - refused == 2


async def test_a_cycle_sends_a_handful_of_commands_and_counts_converge() -> None:
    server = RedisServer("--enable-debug-command", "local")
    try:
        client = admin(server)
        client.execute_command("DEBUG", "POPULATE", 24_000, "cache:api_response", 32)
        client.execute_command("DEBUG", "POPULATE", 16_000, "cache:vector_search", 32)
        collector = make_collector(server)  # the default budget
        cycles: list[dict[str, int]] = []
        for _ in range(40):  # 40,000 keys at 2,000 a cycle: 20 cycles, a few more for SCAN
            before = command_calls(client)
            await collector.collect()
            after = command_calls(client)
            cycles.append(
                {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
            )
            assert collector.scan is not None
            if collector.scan.passes:
                break
        stats = client.info("commandstats")
        hits = int(client.info("stats")["keyspace_hits"])
        await collector.close()
    finally:
        server.close()

    assert collector.scan.published is not None
    assert collector.scan.published["api_response"].keys == 24_000
    assert collector.scan.published["vector_search"].keys_without_ttl == 16_000
    assert collector.scan.own_hits == hits == 40_000
    assert 20 <= len(cycles) <= 22
    for number, delta in enumerate(cycles):
        sent = {cmd: calls for cmd, calls in delta.items() if cmd not in INSIDE_SCRIPT}
        sent["info"] -= 1  # the "before" INFO commandstats of this test
        # SCRIPT LOAD once, on the connection's first cycle
        setup = {"script|load": 1, "client|setname": 1} if number == 0 else {}
        assert sent.pop("script|load", 0) == setup.get("script|load", 0)
        assert sent.pop("client|setname", 0) == setup.get("client|setname", 0)
        assert sum(sent.values()) <= COMMANDS_PER_CYCLE, sent
        assert sent.get("evalsha", 0) <= 2, sent
        assert set(sent) <= {
            "evalsha",
            "info",
            "ping",
            "latency|histogram",
            "slowlog|get",
        }
        # what ran inside: one SCAN per script call, one TTL per key
        assert delta.get("scan", 0) == sent.get("evalsha", 0)
        assert delta.get("ttl", 0) <= 2000 * 1.05
    # one script call (1000 keys) costs Redis a few milliseconds at most
    assert float(stats["cmdstat_evalsha"]["usec_per_call"]) < 5_000


async def test_a_refusal_inside_the_script_fails_the_cycle_and_keeps_lookups_exact() -> None:
    server = RedisServer()
    try:
        client = admin(server)
        for i in range(50):
            client.set(f"cache:api_response:{i}", "v")
        # scripts allowed, MEMORY USAGE not: the script stops at its first sample
        client.execute_command(
            "ACL", "SETUSER", "no-memory", "on", f">{PASSWORD}", "%R~*", "-@all", "+ping",
            "+info", "+scan", "+ttl", "+client|setname", "+script|load", "+evalsha", "+eval",
        )  # fmt: skip
        os.environ["PERF_TEST_REDIS_PW3"] = PASSWORD
        try:
            collector = make_collector(
                server, username="no-memory", password_env="PERF_TEST_REDIS_PW3"
            )
            with pytest.raises(Exception) as caught:
                await collector.collect()
            await collector.close()
        finally:
            del os.environ["PERF_TEST_REDIS_PW3"]
        hits = int(client.info("stats")["keyspace_hits"])
    finally:
        server.close()
    error = caught.value
    assert getattr(error, "reason", None) == "auth", str(error)
    assert "memory" in str(error).lower()
    assert collector.scan is not None and collector.scan.scripted is True
    assert collector.scan.own_hits == hits == 1  # the TTL before the refused sample
    assert collector.scan.published is None


async def test_script_flush_is_survived_by_a_reload_and_replicas_run_the_script(
    server: RedisServer,
) -> None:
    client = admin(server)
    collector = _scripted(server)
    await collector.collect()
    client.script_flush()
    before = command_calls(client)
    await collector.collect()
    after = command_calls(client)
    await collector.close()
    # the flushed script is loaded again once and the scan stays a script
    assert after.get("script|load", 0) - before.get("script|load", 0) == 1
    assert after.get("evalsha", 0) > before.get("evalsha", 0)
    assert after.get("eval", 0) == before.get("eval", 0)
    assert collector.scan is not None and collector.scan.scripted is True

    replica = linked_replica(server)
    try:
        replica_client = admin(replica)
        on_replica = _scripted(replica)
        counts = await _full_pass(on_replica)
        replica_calls = command_calls(replica_client)
    finally:
        replica.close()
    assert on_replica.scan is not None and on_replica.scan.scripted is True
    assert replica_calls.get("evalsha", 0) >= 1
    assert counts["api_response"].keys == 1200


async def test_evalsha_refused_after_script_load_falls_back_within_the_cycle(
    server: RedisServer,
) -> None:
    client = admin(server)
    words = _documented_acl_without_scripts()
    words[2] = "loadonly"
    client.execute_command(*words, "+script|load")
    collector = make_collector(
        settings={"scan_count": 100, "namespace_limit": 12},
        url=f"redis://loadonly:{PASSWORD}@127.0.0.1:{server.port}/0",
    )
    counts = await _full_pass(collector)
    assert collector.scan is not None and collector.scan.scripted is False
    assert (
        collector.scan.fallback_reason is not None and "evalsha" in collector.scan.fallback_reason
    )
    assert counts["api_response"].keys == 1200
    assert counts["api_response"].keys_without_ttl == 400
    assert collector.scan.own_hits == 2470
