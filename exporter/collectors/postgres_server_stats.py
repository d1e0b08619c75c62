"""Server-wide I/O, checkpoint, background writer and WAL statistics, per PostgreSQL version.

The views moved between versions: ``pg_stat_wal`` exists since 14, ``pg_stat_io`` since 16
(byte columns instead of ``op_bytes`` since 18), and 17 moved the checkpoint columns of
``pg_stat_bgwriter`` to ``pg_stat_checkpointer`` under new names. :func:`stats_columns` builds,
once per connection from ``server_version_num``, select-list items reading only what that
version has; they ride on the collector's server statement, so these views cost no extra round
trip. A version lacking a view gets no column for it, and no series.

Every one of these views can be reset (``pg_stat_reset_shared('io'|'bgwriter'|
'checkpointer'|'wal')``) and a crash zeroes them. :class:`ResettableTotals` keeps what was
counted before a reset, so the exported counters never go down while the daemon runs.
No I/O here: the SQL per version and the mapping are unit tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

IO_LABELS = ("backend_type", "object", "context")

#: pg_stat_io column -> (family without ``_total``, help, scale, first version).
IO_COLUMNS: tuple[tuple[str, str, str, float, int], ...] = (
    ("reads", "perf_postgres_io_reads", "Read operations (pg_stat_io).", 1.0, 160000),
    (
        "hits",
        "perf_postgres_io_hits",
        "Times a wanted block was found in a shared or local buffer (pg_stat_io).",
        1.0,
        160000,
    ),
    (
        "evictions",
        "perf_postgres_io_evictions",
        "Times a buffer was evicted to make room for another block (pg_stat_io); in context "
        "normal this is shared_buffers pressure that a high hit ratio hides.",
        1.0,
        160000,
    ),
    (
        "reuses",
        "perf_postgres_io_reuses",
        "Times a buffer of a bulk-operation ring was reused (pg_stat_io).",
        1.0,
        160000,
    ),
    ("writes", "perf_postgres_io_writes", "Write operations (pg_stat_io).", 1.0, 160000),
    (
        "extends",
        "perf_postgres_io_extends",
        "Relation extend operations (pg_stat_io).",
        1.0,
        160000,
    ),
    ("fsyncs", "perf_postgres_io_fsyncs", "fsync calls (pg_stat_io).", 1.0, 160000),
    (
        "read_time",
        "perf_postgres_io_read_seconds",
        "Time spent in read operations (pg_stat_io; 0 unless track_io_timing is on).",
        0.001,
        160000,
    ),
    (
        "write_time",
        "perf_postgres_io_write_seconds",
        "Time spent in write operations (pg_stat_io; 0 unless track_io_timing is on).",
        0.001,
        160000,
    ),
    ("read_bytes", "perf_postgres_io_read_bytes", "Bytes read (pg_stat_io).", 1.0, 180000),
    ("write_bytes", "perf_postgres_io_write_bytes", "Bytes written (pg_stat_io).", 1.0, 180000),
    (
        "extend_bytes",
        "perf_postgres_io_extend_bytes",
        "Bytes added by relation extends (pg_stat_io).",
        1.0,
        180000,
    ),
)

#: Checkpoint and background-writer counters: (key, family, help, scale).
CHECKPOINT_COUNTERS: tuple[tuple[str, str, str, float], ...] = (
    (
        "buffers_checkpoint",
        "perf_postgres_checkpoint_buffers_written",
        "Buffers written by checkpoints (and restartpoints).",
        1.0,
    ),
    (
        "checkpoint_write_time",
        "perf_postgres_checkpoint_write_seconds",
        "Time checkpoints spent writing files to disk.",
        0.001,
    ),
    (
        "checkpoint_sync_time",
        "perf_postgres_checkpoint_sync_seconds",
        "Time checkpoints spent synchronising files to disk.",
        0.001,
    ),
    (
        "buffers_clean",
        "perf_postgres_bgwriter_buffers_written",
        "Buffers written by the background writer.",
        1.0,
    ),
)

#: The checkpointer's keys in the checkpoints column (one reset time); buffers_clean is the
#: background writer's, which 17+ resets separately.
_CHECKPOINTER_KEYS = (
    "timed",
    "requested",
    "buffers_checkpoint",
    "checkpoint_write_time",
    "checkpoint_sync_time",
)

WAL_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("wal_bytes", "perf_postgres_wal_bytes", "WAL generated, in bytes (pg_stat_wal)."),
    (
        "wal_buffers_full",
        "perf_postgres_wal_buffers_full",
        "Times WAL was written to disk because the WAL buffers were full (pg_stat_wal).",
    ),
)


def version_num(major: int, minor: int) -> int:
    """``server_version_num`` from the version the server announced at connect (10+)."""
    return major * 10000 + minor


def _epoch(column: str) -> str:
    return f"extract(epoch FROM {column})::float8"


def stats_columns(version: int) -> str:
    """Select-list items (no leading comma) reading the server-wide views ``version`` has.

    Columns: ``checkpoints`` (always), ``wal`` (14+), ``io`` and ``io_reset`` (16+); a view the
    version lacks is left out, never queried.
    """
    if version >= 170000:
        # 17 moved the checkpointer's counters to their own view (buffers_clean stayed) and
        # counts a standby's restartpoints apart: added back, as pg_stat_bgwriter counted them
        checkpoints = f"""(SELECT json_build_object(
        'timed', c.num_timed + c.restartpoints_timed,
        'requested', c.num_requested + c.restartpoints_req,
        'buffers_checkpoint', c.buffers_written,
        'checkpoint_write_time', c.write_time, 'checkpoint_sync_time', c.sync_time,
        'buffers_clean', b.buffers_clean,
        'reset', {_epoch("c.stats_reset")}, 'bgwriter_reset', {_epoch("b.stats_reset")})
      FROM pg_stat_checkpointer c, pg_stat_bgwriter b) AS checkpoints"""
    else:
        checkpoints = f"""(SELECT json_build_object(
        'timed', b.checkpoints_timed, 'requested', b.checkpoints_req,
        'buffers_checkpoint', b.buffers_checkpoint,
        'checkpoint_write_time', b.checkpoint_write_time,
        'checkpoint_sync_time', b.checkpoint_sync_time,
        'buffers_clean', b.buffers_clean,
        'reset', {_epoch("b.stats_reset")}, 'bgwriter_reset', {_epoch("b.stats_reset")})
      FROM pg_stat_bgwriter b) AS checkpoints"""
    items = [checkpoints]
    if version >= 140000:
        # wal_bytes and wal_buffers_full survive 18 (which moved wal_write/wal_sync to pg_stat_io)
        items.append(
            f"""(SELECT json_build_object(
        'wal_bytes', w.wal_bytes, 'wal_buffers_full', w.wal_buffers_full,
        'reset', {_epoch("w.stats_reset")})
      FROM pg_stat_wal w) AS wal"""
        )
    if version >= 160000:
        fields = ", ".join(
            f"'{column}', i.{column}" for column, *_, since in IO_COLUMNS if version >= since
        )
        items.append(
            f"""(SELECT json_agg(json_build_object(
        'backend_type', i.backend_type, 'object', i.object, 'context', i.context, {fields})
        ORDER BY i.backend_type, i.object, i.context)
      FROM pg_stat_io i) AS io"""
        )
        items.append(f"(SELECT {_epoch('max(stats_reset)')} FROM pg_stat_io) AS io_reset")
    return ",\n    ".join(items)


def server_sql(base: str, version: int, *extra: str) -> str:
    """The collector's server statement ``base`` with the columns of :func:`stats_columns`, then
    ``extra`` ones."""
    columns = ",\n    ".join((stats_columns(version), *extra))
    return f"{base.rstrip()},\n    {columns}\n"


def _json(value: Any) -> Any:
    """A JSON column as asyncpg returns it (text), or an already decoded value."""
    return json.loads(value) if isinstance(value, str) else value


Key = tuple[str, ...]


class ResettableTotals:
    """Counters that never go down, from a source that can be reset (or zeroed by a crash).

    Each update takes the source's current values by series. A value below the last one, or
    a changed reset time of the source, means the source started again from zero: what was
    counted before is kept as a base and the new value is added to it.
    """

    def __init__(self) -> None:
        self._last: dict[Key, float] = {}
        self._base: dict[Key, float] = {}
        self._reset: float | None = None

    def update(self, current: Mapping[Key, float], reset: float | None = None) -> dict[Key, float]:
        """Take this cycle's values (and the source's ``stats_reset``); return the totals."""
        was_reset = None not in (reset, self._reset) and reset != self._reset
        if reset is not None:
            self._reset = reset
        for key, value in current.items():
            previous = self._last.get(key)
            if previous is not None and (was_reset or value < previous):
                self._base[key] = self._base.get(key, 0.0) + previous
            self._last[key] = value
        return {key: self._base.get(key, 0.0) + value for key, value in current.items()}


class _Series(NamedTuple):
    family: str
    help: str
    labels: tuple[str, ...]


class ServerStats:
    """The server-wide counters of one target across cycles (and reconnects)."""

    def __init__(self) -> None:
        self._io = ResettableTotals()
        self._checkpoints = ResettableTotals()
        self._bgwriter = ResettableTotals()
        self._wal = ResettableTotals()

    def families(self, row: Mapping[str, Any]) -> list[Metric]:
        """Counter families from the columns of :func:`stats_columns` in the server row."""
        families: list[Metric] = []
        checkpoints = _json(row.get("checkpoints"))
        if checkpoints is not None:
            families += self._checkpoint_families(checkpoints)
        wal = _json(row.get("wal"))
        if wal is not None:
            values: dict[Key, float] = {
                (k,): float(wal[k]) for k, *_ in WAL_COUNTERS if wal.get(k) is not None
            }
            totals = self._wal.update(values, wal.get("reset"))
            for key, name, help_text in WAL_COUNTERS:
                if (key,) in totals:
                    families.append(CounterMetricFamily(name, help_text, value=totals[(key,)]))
        if "io" in row:
            families += self._io_families(_json(row["io"]) or [], row.get("io_reset"))
        return families

    def _checkpoint_families(self, row: Mapping[str, Any]) -> list[Metric]:
        ckpt: dict[Key, float] = {
            (key,): float(row[key]) for key in _CHECKPOINTER_KEYS if row.get(key) is not None
        }
        totals = self._checkpoints.update(ckpt, row.get("reset"))
        clean: dict[Key, float] = {("buffers_clean",): float(row["buffers_clean"])}
        bgw = self._bgwriter.update(clean, row.get("bgwriter_reset"))
        totals.update(bgw)
        kinds = CounterMetricFamily(
            "perf_postgres_checkpoints",
            "Checkpoints (restartpoints on a standby) started, by what triggered them: the "
            "checkpoint_timeout (timed) or WAL volume and CHECKPOINT commands (requested).",
            labels=["kind"],
        )
        for kind in ("timed", "requested"):
            if (kind,) in totals:
                kinds.add_metric([kind], totals[(kind,)])
        families: list[Metric] = [kinds]
        for key, name, help_text, scale in CHECKPOINT_COUNTERS:
            if (key,) in totals:
                families.append(CounterMetricFamily(name, help_text, value=totals[(key,)] * scale))
        return families

    def _io_families(self, rows: list[Mapping[str, Any]], reset: float | None) -> list[Metric]:
        current: dict[Key, float] = {}
        for r in rows:
            labels = tuple(str(r[label]) for label in IO_LABELS)
            for column, *_ in IO_COLUMNS:
                # NULL: the combination cannot do that operation (not a zero)
                if r.get(column) is not None:
                    current[(column, *labels)] = float(r[column])
        totals = self._io.update(current, reset)
        families: list[Metric] = []
        for column, name, help_text, scale, _since in IO_COLUMNS:
            family = CounterMetricFamily(name, help_text, labels=list(IO_LABELS))
            for key, value in totals.items():
                if key[0] == column:
                    family.add_metric(list(key[1:]), value * scale)
            families.append(family)
        return families
