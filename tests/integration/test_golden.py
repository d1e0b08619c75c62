"""A golden file of the full /metrics layout: names, types, label sets; values masked.

A renamed metric, a changed type or a new or lost label shows up here as a diff. Machine-specific
label values (mountpoints, devices, interfaces, versions) are masked, and the cgroup gauges,
which exist only where a limit is set, are left out. Regenerate after an intended change with
``UPDATE_GOLDEN=1 make test PYTEST_ARGS=tests/integration/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from daemon import Daemon
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
MASKED_LABELS = {"mountpoint", "device", "fstype", "interface", "version", "cmd", "queryid"}
OPTIONAL_PREFIXES = ("perf_host_cgroup_",)


def layout(text: str) -> str:
    lines: set[str] = set()
    for family in text_string_to_metric_families(text):
        if family.name.startswith(OPTIONAL_PREFIXES):
            continue
        lines.add(f"# {family.name} {family.type} {family.documentation}")
        for sample in family.samples:
            labels = ",".join(
                f"{k}={'*' if k in MASKED_LABELS else v}" for k, v in sorted(sample.labels.items())
            )
            lines.add(f"{sample.name}{{{labels}}}")
    return "\n".join(sorted(lines)) + "\n"


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    got = layout(text)
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 once and review it"
    assert got == path.read_text()


def test_host_only_layout_matches_golden(tmp_path: Path) -> None:
    config = {"interval": "1s", "timeout": "500ms", "targets": {}}
    with Daemon(config, tmp_path) as d:
        d.wait_for(lambda: d.value("perf_host_load1") is not None, what="host metrics")
        check("metrics_host.txt", d.scrape())
