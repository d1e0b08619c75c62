"""How perf-exporter's RSS and CPU grow with the number of PostgreSQL + Redis targets.

Every target points at the same servers under its own name. The daemon runs at a short interval
so that a few collection rounds fit in a bounded window; CPU per round (every target collected
once, plus everything else the process did meanwhile, so an upper bound) is extrapolated to the
share of one core at a 15 s interval.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.exporters import perf_exporter_config, start_perf_exporter
from bench.measure import Servers, collector_duration_ms, last_success, ms, scrape_fields
from bench.scrape import Scraper, body_stats, run_wrk, sequential
from bench.server_load import (
    SCRIPT_INNER_COMMANDS,
    pg_calls_by_role,
    pg_wait_sampling,
    split_script_calls,
)

PRODUCTION_INTERVAL = 15.0


def _inner(by_command: dict[str, int]) -> tuple[str, ...]:
    """The commands whose time is already in their script's EVALSHA/EVAL time."""
    return SCRIPT_INNER_COMMANDS if split_script_calls(by_command)[1] else ()


def _count_collections(scraper: Scraper, seconds: float, poll: float) -> tuple[dict[str, int], int]:
    """Completed collections per collector during ``seconds`` (from last-success changes)."""
    seen = last_success(scraper.text())
    counts: dict[str, int] = {}
    polls = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(poll)
        polls += 1
        now = last_success(scraper.text())
        for key, ts in now.items():
            if seen.get(key) != ts:
                counts[key[0]] = counts.get(key[0], 0) + 1
        seen = now
    return counts, polls


def measure_targets(
    targets: int,
    port: int,
    pg_port: int,
    redis_port: int,
    servers: Servers,
    workdir: Path,
    interval: float,
    rounds: float,
    wrk_seconds: int,
    scrapes: int,
) -> dict[str, Any]:
    """Run a daemon with ``targets`` PostgreSQL + Redis targets and measure it; always stop it."""
    config = perf_exporter_config(port, pg_port, redis_port, targets=targets, interval=interval)
    exporter = start_perf_exporter(
        f"perf_exporter_x{targets}", config, workdir, ready_timeout=60 + targets * 0.5
    )
    scraper = Scraper(exporter.url)
    try:
        proc = exporter.process
        time.sleep(min(interval, 2.0))  # let the first rounds' connection set-up settle
        cpu0 = proc.cpu_seconds()
        pg0 = pg_calls_by_role(servers.pg_sql, ["bench_perf"])["bench_perf"]
        samples0, sample_ms0 = pg_wait_sampling(servers.pg_sql, "bench_perf")
        redis0 = servers.redis.by_command()
        usec0 = servers.redis.usec
        start = time.monotonic()
        counts, polls = _count_collections(scraper, interval * rounds, poll=interval / 4)
        elapsed = time.monotonic() - start
        cpu = proc.cpu_seconds() - cpu0
        pg = pg_calls_by_role(servers.pg_sql, ["bench_perf"])["bench_perf"] - pg0
        samples1, sample_ms1 = pg_wait_sampling(servers.pg_sql, "bench_perf")
        samples, sample_ms = samples1 - samples0, sample_ms1 - sample_ms0
        redis1 = servers.redis.by_command()
        by_command = {
            name: calls - redis0.get(name, 0)
            for name, calls in redis1.items()
            if calls - redis0.get(name, 0) > 0
        }
        usec = {
            name: value - usec0.get(name, 0)
            for name, value in servers.redis.usec.items()
            if name in by_command and name != "info"  # the bench's own INFO calls
        }
        commands, inside_scripts = split_script_calls(by_command)
        pg_cycles = counts.get("postgres", 0)
        redis_cycles = counts.get("redis", 0)
        full_rounds = (pg_cycles + redis_cycles) / (2 * targets)
        cpu_per_round = cpu / full_rounds if full_rounds else None
        rss, peak = proc.memory_bytes()
        body = body_stats(scraper)
        latencies = sequential(scraper, scrapes, max_seconds=15)
        scraper.close()
        wrk = run_wrk(exporter.url, wrk_seconds)
        durations = collector_duration_ms(scraper.text())
        return {
            "kind": "scaling",
            "targets": targets,
            "interval_s": interval,
            "window_s": round(elapsed, 2),
            "window_polls": polls,
            "postgres_collections": pg_cycles,
            "redis_collections": redis_cycles,
            "rounds": round(full_rounds, 2),
            "cpu_seconds": round(cpu, 3),
            "cpu_core_pct_at_interval": round(100 * cpu / elapsed, 2),
            "cpu_per_round_ms": None if cpu_per_round is None else ms(cpu_per_round),
            "cpu_core_pct_at_15s": (
                None
                if cpu_per_round is None
                else round(100 * cpu_per_round / PRODUCTION_INTERVAL, 2)
            ),
            "rss_bytes": rss,
            "rss_peak_bytes": peak,
            **scrape_fields(body, latencies, wrk),
            "pg_statements_per_collection": round(pg / pg_cycles, 2) if pg_cycles else None,
            # the wait sampler's statements between collections, and their server time
            "pg_wait_samples_per_collection": (
                round(samples / pg_cycles, 2) if pg_cycles else None
            ),
            "pg_wait_sample_server_ms_per_collection": (
                round(sample_ms / pg_cycles, 3) if pg_cycles else None
            ),
            "redis_commands_per_collection": (
                round(commands / redis_cycles, 2) if redis_cycles else None
            ),
            "redis_commands_inside_scripts_per_collection": (
                round(inside_scripts / redis_cycles, 2) if redis_cycles else None
            ),
            # Redis time of the exporter's commands, inner script commands counted once (in
            # their EVALSHA); INFO left out because the bench's own INFO calls are mixed in
            "redis_usec_per_collection": (
                round(
                    sum(v for k, v in usec.items() if k not in _inner(by_command)) / redis_cycles,
                    1,
                )
                if redis_cycles
                else None
            ),
            "redis_commands_by_name_per_collection": {
                name: round(calls / redis_cycles, 2)
                for name, calls in sorted(by_command.items(), key=lambda item: -item[1])
            }
            if redis_cycles
            else {},
            "collector_duration_ms": durations,
        }
    finally:
        scraper.close()
        exporter.stop()
