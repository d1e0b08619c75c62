"""The fleet point's paced scrapers (bench.scrape.paced) against a small local server."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.report import fleet_lines
from bench.scrape import paced
from tests.unit.test_bench_speed import _fleet


@contextmanager
def _server(status: int = 200, delay: float = 0.0) -> Iterator[list[tuple[int, float]]]:
    """An HTTP/1.1 server on 127.0.0.1; yields (client port, arrival time) per request."""
    seen: list[tuple[int, float]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with lock:
                seen.append((self.client_address[1], time.monotonic()))
            time.sleep(delay)
            body = b"metric 1\n"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        seen.append((server.server_address[1], 0.0))  # the server's own port first
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def test_paced_scrapers_ask_at_their_own_pace_and_never_back_to_back() -> None:
    with _server(delay=0.01) as seen:
        port = seen.pop(0)[0]
        latencies = paced(f"http://127.0.0.1:{port}/metrics", 1.0, scrapers=4, period=0.2)
    # about five scrapes a scraper in one second (fewer on a busy machine: a turn missed while an
    # answer was slow is skipped), each kept to its own connection
    assert 4 <= len(latencies) <= 32
    assert len(latencies) == len(seen)
    assert all(took >= 0.01 for took in latencies)
    by_connection: dict[int, list[float]] = {}
    for client, arrived in seen:
        by_connection.setdefault(client, []).append(arrived)
    assert len(by_connection) == 4
    gaps = [b - a for arrivals in by_connection.values() for a, b in itertools.pairwise(arrivals)]
    # wrk would ask again as soon as an answer is in (10 ms here); a paced scraper waits at
    # least half its period (100 ms), less what a busy machine makes it late by
    assert gaps and min(gaps) >= 0.05


def test_paced_scrapes_that_fail_are_not_counted_as_latencies() -> None:
    with _server(status=503) as seen:
        port = seen.pop(0)[0]
        with pytest.raises(RuntimeError, match="status 503"):
            paced(f"http://127.0.0.1:{port}/metrics", 0.3, scrapers=2, period=0.1)


def _paced_cell(lines: list[str]) -> str:
    row = next(line for line in lines if line.startswith("| 4 (1 + 3)"))
    return row.split("|")[11].strip()


def test_the_fleet_table_shows_the_paced_window() -> None:
    record = _fleet(
        paced_p50_ms=1.5, paced_p99_ms=9.0, paced_max_ms=12.0, paced_rps=16.0, paced_scrapes=240
    )
    assert _paced_cell(fleet_lines([record])) == "1.5 / 9.0 / 12.0 (16.0)"
    # a record from before the paced window reads as unmeasured
    assert _paced_cell(fleet_lines([_fleet()])) == "-"
