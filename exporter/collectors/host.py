"""System resources of the machine (or container) the daemon runs on, via psutil.

Sample output::

    perf_host_cpu_seconds_total{mode="user"} 5012.4
    perf_host_logical_cpus 2
    perf_host_load1 0.42
    perf_host_memory_total_bytes 2.5e+10
    perf_host_memory_available_bytes 2.2e+10
    perf_host_filesystem_size_bytes{device="/dev/vda",fstype="ext4",mountpoint="/"} 2.7e+11
    perf_host_filesystem_avail_bytes{device="/dev/vda",fstype="ext4",mountpoint="/"} 8.5e+10
    perf_host_disk_read_bytes_total{device="vda"} 1.2e+09
    perf_host_network_receive_bytes_total{interface="eth0"} 5.3e+08
    perf_host_cgroup_memory_max_bytes 4.294967296e+09
    perf_host_pressure_memory_stalled_seconds_total{scope="host"} 1.52
    perf_host_pressure_io_waiting_seconds_total{scope="cgroup"} 40.1

The cgroup series come from the daemon's own cgroup, v2 or v1 (host_cgroup_v1.py: same names);
pressure stall information from /proc/pressure and the v2 cgroup's own *.pressure files.

Filesystem calls (statvfs) can hang on a dead network mount, so each runs in a worker thread
under ``filesystem_timeout``; a mount that does not answer is reported through
``perf_host_filesystem_device_error`` and is not asked again until its last call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.collectors.base import Collected, Collector
from exporter.collectors.host_cgroup_v1 import cgroup_v1_families, v1_directories
from exporter.collectors.host_pressure import PROC_PRESSURE, pressure_families, pressure_sources
from exporter.config import HostSettings, TargetConfig, Timing

CGROUP_ROOT = Path("/sys/fs/cgroup")

#: psutil disk counter field -> (metric suffix, help, scale to base units)
_DISK_FIELDS: tuple[tuple[str, str, str, float], ...] = (
    ("read_count", "disk_reads_completed", "Reads completed.", 1.0),
    ("write_count", "disk_writes_completed", "Writes completed.", 1.0),
    ("read_bytes", "disk_read_bytes", "Bytes read.", 1.0),
    ("write_bytes", "disk_written_bytes", "Bytes written.", 1.0),
    ("read_time", "disk_read_time_seconds", "Time spent reading.", 0.001),
    ("write_time", "disk_write_time_seconds", "Time spent writing.", 0.001),
    ("busy_time", "disk_io_time_seconds", "Time the device was busy with I/O.", 0.001),
)

#: psutil network counter field -> (metric suffix, help)
_NET_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("bytes_recv", "network_receive_bytes", "Bytes received."),
    ("bytes_sent", "network_transmit_bytes", "Bytes sent."),
    ("packets_recv", "network_receive_packets", "Packets received."),
    ("packets_sent", "network_transmit_packets", "Packets sent."),
    ("errin", "network_receive_errors", "Receive errors."),
    ("errout", "network_transmit_errors", "Transmit errors."),
    ("dropin", "network_receive_drop", "Received packets dropped."),
    ("dropout", "network_transmit_drop", "Packets to send dropped."),
)


def _own_cgroup() -> Path | None:
    """The cgroup v2 directory of this process, or None on cgroup v1 / no cgroup fs."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            path = CGROUP_ROOT / line[3:].lstrip("/")
            if (path / "memory.current").exists() or (CGROUP_ROOT / "cgroup.controllers").exists():
                return path if path.exists() else CGROUP_ROOT
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


