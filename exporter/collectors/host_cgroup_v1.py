"""cgroup v1 limits and usage under the metric names of cgroup v2.

On a v1 host each controller is its own hierarchy (``/sys/fs/cgroup/memory/<path>``,
``/sys/fs/cgroup/cpu,cpuacct/<path>``) and ``/proc/self/cgroup`` names the daemon's path in
each. :data:`V1_VALUES` maps each v1 file to the v2 metric it stands for, so dashboards,
alerts and the container memory signal work the same on both. "No limit" reads as no series,
like v2's ``max``: v1 writes it as ``memory.limit_in_bytes`` near 2**63 and
``cpu.cfs_quota_us`` -1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

#: A v1 memory limit at or above this is the kernel's "unlimited" (PAGE_COUNTER_MAX pages,
#: 9223372036854771712 on 4 KiB pages); no machine has 2**60 bytes of memory.
V1_NO_LIMIT = 2**60


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _number(text: str) -> float | None:
    return float(text) if text.lstrip("-").isdigit() else None


def _keyed(key: str) -> Callable[[Path], float | None]:
    """The value of ``key`` in a file of ``key value`` lines."""

    def read(path: Path) -> float | None:
        text = _read(path)
        for line in (text or "").splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return _number(value)
        return None

    return read


def _plain(path: Path) -> float | None:
    text = _read(path)
    return None if text is None else _number(text)


def _memory_limit(path: Path) -> float | None:
    value = _plain(path)
    return None if value is None or value >= V1_NO_LIMIT else value


def _cpu_quota_cores(path: Path) -> float | None:
    quota, period = _plain(path), _plain(path.with_name("cpu.cfs_period_us"))
    if quota is None or period is None or quota < 0 or period <= 0:
        return None  # -1: no quota
    return quota / period


@dataclass(frozen=True)
class V1Value:
    """One v1 file (or one key in it) read into the v2 metric it stands for."""

    controller: str
    file: str
    read: Callable[[Path], float | None]
    metric: str
    help: str
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily]
    scale: float = 1.0


V1_VALUES: tuple[V1Value, ...] = (
    V1Value(
        "memory",
        "memory.usage_in_bytes",
        _plain,
        "perf_host_cgroup_memory_current_bytes",
        "Memory charged to this process's cgroup (v2 memory.current, v1 memory.usage_in_bytes).",
        GaugeMetricFamily,
    ),
    V1Value(
        "memory",
        "memory.limit_in_bytes",
        _memory_limit,
        "perf_host_cgroup_memory_max_bytes",
        "Memory limit of this process's cgroup (v2 memory.max, v1 memory.limit_in_bytes); "
        "absent when unlimited.",
        GaugeMetricFamily,
    ),
    V1Value(
        "cpu",
        "cpu.cfs_quota_us",
        _cpu_quota_cores,
        "perf_host_cgroup_cpu_quota_cores",
        "CPU quota of this process's cgroup in cores (v2 cpu.max, v1 cpu.cfs_quota_us over "
        "cpu.cfs_period_us); absent when unlimited.",
        GaugeMetricFamily,
    ),
    V1Value(
        "cpuacct",
        "cpuacct.usage",
        _plain,
        "perf_host_cgroup_cpu_usage_seconds",
        "CPU time used by this process's cgroup (v2 cpu.stat usage_usec, v1 cpuacct.usage).",
        CounterMetricFamily,
        1e-9,
    ),
    V1Value(
        "cpu",
        "cpu.stat",
        _keyed("throttled_time"),
        "perf_host_cgroup_cpu_throttled_seconds",
        "Time this process's cgroup was throttled by its CPU quota.",
        CounterMetricFamily,
        1e-9,
    ),
    V1Value(
        "cpu",
        "cpu.stat",
        _keyed("nr_throttled"),
        "perf_host_cgroup_cpu_throttled_periods",
        "CPU quota periods in which this process's cgroup was throttled (cpu.stat nr_throttled).",
        CounterMetricFamily,
    ),
    V1Value(
        "memory",
        "memory.oom_control",
        _keyed("oom_kill"),
        "perf_host_cgroup_memory_oom_kills",
        "Processes of this cgroup killed by the OOM killer.",
        CounterMetricFamily,
    ),
)


def v1_directories(proc_self_cgroup: str, root: Path) -> dict[str, Path]:
    """controller -> the daemon's directory in that v1 hierarchy under ``root``.

    In a container the path in /proc/self/cgroup is the host's, while the container sees its
    own cgroup as the hierarchy's root: then the root is the daemon's directory.
    """
    out: dict[str, Path] = {}
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[1] or parts[1].startswith("name="):
            continue
        controllers, path = parts[1].split(","), parts[2].lstrip("/")
        for controller in controllers:
            for mount in (root / controller, root / parts[1]):
                if (mount / path).is_dir():
                    out[controller] = mount / path
                    break
                if mount.is_dir():
                    out[controller] = mount
                    break
    return out


def cgroup_v1_families(directories: Mapping[str, Path]) -> list[Metric]:
    """The v2-named families a v1 cgroup gives; files that are absent or unlimited are left out."""
    out: list[Metric] = []
    for row in V1_VALUES:
        directory = directories.get(row.controller)
        if directory is None:
            continue
        value = row.read(directory / row.file)
        if value is not None:
            out.append(row.kind(row.metric, row.help, value=value * row.scale))
    return out
