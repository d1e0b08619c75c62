"""The built wheel in clean venvs: the instrument helper needs only redis, the daemon no SDK."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import exporter
from exporter.cli import MIXIN_INSTALL
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]

# What an application with only redis does: publish one cache stat and read it back.
INSTRUMENT_SCRIPT = """
import asyncio, importlib.util, json, sys
import redis.asyncio as aioredis
from exporter.instrument import CacheStats, Publisher

async def main(url, prefix):
    client = aioredis.from_url(url, decode_responses=True)
    publisher = Publisher(client, prefix=prefix, flush_interval=60, ttl=120)
    stats = CacheStats("api_response", publisher)
    stats.hit(); stats.hit(); stats.miss()
    flushed = await publisher.flush()
    key = f"{prefix}cache:{publisher.process}"
    stored = await client.hgetall(key)
    await publisher.close()
    await client.delete(key)
    await client.aclose()
    daemon_deps = ("asyncpg", "prometheus_client", "aiohttp")
    drivers = [m for m in daemon_deps if importlib.util.find_spec(m)]
    print(json.dumps({"flushed": flushed, "stored": stored, "drivers": drivers}))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def run(*argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=check, env=env, timeout=200
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # build from a copy so the worktree gets no build/ or egg-info of its own
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "exporter", source / "exporter", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", out, source)
    (built,) = out.glob("perf_exporter-*.whl")
    return built


def venv(path: Path) -> Path:
    run(sys.executable, "-m", "venv", path)
    return path / "bin"


def test_instrument_imports_and_publishes_with_only_redis_installed(
    wheel: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    bin_ = venv(tmp_path / "app-env")
    run(bin_ / "pip", "install", "--quiet", "--no-deps", wheel)
    run(bin_ / "pip", "install", "--quiet", "redis")
    prefix = f"perf:wheel:{uuid.uuid4().hex[:8]}:"
    done = run(bin_ / "python", "-c", INSTRUMENT_SCRIPT, redis_server.url, prefix)
    result = json.loads(done.stdout)
    assert result == {
        "flushed": True,
        "stored": {"api_response:hits": "2", "api_response:misses": "1"},
        "drivers": [],  # none of the daemon's dependencies came along
    }


def test_plain_install_runs_the_daemon_cli_without_the_dashboard_sdk(
    wheel: Path, tmp_path: Path
) -> None:
    bin_ = venv(tmp_path / "daemon-env")
    run(bin_ / "pip", "install", "--quiet", wheel)
    probe = "import importlib.util as u; print(u.find_spec('grafana_foundation_sdk') is None)"
    assert run(bin_ / "python", "-c", probe).stdout.strip() == "True"
    assert run(bin_ / "perf-exporter", "--version").stdout.strip() == (
        f"perf-exporter {exporter.__version__}"
    )
    mixin = run(bin_ / "python", "-m", "exporter", "mixin", "--out", tmp_path / "out", check=False)
    assert mixin.returncode != 0
    assert mixin.stdout == ""
    assert mixin.stderr.strip().splitlines() == [
        f"perf-exporter: the mixin generator needs grafana_foundation_sdk; install it with: "
        f"{MIXIN_INSTALL}"
    ]
    assert not (tmp_path / "out").exists()
