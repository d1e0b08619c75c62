"""The HTTP side under hostile clients: raw sockets, garbage, slow senders, too many connections.

Every test ends by scraping /metrics: whatever a client throws, the next scrape is a correct page.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import DaemonProcess
from tests.support.processes import run_module

pytestmark = pytest.mark.integration

READ_TIMEOUT = 1.0
CONFIG = {
    "interval": "1s",
    "timeout": "0.5s",
    "targets": {},
    "web": {"read_timeout": f"{READ_TIMEOUT}s", "max_connections": 8},
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with DaemonProcess(CONFIG, tmp_path_factory.mktemp("hardening")) as d:
        d.wait_for(lambda: "perf_host_cpu_seconds_total" in d.scrape(), what="host samples")
        yield d
        assert d.stop() == 0
        # a client's garbage is a debug line at most, never an error with a traceback
        assert "Traceback" not in d.log
        assert "level=error" not in d.log


def exchange(port: int, data: bytes, wait: float = 2.0) -> bytes:
    """Send ``data`` and read the reply until the server closes or one response is complete."""
    with socket.create_connection(("127.0.0.1", port), 2) as sock:
        sock.settimeout(wait)
        with contextlib.suppress(OSError):
            sock.sendall(data)
        out = b""
        with contextlib.suppress(OSError):
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
                head, sep, body = out.partition(b"\r\n\r\n")
                if sep and b"content-length:" in head.lower():
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    if len(body) >= length:
                        break
        return out


def status(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1."), reply[:80]
    return int(reply.split(b" ", 2)[1])


def assert_metrics_correct(d: DaemonProcess) -> None:
    families = {f.name: f for f in text_string_to_metric_families(d.scrape())}
    assert families["perf_exporter_build_info"].samples[0].value == 1.0
    assert "perf_host_cpu_seconds" in families


def request(method: str, target: str, *headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


@pytest.mark.timeout(30)
def test_oversized_request_lines_headers_and_bodies_are_refused(daemon: DaemonProcess) -> None:
    long_target = "/metrics?x=" + "a" * 9000
    assert status(exchange(daemon.port, request("GET", long_target))) == 400
    assert status(exchange(daemon.port, request("GET", "/metrics", "X-Big: " + "a" * 9000))) == 400
    many = [f"X-{i}: a" for i in range(200)]
    assert status(exchange(daemon.port, request("GET", "/metrics", *many))) == 400
    body = request("GET", "/metrics", "Content-Length: 10")[:-2] + b"\r\n0123456789"
    assert status(exchange(daemon.port, body)) == 413
    # a huge declared body is refused at once, not waited for
    start = time.monotonic()
    huge = request("GET", "/metrics", "Content-Length: 10000000000")
    assert status(exchange(daemon.port, huge)) == 413
    assert time.monotonic() - start < 1.0
    chunked = request("GET", "/metrics", "Transfer-Encoding: chunked") + b"5\r\nhello\r\n0\r\n\r\n"
    assert status(exchange(daemon.port, chunked)) == 413
    assert_metrics_correct(daemon)


@pytest.mark.timeout(30)
def test_path_traversal_finds_nothing(daemon: DaemonProcess) -> None:
    for target in (
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/metrics/../../../etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "//etc/passwd",
        "/metrics/..",
        "/summary%00.html",
        "/metrics;/../etc/passwd",
    ):
        reply = exchange(daemon.port, request("GET", target))
        assert status(reply) in (400, 404), target
        assert b"root:" not in reply
    assert_metrics_correct(daemon)


@pytest.mark.timeout(30)
def test_methods_other_than_get_and_head_are_refused(daemon: DaemonProcess) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"):
        reply = exchange(daemon.port, request(method, "/metrics", "Content-Length: 0"))
        assert status(reply) == 405, method
    assert status(exchange(daemon.port, request("FOO", "/metrics"))) == 400
    assert status(exchange(daemon.port, request("CONNECT", "127.0.0.1:22"))) in (400, 404, 413)
    head = exchange(daemon.port, request("HEAD", "/metrics"))
    assert status(head) == 200 and head.endswith(b"\r\n\r\n")
    assert_metrics_correct(daemon)


@pytest.mark.timeout(30)
def test_slow_and_silent_clients_are_disconnected_after_the_read_timeout(
    daemon: DaemonProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", daemon.port), 2) as silent:
        start = time.monotonic()
        silent.settimeout(READ_TIMEOUT + 3)
        assert silent.recv(10) == b""
        assert READ_TIMEOUT * 0.8 < time.monotonic() - start < READ_TIMEOUT + 1.5

    with socket.create_connection(("127.0.0.1", daemon.port), 2) as slow:
        slow.settimeout(0.2)
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < READ_TIMEOUT + 3 and not closed:
            try:
                slow.sendall(b"X-Drip: a\r\n")  # one header line at a time, never the blank line
                closed = slow.recv(10) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
        assert closed
        assert time.monotonic() - start < READ_TIMEOUT + 1.5
    assert_metrics_correct(daemon)


@pytest.mark.timeout(30)
def test_connections_beyond_the_cap_get_503_and_the_cap_frees_up(daemon: DaemonProcess) -> None:
    held = [socket.create_connection(("127.0.0.1", daemon.port), 2) for _ in range(8)]
    try:
        time.sleep(0.2)
        reply = exchange(daemon.port, request("GET", "/metrics"))
        assert status(reply) == 503
        assert b"Retry-After: 1" in reply
    finally:
        for sock in held:
            sock.close()
    daemon.wait_for(
        lambda: status(exchange(daemon.port, request("GET", "/healthz"))) == 200, timeout=5
    )
    assert "connection cap reached" in daemon.log
    assert_metrics_correct(daemon)


_methods = st.sampled_from(["GET", "HEAD", "POST", "G\x00T", "", "get", "GET GET", "\x16\x03\x01"])
_targets = st.one_of(
    st.sampled_from(["/metrics", "/", "/summary", "/healthz", "*", "/%", "/%zz", "/\xff"]),
    st.text(max_size=40),
)
_headers = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "Content-Length: -1",
                "Content-Length: 1, 2",
                "Transfer-Encoding: chunked",
                "Transfer-Encoding: gzip, chunked",
                "Accept-Encoding: gzip;q=nan",
                "Accept: application/openmetrics-text;q=bogus",
                "Host:",
                "Expect: 100-continue",
                "Connection: Upgrade",
                "Upgrade: websocket",
                "Authorization: Basic !!!",
                ": no-name",
                "X-Folded: a\r\n b",
            ]
        ),
        st.text(max_size=30),
    ),
    max_size=6,
)
_requests = st.one_of(
    st.binary(max_size=300),
    st.tuples(_methods, _targets, st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "", "x"]))
    .flatmap(lambda line: _headers.map(lambda hs: (line, hs)))
    .map(
        lambda parts: (
            (
                f"{parts[0][0]} {parts[0][1]} {parts[0][2]}\r\n"
                + "".join(h + "\r\n" for h in parts[1])
            ).encode("utf-8", "surrogateescape")
            + b"\r\n"
        )
    ),
)


@pytest.mark.timeout(240)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(data=_requests)
def test_garbage_requests_never_break_the_server(daemon: DaemonProcess, data: bytes) -> None:
    reply = exchange(daemon.port, data, wait=0.3)
    if reply.startswith(b"HTTP/1."):
        assert status(reply) < 500 or status(reply) == 503, reply[:200]
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert_metrics_correct(daemon)


@pytest.mark.timeout(60)
def test_sighup_storm_then_sigterm_exits_0_within_5_seconds(tmp_path: Path) -> None:
    with DaemonProcess(CONFIG, tmp_path) as d:
        d.wait_for(lambda: "perf_host_cpu_seconds_total" in d.scrape(), what="host samples")
        for i in range(60):
            if i % 10 == 0:
                d.write_config({**CONFIG, "interval": f"{1 + i / 100}s"})
            d.signal(signal.SIGHUP)
            time.sleep(0.01)
        d.wait_for(lambda: d.get("/metrics")[0] == 200, timeout=10)
        assert_metrics_correct(d)
        code, took = d.terminate()
        assert code == 0
        assert took < 5
        assert "Traceback" not in d.log


_config_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 100_000),
        st.sampled_from(
            ["1s", "0.5s", "-1", "15s", "abc", ".inf", "all", "(", "^x$", ":9839", "redis://h:1/0",
             "postgresql://u@127.0.0.1:1/db", "rediss://:pw@[::1]:6379/15", "/nonexistent"]
        ),
        st.text(max_size=12),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                ["name", "dsn", "url", "interval", "timeout", "enabled", "namespaces", "databases",
                 "postgres", "redis", "pgbouncer", "app", "host", "password_env", "separator",
                 "depth", "statements_top_n", "scan_count", "mountpoint_include", "prefix", "db"]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=15,
)  # fmt: skip
_config_docs = st.fixed_dictionaries(
    {},
    optional={
        "interval": _config_values,
        "timeout": _config_values,
        "collectors": st.dictionaries(
            st.sampled_from(["host", "postgres", "redis", "pgbouncer", "app"]), _config_values
        ),
        "targets": st.dictionaries(
            st.sampled_from(["postgres", "redis", "pgbouncer", "app"]),
            st.lists(_config_values, max_size=2),
        ),
        "web": _config_values,
        "log": _config_values,
    },
)


@pytest.mark.timeout(120)
@settings(max_examples=25, deadline=None, derandomize=True)
@given(doc=_config_docs)
def test_generated_configs_exit_0_or_2_with_messages_never_a_traceback(
    tmp_path_factory: pytest.TempPathFactory, doc: dict[str, object]
) -> None:
    path = tmp_path_factory.mktemp("cfg") / "config.yml"
    path.write_text(yaml.safe_dump(doc))
    out = run_module("exporter", "--check-config", "--config.file", str(path), timeout=30)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    if out.returncode == 0:
        assert out.stdout.startswith("configuration OK")
    else:
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith("perf-exporter: invalid configuration:")
        assert len(out.stderr.splitlines()) >= 2
