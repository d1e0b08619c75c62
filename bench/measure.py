"""Measuring one exporter: body, sequential and concurrent scrapes, CPU, RSS, server load."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.exporters import Exporter
from bench.scrape import (
    BodyStats,
    Scraper,
    WrkResult,
    body_stats,
    percentile,
    run_wrk,
    sequential,
)
from bench.server_load import RedisCommandCounter, pg_calls_by_role
from bench.workload import PG_ROLES

_LAST_SUCCESS = re.compile(
    r"^perf_exporter_collector_last_success_timestamp_seconds\{([^}]*)\} (\S+)$", re.MULTILINE
)
_DURATION = re.compile(r"^perf_exporter_collector_duration_seconds\{([^}]*)\} (\S+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Plan:
    """How hard to measure: scrape counts and durations (the quick mode shrinks them)."""

    sequential_scrapes: int
    sequential_max_seconds: float
    wrk_seconds: int
    load_scrapes: int


FULL_PLAN = Plan(sequential_scrapes=300, sequential_max_seconds=40, wrk_seconds=5, load_scrapes=50)
QUICK_PLAN = Plan(sequential_scrapes=25, sequential_max_seconds=5, wrk_seconds=1, load_scrapes=10)


def _by_job(pattern: re.Pattern[str], text: str) -> dict[tuple[str, str], float]:
    found = {}
    for labels, value in pattern.findall(text):
        parsed = dict(_LABEL.findall(labels))
        found[(parsed.get("collector", ""), parsed.get("target", ""))] = float(value)
    return found


def last_success(text: str) -> dict[tuple[str, str], float]:
    """perf-exporter's last successful collection time per (collector, target)."""
    return _by_job(_LAST_SUCCESS, text)


def collector_durations(text: str) -> dict[tuple[str, str], float]:
    """perf-exporter's last collection duration in seconds per (collector, target)."""
    return _by_job(_DURATION, text)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def scrape_fields(body: BodyStats, latencies: list[float], wrk: WrkResult) -> dict[str, Any]:
    """What a record says of /metrics itself: its size, and its latency scraped one request
    after another and under wrk."""
    return {
        "series": body.series,
        "bytes_plain": body.bytes_plain,
        "bytes_gzip": body.bytes_gzip,
        "seq_p50_ms": ms(percentile(latencies, 50)),
        "seq_p99_ms": ms(percentile(latencies, 99)),
        "wrk_rps": round(wrk.rps, 1),
        "wrk_p50_ms": ms(wrk.p50),
        "wrk_p99_ms": ms(wrk.p99),
    }


def collector_duration_ms(text: str) -> dict[str, dict[str, float]]:
    """Per collector of a perf-exporter scrape, the mean and the longest last-cycle duration
    over its targets, in milliseconds."""
    by_collector: dict[str, list[float]] = {}
    for (collector, _), seconds in collector_durations(text).items():
        by_collector.setdefault(collector, []).append(seconds)
    return {
        collector: {"mean": ms(sum(values) / len(values)), "max": ms(max(values))}
        for collector, values in sorted(by_collector.items())
    }


@dataclass
class Servers:
    """The bench's handles on the monitored servers."""

    pg_sql: Callable[[str], str]
    redis: RedisCommandCounter

    def snapshot(self) -> tuple[int, int]:
        """(statements by the exporters' roles, Redis commands) executed so far."""
        pg = sum(pg_calls_by_role(self.pg_sql, PG_ROLES).values())
        return pg, self.redis.total()


def _remote_collections(scraper: Scraper) -> dict[tuple[str, str], float]:
    """Last success per job of the collectors that talk to a server (not the host's)."""
    return {key: ts for key, ts in last_success(scraper.text()).items() if key[0] != "host"}


def _load_window(scraper: Scraper, servers: Servers, scrapes: int) -> tuple[int, int]:
    before = servers.snapshot()
    for _ in range(scrapes):
        scraper.get()
    after = servers.snapshot()
    return after[0] - before[0], after[1] - before[1]


