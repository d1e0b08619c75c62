"""A server without pg_stat_statements: the collector works, says so once, never loops on errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing

import pytest

from tests.support.postgres_collector import collect_error, collector
from tests.support.registry import registry_of
from tests.support.servers import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with closing(PostgresServer(stat_statements=False)) as srv:
        yield srv


def notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "pg_stat_statements" in r.getMessage()]


async def test_missing_library_sets_availability_zero_and_logs_how_to_enable_it_once(
    server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.collectors.postgres")
    # sampling off: every cycle reads the blocking chains itself, so the count is exact
    coll = collector(dsn=server.dsn, settings={"wait_sample_interval": "off"})
    try:
        results = [await coll.collect() for _ in range(4)]
    finally:
        await coll.close()
    for result in results:
        reg = registry_of(result)
        assert reg.get_sample_value("perf_postgres_stat_statements_available") == 0
        assert reg.get_sample_value("perf_postgres_blocks_hit_total", {"datname": "postgres"})
        assert reg.get_sample_value("perf_postgres_probe_duration_seconds_count")
        assert not [f for f in result.families if f.name.startswith("perf_postgres_statement_")]
        assert result.facts["stat_statements_available"] is False
        # probe, server (with the databases' ages), tables and activity: the missing view costs
        # no statement
        assert reg.get_sample_value("perf_postgres_collector_statements") == 4
    said = notes(caplog)
    assert len(said) == 1
    assert "shared_preload_libraries" in said[0]
    assert "CREATE EXTENSION pg_stat_statements" in said[0]


async def test_extension_created_without_the_library_is_reported_not_raised(
    server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A role that cannot see shared_preload_libraries only learns it from the query's error."""
    server.sql("CREATE DATABASE halfway")
    server.sql("CREATE EXTENSION pg_stat_statements", "halfway")
    server.sql("CREATE ROLE plain LOGIN")  # no pg_monitor: the setting is hidden from it
    caplog.set_level(logging.WARNING, logger="exporter.collectors.postgres")
    coll = collector(dsn=server.dsn_for("plain", "halfway"))
    try:
        results = [await coll.collect() for _ in range(3)]
    finally:
        await coll.close()
    for result in results:
        reg = registry_of(result)
        assert reg.get_sample_value("perf_postgres_stat_statements_available") == 0
        assert reg.get_sample_value("perf_postgres_max_connections") == 40
    said = notes(caplog)
    assert len(said) == 1
    assert "not loaded" in said[0]


async def test_tls_demanded_from_a_server_without_tls_is_a_connection_failure(
    server: PostgresServer,
) -> None:
    coll = collector(dsn=server.dsn, sslmode="require")
    try:
        error = await collect_error(coll)
    finally:
        await coll.close()
    assert error.reason == "connection"
    assert "SSL" in error.message
