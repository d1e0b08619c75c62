"""The host dashboard: CPU, memory (host and container), filesystems, disks, network."""

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
    with_kind,
)
from exporter.mixin.thresholds import Thresholds


def host(t: Thresholds) -> dict[str, Any]:
    rows: list[Row] = [
        summary_row(
            t,
            (
                "host_cpu_utilisation",
                "host_memory_utilisation",
                "host_cgroup_memory_utilisation",
                "host_filesystem_avail_ratio",
            ),
            6,
        ),
        (
            "CPU and memory",
            [
                signal_graph(t, "host_cpu_utilisation"),
                raw_graph(
                    Graph(
                        "CPU by mode",
                        lambda q: sum_by("instance, mode", q.rate("perf_host_cpu_seconds_total")),
                        "s",
                        "{{instance}} {{mode}}",
                        remote=False,
                        description="CPU seconds per second by mode (1 = one CPU fully busy).",
                    )
                ),
                raw_graph(
                    Graph(
                        "Load average (1m) per CPU",
                        lambda q: (
                            f"max by (instance) ({q.m('perf_host_load1')}) / "
                            f"max by (instance) ({q.m('perf_host_logical_cpus')})"
                        ),
                        "short",
                        "{{instance}}",
                        remote=False,
                    )
                ),
                signal_graph(t, "host_memory_utilisation"),
                signal_graph(t, "host_cgroup_memory_utilisation"),
                raw_graph(
                    Graph(
                        "Memory available",
                        lambda q: f"max by (instance) ({q.m('perf_host_memory_available_bytes')})",
                        "bytes",
                        "{{instance}}",
                        remote=False,
                    )
                ),
            ],
        ),
        (
            "Filesystems",
            [
                signal_graph(t, "host_filesystem_avail_ratio"),
                signal_graph(t, "host_filesystem_fill_hours"),
            ],
        ),
    ]
    rows.append(
        (
            "Disks and network",
            [
                raw_graph(
                    Graph(
                        "Disk busy time",
                        lambda q: sum_by(
                            "instance, device", q.rate("perf_host_disk_io_time_seconds_total")
                        ),
                        "percentunit",
                        "{{instance}} {{device}}",
                        remote=False,
                        description="Share of time each disk had I/O in flight.",
                    ),
                    8,
                ),
                raw_graph(
                    Graph(
                        "Disk throughput",
                        lambda q: with_kind(
                            sum_by("instance, device", q.rate("perf_host_disk_read_bytes_total")),
                            sum_by(
                                "instance, device", q.rate("perf_host_disk_written_bytes_total")
                            ),
                            "written",
                        ),
                        "Bps",
                        "{{instance}} {{device}} {{kind}}",
                        remote=False,
                    ),
                    8,
                ),
                raw_graph(
                    Graph(
                        "Network throughput",
                        lambda q: with_kind(
                            sum_by(
                                "instance, interface",
                                q.rate("perf_host_network_receive_bytes_total"),
                            ),
                            sum_by(
                                "instance, interface",
                                q.rate("perf_host_network_transmit_bytes_total"),
                            ),
                            "transmit",
                        ),
                        "Bps",
                        "{{instance}} {{interface}} {{kind}}",
                        remote=False,
                    ),
                    8,
                ),
            ],
        )
    )
    return dashboard(
        t,
        "perf-exporter-host",
        "perf-exporter / Host",
        "CPU, memory (host and container), filesystems of the machine the exporter runs on.",
        rows,
        remote=False,
    )
