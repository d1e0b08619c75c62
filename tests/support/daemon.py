"""The real daemon as a subprocess: what operators run, scraped over HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import ROOT, stop_process, wait_until
from tests.support.servers import free_port


class DaemonProcess:
    """``python -m exporter`` with a YAML config on a free port; a context manager."""

    def __init__(
        self,
        config: dict[str, Any] | None,
        tmp_path: Path | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tmp_path or tempfile.mkdtemp(prefix="perf-daemon-"))
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = self.dir / "perf-exporter.yml"
            self.write_config(config)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.args = list(args or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = self.dir / f"daemon-{self.port}.log"

    def write_config(self, config: dict[str, Any]) -> None:
        assert self.config_path is not None
        self.config_path.write_text(yaml.safe_dump(config))

    def start(self, wait: bool = True) -> DaemonProcess:
        cmd = [sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{self.port}"]
        if self.config_path is not None:
            cmd += ["--config.file", str(self.config_path)]
        cmd += self.args
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=self._stderr
        )
        if wait:
            self.wait_for(self._healthy, timeout=20, what="/healthz to answer 200")
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {self.proc.returncode}:\n{self.log}")
        try:
            return self.get("/healthz")[0] == 200
        except OSError:
            return False

    @property
    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def scrape(self) -> str:
        status, _, body = self.get("/metrics")
        assert status == 200, status
        return body.decode()

    def families(self) -> dict[str, Metric]:
        return {f.name: f for f in text_string_to_metric_families(self.scrape())}

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The value of one sample in a fresh scrape, None when absent."""
        for family in text_string_to_metric_families(self.scrape()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in (labels or {}).items()
                ):
                    return float(sample.value)
        return None

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition"
    ) -> Any:
        try:
            return wait_until(predicate, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; log:\n{self.log}") from None

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM and wait: the exit code and the seconds it took (TimeoutExpired past timeout)."""
        assert self.proc is not None
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - start

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        code = stop_process(self.proc, timeout)
        with contextlib.suppress(Exception):
            self._stderr.close()
        return int(code)

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
