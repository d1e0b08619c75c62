"""The statements that read the backends, against PostgreSQL 15 and 18: the wait sample and
the server statement give the same answer as reading ``pg_stat_activity`` (and
``pg_stat_replication``) whole, without making a row for each idle backend.

The references below are the statements as the views state them (and as the collector read
them until 2026-12-07). Each pair runs in one transaction, so both read the same snapshot of
the backends.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from exporter.collectors.postgres_activity import activity_sql
from exporter.collectors.postgres_queries import SERVER
from tests.support.postgres_collector import wait_for
from tests.support.servers import PostgresServer, pg_bin

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

IDLE_SESSIONS = 24

#: The sample read through the view: a row for every backend.
REFERENCE = """
WITH a AS MATERIALIZED (
    SELECT pid, coalesce(datname, '') AS datname, coalesce(state, '') AS state,
           wait_event_type, wait_event, query_id,
           coalesce(application_name, '') AS application_name,
           backend_type = 'client backend' AS client, xact_start, state_change
    FROM pg_stat_activity
    WHERE pid <> pg_backend_pid()
), w AS MATERIALIZED (
    SELECT pid, pg_blocking_pids(pid) AS blockers
    FROM a
    WHERE client AND wait_event_type = 'Lock'
      AND ($1::text[] IS NULL OR datname = ANY($1::text[]))
)
SELECT
    current_setting('compute_query_id') AS compute_query_id,
    (SELECT json_agg(json_build_object('datname', s.datname, 'type', s.type, 'event', s.event,
                                       'query_id', s.query_id, 'n', s.n))
      FROM (SELECT datname, coalesce(wait_event_type, 'CPU') AS type,
                   coalesce(wait_event, 'CPU') AS event, query_id, count(*) AS n
            FROM a
            WHERE client AND state = 'active'
              AND ($1::text[] IS NULL OR datname = ANY($1::text[]))
            GROUP BY 1, 2, 3, 4) s) AS active,
    CASE WHEN EXISTS (SELECT 1 FROM w) THEN
        (SELECT json_agg(json_build_object('pid', w.pid, 'datname', a.datname,
                                           'blockers', w.blockers))
          FROM w JOIN a USING (pid))
    END AS waiters,
    CASE WHEN EXISTS (SELECT 1 FROM w WHERE cardinality(w.blockers) > 0) THEN
        (SELECT json_agg(json_build_object(
            'pid', a.pid, 'datname', a.datname, 'application_name', a.application_name,
            'state', a.state, 'query_id', a.query_id::text))
          FROM a WHERE a.pid IN (SELECT unnest(w.blockers) FROM w))
    END AS blockers
"""


@pytest.fixture(scope="module", params=["15", "18"], ids=lambda v: f"pg{v}")
def server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    srv = PostgresServer(settings={"autovacuum": "off"}, bin_dir=pg_bin(request.param))
    srv.sql("CREATE DATABASE app")
    srv.sql("CREATE TABLE accounts (id int)", "app")
    srv.sql("CREATE TABLE imports (line text)", "app")
    yield srv
    srv.close()


@pytest.fixture
async def busy(server: PostgresServer) -> AsyncIterator[list[asyncpg.Connection]]:
    """Sessions of ``app`` in every state a sample tells apart (see the test)."""
    conns: list[asyncpg.Connection] = []
    tasks: list[asyncio.Future[Any]] = []
    release = asyncio.Event()

    async def open_(app: str) -> asyncpg.Connection:
        conn = await asyncpg.connect(
            server.dsn_for("postgres", "app"), server_settings={"application_name": app}
        )
        conns.append(conn)
        return conn

    for i in range(IDLE_SESSIONS):
        await (await open_(f"pool-{i}")).fetchval("SELECT 1")
    in_transaction = await open_("worker")
    await in_transaction.execute("BEGIN")
    await in_transaction.fetchval("SELECT 1")
    sleeper = await open_("report")
    tasks.append(asyncio.ensure_future(sleeper.fetchval("SELECT pg_sleep(30)")))
    # a table lock held by a session idle in its transaction, and one waiting for it
    migrate = await open_("migrate")
    await migrate.execute("BEGIN")
    await migrate.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
    api = await open_("api")
    tasks.append(asyncio.ensure_future(api.fetchval("SELECT count(*) FROM accounts")))
    # an advisory lock held by a session idle outside any transaction, and its waiter
    holder = await open_("cron")
    await holder.fetchval("SELECT pg_advisory_lock(42)")
    queued = await open_("queue")
    tasks.append(asyncio.ensure_future(queued.fetchval("SELECT pg_advisory_lock(42)")))

    # COPY FROM STDIN: active, waiting for its client's data (ClientRead) inside a transaction
    async def rows() -> AsyncIterable[bytes]:
        yield b"first\n"
        await release.wait()

    copier = await open_("import")
    tasks.append(asyncio.ensure_future(copier.copy_to_table("imports", source=rows())))

    async def settled() -> bool:
        count = server.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND state = 'active'"
        )
        return count == "4"  # the sleeper, two lock waiters and the COPY

    await wait_for(settled, what="the sessions in their states")
    yield conns
    release.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for conn in conns:
        conn.terminate()
    # a backend in pg_sleep does not notice its client went away: end them all here
    server.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'app'")

    async def gone() -> bool:
        return server.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'app'") == "0"

    await wait_for(gone, what="the sessions to end")


def _canonical(row: asyncpg.Record) -> dict[str, Any]:
    """A sample's columns, its JSON decoded and put in order, wait times left out."""

    def rows(text: str | None) -> list[dict[str, Any]]:
        decoded = json.loads(text) if text is not None else []
        for item in decoded:
            item.pop("wait_seconds", None)
            item.pop("transaction_age", None)
            if "blockers" in item:
                item["blockers"] = sorted(item["blockers"])
        return sorted(decoded, key=lambda item: json.dumps(item, sort_keys=True))

    return {
        "compute_query_id": row["compute_query_id"],
        "active": rows(row["active"]),
        "waiters": rows(row["waiters"]),
        "blockers": rows(row["blockers"]),
    }


