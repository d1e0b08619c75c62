"""How each exporter under test is started, on 127.0.0.1 and a free port.

The reference exporters are the Debian packages with their defaults, except where the bench
needs a comparable configuration (documented in every results table):

* postgres_exporter 0.11 gets a top-N ``pg_stat_statements`` query through
  ``--extend.query-path``, the same N as perf-exporter's ``statements_top_n``;
* node_exporter runs only the collectors that cover what perf-exporter's host collector
  reports (cpu, load, memory, filesystems, disks, network, processes, fds, swap, time);
* redis_exporter runs with its defaults (``--redis-count-keys`` adds its per-namespace key
  counting, which is what perf-exporter's namespace metrics correspond to, at a SCAN per scrape).
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.process import Process
from bench.product import product_python
from bench.workload import NAMESPACES

REPO = Path(__file__).resolve().parent.parent
STATEMENTS_TOP_N = 50
#: The remote-server collectors the bench configures perf-exporter with.
REMOTE_COLLECTORS = ("postgres", "redis", "pgbouncer")

NODE_COLLECTORS = (
    "cpu",
    "loadavg",
    "meminfo",
    "filesystem",
    "diskstats",
    "netdev",
    "stat",
    "filefd",
    "vmstat",
    "time",
)

_TOP_N_QUERY = f"""\
pg_stat_statements_top:
  query: |
    SELECT r.rolname, d.datname, s.queryid::text AS queryid, s.calls,
           s.total_exec_time / 1000 AS exec_seconds, s.rows,
           s.shared_blks_hit, s.shared_blks_read
    FROM pg_stat_statements s
    JOIN pg_roles r ON r.oid = s.userid
    JOIN pg_database d ON d.oid = s.dbid
    ORDER BY s.total_exec_time DESC
    LIMIT {STATEMENTS_TOP_N}
  master: true
  metrics:
    - rolname: {{usage: LABEL, description: Role that ran the statement}}
    - datname: {{usage: LABEL, description: Database of the statement}}
    - queryid: {{usage: LABEL, description: Query identifier}}
    - calls: {{usage: COUNTER, description: Times executed}}
    - exec_seconds: {{usage: COUNTER, description: Total execution time in seconds}}
    - rows: {{usage: COUNTER, description: Rows retrieved or affected}}
    - shared_blks_hit: {{usage: COUNTER, description: Shared buffer hits}}
    - shared_blks_read: {{usage: COUNTER, description: Shared blocks read}}
"""


@dataclass
class Exporter:
    """A running exporter: its process, its /metrics URL and how it was configured."""

    name: str
    ours: bool
    process: Process
    url: str
    settings: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        self.process.stop()


def wait_until(
    url: str,
    ready: Callable[[str], bool],
    process: Process,
    timeout: float,
) -> None:
    """Poll ``url`` until ``ready(body)``; fail with the process log if it died or timed out."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited early:\n{process.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                last = response.read().decode()
            if ready(last):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} not ready after {timeout:.0f}s:\n{process.log_tail()}")


def _has(*names: str) -> Callable[[str], bool]:
    """Every ``name`` starts some line of the body (``pg_up 1`` also matches ``pg_up 1.0``)."""
    return lambda body: all(f"\n{name}" in "\n" + body for name in names)


def _up(metric: str, target: str) -> str:
    return rf'^{metric}\{{[^}}]*target="{re.escape(target)}"[^}}]*\}} 1(\.0)?$'


def _matches(*patterns: str) -> Callable[[str], bool]:
    compiled = [re.compile(p, re.MULTILINE) for p in patterns]
    return lambda body: all(c.search(body) for c in compiled)


def _started(exporter: Exporter, ready: Callable[[str], bool], timeout: float) -> Exporter:
    """Wait for ``ready``; stop the process if it never gets there."""
    try:
        wait_until(exporter.url, ready, exporter.process, timeout)
    except BaseException:
        exporter.stop()
        raise
    return exporter


def start_postgres_exporter(port: int, pg_port: int, workdir: Path) -> Exporter:
    queries = workdir / "postgres_exporter_queries.yaml"
    queries.write_text(_TOP_N_QUERY)
    process = Process(
        "postgres_exporter",
        [
            "prometheus-postgres-exporter",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--extend.query-path={queries}",
            "--log.level=warn",
        ],
        workdir,
        env={
            "DATA_SOURCE_NAME": f"postgresql://bench_pgexp@127.0.0.1:{pg_port}/postgres"
            "?sslmode=disable"
        },
    )
    url = f"http://127.0.0.1:{port}/metrics"
    exporter = Exporter(
        "postgres_exporter",
        False,
        process,
        url,
        {"extend.query-path": f"top {STATEMENTS_TOP_N} pg_stat_statements by total_exec_time"},
    )
    return _started(exporter, _has("pg_up 1", "pg_stat_statements_top_calls"), 30)


