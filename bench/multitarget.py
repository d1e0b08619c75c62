"""Multi-target at N targets: perf-exporter against the references' ways of serving N targets.

``python -m bench --multi-target [N]`` (and the point after the fleet in the full run). N
PostgreSQL and N Redis targets, all pointing at the bench's servers under their own names, are
served by:

* perf-exporter: one daemon configured with the N + N targets (no namespace scan, host
  collector off: the references here have no node_exporter), collecting on its own 15 s
  schedule; Prometheus scrapes its ``/metrics`` once per interval;
* redis_exporter in its multi-target mode: one process, scraped at
  ``/scrape?target=redis://...`` once per Redis target and interval, with its defaults (no key
  counting, matching perf-exporter without the namespace scan);
* postgres_exporter: Debian's 0.11.1 has **no** multi-target mode. ``/probe`` and
  ``--config.file`` (auth_modules) came with 0.12.0; 0.11.1 rejects ``--config.file`` and
  answers ``/probe`` with its HTML landing page and status 200. Several DSNs in
  ``DATA_SOURCE_NAME`` are scraped together on one ``/metrics``, labelled by host:port, so N
  targets on one server collide (HTTP 500, "collected before with the same name and label
  values"). What 0.11 needs for N targets is N processes, one per target, each scraped at its
  ``/metrics``: that is what runs, with the bench's top-N ``pg_stat_statements`` query.

One loop plays Prometheus for everyone: each interval it scrapes every job once (perf-exporter,
then PostgreSQL and Redis targets alternately), spread evenly over the interval, one keep-alive
connection per job, gzip, a 10 s timeout. After a warm-up interval in which every job answered
(``pg_up 1`` / ``redis_up 1``, every perf-exporter target up; at most ``max_warmup`` tries),
whole intervals are measured: CPU of every process over them (``/proc/<pid>/stat``), RSS at the
end (peak ``VmHWM`` and PSS too: N Go processes share their binary's pages), scrape durations
of the loop's requests, failed scrapes, series per target, statements by each role.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import itertools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.exporters import (
    _TOP_N_QUERY,
    STATEMENTS_TOP_N,
    perf_exporter_config,
    start_perf_exporter,
    up_count,
)
from bench.measure import Servers, last_success, ms
from bench.process import Process, pss_bytes
from bench.scaling import PRODUCTION_INTERVAL
from bench.scrape import Scraper, count_series, percentile
from bench.server_load import pg_calls_by_role
from tests.support.servers import free_port

#: The side-by-side point of issue 18: 100 PostgreSQL + 100 Redis targets.
MULTI_TARGETS = 100
#: Prometheus's default scrape timeout.
SCRAPE_TIMEOUT = 10.0
NAMES = ("perf_exporter", "postgres_exporter", "redis_exporter")
#: perf-exporter's scrapes spread over one interval after the window (every phase of it).
PHASES = 30


@dataclass(frozen=True)
class QuickMulti:
    """The quick run's pass through this code: few targets, short intervals. Two of them and
    five targets, so that even redis_exporter's CPU there (~3 ms a scrape) is over the 10 ms
    clock tick /proc counts in."""

    targets: int = 5
    interval: float = 3.0
    measured: int = 2
    max_warmup: int = 2

    def timing(self) -> dict[str, Any]:
        return {"interval": self.interval, "measured": self.measured, "max_warmup": self.max_warmup}


QUICK_MULTI = QuickMulti()


@dataclass
class Job:
    """One Prometheus scrape job: one target of one exporter, on its own connection."""

    exporter: str
    target: str
    scraper: Scraper
    #: (status, decoded body) -> (answered fully, targets down in it)
    check: Callable[[int, str], tuple[bool, int]]


@dataclass
class Tally:
    """What the loop saw of one exporter's scrapes."""

    durations: list[float] = field(default_factory=list)
    scrapes: int = 0
    failed: int = 0
    targets_down: int = 0
    series: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: perf-exporter's bodies, one per interval: its collections are counted from them
    texts: list[str] = field(default_factory=list)


def _decoded(body: bytes, encoded: bool) -> str:
    return (gzip.decompress(body) if encoded else body).decode(errors="replace")


def _ref_check(up_line: str) -> Callable[[int, str], tuple[bool, int]]:
    def check(status: int, text: str) -> tuple[bool, int]:
        ok = status == 200 and f"\n{up_line}" in "\n" + text
        return ok, 0 if ok else 1

    return check


def _ours_check(targets: int) -> Callable[[int, str], tuple[bool, int]]:
    def check(status: int, text: str) -> tuple[bool, int]:
        if status != 200:
            return False, targets
        down = targets - up_count(text)
        return down == 0, down

    return check


