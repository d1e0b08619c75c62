"""A tests/support/app_worker.py subprocess: a real asyncpg pool and cache publishing through
exporter.instrument, driven line by line over stdin/stdout."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
from typing import Any

from tests.support.processes import ROOT, end_input


class AppWorker:
    """A tests/support/app_worker.py subprocess driven line by line."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        # a module run from the repository root imports exactly as the tests do
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.app_worker", json.dumps(options)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self._line(30) == "ready"

    def _line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("the worker did not answer in time")
        return self.proc.stdout.readline().strip()

    def send(self, wait: float = 20, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        answer = self._line(wait)
        assert answer == "ok", answer

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            end_input(self.proc)
