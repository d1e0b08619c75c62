"""pg_stat_io, checkpoints, the background writer and WAL against PostgreSQL 15, 16 and 18.

16 still has the checkpoint columns in pg_stat_bgwriter, 18 has pg_stat_checkpointer and the
byte columns of pg_stat_io, 15 has no pg_stat_io at all: the same names must come out of each,
equal to the server's own views, and never go down when the views are reset.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from tests.support.postgres_collector import collector, flush_stats
from tests.support.registry import registry_of
from tests.support.servers import PostgresServer, pg_bin

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

IO_COUNTERS = ("reads", "hits", "evictions", "reuses", "writes", "extends", "fsyncs")
NORMAL = {"backend_type": "client backend", "object": "relation", "context": "normal"}


@pytest.fixture(scope="module", params=["15", "16", "18"], ids=lambda v: f"pg{v}")
def server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    # a tiny buffer pool, so a table of a few MB read by index evicts shared buffers
    srv = PostgresServer(
        stat_statements=request.param != "16",
        settings={"autovacuum": "off", "shared_buffers": "1MB"},
        bin_dir=pg_bin(request.param),
    )
    yield srv
    srv.close()


def major(server: PostgresServer) -> int:
    return int(server.sql("SHOW server_version_num")) // 10000


async def churn_buffers(server: PostgresServer) -> None:
    """Index lookups over a table ten times the buffer pool: evictions in context normal."""
    conn = await asyncpg.connect(server.dsn)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS churn (id int PRIMARY KEY, pad text);"
            "TRUNCATE churn;"
            "INSERT INTO churn SELECT g, repeat('x', 300) FROM generate_series(1, 30000) g"
        )
        for start in range(1, 30000, 997):
            await conn.fetchval("SELECT pad FROM churn WHERE id = $1", start)
        await conn.execute("CHECKPOINT")
        await flush_stats(conn)
    finally:
        await conn.close()


def io_view(server: PostgresServer) -> dict[tuple[str, str, str, str], float]:
    """pg_stat_io as the superuser sees it now: (column, backend_type, object, context)."""
    out = server.sql(
        "SELECT backend_type, object, context, "
        + ", ".join(f"coalesce({c}::text, '')" for c in IO_COUNTERS)
        + " FROM pg_stat_io"
    )
    view: dict[tuple[str, str, str, str], float] = {}
    for line in out.splitlines():
        backend, obj, context, *values = line.split("|")
        for column, value in zip(IO_COUNTERS, values, strict=True):
            if value != "":
                view[(column, backend, obj, context)] = float(value)
    return view


def io_values(reg: CollectorRegistry) -> dict[tuple[str, str, str, str], float]:
    got: dict[tuple[str, str, str, str], float] = {}
    for metric in reg.collect():
        column = metric.name.removeprefix("perf_postgres_io_")
        if column in IO_COUNTERS:
            for s in metric.samples:
                if s.name.endswith("_total"):
                    labels = s.labels
                    got[(column, labels["backend_type"], labels["object"], labels["context"])] = (
                        s.value
                    )
    return got


async def test_checkpoints_and_wal_equal_the_views_under_one_set_of_names(
    server: PostgresServer,
) -> None:
    await churn_buffers(server)
    coll = collector(dsn=server.dsn, databases=["postgres"])
    # the background writer cleans buffers and logs a snapshot to WAL on its own schedule:
    # those two are compared with reads on both sides of the cycle
    quiet = (
        "SELECT b.buffers_clean, w.wal_bytes, w.wal_buffers_full "
        "FROM pg_stat_bgwriter b, pg_stat_wal w"
    )
    try:
        before = [float(v) for v in server.sql(quiet).split("|")]
        reg = registry_of(await coll.collect())
        after = [float(v) for v in server.sql(quiet).split("|")]
    finally:
        await coll.close()
    if major(server) >= 17:
        view = server.sql(
            "SELECT num_timed + restartpoints_timed, num_requested + restartpoints_req, "
            "buffers_written, write_time, sync_time "
            "FROM pg_stat_checkpointer"
        )
    else:
        view = server.sql(
            "SELECT checkpoints_timed, checkpoints_req, buffers_checkpoint, "
            "checkpoint_write_time, checkpoint_sync_time FROM pg_stat_bgwriter"
        )
    timed, requested, written, write_ms, sync_ms = map(float, view.split("|"))
    value = reg.get_sample_value
    assert value("perf_postgres_checkpoints_total", {"kind": "timed"}) == timed
    assert value("perf_postgres_checkpoints_total", {"kind": "requested"}) == requested
    assert requested >= 1  # the CHECKPOINT above
    assert value("perf_postgres_checkpoint_buffers_written_total") == written
    assert written > 0
    assert value("perf_postgres_checkpoint_write_seconds_total") == pytest.approx(write_ms / 1000)
    assert value("perf_postgres_checkpoint_sync_seconds_total") == pytest.approx(sync_ms / 1000)
    names = (
        "perf_postgres_bgwriter_buffers_written_total",
        "perf_postgres_wal_bytes_total",
        "perf_postgres_wal_buffers_full_total",
    )
    for name, low, high in zip(names, before, after, strict=True):
        got = value(name)
        assert got is not None
        assert low <= got <= high, name
    assert before[1] > 30000 * 300  # the churn table went through WAL


async def test_io_counters_lie_within_the_view_before_and_after(server: PostgresServer) -> None:
    version = major(server)
    await churn_buffers(server)
    coll = collector(dsn=server.dsn, databases=["postgres"])
    try:
        before = io_view(server) if version >= 16 else {}
        reg = registry_of(await coll.collect())
        after = io_view(server) if version >= 16 else {}
    finally:
        await coll.close()
    got = io_values(reg)
    if version < 16:
        assert got == {}  # no pg_stat_io: nothing asked, nothing exported
        assert reg.get_sample_value("perf_postgres_io_evictions_total", NORMAL) is None
        return
    # the same valid combinations (NULL columns are no series), each between the two reads
    assert got.keys() == after.keys()
    for key, value in got.items():
        assert before[key] <= value <= after[key], key
    assert got[("evictions", *NORMAL.values())] > 0
    assert got[("hits", *NORMAL.values())] > 0
    # reuses are of ring buffers: NULL (no series) in context normal, a counter in bulkread
    assert ("reuses", *NORMAL.values()) not in got
    assert ("reuses", "client backend", "relation", "bulkread") in got
    assert reg.get_sample_value("perf_postgres_io_read_seconds_total", NORMAL) is not None
    read_bytes = reg.get_sample_value("perf_postgres_io_read_bytes_total", NORMAL)
    if version >= 18:
        reads = got[("reads", *NORMAL.values())]
        assert read_bytes is not None
        assert read_bytes >= reads * 8192 * 0.5  # 18 reads several blocks per operation
    else:
        assert read_bytes is None  # op_bytes only before 18: no byte series


async def test_reset_views_never_make_a_counter_go_down(server: PostgresServer) -> None:
    version = major(server)
    await churn_buffers(server)
    coll = collector(dsn=server.dsn, databases=["postgres"])
    try:
        first = registry_of(await coll.collect())
        server.sql("SELECT pg_stat_reset_shared('bgwriter')")
        if version >= 17:
            server.sql("SELECT pg_stat_reset_shared('checkpointer')")
        server.sql("SELECT pg_stat_reset_shared('wal')")
        if version >= 16:
            server.sql("SELECT pg_stat_reset_shared('io')")
        await churn_buffers(server)
        second = registry_of(await coll.collect())
    finally:
        await coll.close()
    names = [
        ("perf_postgres_checkpoints_total", {"kind": "requested"}),
        ("perf_postgres_checkpoint_buffers_written_total", {}),
        ("perf_postgres_wal_bytes_total", {}),
    ]
    if version >= 16:
        names += [("perf_postgres_io_evictions_total", NORMAL)]
        names += [("perf_postgres_io_hits_total", NORMAL)]
    for name, labels in names:
        old, new = first.get_sample_value(name, labels), second.get_sample_value(name, labels)
        assert old is not None
        assert new is not None
        assert new > old, name  # kept what was counted and added the work after the reset
    # the requested checkpoints: the one before the reset plus the one after it
    requested = float(
        server.sql(
            "SELECT num_requested FROM pg_stat_checkpointer"
            if version >= 17
            else "SELECT checkpoints_req FROM pg_stat_bgwriter"
        )
    )
    old = first.get_sample_value("perf_postgres_checkpoints_total", {"kind": "requested"})
    assert (
        second.get_sample_value("perf_postgres_checkpoints_total", {"kind": "requested"})
        == old + requested
    )
