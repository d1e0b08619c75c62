"""A golden file of the full /metrics layout: names, types, label sets; values masked.

A renamed metric, a changed type or a new or lost label shows up here as a diff. Machine-specific
label values (mountpoints, devices, interfaces, versions) are masked, and the cgroup gauges,
which exist only where a limit is set, are left out. Regenerate after an intended change with
``UPDATE_GOLDEN=1 make test PYTEST_ARGS=tests/integration/test_golden.py`` and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.golden import check

pytestmark = pytest.mark.integration


def test_host_only_layout_matches_golden(tmp_path: Path) -> None:
    config = {"interval": "1s", "timeout": "500ms", "targets": {}}
    with DaemonProcess(config, tmp_path) as d:
        d.wait_for(lambda: d.value("perf_host_load1") is not None, what="host metrics")
        check("metrics_host.txt", d.scrape())
