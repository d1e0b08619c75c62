"""Pure mapping from the PostgreSQL collector's query rows to metric families and facts.

No I/O here: every function takes plain rows (dicts as decoded from the JSON columns of
:mod:`exporter.collectors.postgres_queries`) and returns prometheus_client families or
JSON-serialisable facts, so the mapping and the advice rules are unit tested without a server
(the statement accounting lives in :mod:`exporter.collectors.postgres_statements`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from exporter.collectors.postgres_queries import CONNECTION_STATES
from exporter.collectors.probe_histogram import ProbeHistogram
from exporter.snapshot import sample_name

Row = Mapping[str, Any]

#: pg_stat_database column -> (counter name without ``_total``, help). Labels: ``datname``.
DATABASE_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("blks_hit", "perf_postgres_blocks_hit", "Reads served from the shared buffer cache."),
    ("blks_read", "perf_postgres_blocks_read", "Blocks read from disk or the OS page cache."),
    ("xact_commit", "perf_postgres_transactions_committed", "Transactions committed."),
    ("xact_rollback", "perf_postgres_transactions_rolled_back", "Transactions rolled back."),
    ("deadlocks", "perf_postgres_deadlocks", "Deadlocks detected."),
    ("conflicts", "perf_postgres_conflicts", "Queries cancelled by recovery conflicts."),
    ("temp_files", "perf_postgres_temp_files", "Temporary files written by queries."),
    ("temp_bytes", "perf_postgres_temp_bytes", "Bytes written to temporary files by queries."),
    ("tup_returned", "perf_postgres_tuples_returned", "Rows returned by sequential scans."),
    ("tup_fetched", "perf_postgres_tuples_fetched", "Rows fetched by index scans."),
    ("tup_inserted", "perf_postgres_tuples_inserted", "Rows inserted."),
    ("tup_updated", "perf_postgres_tuples_updated", "Rows updated."),
    ("tup_deleted", "perf_postgres_tuples_deleted", "Rows deleted."),
)

#: pg_statio/pg_stat_user_tables column -> (family, help, is_counter). Labels: datname,
#: schemaname, relname.
TABLE_COLUMNS: tuple[tuple[str, str, str, bool], ...] = (
    (
        "heap_blks_hit",
        "perf_postgres_table_heap_blocks_hit",
        "Heap blocks of the table found in the buffer cache.",
        True,
    ),
    (
        "heap_blks_read",
        "perf_postgres_table_heap_blocks_read",
        "Heap blocks of the table read from disk or the OS page cache.",
        True,
    ),
    (
        "idx_blks_hit",
        "perf_postgres_table_index_blocks_hit",
        "Index blocks of the table's indexes found in the buffer cache.",
        True,
    ),
    (
        "idx_blks_read",
        "perf_postgres_table_index_blocks_read",
        "Index blocks of the table's indexes read from disk or the OS page cache.",
        True,
    ),
    ("seq_scan", "perf_postgres_table_seq_scan", "Sequential scans of the table.", True),
    (
        "seq_tup_read",
        "perf_postgres_table_seq_rows_read",
        "Rows read by sequential scans of the table.",
        True,
    ),
    ("idx_scan", "perf_postgres_table_idx_scan", "Index scans on the table.", True),
    (
        "n_live_tup",
        "perf_postgres_table_live_tuples",
        "Estimated live rows in the table (pg_stat_user_tables.n_live_tup).",
        False,
    ),
    (
        "n_dead_tup",
        "perf_postgres_table_dead_tuples",
        "Estimated dead rows in the table that vacuum has not removed yet.",
        False,
    ),
    (
        "last_vacuum",
        "perf_postgres_table_last_vacuum_timestamp_seconds",
        "Unix time of the table's last vacuum, manual or autovacuum (absent: never).",
        False,
    ),
    (
        "last_analyze",
        "perf_postgres_table_last_analyze_timestamp_seconds",
        "Unix time of the table's last analyze, manual or autoanalyze (absent: never).",
        False,
    ),
    (
        "size_bytes",
        "perf_postgres_table_size_bytes",
        "Size of the table with its indexes and TOAST data.",
        False,
    ),
)

#: Statement counter -> (row key, help, scale). Labels: queryid, datname, user.
STATEMENT_COUNTERS: tuple[tuple[str, str, str, float], ...] = (
    ("perf_postgres_statement_calls", "calls", "Times the statement was executed.", 1.0),
    (
        "perf_postgres_statement_exec_seconds",
        "exec_ms",
        "Time spent executing the statement.",
        0.001,
    ),
    ("perf_postgres_statement_rows", "rows", "Rows retrieved or affected by the statement.", 1.0),
    (
        "perf_postgres_statement_shared_blocks_hit",
        "shared_blks_hit",
        "Shared buffer cache hits by the statement.",
        1.0,
    ),
    (
        "perf_postgres_statement_shared_blocks_read",
        "shared_blks_read",
        "Shared blocks the statement read from disk or the OS page cache.",
        1.0,
    ),
    (
        "perf_postgres_statement_block_read_seconds",
        "blk_read_ms",
        "Time the statement spent reading shared and local blocks (0 unless track_io_timing "
        "is on).",
        0.001,
    ),
    (
        "perf_postgres_statement_block_write_seconds",
        "blk_write_ms",
        "Time the statement spent writing shared and local blocks (0 unless track_io_timing "
        "is on).",
        0.001,
    ),
)
STATEMENT_FIELDS = (
    "calls",
    "exec_ms",
    "rows",
    "shared_blks_hit",
    "shared_blks_read",
    "blk_read_ms",
    "blk_write_ms",
)


def probe_histogram() -> ProbeHistogram:
    return ProbeHistogram(
        "perf_postgres_probe_duration_seconds",
        "Round trip of the SELECT 1 probe, measured once per cycle.",
    )


def gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def database_families(databases: Iterable[Row]) -> list[Metric]:
    """Per-database counters and size from pg_stat_database rows."""
    rows = list(databases)
    families: list[Metric] = []
    for column, name, help_text in DATABASE_COUNTERS:
        family = CounterMetricFamily(name, help_text, labels=["datname"])
        for row in rows:
            family.add_metric([row["datname"]], float(row[column]))
        families.append(family)
    size = GaugeMetricFamily(
        "perf_postgres_database_size_bytes", "Disk space used by the database.", labels=["datname"]
    )
    for row in rows:
        size.add_metric([row["datname"]], float(row["size_bytes"]))
    families.append(size)
    return families


def lock_waiters(datnames: Iterable[str], connections: Iterable[Row]) -> dict[str, int]:
    """Client sessions waiting on a lock per database of ``datnames`` (zeros included), from
    the server statement's ``connections`` rows: ``perf_postgres_lock_waiters``, and what the
    wait sampler's latest sample is checked against in the cycle."""
    waiters: dict[str, int] = dict.fromkeys(datnames, 0)
    for row in connections:
        if row["datname"] in waiters:  # else filtered out by `databases`
            waiters[row["datname"]] += int(row["lock_waiters"])
    return waiters