def start_redis_exporter(
    port: int, redis_port: int, workdir: Path, count_keys: bool = False
) -> Exporter:
    argv = [
        "prometheus-redis-exporter",
        f"-web.listen-address=127.0.0.1:{port}",
        f"-redis.addr=redis://127.0.0.1:{redis_port}",
    ]
    settings: dict[str, Any] = {"defaults": True}
    if count_keys:
        patterns = ",".join(f"db0=cache:{ns}:*" for ns in NAMESPACES)
        argv.append(f"-count-keys={patterns}")
        settings = {"count-keys": "the seven cache namespaces"}
    process = Process("redis_exporter", argv, workdir)
    url = f"http://127.0.0.1:{port}/metrics"
    exporter = Exporter("redis_exporter", False, process, url, settings)
    return _started(exporter, _has("redis_up 1"), 30)


def start_node_exporter(port: int, workdir: Path) -> Exporter:
    argv = [
        "prometheus-node-exporter",
        f"--web.listen-address=127.0.0.1:{port}",
        "--collector.disable-defaults",
        *(f"--collector.{name}" for name in NODE_COLLECTORS),
        "--log.level=warn",
    ]
    process = Process("node_exporter", argv, workdir)
    url = f"http://127.0.0.1:{port}/metrics"
    exporter = Exporter("node_exporter", False, process, url, {"collectors": list(NODE_COLLECTORS)})
    return _started(exporter, _has("node_load1"), 30)


def perf_exporter_config(
    port: int,
    pg_port: int,
    redis_port: int,
    targets: int = 1,
    interval: float = 15.0,
    host: bool = True,
    pgbouncer_dsn: str | None = None,
    pgbouncer_password_file: Path | None = None,
    redis_targets: int | None = None,
    namespaces: bool = True,
) -> dict[str, Any]:
    """perf-exporter's YAML config: ``targets`` PostgreSQL and Redis targets (same servers).

    ``namespaces=False`` leaves out the namespace scan: hundreds of targets scanning the same
    40,000 keys measure the one Redis server, not the daemon.

    ``redis_targets`` gives the Redis count apart (the fleet point is 1 PostgreSQL : 3 Redis).
    """
    prefixes = [f"cache:{ns}:" for ns in NAMESPACES]
    config: dict[str, Any] = {
        "interval": f"{interval}s",
        "timeout": f"{min(5.0, interval * 0.8)}s",
        "web": {"listen_address": f"127.0.0.1:{port}"},
        "log": {"level": "warn"},
        "collectors": {
            "host": {"enabled": host},
            "postgres": {"statements_top_n": STATEMENTS_TOP_N},
        },
        "targets": {
            "postgres": [
                {
                    "name": f"pg{i}",
                    "dsn": f"postgresql://bench_perf@127.0.0.1:{pg_port}/postgres",
                }
                for i in range(targets)
            ],
            "redis": [
                {
                    "name": f"redis{i}",
                    "url": f"redis://127.0.0.1:{redis_port}/0",
                    # an empty list turns the scan off; leaving the key out scans with defaults
                    "namespaces": prefixes if namespaces else [],
                }
                for i in range(targets if redis_targets is None else redis_targets)
            ],
        },
    }
    if pgbouncer_dsn is not None:
        bouncer: dict[str, Any] = {"name": "bouncer", "dsn": pgbouncer_dsn}
        if pgbouncer_password_file is not None:
            bouncer["password_file"] = str(pgbouncer_password_file)
        config["targets"]["pgbouncer"] = [bouncer]
    return config


def up_count(body: str) -> int:
    """Remote targets whose ``perf_<kind>_up`` is 1 in ``body`` (one pass, no regex per target)."""
    heads = tuple(f"perf_{kind}_up{{" for kind in REMOTE_COLLECTORS)
    return sum(
        1 for line in body.splitlines() if line.startswith(heads) and line.endswith((" 1", " 1.0"))
    )


def start_perf_exporter(
    name: str,
    config: dict[str, Any],
    workdir: Path,
    ready_timeout: float = 60,
    fleet: bool = False,
) -> Exporter:
    """``python -m exporter --config.file X`` in the runtime-only venv (bench/product.py); ready
    once every configured target is up.

    ``fleet``: ready once it answers; the caller counts targets up (a thousand regexes over a
    20 MB body five times a second would take the cores the daemon is measured on).
    """
    path = workdir / f"{name}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    listen = config["web"]["listen_address"]
    process = Process(
        name,
        [
            product_python(workdir),
            "-m",
            "exporter",
            f"--config.file={path}",
            f"--web.listen-address={listen}",
        ],
        workdir,
        cwd=REPO,
    )
    url = f"http://{listen}/metrics"
    targets = config["targets"]
    wanted = [
        _up(f"perf_{kind}_up", target["name"])
        for kind in REMOTE_COLLECTORS
        for target in targets.get(kind, [])
    ]
    if config["collectors"]["host"]["enabled"]:
        wanted.append(_up("perf_exporter_collector_success", "local"))
    exporter = Exporter(name, True, process, url, {"config": config})
    if fleet:
        return _started(exporter, lambda body: "perf_exporter_build_info" in body, ready_timeout)
    return _started(exporter, _matches(*wanted), ready_timeout)
