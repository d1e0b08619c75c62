"""The summary a person reads, in the real daemon and a real headless Chromium.

A daemon watches the host, a live Redis, a Redis target that is gone and an application whose
cached function (``CacheStats.cached``, misses of a known 20 ms) publishes to the live Redis.
/summary answers by question, the down target's rows read "no data" with its error, the text
form answers curl, and Chromium renders the page at 1400 px and at a phone's 390 px without
sideways scrolling. Screenshots go to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from exporter.instrument import CacheStats, Publisher
from tests.support.daemon import ROOT, DaemonProcess
from tests.support.servers import RedisServer, free_port, require_binary

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

ARTIFACTS = ROOT / "test-artifacts"
QUESTIONS = ("cache", "pools", "queries", "resources", "exporter")


async def _traffic(url: str, stop: threading.Event) -> None:
    """An app's cached endpoint: 20 ms of work on a miss, 8 keys of a 1 s TTL asked in turn,
    so every collection interval sees both hits and misses."""
    client = aioredis.from_url(url)
    publisher = Publisher(client, flush_interval=0.2)
    api = CacheStats("api_response", publisher)

    @api.cached(ttl=1, key=lambda item: f"item:{item}")
    async def item(n: int) -> dict[str, int]:
        await asyncio.sleep(0.02)
        return {"n": n}

    n = 0
    while not stop.is_set() and n < 100_000:
        await item(n % 8)
        n += 1
        await asyncio.sleep(0.005)
    await publisher.close()
    await client.aclose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, RedisServer]]:
    redis = RedisServer()
    config: dict[str, Any] = {
        "interval": "1s",
        "timeout": "800ms",
        "targets": {
            "redis": [
                {"name": "cache", "url": redis.url},
                {"name": "gone", "url": f"redis://127.0.0.1:{free_port()}/0"},
            ],
            "app": [{"name": "web", "url": redis.url}],
        },
    }
    stop = threading.Event()
    app = threading.Thread(target=lambda: asyncio.run(_traffic(redis.url, stop)), daemon=True)
    try:
        with DaemonProcess(config, tmp_path_factory.mktemp("summary")) as daemon:
            app.start()

            def speedup() -> Any:
                return next(
                    (
                        r["value"]
                        for r in _question(_summary(daemon), "cache")["signals"]
                        if r["signal"] == "app_cache_speedup" and r["value"] is not None
                    ),
                    None,
                )

            daemon.wait_for(lambda: speedup() is not None, timeout=30, what="a speedup")
            yield daemon, redis
    finally:
        stop.set()
        app.join(timeout=10)
        redis.stop()


def _summary(daemon: DaemonProcess) -> dict[str, Any]:
    status, _, body = daemon.get("/summary")
    assert status == 200
    return dict(json.loads(body))


def _question(data: dict[str, Any], qid: str) -> dict[str, Any]:
    return next(q for q in data["questions"] if q["id"] == qid)


def test_summary_answers_by_question_with_the_down_target_as_no_data(
    world: tuple[DaemonProcess, RedisServer],
) -> None:
    daemon, _ = world
    data = _summary(daemon)
    assert data["schema_version"] == 2
    assert [q["id"] for q in data["questions"]] == list(QUESTIONS)
    gone = [
        r
        for q in data["questions"]
        for r in q["signals"]
        if r["target"] == "gone" and r["source"] == "redis"
    ]
    assert gone and {r["status"] for r in gone} == {"no_data"}
    assert all(
        re.fullmatch(
            r"redis target gone is down: cannot reach Redis at 127\.0\.0\.1:\d+ .*\)\.", r["reason"]
        )
        for r in gone
    ), gone
    assert data["score_signals"]["without_data"] >= len({r["signal"] for r in gone}) - 1
    assert data["sources"]["redis"]["gone"]["error"].startswith("cannot reach Redis")


def test_text_form_answers_curl_with_the_same_questions(
    world: tuple[DaemonProcess, RedisServer],
) -> None:
    daemon, _ = world
    for path, headers in (("/summary?format=text", {}), ("/summary", {"Accept": "text/plain"})):
        status, got, body = daemon.get(path, headers)
        assert status == 200 and got["Content-Type"].startswith("text/plain"), (path, got)
        text = body.decode()
        for title in ("Is my cache working?", "Is a pool saturated?", "Which query got slow?"):
            assert title in text
        assert "redis target gone is down" in text
    status, _, body = daemon.get("/summary?format=xml")
    assert (status, body) == (400, b"format must be json or text.\n")
    status, got, _ = daemon.get("/summary", {"Accept": "application/json"})
    assert got["Content-Type"].startswith("application/json")


def _chromium(width: int, *args: str) -> list[str]:
    return [
        require_binary("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={width},2400",
        *args,
    ]


def _dom(width: int, url: str) -> str:
    return subprocess.run(
        _chromium(width, "--dump-dom", url),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


@pytest.mark.parametrize("width", [1400, 390])
def test_chromium_renders_sections_and_the_down_target_row(
    world: tuple[DaemonProcess, RedisServer], width: int, tmp_path: Path
) -> None:
    daemon, _ = world
    url = daemon.url + "/"
    dom = _dom(width, url)
    for qid in QUESTIONS:
        assert re.search(rf'<section id="q-{qid}" data-question="{qid}" data-status="\w+"', dom)
    down = re.findall(
        r'<div class="row st-no_data"[^>]*data-collector="redis" data-target="gone">(.*?)</div>',
        dom,
    )
    assert down, "no row of the down target"
    assert all("NO DATA" in row and "is down: cannot reach Redis" in row for row in down)
    collector_rows = re.findall(
        r'data-signal="exporter_collector_success"[^>]*data-collector="(\w+)" '
        r'data-target="(\w+)"',
        dom,
    )
    assert {("redis", "gone"), ("redis", "cache"), ("app", "web"), ("host", "local")} <= set(
        collector_rows
    )
    assert "Application cache speedup" in dom and "<h3>Saturation chain</h3>" in dom
    assert dom.count('<div class="row ') == dom.count('class="spark"')
    assert "<script" not in dom and not re.search(r'\b(src|href)="https?:', dom)
    assert 'name="viewport"' in dom and 'http-equiv="refresh" content="1"' in dom
    # the page's own layout at this width: the same HTML plus a probe that writes the width
    _, _, page = daemon.get("/")
    probe = tmp_path / "probe.html"
    probe.write_bytes(
        page.replace(
            b"</body>",
            b"<script>document.body.setAttribute('data-overflow', String("
            b"document.documentElement.scrollWidth - window.innerWidth))</script></body>",
        )
    )
    measured = _dom(width, probe.as_uri())
    overflow = re.search(r'data-overflow="(-?\d+)"', measured)
    assert overflow is not None and int(overflow.group(1)) <= 0, "the page scrolls sideways"
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / f"summary-{width}.png"
    png.unlink(missing_ok=True)
    subprocess.run(
        _chromium(width, f"--screenshot={png}", url), capture_output=True, timeout=60, check=True
    )
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
