"""Faults survived by a PostgreSQL target: crash, long outage, full server, lock, dropped
database, rotated password. See :mod:`tests.support.faults_world` for what every fault asserts.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import asyncpg
import pytest

from tests.support.faults_world import INTERVAL, MONITOR_PASSWORD, World
from tests.support.servers import PostgresServer, require_binary

pytestmark = pytest.mark.integration


def kill_collector_session(pg: PostgresServer) -> None:
    pg.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'perf-exporter'"
    )


@pytest.mark.timeout(60)
def test_postgres_killed_and_restarted(world: World) -> None:
    world.fault("pg", "connection", world.pg.kill, world.pg.start)


@pytest.mark.timeout(60)
def test_postgres_stopped_for_several_intervals(world: World) -> None:
    before = world.errors("pg", "connection")
    world.fault("pg", "connection", world.pg.stop, world.pg.start, hold=4 * INTERVAL)
    # the reconnect backoff is capped: a long outage is still retried, not given up on
    assert world.errors("pg", "connection") - before >= 2


@pytest.mark.timeout(60)
def test_postgres_max_connections_exhausted_by_other_clients(world: World) -> None:
    crowd: list[subprocess.Popen[bytes]] = []

    def crowd_size() -> int:
        return int(world.pg.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'crowd'"))

    def join(n: int) -> None:
        for _ in range(n):
            crowd.append(
                subprocess.Popen(
                    [
                        require_binary("psql"),
                        "-X",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(world.pg.port),
                        "-U",
                        "crowd",
                        "-d",
                        "postgres",
                        "-c",
                        "SELECT pg_sleep(60)",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def exhaust() -> None:
        # psql sessions that sleep take every slot not reserved for superusers (12 - 3); the
        # collector's session is cut so it must reconnect into a full server
        join(12)
        for _ in range(20):
            time.sleep(0.3)
            if crowd_size() >= 9:
                return
            kill_collector_session(world.pg)
            join(2)
        raise AssertionError("the crowd never filled max_connections")

    def release() -> None:
        world.pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename='crowd'")
        for proc in crowd:
            proc.terminate()
        for proc in crowd:
            proc.wait(10)

    try:
        world.fault("pg", "connection", exhaust, release)
    finally:
        release()
    assert "too many" in world.daemon.log or "remaining connection slots" in world.daemon.log


@pytest.mark.timeout(60)
def test_postgres_statement_blocked_by_a_lock_times_out(world: World) -> None:
    holder: list[asyncpg.Connection] = []
    loop = asyncio.new_event_loop()

    def lock() -> None:
        # the collector skips sizes of user tables a migration has locked, so block a view it
        # must read: pg_settings has no base tables, so nothing else on the server waits
        async def take() -> asyncpg.Connection:
            conn = await asyncpg.connect(world.pg.dsn_for("postgres", "app"))
            await conn.execute("BEGIN")
            await conn.execute("LOCK TABLE pg_catalog.pg_settings IN ACCESS EXCLUSIVE MODE")
            return conn

        holder.append(loop.run_until_complete(take()))

    def unlock() -> None:
        loop.run_until_complete(holder[0].close())

    try:
        world.fault("pg", "timeout", lock, unlock, hold=2 * INTERVAL)
    finally:
        if holder and not holder[0].is_closed():
            holder[0].terminate()
        loop.close()


@pytest.mark.timeout(60)
def test_postgres_database_dropped_and_recreated(world: World) -> None:
    def drop() -> None:
        world.pg.sql("DROP DATABASE app WITH (FORCE)")

    def recreate() -> None:
        world.pg.sql("CREATE DATABASE app")
        world.pg.sql("CREATE TABLE orders (id int)", "app")

    world.fault("pg", "connection", drop, recreate)
    assert 'database \\"app\\" does not exist' in world.daemon.log


@pytest.mark.timeout(60)
def test_postgres_password_changed_then_secret_file_updated(world: World) -> None:
    def rotate() -> None:
        world.pg.sql("ALTER ROLE monitor PASSWORD 'monitor-Pw-2'")
        kill_collector_session(world.pg)

    def update_file() -> None:
        world.password_file.write_text("monitor-Pw-2")

    try:
        world.fault("pg", "auth", rotate, update_file, hold=INTERVAL)
    finally:
        world.pg.sql(f"ALTER ROLE monitor PASSWORD '{MONITOR_PASSWORD}'")
        world.password_file.write_text(MONITOR_PASSWORD)
        kill_collector_session(world.pg)
    assert "monitor-Pw-2" not in world.daemon.log
