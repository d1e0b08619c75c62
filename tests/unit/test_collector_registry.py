"""The collector registry loads a collector's module, and its driver, only when asked for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from exporter.collectors import COLLECTORS
from exporter.collectors.base import Collector


def _drivers_loaded_after(code: str) -> list[str]:
    """Which drivers a fresh interpreter has imported after running ``code``."""
    probe = (
        f"{code}\n"
        "import json, sys\n"
        "print(json.dumps(sorted(m for m in ('asyncpg', 'redis', 'psutil') if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def _modules_loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_importing_the_registry_or_the_host_collector_loads_no_database_driver() -> None:
    assert _drivers_loaded_after("import exporter.collectors") == []
    assert _drivers_loaded_after("import exporter.collectors.host") == ["psutil"]
    assert _drivers_loaded_after("import exporter.scheduler") == []


def test_asking_for_one_collector_loads_only_its_driver() -> None:
    code = "from exporter.collectors import COLLECTORS\nCOLLECTORS['postgres']"
    assert _drivers_loaded_after(code) == ["asyncpg"]
    code = "from exporter.collectors import COLLECTORS\nCOLLECTORS['redis']"
    assert _drivers_loaded_after(code) == ["redis"]


def test_a_daemon_started_for_the_host_only_loads_no_database_driver(tmp_path: Path) -> None:
    config = tmp_path / "host.yml"
    config.write_text("targets: {}\n")
    code = (
        "from pathlib import Path\n"
        "from exporter import cli, config\n"
        "from exporter.scheduler import build_jobs\n"
        "import exporter.daemon\n"
        "cli.build_parser().parse_args(['--collector.postgres'])\n"
        f"jobs = build_jobs(config.load(Path({str(config)!r}), environ={{}}))\n"
        "assert [job.collector_name for job in jobs] == ['host'], jobs\n"
    )
    assert _drivers_loaded_after(code) == ["psutil"]
    assert "bcrypt" not in _modules_loaded_after(code)


def test_every_name_maps_to_the_collector_of_that_name() -> None:
    assert list(COLLECTORS) == ["host", "postgres", "redis", "pgbouncer", "app"]
    for name in COLLECTORS:
        cls = COLLECTORS[name]
        assert issubclass(cls, Collector)
        assert cls.name == name
    assert "nosuch" not in COLLECTORS
    assert COLLECTORS.get("nosuch") is None
