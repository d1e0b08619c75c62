"""The host collector against the real machine."""

from __future__ import annotations

import os

import pytest

from exporter.collectors.host import HostCollector, cgroup_families
from exporter.config import HostSettings, TargetConfig

pytestmark = pytest.mark.integration


def values(families, name: str) -> dict[tuple[tuple[str, str], ...], float]:  # type: ignore[no-untyped-def]
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in families
        for s in f.samples
        if s.name == name
    }


def meminfo_total() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return float(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


async def test_values_are_plausible_and_counters_monotonic() -> None:
    collector = HostCollector(TargetConfig(name="local"), HostSettings())
    try:
        first = (await collector.collect()).families
        burn = sum(i * i for i in range(300_000))  # some CPU time between the cycles
        assert burn > 0
        second = await collector.collect()
    finally:
        await collector.close()
    fams = second.families
    assert values(fams, "perf_host_memory_total_bytes")[()] == meminfo_total()
    avail = values(fams, "perf_host_memory_available_bytes")[()]
    assert 0 < avail <= meminfo_total()
    assert values(fams, "perf_host_logical_cpus")[()] == os.cpu_count()
    assert values(fams, "perf_host_load1")[()] == pytest.approx(os.getloadavg()[0], abs=1.0)
    before = values(first, "perf_host_cpu_seconds_total")
    after = values(fams, "perf_host_cpu_seconds_total")
    assert set(before) == set(after) and (("mode", "user"),) in after
    assert all(after[k] >= before[k] for k in before)
    assert sum(after.values()) > sum(before.values())
    sizes = values(fams, "perf_host_filesystem_size_bytes")
    root = [k for k in sizes if ("mountpoint", "/") in k]
    assert root, f"root filesystem missing from {list(sizes)}"
    st = os.statvfs("/")
    assert sizes[root[0]] == st.f_blocks * st.f_frsize
    assert not any(dict(k)["mountpoint"].startswith("/proc") for k in sizes)
    assert 0.0 <= second.facts["cpu_utilisation"] <= 1.0
    assert 0.0 < second.facts["memory_utilisation"] < 1.0


async def test_hung_filesystem_is_reported_not_waited_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    collector = HostCollector(TargetConfig(name="local"), HostSettings(filesystem_timeout=0.2))
    import threading

    gate = threading.Event()
    real = os.statvfs

    def slow_statvfs(path: str) -> os.statvfs_result:
        if path == "/":
            gate.wait(5)
        return real(path)

    os.statvfs = slow_statvfs  # type: ignore[assignment]
    try:
        result = await collector.collect()
    finally:
        os.statvfs = real
        gate.set()
        await collector.close()
    errors = values(result.families, "perf_host_filesystem_device_error")
    root = [v for k, v in errors.items() if ("mountpoint", "/") in k]
    assert root == [1.0]
    assert not [
        k
        for k in values(result.families, "perf_host_filesystem_size_bytes")
        if ("mountpoint", "/") in k
    ]


def test_cgroup_limits_are_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "memory.current").write_text("1048576\n")
    (tmp_path / "memory.max").write_text("4194304\n")
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 2500000\nthrottled_usec 500000\n")
    (tmp_path / "memory.events").write_text("oom 1\noom_kill 2\n")
    fams = cgroup_families(tmp_path)
    assert values(fams, "perf_host_cgroup_memory_max_bytes")[()] == 4194304
    assert values(fams, "perf_host_cgroup_memory_current_bytes")[()] == 1048576
    assert values(fams, "perf_host_cgroup_cpu_quota_cores")[()] == 1.5
    assert values(fams, "perf_host_cgroup_cpu_usage_seconds_total")[()] == 2.5
    assert values(fams, "perf_host_cgroup_memory_oom_kills_total")[()] == 2
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "cpu.max").write_text("max 100000\n")
    names = {f.name for f in cgroup_families(tmp_path)}
    assert "perf_host_cgroup_memory_max_bytes" not in names
    assert "perf_host_cgroup_cpu_quota_cores" not in names
