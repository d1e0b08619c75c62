"""Statement counters under churn: a view that evicts all the time, ranks that change, a reset.

The server keeps at most 100 entries (``pg_stat_statements.max = 100``, the minimum) while the
test runs a few hundred distinct statements in changing proportions, so the view evicts on
almost every step and the listed statements change. Each step creates at most one new entry
(entries are created when a statement is first parsed or executed, and the view evicts the 10
least used before it inserts one), and a cycle reads the view after every step: no call the
test makes is evicted before the collector has seen it, so the calls counted must equal the
calls made, exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import asyncpg
import pytest

from exporter.collectors.base import Collected
from tests.support.cycles import collect_until_ok
from tests.support.postgres_collector import collector
from tests.support.registry import registry_of
from tests.support.servers import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TOP_N = 5
COLD = 300  # distinct rarely run statements
HOT = 8  # distinct statements run on most steps, with changing weights
STEPS = 240

COUNTERS = (
    "perf_postgres_statement_calls",
    "perf_postgres_statement_exec_seconds",
    "perf_postgres_statement_rows",
    "perf_postgres_statement_shared_blocks_hit",
    "perf_postgres_statement_shared_blocks_read",
)


@pytest.fixture(scope="module")
def small_view_server() -> Iterator[PostgresServer]:
    """A PostgreSQL whose pg_stat_statements holds at most 100 entries."""
    srv = PostgresServer(settings={"autovacuum": "off", "pg_stat_statements.max": "100"})
    yield srv
    srv.close()


def cold_statement(i: int) -> str:
    # constants are normalized away, the shape is not: i + 1 terms make a distinct queryid
    return "SELECT " + " + ".join(["1"] * (i + 1))


def hot_statement(h: int) -> str:
    return "SELECT count(*) FROM generate_series(1, $1) g WHERE g" + " + 0" * (h + 1) + " >= 0"


def statement_samples(result: Collected) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (f.name, (s.labels["queryid"], s.labels["datname"], s.labels["user"])): s.value
        for f in result.families
        if f.name in COUNTERS
        for s in f.samples
    }


async def test_counters_never_decrease_and_count_every_call_under_eviction_and_reset(
    small_view_server: PostgresServer,
) -> None:
    server = small_view_server
    server.sql("CREATE DATABASE churn")
    rng = random.Random(14)
    coll = collector(
        dsn=server.dsn,
        databases=["churn"],
        settings={
            "statements_top_n": TOP_N,
            "statements_window": "300ms",
            "wait_sample_interval": "off",
        },
    )
    # the same view unfiltered: the exporters' own statements count there too (the background
    # wait sampler is off so that they are exactly the ones its cycles report)
    everything = collector(
        dsn=server.dsn, settings={"statements_top_n": TOP_N, "wait_sample_interval": "off"}
    )
    work = await asyncpg.connect(server.dsn_for("postgres", "churn"))
    admin = await asyncpg.connect(server.dsn)
    seen: dict[tuple[str, tuple[str, ...]], float] = {}
    listings: set[frozenset[str]] = set()
    deallocations: list[float] = []
    resets: set[float] = set()
    seen_all: dict[tuple[str, tuple[str, ...]], float] = {}
    made = own = 0
    try:
        first = await coll.collect()
        seen.update(statement_samples(first))
        start = sum(v for (name, _), v in seen.items() if name == COUNTERS[0])
        seen_all.update(statement_samples(await everything.collect()))
        start_all = sum(v for (name, _), v in seen_all.items() if name == COUNTERS[0])
        for step in range(STEPS):
            if step == STEPS // 2:
                # right after a read, so the reset itself loses none of the test's calls
                await admin.execute("SELECT pg_stat_statements_reset()")
                own += 1
            # proportions drift: a different hot statement leads every few steps
            lead = (step // 7) % HOT
            for h in range(HOT):
                calls = rng.randint(0, 2) + (3 if h == lead else 0)
                for _ in range(calls):
                    await work.fetchval(hot_statement(h), 200 + 400 * (h == lead))
                made += calls
            cold = cold_statement(rng.randrange(COLD))
            for _ in range(rng.randint(1, 3)):
                await work.fetchval(cold)
                made += 1
            result = await coll.collect()
            samples = statement_samples(result)
            for series, value in samples.items():
                assert value >= seen.get(series, 0.0), (step, series, seen.get(series), value)
            seen.update(samples)
            calls_rows = [k for (name, k) in samples if name == COUNTERS[0]]
            assert len(calls_rows) <= TOP_N + 1
            assert ("other", "", "") in calls_rows
            listings.add(frozenset(k[0] for k in calls_rows))
            assert {k[0] for k in calls_rows} - {"other"} == {
                s.queryid for s in coll.listed_statements
            }
            reg = registry_of(result)
            deallocations.append(
                reg.get_sample_value("perf_postgres_statements_deallocations_total")
            )
            resets.add(reg.get_sample_value("perf_postgres_statements_reset_timestamp_seconds"))
            own += int(reg.get_sample_value("perf_postgres_collector_statements"))
            unfiltered = await everything.collect()
            for series, value in statement_samples(unfiltered).items():
                assert value >= seen_all.get(series, 0.0), (step, series)
            seen_all.update(statement_samples(unfiltered))
            own += int(
                registry_of(unfiltered).get_sample_value("perf_postgres_collector_statements")
            )
    finally:
        await work.close()
        await admin.close()
        await coll.close()
        await everything.close()

    counted = sum(v for (name, _), v in seen.items() if name == COUNTERS[0]) - start
    assert counted == made
    counted_all = sum(v for (name, _), v in seen_all.items() if name == COUNTERS[0]) - start_all
    # plus the exporters' own statements: all of them but the last read's own execution (it is
    # recorded after the read) and the one just before the reset, plus the first read's own
    assert own - 2 <= counted_all - made <= own + 1
    # the view really churned (each deallocation evicts 10 entries), the listed set changed
    assert deallocations == sorted(deallocations)
    assert deallocations[-1] - deallocations[0] >= 5
    assert len(listings) >= 5
    assert len(resets) == 2  # the reset in the middle moved the reset time once
    dealloc_now = int(
        server.sql("SELECT dealloc FROM pg_stat_statements_info")
    )  # reset with the view in the middle: the exported counter kept what came before
    assert deallocations[-1] > dealloc_now


async def test_a_restart_or_a_crash_of_the_server_decreases_no_counter() -> None:
    server = PostgresServer(settings={"autovacuum": "off"})
    server.sql("CREATE DATABASE boot")
    coll = collector(dsn=server.dsn, databases=["boot"], settings={"statements_top_n": 2})
    seen: dict[tuple[str, tuple[str, ...]], float] = {}
    made = 0

    async def run_and_collect(times: int) -> None:
        nonlocal made
        conn = await asyncpg.connect(server.dsn_for("postgres", "boot"))
        try:
            for i in range(3):
                for _ in range(times):
                    await conn.fetchval(cold_statement(i))
                made += times
        finally:
            await conn.close()
        samples = statement_samples(await collect_until_ok(coll))
        for series, value in samples.items():
            assert value >= seen.get(series, 0.0), (series, seen.get(series), value)
        seen.update(samples)

    try:
        await run_and_collect(0)
        start = sum(v for (name, _), v in seen.items() if name == COUNTERS[0])
        await run_and_collect(20)
        server.restart()  # a clean shutdown saves the view: the entries go on counting
        await run_and_collect(5)
        server.kill()  # a crash loses it: the entries start again below their baselines
        server.start()
        await run_and_collect(2)
        counted = sum(v for (name, _), v in seen.items() if name == COUNTERS[0]) - start
        assert counted == made == 81
    finally:
        await coll.close()
        server.close()