#: cgroup v2 values: (file, key in a file of "key value" lines or None for a file holding one
#: number, metric, help, divisor to base units). ``cpu.max`` is "quota period", in cores.
_CGROUP_VALUES: tuple[tuple[str, str | None, str, str, float], ...] = (
    (
        "memory.current",
        None,
        "perf_host_cgroup_memory_current_bytes",
        "Memory charged to this process's cgroup (v2 memory.current).",
        1.0,
    ),
    (
        "memory.max",
        None,
        "perf_host_cgroup_memory_max_bytes",
        "Memory limit of this process's cgroup (v2 memory.max); absent when unlimited.",
        1.0,
    ),
    (
        "cpu.max",
        None,
        "perf_host_cgroup_cpu_quota_cores",
        "CPU quota of this process's cgroup in cores (cpu.max); absent when unlimited.",
        1.0,
    ),
    (
        "cpu.stat",
        "usage_usec",
        "perf_host_cgroup_cpu_usage_seconds",
        "CPU time used by this process's cgroup (cpu.stat usage_usec).",
        1e6,
    ),
    (
        "cpu.stat",
        "throttled_usec",
        "perf_host_cgroup_cpu_throttled_seconds",
        "Time this process's cgroup was throttled by its CPU quota.",
        1e6,
    ),
    (
        "cpu.stat",
        "nr_throttled",
        "perf_host_cgroup_cpu_throttled_periods",
        "CPU quota periods in which this process's cgroup was throttled (cpu.stat nr_throttled).",
        1.0,
    ),
    (
        "memory.events",
        "oom_kill",
        "perf_host_cgroup_memory_oom_kills",
        "Processes of this cgroup killed by the OOM killer.",
        1.0,
    ),
)


def _cgroup_number(file: str, text: str, key: str | None) -> float | None:
    """The number a cgroup file holds (None for ``max``, no limit, or anything unexpected)."""
    if key is not None:
        fields = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
        text = fields.get(key, "")
    if file == "cpu.max":
        quota, _, period = text.partition(" ")
        if quota.isdigit() and period.isdigit() and int(period) > 0:
            return int(quota) / int(period)
        return None
    return float(text) if text.isdigit() else None


def cgroup_families(directory: Path) -> list[Metric]:
    """Limits and usage of a cgroup v2 directory; a limit of ``max`` is left out (no limit)."""
    out: list[Metric] = []
    texts: dict[str, str | None] = {}
    for file, key, metric, help_text, divisor in _CGROUP_VALUES:
        if file not in texts:
            texts[file] = _read(directory / file)
        text = texts[file]
        number = None if text is None else _cgroup_number(file, text, key)
        if number is None:
            continue
        # gauges are the files of one value; counters are totals inside a "key value" file
        kind = GaugeMetricFamily if key is None else CounterMetricFamily
        out.append(kind(metric, help_text, value=number / divisor))
    return out


def _statvfs_in_daemon_thread(
    loop: asyncio.AbstractEventLoop, mount: str
) -> asyncio.Future[os.statvfs_result]:
    """``os.statvfs(mount)`` in a daemon thread.

    Not a ThreadPoolExecutor: the interpreter joins executor threads at exit, so one statvfs
    stuck on a hung network mount would keep the daemon from ever exiting on SIGTERM.
    """
    future: asyncio.Future[os.statvfs_result] = loop.create_future()

    def resolve(result: os.statvfs_result) -> None:
        if not future.done():
            future.set_result(result)

    def fail(error: OSError) -> None:
        if not future.done():
            future.set_exception(error)

    def run() -> None:
        # RuntimeError: the loop is closed, the daemon is exiting and nobody waits any more
        with contextlib.suppress(RuntimeError):
            try:
                result = os.statvfs(mount)
            except OSError as exc:
                loop.call_soon_threadsafe(fail, exc)
            else:
                loop.call_soon_threadsafe(resolve, result)

    threading.Thread(target=run, name="perf-statvfs", daemon=True).start()
    return future