def connection_families(datnames: Iterable[str], connections: Iterable[Row]) -> list[Metric]:
    """Client connections by database and state (every known state, zeros included) and the
    number of sessions waiting on a lock per database."""
    names = list(datnames)
    rows = list(connections)
    counts: dict[tuple[str, str], int] = {}
    waiters = lock_waiters(names, rows)
    for row in rows:
        if row["datname"] not in waiters:
            continue  # filtered out by `databases`
        key = (row["datname"], row["state"])
        counts[key] = counts.get(key, 0) + int(row["count"])
    family = GaugeMetricFamily(
        "perf_postgres_connections",
        "Client connections by database and state (pg_stat_activity).",
        labels=["datname", "state"],
    )
    for datname in names:
        extra = sorted(s for d, s in counts if d == datname and s not in CONNECTION_STATES)
        for state in (*CONNECTION_STATES, *extra):
            family.add_metric([datname, state], float(counts.get((datname, state), 0)))
    lock = GaugeMetricFamily(
        "perf_postgres_lock_waiters",
        "Client sessions currently waiting to acquire a lock.",
        labels=["datname"],
    )
    for datname in names:
        lock.add_metric([datname], float(waiters[datname]))
    return [family, lock]


def application_families(applications: Iterable[Row]) -> list[Metric]:
    """Longest open transaction and longest idle-in-transaction age per application_name."""
    xact = GaugeMetricFamily(
        "perf_postgres_transaction_max_age_seconds",
        "Age of the oldest open transaction per application_name (top N by age).",
        labels=["application_name"],
    )
    idle = GaugeMetricFamily(
        "perf_postgres_idle_in_transaction_max_age_seconds",
        "Longest time a session has sat idle inside a transaction, per application_name.",
        labels=["application_name"],
    )
    for row in applications:
        xact.add_metric([row["application_name"]], float(row["transaction_age"] or 0.0))
        idle.add_metric([row["application_name"]], float(row["idle_in_transaction_age"] or 0.0))
    return [xact, idle]


