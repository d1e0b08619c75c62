"""The PostgreSQL collector against a suite-started server: values equal the server's own views.

Each test works in its own database, where nothing else runs, and autovacuum is off, so the
collector's numbers and the views read afterwards must agree exactly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from exporter.collectors.postgres_families import DATABASE_COUNTERS
from exporter.collectors.postgres_queries import CONNECTION_STATES
from tests.support.cycles import collect_until_ok
from tests.support.postgres_collector import collector, flush_stats, wait_for
from tests.support.registry import registry_of
from tests.support.servers import PostgresServer, pg_bin

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module", params=["15", "18"], ids=lambda v: f"pg{v}")
def server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    srv = PostgresServer(settings={"autovacuum": "off"}, bin_dir=pg_bin(request.param))
    yield srv
    srv.close()


def create_db(server: PostgresServer, name: str) -> str:
    server.sql(f"CREATE DATABASE {name}")
    return name


@pytest.fixture
async def sessions() -> AsyncIterator[list[asyncpg.Connection]]:
    """Connections a test opens; all closed at the end."""
    conns: list[asyncpg.Connection] = []
    yield conns
    for conn in conns:
        conn.terminate()


async def test_block_and_tuple_counters_equal_pg_stat_database(server: PostgresServer) -> None:
    db = create_db(server, "work")
    conn = await asyncpg.connect(server.dsn_for("postgres", db))
    try:
        await conn.execute("CREATE TABLE items (id int PRIMARY KEY, note text)")
        await conn.execute(
            "INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g"
        )
        await conn.execute("UPDATE items SET note = 'y' WHERE id <= 100")
        await conn.execute("DELETE FROM items WHERE id > 4900")
        for i in range(20):
            await conn.fetchval("SELECT note FROM items WHERE id = $1", i + 1)
        await conn.fetchval("SELECT count(*) FROM items")
        await flush_stats(conn)
        coll = collector(dsn=server.dsn, databases=[db])
        result = await coll.collect()
        await coll.close()
    finally:
        await conn.close()
    reg = registry_of(result)
    columns = [c for c, _n, _h in DATABASE_COUNTERS]
    view = server.sql(
        f"SELECT {', '.join(columns)}, pg_database_size(datname) "
        f"FROM pg_stat_database WHERE datname = '{db}'"
    ).split("|")
    for (column, name, _help), expected in zip(DATABASE_COUNTERS, view, strict=False):
        got = reg.get_sample_value(f"{name}_total", {"datname": db})
        assert got == float(expected), column
    assert reg.get_sample_value("perf_postgres_blocks_hit_total", {"datname": db}) > 100
    assert reg.get_sample_value("perf_postgres_tuples_inserted_total", {"datname": db}) >= 5000
    assert reg.get_sample_value("perf_postgres_tuples_deleted_total", {"datname": db}) >= 100
    size = reg.get_sample_value("perf_postgres_database_size_bytes", {"datname": db})
    assert size == float(view[-1])
    # the `databases` list filters every per-database series
    assert reg.get_sample_value("perf_postgres_blocks_hit_total", {"datname": "postgres"}) is None
    assert (
        reg.get_sample_value(
            "perf_postgres_connections", {"datname": "postgres", "state": "active"}
        )
        is None
    )


async def test_hit_ratio_fact_covers_only_the_last_interval(server: PostgresServer) -> None:
    db = create_db(server, "ratio")
    query = f"SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = '{db}'"
    coll = collector(dsn=server.dsn, databases=[db])
    try:
        hit0, read0 = map(int, server.sql(query).split("|"))
        first = await coll.collect()
        assert first.facts["cache_hit_ratio"] is None  # no previous sample yet
        conn = await asyncpg.connect(server.dsn_for("postgres", db))
        try:
            await conn.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 20000) g")
            for _ in range(5):
                await conn.fetchval("SELECT sum(id) FROM t")
            await flush_stats(conn)
        finally:
            await conn.close()
        hit1, read1 = map(int, server.sql(query).split("|"))
        second = await coll.collect()
    finally:
        await coll.close()
    hits, reads = hit1 - hit0, read1 - read0
    assert hits > 0
    assert second.facts["cache_hit_ratio"] == pytest.approx(hits / (hits + reads))


async def test_connection_states_are_counted_exactly(
    server: PostgresServer, sessions: list[asyncpg.Connection]
) -> None:
    db = create_db(server, "sess")
    server.sql("CREATE TABLE locked (id int)", db)
    dsn = server.dsn_for("postgres", db)

    async def session(app: str) -> asyncpg.Connection:
        conn = await asyncpg.connect(dsn, server_settings={"application_name": app})
        sessions.append(conn)
        return conn

    for _ in range(2):
        await session("idler")
    for _ in range(3):
        conn = await session("holder")
        await conn.execute("BEGIN")
        await conn.fetchval("SELECT 1")
    aborted = await session("clumsy")
    await aborted.execute("BEGIN")
    with pytest.raises(asyncpg.DivisionByZeroError):
        await aborted.fetchval("SELECT 1/0")
    locker = await session("locker")
    await locker.execute("BEGIN")
    await locker.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
    sleepers = [await session("sleeper") for _ in range(2)]
    waiter = await session("waiter")
    pending = [asyncio.ensure_future(c.fetchval("SELECT pg_sleep(60)")) for c in sleepers]
    pending.append(asyncio.ensure_future(waiter.fetch("SELECT * FROM locked")))

    async def all_running() -> bool:
        out = server.sql(
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND state = 'active'"
        )
        return out == "3"

    try:
        await wait_for(all_running, what="three active sessions")
        await asyncio.sleep(1.1)  # so that the idle-in-transaction age is measurable
        coll = collector(dsn=server.dsn, settings={"applications_top_n": 10})
        result = await coll.collect()
        await coll.close()
        view = dict(
            line.split("|")
            for line in server.sql(
                f"SELECT state, count(*) FROM pg_stat_activity WHERE datname = '{db}' "
                "AND backend_type = 'client backend' GROUP BY state"
            ).splitlines()
        )
    finally:
        server.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        for fut in pending:
            fut.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    reg = registry_of(result)
    expected = {
        "idle": 2,
        "idle in transaction": 4,
        "idle in transaction (aborted)": 1,
        "active": 3,
    }
    assert {k: int(v) for k, v in view.items()} == expected
    for state in CONNECTION_STATES:
        got = reg.get_sample_value("perf_postgres_connections", {"datname": db, "state": state})
        assert got == expected.get(state, 0), state
    assert reg.get_sample_value("perf_postgres_lock_waiters", {"datname": db}) == 1
    idle_age = reg.get_sample_value(
        "perf_postgres_idle_in_transaction_max_age_seconds", {"application_name": "holder"}
    )
    assert idle_age is not None and 1.0 <= idle_age < 60
    xact_age = reg.get_sample_value(
        "perf_postgres_transaction_max_age_seconds", {"application_name": "holder"}
    )
    assert xact_age is not None and xact_age >= idle_age
    assert (
        reg.get_sample_value(
            "perf_postgres_idle_in_transaction_max_age_seconds", {"application_name": "idler"}
        )
        is None
    )  # no transaction open, so no age
    assert result.facts["longest_idle_in_transaction_seconds"] >= idle_age
    assert reg.get_sample_value("perf_postgres_max_connections") == 40
    assert reg.get_sample_value("perf_postgres_superuser_reserved_connections") == 3


async def statement_workload(server: PostgresServer, db: str) -> None:
    conn = await asyncpg.connect(server.dsn_for("postgres", db))
    try:
        await conn.execute("CREATE TABLE acct (id int PRIMARY KEY, balance int)")
        await conn.execute("INSERT INTO acct SELECT g, 0 FROM generate_series(1, 2000) g")
        for i in range(30):
            await conn.execute("UPDATE acct SET balance = balance + 1 WHERE id = $1", i + 1)
        for i in range(12):
            await conn.fetch("SELECT * FROM acct WHERE id > $1 ORDER BY balance", i)
        for i in range(7):
            await conn.fetchval("SELECT count(*) FROM acct WHERE balance > $1", i)
        for _ in range(3):
            await conn.fetchval("SELECT pg_sleep(0.02)")
        await conn.fetchval("SELECT max(id) FROM acct")
    finally:
        await conn.close()


def view_statements(server: PostgresServer, db: str) -> dict[tuple[str, str], list[float]]:
    # 17 split the block I/O times into shared_ and local_ columns
    if int(server.sql("SHOW server_version_num")) >= 170000:
        times = (
            "sum(shared_blk_read_time + local_blk_read_time), "
            "sum(shared_blk_write_time + local_blk_write_time)"
        )
    else:
        times = "sum(blk_read_time), sum(blk_write_time)"
    out = server.sql(
        "SELECT s.queryid, r.rolname, sum(calls), sum(total_exec_time), sum(rows), "
        f"sum(shared_blks_hit), sum(shared_blks_read), {times} FROM pg_stat_statements s "
        "JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles r ON r.oid = s.userid "
        f"WHERE d.datname = '{db}' GROUP BY 1, 2"
    )
    rows: dict[tuple[str, str], list[float]] = {}
    for line in out.splitlines():
        queryid, user, *values = line.split("|")
        rows[(queryid, user)] = [float(v) for v in values]
    return rows


STATEMENT_METRICS = (
    "perf_postgres_statement_calls_total",
    "perf_postgres_statement_exec_seconds_total",
    "perf_postgres_statement_rows_total",
    "perf_postgres_statement_shared_blocks_hit_total",
    "perf_postgres_statement_shared_blocks_read_total",
    "perf_postgres_statement_block_read_seconds_total",
    "perf_postgres_statement_block_write_seconds_total",
)
SCALES = (1, 0.001, 1, 1, 1, 0.001, 0.001)


async def test_statement_counters_and_other_row_match_pg_stat_statements(
    server: PostgresServer,
) -> None:
    db = create_db(server, "stmts")
    await statement_workload(server, db)
    coll = collector(dsn=server.dsn, databases=[db], settings={"statements_top_n": 3})
    try:
        result = await coll.collect()
    finally:
        await coll.close()
    view = view_statements(server, db)
    assert len(view) > 4  # more statements than the top 3, so `other` is not empty
    # the new database's catalog is read from disk: block read time is counted (track_io_timing)
    assert (
        sum(
            v[STATEMENT_METRICS.index("perf_postgres_statement_block_read_seconds_total")]
            for v in view.values()
        )
        > 0
    )
    reg = registry_of(result)
    samples = [
        s for f in result.families if f.name == "perf_postgres_statement_calls" for s in f.samples
    ]
    top = [s.labels for s in samples if s.labels["queryid"] != "other"]
    assert len(top) == 3
    by_time = sorted(view.items(), key=lambda kv: kv[1][1], reverse=True)
    assert {(lb["queryid"], lb["user"]) for lb in top} == {k for k, _v in by_time[:3]}
    for labels in top:
        assert labels["datname"] == db
        values = view[(labels["queryid"], labels["user"])]
        for metric, expected, scale in zip(STATEMENT_METRICS, values, SCALES, strict=True):
            assert reg.get_sample_value(metric, labels) == pytest.approx(expected * scale)
    other = {"queryid": "other", "datname": "", "user": ""}
    assert reg.get_sample_value("perf_postgres_statement_calls_total", other) > 0
    for index, (metric, scale) in enumerate(zip(STATEMENT_METRICS, SCALES, strict=True)):
        total = sum(v[index] for v in view.values()) * scale
        got = sum(reg.get_sample_value(metric, lb) or 0 for lb in [*top, other])
        assert got == pytest.approx(total, rel=1e-9), metric
    assert reg.get_sample_value("perf_postgres_stat_statements_available") == 1
    assert (
        reg.get_sample_value(
            "perf_postgres_statement_info", {"queryid": top[0]["queryid"], "query": ""}
        )
        is None
    )
    assert not [f for f in result.families if f.name == "perf_postgres_statement_info"]


async def test_statement_text_is_normalized_cut_and_fetched_once(server: PostgresServer) -> None:
    db = create_db(server, "texts")
    await statement_workload(server, db)
    coll = collector(
        dsn=server.dsn,
        databases=[db],
        settings={
            "statements_top_n": 2,
            "statement_text": True,
            "statement_text_max_length": 24,
            "wait_sample_interval": "off",
        },
    )
    try:
        first = await coll.collect()
        second = await coll.collect()
    finally:
        await coll.close()
    info = [
        s for f in first.families if f.name == "perf_postgres_statement_info" for s in f.samples
    ]
    assert len(info) == 2
    view = dict(
        line.split("|", 1)
        for line in server.sql(
            "SELECT DISTINCT queryid, query FROM pg_stat_statements s JOIN pg_database d "
            f"ON d.oid = s.dbid WHERE d.datname = '{db}'"
        ).splitlines()
    )
    for sample in info:
        text = " ".join(view[sample.labels["queryid"]].split())
        expected = text if len(text) <= 24 else text[:21].rstrip() + "..."
        assert sample.labels["query"] == expected
        assert len(sample.labels["query"]) <= 24
    statements = registry_of(first).get_sample_value("perf_postgres_collector_statements")
    # probe, server (with the databases' ages), statements, activity (sampling off: read in the
    # cycle) and, the first time only, the text lookup (no tables: the connected database is not
    # in `databases`)
    assert statements == 5
    assert registry_of(second).get_sample_value("perf_postgres_collector_statements") == 4


async def test_tables_and_index_advice_come_from_the_statistics_views(
    server: PostgresServer,
) -> None:
    db = create_db(server, "tbl")
    conn = await asyncpg.connect(server.dsn_for("postgres", db))
    try:
        await conn.execute("CREATE TABLE big (id int PRIMARY KEY, note text)")
        await conn.execute("INSERT INTO big SELECT g, 'n' || g FROM generate_series(1, 20000) g")
        await conn.execute("CREATE INDEX big_note_idx ON big (note)")
        await conn.execute("CREATE TABLE small (id int)")
        for _ in range(4):
            await conn.fetchval("SELECT count(*) FROM big WHERE note LIKE '%7'")
        await conn.fetchval("SELECT id FROM big WHERE id = 5")
        await flush_stats(conn)
    finally:
        await conn.close()
    scans = (
        "SELECT relname, seq_scan, coalesce(idx_scan, 0), heap_blks_hit, heap_blks_read, "
        "coalesce(idx_blks_hit, 0), coalesce(idx_blks_read, 0), "
        "pg_total_relation_size(relid) FROM pg_stat_user_tables JOIN pg_statio_user_tables "
        "USING (relid, relname) ORDER BY relname"
    )
    before = server.sql(scans, db)
    coll = collector(
        dsn=server.dsn_for("postgres", db),
        settings={"index_advice_min_seq_scans": 3, "index_advice_min_rows_per_scan": 1000},
    )
    try:
        results = [await coll.collect() for _ in range(3)]
    finally:
        await coll.close()
    after = server.sql(scans, db)
    assert before == after  # three cycles never scanned or read a user table
    reg = registry_of(results[-1])
    for line in after.splitlines():
        relname, seq, idx, heap_hit, heap_read, idx_hit, idx_read, size = line.split("|")
        labels = {"datname": db, "schemaname": "public", "relname": relname}
        for metric, expected in (
            ("perf_postgres_table_seq_scan_total", seq),
            ("perf_postgres_table_idx_scan_total", idx),
            ("perf_postgres_table_heap_blocks_hit_total", heap_hit),
            ("perf_postgres_table_heap_blocks_read_total", heap_read),
            ("perf_postgres_table_index_blocks_hit_total", idx_hit),
            ("perf_postgres_table_index_blocks_read_total", idx_read),
            ("perf_postgres_table_size_bytes", size),
        ):
            assert reg.get_sample_value(metric, labels) == float(expected), (relname, metric)
    assert reg.get_sample_value(
        "perf_postgres_unused_index_size_bytes",
        {"datname": db, "schemaname": "public", "relname": "big", "indexrelname": "big_note_idx"},
    ) == float(server.sql("SELECT pg_relation_size('big_note_idx')", db))
    advice = results[-1].facts["index_recommendations"]
    kinds = {(a["kind"], a["relname"], a.get("indexrelname")) for a in advice}
    assert kinds == {("missing_index", "big", None), ("unused_index", "big", "big_note_idx")}
    # the primary key was used once and is unique: never advised for removal


async def test_session_is_named_and_bounded_by_timeouts(server: PostgresServer) -> None:
    coll = collector(dsn=server.dsn, timeout=0.8, settings={"wait_sample_interval": "off"})
    try:
        result = await coll.collect()
        line = server.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'perf-exporter'"
        )
    finally:
        await coll.close()
    assert line == "1"  # one dedicated connection, not a pool
    assert coll.session_settings()["statement_timeout"] == "720ms"
    assert coll.session_settings()["lock_timeout"] == "400ms"
    reg = registry_of(result)
    # probe, server (with the databases' ages), tables, statements, activity (sampling off:
    # read in the cycle)
    assert reg.get_sample_value("perf_postgres_collector_statements") == 5
    assert 0 < reg.get_sample_value("perf_postgres_collector_query_duration_seconds") < 0.8


async def test_probe_histogram_accumulates_across_cycles(server: PostgresServer) -> None:
    coll = collector(dsn=server.dsn)
    try:
        for _ in range(3):
            result = await coll.collect()
    finally:
        await coll.close()
    reg = registry_of(result)
    assert reg.get_sample_value("perf_postgres_probe_duration_seconds_count") == 3
    assert reg.get_sample_value("perf_postgres_probe_duration_seconds_bucket", {"le": "+Inf"}) == 3
    assert 0 < reg.get_sample_value("perf_postgres_probe_duration_seconds_sum") < 3
    assert result.facts["probe_seconds"] > 0


async def test_pg_monitor_role_is_enough(server: PostgresServer) -> None:
    db = create_db(server, "lp")
    await statement_workload(server, db)
    # exactly the grants docs/postgres.md documents
    server.sql("CREATE ROLE perf_monitor LOGIN")
    server.sql("GRANT pg_monitor TO perf_monitor")
    coll = collector(dsn=server.dsn_for("perf_monitor"), settings={"statements_top_n": 3})
    try:
        everything = await collect_until_ok(coll)
    finally:
        await coll.close()
    filtered = collector(
        dsn=server.dsn_for("perf_monitor"), databases=[db], settings={"statements_top_n": 3}
    )
    try:
        result = await filtered.collect()
    finally:
        await filtered.close()
    reg = registry_of(everything)
    assert reg.get_sample_value("perf_postgres_stat_statements_available") == 1
    assert reg.get_sample_value("perf_postgres_database_size_bytes", {"datname": db}) > 0
    # pg_read_all_stats shows other roles' statements with their queryid
    users = {
        s.labels["user"]
        for f in everything.families
        if f.name == "perf_postgres_statement_calls"
        for s in f.samples
    }
    assert "postgres" in users
    view = view_statements(server, db)
    reg = registry_of(result)
    calls = sum(
        s.value
        for f in result.families
        if f.name == "perf_postgres_statement_calls"
        for s in f.samples
    )
    assert calls == sum(v[0] for v in view.values())
    assert reg.get_sample_value("perf_postgres_blocks_hit_total", {"datname": db}) > 0


async def test_extension_not_created_in_connected_database_is_said_once(
    server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    db = create_db(server, "noext")
    coll = collector(dsn=server.dsn_for("postgres", db))
    caplog.set_level(logging.WARNING, logger="exporter.collectors.postgres")
    try:
        results = [await coll.collect() for _ in range(3)]
    finally:
        await coll.close()
    for result in results:
        assert registry_of(result).get_sample_value("perf_postgres_stat_statements_available") == 0
        assert not [f for f in result.families if f.name.startswith("perf_postgres_statement_")]
    notes = [r.getMessage() for r in caplog.records if "pg_stat_statements" in r.getMessage()]
    assert len(notes) == 1
    assert "not created in database noext" in notes[0]
    assert "CREATE EXTENSION pg_stat_statements" in notes[0]
