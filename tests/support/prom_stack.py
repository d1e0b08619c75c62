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

from tests.support.processes import stop_process
from tests.support.servers import free_port, require_binary, wait_for_port


class _Process:
    """A Prometheus-family binary: its YAML config, data and log in a fresh directory."""

    def __init__(
        self, name: str, binary: str, config: dict[str, Any], storage_flag: str, args: list[str]
    ) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"perf-{name}-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config_file = self.dir / f"{name}.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        cmd = [
            require_binary(binary),
            f"--config.file={config_file}",
            f"{storage_flag}={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
            *args,
        ]
        self.log_path = self.dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, timeout=30)
            self._wait_ready(30)
        except TimeoutError:
            log = self.log()[-2000:]
            self.close()
            raise RuntimeError(f"{name} did not start: {log}") from None

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
        stop_process(self.proc)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Prometheus(_Process):
    """``prometheus`` with the given config; ``receiver=True`` accepts remote_write."""

    def __init__(self, config: dict[str, Any], receiver: bool = False) -> None:
        args = ["--rules.alert.resend-delay=1s"]
        if receiver:
            args.append("--web.enable-remote-write-receiver")
        super().__init__("prometheus", "/usr/bin/prometheus", config, "--storage.tsdb.path", args)

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


class Alertmanager(_Process):
    """``prometheus-alertmanager`` with clustering off."""

    def __init__(self, config: dict[str, Any]) -> None:
        binary, args = "/usr/bin/prometheus-alertmanager", ["--cluster.listen-address="]
        super().__init__("alertmanager", binary, config, "--storage.path", args)

    def alerts(self, alertname: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(
            "/api/v2/alerts", {"filter": f'alertname="{alertname}"'}
        )
        return found


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
