"""The host collector on this machine's real cgroup v1 hierarchy, against the files themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric

from exporter.collectors.host import CGROUP_ROOT, HostCollector
from exporter.config import HostSettings, TargetConfig

pytestmark = pytest.mark.integration


def _values(families: list[Metric]) -> dict[str, float]:
    return {s.name: s.value for f in families for s in f.samples if not s.labels}


def _own_v1(controller: str) -> Path:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            for mount in (CGROUP_ROOT / controller, CGROUP_ROOT / controllers):
                if (mount / path.lstrip("/")).is_dir():
                    return mount / path.lstrip("/")
    raise AssertionError(f"this machine runs cgroup v1: no {controller} hierarchy found")


async def test_v1_values_match_the_files_of_the_daemons_own_cgroup() -> None:
    memory, cpuacct, cpu = _own_v1("memory"), _own_v1("cpuacct"), _own_v1("cpu")
    usage_before = int((memory / "memory.usage_in_bytes").read_text())
    cpu_before = int((cpuacct / "cpuacct.usage").read_text()) / 1e9
    result = await HostCollector(TargetConfig(name="local"), HostSettings()).collect()
    usage_after = int((memory / "memory.usage_in_bytes").read_text())
    cpu_after = int((cpuacct / "cpuacct.usage").read_text()) / 1e9
    got = _values(result.families)

    low, high = sorted((usage_before, usage_after))
    assert 0.9 * low <= got["perf_host_cgroup_memory_current_bytes"] <= 1.1 * high
    # 1 ns of slack: nanoseconds times 1e-9 and divided by 1e9 may differ in the last bit
    assert cpu_before - 1e-9 <= got["perf_host_cgroup_cpu_usage_seconds_total"] <= cpu_after + 1e-9
    limit = int((memory / "memory.limit_in_bytes").read_text())
    if limit >= 2**60:  # unlimited, as here
        assert "perf_host_cgroup_memory_max_bytes" not in got
    else:
        assert got["perf_host_cgroup_memory_max_bytes"] == limit
    quota = int((cpu / "cpu.cfs_quota_us").read_text())
    period = int((cpu / "cpu.cfs_period_us").read_text())
    assert got.get("perf_host_cgroup_cpu_quota_cores") == (quota / period if quota > 0 else None)
    stat = dict(line.split() for line in (cpu / "cpu.stat").read_text().splitlines())
    assert got["perf_host_cgroup_cpu_throttled_periods_total"] == int(stat["nr_throttled"])
    oom = dict(line.split() for line in (memory / "memory.oom_control").read_text().splitlines())
    assert got["perf_host_cgroup_memory_oom_kills_total"] == int(oom["oom_kill"])


async def test_host_pressure_matches_proc_pressure() -> None:
    before = Path("/proc/pressure/io").read_text().split("\n")[1].split("total=")[1]
    result = await HostCollector(TargetConfig(name="local"), HostSettings()).collect()
    after = Path("/proc/pressure/io").read_text().split("\n")[1].split("total=")[1]
    got = {
        s.name: s.value for f in result.families for s in f.samples if s.labels == {"scope": "host"}
    }
    assert (
        int(before) / 1e6 <= got["perf_host_pressure_io_stalled_seconds_total"] <= int(after) / 1e6
    )
