"""The server-wide database part of the PostgreSQL collector without a server: choice, reasons,
families, and that a failing or cancelled database read leaves no connection open."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from exporter.collectors import postgres_databases as pgdb
from exporter.collectors import postgres_families as fam


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> list[Metric]:
        return self.families


def registry(families: Iterable[Metric]) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(_Families(families))
    return reg


def db(name: str, connectable: bool = True, may_connect: bool = True) -> dict[str, Any]:
    return {"datname": name, "xid_age": 10, "connectable": connectable, "may_connect": may_connect}


class FakeConnection:
    """Counts what the reader does with a connection; ``fetch`` can hang or fail."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.closed = False
        self.terminated = False

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        if self.behaviour == "fail":
            raise asyncpg.InsufficientPrivilegeError("permission denied for view")
        return [{"tables": '[{"schemaname": "public", "relname": "t"}]', "unused_indexes": None}]

    async def close(self, timeout: float | None = None) -> None:
        self.closed = True

    def is_closed(self) -> bool:
        return self.closed or self.terminated

    def terminate(self) -> None:
        self.terminated = True


def reader(
    connections: dict[str, FakeConnection], *, max_databases: int = 10, timeout: float = 1.0
) -> pgdb.DatabaseTables:
    async def open_connection(name: str, session: dict[str, str], seconds: float) -> Any:
        if name not in connections:
            raise asyncpg.InvalidCatalogNameError(f'database "{name}" does not exist')
        return connections[name]

    return pgdb.DatabaseTables(
        open_connection=open_connection,
        session=lambda seconds: {"statement_timeout": f"{int(seconds * 900)}ms"},
        timeout=timeout,
        max_databases=max_databases,
        interval=0.0,
        tables_top_n=5,
        log_extra={},
    )


def test_choice_skips_the_connected_database_templates_and_filters_then_caps() -> None:
    tables = reader({}, max_databases=3)
    rows = [db("a"), db("app"), db("b"), db("c"), db("d"), db("template1", connectable=False)]
    chosen = tables.choose(rows, "app", reported=None, wanted=None)
    # the connected database counts against the cap: two others fit
    assert [r["datname"] for r in chosen] == ["a", "b"]
    assert tables.skipped == 2
    chosen = tables.choose(rows, "app", reported=["a", "c", "d"], wanted=["c", "d"])
    assert [r["datname"] for r in chosen] == ["c", "d"]
    assert tables.skipped == 0


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (TimeoutError(), "timeout"),
        (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), "timeout"),
        (asyncpg.InvalidCatalogNameError("database does not exist"), "gone"),
        (asyncpg.InsufficientPrivilegeError("permission denied for database"), "privilege"),
        (asyncpg.TooManyConnectionsError("too many connections"), "too_many_connections"),
        (asyncpg.InvalidAuthorizationSpecificationError("pg_hba.conf rejects"), "auth"),
        (ConnectionRefusedError(), "connection"),
    ],
)
def test_failures_map_to_bounded_reasons(exc: BaseException, reason: str) -> None:
    assert pgdb.reason_of(exc) == reason


async def test_one_failing_database_is_counted_and_the_others_read() -> None:
    conns = {"a": FakeConnection("ok"), "b": FakeConnection("fail"), "c": FakeConnection("ok")}
    tables = reader(conns)
    rows = [db("a"), db("b"), db("c"), db("gone"), db("locked", may_connect=False)]
    chosen = tables.choose(rows, "app", None, None)
    got = await tables.refresh(chosen, budget=1.0)
    assert sorted(got) == ["a", "c"]
    reg = registry(tables.families(chosen, "app"))
    errors = "perf_postgres_table_stats_errors_total"
    assert reg.get_sample_value(errors, {"datname": "b", "reason": "privilege"}) == 1
    assert reg.get_sample_value(errors, {"datname": "gone", "reason": "gone"}) == 1
    assert reg.get_sample_value(errors, {"datname": "locked", "reason": "privilege"}) == 1
    for name, up in (("app", 1), ("a", 1), ("b", 0), ("c", 1), ("gone", 0), ("locked", 0)):
        assert reg.get_sample_value("perf_postgres_table_stats_up", {"datname": name}) == up
    # every connection opened was closed, the failed one cut
    assert conns["a"].closed and conns["c"].closed
    assert conns["b"].terminated
    assert tables.statements == 3


