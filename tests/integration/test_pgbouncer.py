"""The PgBouncer collector against real Debian PgBouncers in front of the suite's PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest
import yaml

from exporter.collectors.base import CollectError
from exporter.collectors.pgbouncer import PgBouncerCollector
from exporter.config import PgBouncerSettings, PgBouncerTarget, load
from tests.support.daemon import DaemonProcess
from tests.support.pgbouncer_server import APP_PASSWORD, APP_USER, STATS_PASSWORD, PgBouncerServer
from tests.support.promtool import promtool
from tests.support.registry import registry_of
from tests.support.servers import PostgresServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

POOL = {"pool": "postgres/postgres", "database": "postgres", "user": "postgres"}


def collector_for(bouncer: PgBouncerServer, password: str = STATS_PASSWORD, **kw: object):  # type: ignore[no-untyped-def]
    target = PgBouncerTarget(name="bouncer", dsn=bouncer.dsn(password=password), **kw)  # type: ignore[arg-type]
    return PgBouncerCollector(target, PgBouncerSettings())


@pytest.fixture(scope="module")
def bouncer(pg_server: PostgresServer) -> Iterator[PgBouncerServer]:
    with closing(PgBouncerServer(pg_server, pool_size=2, pool_mode="transaction")) as server:
        yield server


async def _sleep_through(bouncer: PgBouncerServer, seconds: float) -> None:
    conn = await asyncpg.connect(
        bouncer.dsn(APP_USER, APP_PASSWORD, "postgres"), statement_cache_size=0
    )
    try:
        await conn.execute(f"SELECT pg_sleep({seconds})")
    finally:
        await conn.close()


async def test_saturated_pool_reports_waiting_clients_and_sub_second_wait_then_drains(
    bouncer: PgBouncerServer,
) -> None:
    collector = collector_for(bouncer)
    try:
        before = registry_of(await collector.collect())
        queries_before = (
            before.get_sample_value("perf_pgbouncer_queries_total", {"database": "postgres"}) or 0.0
        )
        # five clients, two server connections: three must wait, up to about a second
        clients = [asyncio.create_task(_sleep_through(bouncer, 1.2)) for _ in range(5)]
        for _ in range(20):
            await asyncio.sleep(0.1)
            busy = await collector.collect()
            reg = registry_of(busy)
            waiting = reg.get_sample_value("perf_pgbouncer_clients", {**POOL, "state": "waiting"})
            if waiting == 3:
                break
        assert reg.get_sample_value("perf_pgbouncer_clients", {**POOL, "state": "waiting"}) == 3
        assert reg.get_sample_value("perf_pgbouncer_clients", {**POOL, "state": "active"}) == 2
        assert reg.get_sample_value("perf_pgbouncer_servers", {**POOL, "state": "active"}) == 2
        max_wait = reg.get_sample_value("perf_pgbouncer_max_wait_seconds", POOL)
        assert max_wait is not None
        # sub-second precision: reading only maxwait (whole seconds) would give 0 or 1 here
        assert 0 < max_wait < 1.2 and max_wait != int(max_wait)
        assert busy.facts["pools"]["postgres/postgres"]["clients_waiting"] == 3
        assert busy.facts["pools"]["postgres/postgres"]["utilisation"] == 1.0
        assert busy.facts["max_wait_seconds"] == pytest.approx(max_wait)

        await asyncio.gather(*clients)
        drained = registry_of(await collector.collect())
        assert drained.get_sample_value("perf_pgbouncer_clients", {**POOL, "state": "waiting"}) == 0
        assert drained.get_sample_value("perf_pgbouncer_max_wait_seconds", POOL) == 0
        queries_after = drained.get_sample_value(
            "perf_pgbouncer_queries_total", {"database": "postgres"}
        )
        assert queries_after is not None and queries_after >= queries_before + 5
        waited = drained.get_sample_value(
            "perf_pgbouncer_client_wait_seconds_total", {"database": "postgres"}
        )
        # three clients waited 1.2 s or more in all (in microseconds on the wire)
        assert waited is not None and 1.2 < waited < 60
        assert (
            drained.get_sample_value("perf_pgbouncer_database_pool_size", {"database": "postgres"})
            == 2
        )
        assert drained.get_sample_value("perf_pgbouncer_max_client_conn") == 50
        assert drained.get_sample_value("perf_pgbouncer_info", {"version": "1.18.0"}) == 1
    finally:
        await collector.close()


async def test_two_bouncers_in_one_config_are_two_independent_targets(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    md5 = PgBouncerServer(pg_server, auth_type="md5", max_client_conn=31)
    scram = PgBouncerServer(pg_server, auth_type="scram-sha-256", max_client_conn=32)
    secret = tmp_path / "stats-password"
    secret.write_text(STATS_PASSWORD + "\n")
    config_file = tmp_path / "config.yml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "targets": {
                    "pgbouncer": [
                        {"name": "md5", "dsn": md5.dsn(), "password_file": str(secret)},
                        {"name": "scram", "dsn": scram.dsn(), "password_file": str(secret)},
                    ]
                }
            }
        )
    )
    config = load(config_file, environ={})
    collectors = [
        PgBouncerCollector(t, config.collectors.pgbouncer) for t in config.targets.pgbouncer
    ]
    try:
        busy = asyncio.create_task(_sleep_through(md5, 0.8))
        await asyncio.sleep(0.3)
        by_name = {c.target.name: registry_of(await c.collect()) for c in collectors}
        await busy
        assert by_name["md5"].get_sample_value("perf_pgbouncer_max_client_conn") == 31
        assert by_name["scram"].get_sample_value("perf_pgbouncer_max_client_conn") == 32
        assert (
            by_name["md5"].get_sample_value("perf_pgbouncer_clients", {**POOL, "state": "active"})
            == 1
        )
        # the scram bouncer never saw an application client, so it has no such pool
        assert (
            by_name["scram"].get_sample_value("perf_pgbouncer_clients", {**POOL, "state": "active"})
            is None
        )
    finally:
        for c in collectors:
            await c.close()
        md5.close()
        scram.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    target = PgBouncerTarget(
        name="gone", dsn=f"postgresql://stats:{STATS_PASSWORD}@127.0.0.1:{free_port()}/pgbouncer"
    )
    collector = PgBouncerCollector(target, PgBouncerSettings())
    with pytest.raises(CollectError) as err:
        await collector.collect()
    assert err.value.reason == "connection"
    assert STATS_PASSWORD not in err.value.message
    assert "***" in err.value.message


async def test_wrong_password_is_an_auth_error_without_the_password(
    bouncer: PgBouncerServer,
) -> None:
    collector = collector_for(bouncer, password="not-the-password")
    with pytest.raises(CollectError) as err:
        await collector.collect()
    assert err.value.reason == "auth"
    assert "not-the-password" not in err.value.message


async def test_a_user_outside_stats_users_is_an_auth_error(bouncer: PgBouncerServer) -> None:
    target = PgBouncerTarget(name="bouncer", dsn=bouncer.dsn(APP_USER, APP_PASSWORD))
    collector = PgBouncerCollector(target, PgBouncerSettings())
    with pytest.raises(CollectError) as err:
        await collector.collect()
    assert err.value.reason == "auth"
    assert "not allowed" in err.value.message
    assert APP_PASSWORD not in err.value.message


async def test_a_hung_bouncer_is_a_timeout_and_a_restarted_one_recovers(
    pg_server: PostgresServer,
) -> None:
    server = PgBouncerServer(pg_server)
    collector = collector_for(server, timeout=0.5)
    try:
        assert (
            registry_of(await collector.collect()).get_sample_value(
                "perf_pgbouncer_max_client_conn"
            )
            == 50
        )
        server.pause()
        with pytest.raises(CollectError) as err:
            await collector.collect()
        assert err.value.reason == "timeout"
        server.resume()
        server.stop()
        with pytest.raises(CollectError) as err:
            await collector.collect()
        # within the reconnect backoff (at most 0.5 s after the first failure) nothing is tried
        assert err.value.reason == "timeout"
        await asyncio.sleep(0.6)
        with pytest.raises(CollectError) as err:
            await collector.collect()
        assert err.value.reason == "connection"
        server.start()
        await asyncio.sleep(1.1)  # the second wait is at most 1 s
        assert (
            registry_of(await collector.collect()).get_sample_value(
                "perf_pgbouncer_max_client_conn"
            )
            == 50
        )
    finally:
        await collector.close()
        server.close()


def test_daemon_scrapes_two_bouncers_and_reports_a_down_one(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    first = PgBouncerServer(pg_server, max_client_conn=41)
    second = PgBouncerServer(pg_server, auth_type="scram-sha-256", max_client_conn=42)
    secret = tmp_path / "stats-password"
    secret.write_text(STATS_PASSWORD + "\n")
    config = {
        "interval": "1s",
        "timeout": "800ms",
        "collectors": {"host": {"enabled": False}},
        "targets": {
            "pgbouncer": [
                {"name": "first", "dsn": first.dsn(), "password_file": str(secret)},
                {"name": "second", "dsn": second.dsn(), "password_file": str(secret)},
                {
                    "name": "gone",
                    "dsn": f"postgresql://stats@127.0.0.1:{free_port()}/pgbouncer",
                    "password_file": str(secret),
                },
            ]
        },
    }
    try:
        with DaemonProcess(config, tmp_path) as daemon:
            up = {name: {"target": name} for name in ("first", "second", "gone")}
            daemon.wait_for(
                lambda: [daemon.value("perf_pgbouncer_up", up[n]) for n in up] == [1, 1, 0],
                timeout=30,
                what="both bouncers up and the missing one down",
            )
            assert daemon.value("perf_pgbouncer_max_client_conn", {"target": "first"}) == 41
            assert daemon.value("perf_pgbouncer_max_client_conn", {"target": "second"}) == 42
            errors = {"collector": "pgbouncer", "target": "gone", "reason": "connection"}
            daemon.wait_for(
                lambda: (daemon.value("perf_exporter_collector_errors_total", errors) or 0) >= 1,
                timeout=30,
                what="a connection error for the missing bouncer",
            )
            assert daemon.value("perf_pgbouncer_max_client_conn", {"target": "gone"}) is None
            text = daemon.scrape()
            assert STATS_PASSWORD not in text and STATS_PASSWORD not in daemon.log
            out = promtool("check", "metrics", stdin=text)
            assert out.returncode == 0, out.stdout + out.stderr
    finally:
        first.close()
        second.close()
