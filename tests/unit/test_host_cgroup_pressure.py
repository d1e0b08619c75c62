"""cgroup v1 and v2 read under one set of names, and pressure stall information, from fixtures."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.metrics_core import Metric

from exporter.collectors.host import cgroup_families
from exporter.collectors.host_cgroup_v1 import cgroup_v1_families, v1_directories
from exporter.collectors.host_pressure import pressure_families, pressure_sources


def _values(families: list[Metric]) -> dict[str, float]:
    return {s.name: s.value for f in families for s in f.samples}


def _write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


PROC_SELF_CGROUP_V1 = """12:pids:/kubepods/pod1/c1
4:memory:/kubepods/pod1/c1
3:cpu,cpuacct:/kubepods/pod1/c1
1:name=systemd:/kubepods/pod1/c1
0::/
"""


def _v1_root(root: Path, *, limited: bool) -> Path:
    memory = root / "memory" / "kubepods/pod1/c1"
    cpu = root / "cpu,cpuacct" / "kubepods/pod1/c1"
    _write(
        memory,
        {
            "memory.usage_in_bytes": "1048576\n",
            "memory.limit_in_bytes": "4194304\n" if limited else "9223372036854771712\n",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        },
    )
    _write(
        cpu,
        {
            "cpu.cfs_quota_us": "150000\n" if limited else "-1\n",
            "cpu.cfs_period_us": "100000\n",
            "cpuacct.usage": "2500000000\n",
            "cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 500000000\n",
        },
    )
    return root


def test_v1_limits_read_under_the_v2_names(tmp_path: Path) -> None:
    root = _v1_root(tmp_path, limited=True)
    directories = v1_directories(PROC_SELF_CGROUP_V1, root)
    assert directories["memory"] == root / "memory/kubepods/pod1/c1"
    assert directories["cpuacct"] == root / "cpu,cpuacct/kubepods/pod1/c1"
    assert _values(cgroup_v1_families(directories)) == {
        "perf_host_cgroup_memory_current_bytes": 1048576,
        "perf_host_cgroup_memory_max_bytes": 4194304,
        "perf_host_cgroup_cpu_quota_cores": 1.5,
        "perf_host_cgroup_cpu_usage_seconds_total": 2.5,
        "perf_host_cgroup_cpu_throttled_seconds_total": 0.5,
        "perf_host_cgroup_cpu_throttled_periods_total": 4,
        "perf_host_cgroup_memory_oom_kills_total": 3,
    }


def test_v1_no_limit_reads_as_no_limit_like_v2_max(tmp_path: Path) -> None:
    root = _v1_root(tmp_path, limited=False)
    v1 = _values(cgroup_v1_families(v1_directories(PROC_SELF_CGROUP_V1, root)))
    _write(
        tmp_path / "v2",
        {
            "memory.current": "1048576\n",
            "memory.max": "max\n",
            "cpu.max": "max 100000\n",
            "cpu.stat": "usage_usec 2500000\nnr_throttled 4\nthrottled_usec 500000\n",
            "memory.events": "oom 1\noom_kill 3\n",
        },
    )
    v2 = _values(cgroup_families(tmp_path / "v2"))
    assert "perf_host_cgroup_memory_max_bytes" not in v1
    assert "perf_host_cgroup_cpu_quota_cores" not in v1
    # the same cgroup reads the same on both versions
    assert v1 == v2
    assert v1["perf_host_cgroup_memory_current_bytes"] == 1048576


def test_v1_inside_a_container_sees_its_cgroup_as_the_root(tmp_path: Path) -> None:
    # the container's /sys/fs/cgroup/memory is its own cgroup; the host path does not exist
    _write(tmp_path / "memory", {"memory.usage_in_bytes": "42\n"})
    directories = v1_directories(PROC_SELF_CGROUP_V1, tmp_path)
    assert directories == {"memory": tmp_path / "memory"}
    assert _values(cgroup_v1_families(directories)) == {"perf_host_cgroup_memory_current_bytes": 42}


PSI_MEMORY = """some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000
full avg10=0.00 avg60=0.00 avg300=0.00 total=250000
"""


def test_pressure_totals_of_host_and_cgroup_are_seconds(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    _write(
        proc,
        {
            "cpu": "some avg10=1.00 avg60=0.50 avg300=0.10 total=3000000\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            "memory": PSI_MEMORY,
            "io": "some avg10=0 avg60=0 avg300=0 total=7000000\nfull avg10=0 avg60=0 avg300=0 "
            "total=5000000\n",
        },
    )
    cgroup = tmp_path / "cgroup"
    _write(cgroup, {"memory.pressure": PSI_MEMORY.replace("250000", "125000")})
    families = pressure_families(pressure_sources(proc, cgroup))
    got = {(s.name, s.labels["scope"]): s.value for f in families for s in f.samples}
    assert got == {
        ("perf_host_pressure_cpu_waiting_seconds_total", "host"): 3.0,
        ("perf_host_pressure_memory_waiting_seconds_total", "host"): 1.5,
        ("perf_host_pressure_memory_stalled_seconds_total", "host"): 0.25,
        ("perf_host_pressure_io_waiting_seconds_total", "host"): 7.0,
        ("perf_host_pressure_io_stalled_seconds_total", "host"): 5.0,
        ("perf_host_pressure_memory_waiting_seconds_total", "cgroup"): 1.5,
        ("perf_host_pressure_memory_stalled_seconds_total", "cgroup"): 0.125,
    }


def test_no_pressure_files_no_pressure_series(tmp_path: Path) -> None:
    assert pressure_families(pressure_sources(tmp_path / "absent", None)) == []
