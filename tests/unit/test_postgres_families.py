"""The PostgreSQL collector's pure parts: rows to families, the remainder, advice, errors."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.collectors import postgres_families as fam
from exporter.collectors.base import CollectError
from exporter.collectors.postgres import PostgresCollector, _preloaded, translate_failure, where
from exporter.collectors.postgres_queries import CONNECTION_STATES
from exporter.config import PostgresSettings, PostgresTarget
from tests.support.registry import registry_of


def row(queryid: str, datname: str, user: str, calls: int, exec_ms: float) -> fam.StatementRow:
    return fam.StatementRow(queryid, datname, user, calls, exec_ms, 2 * calls, calls, 1)


def test_statement_rows_become_counters_in_base_units() -> None:
    top = [row("11", "app", "api", 10, 50.5), row("-12", "app", "worker", 3, 20.25)]
    reg = registry_of(fam.statement_families(top, row("other", "", "", 7, 9.25), None))
    api = {"queryid": "11", "datname": "app", "user": "api"}
    assert reg.get_sample_value("perf_postgres_statement_calls_total", api) == 10
    assert reg.get_sample_value("perf_postgres_statement_exec_seconds_total", api) == pytest.approx(
        0.0505
    )
    assert reg.get_sample_value("perf_postgres_statement_rows_total", api) == 20
    assert (
        reg.get_sample_value(
            "perf_postgres_statement_shared_blocks_read_total",
            {"queryid": "-12", "datname": "app", "user": "worker"},
        )
        == 1
    )
    other = {"queryid": "other", "datname": "", "user": ""}
    assert reg.get_sample_value("perf_postgres_statement_calls_total", other) == 7


def test_statement_info_carries_the_text_of_top_statements_only_when_given() -> None:
    top, other = [row("5", "d", "u", 1, 1.0)], row("other", "", "", 0, 0.0)
    names = {f.name for f in fam.statement_families(top, other, None)}
    assert "perf_postgres_statement_info" not in names
    reg = registry_of(fam.statement_families(top, other, {"5": "SELECT $1"}))
    assert (
        reg.get_sample_value("perf_postgres_statement_info", {"queryid": "5", "query": "SELECT $1"})
        == 1
    )


def test_view_families_exist_only_when_the_server_reports_them() -> None:
    assert fam.statement_view_families(None, None) == []
    reg = registry_of(fam.statement_view_families(7, 1.7e9))
    assert reg.get_sample_value("perf_postgres_statements_deallocations_total") == 7
    assert reg.get_sample_value("perf_postgres_statements_reset_timestamp_seconds") == 1.7e9


def test_every_connection_state_is_reported_even_at_zero() -> None:
    reg = registry_of(
        fam.connection_families(
            ["app", "other"],
            [
                {"datname": "app", "state": "idle", "count": 4, "lock_waiters": 0},
                {"datname": "app", "state": "active", "count": 2, "lock_waiters": 1},
                {"datname": "ignored", "state": "idle", "count": 9, "lock_waiters": 3},
            ],
        )
    )
    for datname in ("app", "other"):
        for state in CONNECTION_STATES:
            expected = {("app", "idle"): 4, ("app", "active"): 2}.get((datname, state), 0)
            value = reg.get_sample_value(
                "perf_postgres_connections", {"datname": datname, "state": state}
            )
            assert value == expected, (datname, state)
    assert (
        reg.get_sample_value("perf_postgres_connections", {"datname": "ignored", "state": "idle"})
        is None
    )
    assert reg.get_sample_value("perf_postgres_lock_waiters", {"datname": "app"}) == 1
    assert reg.get_sample_value("perf_postgres_lock_waiters", {"datname": "other"}) == 0


def test_database_rows_become_counters_per_datname() -> None:
    row = {c: i for i, (c, _n, _h) in enumerate(fam.DATABASE_COUNTERS, start=1)}
    row.update(datname="app", size_bytes=8192)
    reg = registry_of(fam.database_families([row]))
    assert reg.get_sample_value("perf_postgres_blocks_hit_total", {"datname": "app"}) == 1
    assert reg.get_sample_value("perf_postgres_blocks_read_total", {"datname": "app"}) == 2
    assert reg.get_sample_value("perf_postgres_tuples_deleted_total", {"datname": "app"}) == 13
    assert reg.get_sample_value("perf_postgres_database_size_bytes", {"datname": "app"}) == 8192


def test_probe_histogram_is_cumulative_across_cycles() -> None:
    hist = fam.probe_histogram()
    for seconds in (0.00005, 0.0003, 0.0003, 7.0):
        hist.observe(seconds)
    reg = registry_of([hist.family()])
    bucket = "perf_postgres_probe_duration_seconds_bucket"
    assert reg.get_sample_value(bucket, {"le": "0.0001"}) == 1
    assert reg.get_sample_value(bucket, {"le": "0.0005"}) == 3
    assert reg.get_sample_value(bucket, {"le": "5.0"}) == 3
    assert reg.get_sample_value(bucket, {"le": "+Inf"}) == 4
    assert reg.get_sample_value("perf_postgres_probe_duration_seconds_count") == 4
    assert reg.get_sample_value("perf_postgres_probe_duration_seconds_sum") == pytest.approx(
        7.00065
    )


def test_boundary_observation_falls_in_its_own_bucket() -> None:
    hist = fam.probe_histogram()
    hist.observe(0.001)
    reg = registry_of([hist.family()])
    assert reg.get_sample_value("perf_postgres_probe_duration_seconds_bucket", {"le": "0.001"}) == 1
    assert (
        reg.get_sample_value("perf_postgres_probe_duration_seconds_bucket", {"le": "0.0005"}) == 0
    )


def test_hit_ratio_is_computed_over_the_last_interval() -> None:
    assert fam.hit_ratio(None, {"a": (10, 1)}) is None
    previous = {"a": (100, 10), "b": (50, 50)}
    current = {"a": (190, 20), "b": (50, 50), "new": (1000, 0)}
    assert fam.hit_ratio(previous, current) == pytest.approx(90 / 100)
    assert fam.hit_ratio(previous, previous) is None  # nothing read at all
    # a stats reset on one database leaves it out instead of producing a negative delta
    assert fam.hit_ratio(previous, {"a": (5, 0), "b": (53, 51)}) == pytest.approx(3 / 4)


def test_index_advice_flags_seq_scanned_tables_and_unused_indexes() -> None:
    tables = [
        {
            "schemaname": "public",
            "relname": "orders",
            "seq_scan": 120,
            "idx_scan": 3,
            "seq_tup_read": 120 * 50_000,
            "size_bytes": 9_000_000,
        },
        {
            "schemaname": "public",
            "relname": "tiny",
            "seq_scan": 900,
            "idx_scan": 0,
            "seq_tup_read": 900 * 10,
            "size_bytes": 8192,
        },
        {
            "schemaname": "public",
            "relname": "indexed",
            "seq_scan": 100,
            "idx_scan": 5000,
            "seq_tup_read": 100 * 50_000,
            "size_bytes": 9_000_000,
        },
    ]
    unused = [
        {
            "schemaname": "public",
            "relname": "orders",
            "indexrelname": "orders_note_idx",
            "size_bytes": 16384,
        }
    ]
    advice = fam.index_recommendations(
        "app", tables, unused, min_seq_scans=50, min_rows_per_scan=10_000
    )
    assert [(a["kind"], a["relname"]) for a in advice] == [
        ("missing_index", "orders"),
        ("unused_index", "orders"),
    ]
    assert advice[0]["rows_per_seq_scan"] == 50_000
    assert advice[1]["indexrelname"] == "orders_note_idx"
    assert "orders_note_idx" in advice[1]["advice"]


def test_table_rows_become_labelled_families() -> None:
    row = {
        "schemaname": "s",
        "relname": "t",
        "heap_blks_hit": 5,
        "heap_blks_read": 6,
        "idx_blks_hit": 7,
        "idx_blks_read": 8,
        "seq_scan": 9,
        "seq_tup_read": 10,
        "idx_scan": 11,
        "size_bytes": 12,
    }
    reg = registry_of(fam.table_families("db", [row], []))
    labels = {"datname": "db", "schemaname": "s", "relname": "t"}
    assert reg.get_sample_value("perf_postgres_table_heap_blocks_read_total", labels) == 6
    assert reg.get_sample_value("perf_postgres_table_index_blocks_hit_total", labels) == 7
    assert reg.get_sample_value("perf_postgres_table_seq_scan_total", labels) == 9
    assert reg.get_sample_value("perf_postgres_table_idx_scan_total", labels) == 11
    assert reg.get_sample_value("perf_postgres_table_size_bytes", labels) == 12


def test_server_row_gives_settings_version_and_replica_lag() -> None:
    server = {
        "version": "15.20 (Debian 15.20-0+deb12u1)",
        "version_num": 150020,
        "max_connections": 40,
        "superuser_reserved_connections": 3,
        "postmaster_start_time": 1700000000.5,
        "in_recovery": True,
        "replica_lag_bytes": 4096.0,
        "replica_lag_seconds": 1.5,
        "standbys": [],
    }
    reg = registry_of(fam.server_families(server))
    assert (
        reg.get_sample_value(
            "perf_postgres_version_info", {"version": "15.20", "version_num": "150020"}
        )
        == 1
    )
    assert reg.get_sample_value("perf_postgres_max_connections") == 40
    assert reg.get_sample_value("perf_postgres_replication_lag_bytes") == 4096
    assert reg.get_sample_value("perf_postgres_replication_lag_seconds") == 1.5
    primary = {
        **server,
        "in_recovery": False,
        "standbys": [
            {
                "application_name": "r1",
                "client_addr": "10.0.0.7",
                "lag_bytes": 10.0,
                "lag_seconds": None,
            }
        ],
    }
    reg = registry_of(fam.server_families(primary))
    assert reg.get_sample_value("perf_postgres_replication_lag_bytes") is None
    assert (
        reg.get_sample_value(
            "perf_postgres_standby_lag_bytes", {"application_name": "r1", "client_addr": "10.0.0.7"}
        )
        == 10
    )


def test_query_text_is_flattened_and_cut() -> None:
    assert fam.normalize_query("SELECT *\n  FROM t\tWHERE a = $1", 100) == (
        "SELECT * FROM t WHERE a = $1"
    )
    assert fam.normalize_query("SELECT abcdefghij FROM t", 12) == "SELECT ab..."


@pytest.mark.parametrize(
    ("exc", "reason", "phrase"),
    [
        (
            ConnectionRefusedError(111, "Connect call failed"),
            "connection",
            "refused the connection",
        ),
        (OSError(113, "No route to host"), "connection", "cannot reach"),
        (
            asyncpg.InvalidPasswordError('password authentication failed for user "m"'),
            "auth",
            "rejected the password",
        ),
        (
            asyncpg.InvalidAuthorizationSpecificationError(
                'no pg_hba.conf entry for host "127.0.0.1", user "m", database "d", no encryption'
            ),
            "auth",
            "sslmode: require",
        ),
        (
            asyncpg.TooManyConnectionsError("sorry, too many clients already"),
            "connection",
            "too many connections",
        ),
        (
            asyncpg.InvalidCatalogNameError('database "gone" does not exist'),
            "connection",
            "does not exist",
        ),
        (
            asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
            "timeout",
            "timeout",
        ),
        (
            asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),
            "timeout",
            "lock timeout",
        ),
        (
            asyncpg.AdminShutdownError("terminating connection due to administrator command"),
            "connection",
            "lost the connection",
        ),
        (asyncpg.UndefinedColumnError('column "x" does not exist'), "query", "query"),
        (asyncpg.InsufficientPrivilegeError("permission denied"), "auth", "pg_monitor"),
        (TimeoutError(), "timeout", "did not answer in time"),
    ],
)
def test_failures_map_to_reasons_with_one_sentence(
    exc: BaseException, reason: str, phrase: str
) -> None:
    error = translate_failure(exc, "postgresql://m:***@db:5432/d")
    assert error.reason == reason
    assert phrase in error.message
    assert "\n" not in error.message


def test_messages_never_carry_the_password() -> None:
    error = translate_failure(OSError("oops s3cr3t leaked"), "x", password="s3cr3t")
    assert "s3cr3t" not in error.message
    target = PostgresTarget(name="t", dsn="postgresql://mon:s3cr3t@db:5432/app")
    assert "s3cr3t" not in where(target)
    assert where(PostgresTarget(name="t", host="db", user="mon", dbname="app")) == (
        "postgresql://mon@db:5432/app"
    )


def test_preload_setting_is_parsed_as_a_list() -> None:
    assert _preloaded("pg_stat_kcache, pg_stat_statements") is True
    assert _preloaded('"pg_stat_statements"') is True
    assert _preloaded("auto_explain") is False
    assert _preloaded("") is False
    assert _preloaded(None) is None


def test_session_timeouts_are_derived_from_the_target_timeout() -> None:
    coll = PostgresCollector(
        PostgresTarget(name="t", dsn="postgresql://m@db/app", interval=10, timeout=2),
        PostgresSettings(),
    )
    settings = coll.session_settings()
    assert settings["application_name"] == "perf-exporter"
    assert settings["statement_timeout"] == "1800ms"
    assert settings["lock_timeout"] == "1000ms"
    assert settings["default_transaction_read_only"] == "on"
    # never longer than 90 % of the interval, and the daemon may set resolved values later
    clamped = PostgresCollector(
        PostgresTarget(name="t", dsn="postgresql://m@db/app", interval=5, timeout=9),
        PostgresSettings(),
    )
    assert clamped.timeout == 4.5
    clamped.timeout = 0.2
    assert clamped.session_settings()["statement_timeout"] == "180ms"


@pytest.mark.timeout(20)
async def test_reconnects_are_spaced_by_the_backoff() -> None:
    """A server that hangs up on every login: each attempt is one accepted socket."""
    attempts = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    coll = PostgresCollector(
        PostgresTarget(
            name="t", dsn=f"postgresql://m@127.0.0.1:{port}/d", sslmode="disable", interval=2
        ),
        PostgresSettings(),
    )
    try:
        first = await collect_error(coll)
        assert first.reason == "connection"
        assert attempts == 1
        again = await collect_error(coll)  # within the backoff: no new attempt, same reason
        assert (again.reason, again.message) == (first.reason, first.message)
        assert attempts == 1
        await asyncio.sleep(0.6)  # the first delay is 0.5 s
        await collect_error(coll)
        assert attempts == 2
    finally:
        await coll.close()
        server.close()
        await server.wait_closed()


async def collect_error(coll: PostgresCollector) -> CollectError:
    with pytest.raises(CollectError) as info:
        await coll.collect()
    return info.value


def test_an_empty_database_list_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="non-empty list"):
        PostgresTarget(name="t", dsn="postgresql://m@db/app", databases=[])
    assert PostgresTarget(name="t", dsn="postgresql://m@db/app", databases=["a"]).databases == ["a"]


def _as_add_metric_makes(families: list[Metric], labelnames: list[str]) -> list[Metric]:
    """The same families rebuilt sample by sample with prometheus_client's add_metric."""
    out: list[Metric] = []
    for family in families:
        again = (
            CounterMetricFamily(family.name, family.documentation, labels=labelnames)
            if family.type == "counter"
            else GaugeMetricFamily(family.name, family.documentation, labels=labelnames)
        )
        for sample in family.samples:
            again.add_metric([sample.labels[k] for k in labelnames], sample.value)
        out.append(again)
    return out


