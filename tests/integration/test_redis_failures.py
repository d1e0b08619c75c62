"""Failures of a Redis target map to clear reasons, and the same collector recovers from each."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis

from exporter.collectors.base import Collected, CollectError
from exporter.collectors.redis import RedisCollector
from tests.support.cycles import collect_until_ok
from tests.support.processes import wait_until
from tests.support.redis_collector import TlsRedisServer, admin, make_certs, make_collector
from tests.support.registry import registry_of
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PASSWORD = "s3cret-Pw"


async def _fails(collector: RedisCollector) -> CollectError:
    with pytest.raises(CollectError) as info:
        await collector.collect()
    assert PASSWORD not in info.value.message
    return info.value


async def _recovers(collector: RedisCollector, within: float = 20.0) -> Collected:
    """Collect until it works (the backoff is capped at the interval); the same instance."""
    return await collect_until_ok(collector, timeout=within, poll=0.2)


async def test_down_is_a_connection_error_and_recovers_after_restart(
    own_redis: RedisServer,
) -> None:
    collector = make_collector(own_redis, interval=2)
    await collector.collect()
    own_redis.kill()
    error = await _fails(collector)
    assert error.reason == "connection"
    assert f"127.0.0.1:{own_redis.port}" in error.message
    # within the backoff the collector does not hammer the port, it repeats the error
    again = await _fails(collector)
    assert again.message == error.message
    own_redis.start()
    result = await _recovers(collector)
    assert registry_of(result.families).get_sample_value("perf_redis_clients_connected") >= 1  # type: ignore[operator]
    await collector.close()


async def test_wrong_password_is_auth_and_a_fixed_secret_file_recovers(tmp_path: Path) -> None:
    server = RedisServer("--requirepass", PASSWORD)
    try:
        secret = tmp_path / "pw"
        secret.write_text("wrong\n")
        collector = make_collector(server, password_file=secret, interval=1)
        error = await _fails(collector)
        assert error.reason == "auth"
        assert "wrong" not in error.message
        secret.write_text(PASSWORD + "\n")  # rotated secret: read again on reconnect
        await _recovers(collector)
        await collector.close()
    finally:
        server.close()


async def test_missing_password_is_auth(tmp_path: Path) -> None:
    server = RedisServer("--requirepass", PASSWORD)
    try:
        collector = make_collector(server)
        error = await _fails(collector)
        assert error.reason == "auth"
        await collector.close()
    finally:
        server.close()


async def test_acl_user_lacking_info_is_auth_and_recovers_when_granted(
    own_redis: RedisServer,
) -> None:
    client = admin(own_redis)
    client.execute_command(
        "ACL", "SETUSER", "weak", "on", f">{PASSWORD}", "%R~*", "-@all", "+ping", "+scan", "+ttl",
        "+memory|usage", "+client|setname",
    )  # fmt: skip
    collector = make_collector(
        own_redis, username="weak", password_env="PERF_TEST_REDIS_PW", interval=1
    )
    os.environ["PERF_TEST_REDIS_PW"] = PASSWORD
    try:
        error = await _fails(collector)
        assert error.reason == "auth"
        assert "'weak'" in error.message and "info" in error.message.lower()
        assert "docs/redis.md" in error.message
        client.execute_command("ACL", "SETUSER", "weak", "+info")
        await _recovers(collector)
    finally:
        del os.environ["PERF_TEST_REDIS_PW"]
        await collector.close()


async def test_tls_mismatch_is_a_connection_error_either_way(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    tls_server = TlsRedisServer(certs)
    plain_server = RedisServer()
    try:
        plain_to_tls = make_collector(url=f"redis://127.0.0.1:{tls_server.port}/0", timeout=2)
        assert (await _fails(plain_to_tls)).reason == "connection"
        await plain_to_tls.close()

        tls_to_plain = make_collector(
            url=f"rediss://127.0.0.1:{plain_server.port}/0", tls={"ca": certs / "ca.crt"}, timeout=1
        )
        assert (await _fails(tls_to_plain)).reason == "connection"
        await tls_to_plain.close()

        untrusted = make_collector(url=f"rediss://127.0.0.1:{tls_server.port}/0", timeout=2)
        assert (await _fails(untrusted)).reason == "connection"
        await untrusted.close()

        good = make_collector(
            url=f"rediss://127.0.0.1:{tls_server.port}/0", tls={"ca": certs / "ca.crt"}
        )
        result = await good.collect()
        await good.close()
        assert registry_of(result.families).get_sample_value("perf_redis_up") is None
        assert registry_of(result.families).get_sample_value("perf_redis_clients_max") == 10000
    finally:
        tls_server.close()
        plain_server.close()


async def test_loading_is_a_connection_error_until_the_dataset_is_loaded() -> None:
    server = RedisServer("--enable-debug-command", "local")
    try:
        client = admin(server)
        client.execute_command("DEBUG", "POPULATE", 10_000, "k", 8)
        client.save()
        server.stop()
        # 100 microseconds per key: about a second of LOADING
        # answer (LOADING) between every KB loaded instead of every 2 MB
        server.args += [
            "--key-load-delay",
            "100",
            "--loading-process-events-interval-bytes",
            "1024",
        ]
        server.start()
        collector = make_collector(server, namespaces=[], interval=1)
        await _fails_while_loading_then_recovers(collector, keys=10_000)
    finally:
        server.close()


async def _fails_while_loading_then_recovers(collector: RedisCollector, keys: int) -> None:
    """The next cycle fails as a loading server; then the same collector sees every key."""
    error = await _fails(collector)
    assert error.reason == "connection"
    assert "loading" in error.message
    result = await _recovers(collector, within=30)
    db0 = registry_of(result.families).get_sample_value("perf_redis_db_keys", {"db": "0"})
    assert db0 == keys
    await collector.close()


async def test_loading_on_a_connection_already_sampled_is_a_connection_error() -> None:
    # after the first cycle INFO rides in the pipeline: a server that starts loading under an
    # open connection (DEBUG RELOAD here, a replica's full resync in production) must fail the
    # cycle as loading, as the first cycle's INFO alone does, and recover on the same collector
    server = RedisServer("--enable-debug-command", "local")
    try:
        client = admin(server)
        client.execute_command("DEBUG", "POPULATE", 10_000, "k", 8)
        client.config_set("key-load-delay", 100)  # ~1 s of loading, answering LOADING
        client.config_set("loading-process-events-interval-bytes", 1024)
        collector = make_collector(server, namespaces=[], interval=1)
        await collector.collect()
        reload = asyncio.get_running_loop().run_in_executor(
            None, lambda: admin(server).execute_command("DEBUG", "RELOAD")
        )
        wait_until(
            lambda: admin(server).info("persistence")["loading"] == 1,
            10,
            "DEBUG RELOAD to start loading",
            interval=0.01,
        )
        await _fails_while_loading_then_recovers(collector, keys=10_000)
        await reload
    finally:
        server.close()


async def test_out_of_memory_with_noeviction_still_collects() -> None:
    server = RedisServer("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
    try:
        client = admin(server)
        written = 0
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for written in range(10_000):  # bounded: 10 MB cannot fit in 2 MB
                client.set(f"cache:api_response:{written}", "v" * 1000)
        collector = make_collector(server)
        result = await collector.collect()
        await collector.close()
    finally:
        server.close()
    registry = registry_of(result.families)
    assert (
        registry.get_sample_value("perf_redis_namespace_keys", {"namespace": "api_response"})
        == written
    )
    assert registry.get_sample_value("perf_redis_errors_total", {"error": "OOM"}) == 1
    assert registry.get_sample_value("perf_redis_evicted_keys_total") == 0


async def _stopped(server: RedisServer, action: Callable[[], Awaitable[None]]) -> None:
    """Run ``action`` while the Redis process is frozen with SIGSTOP (a hung server)."""
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        await action()
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


async def test_hung_server_is_a_timeout_and_recovers(own_redis: RedisServer) -> None:
    collector = make_collector(own_redis, timeout=0.5, interval=1)
    await collector.collect()

    async def times_out() -> None:
        error = await _fails(collector)
        assert error.reason == "timeout"
        assert "0.5s" in error.message

    await _stopped(own_redis, times_out)
    await _recovers(collector)
    await collector.close()


async def test_cancelled_cycle_drops_the_half_read_connection(own_redis: RedisServer) -> None:
    collector = make_collector(own_redis, timeout=5, interval=1)
    await collector.collect()

    async def cancelled() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(collector.collect(), 0.3)

    await _stopped(own_redis, cancelled)
    # a fresh connection, not the one with a reply still in flight: exact values again
    result = await collector.collect()
    await collector.close()
    assert registry_of(result.families).get_sample_value("perf_redis_clients_connected") >= 1  # type: ignore[operator]


async def test_a_half_failed_batch_still_accounts_for_its_lookups(own_redis: RedisServer) -> None:
    client = admin(own_redis)
    for i in range(50):
        client.set(f"cache:api_response:{i}", "v")
    # TTL allowed, MEMORY USAGE not: every pipeline fails after its TTLs ran
    client.execute_command(
        "ACL", "SETUSER", "no-memory", "on", f">{PASSWORD}", "%R~*", "-@all", "+ping", "+info",
        "+scan", "+ttl", "+client|setname",
    )  # fmt: skip
    os.environ["PERF_TEST_REDIS_PW2"] = PASSWORD
    try:
        collector = make_collector(
            own_redis, username="no-memory", password_env="PERF_TEST_REDIS_PW2"
        )
        error = await _fails(collector)
        await collector.close()
    finally:
        del os.environ["PERF_TEST_REDIS_PW2"]
    assert error.reason == "auth"
    assert "memory" in error.message.lower()
    assert collector.scan is not None
    assert collector.scan.own_hits == 50 == int(client.info("stats")["keyspace_hits"])
    assert collector.scan.published is None


async def test_client_certificate_is_presented_when_the_server_demands_one(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    server = TlsRedisServer(certs, client_certs=True)
    url = f"rediss://127.0.0.1:{server.port}/0"
    try:
        without = make_collector(url=url, tls={"ca": certs / "ca.crt"}, timeout=2)
        assert (await _fails(without)).reason == "connection"
        await without.close()
        with_cert = make_collector(
            url=url,
            tls={"ca": certs / "ca.crt", "cert": certs / "client.crt", "key": certs / "client.key"},
        )
        result = await with_cert.collect()
        await with_cert.close()
    finally:
        server.close()
    assert registry_of(result.families).get_sample_value("perf_redis_clients_connected") == 1


async def test_restarted_server_drops_old_namespace_counts_and_baselines(
    own_redis: RedisServer,
) -> None:
    client = admin(own_redis)
    for i in range(30):
        client.set(f"cache:system_stats:{i}", "1")
    settings = {"scan_count": 10, "scan_max_keys_per_cycle": 100}
    collector = make_collector(own_redis, settings=settings, interval=1)
    await collector.collect()
    before = await collector.collect()
    assert before.facts["namespaces"]["system_stats"]["keys"] == 30

    own_redis.restart()  # nothing persisted: an empty dataset and a new run_id
    client = admin(own_redis)
    for i in range(300):
        client.set(f"cache:budget_status:{i}", "1", ex=60)
    first = await _recovers(collector)
    # the old counts describe a dataset that is gone; the new pass is not complete yet
    assert (
        registry_of(first.families).get_sample_value(
            "perf_redis_namespace_keys", {"namespace": "system_stats"}
        )
        is None
    )
    assert first.facts["namespaces"] is None
    assert first.facts["hit_ratio"] is None and first.facts["keyspace_hits"] is None
    result = first
    for _ in range(6):
        if result.facts["namespaces"] is not None:
            break
        result = await collector.collect()
    await collector.close()
    assert result.facts["namespaces"]["budget_status"] == {
        "keys": 300,
        "keys_without_ttl": 0,
        "memory_bytes": pytest.approx(
            300 * admin(own_redis).memory_usage("cache:budget_status:1"), rel=0.3
        ),
    }
    assert result.facts["namespaces"]["system_stats"]["keys"] == 0


async def test_a_pass_completed_on_the_restarted_server_is_published_at_once(
    own_redis: RedisServer,
) -> None:
    admin(own_redis).set("cache:system_stats:old", "1")
    collector = make_collector(own_redis, interval=1)
    await collector.collect()
    own_redis.restart()
    for i in range(5):
        admin(own_redis).set(f"cache:llm_response:{i}", "1", ex=1800)
    result = await _recovers(collector)
    await collector.close()
    assert result.facts["namespaces"]["llm_response"]["keys"] == 5
    assert result.facts["namespaces"]["system_stats"]["keys"] == 0
