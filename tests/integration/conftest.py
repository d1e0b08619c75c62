"""Fixtures of the integration tests: a fault world per module, a Redis of each flavour per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exporter.collectors import COLLECTORS
from tests.support.daemon import DaemonProcess
from tests.support.faults_world import MONITOR_PASSWORD, TARGETS, World, daemon_config
from tests.support.pgbouncer_server import STATS_PASSWORD, PgBouncerServer
from tests.support.redis_collector import SERVER_BINARIES, server_for
from tests.support.servers import PostgresServer, RedisServer


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("faults")
    pg = PostgresServer(
        stat_statements=False,
        settings={"max_connections": "12", "superuser_reserved_connections": "3"},
        hba=[
            "local all all trust",
            "host all monitor 127.0.0.1/32 scram-sha-256",
            "host all all 127.0.0.1/32 trust",
        ],
    )
    cache = RedisServer(
        "--enable-debug-command", "yes", "--maxmemory", "4mb", "--maxmemory-policy", "noeviction"
    )
    appdata = RedisServer()
    bouncer = PgBouncerServer(pg)
    try:
        pg.sql(f"CREATE ROLE monitor LOGIN PASSWORD '{MONITOR_PASSWORD}' IN ROLE pg_monitor")
        pg.sql("CREATE ROLE crowd LOGIN")
        pg.sql("CREATE DATABASE app")
        pg.sql("CREATE TABLE orders (id int)", "app")
        password_file = tmp / "monitor-password"
        password_file.write_text(MONITOR_PASSWORD)
        config = daemon_config(tmp, pg, cache, appdata, bouncer, password_file)
        watched = {name: kind for name, kind in TARGETS.items() if kind in COLLECTORS}
        with DaemonProcess(config, tmp, env={"PERF_BOUNCER_PW": STATS_PASSWORD}) as d:
            w = World(pg, cache, appdata, bouncer, d, password_file, watched)
            for target in watched:
                w.wait(lambda t=target: w.up(t) == 1.0, 20, f"{target} up at start")  # type: ignore[misc]
            pid = d.proc.pid if d.proc else None
            yield w
            lat = sorted(w.latencies)
            p99 = lat[int(len(lat) * 0.99)]
            print(f"\n/metrics during faults: {len(lat)} scrapes, p99 {p99 * 1000:.1f} ms")  # noqa: T201
            # the same process ran through every fault
            assert d.proc is not None and d.proc.poll() is None and d.proc.pid == pid, (
                f"the daemon did not live through the faults:\n{d.log[-4000:]}"
            )
            code = d.stop()
            # shown by pytest only when the teardown fails: what the daemon said beyond info
            print("\n".join(line for line in d.log.splitlines() if "level=info" not in line))  # noqa: T201
            assert code == 0, f"the daemon exited {code} on SIGTERM:\n{d.log[-4000:]}"
            assert "Traceback" not in d.log, d.log[-4000:]
    finally:
        bouncer.close()
        appdata.close()
        cache.close()
        pg.close()


@pytest.fixture(params=list(SERVER_BINARIES))
def own_redis(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A fresh Redis 7 or Valkey 8.1 per test (the test runs on each): the test may kill,
    restart or reconfigure it, and its deltas see no other test's traffic."""
    instance = server_for(request.param)
    yield instance
    instance.close()
