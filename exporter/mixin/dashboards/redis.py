"""The Redis dashboard: hit ratio, memory, namespaces, latency, clients."""

from __future__ import annotations

from typing import Any

from exporter.mixin.dashboards.panels import (
    Graph,
    Row,
    dashboard,
    raw_graph,
    signal_graph,
    sum_by,
    summary_row,
    top10,
    with_kind,
)
from exporter.mixin.thresholds import Thresholds


def redis(t: Thresholds) -> dict[str, Any]:
    rows: list[Row] = [
        summary_row(
            t,
            ("redis_hit_ratio", "redis_memory_utilisation", "redis_probe_p99", "redis_evictions"),
            6,
        ),
        (
            "Cache",
            [
                signal_graph(t, "redis_hit_ratio"),
                raw_graph(
                    Graph(
                        "Hits and misses",
                        lambda q: with_kind(
                            sum_by("target", q.rate("perf_redis_keyspace_hits_total")),
                            sum_by("target", q.rate("perf_redis_keyspace_misses_total")),
                            "miss",
                        ),
                        "ops",
                        "{{target}} {{kind}}",
                    )
                ),
                raw_graph(
                    Graph(
                        "Keys per namespace",
                        lambda q: sum_by("target, namespace", q.m("perf_redis_namespace_keys")),
                        "short",
                        "{{target}} {{namespace}}",
                    )
                ),
                raw_graph(
                    Graph(
                        "Keys without TTL per namespace",
                        lambda q: sum_by(
                            "target, namespace", q.m("perf_redis_namespace_keys_without_ttl")
                        ),
                        "short",
                        "{{target}} {{namespace}}",
                        description="Keys that never expire: the classic cache leak.",
                    )
                ),
            ],
        ),
        (
            "Memory",
            [
                signal_graph(t, "redis_memory_utilisation"),
                signal_graph(t, "redis_evictions"),
                raw_graph(
                    Graph(
                        "Memory used",
                        lambda q: sum_by("target", q.m("perf_redis_memory_used_bytes")),
                        "bytes",
                        "{{target}}",
                    )
                ),
                signal_graph(t, "redis_rejected_connections"),
            ],
        ),
        (
            "Latency",
            [
                signal_graph(t, "redis_probe_p99"),
                raw_graph(
                    Graph(
                        "Commands per second",
                        lambda q: top10(
                            sum_by("target, cmd", q.rate("perf_redis_command_calls_total"))
                        ),
                        "ops",
                        "{{target}} {{cmd}}",
                    )
                ),
            ],
        ),
    ]
    rows.append(
        (
            "Clients and load",
            [
                raw_graph(
                    Graph(
                        "Connected clients against maxclients",
                        lambda q: with_kind(
                            sum_by("target", q.m("perf_redis_clients_connected")),
                            sum_by("target", q.m("perf_redis_clients_max")),
                            "max",
                        ),
                        "short",
                        "{{target}} {{kind}}",
                    )
                ),
                raw_graph(
                    Graph(
                        "Commands processed per second",
                        lambda q: sum_by("target", q.rate("perf_redis_commands_processed_total")),
                        "ops",
                        "{{target}}",
                    )
                ),
            ],
        )
    )
    return dashboard(
        t,
        "perf-exporter-redis",
        "perf-exporter / Redis",
        "Keyspace hit ratio, memory against maxmemory, evictions, namespaces and latency.",
        rows,
        remote=True,
    )
