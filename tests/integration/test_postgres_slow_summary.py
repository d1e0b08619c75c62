"""Which query got slow, through the real daemon: /summary's slow_statements and blocking.

A suite-started PostgreSQL runs a known workload while the daemon watches: one session calls a
statement that sleeps 20 ms a call, another holds ACCESS EXCLUSIVE on a table a third waits
for. /summary must name the sleeping statement with its mean, its wait type and its text, and
the lock holder as the root of a blocking chain; the database load's CPU count follows the
target's ``cpus`` setting, or this host's for a target on this host.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.daemon import DaemonProcess
from tests.support.servers import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# constants are normalized away in pg_stat_statements' text; the table name stays
SLOW = "SELECT pg_sleep(0.02) FROM which_query_got_slow"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    srv = PostgresServer(settings={"autovacuum": "off"})
    srv.sql("CREATE TABLE locked_t (id int)")
    srv.sql(
        "CREATE TABLE which_query_got_slow (id int); INSERT INTO which_query_got_slow VALUES (1)"
    )
    yield srv
    srv.close()


class Workload:
    """The test's sessions in a thread of their own, stopped (and all closed) on exit."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.calls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        app = {"application_name": "slow-caller"}
        caller = await asyncpg.connect(self.dsn, server_settings=app)
        holder = await asyncpg.connect(self.dsn, server_settings={"application_name": "holder"})
        waiter = await asyncpg.connect(self.dsn, server_settings={"application_name": "waiter"})
        await holder.execute("BEGIN; LOCK TABLE locked_t IN ACCESS EXCLUSIVE MODE")
        blocked = asyncio.ensure_future(waiter.fetch("SELECT count(*) FROM locked_t"))
        try:
            # bounded: at most 3000 calls of 20 ms, a minute of work
            while not self._stop.is_set() and self.calls < 3000:
                await caller.fetch(SLOW)
                self.calls += 1
        finally:
            await holder.execute("ROLLBACK")
            await blocked
            for conn in (caller, holder, waiter):
                await conn.close()

    def __enter__(self) -> Workload:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def summary(d: DaemonProcess) -> dict[str, Any]:
    status, _, body = d.get("/summary")
    assert status == 200
    data: dict[str, Any] = json.loads(body)
    return data


def slow_one(d: DaemonProcess) -> dict[str, Any] | None:
    for item in summary(d)["slow_statements"]:
        if item["target"] == "main" and "which_query_got_slow" in (item.get("query") or ""):
            return item
    return None


def test_summary_names_the_slow_statement_and_the_blocking_root(
    server: PostgresServer, tmp_path: Path
) -> None:
    config = {
        "interval": "1s",
        "timeout": "800ms",
        "collectors": {
            "host": {"enabled": False},
            "postgres": {"statement_text": True, "wait_sample_interval": "100ms"},
        },
        "targets": {
            "postgres": [
                {"name": "main", "dsn": server.dsn, "databases": ["postgres"]},
                {"name": "sized", "dsn": server.dsn, "databases": ["postgres"], "cpus": 3},
            ]
        },
    }
    with DaemonProcess(config, tmp_path) as d, Workload(server.dsn):
        d.wait_for(
            lambda: (
                (item := slow_one(d)) is not None
                and "Timeout" in item["wait_samples"]
                and item["calls_per_second"] > 0
            ),
            timeout=60,
            what="the sleeping statement with its wait type on /summary",
        )
        item = slow_one(d)
        assert item is not None
        # 20 ms of sleep a call, plus the round trip
        assert 0.02 <= item["mean_seconds"] < 0.2, item
        assert 0.02 <= item["mean_seconds_history"] < 0.2, item
        assert item["datname"] == "postgres" and item["user"] == "postgres"
        # the sleep is the statement's main wait (CPU samples may add a few)
        assert max(item["wait_samples"], key=item["wait_samples"].get) == "Timeout", item

        d.wait_for(
            lambda: any(c["target"] == "main" for c in summary(d)["blocking"]),
            timeout=30,
            what="a blocking chain on /summary",
        )
        (chain,) = [c for c in summary(d)["blocking"] if c["target"] == "main"]
        assert chain["application_name"] == "holder"
        assert chain["waiting"] == 1
        assert chain["state"] == "idle in transaction"
        assert chain["datname"] == "postgres"
        # the HTML page shows both
        status, _, page = d.get("/")
        assert status == 200
        assert b"which_query_got_slow" in page and b"holder" in page

        # a target on this host gets this host's CPUs, a configured one its own count
        assert d.value("perf_postgres_server_cpus", {"target": "main"}) == os.cpu_count()
        assert d.value("perf_postgres_server_cpus", {"target": "sized"}) == 3
        # each target's load needs two of its own cycles: on a busy machine "sized" may lag
        d.wait_for(
            lambda: (
                {
                    r["target"]
                    for r in summary(d)["signals"]
                    if r["signal"] == "postgres_database_load"
                }
                == {"main", "sized"}
            ),
            timeout=30,
            what="the database load of both targets on /summary",
        )
