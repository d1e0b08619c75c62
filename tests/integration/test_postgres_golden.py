"""The PostgreSQL part of /metrics as a golden layout: names, types, help and label sets.

Values, queryids and versions are masked (see ``test_golden.layout``). Regenerate after an
intended change with ``UPDATE_GOLDEN=1`` and review the diff of
``tests/golden/metrics_postgres.txt`` (PostgreSQL 15) and ``metrics_postgres18.txt`` (18, with
pg_stat_io and pg_stat_checkpointer). promtool checks both pages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.golden import GOLDEN, layout
from tests.support.servers import PostgresServer, pg_bin

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


GOLDEN_FILES = {"15": "metrics_postgres.txt", "18": "metrics_postgres18.txt"}


@pytest.fixture(scope="module", params=sorted(GOLDEN_FILES), ids=lambda v: f"pg{v}")
def server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    srv = PostgresServer(settings={"autovacuum": "off"}, bin_dir=pg_bin(request.param))
    srv.sql("CREATE TABLE golden_t (id int PRIMARY KEY, note text)")
    srv.sql("CREATE INDEX golden_t_note ON golden_t (note)")
    srv.sql("SELECT count(*) FROM golden_t")
    yield srv
    srv.close()


def test_postgres_layout_matches_golden(server: PostgresServer, tmp_path: Path) -> None:
    config = {
        "interval": "1s",
        "timeout": "800ms",
        "collectors": {"host": {"enabled": False}},
        "targets": {"postgres": [{"name": "main", "dsn": server.dsn, "databases": ["postgres"]}]},
    }
    with Daemon(config, tmp_path) as d:
        d.wait_for(
            lambda: (
                d.value("perf_postgres_statement_calls_total", {"queryid": "other"}) is not None
            ),
            what="postgres metrics",
        )
        text = d.scrape()
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make setup` installs the prometheus package"
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    got = layout(re.sub(r'version_num="\d+"', 'version_num="*"', text))
    path = GOLDEN / GOLDEN_FILES[server.sql("SHOW server_version_num")[:2]]
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 once and review it"
    assert got == path.read_text()
