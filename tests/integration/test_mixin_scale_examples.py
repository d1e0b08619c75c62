"""The scale examples are valid: promtool accepts every Prometheus file, the daemon every
exporter shard config."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import run_module
from tests.support.promtool import promtool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "prometheus"
PROMETHEUS_FILES = ["ha-pair.yml", "federation.yml", "remote-write.yml", "sharded.yml"]


@pytest.mark.parametrize("name", PROMETHEUS_FILES)
def test_prometheus_example_passes_promtool(name: str) -> None:
    result = promtool("check", "config", str(EXAMPLES / name))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_example_is_checked() -> None:
    prometheus = {p.name for p in EXAMPLES.glob("*.yml") if not p.name.startswith("perf-")}
    assert prometheus == set(PROMETHEUS_FILES)


@pytest.mark.parametrize("name", ["perf-exporter-shard-a.yml", "perf-exporter-shard-b.yml"])
def test_exporter_shard_config_is_valid(name: str) -> None:
    result = run_module(
        "exporter", "--check-config", "--config.file", str(EXAMPLES / name), timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("configuration OK")