async def test_a_hanging_database_times_out_and_its_connection_is_cut() -> None:
    conns = {"slow": FakeConnection("hang"), "quick": FakeConnection("ok")}
    tables = reader(conns, timeout=0.2)
    chosen = tables.choose([db("quick"), db("slow")], "app", None, None)
    got = await tables.refresh(chosen, budget=0.5)
    assert list(got) == ["quick"]
    assert conns["slow"].terminated
    reg = registry(tables.families(chosen, None))
    errors = "perf_postgres_table_stats_errors_total"
    assert reg.get_sample_value(errors, {"datname": "slow", "reason": "timeout"}) == 1


async def test_a_cancelled_refresh_cuts_the_open_connection() -> None:
    conns = {"slow": FakeConnection("hang")}
    tables = reader(conns, timeout=30)
    chosen = tables.choose([db("slow")], "app", None, None)
    task = asyncio.create_task(tables.refresh(chosen, budget=30))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert conns["slow"].terminated


async def test_close_cuts_a_connection_still_open() -> None:
    conns = {"slow": FakeConnection("hang")}
    tables = reader(conns, timeout=30)
    chosen = tables.choose([db("slow")], "app", None, None)
    task = asyncio.create_task(tables.refresh(chosen, budget=30))
    await asyncio.sleep(0.05)
    await tables.close()
    assert conns["slow"].terminated
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_table_families_of_several_databases_share_one_family_per_metric() -> None:
    row = {
        "schemaname": "public",
        "relname": "t",
        "seq_scan": 1,
        "seq_tup_read": 2,
        "idx_scan": 3,
        "n_live_tup": 4,
        "n_dead_tup": 5,
        "last_vacuum": None,
        "last_analyze": 1.7e9,
        "heap_blks_hit": 6,
        "heap_blks_read": 7,
        "idx_blks_hit": 8,
        "idx_blks_read": 9,
        "size_bytes": 10,
    }
    families = fam.databases_table_families({"a": ([row], []), "b": ([row], [])})
    assert len({f.name for f in families}) == len(families)
    reg = registry(families)
    for datname in ("a", "b"):
        labels = {"datname": datname, "schemaname": "public", "relname": "t"}
        assert reg.get_sample_value("perf_postgres_table_dead_tuples", labels) == 5
        assert reg.get_sample_value("perf_postgres_table_live_tuples", labels) == 4
        last_analyze = "perf_postgres_table_last_analyze_timestamp_seconds"
        assert reg.get_sample_value(last_analyze, labels) == 1.7e9
        # never vacuumed: no series
        last_vacuum = "perf_postgres_table_last_vacuum_timestamp_seconds"
        assert reg.get_sample_value(last_vacuum, labels) is None


def test_wraparound_and_vacuum_families() -> None:
    reg = registry(
        pgdb.wraparound_families(2e8, [db("app"), {**db("template0"), "xid_age": 7}])
        + pgdb.vacuum_families([{"datname": "app", "phase": "scanning heap", "count": 2}])
    )
    assert reg.get_sample_value("perf_postgres_autovacuum_freeze_max_age") == 2e8
    assert reg.get_sample_value("perf_postgres_database_xid_age", {"datname": "app"}) == 10
    assert reg.get_sample_value("perf_postgres_database_xid_age", {"datname": "template0"}) == 7
    labels = {"datname": "app", "phase": "scanning heap"}
    assert reg.get_sample_value("perf_postgres_vacuums_in_progress", labels) == 2
