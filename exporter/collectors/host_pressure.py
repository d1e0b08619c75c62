"""Pressure stall information: how long tasks waited for CPU, memory and I/O.

``/proc/pressure/{cpu,memory,io}`` (Linux 4.20+, ``psi=1``) and, on cgroup v2, the cgroup's own
``cpu.pressure``, ``memory.pressure`` and ``io.pressure`` hold lines like::

    some avg10=0.00 avg60=0.00 avg300=0.00 total=1234567
    full avg10=0.00 avg60=0.00 avg300=0.00 total=234567

``total`` is microseconds: ``some`` is time at least one task waited, ``full`` time all
non-idle tasks stalled at once. ``rate()`` of the seconds totals is the share of time lost;
utilisation can look fine while the work waits ("out of room" is pressure). The averages are
left out: Prometheus computes its own windows from the totals. The cpu ``full`` line is left
out too (the kernel fills it only for cgroups, and it means little).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

PROC_PRESSURE = Path("/proc/pressure")


class PressureMetric(NamedTuple):
    """One PSI line of one resource published as one counter."""

    resource: str
    line: str
    metric: str
    help: str


#: resource, line, metric (``_total`` added by the family), help
PRESSURE: tuple[PressureMetric, ...] = (
    PressureMetric(
        "cpu",
        "some",
        "perf_host_pressure_cpu_waiting_seconds",
        "Time at least one runnable task waited for a CPU (PSI cpu some).",
    ),
    PressureMetric(
        "memory",
        "some",
        "perf_host_pressure_memory_waiting_seconds",
        "Time at least one task stalled on memory: reclaim, swap-in, refaults (PSI memory some).",
    ),
    PressureMetric(
        "memory",
        "full",
        "perf_host_pressure_memory_stalled_seconds",
        "Time all non-idle tasks stalled on memory at once (PSI memory full).",
    ),
    PressureMetric(
        "io",
        "some",
        "perf_host_pressure_io_waiting_seconds",
        "Time at least one task waited for I/O (PSI io some).",
    ),
    PressureMetric(
        "io",
        "full",
        "perf_host_pressure_io_stalled_seconds",
        "Time all non-idle tasks waited for I/O at once (PSI io full).",
    ),
)


def parse_pressure(text: str) -> dict[str, float]:
    """``{"some": seconds, "full": seconds}`` of one pressure file's totals."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        for field in rest.split():
            key, _, value = field.partition("=")
            if key == "total" and value.isdigit():
                out[kind] = int(value) / 1e6
    return out


def pressure_families(sources: dict[str, dict[str, Path]]) -> list[Metric]:
    """PSI counters labelled by ``scope`` ("host", "cgroup"): scope -> resource -> file."""
    families = [CounterMetricFamily(p.metric, p.help, labels=["scope"]) for p in PRESSURE]
    for scope, files in sources.items():
        totals: dict[str, dict[str, float]] = {}
        for resource, path in files.items():
            try:
                totals[resource] = parse_pressure(path.read_text())
            except OSError:
                continue  # psi=0 on the kernel command line: the file exists but cannot be read
        for row, family in zip(PRESSURE, families, strict=True):
            value = totals.get(row.resource, {}).get(row.line)
            if value is not None:
                family.add_metric([scope], value)
    return [f for f in families if f.samples]


def pressure_sources(proc: Path, cgroup_v2: Path | None) -> dict[str, dict[str, Path]]:
    """The pressure files there are: the host's and, on cgroup v2, the daemon's cgroup's."""
    sources: dict[str, dict[str, Path]] = {}
    host = {r: proc / r for r in ("cpu", "memory", "io") if (proc / r).exists()}
    if host:
        sources["host"] = host
    if cgroup_v2 is not None:
        own = {
            r: cgroup_v2 / f"{r}.pressure"
            for r in ("cpu", "memory", "io")
            if (cgroup_v2 / f"{r}.pressure").exists()
        }
        if own:
            sources["cgroup"] = own
    return sources
