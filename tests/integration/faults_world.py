"""One daemon watching suite-started servers of every kind, for the fault tests to break in turn.

Import the ``world`` fixture into a test module (``from faults_world import world``): each module
gets its own servers and daemon, and the daemon is never restarted while its module runs.

During every fault :meth:`World.fault` checks that /metrics answers within ``SCRAPE_BUDGET``, that
only the broken target's ``up`` is 0 and none of its other series remain (nothing stale served
as fresh), that its error counter rises under the expected reason, that every other target stays
up with a last success under two intervals old, and that after the repair the target is back
within two intervals.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from daemon import Daemon
from pgbouncer_server import STATS_PASSWORD, PgBouncerServer
from prometheus_client.parser import text_string_to_metric_families
from servers import PostgresServer, RedisServer

from exporter.collectors import COLLECTORS

INTERVAL = 1.0
#: A scrape on a busy 2-core CI box; no fault may slow /metrics beyond this.
SCRAPE_BUDGET = 0.5
#: Two intervals, plus the render and scrape that make a recovery visible.
RECOVERY_BUDGET = 2 * INTERVAL + 0.5
MONITOR_PASSWORD = "monitor-Pw-1"

#: Target name -> collector; those whose collector exists on this tree are watched.
TARGETS = {"pg": "postgres", "cache": "redis", "bouncer": "pgbouncer", "web": "app"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def pause(proc_pid: int) -> None:
    os.kill(proc_pid, signal.SIGSTOP)


def resume(proc_pid: int) -> None:
    os.kill(proc_pid, signal.SIGCONT)


@dataclass
class World:
    pg: PostgresServer
    cache: RedisServer
    appdata: RedisServer
    bouncer: PgBouncerServer
    daemon: Daemon
    password_file: Path
    watched: dict[str, str]
    latencies: list[float] = field(default_factory=list)

    def observe(self) -> Samples:
        start = time.monotonic()
        status, _, body = self.daemon.get("/metrics")
        elapsed = time.monotonic() - start
        self.latencies.append(elapsed)
        assert status == 200
        assert elapsed < SCRAPE_BUDGET, f"/metrics took {elapsed:.3f}s during a fault"
        out: Samples = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = float(s.value)
        return out

    def errors(self, target: str, reason: str) -> float:
        labels = {"collector": self.watched[target], "target": target, "reason": reason}
        key = ("perf_exporter_collector_errors_total", frozenset(labels.items()))
        return self.observe().get(key, 0.0)

    def up(self, target: str) -> float | None:
        key = (f"perf_{self.watched[target]}_up", frozenset({("target", target)}))
        return self.observe().get(key)

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Seconds until ``predicate`` held (scraping all along), or fail."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if predicate():
                return time.monotonic() - start
            time.sleep(0.1)
        raise AssertionError(f"{what} did not happen within {timeout}s; log:\n{self.daemon.log}")

    def assert_only_down(self, target: str) -> None:
        """``target`` is down with no leftover series; every other target is up and fresh."""
        samples = self.observe()
        now = time.time()
        kind = self.watched[target]
        leftovers = {
            name
            for name, labels in samples
            if name.startswith(f"perf_{kind}_")
            and name != f"perf_{kind}_up"
            and ("target", target) in labels
        }
        assert not leftovers, f"stale series of {target}: {sorted(leftovers)[:5]}"
        assert samples[(f"perf_{kind}_up", frozenset({("target", target)}))] == 0.0
        for other, other_kind in {**self.watched, "local": "host"}.items():
            if other == target:
                continue
            if other_kind != "host":
                up = samples[(f"perf_{other_kind}_up", frozenset({("target", other)}))]
                assert up == 1.0, f"{other} went down while only {target} was broken"
            labels = {"collector": other_kind, "target": other}
            last = samples[
                (
                    "perf_exporter_collector_last_success_timestamp_seconds",
                    frozenset(labels.items()),
                )
            ]
            assert now - last < 2 * INTERVAL + 1.0, f"{other} is stale ({now - last:.1f}s)"

    def fault(
        self,
        target: str,
        reason: str,
        inject: Callable[[], Any],
        repair: Callable[[], Any],
        *,
        hold: float = 0.0,
    ) -> float:
        """Break ``target``, check isolation while broken for ``hold`` s, repair; recovery time."""
        self.wait(lambda: self.up(target) == 1.0, 15, f"{target} up before the fault")
        before = self.errors(target, reason)
        inject()
        self.wait(lambda: self.up(target) == 0.0, 10, f"{target} reported down")
        deadline = time.monotonic() + hold
        self.assert_only_down(target)
        while time.monotonic() < deadline:
            self.assert_only_down(target)
            time.sleep(0.2)
        self.wait(lambda: self.errors(target, reason) > before, 5, f"{target} errors by {reason}")
        repair()
        took = self.wait(lambda: self.up(target) == 1.0, RECOVERY_BUDGET + 10, f"{target} back")
        assert took <= RECOVERY_BUDGET, f"{target} took {took:.1f}s to recover after the repair"
        return took


def _config(world_dir: Path, pg: PostgresServer, cache: RedisServer, appdata: RedisServer,
            bouncer: PgBouncerServer, password_file: Path) -> dict[str, Any]:  # fmt: skip
    targets: dict[str, list[dict[str, Any]]] = {
        "postgres": [
            {
                "name": "pg",
                "dsn": pg.dsn_for("monitor", "app"),
                "password_file": str(password_file),
            }
        ],
        "redis": [{"name": "cache", "url": cache.url}],
        "pgbouncer": [{"name": "bouncer", "dsn": bouncer.dsn(), "password_env": "PERF_BOUNCER_PW"}],
        "app": [{"name": "web", "url": appdata.url}],
    }
    watched_kinds = {kind for kind in TARGETS.values() if kind in COLLECTORS}
    return {
        "interval": f"{INTERVAL}s",
        "timeout": "0.8s",
        "targets": {kind: t for kind, t in targets.items() if kind in watched_kinds},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("faults")
    pg = PostgresServer(
        stat_statements=False,
        settings={"max_connections": "12", "superuser_reserved_connections": "3"},
        hba=[
            "local all all trust",
            "host all monitor 127.0.0.1/32 scram-sha-256",
            "host all all 127.0.0.1/32 trust",
        ],
    )
    cache = RedisServer(
        "--enable-debug-command", "yes", "--maxmemory", "4mb", "--maxmemory-policy", "noeviction"
    )
    appdata = RedisServer()
    bouncer = PgBouncerServer(pg)
    try:
        pg.sql(f"CREATE ROLE monitor LOGIN PASSWORD '{MONITOR_PASSWORD}' IN ROLE pg_monitor")
        pg.sql("CREATE ROLE crowd LOGIN")
        pg.sql("CREATE DATABASE app")
        pg.sql("CREATE TABLE orders (id int)", "app")
        password_file = tmp / "monitor-password"
        password_file.write_text(MONITOR_PASSWORD)
        config = _config(tmp, pg, cache, appdata, bouncer, password_file)
        watched = {name: kind for name, kind in TARGETS.items() if kind in COLLECTORS}
        with Daemon(config, tmp, env={"PERF_BOUNCER_PW": STATS_PASSWORD}) as d:
            w = World(pg, cache, appdata, bouncer, d, password_file, watched)
            for target in watched:
                w.wait(lambda t=target: w.up(t) == 1.0, 20, f"{target} up at start")  # type: ignore[misc]
            pid = d.proc.pid if d.proc else None
            yield w
            lat = sorted(w.latencies)
            p99 = lat[int(len(lat) * 0.99)]
            print(f"\n/metrics during faults: {len(lat)} scrapes, p99 {p99 * 1000:.1f} ms")  # noqa: T201
            # the same process ran through every fault
            assert d.proc is not None and d.proc.poll() is None and d.proc.pid == pid, (
                f"the daemon did not live through the faults:\n{d.log[-4000:]}"
            )
            code = d.stop()
            # shown by pytest only when the teardown fails: what the daemon said beyond info
            print("\n".join(line for line in d.log.splitlines() if "level=info" not in line))  # noqa: T201
            assert code == 0, f"the daemon exited {code} on SIGTERM:\n{d.log[-4000:]}"
            assert "Traceback" not in d.log, d.log[-4000:]
    finally:
        bouncer.close()
        appdata.close()
        cache.close()
        pg.close()