def server_families(server: Row) -> list[Metric]:
    """Settings, version, start time and replication state from the server row."""
    version = str(server["version"]).split(" ", 1)[0]
    info = GaugeMetricFamily(
        "perf_postgres_version_info",
        "PostgreSQL server version (value is always 1).",
        labels=["version", "version_num"],
    )
    info.add_metric([version, str(server["version_num"])], 1.0)
    families: list[Metric] = [
        info,
        gauge(
            "perf_postgres_max_connections",
            "The max_connections setting.",
            server["max_connections"],
        ),
        gauge(
            "perf_postgres_superuser_reserved_connections",
            "Connection slots reserved for superusers (superuser_reserved_connections).",
            server["superuser_reserved_connections"],
        ),
        gauge(
            "perf_postgres_postmaster_start_time_seconds",
            "Unix time the server (postmaster) started.",
            server["postmaster_start_time"],
        ),
        gauge(
            "perf_postgres_in_recovery",
            "1 when the server is a standby (in recovery), 0 when it is a primary.",
            1.0 if server["in_recovery"] else 0.0,
        ),
    ]
    if server["in_recovery"]:
        if server["replica_lag_bytes"] is not None:
            families.append(
                gauge(
                    "perf_postgres_replication_lag_bytes",
                    "WAL received by this standby but not yet replayed.",
                    server["replica_lag_bytes"],
                )
            )
        if server["replica_lag_seconds"] is not None:
            families.append(
                gauge(
                    "perf_postgres_replication_lag_seconds",
                    "Age of the last replayed transaction (0 when replay has caught up).",
                    server["replica_lag_seconds"],
                )
            )
    standbys = list(server["standbys"] or [])
    lag_bytes = GaugeMetricFamily(
        "perf_postgres_standby_lag_bytes",
        "WAL not yet replayed by each connected standby.",
        labels=["application_name", "client_addr"],
    )
    lag_seconds = GaugeMetricFamily(
        "perf_postgres_standby_lag_seconds",
        "Replay lag of each connected standby as measured by the primary.",
        labels=["application_name", "client_addr"],
    )
    for row in standbys:
        labels = [row["application_name"], row["client_addr"]]
        if row["lag_bytes"] is not None:
            lag_bytes.add_metric(labels, float(row["lag_bytes"]))
        lag_seconds.add_metric(labels, float(row["lag_seconds"] or 0.0))
    families += [lag_bytes, lag_seconds]
    return families


def table_families(datname: str, tables: Iterable[Row], unused: Iterable[Row]) -> list[Metric]:
    """Per-table I/O, scans and size for the selected tables, and unused indexes by size."""
    return databases_table_families({datname: (list(tables), list(unused))})


