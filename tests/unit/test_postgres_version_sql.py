"""Server-wide statistics per PostgreSQL version: the SQL chosen for 13-18 and the counters."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client import CollectorRegistry

from exporter.collectors import postgres_queries as sql
from exporter.collectors.postgres_server_stats import (
    ResettableTotals,
    ServerStats,
    server_sql,
    stats_columns,
    version_num,
)

VERSIONS = (130016, 140013, 150020, 160006, 170002, 180006)


def views(text: str) -> set[str]:
    return set(re.findall(r"\bpg_stat_\w+", text))


def columns(text: str, alias: str) -> set[str]:
    return set(re.findall(rf"\b{alias}\.(\w+)", text))


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"pg{v // 10000}")
def test_each_version_reads_only_the_views_and_columns_it_has(version: int) -> None:
    text = stats_columns(version)
    major = version // 10000
    expected = {"pg_stat_bgwriter"}
    if major >= 14:
        expected.add("pg_stat_wal")
    if major >= 16:
        expected.add("pg_stat_io")
    if major >= 17:
        expected.add("pg_stat_checkpointer")
    assert views(text) == expected
    if major >= 17:
        # the checkpoint columns left pg_stat_bgwriter in 17
        assert columns(text, "b") == {"buffers_clean", "stats_reset"}
        assert columns(text, "c") == {
            "num_timed",
            "num_requested",
            "restartpoints_timed",
            "restartpoints_req",
            "buffers_written",
            "write_time",
            "sync_time",
            "stats_reset",
        }
    else:
        assert columns(text, "b") == {
            "checkpoints_timed",
            "checkpoints_req",
            "buffers_checkpoint",
            "checkpoint_write_time",
            "checkpoint_sync_time",
            "buffers_clean",
            "stats_reset",
        }
    if major >= 14:
        # wal_write, wal_sync and their times are gone in 18: never asked for
        assert columns(text, "w") == {"wal_bytes", "wal_buffers_full", "stats_reset"}
    io = columns(text, "i")
    if major >= 16:
        base = {"backend_type", "object", "context", "reads", "hits", "evictions", "reuses"}
        base |= {"writes", "extends", "fsyncs", "read_time", "write_time"}
        byte_columns = {"read_bytes", "write_bytes", "extend_bytes"}
        assert io == (base | byte_columns if major >= 18 else base)
        assert "op_bytes" not in io  # 16 and 17 only; 18 dropped it
    else:
        assert io == set()


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"pg{v // 10000}")
def test_the_columns_extend_the_server_statement_without_another_round_trip(
    version: int,
) -> None:
    text = server_sql(sql.SERVER, version)
    assert text.startswith(sql.SERVER.rstrip())
    assert text.count("SELECT") == sql.SERVER.count("SELECT") + stats_columns(version).count(
        "SELECT"
    )
    assert ";" not in text


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"pg{v // 10000}")
def test_statement_sql_per_version_uses_the_columns_of_that_version(version: int) -> None:
    text = sql.statements_sql("public", version)
    used = columns(text, "p")
    assert {"calls", "total_exec_time", "rows", "shared_blks_hit", "shared_blks_read"} <= used
    assert "total_time" not in used  # renamed total_exec_time in 13
    # 17 split the block I/O times into shared_ and local_: one metric covers both namings
    if version >= 170000:
        assert {"shared_blk_read_time", "local_blk_read_time"} <= used
        assert {"shared_blk_write_time", "local_blk_write_time"} <= used
        assert not used & {"blk_read_time", "blk_write_time"}
    else:
        assert {"blk_read_time", "blk_write_time"} <= used
        assert not used & {"shared_blk_read_time", "local_blk_read_time"}
    assert "AS blk_read_ms" in text
    assert "AS blk_write_ms" in text
    assert ("toplevel" in used) == (version >= 140000)
    assert ("stats_since" in used) == (version >= 170000)
    assert ("pg_stat_statements_info" in text) == (version >= 140000)


def test_version_num_follows_server_version_num() -> None:
    assert version_num(18, 6) == 180006
    assert version_num(15, 20) == 150020
    assert version_num(13, 0) == 130000


def test_totals_keep_what_was_counted_before_a_reset() -> None:
    totals = ResettableTotals()
    assert totals.update({("a",): 10.0, ("b",): 5.0}, 100.0) == {("a",): 10.0, ("b",): 5.0}
    assert totals.update({("a",): 12.0, ("b",): 5.0}, 100.0) == {("a",): 12.0, ("b",): 5.0}
    # reset: values fell (a) or look unchanged (b), and stats_reset moved
    assert totals.update({("a",): 3.0, ("b",): 7.0}, 200.0) == {("a",): 15.0, ("b",): 12.0}
    assert totals.update({("a",): 4.0, ("b",): 7.0}, 200.0) == {("a",): 16.0, ("b",): 12.0}


def test_totals_see_a_reset_by_falling_values_when_no_reset_time_is_known() -> None:
    totals = ResettableTotals()
    totals.update({("a",): 10.0})
    assert totals.update({("a",): 2.0}) == {("a",): 12.0}
    # a series missing for a cycle keeps its last value as the reference
    assert totals.update({}) == {}
    assert totals.update({("a",): 1.0}) == {("a",): 13.0}


def test_totals_after_a_reset_that_grew_past_the_old_value_count_from_zero() -> None:
    totals = ResettableTotals()
    totals.update({("a",): 10.0}, 1.0)
    # only the changed stats_reset can tell: 25 is all new since the reset
    assert totals.update({("a",): 25.0}, 2.0) == {("a",): 35.0}


def registry(stats: ServerStats, row: dict[str, object]) -> CollectorRegistry:
    families = stats.families(row)

    class _Fixed:
        def collect(self) -> list[object]:
            return list(families)

    reg = CollectorRegistry()
    reg.register(_Fixed())  # type: ignore[arg-type]
    return reg


def io_row(**values: object) -> dict[str, object]:
    row: dict[str, object] = {"backend_type": "client backend", "object": "relation"}
    row["context"] = "normal"
    row.update(values)
    return row


def server_row(version: int, **extra: object) -> dict[str, object]:
    checkpoints = {
        "timed": 4,
        "requested": 2,
        "buffers_checkpoint": 300,
        "checkpoint_write_time": 1500.0,
        "checkpoint_sync_time": 250.0,
        "buffers_clean": 40,
        "reset": 1000.0,
        "bgwriter_reset": 1000.0,
    }
    row: dict[str, object] = {"checkpoints": json.dumps(checkpoints)}
    if version >= 140000:
        row["wal"] = json.dumps({"wal_bytes": 123456, "wal_buffers_full": 3, "reset": 1000.0})
    row.update(extra)
    return row


def test_checkpoints_and_wal_map_to_one_set_of_names() -> None:
    reg = registry(ServerStats(), server_row(150000))
    value = reg.get_sample_value
    assert value("perf_postgres_checkpoints_total", {"kind": "timed"}) == 4
    assert value("perf_postgres_checkpoints_total", {"kind": "requested"}) == 2
    assert value("perf_postgres_checkpoint_buffers_written_total") == 300
    assert value("perf_postgres_checkpoint_write_seconds_total") == 1.5
    assert value("perf_postgres_checkpoint_sync_seconds_total") == 0.25
    assert value("perf_postgres_bgwriter_buffers_written_total") == 40
    assert value("perf_postgres_wal_bytes_total") == 123456
    assert value("perf_postgres_wal_buffers_full_total") == 3
    assert value("perf_postgres_io_evictions_total", dict(io_row())) is None


def test_postgres_13_has_no_wal_series() -> None:
    reg = registry(ServerStats(), server_row(130000))
    assert reg.get_sample_value("perf_postgres_wal_bytes_total") is None
    assert reg.get_sample_value("perf_postgres_checkpoints_total", {"kind": "timed"}) == 4


def test_io_skips_null_columns_and_scales_times() -> None:
    rows = [
        io_row(reads=7, hits=90, evictions=5, reuses=None, writes=2, extends=1, fsyncs=0)
        | {"read_time": 12.5, "write_time": 0.0, "read_bytes": 57344},
        io_row(context="vacuum", reads=3, hits=1, evictions=0, reuses=4, fsyncs=None),
    ]
    row = server_row(180000, io=json.dumps(rows), io_reset=1000.0)
    reg = registry(ServerStats(), row)
    normal = io_row()
    vacuum = io_row(context="vacuum")
    assert reg.get_sample_value("perf_postgres_io_evictions_total", normal) == 5
    assert reg.get_sample_value("perf_postgres_io_hits_total", normal) == 90
    assert reg.get_sample_value("perf_postgres_io_read_seconds_total", normal) == 0.0125
    assert reg.get_sample_value("perf_postgres_io_read_bytes_total", normal) == 57344
    assert reg.get_sample_value("perf_postgres_io_reuses_total", normal) is None
    assert reg.get_sample_value("perf_postgres_io_reuses_total", vacuum) == 4
    assert reg.get_sample_value("perf_postgres_io_fsyncs_total", vacuum) is None
    assert reg.get_sample_value("perf_postgres_io_write_bytes_total", vacuum) is None


def test_io_counters_do_not_go_down_across_a_reset_of_pg_stat_io() -> None:
    stats = ServerStats()
    first = server_row(160000, io=json.dumps([io_row(evictions=50, hits=10)]), io_reset=1.0)
    registry(stats, first)
    after = server_row(160000, io=json.dumps([io_row(evictions=60, hits=2)]), io_reset=2.0)
    reg = registry(stats, after)
    # all 60 evictions and 2 hits happened after the reset
    assert reg.get_sample_value("perf_postgres_io_evictions_total", io_row()) == 110
    assert reg.get_sample_value("perf_postgres_io_hits_total", io_row()) == 12


def test_a_checkpointer_reset_leaves_the_background_writer_alone() -> None:
    stats = ServerStats()
    registry(stats, server_row(170000))
    checkpoints = {
        "timed": 1,
        "requested": 0,
        "buffers_checkpoint": 10,
        "checkpoint_write_time": 0.0,
        "checkpoint_sync_time": 0.0,
        "buffers_clean": 45,
        "reset": 2000.0,
        "bgwriter_reset": 1000.0,
    }
    reg = registry(stats, {"checkpoints": json.dumps(checkpoints)})
    assert reg.get_sample_value("perf_postgres_checkpoints_total", {"kind": "timed"}) == 5
    assert reg.get_sample_value("perf_postgres_checkpoint_buffers_written_total") == 310
    assert reg.get_sample_value("perf_postgres_bgwriter_buffers_written_total") == 45
