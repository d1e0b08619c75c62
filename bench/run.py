"""Run the benchmark: ``python -m bench [--quick | --soak [SECONDS]] [--out DIR]``.

Run it from the repository root (it imports ``tests.support``). ``--soak`` runs the soak in
``bench/soak.py`` instead.

Starts its own PostgreSQL 15 (pg_stat_statements), Redis 7 and a PgBouncer, all on 127.0.0.1
free ports; loads them; starts perf-exporter and the Debian reference exporters side by side;
measures each; runs the scaling series; writes ``<out>/<run id>.jsonl``, ``<out>/latest.md``
and ``<out>/latest.png``.
Everything it started is stopped in ``finally``, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from bench import profile, report, soak
from bench.exporters import (
    REMOTE_COLLECTORS,
    REPO,
    Exporter,
    perf_exporter_config,
    start_node_exporter,
    start_perf_exporter,
    start_postgres_exporter,
    start_redis_exporter,
)
from bench.fleet import FLEET_TARGETS, measure_fleet, split
from bench.measure import FULL_PLAN, QUICK_PLAN, Servers, measure_exporter
from bench.multitarget import MULTI_TARGETS, QUICK_MULTI, measure_multitarget
from bench.scaling import PRODUCTION_INTERVAL, measure_targets
from bench.scrape import wrk_cpu
from bench.server_load import RedisCommandCounter
from bench.workload import FULL, QUICK, load_postgres, load_redis
from tests.support.pgbouncer_server import STATS_PASSWORD, STATS_USER, PgBouncerServer
from tests.support.servers import PostgresServer, RedisServer, free_port

RESULTS = REPO / "bench" / "results"
FULL_SCALING = (1, 10, 50, 100)
QUICK_SCALING = (1, 3)
#: perf-exporter runs at its default 15 s interval in the comparison; wrk spans one interval.
OURS_WRK_SECONDS = 15


def _sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


class TimeLimitExceeded(Exception):
    """The whole run took longer than ``--time-limit``: unwind, stopping everything started."""


def _alarm(signum: int, frame: object) -> NoReturn:
    raise TimeLimitExceeded(
        "the benchmark exceeded its time limit; everything it started is stopped"
    )


@contextlib.contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """Raise :class:`TimeLimitExceeded` inside the block after ``seconds``."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine() -> dict[str, Any]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(pages / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": [round(v, 2) for v in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    return {
        "postgres_exporter": _first_line(["prometheus-postgres-exporter", "--version"]),
        "redis_exporter": _first_line(["prometheus-redis-exporter", "-version"]),
        "node_exporter": _first_line(["prometheus-node-exporter", "--version"]),
        "wrk": _first_line(["wrk", "--version"]),
        "postgresql": _first_line(["/usr/lib/postgresql/15/bin/postgres", "--version"]),
        "redis": _first_line(["redis-server", "--version"]),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes (under a minute)")
    parser.add_argument("--out", type=Path, help="results directory (default bench/results)")
    parser.add_argument(
        "--only",
        choices=("all", "reference", "ours"),
        default="all",
        help="which exporters to run (default all that exist on this tree)",
    )
    parser.add_argument(
        "--redis-count-keys",
        action="store_true",
        help="give redis_exporter -count-keys for the seven namespaces (a SCAN per scrape)",
    )
    parser.add_argument(
        "--scaling",
        type=lambda s: tuple(int(n) for n in s.split(",")),
        help="target counts for the scaling series, e.g. 1,10,50,100 (empty: skip)",
    )
    parser.add_argument(
        "--targets",
        type=int,
        metavar="N",
        help="only the fleet point: perf-exporter with N targets (a quarter PostgreSQL, the "
        "rest Redis) at 15 s, CPU, RSS and scrapes under wrk -c4 while collections run "
        f"(the full run includes N={FLEET_TARGETS}); writes to bench/results/tmp/",
    )
    parser.add_argument(
        "--multi-target",
        type=int,
        nargs="?",
        const=MULTI_TARGETS,
        metavar="N",
        help="only the multi-target point: N PostgreSQL + N Redis targets served by "
        "perf-exporter and by the references' multi-target ways, one loop scraping like "
        f"Prometheus at 15 s (default and in the full run N={MULTI_TARGETS}); writes "
        "multitarget.md to bench/results/tmp/",
    )
    parser.add_argument(
        "--no-direct",
        action="store_true",
        help="skip the check of the largest target count at the real 15 s interval",
    )
    parser.add_argument(
        "--time-limit",
        type=int,
        metavar="SECONDS",
        help="abort (tearing everything down) after this long (default 900, quick 150, soak +240)",
    )
    parser.add_argument(
        "--soak",
        type=float,
        nargs="?",
        const=600.0,
        metavar="SECONDS",
        help="instead of the comparison, soak perf-exporter at 1 s intervals while its targets "
        "flap (default 600 s; runs under 10 minutes write to bench/results/tmp/)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=100,
        metavar="TARGETS",
        help="instead of the comparison, record perf-exporter with TARGETS (default 100) "
        "PostgreSQL + Redis targets under py-spy; writes bench/results/tmp/profile-TARGETS.*",
    )
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=40.0,
        metavar="SECONDS",
        help="how long py-spy records in --profile mode (default 40)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="JSONL",
        help="only rebuild latest.md and latest.png next to JSONL from its records",
    )
    return parser.parse_args(argv)


def _start_pgbouncer(
    stack: contextlib.ExitStack, pg: PostgresServer, workdir: Path
) -> tuple[str, Path]:
    """A PgBouncer in front of the bench PostgreSQL, and the file holding its stats password."""
    bouncer = PgBouncerServer(pg, pool_size=5)
    stack.callback(bouncer.close)
    secret = workdir / "pgbouncer.pass"
    secret.write_text(STATS_PASSWORD + "\n")
    secret.chmod(0o600)
    return bouncer.dsn(STATS_USER), secret


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    quick = bool(args.quick)
    workload = QUICK if quick else FULL
    plan = QUICK_PLAN if quick else FULL_PLAN
    scaling = (
        args.scaling if args.scaling is not None else (QUICK_SCALING if quick else FULL_SCALING)
    )
    fleet_only = args.targets is not None
    multi_only = args.multi_target is not None
    only_point = fleet_only or multi_only
    fleet = args.targets if fleet_only else (None if quick or multi_only else FLEET_TARGETS)
    multi = args.multi_target if multi_only else (None if fleet_only else MULTI_TARGETS)
    if quick and not only_point:
        multi = QUICK_MULTI.targets
    if only_point:
        scaling = ()
    with_ours = args.only in ("all", "ours")
    with_refs = args.only in ("all", "reference") and not only_point
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    run_record: dict[str, Any] = {
        "kind": "run",
        "run_id": now.strftime("%Y%m%dT%H%M%SZ")
        + ("-quick" if quick else "")
        + (f"-fleet{args.targets}" if fleet_only else "")
        + (f"-multi{args.multi_target}" if multi_only else ""),
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "machine": machine(),
        "versions": versions(),
        "wrk_cpu": wrk_cpu(),
        "perf_exporter": with_ours,
        "perf_exporter_collectors": ["host", *REMOTE_COLLECTORS] if with_ours else [],
    }
    records: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="perf-bench-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        pg = PostgresServer(
            settings={
                "max_connections": str(
                    max(
                        60,
                        2 * max(scaling, default=1) + 40,
                        2 * split(fleet or 1)[0] + 40,
                        3 * (multi or 0) + 40,  # perf-exporter's + one postgres_exporter each
                    )
                ),
                "pg_stat_statements.max": "10000",
                "shared_buffers": "64MB",
            }
        )
        stack.callback(pg.close)
        redis_server = RedisServer()
        stack.callback(redis_server.close)
        facts = load_postgres(pg.sql, pg.port, workload, workdir)
        facts.update(load_redis(redis_server.url, workload))
        run_record["workload"] = facts
        counter = RedisCommandCounter(redis_server.url)
        stack.callback(counter.close)
        servers = Servers(pg.sql, counter)
        bouncer = _start_pgbouncer(stack, pg, workdir) if with_ours and not only_point else None
        run_record["pgbouncer"] = bouncer is not None

        exporters: list[Exporter] = []
        if with_ours and not only_point:
            config = perf_exporter_config(
                free_port(),
                pg.port,
                redis_server.port,
                pgbouncer_dsn=bouncer[0] if bouncer else None,
                pgbouncer_password_file=bouncer[1] if bouncer else None,
            )
            ours = start_perf_exporter("perf_exporter", config, workdir)
            stack.callback(ours.stop)
            exporters.append(ours)
        if with_refs:
            pg_exporter = start_postgres_exporter(free_port(), pg.port, workdir)
            stack.callback(pg_exporter.stop)
            redis_exporter = start_redis_exporter(
                free_port(), redis_server.port, workdir, args.redis_count_keys
            )
            stack.callback(redis_exporter.stop)
            node_exporter = start_node_exporter(free_port(), workdir)
            stack.callback(node_exporter.stop)
            exporters += [pg_exporter, redis_exporter, node_exporter]
        daemons = [e for e in exporters if e.ours]
        for exporter in exporters:
            paused = [] if exporter.ours else daemons
            # a full interval for the daemon (see measure_exporter); the quick mode stays short
            wrk_seconds = plan.wrk_seconds if quick or not exporter.ours else OURS_WRK_SECONDS
            records.append(measure_exporter(exporter, servers, plan, paused, wrk_seconds))
        for exporter in exporters:
            exporter.stop()

        if with_ours:
            interval = 2.0 if quick else 5.0
            for targets in scaling:
                records.append(
                    measure_targets(
                        targets,
                        free_port(),
                        pg.port,
                        redis_server.port,
                        servers,
                        workdir,
                        interval=interval,
                        rounds=2.5,
                        wrk_seconds=1 if quick else 3,
                        scrapes=20 if quick else 100,
                    )
                )
            if scaling and not quick and not args.no_direct:
                # the extrapolation from a short interval is an upper bound (a saturated loop
                # pays contention); check the largest count once at the real 15 s interval
                direct = measure_targets(
                    max(scaling),
                    free_port(),
                    pg.port,
                    redis_server.port,
                    servers,
                    workdir,
                    interval=PRODUCTION_INTERVAL,
                    rounds=2.0,
                    wrk_seconds=3,
                    scrapes=100,
                )
                direct["kind"] = "scaling_direct"
                records.append(direct)
            if fleet:
                records.append(
                    measure_fleet(fleet, free_port(), pg.port, redis_server.port, workdir)
                )
        if multi and args.only == "all":
            timing = QUICK_MULTI.timing() if quick else {}
            records.append(
                measure_multitarget(multi, pg.port, redis_server.port, workdir, servers, **timing)
            )
    run_record["duration_s"] = round(time.monotonic() - started, 1)
    return [run_record, *records]


