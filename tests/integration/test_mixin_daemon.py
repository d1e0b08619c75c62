"""Thresholds in the real daemon: /summary judges with them, a bad one stops the start, a
SIGHUP with a bad one keeps the running ones."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.daemon import ROOT, DaemonProcess
from tests.support.processes import run_module

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

BASE: dict[str, Any] = {"interval": "1s", "timeout": "500ms", "targets": {}}


def memory_levels(daemon: DaemonProcess) -> tuple[float, float] | None:
    body = json.loads(daemon.get("/summary")[2])
    rows = [r for r in body["signals"] if r["signal"] == "host_memory_utilisation"]
    return (rows[0]["warn"], rows[0]["crit"]) if rows else None


def test_summary_uses_the_config_thresholds_and_sighup_replaces_them(tmp_path: Path) -> None:
    config = {**BASE, "thresholds": {"host_memory_utilisation": {"warn": 0.5, "crit": 0.6}}}
    with DaemonProcess(config, tmp_path) as daemon:
        assert daemon.wait_for(lambda: memory_levels(daemon), what="a memory row") == (0.5, 0.6)
        # an inverted pair is refused: the running thresholds stay
        daemon.write_config(
            {**BASE, "thresholds": {"host_memory_utilisation": {"warn": 0.9, "crit": 0.1}}}
        )
        daemon.signal(signal.SIGHUP)
        daemon.wait_for(
            lambda: daemon.value("perf_exporter_config_reload_failures_total") == 1,
            what="the reload to be refused",
        )
        assert "thresholds.host_memory_utilisation: crit must be at least as bad" in daemon.log
        assert memory_levels(daemon) == (0.5, 0.6)
        daemon.write_config({**BASE, "thresholds": {"host_memory_utilisation": {"warn": 0.7}}})
        daemon.signal(signal.SIGHUP)
        assert daemon.wait_for(
            lambda: memory_levels(daemon) == (0.7, 0.95), what="the new thresholds"
        )


def test_a_bad_threshold_stops_the_start_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({**BASE, "thresholds": {"redis_hit_ratio": {"wran": 0.8}}}))
    result = run_module("exporter", "--config.file", str(path), "--check-config", timeout=30)
    assert result.returncode == 2
    assert "thresholds.redis_hit_ratio.wran: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_mixin_subcommand_writes_the_files(tmp_path: Path) -> None:
    result = run_module("exporter", "mixin", "--out", str(tmp_path), timeout=60)
    assert result.returncode == 0, result.stderr
    committed = (ROOT / "alerts/perf-exporter.rules.yml").read_text()
    assert (tmp_path / "alerts/perf-exporter.rules.yml").read_text() == committed
    assert len(list((tmp_path / "dashboards").glob("*.json"))) == 5
