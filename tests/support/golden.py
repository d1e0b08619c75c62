"""Golden layouts of /metrics: names, types, help and label sets, with values masked.

A renamed metric, a changed type or a new or lost label shows up as a diff against
tests/golden/. Machine-specific label values (mountpoints, devices, interfaces, versions) are
masked, and the cgroup gauges, which exist only where a limit is set, are left out.
``UPDATE_GOLDEN=1`` rewrites the file instead; review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
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
