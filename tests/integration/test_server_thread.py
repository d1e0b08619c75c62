"""/metrics is served on a loop of its own: a scrape never waits for the collections' loop.

The daemon runs in this test's event loop, as it runs in ``python -m exporter``. A callback then
holds that loop until a scrape made from another thread has come back; were the server on the
collections' loop, the scrape could only be answered after the hold ends and the hold would run
out instead. /summary, which reads the board, is asked of the collections' loop and answers
once it is free again.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from pathlib import Path

from exporter import config as config_module
from exporter.daemon import Daemon
from tests.support.servers import free_port

HOLD = 20.0


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=2 * HOLD) as response:
        return response.status, response.read()


async def test_a_scrape_is_answered_while_the_collections_loop_is_held(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "perf-exporter.yml"
    path.write_text(f"web: {{listen_address: '127.0.0.1:{port}'}}\ntargets: {{}}\n")
    daemon = Daemon(config_module.load(path, environ={}), path, {})
    running = asyncio.create_task(daemon.run())
    loop = asyncio.get_running_loop()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                status, _ = await loop.run_in_executor(None, _get, url + "/healthz")
                if status == 200:
                    break
            except OSError:
                await asyncio.sleep(0.05)
        answered = threading.Event()
        scraped: list[tuple[int, bytes]] = []

        def scrape() -> None:
            scraped.append(_get(url + "/metrics"))
            answered.set()

        def hold() -> bool:
            # blocks the daemon's (this test's) loop: no collection, render or callback runs
            return answered.wait(HOLD)

        threading.Thread(target=scrape, daemon=True).start()
        assert hold(), "the scrape was not answered while the collections' loop was held"
        status, body = scraped[0]
        assert status == 200 and b"perf_exporter_build_info" in body

        # the board lives on the collections' loop: /summary is answered there, once it is free
        status, summary = await loop.run_in_executor(None, _get, url + "/summary")
        assert status == 200 and json.loads(summary)["schema_version"] == 2
    finally:
        daemon.stop()
        assert await asyncio.wait_for(running, 10) == 0
