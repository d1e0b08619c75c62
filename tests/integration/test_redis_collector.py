"""The Redis collector against real, suite-started servers: exact deltas of a known workload."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import redis
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.redis import ReleasingHiredisParser
from exporter.config import NamespaceSplit
from tests.support.promtool import promtool
from tests.support.redis_collector import (
    admin,
    command_calls,
    is_valkey,
    linked_replica,
    make_collector,
)
from tests.support.registry import registry_of, sample_value
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "redis.md"


def _fill_namespaces(server: RedisServer) -> dict[str, tuple[int, int]]:
    """Keys in several namespaces, with and without TTL; returns label -> (keys, without TTL)."""
    client = admin(server)
    pipe = client.pipeline(transaction=False)
    for i in range(30):
        pipe.set(f"cache:api_response:{i:04x}", "x" * 100, ex=300)
    for i in range(5):
        pipe.set(f"cache:api_response:leak{i}", "x" * 100)
    for i in range(12):
        pipe.set(f"cache:search_results:{i}", "y" * 50, ex=600)
    for i in range(4):
        pipe.set(f"cache:user_session:{i}", "s")
    for i in range(7):
        pipe.set(f"queue:jobs:{i}", "j")
    pipe.execute()
    return {
        "api_response": (35, 5),
        "search_results": (12, 0),
        "user_session": (4, 4),
        "budget_status": (0, 0),
        "other": (7, 7),
    }


async def test_hit_and_miss_deltas_are_exact_despite_the_namespace_scan(
    own_redis: RedisServer,
) -> None:
    _fill_namespaces(own_redis)
    collector = make_collector(own_redis)
    first = await collector.collect()
    client = admin(own_redis)
    for i in range(70):
        assert client.get(f"cache:api_response:{i % 30:04x}") is not None
    for i in range(30):
        assert client.get(f"cache:api_response:absent{i}") is None
    second = await collector.collect()
    await collector.close()

    assert second.facts["keyspace_hits"] == 70
    assert second.facts["keyspace_misses"] == 30
    assert second.facts["hit_ratio"] == pytest.approx(0.7)
    # the raw counters include the scan's TTL checks; the exporter's own counter explains them
    raw_hits = sample_value(second, "perf_redis_keyspace_hits_total") - sample_value(  # type: ignore[operator]
        first, "perf_redis_keyspace_hits_total"
    )
    own_hits = sample_value(second, "perf_redis_exporter_keyspace_hits_total") - sample_value(  # type: ignore[operator]
        first, "perf_redis_exporter_keyspace_hits_total"
    )
    assert own_hits == 58  # one TTL per key per pass, one pass per cycle here
    assert raw_hits - own_hits == 70
    assert (
        sample_value(second, "perf_redis_keyspace_misses_total")
        - sample_value(  # type: ignore[operator]
            first, "perf_redis_keyspace_misses_total"
        )
        == 30
    )
    assert sample_value(second, "perf_redis_command_calls_total", {"cmd": "get"}) == 100


async def test_namespace_counts_with_and_without_ttl(own_redis: RedisServer) -> None:
    truth = _fill_namespaces(own_redis)
    result = await make_collector(own_redis).collect()

    for label, (keys, without_ttl) in truth.items():
        assert sample_value(result, "perf_redis_namespace_keys", {"namespace": label}) == keys
        assert (
            sample_value(result, "perf_redis_namespace_keys_without_ttl", {"namespace": label})
            == without_ttl
        )
    assert result.facts["namespaces"]["api_response"]["keys"] == 35
    # memory: the mean of up to 20 sampled keys times the count; values are near-uniform here
    client = admin(own_redis)
    real = sum(client.memory_usage(key) or 0 for key in client.scan_iter("cache:api_response:*"))
    estimate = sample_value(
        result, "perf_redis_namespace_memory_bytes", {"namespace": "api_response"}
    )
    assert estimate == pytest.approx(real, rel=0.1)


async def test_wildcard_patterns_and_split_rules_name_namespaces(own_redis: RedisServer) -> None:
    _fill_namespaces(own_redis)
    wildcard = await make_collector(own_redis, namespaces=["cache:*:"]).collect()
    split = await make_collector(
        own_redis, namespaces=NamespaceSplit(separator=":", depth=1)
    ).collect()

    assert (
        sample_value(wildcard, "perf_redis_namespace_keys", {"namespace": "search_results"}) == 12
    )
    assert sample_value(wildcard, "perf_redis_namespace_keys", {"namespace": "other"}) == 7
    assert sample_value(split, "perf_redis_namespace_keys", {"namespace": "cache"}) == 51
    assert sample_value(split, "perf_redis_namespace_keys", {"namespace": "queue"}) == 7


async def test_disabled_namespaces_send_no_scan(own_redis: RedisServer) -> None:
    _fill_namespaces(own_redis)
    client = admin(own_redis)
    result = await make_collector(own_redis, namespaces=[]).collect()
    calls = command_calls(client)
    assert "scan" not in calls and "ttl" not in calls
    assert sample_value(result, "perf_redis_namespace_keys", {"namespace": "other"}) is None
    assert sample_value(result, "perf_redis_exporter_keyspace_hits_total") == 0


async def test_eviction_delta_is_exact_when_maxmemory_is_small() -> None:
    server = RedisServer("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
    try:
        collector = make_collector(server, namespaces=[])
        first = await collector.collect()
        client = admin(server)
        written = 6000
        pipe = client.pipeline(transaction=False)
        for i in range(written):
            pipe.set(f"fill:{i}", "v" * 1000)
        pipe.execute()
        # any command evicts while memory is above the limit, the collector's INFO too:
        # lift the limit so the truth below stays the truth
        client.config_set("maxmemory", "100mb")
        evicted = written - int(client.dbsize())
        assert evicted > 0
        second = await collector.collect()
        await collector.close()
    finally:
        server.close()

    assert second.facts["evicted_keys"] == evicted
    assert (
        sample_value(second, "perf_redis_evicted_keys_total")
        - sample_value(  # type: ignore[operator]
            first, "perf_redis_evicted_keys_total"
        )
        == evicted
    )
    assert sample_value(first, "perf_redis_memory_max_bytes") == 2 * 1024 * 1024
    assert sample_value(first, "perf_redis_maxmemory_policy_info", {"policy": "allkeys-lru"}) == 1
    assert first.facts["memory_max_bytes"] == 2 * 1024 * 1024


async def test_probe_histogram_accumulates_across_cycles(redis_server: RedisServer) -> None:
    collector = make_collector(redis_server, namespaces=[])
    results = [await collector.collect() for _ in range(3)]
    await collector.close()
    counts = [sample_value(r, "perf_redis_probe_duration_seconds_count") for r in results]
    assert counts == [1, 2, 3]
    last = results[-1]
    assert sample_value(last, "perf_redis_probe_duration_seconds_bucket", {"le": "+Inf"}) == 3
    assert 0 < sample_value(last, "perf_redis_probe_duration_seconds_sum") < 3  # type: ignore[operator]


async def test_one_connection_per_target_across_cycles_and_pipelines(
    own_redis: RedisServer,
) -> None:
    _fill_namespaces(own_redis)
    collector = make_collector(
        own_redis, settings={"scan_count": 10, "scan_max_keys_per_cycle": 100}
    )
    client = admin(own_redis)
    ids = set()
    for _ in range(3):
        await collector.collect()
        mine = [c for c in client.client_list() if c.get("name") == "perf-exporter"]
        assert len(mine) == 1
        ids.add(mine[0]["id"])
    await collector.close()
    assert len(ids) == 1
    # the server notices the closed socket on its next event-loop turn (Valkey a little later)
    deadline = time.monotonic() + 3
    while [c for c in client.client_list() if c.get("name") == "perf-exporter"]:
        assert time.monotonic() < deadline, "the collector's connection stayed open after close"
        time.sleep(0.05)


async def test_commandstats_latencystats_and_errorstats(own_redis: RedisServer) -> None:
    client = admin(own_redis)
    client.set("text", "a")
    for _ in range(9):
        client.get("text")
    with pytest.raises(Exception, match="WRONGTYPE"):
        client.lpush("text", "b")
    result = await make_collector(own_redis, namespaces=[]).collect()

    assert sample_value(result, "perf_redis_command_calls_total", {"cmd": "get"}) == 9
    assert sample_value(result, "perf_redis_command_failed_calls_total", {"cmd": "lpush"}) == 1
    assert sample_value(result, "perf_redis_errors_total", {"error": "WRONGTYPE"}) == 1
    assert sample_value(result, "perf_redis_command_duration_seconds_total", {"cmd": "get"}) >= 0  # type: ignore[operator]
    for percentile in ("50", "99", "99.9"):
        latency = sample_value(
            result,
            "perf_redis_command_latency_percentile_seconds",
            {"cmd": "get", "percentile": percentile},
        )
        assert latency is not None and 0 <= latency < 0.1
    assert sample_value(result, "perf_redis_db_keys", {"db": "0"}) == 1
    assert sample_value(result, "perf_redis_replication_is_replica") == 0
    own = client.info("server")
    expected = own.get("valkey_version") or own["redis_version"]
    assert expected == ("8.1.8" if is_valkey(own_redis) else "7.0.15")
    assert (
        sample_value(result, "perf_redis_version_info", {"version": expected, "mode": "standalone"})
        == 1
    )


def _documented_acl() -> str:
    match = re.search(r"^(ACL SETUSER .+)$", DOCS.read_text(), re.MULTILINE)
    assert match, "docs/redis.md must show the ACL SETUSER line"
    return match.group(1)


async def test_minimal_acl_user_from_the_docs_works(own_redis: RedisServer, tmp_path: Path) -> None:
    _fill_namespaces(own_redis)
    client = admin(own_redis)
    line = _documented_acl().replace("<password>", "monitor-pw")
    client.execute_command(*line.split())
    if is_valkey(own_redis):
        valkey_line = re.search(r"^ACL SETUSER \S+ \+commandlog.*$", DOCS.read_text(), re.M)
        assert valkey_line, "docs/redis.md must show the COMMANDLOG grant for Valkey"
        client.execute_command(*valkey_line.group(0).split())
    secret = tmp_path / "pw"
    secret.write_text("monitor-pw\n")
    collector = make_collector(own_redis, username="perf-exporter", password_file=secret)
    await collector.collect()
    result = await collector.collect()
    await collector.close()

    assert sample_value(result, "perf_redis_namespace_keys", {"namespace": "api_response"}) == 35
    assert sample_value(result, "perf_redis_namespace_memory_bytes", {"namespace": "other"}) > 0  # type: ignore[operator]
    assert result.facts["keyspace_hits"] == 0
    # nothing the collector sent was refused (an ACL denial shows up in errorstats)
    assert not [k for k in client.info("errorstats") if "NOPERM" in k]
    # and the user can do nothing else: no writes, no reads of values
    limited = admin(own_redis, username="perf-exporter", password="monitor-pw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        limited.get("cache:api_response:0000")
    with pytest.raises(redis.exceptions.NoPermissionError):
        limited.set("x", "1")


async def test_output_passes_promtool_and_both_parsers(own_redis: RedisServer) -> None:
    _fill_namespaces(own_redis)
    admin(own_redis).config_set("slowlog-log-slower-than", 0)  # slowlog entries to render
    admin(own_redis).get("cache:api_response:0000")
    collector = make_collector(own_redis)
    await collector.collect()
    result = await collector.collect()
    await collector.close()
    registry = registry_of(result.families)

    text = generate_latest(registry).decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"perf_redis_keyspace_hits", "perf_redis_probe_duration_seconds"} <= names
    assert {
        "perf_redis_command_latency_seconds",
        "perf_redis_command_latency_percentile_seconds",
        "perf_redis_slowlog_length",
        "perf_redis_slowlog_entries",
    } <= names
    assert ("perf_redis_commandlog_entries" in names) == is_valkey(own_redis)
    openmetrics = generate_openmetrics(registry).decode()
    assert {f.name for f in parse_openmetrics(openmetrics)} == names
    check = promtool("check", "metrics", stdin=text)
    assert check.returncode == 0, check.stdout + check.stderr


async def test_replication_state_on_primary_and_replica(own_redis: RedisServer) -> None:
    replica = linked_replica(own_redis)
    try:
        admin(own_redis).set("k", "v")
        primary_result = await make_collector(own_redis, namespaces=[]).collect()
        replica_result = await make_collector(replica, namespaces=[]).collect()
    finally:
        replica.close()

    assert sample_value(primary_result, "perf_redis_replication_is_replica") == 0
    assert sample_value(primary_result, "perf_redis_replication_connected_replicas") == 1
    lag = sample_value(
        primary_result,
        "perf_redis_replication_replica_lag_bytes",
        {"replica": f"127.0.0.1:{replica.port}"},
    )
    assert lag is not None and lag >= 0
    assert sample_value(primary_result, "perf_redis_replication_offset_bytes") > 0  # type: ignore[operator]
    assert sample_value(replica_result, "perf_redis_replication_is_replica") == 1
    assert sample_value(replica_result, "perf_redis_replication_master_link_up") == 1
    assert replica_result.facts["role"] == "slave"


async def test_unix_socket_and_a_non_default_database(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = RedisServer("--unixsocket", str(socket_path), "--unixsocketperm", "700")
    try:
        client = admin(server, db=1)
        client.set("cache:vector_search:a", "1", ex=900)
        client.set("cache:vector_search:b", "1")
        admin(server).set("cache:vector_search:in-db0", "1")
        by_socket = make_collector(url=f"unix://{socket_path}?db=1")
        by_host = make_collector(host="127.0.0.1", port=server.port, db=1)
        results = [await by_socket.collect(), await by_host.collect()]
        await by_socket.close()
        await by_host.close()
    finally:
        server.close()
    for result in results:
        labels = {"namespace": "vector_search"}
        assert sample_value(result, "perf_redis_namespace_keys", labels) == 2
        assert sample_value(result, "perf_redis_namespace_keys_without_ttl", labels) == 1
        assert sample_value(result, "perf_redis_db_keys", {"db": "0"}) == 1


async def test_every_target_s_client_reads_one_table_of_reply_callbacks(
    own_redis: RedisServer,
) -> None:
    # redis-py copies its table into every client: 6.5 kB a target, 4.9 MB at 750
    first, second = make_collector(own_redis, name="one"), make_collector(own_redis, name="two")
    try:
        assert (await first.collect()).families and (await second.collect()).families
        one, two = first.connection, second.connection
        assert one is not None and two is not None and one is not two
        assert one.response_callbacks is two.response_callbacks
        assert isinstance(await two.execute_command("INFO"), bytes)  # answered raw for both
    finally:
        await first.close()
        await second.close()


async def test_a_large_reply_s_buffer_is_given_back_once_it_is_read(
    own_redis: RedisServer,
) -> None:
    # hiredis keeps the buffer a reply grew until the next reply: 64 kB a connection after an
    # INFO or LATENCY HISTOGRAM of 40 kB, ~40 MB at 750 targets outside Python's allocators
    admin(own_redis).set("perf:big", b"x" * 200_000)
    collector = make_collector(own_redis, name="big")
    try:
        assert (await collector.collect()).families
        client = collector.connection
        assert client is not None
        conn = await client.connection_pool.get_connection()
        try:
            parser = conn._parser
            assert isinstance(parser, ReleasingHiredisParser)
            reader = parser._reader
            await conn.send_command("PING")
            await conn.read_response()
            assert parser._reader is reader  # a small reply keeps its reader
            await conn.send_command("GET", "perf:big")
            assert await conn.read_response() == b"x" * 200_000
            assert parser._reader is not reader  # the grown buffer went with the old one
            await conn.send_command("STRLEN", "perf:big")
            assert await conn.read_response() == 200_000  # the new reader reads on
        finally:
            await client.connection_pool.release(conn)
        assert (await collector.collect()).families
    finally:
        await collector.close()
