"""The PostgreSQL part of /metrics as a golden layout: names, types, help and label sets.

Values, queryids and versions are masked (see ``tests.support.golden.layout``). Regenerate after an
intended change with ``UPDATE_GOLDEN=1`` and review the diff of
``tests/golden/metrics_postgres.txt``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.golden import check
from tests.support.servers import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with closing(PostgresServer(settings={"autovacuum": "off"})) as srv:
        srv.sql("CREATE TABLE golden_t (id int PRIMARY KEY, note text)")
        srv.sql("CREATE INDEX golden_t_note ON golden_t (note)")
        srv.sql("SELECT count(*) FROM golden_t")
        yield srv


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
    check("metrics_postgres.txt", re.sub(r'version_num="\d+"', 'version_num="*"', text))
