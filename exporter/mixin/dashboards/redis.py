"""The Redis dashboard: hit ratio, memory, namespaces, latency and slowlog, clients."""

from __future__ import annotations

from typing import Any

from exporter.mixin.dashboards.panels import Panels, gauge, rate, top10, with_kind
from exporter.mixin.thresholds import Thresholds

_NAMESPACE = "target, namespace"


def redis(t: Thresholds) -> dict[str, Any]:
    p = Panels(t)
    headline = ("redis_hit_ratio", "redis_memory_utilisation", "redis_probe_p99", "redis_evictions")
    hits, misses = rate("perf_redis_keyspace_hits_total"), rate("perf_redis_keyspace_misses_total")
    clients = gauge("perf_redis_clients_connected")
    return p.dashboard(
        "perf-exporter-redis",
        "perf-exporter / Redis",
        "Keyspace hit ratio, memory against maxmemory, evictions, namespaces and latency.",
        [
            (
                "Cache",
                [
                    p.graph("redis_hit_ratio"),
                    p.raw("Hits and misses", "ops", "target", with_kind(hits, misses, "miss")),
                    p.raw(
                        "Keys per namespace",
                        "short",
                        _NAMESPACE,
                        gauge("perf_redis_namespace_keys"),
                    ),
                    p.raw(
                        "Keys without TTL per namespace",
                        "short",
                        _NAMESPACE,
                        gauge("perf_redis_namespace_keys_without_ttl"),
                        description="Keys that never expire: the classic cache leak.",
                    ),
                ],
            ),
            (
                "Memory",
                [
                    p.graph("redis_memory_utilisation"),
                    p.graph("redis_evictions"),
                    p.raw("Memory used", "bytes", "target", gauge("perf_redis_memory_used_bytes")),
                    p.graph("redis_rejected_connections"),
                ],
            ),
            (
                "Latency",
                [
                    p.graph("redis_probe_p99"),
                    p.raw(
                        "Commands per second",
                        "ops",
                        "target, cmd",
                        top10(rate("perf_redis_command_calls_total")),
                    ),
                    p.graph("redis_command_p99"),
                    p.raw(
                        "Slowlog entries per second",
                        "ops",
                        "target, cmd",
                        top10(rate("perf_redis_slowlog_entries_total")),
                        description="Commands slower than slowlog-log-slower-than, by command "
                        "name (never arguments); the log's length is on the right.",
                    ),
                    p.raw("Slowlog length", "short", "target", gauge("perf_redis_slowlog_length")),
                    p.raw(
                        "COMMANDLOG large requests and replies per second (Valkey 8.1+)",
                        "ops",
                        "target, type, cmd",
                        top10(rate("perf_redis_commandlog_entries_total")),
                        description="Commands whose request or reply exceeded "
                        "commandlog-request/reply-larger-than; empty on Redis.",
                    ),
                    p.raw(
                        "COMMANDLOG length (Valkey 8.1+)",
                        "short",
                        "target, type",
                        gauge("perf_redis_commandlog_length"),
                    ),
                ],
            ),
            (
                "Clients and load",
                [
                    p.raw(
                        "Connected clients against maxclients",
                        "short",
                        "target",
                        with_kind(clients, gauge("perf_redis_clients_max"), "max"),
                    ),
                    p.raw(
                        "Commands processed per second",
                        "ops",
                        "target",
                        rate("perf_redis_commands_processed_total"),
                    ),
                ],
            ),
        ],
        headline=headline,
    )
