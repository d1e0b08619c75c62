"""The host dashboard: CPU, memory (host and container), pressure, filesystems, disks, network."""

from __future__ import annotations

from typing import Any

from exporter.mixin.dashboards.panels import Panels, gauge, over, rate, with_kind
from exporter.mixin.thresholds import Thresholds

_DEVICE = "instance, device"


def host(t: Thresholds) -> dict[str, Any]:
    p = Panels(t, remote=False)
    headline = (
        "host_cpu_utilisation",
        "host_memory_utilisation",
        "host_cgroup_memory_utilisation",
        "host_filesystem_avail_ratio",
    )
    load = over(gauge("perf_host_load1", "max"), gauge("perf_host_logical_cpus", "max"))
    disk = with_kind(
        rate("perf_host_disk_read_bytes_total"),
        rate("perf_host_disk_written_bytes_total"),
        "written",
    )
    network = with_kind(
        rate("perf_host_network_receive_bytes_total"),
        rate("perf_host_network_transmit_bytes_total"),
        "transmit",
    )
    waiting = with_kind(
        with_kind(
            rate("perf_host_pressure_cpu_waiting_seconds_total"),
            rate("perf_host_pressure_memory_waiting_seconds_total"),
            "memory",
        ),
        rate("perf_host_pressure_io_waiting_seconds_total"),
        "io",
    )
    return p.dashboard(
        "perf-exporter-host",
        "perf-exporter / Host",
        "CPU, memory (host and container), filesystems of the machine the exporter runs on.",
        [
            (
                "CPU and memory",
                [
                    p.graph("host_cpu_utilisation"),
                    p.raw(
                        "CPU by mode",
                        "s",
                        "instance, mode",
                        rate("perf_host_cpu_seconds_total"),
                        description="CPU seconds per second by mode (1 = one CPU fully busy).",
                    ),
                    p.raw("Load average (1m) per CPU", "short", "instance", load),
                    p.graph("host_memory_utilisation"),
                    p.graph("host_cgroup_memory_utilisation"),
                    p.raw(
                        "Memory available",
                        "bytes",
                        "instance",
                        gauge("perf_host_memory_available_bytes", "max"),
                    ),
                ],
            ),
            (
                "Pressure (out of room)",
                [
                    p.graph("host_memory_pressure"),
                    p.graph("host_io_pressure"),
                    p.raw(
                        "Some task waiting, share of time",
                        "percentunit",
                        "instance, scope",
                        waiting,
                        description="PSI some: at least one task waited for a CPU (no kind), "
                        "for memory or for I/O; scope is the host or the exporter's cgroup.",
                    ),
                    p.raw(
                        "Container CPU throttled periods per second",
                        "ops",
                        "instance",
                        rate("perf_host_cgroup_cpu_throttled_periods_total"),
                        description="Quota periods in which the cgroup ran out of its CPU quota.",
                    ),
                ],
            ),
            (
                "Filesystems",
                [p.graph("host_filesystem_avail_ratio"), p.graph("host_filesystem_fill_hours")],
            ),
            (
                "Disks and network",
                [
                    p.raw(
                        "Disk busy time",
                        "percentunit",
                        _DEVICE,
                        rate("perf_host_disk_io_time_seconds_total"),
                        8,
                        "Share of time each disk had I/O in flight.",
                    ),
                    p.raw("Disk throughput", "Bps", _DEVICE, disk, 8),
                    p.raw("Network throughput", "Bps", "instance, interface", network, 8),
                ],
            ),
        ],
        headline=headline,
    )