def databases_table_families(
    per_database: Mapping[str, tuple[Sequence[Row], Sequence[Row]]],
) -> list[Metric]:
    """:func:`table_families` of several databases, one family per metric (datname told apart)."""
    families: list[Metric] = []
    labels = ["datname", "schemaname", "relname"]
    # one label dict per table, shared by its ~14 families: what add_metric would make, without
    # a dict of its own for every sample (the summary board keeps some of them a while)
    tables = [
        (row, {"datname": datname, "schemaname": row["schemaname"], "relname": row["relname"]})
        for datname, (rows, _) in per_database.items()
        for row in rows
    ]
    for column, name, help_text, is_counter in TABLE_COLUMNS:
        family: CounterMetricFamily | GaugeMetricFamily = (
            CounterMetricFamily(name, help_text, labels=labels)
            if is_counter
            else GaugeMetricFamily(name, help_text, labels=labels)
        )
        name_of_samples = sample_name(family)
        # no size while a migration holds the table's lock, no vacuum time if never
        family.samples = [
            Sample(name_of_samples, row_labels, float(value))
            for row, row_labels in tables
            if (value := row.get(column)) is not None
        ]
        families.append(family)
    unused_family = GaugeMetricFamily(
        "perf_postgres_unused_index_size_bytes",
        "Size of indexes never scanned since statistics were reset (not unique, not a "
        "constraint), largest first.",
        labels=[*labels, "indexrelname"],
    )
    for datname, (_, unused) in per_database.items():
        for row in unused:
            unused_family.add_metric(
                [datname, row["schemaname"], row["relname"], row["indexrelname"]],
                float(row["size_bytes"]),
            )
    families.append(unused_family)
    return families


@dataclass(frozen=True)
class StatementRow:
    """Counters of one statement (or of the remainder, with queryid ``other``)."""

    queryid: str
    datname: str
    user: str
    calls: int
    exec_ms: float
    rows: int
    shared_blks_hit: int
    shared_blks_read: int
    # block I/O times in milliseconds (blk_*_time before 17, shared_ plus local_ since)
    blk_read_ms: float = 0.0
    blk_write_ms: float = 0.0


def statement_families(
    top: Sequence[StatementRow], other: StatementRow, texts: Mapping[str, str] | None
) -> list[Metric]:
    """Counters per statement plus the ``other`` row; ``statement_info`` when texts are given."""
    families: list[Metric] = []
    rows = (*top, other)
    # one label dict per statement, shared by its seven counters (see databases_table_families)
    labels = [{"queryid": r.queryid, "datname": r.datname, "user": r.user} for r in rows]
    for name, field, help_text, scale in STATEMENT_COUNTERS:
        family = CounterMetricFamily(
            name,
            help_text + ' Top N by recent execution time; queryid="other" holds the rest.',
            labels=["queryid", "datname", "user"],
        )
        total = sample_name(family)
        family.samples = [
            Sample(total, row_labels, getattr(row, field) * scale)
            for row, row_labels in zip(rows, labels, strict=True)
        ]
        families.append(family)
    if texts is not None:
        info = GaugeMetricFamily(
            "perf_postgres_statement_info",
            "Normalized text of the listed statements (value is always 1).",
            labels=["queryid", "query"],
        )
        for queryid in sorted({r.queryid for r in top}):
            if texts.get(queryid):
                info.add_metric([queryid, texts[queryid]], 1.0)
        families.append(info)
    return families


def statement_view_families(deallocations: int | None, reset_time: float | None) -> list[Metric]:
    """Eviction pressure and the last reset of pg_stat_statements (PostgreSQL 14+ only)."""
    families: list[Metric] = []
    if deallocations is not None:
        families.append(
            CounterMetricFamily(
                "perf_postgres_statements_deallocations",
                "Times pg_stat_statements evicted its least used entries because "
                "pg_stat_statements.max was reached (pg_stat_statements_info.dealloc, "
                "accumulated across resets).",
                value=float(deallocations),
            )
        )
    if reset_time is not None:
        families.append(
            gauge(
                "perf_postgres_statements_reset_timestamp_seconds",
                "Unix time of the last full reset of pg_stat_statements (stats_reset).",
                reset_time,
            )
        )
    return families


