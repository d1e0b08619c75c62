"""``make demo`` in its short mode: everything it prints answers, Prometheus has our rules and
scrapes every source, /summary answers the cache and queries questions, and nothing the demo
started outlives it (processes, ports, files)."""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from examples.namespaces import NAMESPACES
from tests.support.processes import ROOT, stop_process, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

DURATION = 40
URL = re.compile(r"http://127\.0\.0\.1:(\d+)\S*")


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read()


def get_json(url: str) -> Any:
    return json.loads(get(url)[1])


def prom_query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    data = get_json(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    assert data["status"] == "success", data
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    """The demo's output lines up to the one starting with ``marker``."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith(marker):
                return lines
    raise AssertionError(f"no {marker!r} line in time; output so far:\n" + "\n".join(lines))


def rows(summary: dict[str, Any], signal: str) -> list[dict[str, Any]]:
    return [r for r in summary["signals"] if r["signal"] == signal and r["value"] is not None]


def demo_dir(lines: list[str]) -> Path:
    found = [m.group(1) for line in lines if (m := re.match(r"Files: (\S+) ", line))]
    assert found, lines
    return Path(found[0])


def started_by(demo: psutil.Process, base: Path) -> dict[int, psutil.Process]:
    """Every process the demo runs, PostgreSQL's detached postmaster included."""
    pids = {p.pid: p for p in demo.children(recursive=True)}
    for p in psutil.process_iter(["cmdline"]):
        if any(str(base) in part for part in p.info["cmdline"] or []):
            pids[p.pid] = p
    return pids


def survivors(pids: dict[int, psutil.Process]) -> list[psutil.Process]:
    return [p for p in pids.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    except OSError:
        return False


@contextmanager
def demo(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``python -m examples.demo *args``, its output readable; stopped if still running after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.demo", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            stop_process(proc, timeout=30)


def assert_nothing_left(pids: dict[int, psutil.Process], ports: set[int], base: Path) -> None:
    """Nothing the demo started survives it: processes, ports, files."""
    assert not survivors(pids)
    assert not [p for p in ports if listening(p)]
    assert not base.exists()


def test_demo_serves_every_printed_url_and_leaves_nothing_behind() -> None:
    started = time.monotonic()
    with demo("--duration", str(DURATION)) as proc:
        head = read_until(proc, "Stopping after", timeout=40)
        assert time.monotonic() - started < 30, head
        urls = {m.group(0) for line in head for m in URL.finditer(line)}
        by_name = {
            line.split("http")[0].strip(): URL.search(line).group(0)  # type: ignore[union-attr]
            for line in head
            if URL.search(line)
        }
        base = demo_dir(head)
        assert base.is_dir()
        ports = {int(p) for line in head for p in re.findall(r":(\d{2,5})\b", line)}
        pids = started_by(psutil.Process(proc.pid), base)
        assert len(pids) >= 8, pids

        for url in urls:
            assert get(url)[0] == 200, url
        daemon = by_name["summary JSON"].removesuffix("/summary")
        prometheus = by_name["Prometheus"].split("/graph")[0].removesuffix("/classic")

        # our rule files, both loaded
        groups = get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
        files = {Path(g["file"]).name for g in groups}
        assert files == {"recording.rules.yml", "perf-exporter.rules.yml"}, files
        alerts = [r for g in groups for r in g["rules"] if r["type"] == "alerting"]
        assert len(alerts) > 20
        # every source scraped through perf-exporter and up
        for kind in ("postgres", "redis", "pgbouncer", "app"):
            wait_until(
                lambda kind=kind: prom_query(
                    prometheus, f'perf_{kind}_up{{job="perf-exporter"}} == 1'
                ),
                20,
                f"perf_{kind}_up 1 in Prometheus",
                interval=0.5,
            )
        wait_until(
            lambda: prom_query(
                prometheus, "job_instance_target_namespace:perf_app_cache_hit:ratio_rate5m"
            ),
            25,
            "the recorded app cache hit ratio",
            interval=0.5,
        )

        # every namespace of the reference application gets hits, not only lookups
        for ns in NAMESPACES:
            wait_until(
                lambda ns=ns: prom_query(
                    prometheus, f'perf_app_cache_hits_total{{namespace="{ns}"}} > 0'
                ),
                15,
                f"hits in {ns}",
                interval=0.5,
            )

        # /summary: the cache question per namespace, the queries question with slow statements
        # and, once the maintenance job has locked orders, the payments it blocks
        blocked: list[dict[str, Any]] = []

        def answered() -> dict[str, Any] | None:
            summary: dict[str, Any] = get_json(f"{daemon}/summary")
            blocked.extend(summary["blocking"])
            namespaces = {r["labels"]["namespace"] for r in rows(summary, "app_cache_hit_ratio")}
            ok = (
                {"api_response", "search_results", "user_session"} <= namespaces
                and rows(summary, "redis_hit_ratio")
                and rows(summary, "postgres_cache_hit_ratio")
                and rows(summary, "postgres_statement_mean_latency")
                and summary["slow_statements"]
                and blocked
            )
            return summary if ok else None

        summary = wait_until(
            answered, 25, "the cache and queries questions on /summary", interval=0.5
        )
        assert {c["application_name"] for c in blocked} == {"nightly-maintenance"}, blocked
        assert summary["score"] is not None
        sources = summary["sources"]
        for kind in ("postgres", "redis", "pgbouncer", "app"):
            assert all(t["up"] for t in sources[kind].values()), sources[kind]

        code = proc.wait(DURATION + 30)
        output = proc.stdout.read() if proc.stdout else ""
        assert code == 0, output
        assert "Done." in output
    assert_nothing_left(pids, ports, base)


def test_demo_interrupted_while_starting_removes_what_it_started() -> None:
    # Ctrl-C once PostgreSQL, Redis and PgBouncer run and the app is starting
    with demo() as proc:
        head = read_until(proc, "  PgBouncer", timeout=40)
        base = demo_dir(head)
        pids = started_by(psutil.Process(proc.pid), base)
        # PostgreSQL (postmaster and its workers), Redis, PgBouncer at least
        assert len(pids) >= 4, pids
        ports = {int(p) for line in head for p in re.findall(r":(\d{2,5})\b", line)}
        assert len(ports) == 3 and all(listening(p) for p in ports), ports
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    assert_nothing_left(pids, ports, base)
