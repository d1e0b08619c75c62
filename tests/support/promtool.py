"""promtool, the Prometheus project's own checker, run on what the daemon and the examples hold."""

from __future__ import annotations

import subprocess

from tests.support.servers import require_binary


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``promtool <args>`` with ``stdin`` as its input; its output captured as text."""
    binary = require_binary("promtool")
    return subprocess.run(
        [binary, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
