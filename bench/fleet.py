"""The fleet point: many targets in one daemon at the real 15 s interval.

``python -m bench --targets N`` (and the 1,000-target point of the full run) starts
perf-exporter with N targets, one PostgreSQL for every three Redis (250 + 750 at 1,000), all
pointing at the bench's servers under their own names, its host collector on, at 15 s. The
Redis targets skip the namespace scan: 750 scans of the same 40,000 keys every 15 s saturate
the one Redis server (collections then time out there, not in the daemon). Three
whole intervals are measured, one after the other:

* quiet: only two scrapes (at its start and end), so the CPU is what the daemon itself costs
  at 15 s, as a share of one core;
* loaded: ``wrk -c4`` for a whole interval, so every scrape it times competes with the
  collections and the snapshot rebuilds that a real interval holds;
* paced: four scrapers, each asking about four times a second (``bench.scrape.paced``), so a
  scrape's latency is its wait behind the collections, not its queue behind the three other
  scrapers' answers that wrk, asking again the moment one arrives, builds up;

then sequential scrapes. The windows start three minutes after the daemon (``SETTLE_S``): in
its first minutes every target builds what it keeps, and the garbage collector's pauses of up
to half a second that come with it are the start-up's, not the steady state's; the RSS is read
when the targets are first up and again at the end.

Collections completed in each window are counted from the last-success timestamps, so a
window in which the daemon fell behind shows up. Every scrape asks for gzip, as Prometheus does:
the daemon makes ahead only the bodies scrapers ask for, so a quiet interval read in plain text
(as it was until 2026-12-07) did not pay for the gzip body a Prometheus makes it render.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.exporters import perf_exporter_config, start_perf_exporter, up_count
from bench.measure import collector_durations, last_success, ms
from bench.process import cpu_by_command
from bench.scaling import PRODUCTION_INTERVAL
from bench.scrape import Scraper, body_stats, paced, percentile, run_wrk, sequential
from bench.speed import SpeedProbe

#: The issue's fleet: 1,000 targets, a quarter of them PostgreSQL.
FLEET_TARGETS = 1000
#: Seconds the machine's speed is probed before the daemon starts (servers loaded, idle).
IDLE_PROBE_S = 8.0
#: Seconds after the daemon's start before the windows are measured: its warm-up (first
#: cycles, the garbage collector promoting what they built) is over by then at 1,000 targets.
SETTLE_S = 180.0
#: The bench's servers by process name, whose CPU the fleet point reads beside the daemon's.
SERVERS = ("postgres", "redis-server")
#: The paced window (after wrk's): this many scrapers, each asking about once every
#: PACED_PERIOD_S seconds (60 times Prometheus' rate at 15 s), for one whole interval.
PACED_SCRAPERS = 4
PACED_PERIOD_S = 0.25


def split(targets: int) -> tuple[int, int]:
    """(PostgreSQL, Redis) targets for a fleet of ``targets``: one PostgreSQL in four."""
    pg = max(1, targets // 4)
    return pg, max(1, targets - pg)


def _changed(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> int:
    return sum(1 for key, ts in after.items() if key[0] != "host" and before.get(key) != ts)


def measure_fleet(
    targets: int,
    port: int,
    pg_port: int,
    redis_port: int,
    workdir: Path,
    interval: float = PRODUCTION_INTERVAL,
) -> dict[str, Any]:
    """Run a daemon with a fleet of ``targets`` and measure one quiet and one loaded interval."""
    pg_targets, redis_targets = split(targets)
    config = perf_exporter_config(
        port,
        pg_port,
        redis_port,
        targets=pg_targets,
        redis_targets=redis_targets,
        interval=interval,
        namespaces=False,
    )
    probe = SpeedProbe()
    with probe:
        return _measure(targets, config, workdir, interval, probe)


def _measure(
    targets: int, config: dict[str, Any], workdir: Path, interval: float, probe: SpeedProbe
) -> dict[str, Any]:
    pg_targets = len(config["targets"]["postgres"])
    redis_targets = len(config["targets"]["redis"])
    time.sleep(IDLE_PROBE_S)
    idle_end = probe.mark()
    started = time.monotonic()
    exporter = start_perf_exporter(
        f"perf_exporter_fleet{targets}", config, workdir, ready_timeout=60, fleet=True
    )
    scraper = Scraper(exporter.url, timeout=60)
    try:
        proc = exporter.process
        # the first round is staggered over 20 ms per job: wait until every target was up
        # once (or give up after a bounded time and measure what there is)
        deadline = time.monotonic() + 40 + targets * 0.05
        up = 0
        while time.monotonic() < deadline:
            up = up_count(scraper.text(accept_gzip=True))
            if up >= targets:
                break
            time.sleep(2.0)
        ready_s = time.monotonic() - started
        rss_ready, _ = proc.memory_bytes()
        # the first minutes are not the daemon's steady state: every target's first cycles
        # build what it keeps (baselines, board series, trails), which the garbage collector
        # promotes and scans in pauses of up to half a second (see bench/README.md)
        time.sleep(max(0.0, started + SETTLE_S - time.monotonic()))
        settled_s = time.monotonic() - started
        seen = last_success(scraper.text(accept_gzip=True))
        servers0 = cpu_by_command(SERVERS)
        cpu0, t0, quiet_start = proc.cpu_seconds(), time.monotonic(), probe.mark()
        time.sleep(interval)
        cpu1, t1, quiet_end = proc.cpu_seconds(), time.monotonic(), probe.mark()
        servers1 = cpu_by_command(SERVERS)
        after_quiet = last_success(scraper.text(accept_gzip=True))
        quiet_collections = _changed(seen, after_quiet)
        wrk = run_wrk(exporter.url, int(interval))
        t2 = time.monotonic()
        cpu2, loaded_end = proc.cpu_seconds(), probe.mark()
        after_loaded = last_success(scraper.text(accept_gzip=True))
        loaded_collections = _changed(after_quiet, after_loaded)
        paced_start = time.monotonic()
        paced_latencies = paced(exporter.url, interval, PACED_SCRAPERS, PACED_PERIOD_S)
        paced_s = time.monotonic() - paced_start
        body = body_stats(scraper)
        latencies = sequential(scraper, 100, max_seconds=15)
        rss, peak = proc.memory_bytes()
        durations = collector_durations(scraper.text(accept_gzip=True))
        by_collector: dict[str, list[float]] = {}
        for (collector, _), seconds in durations.items():
            by_collector.setdefault(collector, []).append(seconds)
        return {
            "kind": "fleet",
            "targets": pg_targets + redis_targets,
            "postgres_targets": pg_targets,
            "redis_targets": redis_targets,
            "interval_s": interval,
            "ready_s": round(ready_s, 1),
            "settled_s": round(settled_s, 1),
            "rss_ready_bytes": rss_ready,
            "targets_up_at_start": up,
            "targets_up_at_end": up_count(scraper.text(accept_gzip=True)),
            "quiet_window_s": round(t1 - t0, 2),
            "quiet_collections": quiet_collections,
            "cpu_core_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
            "cpu_core_pct_loaded": round(100 * (cpu2 - cpu1) / (t2 - t1), 2),
            # the bench's own servers on the same two cores over the quiet window: every
            # target's statements land on one PostgreSQL and one Redis
            "servers_cpu_core_pct": {
                name: round(100 * (servers1[name] - servers0[name]) / (t1 - t0), 2)
                for name in SERVERS
            },
            "loaded_collections": loaded_collections,
            "rss_bytes": rss,
            "rss_peak_bytes": peak,
            "series": body.series,
            "bytes_plain": body.bytes_plain,
            "bytes_gzip": body.bytes_gzip,
            "seq_p50_ms": ms(percentile(latencies, 50)),
            "seq_p99_ms": ms(percentile(latencies, 99)),
            "wrk_requests": wrk.requests,
            "wrk_rps": round(wrk.rps, 1),
            "wrk_p50_ms": ms(wrk.p50),
            "wrk_p99_ms": ms(wrk.p99),
            "wrk_errors": wrk.errors + wrk.non_2xx,
            "paced_scrapers": PACED_SCRAPERS,
            "paced_period_s": PACED_PERIOD_S,
            "paced_scrapes": len(paced_latencies),
            "paced_rps": round(len(paced_latencies) / paced_s, 1),
            "paced_p50_ms": ms(percentile(paced_latencies, 50)),
            "paced_p99_ms": ms(percentile(paced_latencies, 99)),
            "paced_max_ms": ms(max(paced_latencies, default=float("nan"))),
            # the machine's speed (bench/speed.py): idle before the daemon, then each window
            "speed_idle": probe.window(0, idle_end),
            "speed_quiet": probe.window(quiet_start, quiet_end),
            "speed_loaded": probe.window(quiet_end, loaded_end),
            "collector_duration_ms": {
                collector: {"mean": ms(sum(v) / len(v)), "max": ms(max(v))}
                for collector, v in sorted(by_collector.items())
            },
        }
    finally:
        scraper.close()
        exporter.stop()
