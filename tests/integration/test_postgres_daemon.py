"""The PostgreSQL collector in the real daemon: labels, promtool, /summary, failure, return."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.promtool import promtool
from tests.support.servers import PostgresServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PASSWORD = "d4emon-s3cret-pw"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with closing(
        PostgresServer(
            hba=[
                "local all all trust",
                "host all perf_monitor 127.0.0.1/32 scram-sha-256",
                "host all all 127.0.0.1/32 trust",
            ]
        )
    ) as srv:
        srv.sql(f"CREATE ROLE perf_monitor LOGIN PASSWORD '{PASSWORD}'")
        srv.sql("GRANT pg_monitor TO perf_monitor")
        yield srv


def failures_logged(d: DaemonProcess, target: str) -> int:
    return sum(
        1
        for line in d.log.splitlines()
        if "collector failed" in line and f"target={target}" in line
    )


def test_daemon_serves_postgres_series_and_survives_a_restart(
    server: PostgresServer, tmp_path: Path
) -> None:
    secret = tmp_path / "pg_password"
    secret.write_text(PASSWORD + "\n")
    config = {
        "interval": "1s",
        "timeout": "800ms",
        "collectors": {"host": {"enabled": False}, "postgres": {"statements_top_n": 5}},
        "targets": {
            "postgres": [
                {
                    "name": "main",
                    "dsn": server.dsn_for("perf_monitor"),
                    "password_file": str(secret),
                },
                {"name": "nowhere", "dsn": f"postgresql://postgres@127.0.0.1:{free_port()}/x"},
            ]
        },
    }
    with DaemonProcess(config, tmp_path) as d:
        d.wait_for(lambda: d.value("perf_postgres_up", {"target": "main"}) == 1, what="main up")
        d.wait_for(
            lambda: d.value("perf_postgres_up", {"target": "nowhere"}) == 0, what="nowhere down"
        )
        d.wait_for(
            lambda: d.value("perf_postgres_probe_duration_seconds_count", {"target": "main"}),
            what="a probe",
        )
        text = d.scrape()
        check = promtool("check", "metrics", stdin=text)
        assert check.returncode == 0, check.stdout + check.stderr
        assert d.value("perf_postgres_blocks_hit_total", {"target": "main", "datname": "postgres"})
        assert (
            d.value("perf_postgres_statement_calls_total", {"target": "main", "queryid": "other"})
            is not None
        )
        # the broken target has its up gauge and nothing else, and does not hold up `main`
        assert d.value("perf_postgres_max_connections", {"target": "nowhere"}) is None
        assert d.value(
            "perf_exporter_collector_errors_total",
            {"collector": "postgres", "target": "nowhere", "reason": "connection"},
        )
        status, _, body = d.get("/summary")
        assert status == 200
        facts = json.loads(body)["sources"]["postgres"]["main"]["facts"]
        assert facts["max_connections"] == 40
        assert facts["stat_statements_available"] is True
        assert isinstance(facts["index_recommendations"], list)
        d.wait_for(
            lambda: (
                json.loads(d.get("/summary")[2])["sources"]["postgres"]["main"]["facts"][
                    "cache_hit_ratio"
                ]
                is not None
            ),
            what="a hit ratio over an interval",
        )

        server.stop()
        try:
            d.wait_for(lambda: d.value("perf_postgres_up", {"target": "main"}) == 0, what="down")
            assert d.value("perf_postgres_blocks_hit_total", {"target": "main"}) is None
            d.wait_for(lambda: failures_logged(d, "main") >= 1, what="a failure line")
            d.wait_for(
                lambda: (
                    (
                        d.value(
                            "perf_exporter_collector_errors_total",
                            {"collector": "postgres", "target": "main", "reason": "connection"},
                        )
                        or 0
                    )
                    >= 4
                ),
                what="several failed cycles",
            )
            # a line per change of state, not per cycle
            assert failures_logged(d, "main") <= 2
        finally:
            server.start()
        d.wait_for(
            lambda: d.value("perf_postgres_up", {"target": "main"}) == 1,
            timeout=20,
            what="recovery",
        )
        assert d.value("perf_postgres_blocks_hit_total", {"target": "main", "datname": "postgres"})
        assert "collector recovered" in d.log
        assert PASSWORD not in d.log
        assert PASSWORD not in d.scrape()
        assert PASSWORD not in d.get("/summary")[2].decode()
