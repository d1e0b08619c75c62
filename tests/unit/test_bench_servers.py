"""The fleet point reads the CPU of the bench's servers beside the daemon's (bench/process.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.process import cpu_by_command
from bench.report import fleet_lines
from tests.unit.test_bench_speed import _fleet

# a process that names itself (prctl PR_SET_NAME), burns half a second of CPU, then waits
NAME = f"pb-burn-{os.getpid()}"[:15]  # a name of this run's own, at most 15 characters
BURN = f"""
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, {NAME.encode()!r}, 0, 0, 0)
end = time.process_time() + 0.5
while time.process_time() < end:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""


def test_cpu_by_command_sums_the_named_live_processes() -> None:
    before = cpu_by_command([NAME, "no-such-process"])
    assert before == {NAME: 0.0, "no-such-process": 0.0}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BURN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "burnt\n"
        after = cpu_by_command([NAME, "no-such-process"])
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)
    # both processes' half second, each read from its own /proc/<pid>/stat
    assert 0.9 <= after[NAME] < 5.0
    assert after["no-such-process"] == 0.0
    time.sleep(0.05)
    assert cpu_by_command([NAME]) == {NAME: 0.0}


def _servers_cell(lines: list[str]) -> str:
    row = next(line for line in lines if line.startswith("| 4 (1 + 3)"))
    return row.split("|")[7].strip()


def test_the_fleet_table_shows_the_servers_cpu() -> None:
    record = _fleet(servers_cpu_core_pct={"postgres": 35.7, "redis-server": 2.1})
    lines = fleet_lines([record])
    assert _servers_cell(lines) == "35.7 / 2.1"
    assert "servers % core quiet (PostgreSQL / Redis)" in lines[3]
    # a record from before the servers were read
    assert _servers_cell(fleet_lines([_fleet()])) == "-"
