"""The PostgreSQL dashboard: cache, connections, latency, transactions and locks, I/O,
checkpoints and WAL."""

from __future__ import annotations

from typing import Any

from exporter.mixin.catalog import Query
from exporter.mixin.dashboards.panels import Expr, Panels, gauge, rate, top10, with_kind
from exporter.mixin.thresholds import Thresholds

_DB = "target, datname"
_STATEMENT = "target, datname, queryid"
_BACKEND = "target, backend_type"


def kinds(*named: tuple[str, str]) -> Expr:
    """Rates of several counters on one graph, each series labelled ``kind`` (pg_stat_io)."""

    def render(q: Query, by: str) -> str:
        return " or ".join(
            f'label_replace(sum by ({by}) ({q.rate(name)}), "kind", "{kind}", "", "")'
            for name, kind in named
        )

    return Expr(render, kinds=True)


def _io(*operations: str) -> Expr:
    return kinds(*((f"perf_postgres_io_{op}_total", op) for op in operations))


def postgres(t: Thresholds) -> dict[str, Any]:
    p = Panels(t)
    headline = (
        "postgres_cache_hit_ratio",
        "postgres_connection_utilisation",
        "postgres_probe_p99",
        "postgres_statement_mean_latency",
    )
    committed = rate("perf_postgres_transactions_committed_total")
    rolled_back = rate("perf_postgres_transactions_rolled_back_total")
    deadlocks = rate("perf_postgres_deadlocks_total")
    temp_bytes = rate("perf_postgres_temp_bytes_total")
    return p.dashboard(
        "perf-exporter-postgres",
        "perf-exporter / PostgreSQL",
        "Buffer-cache hit ratio, connections against max_connections, probe and statement latency.",
        [
            ("Summary", p.stats(headline, 6)),
            (
                "Cache",
                [
                    p.graph("postgres_cache_hit_ratio"),
                    p.graph("postgres_buffer_evictions"),
                    p.raw(
                        "Blocks read from disk per database",
                        "ops",
                        _DB,
                        rate("perf_postgres_blocks_read_total"),
                    ),
                    p.raw(
                        "Buffer operations by backend type",
                        "ops",
                        _BACKEND,
                        _io("hits", "reads", "evictions", "reuses", "writes", "extends", "fsyncs"),
                        description="pg_stat_io (PostgreSQL 16+), every object and context: "
                        "evictions make room in shared_buffers, reuses recycle the rings of "
                        "bulk reads, writes and vacuum.",
                    ),
                    p.raw(
                        "I/O time by backend type",
                        "s",
                        _BACKEND,
                        _io("read_seconds", "write_seconds"),
                        8,
                        "Seconds per second spent reading and writing (pg_stat_io; needs "
                        "track_io_timing = on).",
                    ),
                    p.raw(
                        "I/O bytes by backend type",
                        "Bps",
                        _BACKEND,
                        _io("read_bytes", "write_bytes", "extend_bytes"),
                        16,
                        "Bytes per second read, written and added by extends (pg_stat_io, "
                        "PostgreSQL 18+).",
                    ),
                ],
            ),
            (
                "Connections",
                [
                    p.graph("postgres_connection_utilisation"),
                    p.raw(
                        "Connections by state",
                        "short",
                        "target, state",
                        gauge("perf_postgres_connections"),
                    ),
                    p.graph("postgres_longest_transaction"),
                    p.graph("postgres_idle_in_transaction"),
                ],
            ),
            (
                "Latency",
                [
                    p.graph("postgres_probe_p99"),
                    p.graph("postgres_statement_mean_latency"),
                    p.raw(
                        "Top statements by execution time",
                        "s",
                        _STATEMENT,
                        top10(rate("perf_postgres_statement_exec_seconds_total")),
                        description="Execution seconds per second: the statements that keep "
                        "the server busy.",
                    ),
                    p.raw(
                        "Top statements by calls",
                        "ops",
                        _STATEMENT,
                        top10(rate("perf_postgres_statement_calls_total")),
                    ),
                    p.raw(
                        "Top statements by block I/O time",
                        "s",
                        _STATEMENT,
                        top10(
                            kinds(
                                ("perf_postgres_statement_block_read_seconds_total", "read"),
                                ("perf_postgres_statement_block_write_seconds_total", "write"),
                            )
                        ),
                        description="Seconds per second the statements spent reading and "
                        "writing shared and local blocks (needs track_io_timing = on): the "
                        "statements that wait on the disk.",
                    ),
                ],
            ),
            (
                "Transactions and locks",
                [
                    p.raw(
                        "Transactions per second",
                        "ops",
                        _DB,
                        with_kind(committed, rolled_back, "rollback"),
                        8,
                        "Commits per database; rollbacks are marked kind=rollback.",
                    ),
                    p.raw(
                        "Sessions waiting on a lock",
                        "short",
                        _DB,
                        gauge("perf_postgres_lock_waiters"),
                        8,
                    ),
                    p.raw(
                        "Deadlocks and temp bytes written",
                        "short",
                        _DB,
                        with_kind(deadlocks, temp_bytes, "temp bytes"),
                        8,
                        "Deadlocks per second, and bytes per second spilled to temporary files "
                        "(kind=temp bytes: raise work_mem or fix the sort).",
                    ),
                ],
            ),
            (
                "Checkpoints and WAL",
                [
                    p.raw(
                        "Checkpoints by trigger",
                        "ops",
                        "target, kind",
                        rate("perf_postgres_checkpoints_total"),
                        6,
                        "Checkpoints per second: timed (checkpoint_timeout) or requested (WAL "
                        "volume reached max_wal_size, or CHECKPOINT). Mostly requested: raise "
                        "max_wal_size.",
                    ),
                    p.raw(
                        "Buffers written by checkpoints and the background writer",
                        "ops",
                        "target",
                        kinds(
                            ("perf_postgres_checkpoint_buffers_written_total", "checkpoint"),
                            ("perf_postgres_bgwriter_buffers_written_total", "bgwriter"),
                        ),
                        6,
                    ),
                    p.raw(
                        "Checkpoint write and sync time",
                        "s",
                        "target",
                        kinds(
                            ("perf_postgres_checkpoint_write_seconds_total", "write"),
                            ("perf_postgres_checkpoint_sync_seconds_total", "sync"),
                        ),
                        6,
                        "Seconds per second checkpoints spent writing and fsyncing; a long sync "
                        "is a disk that cannot keep up.",
                    ),
                    p.raw(
                        "WAL generated and WAL buffers full",
                        "short",
                        "target",
                        kinds(
                            ("perf_postgres_wal_bytes_total", "bytes"),
                            ("perf_postgres_wal_buffers_full_total", "buffers full"),
                        ),
                        6,
                        "WAL bytes per second (PostgreSQL 14+), and times per second a backend "
                        "had to write WAL because wal_buffers was full (kind=buffers full: raise "
                        "wal_buffers).",
                    ),
                ],
            ),
        ],
    )
