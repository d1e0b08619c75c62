"""Wraparound, vacuum health and every database's tables against a suite-started PostgreSQL 15.

The server is this module's own (autovacuum off, a lowered autovacuum_freeze_max_age) because
the tests consume transaction IDs, create, lock and drop databases and revoke privileges.
Values are compared with what the server's own views say right after the collection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from exporter.collectors.base import Collected
from tests.support.cycles import collect_until_ok
from tests.support.postgres_collector import collector, flush_stats
from tests.support.registry import registry_of
from tests.support.servers import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FREEZE_MAX_AGE = 150_000_000
#: Generous for a loaded machine; the refresh of other databases gets 80 % of it at most.
TIMING = {"interval": 5.0, "timeout": 3.0}
EVERY_CYCLE = {"table_stats_interval": 0, "table_stats_max_databases": 10}


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    srv = PostgresServer(
        settings={"autovacuum": "off", "autovacuum_freeze_max_age": str(FREEZE_MAX_AGE)}
    )
    yield srv
    srv.close()


def value(result: Collected, name: str, **labels: str) -> float | None:
    return registry_of(result).get_sample_value(name, labels)


def create_db(server: PostgresServer, name: str, table: str) -> None:
    server.sql(f"CREATE DATABASE {name}")
    server.sql(f"CREATE TABLE {table} (id int PRIMARY KEY, note text)", name)
    server.sql(f"INSERT INTO {table} SELECT g, 'x' FROM generate_series(1, 100) g", name)
    server.sql(f"SELECT count(*) FROM {table}", name)


@asynccontextmanager
async def locked(server: PostgresServer, datname: str, table: str) -> AsyncIterator[None]:
    """``table`` of ``datname`` held ACCESS EXCLUSIVE by another session until the block ends."""
    locker = await asyncpg.connect(server.dsn_for("postgres", datname))
    tx = locker.transaction()
    await tx.start()
    try:
        await locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        await tx.rollback()
        await locker.close()


async def exporter_sessions(server: PostgresServer, datname: str) -> int:
    """Sessions of the exporter in one database, once closed ones have left (bounded wait)."""
    deadline = time.monotonic() + 5
    while True:
        count = int(
            server.sql(
                "SELECT count(*) FROM pg_stat_activity "
                f"WHERE application_name = 'perf-exporter' AND datname = '{datname}'"
            )
        )
        if count == 0 or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.05)


async def test_xid_age_equals_the_servers_age_of_datfrozenxid(server: PostgresServer) -> None:
    before = int(server.sql("SELECT age(datfrozenxid) FROM pg_database WHERE datname='postgres'"))
    conn = await asyncpg.connect(server.dsn)
    try:
        for _ in range(300):  # each autocommit statement is a transaction with its own xid
            await conn.fetchval("SELECT txid_current()")
    finally:
        await conn.close()
    coll = collector(dsn=server.dsn, **TIMING)
    try:
        result = await coll.collect()
    finally:
        await coll.close()
    # the collector is read-only: it assigns no xid, so the server's answer afterwards is the same
    rows = dict(
        line.split("|")
        for line in server.sql("SELECT datname, age(datfrozenxid) FROM pg_database").splitlines()
    )
    for datname, age in rows.items():
        assert value(result, "perf_postgres_database_xid_age", datname=datname) == int(age)
    assert int(rows["postgres"]) >= before + 300
    assert "template0" in rows  # templates count: they wrap around too
    assert value(result, "perf_postgres_autovacuum_freeze_max_age") == FREEZE_MAX_AGE


async def test_dead_rows_and_last_vacuum_equal_pg_stat_user_tables(server: PostgresServer) -> None:
    server.sql("CREATE DATABASE vac")
    conn = await asyncpg.connect(server.dsn_for("postgres", "vac"))
    coll = collector(dsn=server.dsn_for("postgres", "vac"), **TIMING)
    try:
        await conn.execute("CREATE TABLE churn (id int PRIMARY KEY, note text)")
        await conn.execute("INSERT INTO churn SELECT g, 'x' FROM generate_series(1, 1000) g")
        await conn.execute("DELETE FROM churn WHERE id <= 300")
        await flush_stats(conn)
        first = await coll.collect()
        dead, live = await conn.fetchrow(
            "SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables WHERE relname = 'churn'"
        )
        labels = {"datname": "vac", "schemaname": "public", "relname": "churn"}
        assert dead == 300
        assert value(first, "perf_postgres_table_dead_tuples", **labels) == dead
        assert value(first, "perf_postgres_table_live_tuples", **labels) == live
        # never vacuumed nor analyzed: no series rather than a fake epoch
        assert value(first, "perf_postgres_table_last_vacuum_timestamp_seconds", **labels) is None
        assert value(first, "perf_postgres_table_last_analyze_timestamp_seconds", **labels) is None

        await conn.execute("VACUUM churn")
        await conn.execute("ANALYZE churn")
        await flush_stats(conn)
        second = await coll.collect()
        vacuumed, analyzed, dead = await conn.fetchrow(
            "SELECT extract(epoch FROM last_vacuum)::float8, "
            "extract(epoch FROM last_analyze)::float8, n_dead_tup "
            "FROM pg_stat_user_tables WHERE relname = 'churn'"
        )
    finally:
        await coll.close()
        await conn.close()
    assert dead == 0
    assert value(second, "perf_postgres_table_dead_tuples", **labels) == 0
    assert value(second, "perf_postgres_table_last_vacuum_timestamp_seconds", **labels) == vacuumed
    assert value(second, "perf_postgres_table_last_analyze_timestamp_seconds", **labels) == analyzed
    assert abs(vacuumed - time.time()) < 60


async def test_a_running_vacuum_is_counted_by_database_and_phase(server: PostgresServer) -> None:
    server.sql("CREATE DATABASE slowvac")
    server.sql(
        "CREATE TABLE big AS SELECT g AS id, repeat('x', 100) AS note "
        "FROM generate_series(1, 30000) g",
        "slowvac",
    )
    server.sql("DELETE FROM big WHERE id % 2 = 0", "slowvac")
    vacuum = await asyncpg.connect(server.dsn_for("postgres", "slowvac"))
    # the cost delay makes VACUUM sleep 100 ms about every page: several seconds, then cancelled
    await vacuum.execute("SET vacuum_cost_delay = 100; SET vacuum_cost_limit = 1")
    task = asyncio.create_task(vacuum.execute("VACUUM big"))
    coll = collector(dsn=server.dsn, **TIMING)
    try:
        deadline = time.monotonic() + 20
        while server.sql("SELECT phase FROM pg_stat_progress_vacuum") != "scanning heap":
            assert time.monotonic() < deadline, "the VACUUM never showed in its progress view"
            await asyncio.sleep(0.05)
        result = await coll.collect()
        phases = server.sql("SELECT phase FROM pg_stat_progress_vacuum").splitlines()
    finally:
        await coll.close()
        server.sql(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_progress_vacuum WHERE datname = 'slowvac'"
        )
        with pytest.raises(asyncpg.QueryCanceledError):
            await asyncio.wait_for(task, 30)
        await vacuum.close()
    samples = [
        s
        for f in result.families
        if f.name == "perf_postgres_vacuums_in_progress"
        for s in f.samples
    ]
    assert [(s.labels["datname"], s.value) for s in samples] == [("slowvac", 1.0)]
    # about 550 pages at 100 ms each: still in the heap scan when the view was read again
    assert phases == ["scanning heap"]
    assert samples[0].labels["phase"] == "scanning heap"


async def test_tables_of_every_database_carry_their_datname(server: PostgresServer) -> None:
    create_db(server, "alpha", "alpha_t")
    create_db(server, "beta", "beta_t")
    coll = collector(
        dsn=server.dsn, databases=["postgres", "alpha", "beta"], settings=EVERY_CYCLE, **TIMING
    )
    try:
        result = await collect_until_ok(coll)
        assert await exporter_sessions(server, "alpha") == 0
        assert await exporter_sessions(server, "beta") == 0
        assert await exporter_sessions(server, "postgres") == 1  # the collector's own
    finally:
        await coll.close()
    for datname in ("alpha", "beta"):
        table = f"{datname}_t"
        scans = int(
            server.sql(
                f"SELECT seq_scan FROM pg_stat_user_tables WHERE relname = '{table}'", datname
            )
        )
        labels = {"datname": datname, "schemaname": "public", "relname": table}
        assert scans >= 1
        assert value(result, "perf_postgres_table_seq_scan_total", **labels) == scans
        assert value(result, "perf_postgres_table_live_tuples", **labels) == 100
        assert value(result, "perf_postgres_table_stats_up", datname=datname) == 1
        # a table is reported under its own database only
        other = "beta" if datname == "alpha" else "alpha"
        assert (
            value(result, "perf_postgres_table_seq_scan_total", **{**labels, "datname": other})
            is None
        )
    assert value(result, "perf_postgres_table_stats_up", datname="postgres") == 1
    assert value(result, "perf_postgres_table_stats_databases_skipped") == 0
    # probe, server (with the databases' ages), tables, statements, activity here; one TABLES
    # in each other one
    assert value(result, "perf_postgres_collector_statements") == 7


async def test_the_cap_limits_the_databases_read_and_counts_the_rest(
    server: PostgresServer,
) -> None:
    create_db(server, "cap_a", "cap_a_t")
    create_db(server, "cap_b", "cap_b_t")
    coll = collector(
        dsn=server.dsn,
        databases=["postgres", "cap_a", "cap_b"],
        settings={**EVERY_CYCLE, "table_stats_max_databases": 2},
        **TIMING,
    )
    try:
        result = await coll.collect()
    finally:
        await coll.close()
    assert value(result, "perf_postgres_table_stats_up", datname="cap_a") == 1
    assert value(result, "perf_postgres_table_stats_up", datname="cap_b") is None
    assert value(result, "perf_postgres_table_stats_databases_skipped") == 1


async def test_a_database_dropped_midway_is_counted_and_the_others_stay(
    server: PostgresServer,
) -> None:
    for name in ("drop_a", "drop_b", "drop_c"):
        create_db(server, name, f"{name}_t")
    coll = collector(
        dsn=server.dsn,
        databases=["postgres", "drop_a", "drop_b", "drop_c"],
        settings=EVERY_CYCLE,
        **TIMING,
    )
    real_open = coll._other_databases._open

    async def drop_then_open(datname: str, session: dict[str, str], seconds: float) -> object:
        # dropped after the cycle listed it and before the exporter connects: the real race
        if datname == "drop_b":
            admin = await asyncpg.connect(server.dsn)
            try:
                await admin.execute("DROP DATABASE drop_b")
            finally:
                await admin.close()
        return await real_open(datname, session, seconds)

    coll._other_databases._open = drop_then_open  # type: ignore[assignment]
    try:
        first = await coll.collect()
        second = await coll.collect()
    finally:
        await coll.close()
    assert value(first, "perf_postgres_table_stats_up", datname="drop_b") == 0
    assert (
        value(first, "perf_postgres_table_stats_errors_total", datname="drop_b", reason="gone") == 1
    )
    for name in ("drop_a", "drop_c"):
        labels = {"datname": name, "schemaname": "public", "relname": f"{name}_t"}
        assert value(first, "perf_postgres_table_live_tuples", **labels) == 100
        assert value(second, "perf_postgres_table_live_tuples", **labels) == 100
    # gone from the server, so no longer listed; the counter stays (never goes down)
    assert value(second, "perf_postgres_table_stats_up", datname="drop_b") is None
    assert (
        value(second, "perf_postgres_table_stats_errors_total", datname="drop_b", reason="gone")
        == 1
    )


async def test_no_connect_privilege_and_connection_limit_are_counted_not_fatal(
    server: PostgresServer,
) -> None:
    create_db(server, "closed", "closed_t")
    create_db(server, "crowded", "crowded_t")
    create_db(server, "open_db", "open_db_t")
    server.sql("CREATE ROLE watcher LOGIN IN ROLE pg_monitor")
    server.sql("REVOKE CONNECT ON DATABASE closed FROM PUBLIC")
    server.sql("ALTER DATABASE crowded CONNECTION LIMIT 0")
    coll = collector(
        dsn=server.dsn_for("watcher"),
        databases=["postgres", "closed", "crowded", "open_db"],
        settings=EVERY_CYCLE,
        **TIMING,
    )
    try:
        first = await coll.collect()
        second = await coll.collect()
    finally:
        await coll.close()
    for result, count in ((first, 1), (second, 2)):
        errors = "perf_postgres_table_stats_errors_total"
        assert value(result, errors, datname="closed", reason="privilege") == count
        assert value(result, errors, datname="crowded", reason="too_many_connections") == count
        assert value(result, "perf_postgres_table_stats_up", datname="closed") == 0
        assert value(result, "perf_postgres_table_stats_up", datname="crowded") == 0
        assert value(result, "perf_postgres_table_stats_up", datname="open_db") == 1
        labels = {"datname": "open_db", "schemaname": "public", "relname": "open_db_t"}
        assert value(result, "perf_postgres_table_live_tuples", **labels) == 100


async def test_a_locked_database_times_out_alone_and_leaves_no_session(
    server: PostgresServer,
) -> None:
    create_db(server, "stuck", "stuck_t")
    create_db(server, "fine", "fine_t")
    # every statistics query in that database reads pg_class: it waits behind this lock
    async with locked(server, "stuck", "pg_class"):
        coll = collector(
            dsn=server.dsn, databases=["postgres", "stuck", "fine"], settings=EVERY_CYCLE, **TIMING
        )
        try:
            result = await coll.collect()
        finally:
            await coll.close()
    assert value(result, "perf_postgres_table_stats_up", datname="stuck") == 0
    assert value(result, "perf_postgres_table_stats_up", datname="fine") == 1
    assert (
        value(result, "perf_postgres_table_stats_errors_total", datname="stuck", reason="timeout")
        == 1
    )
    assert await exporter_sessions(server, "stuck") == 0


async def test_other_databases_are_refreshed_only_every_table_stats_interval(
    server: PostgresServer,
) -> None:
    create_db(server, "lazy", "lazy_t")
    coll = collector(
        dsn=server.dsn,
        databases=["postgres", "lazy"],
        settings={"table_stats_interval": 3600, "table_stats_max_databases": 10},
        **TIMING,
    )
    try:
        first = await coll.collect()
        server.sql("SELECT count(*) FROM lazy_t", "lazy")
        second = await coll.collect()
    finally:
        await coll.close()
    labels = {"datname": "lazy", "schemaname": "public", "relname": "lazy_t"}
    stamp = "perf_postgres_table_stats_timestamp_seconds"
    # the second cycle serves the first one's rows and says when they were read
    assert value(second, stamp, datname="lazy") == value(first, stamp, datname="lazy")
    assert value(second, "perf_postgres_table_seq_scan_total", **labels) == value(
        first, "perf_postgres_table_seq_scan_total", **labels
    )
    # only the connected database's statements ran: no TABLES in another database
    assert (
        value(second, "perf_postgres_collector_statements")
        == value(first, "perf_postgres_collector_statements") - 1
    )


async def test_a_cancelled_cycle_leaves_no_session_in_another_database(
    server: PostgresServer,
) -> None:
    create_db(server, "held", "held_t")
    # the statistics query joins pg_namespace: it waits here, connected, until cancelled
    async with locked(server, "held", "pg_namespace"):
        coll = collector(
            dsn=server.dsn,
            databases=["postgres", "held"],
            settings={**EVERY_CYCLE, "table_stats_interval": 0},
            interval=60.0,
            timeout=30.0,
        )
        task = asyncio.create_task(coll.collect())
        deadline = time.monotonic() + 20
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'perf-exporter' "
            "AND datname = 'held' AND wait_event_type = 'Lock'"
        )
        while server.sql(query) != "1":
            assert time.monotonic() < deadline, "the exporter never waited in database held"
            await asyncio.sleep(0.05)
        task.cancel()  # as the scheduler does at shutdown or on its own timeout
        with pytest.raises(asyncio.CancelledError):
            await task
        await coll.close()
    assert await exporter_sessions(server, "held") == 0
    assert await exporter_sessions(server, "postgres") == 0
