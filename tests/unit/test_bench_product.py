"""bench/product.py: the benchmark runs the daemon with its runtime dependencies only."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.product import REPO, product_python, runtime_distributions

CHECK = """
import importlib.util, sys
import exporter.daemon, exporter.collectors.postgres, exporter.collectors.redis
import exporter.collectors.pgbouncer, exporter.collectors.host
hidden = [n for n in ("pytest", "fastapi", "opentelemetry", "grafana_foundation_sdk")
          if importlib.util.find_spec(n) is not None]
print("hidden-ok" if not hidden else f"visible: {hidden}")
"""


def test_the_runtime_closure_holds_the_drivers_and_no_dev_tool() -> None:
    names = {d.metadata["Name"].lower() for d in runtime_distributions()}
    assert {"asyncpg", "redis", "aiohttp", "psutil", "apscheduler", "prometheus_client"} <= names
    assert {"multidict", "yarl"} <= names  # reached through aiohttp
    assert not names & {"pytest", "fastapi", "grafana-foundation-sdk", "opentelemetry-api"}


def test_the_daemon_imports_under_the_product_python(tmp_path: Path) -> None:
    python = product_python(tmp_path)
    assert product_python(tmp_path) == python  # made once per work directory
    out = subprocess.run(
        [python, "-c", CHECK], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hidden-ok"
    # the tree's package comes with its bytecode, as an installed one would
    assert list((REPO / "exporter" / "collectors" / "__pycache__").glob("postgres.*.pyc"))