def _scrape(job: Job, tally: Tally | None, count_body: bool) -> bool:
    """One scrape as Prometheus does it; True if it answered fully. ``tally`` None: warm-up."""
    start = time.perf_counter()
    try:
        status, body, encoded = job.scraper.get()
        elapsed = time.perf_counter() - start
        text = _decoded(body, encoded)
    except (OSError, http.client.HTTPException) as exc:
        job.scraper.close()
        if tally is not None:
            tally.scrapes += 1
            tally.failed += 1
            tally.errors.append(f"{job.target}: {exc!r}"[:200])
        return False
    ok, down = job.check(status, text)
    if tally is not None:
        tally.scrapes += 1
        tally.durations.append(elapsed)
        tally.failed += 0 if ok else 1
        tally.targets_down += down
        if job.exporter == "perf_exporter":
            tally.texts.append(text)
        elif count_body:
            tally.series.append(count_series(text))
        if not ok and len(tally.errors) < 20:
            tally.errors.append(f"{job.target}: status {status}, {down} down")
    return ok


def _interval(
    jobs: list[Job], interval: float, tallies: dict[str, Tally] | None, lag: list[float]
) -> tuple[float, bool]:
    """Scrape every job once, evenly spread over ``interval``; (start, every job answered)."""
    start = time.monotonic()
    slot = interval / len(jobs)
    clean = True
    for k, job in enumerate(jobs):
        delay = start + k * slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            lag.append(-delay)
        tally = None if tallies is None else tallies[job.exporter]
        clean = _scrape(job, tally, count_body=tallies is not None) and clean
    rest = start + interval - time.monotonic()
    if rest > 0:
        time.sleep(rest)
    return start, clean


def _start_postgres_exporters(
    count: int, pg_port: int, workdir: Path, processes: list[Process]
) -> list[str]:
    """``count`` postgres_exporter 0.11 processes, one per target (appended to ``processes``
    as they start, so the caller stops them whatever happens); their /metrics URLs."""
    queries = workdir / "postgres_exporter_queries.yaml"
    queries.write_text(_TOP_N_QUERY)
    urls = []
    for i in range(count):
        port = free_port()
        # no application_name of its own: perf-exporter labels some series by it, and 100
        # distinct names on one server would inflate every one of its PostgreSQL targets
        dsn = f"postgresql://bench_pgexp@127.0.0.1:{pg_port}/postgres?sslmode=disable"
        processes.append(
            Process(
                f"postgres_exporter_mt{i}",
                [
                    "prometheus-postgres-exporter",
                    f"--web.listen-address=127.0.0.1:{port}",
                    f"--extend.query-path={queries}",
                    "--log.level=warn",
                ],
                workdir,
                env={"DATA_SOURCE_NAME": dsn},
            )
        )
        urls.append(f"http://127.0.0.1:{port}/metrics")
    return urls


def _wait_listening(urls: list[str], processes: list[Process], timeout: float) -> None:
    """Every process answers its landing page (no database work) within ``timeout``."""
    waiting = dict(zip(urls, processes, strict=True))
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for url, proc in list(waiting.items()):
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited early:\n{proc.log_tail()}")
            scraper = Scraper(url.rsplit("/", 1)[0] + "/", timeout=2)
            try:
                if scraper.get(accept_gzip=False)[0] == 200:
                    del waiting[url]
            except (OSError, http.client.HTTPException):
                pass
            finally:
                scraper.close()
        if waiting:
            time.sleep(0.2)
    if waiting:
        proc = next(iter(waiting.values()))
        raise RuntimeError(f"{len(waiting)} exporters not listening:\n{proc.log_tail()}")


def _memory(processes: list[Process]) -> dict[str, int]:
    rss = peak = pss = 0
    for proc in processes:
        now, high = proc.memory_bytes()
        rss, peak, pss = rss + now, peak + high, pss + pss_bytes(proc.pid)
    return {"rss_bytes": rss, "rss_peak_bytes": peak, "pss_bytes": pss}


def _cpu(processes: list[Process]) -> float:
    return sum(proc.cpu_seconds() for proc in processes)


def _collection_errors(text: str) -> float:
    """perf-exporter's failed collection cycles so far, all jobs added up."""
    head = "perf_exporter_collector_errors_total{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(head))


def _collections(texts: list[str]) -> list[int]:
    """Collections completed between each two consecutive bodies (last-success changes; the
    bodies are one interval apart, so each job can complete at most one between two)."""
    stamps = [last_success(text) for text in texts]
    return [
        sum(1 for key, ts in after.items() if key[0] != "host" and before.get(key) != ts)
        for before, after in itertools.pairwise(stamps)
    ]


