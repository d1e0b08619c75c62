"""The PgBouncer collector's column tables and console client, without a server."""

from __future__ import annotations

from exporter.collectors.pgbouncer import (
    DATABASES,
    POOLS,
    STATS,
    _with_max_wait_us,
    families_from,
)
from exporter.collectors.pgbouncer_console import ConsoleAddress, ConsoleError
from tests.support.registry import registry_of


def test_max_wait_combines_seconds_and_microseconds() -> None:
    rows = [{"database": "app", "user": "web", "maxwait": "2", "maxwait_us": "250000"}]
    reg = registry_of(families_from(POOLS, _with_max_wait_us(rows)).values())
    labels = {"pool": "app/web", "database": "app", "user": "web"}
    assert reg.get_sample_value("perf_pgbouncer_max_wait_seconds", labels) == 2.25


def test_max_wait_without_microsecond_column_keeps_whole_seconds() -> None:
    rows = [{"database": "app", "user": "web", "maxwait": "3"}]
    reg = registry_of(families_from(POOLS, _with_max_wait_us(rows)).values())
    labels = {"pool": "app/web", "database": "app", "user": "web"}
    assert reg.get_sample_value("perf_pgbouncer_max_wait_seconds", labels) == 3


def test_pool_states_of_older_versions_map_to_the_same_series() -> None:
    # PgBouncer before 1.18 had a single cl_cancel_req column and no sv_active_cancel
    rows = [{"database": "app", "user": "web", "cl_active": "4", "cl_cancel_req": "1"}]
    reg = registry_of(families_from(POOLS, rows).values())
    base = {"pool": "app/web", "database": "app", "user": "web"}
    assert reg.get_sample_value("perf_pgbouncer_clients", {**base, "state": "active"}) == 4
    assert reg.get_sample_value("perf_pgbouncer_clients", {**base, "state": "cancel"}) == 1
    assert reg.get_sample_value("perf_pgbouncer_servers", {**base, "state": "active"}) is None


def test_stats_times_are_converted_from_microseconds() -> None:
    rows = [{"database": "app", "total_query_time": "1500000", "total_query_count": "12"}]
    reg = registry_of(families_from(STATS, rows).values())
    assert reg.get_sample_value("perf_pgbouncer_query_seconds_total", {"database": "app"}) == 1.5
    assert reg.get_sample_value("perf_pgbouncer_queries_total", {"database": "app"}) == 12


def test_reserve_pool_column_renamed_in_1_24_reads_the_same() -> None:
    old = registry_of(families_from(DATABASES, [{"name": "app", "reserve_pool": "5"}]).values())
    new = registry_of(
        families_from(DATABASES, [{"name": "app", "reserve_pool_size": "5"}]).values()
    )
    for reg in (old, new):
        value = reg.get_sample_value(
            "perf_pgbouncer_database_reserve_pool_size", {"database": "app"}
        )
        assert value == 5


def test_empty_and_text_values_are_skipped() -> None:
    rows = [{"name": "app", "pool_size": "", "max_connections": "n/a", "paused": "1"}]
    reg = registry_of(families_from(DATABASES, rows).values())
    assert reg.get_sample_value("perf_pgbouncer_database_pool_size", {"database": "app"}) is None
    assert reg.get_sample_value("perf_pgbouncer_database_paused", {"database": "app"}) == 1


def test_console_address_prefers_the_configured_password() -> None:
    addr = ConsoleAddress.from_dsn("postgresql://stats:inurl@db1:6433/pgbouncer", "fromfile")
    assert (addr.host, addr.port, addr.user, addr.dbname) == ("db1", 6433, "stats", "pgbouncer")
    assert addr.password == "fromfile"
    assert ConsoleAddress.from_dsn("postgresql://stats:inurl@db1/pgbouncer").password == "inurl"


def test_console_address_defaults_and_unix_socket() -> None:
    addr = ConsoleAddress.from_dsn("postgresql://stats@/pgbouncer?host=/run/pgbouncer")
    assert (addr.host, addr.port, addr.password) == ("/run/pgbouncer", 6432, None)


def test_auth_errors_are_recognised_by_sqlstate_or_text() -> None:
    assert ConsoleError("28P01", "password authentication failed").is_auth
    assert ConsoleError("08P01", "no such user").is_auth is False
    assert ConsoleError("08P01", "SASL authentication failed: password mismatch").is_auth