def test_statement_and_table_families_are_add_metrics_own_with_one_label_dict_per_row() -> None:
    """Samples are made directly, one label dict per statement or table shared by its families:
    each family equals the one add_metric makes, and the dicts are shared, not copied."""
    rng = random.Random(7)
    top = [
        fam.StatementRow(
            str(rng.randrange(-(10**18), 10**18)),
            rng.choice(("app", "jobs")),
            "u",
            rng.randrange(10**6),
            rng.random() * 1e5,
            rng.randrange(10**6),
            rng.randrange(10**7),
            rng.randrange(10**5),
            rng.random() * 100,
            rng.random() * 10,
        )
        for _ in range(20)
    ]
    statements = fam.statement_families(top, row("other", "", "", 7, 9.25), None)
    labelnames = ["queryid", "datname", "user"]
    assert statements == _as_add_metric_makes(statements, labelnames)
    assert [len(f.samples) for f in statements] == [21] * len(fam.STATEMENT_COUNTERS)
    for i in range(21):
        assert len({id(f.samples[i].labels) for f in statements}) == 1

    columns = [column for column, *_ in fam.TABLE_COLUMNS]
    tables: list[dict[str, Any]] = [
        {
            **{c: (None if rng.random() < 0.2 else float(rng.randrange(10**6))) for c in columns},
            "schemaname": "public",
            "relname": f"t{i}",
        }
        for i in range(15)
    ]
    per_db: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
        "a": (tables[:10], []),
        "b": (tables[10:], []),
    }
    families = fam.databases_table_families(per_db)[: len(fam.TABLE_COLUMNS)]
    labelnames = ["datname", "schemaname", "relname"]
    assert families == _as_add_metric_makes(families, labelnames)
    # what a loop of add_metric over the rows makes: a sample per row whose column is not NULL
    for (column, *_), family in zip(fam.TABLE_COLUMNS, families, strict=True):
        expected = [
            ({"datname": d, "schemaname": "public", "relname": t["relname"]}, float(t[column]))
            for d, (rows, _) in per_db.items()
            for t in rows
            if t[column] is not None
        ]
        assert [(s.labels, s.value) for s in family.samples] == expected
    shared: dict[str, dict[str, str]] = {}
    for family in families:
        for sample in family.samples:
            assert shared.setdefault(sample.labels["relname"], sample.labels) is sample.labels
