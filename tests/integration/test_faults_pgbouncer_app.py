"""Faults survived by the PgBouncer and app targets, and SIGTERM while collections hang.

See :mod:`tests.support.faults_world` for what every fault asserts while it lasts and after
the repair.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.faults_world import World, pause, resume
from tests.support.pgbouncer_server import STATS_PASSWORD

pytestmark = pytest.mark.integration


@pytest.mark.timeout(60)
def test_pgbouncer_hung_then_resumed(world: World) -> None:
    try:
        world.fault("bouncer", "timeout", world.bouncer.pause, world.bouncer.resume, hold=1.0)
    finally:
        world.bouncer.resume()


@pytest.mark.timeout(60)
def test_pgbouncer_killed_and_restarted(world: World) -> None:
    world.fault("bouncer", "connection", world.bouncer.stop, world.bouncer.start)


@pytest.mark.timeout(60)
def test_app_stats_redis_killed_and_restarted(world: World) -> None:
    world.fault("web", "connection", world.appdata.kill, world.appdata.start, hold=2.0)


@pytest.mark.timeout(60)
def test_app_stats_redis_hung_then_resumed(world: World) -> None:
    assert world.appdata.proc is not None
    pid = world.appdata.proc.pid
    try:
        world.fault("web", "timeout", lambda: pause(pid), lambda: resume(pid))
    finally:
        resume(pid)


@pytest.mark.timeout(60)
def test_sigterm_while_collections_hang_exits_0_within_5_seconds(
    world: World, tmp_path: Path
) -> None:
    config = {
        "interval": "10s",
        "timeout": "8s",
        "targets": {
            "pgbouncer": [
                {"name": "bouncer", "dsn": world.bouncer.dsn(), "password_env": "PERF_BOUNCER_PW"}
            ],
            "app": [{"name": "web", "url": world.appdata.url}],
        },
    }
    assert world.appdata.proc is not None
    pid = world.appdata.proc.pid
    world.bouncer.pause()
    pause(pid)
    try:
        with DaemonProcess(config, tmp_path, env={"PERF_BOUNCER_PW": STATS_PASSWORD}) as d:
            time.sleep(1.0)  # both first collections are now waiting on a hung server
            assert d.value("perf_pgbouncer_up", {"target": "bouncer"}) is None
            assert d.value("perf_app_up", {"target": "web"}) is None
            code, took = d.terminate()
            assert code == 0
            assert took < 5
            assert "Traceback" not in d.log
            assert "level=error" not in d.log
    finally:
        world.bouncer.resume()
        resume(pid)
