"""Wait-event sampling and blocking chains against a suite-started PostgreSQL 15.

Each test works in its own database and counts only the sessions there, so the samples are
exactly those of the sessions the test itself holds in a known state. The collector samples
every 100 ms; assertions compare the growth of a counter with the growth of the rounds taken
over the same span, which is what ``rate(samples) / rate(rounds)`` reads.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.collectors import postgres_activity as act
from exporter.collectors.base import Collected
from exporter.collectors.postgres import PostgresCollector
from tests.support.cycles import collect_until_ok
from tests.support.postgres_collector import collector, wait_for
from tests.support.registry import registry_of
from tests.support.servers import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROUNDS = "perf_postgres_wait_sample_rounds_total"
SAMPLES = "perf_postgres_wait_samples_total"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    srv = PostgresServer(settings={"autovacuum": "off"})
    yield srv
    srv.close()


class Sessions:
    """The sessions and tasks one test opens; all ended in teardown."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.conns: list[asyncpg.Connection] = []
        self.tasks: list[asyncio.Future[object]] = []
        self.collectors: list[PostgresCollector] = []

    async def open(self, db: str, app: str) -> asyncpg.Connection:
        conn = await asyncpg.connect(
            self.server.dsn_for("postgres", db), server_settings={"application_name": app}
        )
        self.conns.append(conn)
        return conn

    def run(self, coro: object) -> None:
        self.tasks.append(asyncio.ensure_future(coro))  # type: ignore[arg-type]

    async def holder_and_waiter(
        self, db: str, table: str
    ) -> tuple[asyncpg.Connection, asyncpg.Connection]:
        """A new table of ``db`` and two sessions: ``migrate`` to lock it, ``api`` to wait."""
        self.server.sql(f"CREATE TABLE {table} (id int)", db)
        return await self.open(db, "migrate"), await self.open(db, "api")

    async def sleeper(self, db: str) -> dict[str, str]:
        """A session of ``db`` active in pg_sleep(30); the labels of its wait samples."""
        conn = await self.open(db, "sleeper")
        self.run(conn.fetchval("SELECT pg_sleep(30)"))
        await active_in(self.server, db, 1, "the sleeper")
        return {"datname": db, "wait_event_type": "Timeout", "wait_event": "PgSleep"}

    def collector(self, db: str, dsn: str | None = None, **settings: object) -> PostgresCollector:
        """A collector of ``db`` (as the superuser unless ``dsn`` says otherwise)."""
        settings.setdefault("wait_sample_interval", 0.1)
        coll = collector(dsn=dsn or self.server.dsn, databases=[db], settings=settings)
        self.collectors.append(coll)
        return coll

    async def close(self) -> None:
        for coll in self.collectors:
            await coll.close()
        for conn in self.conns:
            conn.terminate()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def sessions(server: PostgresServer) -> AsyncIterator[Sessions]:
    held = Sessions(server)
    yield held
    await held.close()


def create_db(server: PostgresServer, name: str) -> str:
    server.sql(f"CREATE DATABASE {name}")
    return name