def main_soak(args: argparse.Namespace) -> int:
    seconds = float(args.soak)
    if not 1 <= seconds <= 6 * 3600:
        print("--soak takes between 1 and 21600 seconds", file=sys.stderr)
        return 2
    out = args.out or (RESULTS if seconds >= 600 else RESULTS / "tmp")
    # the soak, plus starting and stopping servers and a flap cycle in progress
    with _time_limit(args.time_limit or int(seconds) + 240):
        records = soak.run(seconds, dt.datetime.now(dt.UTC))
    jsonl = out / f"{records[0]['run_id']}.jsonl"
    report.write_jsonl(records, jsonl)
    _publish(records, jsonl, out / "soak", soak.markdown, soak.plot)
    return 0


def _publish(
    records: list[dict[str, Any]],
    jsonl: Path,
    stem: Path,
    markdown: Callable[[list[dict[str, Any]]], str],
    plot: Callable[[list[dict[str, Any]], Path], bool],
) -> None:
    """Write ``stem``.md and ``stem``.png from the records and say where they are."""
    table, png = stem.with_suffix(".md"), stem.with_suffix(".png")
    table.write_text(markdown(records))
    plotted = plot(records, png)
    print(f"results: {jsonl}")
    print(f"table:   {table}" + (f"\nplot:    {png}" if plotted else ""))
    print(table.read_text())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    if args.soak is not None:
        return main_soak(args)
    if args.profile is not None:
        with _time_limit(args.time_limit or int(args.profile_seconds) + 300):
            return profile.main_profile(args, args.out or RESULTS / "tmp")
    if args.report is not None:
        records = report.read_jsonl(args.report)
        out, jsonl = args.report.parent, args.report
    else:
        out = args.out or (
            RESULTS / "tmp" if args.quick or args.targets or args.multi_target else RESULTS
        )
        # 600 s for the comparison, scaling and fleet, +120 s for the multi-target point (~100 s)
        with _time_limit(args.time_limit or (150 if args.quick else 900)):
            records = run(args)
        jsonl = out / f"{records[0]['run_id']}.jsonl"
        report.write_jsonl(records, jsonl)
    # a multi-target-only run has its own file in tmp/, not latest.md
    stem = "multitarget" if records[0]["run_id"].split("-")[-1].startswith("multi") else "latest"
    _publish(records, jsonl, out / stem, report.markdown, report.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
