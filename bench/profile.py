"""Profile perf-exporter with many targets: ``python -m bench --profile [TARGETS]``.

Starts the bench's loaded PostgreSQL and Redis (the same workload as the comparison, or the
small one with ``--quick``), runs perf-exporter with TARGETS PostgreSQL + Redis targets at a
5 s interval, lets it settle for one interval and records it with py-spy (sampling, from
outside the process, so the numbers are the daemon's own). Writes to ``bench/results/tmp/``:
``profile-<n>.raw`` (collapsed stacks: open it in speedscope or feed it to flamegraph.pl) and
``profile-<n>.txt`` (the functions with the most busy samples, inclusive and self). Threads
waiting in epoll or on the worker queue are not counted as busy. This is how the summary
board's quadratic update was found (bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.exporters import perf_exporter_config, start_perf_exporter
from bench.workload import FULL, QUICK, load_postgres, load_redis
from tests.support.servers import PostgresServer, RedisServer, free_port

#: Leaf frames of threads that wait rather than work (py-spy counts some of them as busy).
IDLE_LEAVES = ("EpollSelector.select", "concurrent/futures/thread.py:81", "Condition.wait")
INTERVAL = 5.0


def py_spy() -> str | None:
    """The py-spy next to this interpreter (a dev dependency), or one on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def summarise(raw: Path, top: int = 30) -> str:
    """The busiest functions of a py-spy ``raw`` (collapsed stacks) file, as text."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not count.isdigit() or any(idle in frames[-1] for idle in IDLE_LEAVES):
            continue
        n = int(count)
        busy += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"busy samples: {busy}", "", "inclusive (share of busy samples):"]
    out += [f"  {n / busy:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    out += ["", "self:"]
    out += [f"  {n / busy:6.1%}  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(out) + "\n"


def main_profile(args: argparse.Namespace, out: Path) -> int:
    spy = py_spy()
    if spy is None:
        print("py-spy is not installed: run `make setup` (it is a dev dependency)")
        return 1
    targets, seconds = int(args.profile), float(args.profile_seconds)
    workload = QUICK if args.quick else FULL
    out.mkdir(parents=True, exist_ok=True)
    raw, text = out / f"profile-{targets}.raw", out / f"profile-{targets}.txt"
    workdir = Path(tempfile.mkdtemp(prefix="perf-profile-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        pg = PostgresServer(
            settings={"max_connections": str(2 * targets + 40), "pg_stat_statements.max": "10000"}
        )
        stack.callback(pg.close)
        redis_server = RedisServer()
        stack.callback(redis_server.close)
        load_postgres(pg.sql, pg.port, workload, workdir)
        load_redis(redis_server.url, workload)
        config = perf_exporter_config(
            free_port(), pg.port, redis_server.port, targets=targets, interval=INTERVAL
        )
        ours = start_perf_exporter(
            f"perf_exporter_x{targets}", config, workdir, ready_timeout=60 + targets * 0.5
        )
        stack.callback(ours.stop)
        time.sleep(INTERVAL)
        pid = str(ours.process.pid)
        # --gil: only the thread holding the interpreter lock, i.e. Python at work; without it
        # a thread waiting for a core (two cores, the servers and the daemon) counts as busy
        record = ["record", "--pid", pid, "--duration", str(int(seconds)), "--rate", "250", "--gil"]
        subprocess.run(
            [spy, *record, "--format", "raw", "--output", str(raw)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=seconds + 60,
        )
    text.write_text(
        f"perf-exporter with {targets} PostgreSQL + Redis targets at {INTERVAL:g} s, "
        f"{seconds:g} s of py-spy at 250 Hz\n\n" + summarise(raw)
    )
    print(text.read_text())
    print(f"stacks:  {raw}\nsummary: {text}")
    return 0
