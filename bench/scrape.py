"""Scraping an exporter the way Prometheus does, and under concurrent load with ``wrk``.

Sequential scrapes reuse one keep-alive connection and ask for gzip, as Prometheus does; the
concurrent numbers come from ``wrk`` (a C load generator, so the client adds little noise).
"""

from __future__ import annotations

import gzip
import http.client
import os
import random
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class Scraper:
    """A keep-alive HTTP/1.1 client for one exporter's /metrics."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = (parts.path or "/metrics") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def get(self, accept_gzip: bool = True) -> tuple[int, bytes, bool]:
        """(status, body as received, whether it was gzip-encoded)."""
        headers = {"Accept": "text/plain;version=0.0.4"}
        if accept_gzip:
            headers["Accept-Encoding"] = "gzip"
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request("GET", self.path, headers=headers)
                response = self._conn.getresponse()
                body = response.read()
                encoded = response.getheader("Content-Encoding", "") == "gzip"
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, body, encoded
            except (http.client.HTTPException, ConnectionError):
                # the server closed an idle keep-alive connection: reconnect once
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def text(self, accept_gzip: bool = False) -> str:
        status, body, encoded = self.get(accept_gzip=accept_gzip)
        if status != 200:
            raise RuntimeError(f"GET {self.path} on port {self.port} answered {status}")
        return (gzip.decompress(body) if encoded else body).decode()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass(frozen=True)
class BodyStats:
    series: int
    bytes_plain: int
    bytes_gzip: int
    gzip_served: bool


def count_series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def body_stats(scraper: Scraper) -> BodyStats:
    """Series count, plain body size, and the gzip size (as served, or level 6 if not served)."""
    plain = scraper.text()
    status, body, encoded = scraper.get(accept_gzip=True)
    if status != 200:
        raise RuntimeError(f"gzip scrape answered {status}")
    gz = len(body) if encoded else len(gzip.compress(plain.encode(), 6))
    return BodyStats(count_series(plain), len(plain.encode()), gz, encoded)


def sequential(scraper: Scraper, count: int, max_seconds: float) -> list[float]:
    """Latencies in seconds of up to ``count`` back-to-back gzip scrapes within ``max_seconds``."""
    latencies: list[float] = []
    deadline = time.monotonic() + max_seconds
    for _ in range(count):
        start = time.perf_counter()
        status, _, _ = scraper.get()
        latencies.append(time.perf_counter() - start)
        if status != 200:
            raise RuntimeError(f"scrape answered {status}")
        if time.monotonic() > deadline:
            break
    return latencies


def paced(
    url: str, seconds: float, scrapers: int = 4, period: float = 0.25, seed: int = 0
) -> list[float]:
    """Latencies in seconds of ``scrapers`` concurrent keep-alive gzip scrapers, each asking
    once every ``period`` seconds (at a random phase, jittered) for ``seconds``.

    Unlike ``wrk``, which asks again the moment an answer arrives, this load leaves the
    exporter idle between scrapes, so the latencies say how long a scrape waits behind the
    collections, not how long it queues behind the other scrapers' answers.
    """
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def scrape(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        scraper = Scraper(url, timeout=60)
        try:
            due = time.monotonic() + rng.uniform(0, period)
            while due < deadline:
                time.sleep(max(0.0, due - time.monotonic()))
                start = time.perf_counter()
                status, _, _ = scraper.get()
                took = time.perf_counter() - start
                with lock:
                    latencies.append(took)
                    if status != 200:
                        failures.append(f"status {status}")
                # the next turn at its own pace; one missed while an answer was slow is
                # skipped, as Prometheus does, never made up by asking back to back
                due += period * rng.uniform(0.5, 1.5)
                if due < time.monotonic():
                    due = time.monotonic() + period * rng.uniform(0.5, 1.5)
        except (OSError, http.client.HTTPException) as exc:
            with lock:
                failures.append(str(exc))
        finally:
            scraper.close()

    threads = [threading.Thread(target=scrape, args=(i,), daemon=True) for i in range(scrapers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    if failures:
        raise RuntimeError(f"paced scrapes failed: {failures[0]} ({len(failures)} in all)")
    return latencies


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50: float
    p99: float
    errors: int
    non_2xx: int


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Read requests, requests/s, p50/p99 latency and errors from ``wrk --latency`` output."""
    percentiles: dict[str, float] = {}
    for match in re.finditer(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)\s*$", output, re.MULTILINE):
        percentiles[match.group(1)] = _duration(match.group(2))
    total = re.search(r"^\s+(\d+) requests in ([\d.]+\w+),", output, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if total is None or rps is None or set(percentiles) != {"50", "99"}:
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = 0
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sockets:
        errors = sum(int(n) for n in sockets.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_duration(total.group(2)),
        rps=float(rps.group(1)),
        p50=percentiles["50"],
        p99=percentiles["99"],
        errors=errors,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def wrk_cpu() -> int | None:
    """The CPU ``wrk`` is pinned to: the last one, when there are at least two.

    On a small machine an unpinned load generator competes with the exporter for every core
    and its own scheduling shows up as the exporter's tail latency; pinned, it leaves the other
    cores to the exporter under test (the same for every exporter).
    """
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[-1] if len(cpus) >= 2 else None


def run_wrk(url: str, seconds: int, connections: int = 4, threads: int = 2) -> WrkResult:
    """``wrk -c4 -t2 -d<seconds>s --latency`` with gzip, as a Prometheus server would ask."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is missing: run `make setup` (Debian package wrk)")
    cpu = wrk_cpu()
    pin = [] if cpu is None or shutil.which("taskset") is None else ["taskset", "-c", str(cpu)]
    out = subprocess.run(
        [
            *pin,
            binary,
            f"-c{connections}",
            f"-t{threads}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            "-H",
            "Accept-Encoding: gzip",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    return parse_wrk(out.stdout)
