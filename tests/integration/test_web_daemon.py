"""--web.config.file end to end: the real daemon over HTTPS with basic auth, reloaded on SIGHUP."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from tests.support.certs import Issued
from tests.support.daemon import DaemonProcess
from tests.support.processes import run_module

pytestmark = pytest.mark.integration

PASSWORD = "web-Pa55-3c1a9e"
ROTATED = "web-R0tated-77b2"
CONFIG = {"interval": "1s", "timeout": "0.5s", "targets": {}}


class WebDaemon(DaemonProcess):
    """The daemon behind TLS and basic auth: requests carry a CA and, when set, credentials."""

    def __init__(
        self,
        tmp_path: Path,
        web_config: Path,
        ca: Issued | None,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(config or CONFIG, tmp_path, args=["--web.config.file", str(web_config)])
        self.context = ssl.create_default_context(cafile=str(ca.cert)) if ca else None
        if ca is not None:
            self.url = self.url.replace("http://", "https://")
        self.auth: tuple[str, str] | None = None

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = dict(headers or {})
        if self.auth is not None:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        req = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5, context=self.context) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


def web_yaml(path: Path, cert: Issued | None, users: dict[str, str], **extra: Any) -> Path:
    doc: dict[str, Any] = {
        "basic_auth_users": {
            user: bcrypt.hashpw(pw.encode(), bcrypt.gensalt(4)).decode()
            for user, pw in users.items()
        },
        "unauthenticated_paths": ["/healthz"],
        **extra,
    }
    if cert is not None:
        doc["tls_server_config"] = {"cert_file": str(cert.cert), "key_file": str(cert.key)}
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.timeout(60)
def test_daemon_serves_https_with_basic_auth_and_an_open_healthz(
    tmp_path: Path, pki: dict[str, Issued]
) -> None:
    web = web_yaml(
        tmp_path / "web.yml",
        pki["server"],
        {"prometheus": PASSWORD},
        http_server_config={"headers": {"X-Content-Type-Options": "nosniff"}},
    )
    with WebDaemon(tmp_path, web, pki["ca"]) as d:
        assert d.get("/healthz")[0] == 200
        for path in ("/metrics", "/summary", "/", "/nonexistent"):
            status, headers, _ = d.get(path)
            assert status == 401, path
            assert headers["WWW-Authenticate"].startswith("Basic ")
        d.auth = ("prometheus", "not-the-password")
        assert d.get("/metrics")[0] == 401
        d.auth = ("prometheus", PASSWORD)
        status, headers, body = d.get("/metrics")
        assert status == 200
        assert b"perf_exporter_build_info" in body
        assert headers["X-Content-Type-Options"] == "nosniff"
        # plain HTTP on the TLS port gets no metrics
        with pytest.raises((OSError, urllib.error.URLError)):
            urllib.request.urlopen(f"http://127.0.0.1:{d.port}/metrics", timeout=5)
        assert "tls=True" in d.log and "basic_auth=True" in d.log
        assert PASSWORD not in d.log
        assert d.stop() == 0


@pytest.mark.timeout(90)
def test_sighup_rotates_certificate_and_passwords_and_a_bad_file_keeps_them(
    tmp_path: Path, pki: dict[str, Issued]
) -> None:
    web = web_yaml(tmp_path / "web.yml", pki["server"], {"prometheus": PASSWORD})
    with WebDaemon(tmp_path, web, pki["ca"]) as d:
        d.auth = ("prometheus", PASSWORD)
        assert d.get("/metrics")[0] == 200
        pid = d.proc.pid if d.proc else 0

        web_yaml(web, pki["rotated"], {"prometheus": ROTATED, "grafana": "g-Secret-1"})
        d.signal(signal.SIGHUP)
        d.context = ssl.create_default_context(cafile=str(pki["new_ca"].cert))
        d.auth = ("prometheus", ROTATED)

        def rotated() -> bool:
            try:
                return d.get("/metrics")[0] == 200
            except OSError:
                return False

        d.wait_for(rotated, timeout=10, what="the rotated certificate and password")
        d.auth = ("prometheus", PASSWORD)
        assert d.get("/metrics")[0] == 401
        old_ca = ssl.create_default_context(cafile=str(pki["ca"].cert))
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(d.url + "/healthz", timeout=5, context=old_ca)

        # an invalid web config on reload: refused, counted, and the running one kept
        web.write_text("basic_auth_users:\n  prometheus: not-a-bcrypt-hash-Zx81\n")
        d.signal(signal.SIGHUP)
        d.auth = ("prometheus", ROTATED)
        d.wait_for(
            lambda: d.value("perf_exporter_config_reload_failures_total") == 1.0,
            timeout=10,
            what="the reload failure to be counted",
        )
        assert d.get("/metrics")[0] == 200
        assert "is not a bcrypt hash" in d.log
        assert "not-a-bcrypt-hash-Zx81" not in d.log
        assert d.proc is not None and d.proc.pid == pid and d.proc.poll() is None
        assert d.stop() == 0


def check_config(*args: str) -> subprocess.CompletedProcess[str]:
    return run_module("exporter", "--check-config", *args, timeout=30)


@pytest.mark.timeout(60)
def test_check_config_validates_the_web_config_and_exits_2_without_quoting_secrets(
    tmp_path: Path, pki: dict[str, Issued]
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(CONFIG))
    web = web_yaml(tmp_path / "web.yml", pki["server"], {"prometheus": PASSWORD})
    ok = check_config("--config.file", str(config), "--web.config.file", str(web))
    assert ok.returncode == 0, ok.stderr
    assert "web config OK: TLS on, 1 basic-auth users, open paths: /healthz" in ok.stdout

    bad = tmp_path / "bad.yml"
    bad.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": str(pki["server"].cert),
                    "key_file": str(pki["rotated"].key),
                    "client_auth_type": "RequireAnyClientCert",
                },
                "basic_auth_users": {"prometheus": PASSWORD},
            }
        )
    )
    out = check_config("--config.file", str(config), "--web.config.file", str(bad))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "RequireAnyClientCert is not supported" in out.stderr
    assert "the password of prometheus is not a bcrypt hash" in out.stderr
    assert PASSWORD not in out.stderr + out.stdout

    mismatch = web_yaml(tmp_path / "mismatch.yml", None, {})
    mismatch.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": str(pki["server"].cert),
                    "key_file": str(pki["rotated"].key),
                }
            }
        )
    )
    out = check_config("--config.file", str(config), "--web.config.file", str(mismatch))
    assert out.returncode == 2
    assert "KEY_VALUES_MISMATCH" in out.stderr
    assert "PRIVATE KEY" not in out.stderr


@pytest.mark.timeout(60)
def test_stalled_tls_handshakes_are_cut_after_the_read_timeout(
    tmp_path: Path, pki: dict[str, Issued]
) -> None:
    web = web_yaml(tmp_path / "web.yml", pki["server"], {})
    config = {**CONFIG, "web": {"read_timeout": "1s", "max_connections": 4}}
    with WebDaemon(tmp_path, web, pki["ca"], config) as d:
        # a TCP connection that never sends its ClientHello, and one that stops halfway
        silent = socket.create_connection(("127.0.0.1", d.port), 2)
        partial = socket.create_connection(("127.0.0.1", d.port), 2)
        partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        start = time.monotonic()
        for sock in (silent, partial):
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) == b""
            sock.close()
        assert time.monotonic() - start < 2.5
        # and TLS clients still get through, also once the cap was briefly reached
        held = [socket.create_connection(("127.0.0.1", d.port), 2) for _ in range(6)]
        for sock in held:
            sock.close()
        assert d.get("/metrics")[0] == 200
        assert d.stop() == 0
        assert "Traceback" not in d.log


@pytest.mark.timeout(60)
def test_runbooks_page_is_where_every_alert_links_and_obeys_basic_auth(tmp_path: Path) -> None:
    from exporter.mixin.rules import alert_rules
    from exporter.mixin.thresholds import Thresholds

    web = web_yaml(tmp_path / "web.yml", None, {"prometheus": PASSWORD})
    config = {**CONFIG, "thresholds": {"redis_hit_ratio": {"warn": 0.85}}}
    with WebDaemon(tmp_path, web, None, config) as d:
        status, headers, _ = d.get("/runbooks")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
        d.auth = ("prometheus", PASSWORD)
        status, headers, body = d.get("/runbooks")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        page = body.decode()
        instance = f"127.0.0.1:{d.port}"
        for rule in alert_rules(Thresholds()):
            # what Prometheus renders for an alert on this exporter's series
            url = rule["annotations"]["runbook_url"].replace("{{ $labels.instance }}", instance)
            assert url.startswith(d.url + "/runbooks#"), url
            anchor = url.rsplit("#", 1)[1]
            assert f'<h2 id="{anchor}">{rule["alert"]}</h2>' in page
        # the page shows the levels this exporter judges with, and stands alone
        assert "Redis keyspace hit ratio (below 85% for 10m: warning" in page
        assert "<script" not in page and "src=" not in page
        assert "http://" not in page and "https://" not in page
        # the summary's runbook links stay on the exporter
        rows: list[dict[str, Any]] = []
        for _ in range(50):  # bounded: the host collector's first run
            rows = json.loads(d.get("/summary")[2])["signals"]
            if rows:
                break
            time.sleep(0.1)
        assert rows and all(r["runbook_url"].startswith("/runbooks#") for r in rows), rows
        assert b'href="/runbooks#' in d.get("/")[2]
        assert d.stop() == 0