def _phases(scraper: Scraper, interval: float, count: int) -> list[float]:
    """Durations of ``count`` scrapes spread over one interval: every phase of the schedule."""
    durations = []
    start = time.monotonic()
    for k in range(count):
        delay = start + k * interval / count - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        began = time.perf_counter()
        try:
            scraper.get()
        except (OSError, http.client.HTTPException):
            scraper.close()
            continue
        durations.append(time.perf_counter() - began)
    return durations


def _series_split(text: str) -> tuple[int, int, int]:
    """perf-exporter's series with a PostgreSQL target label, a Redis one, and the rest."""
    pg = redis = other = 0
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if 'target="pg' in line:
            pg += 1
        elif 'target="redis' in line:
            redis += 1
        else:
            other += 1
    return pg, redis, other


def measure_multitarget(
    targets: int,
    pg_port: int,
    redis_port: int,
    workdir: Path,
    servers: Servers | None = None,
    interval: float = PRODUCTION_INTERVAL,
    measured: int = 2,
    max_warmup: int = 3,
) -> dict[str, Any]:
    """Run the three exporters for ``targets`` + ``targets`` targets; always stop them."""
    began = time.monotonic()
    groups: dict[str, list[Process]] = {name: [] for name in NAMES}
    scrapers: list[Scraper] = []
    try:
        pg_urls = _start_postgres_exporters(targets, pg_port, workdir, groups["postgres_exporter"])
        redis_port_http = free_port()
        groups["redis_exporter"].append(
            Process(
                "redis_exporter_mt",
                [
                    "prometheus-redis-exporter",
                    f"-web.listen-address=127.0.0.1:{redis_port_http}",
                    # /metrics would watch this one; the bench only asks /scrape?target=
                    f"-redis.addr=redis://127.0.0.1:{redis_port}",
                ],
                workdir,
            )
        )
        redis_base = f"http://127.0.0.1:{redis_port_http}"
        _wait_listening(
            [*pg_urls, f"{redis_base}/metrics"],
            [*groups["postgres_exporter"], *groups["redis_exporter"]],
            timeout=30 + targets * 0.2,
        )
        config = perf_exporter_config(
            free_port(),
            pg_port,
            redis_port,
            targets=targets,
            interval=interval,
            host=False,
            namespaces=False,
        )
        ours = start_perf_exporter(
            f"perf_exporter_mt{targets}", config, workdir, ready_timeout=60, fleet=True
        )
        groups["perf_exporter"].append(ours.process)
        ours_scraper = Scraper(ours.url, timeout=SCRAPE_TIMEOUT)
        scrapers.append(ours_scraper)
        # its first round is staggered: wait (bounded) until every target was up once
        deadline = time.monotonic() + 40 + 2 * targets * 0.05
        while up_count(ours_scraper.text()) < 2 * targets and time.monotonic() < deadline:
            time.sleep(1.0)
        ready_s = time.monotonic() - began

        redis_target = quote(f"redis://127.0.0.1:{redis_port}/0", safe="")
        jobs = [Job("perf_exporter", "all", ours_scraper, _ours_check(2 * targets))]
        for i, url in enumerate(pg_urls):
            pg_scraper = Scraper(url, timeout=SCRAPE_TIMEOUT)
            redis_scraper = Scraper(
                f"{redis_base}/scrape?target={redis_target}", timeout=SCRAPE_TIMEOUT
            )
            scrapers += [pg_scraper, redis_scraper]
            jobs.append(Job("postgres_exporter", f"pg{i}", pg_scraper, _ref_check("pg_up 1")))
            jobs.append(Job("redis_exporter", f"redis{i}", redis_scraper, _ref_check("redis_up 1")))

        lag: list[float] = []
        warmups, clean = 0, False
        while not clean and warmups < max_warmup:
            warmups += 1
            _, clean = _interval(jobs, interval, None, lag)
        lag.clear()

        tallies = {name: Tally() for name in NAMES}
        roles = ["bench_perf", "bench_pgexp"]
        seen = ours_scraper.text()
        pg0 = pg_calls_by_role(servers.pg_sql, roles) if servers else None
        cpu0 = {name: _cpu(procs) for name, procs in groups.items()}
        t0 = None
        for _ in range(measured):
            start, _ = _interval(jobs, interval, tallies, lag)
            t0 = start if t0 is None else t0
        cpu1 = {name: _cpu(procs) for name, procs in groups.items()}
        t1 = time.monotonic()
        memory = {name: _memory(procs) for name, procs in groups.items()}
        pg1 = pg_calls_by_role(servers.pg_sql, roles) if servers else None
        assert t0 is not None
        window = t1 - t0
        # CPU was read just before the first measured interval and just after the last
        final = ours_scraper.text()
        # bodies one interval apart: before the window, the loop's after the first interval, after
        collections = _collections([seen, *tallies["perf_exporter"].texts[1:], final])
        collection_errors = _collection_errors(final) - _collection_errors(seen)
        # outside the window: Prometheus scrapes perf-exporter at one fixed phase of its
        # schedule; how long a scrape takes at every phase of an interval
        phases = _phases(ours_scraper, interval, PHASES)
        pg_series, redis_series, other_series = _series_split(final)
        all_durations = [
            d for name in ("postgres_exporter", "redis_exporter") for d in tallies[name].durations
        ]

        refs_cpu = sum(cpu1[name] - cpu0[name] for name in NAMES[1:])
        served = {"perf_exporter": 2 * targets, "postgres_exporter": targets}
        served["redis_exporter"] = targets
        exporters: dict[str, Any] = {}
        for name in NAMES:
            tally, cpu = tallies[name], cpu1[name] - cpu0[name]
            record: dict[str, Any] = {
                "processes": len(groups[name]),
                "targets": served[name],
                "cpu_seconds": round(cpu, 3),
                "cpu_core_pct": round(100 * cpu / window, 2),
                "cpu_ms_per_target_interval": ms(cpu / (window / interval) / served[name]),
                **memory[name],
                "scrapes": tally.scrapes,
                "failed_scrapes": tally.failed,
                "targets_down": tally.targets_down,
                "scrape_p50_ms": ms(percentile(tally.durations, 50)),
                "scrape_p99_ms": ms(percentile(tally.durations, 99)),
                "scrape_max_ms": ms(max(tally.durations, default=float("nan"))),
                "errors": tally.errors[:10],
            }
            if name == "perf_exporter":
                record["series"] = count_series(final)
                record["series_per_target"] = round(record["series"] / (2 * targets), 1)
                record["series_per_pg_target"] = round(pg_series / targets, 1)
                record["series_per_redis_target"] = round(redis_series / targets, 1)
                record["series_untargeted"] = other_series
                record["collections"] = sum(collections)
                record["collections_per_interval"] = collections
                # why collections failed or fell behind, if they did (the daemon logs at warn)
                record["log_tail"] = ours.process.log_tail(1500).splitlines()[-5:]
                record["collections_expected"] = 2 * targets * measured
                record["collection_errors"] = round(collection_errors)
                record["phases"] = len(phases)
                record["phases_p50_ms"] = ms(percentile(phases, 50))
                record["phases_p99_ms"] = ms(percentile(phases, 99))
                record["phases_max_ms"] = ms(max(phases, default=float("nan")))
                record["phases_ms"] = [round(d * 1000, 1) for d in phases]
            else:
                mean = sum(tally.series) / len(tally.series) if tally.series else float("nan")
                record["series_per_target"] = round(mean, 1)
            if pg0 is not None and pg1 is not None and name != "redis_exporter":
                role = "bench_perf" if name == "perf_exporter" else "bench_pgexp"
                statements = (pg1[role] - pg0[role]) / (window / interval) / targets
                record["pg_statements_per_pg_target_interval"] = round(statements, 2)
            exporters[name] = record
        return {
            "kind": "multitarget",
            "targets": targets,
            "postgres_targets": targets,
            "redis_targets": targets,
            "interval_s": interval,
            "warmup_intervals": warmups,
            "warmup_clean": clean,
            "measured_intervals": measured,
            "window_s": round(window, 2),
            "ready_s": round(ready_s, 1),
            "loop_lag_max_ms": ms(max(lag, default=0.0)),
            "loop_late_scrapes": sum(1 for late in lag if late > 0.005),
            "references_cpu_ms_per_target_interval": ms(
                refs_cpu / (window / interval) / (2 * targets)
            ),
            "references_scrape_p50_ms": ms(percentile(all_durations, 50)),
            "references_scrape_p99_ms": ms(percentile(all_durations, 99)),
            "settings": {
                "perf_exporter": "one daemon, N + N targets, namespaces off, host collector "
                f"off, interval {interval:g} s, statements_top_n {STATEMENTS_TOP_N}",
                "postgres_exporter": "0.11.1 has no /probe: one process per target, "
                f"/metrics, top {STATEMENTS_TOP_N} pg_stat_statements by --extend.query-path",
                "redis_exporter": "one process, /scrape?target=redis://..., defaults "
                "(no -count-keys)",
            },
            "exporters": exporters,
            "duration_s": round(time.monotonic() - began, 1),
        }
    finally:
        for scraper in scrapers:
            scraper.close()
        _stop_all([p for procs in groups.values() for p in procs])


def _stop_all(processes: list[Process]) -> None:
    """SIGTERM every process group first, then wait for each (SIGKILL after 10 s)."""
    for proc in processes:
        if proc.alive():
            proc.resume()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in processes:
        proc.stop()