def value(reg: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    got = reg.get_sample_value(name, labels or {})
    return 0.0 if got is None else got


async def lock_exclusively(holder: asyncpg.Connection, table: str) -> None:
    """``holder`` opens a transaction holding ``table`` ACCESS EXCLUSIVE, then goes idle."""
    await holder.execute("BEGIN")
    await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")


async def active_in(server: PostgresServer, db: str, count: int, what: str) -> None:
    async def ready() -> bool:
        out = server.sql(
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND state = 'active'"
        )
        return out == str(count)

    await wait_for(ready, what=what)


async def growth(
    coll: PostgresCollector, seconds: float, name: str, labels: dict[str, str]
) -> tuple[Collected, Collected, float, float]:
    """Two cycles ``seconds`` apart: both results and the growth of ``name`` and of rounds."""
    first = await collect_until_ok(coll)
    await asyncio.sleep(seconds)
    second = await collect_until_ok(coll)
    a, b = registry_of(first), registry_of(second)
    return (
        first,
        second,
        value(b, name, labels) - value(a, name, labels),
        value(b, ROUNDS) - value(a, ROUNDS),
    )


async def sampled_in_every_round(coll: PostgresCollector, labels: dict[str, str]) -> Collected:
    """Over a second, the samples of ``labels`` grow by exactly the rounds taken (3 or more):
    one session in that state the whole time. Returns the second cycle's result."""
    _first, second, samples, rounds = await growth(coll, 1.0, SAMPLES, labels)
    assert rounds >= 3
    assert samples == rounds
    return second


async def test_a_held_access_exclusive_lock_shows_as_lock_samples_and_a_chain(
    server: PostgresServer, sessions: Sessions
) -> None:
    db = create_db(server, "locks")
    holder, waiter = await sessions.holder_and_waiter(db, "orders")
    # prepared (and run once, so pg_stat_statements lists it) before the lock is taken: the
    # wait then happens at execution, where pg_stat_activity already shows its query_id
    count_orders = await waiter.prepare("SELECT count(*) FROM orders")
    assert await count_orders.fetchval() == 0
    coll = sessions.collector(db)
    await collect_until_ok(coll)
    queryid = server.sql(
        "SELECT queryid FROM pg_stat_statements WHERE query = 'SELECT count(*) FROM orders'"
    )
    assert int(queryid) in coll.listed_queryids()

    await lock_exclusively(holder, "orders")
    sessions.run(count_orders.fetchval())
    await active_in(server, db, 1, "the waiter to queue behind the lock")
    pid = waiter.get_server_pid()
    seen = server.sql(f"SELECT query_id, wait_event_type FROM pg_stat_activity WHERE pid = {pid}")
    assert seen == f"{queryid}|Lock"

    lock = {"datname": db, "wait_event_type": "Lock", "wait_event": "relation"}
    first, second, lock_samples, rounds = await growth(coll, 1.0, SAMPLES, lock)
    a, b = registry_of(first), registry_of(second)
    assert rounds >= 3
    # one session waited on the lock the whole time: one sample in every round
    assert lock_samples == rounds
    assert value(b, SAMPLES, {**lock, "wait_event_type": "CPU", "wait_event": "CPU"}) == 0
    statement = {"queryid": queryid, "datname": db, "wait_event_type": "Lock"}
    assert (
        value(b, "perf_postgres_statement_wait_samples_total", statement)
        - value(a, "perf_postgres_statement_wait_samples_total", statement)
        == rounds
    )
    assert value(b, "perf_postgres_blocked_sessions", {"datname": db}) == 1
    longest_then = value(a, "perf_postgres_blocked_max_seconds", {"datname": db})
    longest_now = value(b, "perf_postgres_blocked_max_seconds", {"datname": db})
    assert longest_then > 0
    assert longest_now - longest_then >= 0.8  # the wait grows with the clock (1 s apart)
    roots = {"datname": db, "application_name": "migrate"}
    assert value(b, "perf_postgres_blocking_sessions", roots) == 1
    assert (
        b.get_sample_value("perf_postgres_blocking_sessions", {**roots, "application_name": "api"})
        is None
    )

    [chain] = second.facts["blocking"]
    assert chain["pid"] == holder.get_server_pid()
    assert chain["application_name"] == "migrate"
    assert chain["state"] == "idle in transaction"
    assert chain["waiting"] == 1
    assert chain["transaction_age_seconds"] >= 1.0
    assert "query" not in chain  # statement_text is off
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make setup` installs the prometheus package"
    text = generate_latest(b).decode()
    assert "perf_postgres_statement_wait_samples_total{" in text
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    await holder.execute("ROLLBACK")
    await asyncio.gather(*sessions.tasks)
    # no waiting for the sampler: the cycle counts no lock waiter any more, so it does not
    # report a sample taken while the lock was held
    after = registry_of(await collect_until_ok(coll))
    assert value(after, "perf_postgres_blocked_sessions", {"datname": db}) == 0
    assert value(after, "perf_postgres_blocked_max_seconds", {"datname": db}) == 0
    assert after.get_sample_value("perf_postgres_blocking_sessions", roots) is None
    assert value(after, SAMPLES, lock) >= value(b, SAMPLES, lock)  # a counter stays


async def test_a_cycle_does_not_report_a_sample_taken_before_a_session_queued_on_a_lock(
    server: PostgresServer, sessions: Sessions
) -> None:
    db = create_db(server, "queued")
    holder, waiter = await sessions.holder_and_waiter(db, "t")
    coll = sessions.collector(db, wait_sample_interval=1.0)
    await collect_until_ok(coll)
    await lock_exclusively(holder, "t")
    rounds = coll._activity.counts.rounds

    async def sampled() -> bool:
        return coll._activity.counts.rounds > rounds

    await wait_for(sampled, what="a background sample")
    # recent enough for the next cycle (under two intervals old), and nobody waited then
    latest = coll._activity.latest
    assert latest is not None and latest.blocking.blocked == {}
    sessions.run(waiter.fetchval("SELECT count(*) FROM t"))
    await active_in(server, db, 1, "the waiter to queue behind the lock")
    reg = registry_of(await collect_until_ok(coll))
    assert value(reg, "perf_postgres_lock_waiters", {"datname": db}) == 1
    assert value(reg, "perf_postgres_blocked_sessions", {"datname": db}) == 1
    assert value(reg, "perf_postgres_blocked_max_seconds", {"datname": db}) > 0


async def test_the_root_statement_text_is_given_only_with_statement_text_on(
    server: PostgresServer, sessions: Sessions
) -> None:
    db = create_db(server, "texts")
    holder, waiter = await sessions.holder_and_waiter(db, "t")
    coll = sessions.collector(db, statement_text=True, wait_sample_interval="off")
    await lock_exclusively(holder, "t")
    sessions.run(waiter.fetchval("SELECT count(*) FROM t"))
    await active_in(server, db, 1, "the waiter")
    result = await collect_until_ok(coll)
    [chain] = result.facts["blocking"]
    assert chain["query"] == "LOCK TABLE t IN ACCESS EXCLUSIVE MODE"
    reg = registry_of(result)
    # sampling off: the blocking gauges still come, from one sample in the cycle
    assert value(reg, "perf_postgres_blocked_sessions", {"datname": db}) == 1
    assert reg.get_sample_value(ROUNDS) is None


async def test_a_lock_wait_is_measured_when_the_sample_sees_it(
    server: PostgresServer, sessions: Sessions
) -> None:
    db = create_db(server, "late")
    holder, waiter = await sessions.holder_and_waiter(db, "t")
    sampling = await sessions.open(db, "sampling")
    await lock_exclusively(holder, "t")
    # the sample statement's start (its now()) comes before the wait: in a real sample the two
    # are a fraction of a millisecond apart, here a transaction opened first makes it certain;
    # pg_stat_activity is read at its first use in the transaction, so it shows the waiter
    await sampling.execute("BEGIN")
    await sampling.fetchval("SELECT now()")
    sessions.run(waiter.fetchval("SELECT count(*) FROM t"))
    await active_in(server, db, 1, "the waiter")
    version_num = int(server.sql("SHOW server_version_num"))
    row = await sampling.fetchrow(act.activity_sql(version_num), [db])
    await sampling.execute("ROLLBACK")
    assert row is not None
    [waiting] = json.loads(row["waiters"])
    assert waiting["pid"] == waiter.get_server_pid()
    assert waiting["wait_seconds"] > 0


async def test_a_session_in_pg_sleep_is_sampled_as_timeout_pgsleep(
    server: PostgresServer, sessions: Sessions
) -> None:
    db = create_db(server, "sleepy")
    labels = await sessions.sleeper(db)
    second = await sampled_in_every_round(sessions.collector(db), labels)
    reg = registry_of(second)
    assert value(reg, "perf_postgres_blocked_sessions", {"datname": db}) == 0
    assert second.facts["blocking"] == []


async def test_a_cpu_bound_statement_is_sampled_as_cpu(
    server: PostgresServer, sessions: Sessions
) -> None:
    db = create_db(server, "busy")
    spinner = await sessions.open(db, "spinner")
    # a loop of integer additions: no I/O, no lock, so never a wait event; bounded by the
    # session's statement_timeout and ended in teardown
    await spinner.execute("SET statement_timeout = '20s'")
    spin = "DO $$DECLARE i bigint := 0; BEGIN LOOP i := i + 1; END LOOP; END$$"
    sessions.run(spinner.execute(spin))
    await active_in(server, db, 1, "the spinning statement")
    labels = {"datname": db, "wait_event_type": "CPU", "wait_event": "CPU"}
    await sampled_in_every_round(sessions.collector(db), labels)


async def test_sampling_follows_a_reconnect_and_its_counters_never_go_down(
    server: PostgresServer, sessions: Sessions
) -> None:
    db = create_db(server, "again")
    labels = await sessions.sleeper(db)
    coll = sessions.collector(db)
    await collect_until_ok(coll)
    await asyncio.sleep(0.5)
    before = registry_of(await collect_until_ok(coll))
    server.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'perf-exporter'"
    )
    await asyncio.sleep(0.5)  # the sampler meets the dead session, the cycle reconnects
    await collect_until_ok(coll)
    await asyncio.sleep(0.5)
    after = registry_of(await collect_until_ok(coll))
    assert value(after, ROUNDS) >= value(before, ROUNDS) + 2
    assert value(after, SAMPLES, labels) >= value(before, SAMPLES, labels) + 2


async def test_close_stops_the_sampler(server: PostgresServer, sessions: Sessions) -> None:
    db = create_db(server, "closing")
    coll = sessions.collector(db)
    await collect_until_ok(coll)
    await asyncio.sleep(0.3)
    await coll.close()
    rounds = coll._activity.counts.rounds
    assert rounds >= 1
    await asyncio.sleep(0.4)
    assert coll._activity.counts.rounds == rounds
    assert (
        server.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'perf-exporter'")
        == "0"
    )


async def test_a_pg_monitor_role_samples_the_sessions_of_other_roles(
    server: PostgresServer, sessions: Sessions
) -> None:
    db = create_db(server, "monitored")
    server.sql("CREATE ROLE wait_monitor LOGIN")
    server.sql("GRANT pg_monitor TO wait_monitor")
    labels = await sessions.sleeper(db)  # a superuser's session
    await sampled_in_every_round(sessions.collector(db, dsn=server.dsn_for("wait_monitor")), labels)