class HostCollector(Collector[TargetConfig, HostSettings]):
    """CPU, load, memory, swap, filesystems, disks, network, fds, cgroup limits, pressure."""

    name = "host"
    target_label = False

    def __init__(
        self, target: TargetConfig, settings: HostSettings, timing: Timing | None = None
    ) -> None:
        super().__init__(target, settings, timing)
        self._mount_include = re.compile(settings.mountpoint_include)
        self._mount_exclude = re.compile(settings.mountpoint_exclude)
        self._fstype_exclude = re.compile(settings.fstype_exclude)
        self._disk_exclude = re.compile(settings.disk_exclude)
        self._net_exclude = re.compile(settings.network_exclude)
        # statvfs of a dead mount blocks forever: one daemon thread per call, and no second call
        # to a mount whose first has not returned (so at most one stuck thread per dead mount)
        self._pending: dict[str, asyncio.Future[os.statvfs_result]] = {}
        self._cgroup = _own_cgroup()
        # on a cgroup v1 host (no v2 directory of our own) the v1 hierarchies give the same names
        self._cgroup_v1: dict[str, Path] = {}
        if self._cgroup is None:
            own = _read(Path("/proc/self/cgroup"))
            self._cgroup_v1 = v1_directories(own or "", CGROUP_ROOT)
        self._pressure = pressure_sources(PROC_PRESSURE, self._cgroup)
        self._last_cpu: tuple[float, float] | None = None

    async def collect(self) -> Collected:
        families: list[Metric] = []
        facts: dict[str, Any] = {}
        families += self._cpu(facts)
        families += self._memory(facts)
        families += await self._filesystems(facts)
        families += self._disks()
        families += self._network()
        families += self._misc()
        if self._cgroup is not None:
            families += cgroup_families(self._cgroup)
        families += cgroup_v1_families(self._cgroup_v1)
        families += pressure_families(self._pressure)
        return Collected(families, facts)

    async def close(self) -> None:
        # a thread stuck on a dead mount is a daemon thread: it cannot hold up the exit
        return None

    def _cpu(self, facts: dict[str, Any]) -> list[Metric]:
        times = psutil.cpu_times()
        cpu = CounterMetricFamily(
            "perf_host_cpu_seconds",
            "CPU time spent in each mode, summed over all CPUs.",
            labels=["mode"],
        )
        for mode, value in times._asdict().items():
            cpu.add_metric([mode], value)
        count = psutil.cpu_count() or 1
        busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
        if self._last_cpu is not None:
            d_busy, d_total = busy - self._last_cpu[0], sum(times) - self._last_cpu[1]
            if d_total > 0:
                facts["cpu_utilisation"] = max(0.0, min(1.0, d_busy / d_total))
        self._last_cpu = (busy, sum(times))
        load1, load5, load15 = os.getloadavg()
        facts["load1_per_cpu"] = load1 / count
        return [
            cpu,
            GaugeMetricFamily("perf_host_logical_cpus", "Logical CPUs.", value=count),
            GaugeMetricFamily("perf_host_load1", "1-minute load average.", value=load1),
            GaugeMetricFamily("perf_host_load5", "5-minute load average.", value=load5),
            GaugeMetricFamily("perf_host_load15", "15-minute load average.", value=load15),
        ]

    def _memory(self, facts: dict[str, Any]) -> list[Metric]:
        mem = psutil.virtual_memory()
        swap = psutil.swap_memory()
        if mem.total:
            facts["memory_utilisation"] = 1.0 - mem.available / mem.total
        return [
            GaugeMetricFamily("perf_host_memory_total_bytes", "Physical memory.", value=mem.total),
            GaugeMetricFamily(
                "perf_host_memory_available_bytes",
                "Memory available to new work without swapping (MemAvailable).",
                value=mem.available,
            ),
            GaugeMetricFamily(
                "perf_host_memory_used_bytes",
                "Memory in use (total - available).",
                value=mem.total - mem.available,
            ),
            GaugeMetricFamily(
                "perf_host_memory_cached_bytes",
                "Page cache and reclaimable buffers.",
                value=getattr(mem, "cached", 0) + getattr(mem, "buffers", 0),
            ),
            GaugeMetricFamily("perf_host_swap_total_bytes", "Swap space.", value=swap.total),
            GaugeMetricFamily("perf_host_swap_used_bytes", "Swap space in use.", value=swap.used),
            CounterMetricFamily("perf_host_swap_in_bytes", "Bytes swapped in.", value=swap.sin),
            CounterMetricFamily("perf_host_swap_out_bytes", "Bytes swapped out.", value=swap.sout),
        ]

    def _wanted_partitions(self) -> list[Any]:
        seen: set[str] = set()
        out = []
        for part in psutil.disk_partitions(all=True):
            mount = part.mountpoint
            if (
                mount in seen
                or not self._mount_include.search(mount)
                or self._mount_exclude.search(mount)
                or self._fstype_exclude.search(part.fstype)
            ):
                continue
            seen.add(mount)
            out.append(part)
        return out

    def _forget(self, mount: str, _future: object) -> None:
        self._pending.pop(mount, None)

    async def _statvfs(self, mount: str) -> os.statvfs_result | None:
        loop = asyncio.get_running_loop()
        future = self._pending.get(mount)
        if future is None:
            future = _statvfs_in_daemon_thread(loop, mount)
            self._pending[mount] = future
            future.add_done_callback(partial(self._forget, mount))
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.settings.filesystem_timeout)
        except (TimeoutError, OSError):
            return None

    async def _filesystems(self, facts: dict[str, Any]) -> list[Metric]:
        labels = ["mountpoint", "device", "fstype"]
        size = GaugeMetricFamily(
            "perf_host_filesystem_size_bytes", "Filesystem size.", labels=labels
        )
        free = GaugeMetricFamily(
            "perf_host_filesystem_free_bytes",
            "Free bytes, including root-reserved.",
            labels=labels,
        )
        avail = GaugeMetricFamily(
            "perf_host_filesystem_avail_bytes",
            "Bytes available to unprivileged users.",
            labels=labels,
        )
        files = GaugeMetricFamily(
            "perf_host_filesystem_files", "Inodes in the filesystem.", labels=labels
        )
        files_free = GaugeMetricFamily(
            "perf_host_filesystem_files_free", "Free inodes.", labels=labels
        )
        error = GaugeMetricFamily(
            "perf_host_filesystem_device_error",
            "1 if the filesystem could not be read (error or no answer within the timeout).",
            labels=labels,
        )
        parts = self._wanted_partitions()
        results = await asyncio.gather(*(self._statvfs(p.mountpoint) for p in parts))
        worst = 0.0
        for part, st in zip(parts, results, strict=True):
            values = [part.mountpoint, part.device, part.fstype]
            if st is None:
                error.add_metric(values, 1.0)
                continue
            error.add_metric(values, 0.0)
            size_b = st.f_blocks * st.f_frsize
            size.add_metric(values, size_b)
            free.add_metric(values, st.f_bfree * st.f_frsize)
            avail.add_metric(values, st.f_bavail * st.f_frsize)
            files.add_metric(values, st.f_files)
            files_free.add_metric(values, st.f_ffree)
            usable = (st.f_blocks - st.f_bfree + st.f_bavail) * st.f_frsize
            if usable > 0:
                worst = max(worst, 1.0 - st.f_bavail * st.f_frsize / usable)
        facts["filesystem_utilisation_max"] = worst
        return [size, free, avail, files, files_free, error]

    def _disks(self) -> list[Metric]:
        counters = psutil.disk_io_counters(perdisk=True, nowrap=True) or {}
        families: list[Metric] = []
        for attr, suffix, help_text, scale in _DISK_FIELDS:
            fam = CounterMetricFamily(f"perf_host_{suffix}", help_text, labels=["device"])
            for device, stats in sorted(counters.items()):
                if self._disk_exclude.search(device):
                    continue
                fam.add_metric([device], getattr(stats, attr, 0) * scale)
            families.append(fam)
        return families

    def _network(self) -> list[Metric]:
        counters = psutil.net_io_counters(pernic=True, nowrap=True) or {}
        families: list[Metric] = []
        for attr, suffix, help_text in _NET_FIELDS:
            fam = CounterMetricFamily(f"perf_host_{suffix}", help_text, labels=["interface"])
            for nic, stats in sorted(counters.items()):
                if self._net_exclude.search(nic):
                    continue
                fam.add_metric([nic], getattr(stats, attr))
            families.append(fam)
        return families

    def _misc(self) -> list[Metric]:
        out: list[Metric] = [
            GaugeMetricFamily(
                "perf_host_boot_time_seconds",
                "Unix time the host booted.",
                value=psutil.boot_time(),
            ),
            GaugeMetricFamily(
                "perf_host_processes", "Processes on the host.", value=len(psutil.pids())
            ),
            GaugeMetricFamily(
                "perf_host_time_seconds", "The host's clock, as Unix time.", value=time.time()
            ),
        ]
        file_nr = _read(Path("/proc/sys/fs/file-nr"))
        if file_nr is not None:
            allocated, _, maximum = file_nr.split()
            out.append(
                GaugeMetricFamily(
                    "perf_host_open_fds",
                    "File handles allocated on the host.",
                    value=float(allocated),
                )
            )
            out.append(
                GaugeMetricFamily(
                    "perf_host_max_fds", "Maximum file handles on the host.", value=float(maximum)
                )
            )
        return out
