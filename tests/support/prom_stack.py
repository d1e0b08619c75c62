"""Real Prometheus, Alertmanager and a webhook receiver for the mixin's end-to-end tests.

Each runs from its Debian binary on a free 127.0.0.1 port with its own temporary directory and
is stopped (terminate, then kill) on close. Timings are the tests': scrape and evaluation every
second, alerts resent every second, Alertmanager groups waited on for one second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.support.servers import free_port, require_binary, wait_for_port


class _Process:
    def __init__(self, name: str, cmd: list[str], port: int, workdir: Path) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, timeout=30)
            self._wait_ready(30)
        except TimeoutError:
            self.close()
            raise RuntimeError(f"{name} did not start: {self.log()[-2000:]}") from None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} is not ready")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as resp:
            return json.loads(resp.read())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class Prometheus(_Process):
    """``prometheus`` with the given config; ``receiver=True`` accepts remote_write."""

    def __init__(self, config: dict[str, Any], receiver: bool = False) -> None:
        binary = require_binary("/usr/bin/prometheus")
        self.dir = Path(tempfile.mkdtemp(prefix="perf-prometheus-"))
        port = free_port()
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        cmd = [
            binary,
            f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--rules.alert.resend-delay=1s",
            "--log.level=warn",
        ]
        if receiver:
            cmd.append("--web.enable-remote-write-receiver")
        super().__init__("prometheus", cmd, port, self.dir)

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.get("/api/v1/query", params)
        assert data["status"] == "success", data
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Alertmanager(_Process):
    """``prometheus-alertmanager`` with clustering off."""

    def __init__(self, config: dict[str, Any]) -> None:
        binary = require_binary("/usr/bin/prometheus-alertmanager")
        self.dir = Path(tempfile.mkdtemp(prefix="perf-alertmanager-"))
        port = free_port()
        (self.dir / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        cmd = [
            binary,
            f"--config.file={self.dir / 'alertmanager.yml'}",
            f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        super().__init__("alertmanager", cmd, port, self.dir)

    def alerts(self, alertname: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(
            "/api/v2/alerts", {"filter": f'alertname="{alertname}"'}
        )
        return found

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Webhook:
    """Collects Alertmanager webhook notifications: (receiver path, payload) in arrival order."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(min(length, 1_000_000)))
                with hook._lock:
                    hook.received.append((self.path.strip("/"), payload))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def notifications(self, alertname: str) -> list[tuple[str, str, str, float]]:
        """(receiver, status, severity, arrival index) of every alert named ``alertname``."""
        with self._lock:
            out = []
            for index, (receiver, payload) in enumerate(self.received):
                for alert in payload.get("alerts", []):
                    if alert["labels"].get("alertname") == alertname:
                        out.append(
                            (receiver, alert["status"], alert["labels"].get("severity", ""), index)
                        )
            return out

    def wait_for(
        self, alertname: str, receiver: str, status: str, timeout: float
    ) -> list[tuple[str, str, str, float]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                n for n in self.notifications(alertname) if n[0] == receiver and n[1] == status
            ]
            if found:
                return found
            time.sleep(0.3)
        return []

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