async def _version(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SHOW server_version_num"))


@pytest.mark.parametrize("databases", [None, ["app"]], ids=["all", "app"])
async def test_the_sample_equals_reading_pg_stat_activity_whole(
    server: PostgresServer, busy: list[asyncpg.Connection], databases: list[str] | None
) -> None:
    conn = await asyncpg.connect(server.dsn_for("postgres", "postgres"))
    try:
        sql = activity_sql(await _version(conn))
        async with conn.transaction(isolation="repeatable_read"):
            # one transaction: both read the same snapshot of the backends
            ours = _canonical(await conn.fetchrow(sql, databases))
            reference = _canonical(await conn.fetchrow(REFERENCE, databases))
    finally:
        await conn.close()
    assert ours == reference
    # and the states the sessions are in were all there to compare
    events = {(item["type"], item["event"]) for item in ours["active"]}
    assert {("Timeout", "PgSleep"), ("Client", "ClientRead")} <= events
    assert {item["event"] for item in ours["active"] if item["type"] == "Lock"} >= {
        "relation",
        "advisory",
    }
    holders = {item["application_name"]: item["state"] for item in ours["blockers"]}
    assert holders == {"migrate": "idle in transaction", "cron": "idle"}


def _activity_rows(plan: Any) -> int:
    """Rows the plan's scans of pg_stat_get_activity() returned, over all their loops."""
    if isinstance(plan, list):
        return sum(_activity_rows(node) for node in plan)
    if not isinstance(plan, dict):
        return 0
    own = 0
    if plan.get("Function Name") == "pg_stat_get_activity":
        own = int(plan["Actual Rows"]) * int(plan["Actual Loops"])
    return own + sum(_activity_rows(value) for value in plan.values())


async def test_idle_backends_get_no_row(
    server: PostgresServer, busy: list[asyncpg.Connection]
) -> None:
    """Pooled connections idle between statements are told apart without reading their row."""
    conn = await asyncpg.connect(server.dsn_for("postgres", "postgres"))
    try:
        sql = activity_sql(await _version(conn))
        backends = int(await conn.fetchval("SELECT count(*) FROM pg_stat_get_backend_idset()"))
        plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", None)
        reference = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {REFERENCE}", None)
    finally:
        await conn.close()
    read = _activity_rows(json.loads(plan) if isinstance(plan, str) else plan)
    whole = _activity_rows(json.loads(reference) if isinstance(reference, str) else reference)
    assert whole >= backends - 1 >= IDLE_SESSIONS  # the view's rows but our own
    # the rows read: the non-idle sessions, the server's own processes and the blockers again
    assert read <= backends - IDLE_SESSIONS + 4


def _server_reference() -> str:
    """SERVER with its standbys read through ``pg_stat_replication``."""
    standbys = SERVER.index("      FROM (SELECT s.application_name")
    return SERVER[:standbys] + "      FROM pg_stat_replication r) AS standbys\n"


@pytest.fixture
def idle_walsender(server: PostgresServer) -> Iterator[None]:
    """A replication connection waiting for its first command: a walsender, which
    ``pg_stat_replication`` lists (in its ``startup`` state) and the connections do not."""
    psql = shutil.which("psql", path=str(server.bin_dir)) or shutil.which("psql")
    assert psql is not None
    conninfo = f"host=127.0.0.1 port={server.port} user=postgres dbname=app replication=database"
    proc = subprocess.Popen(
        [psql, "-X", "-q", conninfo],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            found = server.sql(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'"
            )
            if found == "1":
                break
            subprocess.run(["sleep", "0.05"], check=True)
        else:
            raise AssertionError("the replication connection did not show up as a walsender")
        yield
    finally:
        proc.kill()
        proc.wait()


async def test_the_server_statement_reads_backends_and_standbys_as_the_views_do(
    server: PostgresServer, busy: list[asyncpg.Connection], idle_walsender: None
) -> None:
    conn = await asyncpg.connect(server.dsn_for("postgres", "postgres"))
    columns = ("client_backends", "connections", "applications", "standbys")
    try:
        async with conn.transaction(isolation="repeatable_read"):
            ours = await conn.fetchrow(SERVER, None, 10)
            reference = await conn.fetchrow(_server_reference(), None, 10)
    finally:
        await conn.close()

    def decoded(row: asyncpg.Record) -> dict[str, Any]:
        out = {c: json.loads(row[c]) if isinstance(row[c], str) else row[c] for c in columns}
        # the connections come grouped, in no particular order
        out["connections"].sort(key=lambda c: (c["datname"], c["state"]))
        return out

    assert "pg_stat_replication" not in SERVER
    assert decoded(ours) == decoded(reference)
    assert [s["application_name"] for s in decoded(ours)["standbys"]] == ["psql"]
    states = {(c["datname"], c["state"]): c["count"] for c in decoded(ours)["connections"]}
    # the pooled sessions and the holder of the advisory lock, and this connection's own
    assert states[("app", "idle")] == IDLE_SESSIONS + 1
    assert states[("app", "active")] == 4
    assert states[("app", "idle in transaction")] == 2
