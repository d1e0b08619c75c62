"""The Redis collector inside the real daemon: scraped over HTTP, down and back without restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.redis_collector import admin
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PASSWORD = "daemon-Pw-7"


def _config(server: RedisServer, secret: Path) -> dict[str, Any]:
    return {
        "interval": "1s",
        "timeout": "800ms",
        "collectors": {"host": {"enabled": False}},
        "targets": {
            "redis": [
                {
                    "name": "cache",
                    "url": f"redis://127.0.0.1:{server.port}/0",
                    "password_file": str(secret),
                }
            ]
        },
    }


def _summary(daemon: DaemonProcess) -> dict[str, Any]:
    status, _, body = daemon.get("/summary")
    assert status == 200
    return dict(json.loads(body)["sources"]["redis"]["cache"])


def test_daemon_serves_redis_series_and_summary_facts(tmp_path: Path) -> None:
    server = RedisServer("--requirepass", PASSWORD)
    try:
        client = admin(server, password=PASSWORD)
        for i in range(25):
            client.set(f"cache:budget_status:{i}", "1", ex=60)
        client.set("cache:user_session:forever", "1")
        secret = tmp_path / "pw"
        secret.write_text(PASSWORD)
        with DaemonProcess(_config(server, secret), tmp_path) as daemon:
            daemon.wait_for(
                lambda: (
                    daemon.value("perf_redis_namespace_keys", {"namespace": "budget_status"}) == 25
                ),
                what="namespace counts",
            )
            labels = {"target": "cache", "namespace": "user_session"}
            assert daemon.value("perf_redis_namespace_keys_without_ttl", labels) == 1
            assert daemon.value("perf_redis_up", {"target": "cache"}) == 1
            assert daemon.value("perf_redis_probe_duration_seconds_count", {"target": "cache"})

            daemon.wait_for(
                lambda: _summary(daemon)["facts"].get("interval_seconds"), what="a second cycle"
            )
            facts = _summary(daemon)["facts"]
            assert facts["namespaces"]["budget_status"]["keys"] == 25
            assert facts["memory_max_bytes"] == 0
            page = daemon.scrape()
            assert PASSWORD not in page and PASSWORD not in daemon.log
    finally:
        server.close()


def test_daemon_drops_series_of_a_dead_redis_and_recovers(tmp_path: Path) -> None:
    server = RedisServer("--requirepass", PASSWORD)
    try:
        secret = tmp_path / "pw"
        secret.write_text(PASSWORD)
        with DaemonProcess(_config(server, secret), tmp_path) as daemon:
            daemon.wait_for(lambda: daemon.value("perf_redis_up", {"target": "cache"}) == 1)
            server.kill()
            daemon.wait_for(
                lambda: daemon.value("perf_redis_up", {"target": "cache"}) == 0, what="up 0"
            )
            assert daemon.value("perf_redis_memory_used_bytes", {"target": "cache"}) is None
            assert daemon.value("perf_redis_namespace_keys", {"target": "cache"}) is None
            errors = daemon.value(
                "perf_exporter_collector_errors_total",
                {"collector": "redis", "target": "cache", "reason": "connection"},
            )
            assert errors is not None and errors >= 1
            server.start()
            daemon.wait_for(
                lambda: daemon.value("perf_redis_up", {"target": "cache"}) == 1,
                timeout=30,
                what="recovery",
            )
            assert daemon.value("perf_redis_memory_used_bytes", {"target": "cache"})
            failures = [
                line for line in daemon.log.splitlines() if "redis" in line and "failed" in line
            ]
            assert 1 <= len(failures) <= 3, failures  # once per state change, not per cycle
            assert PASSWORD not in daemon.log
    finally:
        server.close()
