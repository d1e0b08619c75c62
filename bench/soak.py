"""Soak: ``python -m bench --soak SECONDS``, perf-exporter at 1 s intervals while targets flap.

Starts its own PostgreSQL 15 and Redis 7 (``tests/support/servers.py``) on 127.0.0.1 free ports and
perf-exporter with a PostgreSQL, a Redis and an app target on them plus its host collector, all
at a 1 s interval; a ``Flapper`` (``tests/support/flapper.py``, the soak test's) kills and restarts
Redis and stops and starts PostgreSQL the whole time. The bench scrapes /metrics once a second
(keep-alive, gzip, as Prometheus does): every scrape's latency, and every collector's
``perf_exporter_collector_success`` going 0 -> 1 counted as a recovery; every few seconds it
writes a sample of RSS, open fds, asyncio tasks, CPU, failed cycles and recoveries so far.

Output: ``<out>/soak-<run id>.jsonl`` (a ``soak_run`` record, the ``soak_sample`` records and a
``soak_summary``), ``<out>/soak.md`` and, when matplotlib is there, ``<out>/soak.png``. The
growth assertion lives in ``tests/integration/test_load_soak.py``; this reports the numbers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.exporters import Exporter, start_perf_exporter
from bench.scrape import Scraper, percentile
from tests.support.flapper import Flapper
from tests.support.servers import PostgresServer, RedisServer, free_port

Record = dict[str, Any]

INTERVAL = 1.0
#: seconds each server stays down in one flap (Redis, then PostgreSQL, then a pause)
FLAP_PERIOD = 3.0
#: the quantities the summary reports start/end/min/max/growth for
QUANTITIES = (
    ("rss_bytes", "RSS (MiB)", 2**20),
    ("open_fds", "open fds", 1),
    ("asyncio_tasks", "asyncio tasks", 1),
)


def soak_config(port: int, pg: PostgresServer, cache: RedisServer) -> dict[str, Any]:
    return {
        "interval": f"{INTERVAL}s",
        "timeout": f"{INTERVAL * 0.8}s",
        "web": {"listen_address": f"127.0.0.1:{port}"},
        "log": {"level": "warn"},
        "collectors": {"host": {"enabled": True}},
        "targets": {
            "postgres": [{"name": "pg", "dsn": pg.dsn}],
            "redis": [{"name": "cache", "url": cache.url}],
            "app": [{"name": "web", "url": cache.url}],
        },
    }


class Reading:
    """What one scrape of /metrics says: unlabelled process values and per-job state."""

    def __init__(self, text: str) -> None:
        self.plain: dict[str, float] = {}
        self.success: dict[tuple[str, str], float] = {}
        self.errors = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if not s.labels:
                    self.plain[s.name] = float(s.value)
                elif s.name == "perf_exporter_collector_success":
                    self.success[(s.labels["collector"], s.labels["target"])] = float(s.value)
                elif s.name == "perf_exporter_collector_errors_total":
                    self.errors += float(s.value)


class Poller:
    """Scrapes once per call, timing it; counts failed scrapes and recoveries seen."""

    def __init__(self, url: str) -> None:
        self.scraper = Scraper(url, timeout=10)
        self.latencies_ms: list[float] = []
        self.scrape_errors = 0
        self.recoveries = 0
        self.last: Reading | None = None
        self._success: dict[tuple[str, str], float] = {}

    def poll(self) -> Reading | None:
        began = time.perf_counter()
        try:
            status, body, encoded = self.scraper.get(accept_gzip=True)
        except OSError:
            self.scrape_errors += 1
            self.scraper.close()
            return None
        self.latencies_ms.append((time.perf_counter() - began) * 1000)
        if status != 200:
            self.scrape_errors += 1
            return None
        reading = Reading((gzip.decompress(body) if encoded else body).decode())
        for key, value in reading.success.items():
            if self._success.get(key) == 0.0 and value == 1.0:
                self.recoveries += 1
            self._success[key] = value
        self.last = reading
        return reading


def _sample(
    elapsed: float, reading: Reading, poller: Poller, window_ms: list[float], flapper: Flapper
) -> Record:
    p = reading.plain
    return {
        "kind": "soak_sample",
        "t_s": round(elapsed, 1),
        "rss_bytes": int(p["process_resident_memory_bytes"]),
        "open_fds": int(p["process_open_fds"]),
        "asyncio_tasks": int(p["perf_exporter_asyncio_tasks"]),
        "cpu_seconds": round(p["process_cpu_seconds_total"], 2),
        "scrapes": len(window_ms),
        "scrape_p50_ms": round(percentile(window_ms, 50), 2),
        "scrape_max_ms": round(max(window_ms), 2) if window_ms else None,
        "failed_cycles": int(reading.errors),
        "recoveries": poller.recoveries,
        "scrape_errors": poller.scrape_errors,
        "flaps": flapper.flaps,
        "down": sorted(f"{c}/{t}" for (c, t), v in reading.success.items() if v == 0.0),
    }


def _stats(values: list[float]) -> dict[str, float]:
    third = len(values) // 3
    # warm-up third excluded: the last third's peak over the middle third's (the test's rule)
    late_growth = max(values[2 * third :]) - max(values[third : 2 * third]) if third else 0.0
    return {
        "start": values[0],
        "end": values[-1],
        "min": min(values),
        "max": max(values),
        "growth": values[-1] - values[0],
        "growth_after_warmup": late_growth,
    }


def summarise(samples: list[Record], poller: Poller, flapper: Flapper) -> Record:
    summary: Record = {
        "kind": "soak_summary",
        "samples": len(samples),
        "duration_s": samples[-1]["t_s"] if samples else 0.0,
        "flaps": flapper.flaps,
        "redis_kills": flapper.redis_kills,
        "pg_stops": flapper.pg_stops,
        "redis_down_s_mean": round(
            sum(flapper.redis_down_s) / max(len(flapper.redis_down_s), 1), 2
        ),
        "pg_down_s_mean": round(sum(flapper.pg_down_s) / max(len(flapper.pg_down_s), 1), 2),
        "failed_cycles": samples[-1]["failed_cycles"] if samples else 0,
        "recoveries": poller.recoveries,
        "scrapes": len(poller.latencies_ms),
        "scrape_errors": poller.scrape_errors,
        "scrape_p50_ms": round(percentile(poller.latencies_ms, 50), 2),
        "scrape_p99_ms": round(percentile(poller.latencies_ms, 99), 2),
        "scrape_max_ms": round(max(poller.latencies_ms), 2) if poller.latencies_ms else None,
        "cpu_core_pct": round(
            100
            * (samples[-1]["cpu_seconds"] - samples[0]["cpu_seconds"])
            / max(samples[-1]["t_s"] - samples[0]["t_s"], 1e-9),
            2,
        )
        if len(samples) > 1
        else None,
    }
    for field, _label, _scale in QUANTITIES:
        summary[field] = _stats([float(s[field]) for s in samples]) if samples else {}
    return summary


def run(seconds: float, started_at: dt.datetime) -> list[Record]:
    """The soak itself; every server and process it started is stopped before it returns."""
    sample_every = min(5.0, max(1.0, seconds / 10))
    run_record: Record = {
        "kind": "soak_run",
        "run_id": "soak-" + started_at.strftime("%Y%m%dT%H%M%SZ"),
        "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": seconds,
        "interval_s": INTERVAL,
        "flap_period_s": FLAP_PERIOD,
        "sample_every_s": sample_every,
    }
    samples: list[Record] = []
    workdir = Path(tempfile.mkdtemp(prefix="perf-soak-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        pg = PostgresServer()
        stack.callback(pg.close)
        cache = RedisServer()
        stack.callback(cache.close)
        config = soak_config(free_port(), pg, cache)
        ours: Exporter = start_perf_exporter("perf_exporter", config, workdir)
        stack.callback(ours.stop)
        poller = Poller(ours.url)
        stack.callback(poller.scraper.close)
        flapper = Flapper(pg, cache, FLAP_PERIOD)
        stack.callback(flapper.stop)
        flapper.start()
        begin = time.monotonic()
        end = begin + seconds
        next_sample = begin + sample_every
        window: list[float] = []
        while (now := time.monotonic()) < end:
            if not ours.process.alive():
                raise RuntimeError(f"perf-exporter exited mid-soak:\n{ours.process.log_tail()}")
            before = len(poller.latencies_ms)
            reading = poller.poll()
            window += poller.latencies_ms[before:]
            if reading is not None and now >= next_sample:
                samples.append(_sample(now - begin, reading, poller, window, flapper))
                window = []
                next_sample += sample_every
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        flapper.stop()
        # the targets are back: wait (bounded) for every job to report success once more
        settle = time.monotonic() + 15
        while time.monotonic() < settle:
            reading = poller.poll()
            if reading is not None and reading.success and all(reading.success.values()):
                break
            time.sleep(0.5)
        last = poller.last
        run_record["all_up_at_end"] = bool(
            last is not None and last.success and all(last.success.values())
        )
        run_record["exit_code"] = ours.process.stop()
        summary = summarise(samples, poller, flapper)
    run_record["duration_s"] = round(time.monotonic() - begin, 1)
    return [run_record, *samples, summary]


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f}"


def markdown(records: list[Record]) -> str:
    run = next(r for r in records if r["kind"] == "soak_run")
    summary = next(r for r in records if r["kind"] == "soak_summary")
    lines = [
        f"# Soak {run['run_id']}",
        "",
        f"{run['date']}: perf-exporter for {run['seconds']:g} s at a {run['interval_s']:g} s "
        "interval (host collector, a PostgreSQL, a Redis and an app target), Redis "
        f"SIGKILLed and PostgreSQL stopped (immediate) in turn for {run['flap_period_s']:g} s "
        f"each, {summary['samples']} samples every {run['sample_every_s']:g} s from /metrics. "
        f"Daemon exit code on SIGTERM: {run['exit_code']}; every target up again after the "
        f"flapping stopped: {'yes' if run['all_up_at_end'] else '**no**'}.",
        "",
        "| quantity | start | end | min | max | growth end - start "
        "| growth after warm-up (last third's peak - middle third's) |",
        "|---|---|---|---|---|---|---|",
    ]
    for field, label, scale in QUANTITIES:
        stats = summary[field]
        if not stats:
            continue

        def fmt(value: float, scale: float = scale) -> str:
            return _mib(value) if scale != 1 else f"{value:g}"

        lines.append(
            f"| {label} | {fmt(stats['start'])} | {fmt(stats['end'])} | {fmt(stats['min'])} "
            f"| {fmt(stats['max'])} | {fmt(stats['growth'])} "
            f"| {fmt(stats['growth_after_warmup'])} |"
        )
    cpu = summary["cpu_core_pct"]
    lines += [
        "",
        "| flapping and recovery | |",
        "|---|---|",
        f"| flap cycles (Redis killed and back, PostgreSQL stopped and back) "
        f"| {summary['flaps']} |",
        f"| Redis kills / PostgreSQL stops | {summary['redis_kills']} / {summary['pg_stops']} |",
        f"| mean outage, Redis / PostgreSQL (s, restart included) "
        f"| {summary['redis_down_s_mean']} / {summary['pg_down_s_mean']} |",
        f"| failed collection cycles (`perf_exporter_collector_errors_total`) "
        f"| {summary['failed_cycles']} |",
        f"| recoveries seen (a collector's success 0 -> 1 between 1 s scrapes) "
        f"| {summary['recoveries']} |",
        f"| scrapes / failed scrapes | {summary['scrapes']} / {summary['scrape_errors']} |",
        f"| scrape latency p50 / p99 / max (ms) | {summary['scrape_p50_ms']} / "
        f"{summary['scrape_p99_ms']} / {summary['scrape_max_ms']} |",
        f"| CPU (% of one core, from `process_cpu_seconds_total`) "
        f"| {'n/a' if cpu is None else cpu} |",
        "",
        "Recoveries are counted from once-a-second scrapes, so an outage shorter than that can "
        "go unseen; failed cycles are the daemon's own counter and exact. The assertion that "
        "nothing grows is `tests/integration/test_load_soak.py`; this run only reports.",
    ]
    return "\n".join(lines) + "\n"


def plot(records: list[Record], path: Path) -> bool:
    """RSS, fds, tasks and scrape latency over time; False when matplotlib is missing."""
    samples = [r for r in records if r["kind"] == "soak_sample"]
    if not samples:
        return False
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s["t_s"] / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(9, 8), sharex=True)
    series = (
        ([s["rss_bytes"] / 2**20 for s in samples], "RSS (MiB)", "C0"),
        ([s["open_fds"] for s in samples], "open fds", "C1"),
        ([s["asyncio_tasks"] for s in samples], "asyncio tasks", "C2"),
        ([s["scrape_max_ms"] for s in samples], "scrape max (ms)", "C3"),
    )
    for ax, (values, label, color) in zip(axes, series, strict=True):
        ax.plot(minutes, values, color=color, linewidth=1.2)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        low = min(v for v in values if v is not None)
        high = max(v for v in values if v is not None)
        pad = max((high - low) * 0.2, 1.0)
        ax.set_ylim(max(0.0, low - pad), high + pad)
    axes[-1].set_xlabel("minutes")
    run = next(r for r in records if r["kind"] == "soak_run")
    axes[0].set_title(
        f"perf-exporter soak {run['run_id']}: {run['interval_s']:g} s interval, targets flapping"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