def statement_text(text: str, max_length: int) -> str:
    """A statement's text as shown in labels and /summary: normalized, never a password.

    Utility statements are not normalised before PostgreSQL 16: ALTER ROLE ... PASSWORD '...'
    would put a password into a label.
    """
    if "password" in text.lower():
        return "<not shown: the statement mentions a password>"
    return normalize_query(text, max_length)


def normalize_query(text: str, max_length: int) -> str:
    """One line, single spaces, at most ``max_length`` characters (``...`` marks a cut)."""
    flat = " ".join(text.split())
    if len(flat) <= max_length:
        return flat
    return flat[: max_length - 3].rstrip() + "..."


def hit_ratio(
    previous: Mapping[str, tuple[int, int]] | None, current: Mapping[str, tuple[int, int]]
) -> float | None:
    """Buffer-cache hit ratio over the last interval, from (hit, read) per database.

    Only databases present in both samples count; a database whose counters went down (stats
    reset) is left out. ``None`` without a previous sample or when no block was accessed.
    """
    if previous is None:
        return None
    hits = reads = 0
    for datname, (hit, read) in current.items():
        if datname not in previous:
            continue
        d_hit = hit - previous[datname][0]
        d_read = read - previous[datname][1]
        if d_hit < 0 or d_read < 0:
            continue
        hits += d_hit
        reads += d_read
    if hits + reads == 0:
        return None
    return hits / (hits + reads)


def index_recommendations(
    datname: str,
    tables: Iterable[Row],
    unused: Iterable[Row],
    *,
    min_seq_scans: int,
    min_rows_per_scan: int,
) -> list[dict[str, Any]]:
    """Read-only advice for /summary: tables that look like they miss an index, unused indexes.

    A table qualifies when it was scanned sequentially at least ``min_seq_scans`` times, more
    often than through an index, reading ``min_rows_per_scan`` rows or more per scan on average.
    Nothing is ever executed on the database because of this advice.
    """
    advice: list[dict[str, Any]] = []
    for row in tables:
        seq_scan = int(row["seq_scan"])
        if seq_scan < min_seq_scans or seq_scan <= int(row["idx_scan"]):
            continue
        rows_per_scan = int(row["seq_tup_read"]) // seq_scan
        if rows_per_scan < min_rows_per_scan:
            continue
        name = f"{row['schemaname']}.{row['relname']}"
        advice.append(
            {
                "kind": "missing_index",
                "datname": datname,
                "schemaname": row["schemaname"],
                "relname": row["relname"],
                "seq_scan": seq_scan,
                "idx_scan": int(row["idx_scan"]),
                "rows_per_seq_scan": rows_per_scan,
                "size_bytes": row["size_bytes"],
                "advice": (
                    f"{name} was read by {seq_scan} sequential scans of about {rows_per_scan} "
                    "rows each; look at the hot queries on it in pg_stat_statements and index "
                    "the columns they filter on."
                ),
            }
        )
    advice.sort(key=lambda a: a["seq_scan"] * a["rows_per_seq_scan"], reverse=True)
    for row in unused:
        advice.append(
            {
                "kind": "unused_index",
                "datname": datname,
                "schemaname": row["schemaname"],
                "relname": row["relname"],
                "indexrelname": row["indexrelname"],
                "size_bytes": int(row["size_bytes"]),
                "advice": (
                    f"Index {row['schemaname']}.{row['indexrelname']} on {row['relname']} has "
                    "not been scanned since statistics were reset; if that covers a full "
                    "business cycle, dropping it saves space and write work."
                ),
            }
        )
    return advice