def server_load(
    exporter: Exporter,
    scraper: Scraper,
    servers: Servers,
    scrapes: int,
    paused: Sequence[Exporter],
) -> dict[str, Any]:
    """PostgreSQL statements and Redis commands caused per scrape.

    Daemons with their own schedule (``paused``) are SIGSTOPped meanwhile, so only this exporter
    can touch the servers. perf-exporter itself keeps running: its window is retried until no
    collection finished during it (or shortly after), so it holds scrapes and nothing else.
    """
    for other in paused:
        other.process.pause()
    try:
        if not exporter.ours:
            pg, commands = _load_window(scraper, servers, scrapes)
            return {
                "pg_statements_per_scrape": round(pg / scrapes, 3),
                "redis_commands_per_scrape": round(commands / scrapes, 3),
                "load_scrapes": scrapes,
                "load_window_clean": True,
            }
        attempts, clean = 0, False
        while not clean and attempts < 8:
            if attempts:
                time.sleep(0.5)
            attempts += 1
            before = _remote_collections(scraper)
            pg, commands = _load_window(scraper, servers, scrapes)
            time.sleep(1.5)  # a collection that started inside the window has finished by now
            clean = _remote_collections(scraper) == before
        return {
            "pg_statements_per_scrape": round(pg / scrapes, 3),
            "redis_commands_per_scrape": round(commands / scrapes, 3),
            "load_scrapes": scrapes,
            "load_window_clean": clean,
            "load_window_attempts": attempts,
        }
    finally:
        for other in paused:
            other.process.resume()


def measure_exporter(
    exporter: Exporter,
    servers: Servers,
    plan: Plan,
    paused: Sequence[Exporter] = (),
    wrk_seconds: int | None = None,
) -> dict[str, Any]:
    """Every per-exporter number of the comparison table, as one JSON-ready record.

    ``wrk_seconds`` overrides the plan's duration: perf-exporter's run spans one whole
    collection interval, so its scheduled collections (which share the event loop with the
    scrapes) weigh in the latency percentiles in their real proportion, not by luck of timing.
    """
    wrk_seconds = wrk_seconds or plan.wrk_seconds
    scraper = Scraper(exporter.url)
    proc = exporter.process
    try:
        body = body_stats(scraper)
        load = server_load(exporter, scraper, servers, plan.load_scrapes, paused)

        cpu0 = proc.cpu_seconds()
        latencies = sequential(scraper, plan.sequential_scrapes, plan.sequential_max_seconds)
        cpu1 = proc.cpu_seconds()
        scraper.close()
        wrk = run_wrk(exporter.url, wrk_seconds)
        cpu2 = proc.cpu_seconds()
        rss, peak = proc.memory_bytes()
        record: dict[str, Any] = {
            "kind": "exporter",
            "exporter": exporter.name,
            "ours": exporter.ours,
            "settings": exporter.settings,
            "series": body.series,
            "bytes_plain": body.bytes_plain,
            "bytes_gzip": body.bytes_gzip,
            "gzip_served": body.gzip_served,
            "seq_scrapes": len(latencies),
            "seq_p50_ms": ms(percentile(latencies, 50)),
            "seq_p99_ms": ms(percentile(latencies, 99)),
            "wrk_seconds": wrk_seconds,
            "wrk_requests": wrk.requests,
            "wrk_rps": round(wrk.rps, 1),
            "wrk_p50_ms": ms(wrk.p50),
            "wrk_p99_ms": ms(wrk.p99),
            "wrk_errors": wrk.errors + wrk.non_2xx,
            "cpu_seconds_seq": round(cpu1 - cpu0, 3),
            "cpu_seconds_wrk": round(cpu2 - cpu1, 3),
            "cpu_per_scrape_ms_seq": ms((cpu1 - cpu0) / len(latencies)),
            "cpu_per_scrape_ms_wrk": ms((cpu2 - cpu1) / max(1, wrk.requests)),
            "cpu_per_scrape_ms": ms((cpu2 - cpu0) / (len(latencies) + max(1, wrk.requests))),
            "rss_bytes": rss,
            "rss_peak_bytes": peak,
            **load,
        }
        if exporter.ours:
            text = scraper.text()
            record["collector_duration_ms"] = {
                f"{collector}/{target}": ms(seconds)
                for (collector, target), seconds in sorted(collector_durations(text).items())
            }
        return record
    finally:
        scraper.close()
