"""One daemon watching suite-started servers of every kind, for the fault tests to break in turn.

The ``world`` fixture (tests/integration/conftest.py) is module-scoped: each fault module gets its
own servers and daemon, and the daemon is never restarted while its module runs.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors import COLLECTORS
from tests.support.daemon import DaemonProcess
from tests.support.pgbouncer_server import PgBouncerServer
from tests.support.servers import PostgresServer, RedisServer

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
    daemon: DaemonProcess
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


def daemon_config(world_dir: Path, pg: PostgresServer, cache: RedisServer, appdata: RedisServer,
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
