"""The PostgreSQL part of /metrics as a golden layout: names, types, help and label sets.

Values, queryids and versions are masked (see ``test_golden.layout``). Regenerate after an
intended change with ``UPDATE_GOLDEN=1`` and review the diff of
``tests/golden/metrics_postgres.txt`` (PostgreSQL 15) and ``metrics_postgres18.txt`` (18, with
pg_stat_io and pg_stat_checkpointer). promtool checks both pages.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.golden import GOLDEN, layout
from tests.support.servers import PostgresServer, pg_bin

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


GOLDEN_FILES = {"15": "metrics_postgres.txt", "18": "metrics_postgres18.txt"}


@pytest.fixture(scope="module", params=sorted(GOLDEN_FILES), ids=lambda v: f"pg{v}")
def server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    # golden_closed refuses every login: its table statistics fail and are counted
    hba = [
        "local all all trust",
        "host golden_closed all 127.0.0.1/32 reject",
        "host all all 127.0.0.1/32 trust",
    ]
    srv = PostgresServer(settings={"autovacuum": "off"}, hba=hba, bin_dir=pg_bin(request.param))
    srv.sql("CREATE TABLE golden_t (id int PRIMARY KEY, note text)")
    srv.sql("CREATE INDEX golden_t_note ON golden_t (note)")
    srv.sql("SELECT count(*) FROM golden_t")
    srv.sql("VACUUM ANALYZE golden_t")
    srv.sql("CREATE DATABASE golden_closed")
    # a vacuum slowed to about 100 ms a page keeps pg_stat_progress_vacuum busy for minutes
    srv.sql("CREATE TABLE golden_big AS SELECT g AS id FROM generate_series(1, 300000) g")
    srv.sql("DELETE FROM golden_big WHERE id % 2 = 0")
    vacuum = subprocess.Popen(
        ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(srv.port), "-U", "postgres", "-d",
         "postgres", "-c", "VACUUM golden_big"],
        env={**os.environ, "PGOPTIONS": "-c vacuum_cost_delay=100 -c vacuum_cost_limit=1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield srv
    finally:
        vacuum.kill()
        vacuum.wait(10)
        srv.close()


def test_postgres_layout_matches_golden(server: PostgresServer, tmp_path: Path) -> None:
    config = {
        "interval": "1s",
        "timeout": "800ms",
        "collectors": {"host": {"enabled": False}},
        "targets": {
            "postgres": [
                {"name": "main", "dsn": server.dsn, "databases": ["postgres", "golden_closed"]}
            ]
        },
    }
    with DaemonProcess(config, tmp_path) as d:
        d.wait_for(
            lambda: (
                d.value("perf_postgres_statement_calls_total", {"queryid": "other"}) is not None
                and d.value(
                    "perf_postgres_vacuums_in_progress",
                    {"datname": "postgres", "phase": "scanning heap"},
                )
                is not None
            ),
            what="postgres metrics",
        )
        text = d.scrape()
    # the page with every postgres series (vacuums, failed databases included) passes the lint
    lint = subprocess.run(
        ["/usr/bin/promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
    got = layout(re.sub(r'version_num="\d+"', 'version_num="*"', text))
    path = GOLDEN / GOLDEN_FILES[server.sql("SHOW server_version_num")[:2]]
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 once and review it"
    assert got == path.read_text()
