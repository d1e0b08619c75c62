"""The real daemon as operators run it: a subprocess, scraped over HTTP."""

from __future__ import annotations

import gzip
import signal
import socket
import time
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_families,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import DaemonProcess
from tests.support.promtool import promtool

pytestmark = pytest.mark.integration

HOST_ONLY = {"interval": "1s", "timeout": "500ms", "targets": {}}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with DaemonProcess(HOST_ONLY, tmp_path_factory.mktemp("daemon")) as d:
        d.wait_for(lambda: d.value("perf_host_load1") is not None, what="host metrics")
        yield d


def test_metrics_parse_and_pass_promtool(daemon: DaemonProcess) -> None:
    text = daemon.scrape()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"perf_host_cpu_seconds", "perf_exporter_build_info", "process_cpu_seconds"} <= names
    out = promtool("check", "metrics", stdin=text)
    assert out.returncode == 0, out.stdout + out.stderr


def test_self_metrics_for_the_host_job(daemon: DaemonProcess) -> None:
    labels = {"collector": "host", "target": "local"}
    assert daemon.value("perf_exporter_collector_success", labels) == 1.0
    assert daemon.value("perf_exporter_collector_duration_seconds", labels) > 0
    last = daemon.value("perf_exporter_collector_last_success_timestamp_seconds", labels)
    assert time.time() - 5 < last <= time.time() + 1
    for reason in ("timeout", "connection", "auth", "query", "other"):
        assert (
            daemon.value("perf_exporter_collector_errors_total", {**labels, "reason": reason}) == 0
        )
    assert daemon.value("perf_exporter_build_info") == 1.0


def test_openmetrics_and_gzip_negotiation(daemon: DaemonProcess) -> None:
    status, headers, body = daemon.get(
        "/metrics",
        {"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"},
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")
    assert any(f.name == "perf_host_load1" for f in om_families(body.decode()))
    status, headers, body = daemon.get("/metrics", {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"perf_host_load1" in gzip.decompress(body)
    status, headers, body = daemon.get("/metrics", {"Accept": "text/plain"})
    assert "Content-Encoding" not in headers and b"# EOF" not in body


def test_bytes_are_identical_between_cycles(tmp_path: Path) -> None:
    config = {"interval": "30s", "timeout": "5s", "targets": {}}
    with DaemonProcess(config, tmp_path) as d:
        d.wait_for(lambda: d.value("perf_host_load1") is not None, what="host metrics")
        time.sleep(0.3)  # let the render after the first cycle settle
        bodies = {d.get("/metrics")[2] for _ in range(20)}
        assert len(bodies) == 1


def test_other_endpoints_and_http_errors(daemon: DaemonProcess) -> None:
    status, headers, body = daemon.get("/healthz")
    assert status == 200 and body == b"ok\n"
    status, headers, body = daemon.get("/summary")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    import json

    summary = json.loads(body)
    assert summary["sources"]["host"]["local"]["up"] is True
    assert 0 <= summary["sources"]["host"]["local"]["facts"]["memory_utilisation"] <= 1
    status, _, body = daemon.get("/")
    assert status == 200 and b'href="/metrics"' in body.replace(b"'", b'"')
    assert daemon.get("/nope")[0] == 404
    assert daemon.get("/../../etc/passwd")[0] == 404
    with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
        sock.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 405")
    with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert sock.recv(100).split(b" ")[1] in (b"400", b"431")


def test_keep_alive_serves_many_requests_on_one_connection(daemon: DaemonProcess) -> None:
    with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b"ok\n"):
                chunk = sock.recv(4096)
                assert chunk, "server closed a keep-alive connection"
                data += chunk
            assert data.startswith(b"HTTP/1.1 200")


def test_sighup_reloads_valid_config_and_keeps_old_on_invalid(tmp_path: Path) -> None:
    with DaemonProcess({**HOST_ONLY, "interval": "1s"}, tmp_path) as d:
        labels = {"collector": "host", "target": "local"}
        d.wait_for(lambda: d.value("perf_exporter_collector_success", labels) == 1.0)
        first_ok = d.value("perf_exporter_config_last_reload_success_timestamp_seconds")
        d.write_config({**HOST_ONLY, "interval": "2s"})
        d.signal(signal.SIGHUP)
        d.wait_for(
            lambda: d.value("perf_exporter_collector_interval_seconds", labels) == 2.0,
            what="the new interval",
        )
        assert d.value("perf_exporter_config_last_reload_success_timestamp_seconds") > first_ok
        assert d.value("perf_exporter_config_reload_failures_total") == 0
        d.write_config({**HOST_ONLY, "interval": "bogus"})
        d.signal(signal.SIGHUP)
        d.wait_for(lambda: d.value("perf_exporter_config_reload_failures_total") == 1.0)
        assert "config reload failed" in d.log and "interval: must be a duration" in d.log
        assert d.value("perf_exporter_collector_interval_seconds", labels) == 2.0
        assert d.value("perf_exporter_collector_success", labels) == 1.0
        d.write_config({**HOST_ONLY, "interval": "1s"})
        d.write_config({**HOST_ONLY, "interval": "1s", "collectors": {"host": {"enabled": False}}})
        d.signal(signal.SIGHUP)
        d.wait_for(lambda: d.value("perf_host_load1") is None, what="host series gone")
        assert d.value("perf_exporter_collector_success", labels) is None


def test_sigterm_exits_0_within_5_seconds(tmp_path: Path) -> None:
    d = DaemonProcess(HOST_ONLY, tmp_path).start()
    d.wait_for(lambda: d.value("perf_host_load1") is not None)
    code, took = d.terminate()
    assert code == 0
    assert took < 5
    assert "Traceback" not in d.log


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        d = DaemonProcess(HOST_ONLY, tmp_path, args=["--web.listen-address", f"127.0.0.1:{port}"])
        d.start(wait=False)
        assert d.proc is not None
        assert d.proc.wait(20) == 1
        assert f"cannot listen on 127.0.0.1:{port}" in d.log
        assert "Traceback" not in d.log


def test_zero_config_start_serves_host_and_reports_absent_targets(tmp_path: Path) -> None:
    # DATABASE_URL/REDIS_URL point at closed ports: up 0 for those, never a crash
    with socket.socket() as s1, socket.socket() as s2:
        s1.bind(("127.0.0.1", 0))
        s2.bind(("127.0.0.1", 0))
        env = {
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{s1.getsockname()[1]}/postgres",
            "REDIS_URL": f"redis://127.0.0.1:{s2.getsockname()[1]}/0",
            "PERF_EXPORTER_INTERVAL": "1s",
            "PERF_EXPORTER_TIMEOUT": "500ms",
        }
        with DaemonProcess(None, tmp_path, env=env) as d:
            d.wait_for(lambda: d.value("perf_host_load1") is not None, what="host metrics")
            jobs = {
                (s.labels["collector"], s.labels["target"])
                for f in text_string_to_metric_families(d.scrape())
                if f.name == "perf_exporter_collector_success"
                for s in f.samples
            }
            assert jobs == {("host", "local"), ("postgres", "default"), ("redis", "default")}
            d.wait_for(
                lambda: (
                    d.value("perf_postgres_up", {"target": "default"}) == 0.0
                    and d.value("perf_redis_up", {"target": "default"}) == 0.0
                ),
                what="up 0 for the absent default targets",
            )
            assert d.proc is not None and d.proc.poll() is None
            assert "Traceback" not in d.log
