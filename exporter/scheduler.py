"""Runs every collector for every target on its own interval and feeds the snapshot.

One APScheduler job per collector x target (``max_instances=1``, ``coalesce=True``, a little
jitter), each run under ``asyncio.wait_for``: a slow or hung target times out on its own and
never delays another. The outcome of every run becomes two snapshot parts: the data (with an
expiry of twice the interval) and the job's self metrics (success, duration, last success,
errors by reason), which outlive failures so an operator can see what broke and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.collectors import COLLECTORS
from exporter.collectors.base import REASONS, Collected, CollectError, Collector, Reason
from exporter.config import Config, SecretTarget, TargetConfig, url_passwords
from exporter.logs import register_secret
from exporter.snapshot import Snapshot

log = logging.getLogger(__name__)

#: The host collector's ``target`` in self metrics: it has no remote target.
LOCAL_TARGET = "local"
#: Suffix of the APScheduler id of a job's one-off first run.
FIRST_RUN = "#first"

ResultListener = Callable[[str, str, Collected | None, float], None]


@dataclass
class JobStats:
    """What the self metrics say about one job; survives config reloads (counters stay up)."""

    success: bool = False
    duration: float = 0.0
    last_success: float = 0.0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    state: str = "new"


@dataclass
class Job:
    collector_name: str
    target: str
    collector: Collector[Any, Any]
    interval: float
    timeout: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.collector_name, self.target)


def _backstop(job: Job) -> float:
    return job.timeout + min(0.5, 0.05 * job.interval)


def _same(old: Job, new: Job) -> bool:
    """Whether a reload left this job exactly as it was (config models are frozen: == works)."""
    return (
        type(old.collector) is type(new.collector)
        and old.collector.target == new.collector.target
        and old.collector.settings == new.collector.settings
        and (old.interval, old.timeout) == (new.interval, new.timeout)
    )


def failure_reason(exc: BaseException) -> tuple[Reason, str]:
    """The error reason and one-sentence message of a failed run.

    Collectors translate their drivers' errors into :class:`CollectError`; the scheduler knows
    no driver, so anything else is a timeout of its own backstop or ``other`` (a bug).
    """
    if isinstance(exc, CollectError):
        return exc.reason, exc.message
    if isinstance(exc, TimeoutError):
        return "timeout", "the collection did not finish within its timeout"
    return "other", f"unexpected {type(exc).__name__}: {exc}"


def _register_secrets(target: TargetConfig) -> None:
    """Teach the log masker every password this target may use, wherever it is written."""
    if isinstance(target, SecretTarget):
        with contextlib.suppress(OSError):
            register_secret(target.password())
    for attr in ("dsn", "url"):
        value = getattr(target, attr, None)
        if isinstance(value, str):
            for password in url_passwords(value):
                register_secret(password)


def spread_phases(jobs: list[Job]) -> list[float]:
    """Seconds from now to each job's first periodic run, evenly spread over its interval.

    Jobs of one interval get phases ``k / n`` of it. A phase in the first quarter of the
    interval moves one interval later, so the periodic runs start between a quarter of an
    interval and one and a quarter after the first run (which comes within the first quarter):
    never two runs back to back, and with room to spare in the ``2 x interval`` a result stays
    fresh, even for a collection that takes most of its timeout.
    """
    groups: dict[float, list[int]] = {}
    for index, job in enumerate(jobs):
        groups.setdefault(job.interval, []).append(index)
    phases = [0.0] * len(jobs)
    for interval, members in groups.items():
        for k, index in enumerate(members):
            phase = interval * k / len(members)
            phases[index] = phase + interval if phase < interval / 4 else phase
    return phases


def build_jobs(config: Config) -> list[Job]:
    """One job per enabled collector and configured target (the host has exactly one)."""
    jobs = []
    for name in COLLECTORS:
        if not config.enabled(name):
            continue
        configured = getattr(config.targets, name, None)
        if configured is not None and not configured:
            # a remote kind without targets: its module (and driver) is never loaded
            continue
        cls = COLLECTORS[name]
        settings = getattr(config.collectors, name)
        if not cls.target_label:
            targets: list[TargetConfig] = [TargetConfig(name=LOCAL_TARGET)]
        else:
            targets = list(configured or [])
        for target in targets:
            _register_secrets(target)
            timing = config.timing_for(name, target)
            collector = cls(target, settings, timing)
            jobs.append(Job(name, target.name, collector, timing.interval, timing.timeout))
    return jobs


class Scheduler:
    """Owns the jobs, runs them, and writes their outcome into the snapshot."""

    def __init__(self, snapshot: Snapshot, on_change: Callable[[], None]) -> None:
        self.snapshot = snapshot
        self._on_change = on_change
        self._listeners: list[ResultListener] = []
        self._jobs: dict[tuple[str, str], Job] = {}
        self._stats: dict[tuple[str, str], JobStats] = {}
        self._aps = AsyncIOScheduler(timezone=UTC)
        #: Runs in flight by job key, so shutdown and reloads can cancel them.
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}

    def add_listener(self, listener: ResultListener) -> None:
        """Called after every run with (collector, target, result or None, now)."""
        self._listeners.append(listener)

    @property
    def running(self) -> bool:
        return bool(self._aps.running)

    def stats(self) -> Mapping[tuple[str, str], JobStats]:
        return self._stats

    def start(self, jobs: list[Job]) -> None:
        self._aps.start()
        self._install(jobs)

    async def replace(self, jobs: list[Job]) -> None:
        """Swap in the jobs of a new config; counters are kept.

        A job whose collector, target, settings, interval and timeout did not change keeps its
        running collector (connection, histogram counts, counter baselines) and its schedule.
        The others are stopped: their run in flight is cancelled before the collector is closed,
        so a connection opened mid-run cannot outlive it.
        """
        kept: list[Job] = []
        fresh: list[Job] = []
        for job in jobs:
            old = self._jobs.get(job.key)
            if old is not None and _same(old, job):
                kept.append(old)
            else:
                fresh.append(job)
        kept_keys = {job.key for job in kept}
        stopped = [job for key, job in self._jobs.items() if key not in kept_keys]
        for job in stopped:
            self._aps.remove_job(self._job_id(job))
            with contextlib.suppress(JobLookupError):  # its first run is still to come
                self._aps.remove_job(self._job_id(job) + FIRST_RUN)
            del self._jobs[job.key]
        await self._cancel([job.key for job in stopped])
        await self._close(stopped)
        new_keys = {job.key for job in jobs}
        for job in stopped:
            if job.key not in new_keys:
                self.snapshot.drop(("data", *job.key))
                self.snapshot.drop(("meta", *job.key))
                self._stats.pop(job.key, None)
        self._install(fresh)
        self._on_change()

    async def shutdown(self, grace: float = 3.0) -> None:
        """Stop scheduling, cancel runs in flight, close every collector."""
        if self._aps.running:
            self._aps.shutdown(wait=False)
        await self._cancel(list(self._running), grace)
        await self._close(list(self._jobs.values()), grace)

    async def _cancel(self, keys: list[tuple[str, str]], grace: float = 3.0) -> None:
        tasks = [self._running[key] for key in keys if key in self._running]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)

    @staticmethod
    def _job_id(job: Job) -> str:
        return f"{job.collector_name}/{job.target}"

    def _install(self, jobs: list[Job]) -> None:
        now = datetime.now(UTC)
        phases = spread_phases(jobs)
        # first runs 20 ms apart, closer where that would pass a quarter of an interval (a
        # thousand targets): every first run then comes before the first periodic one
        step = min(0.02, min((job.interval for job in jobs), default=1.0) / max(1, 4 * len(jobs)))
        for index, job in enumerate(jobs):
            self._jobs[job.key] = job
            stats = self._stats.setdefault(job.key, JobStats())
            self._publish_meta(job, stats)
            # the first run right away (staggered a little) so a fresh start has data ...
            self._aps.add_job(
                self._run,
                "date",
                args=[job],
                id=self._job_id(job) + FIRST_RUN,
                run_date=now + timedelta(seconds=step * index + random.uniform(0, 0.05)),
                misfire_grace_time=max(1, int(job.interval)),
            )
            # ... then every interval at the job's own phase, so that a thousand targets are
            # collected a few at a time all through the interval rather than in one burst that
            # holds the event loop (and every scrape) for seconds
            self._aps.add_job(
                self._run,
                "interval",
                args=[job],
                id=self._job_id(job),
                seconds=job.interval,
                jitter=min(1.0, job.interval * 0.05),
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(job.interval)),
                next_run_time=now + timedelta(seconds=phases[index]),
            )

    async def _close(self, jobs: list[Job], grace: float = 3.0) -> None:
        async def close_one(job: Job) -> None:
            try:
                await asyncio.wait_for(job.collector.close(), grace)
            except Exception as exc:  # closing must never stop the others from closing
                log.debug(
                    "closing collector failed", extra={"job": self._job_id(job), "error": exc}
                )

        if jobs:
            await asyncio.gather(*(close_one(job) for job in jobs))

    async def _run(self, job: Job) -> None:
        if job.key in self._running:
            return  # the first run still going when the first periodic one comes
        task = asyncio.current_task()
        if task is not None:
            self._running[job.key] = task
        try:
            await self.run_once(job)
        except asyncio.CancelledError:
            # only shutdown and reloads cancel a run; APScheduler would log it as a crash
            return
        finally:
            if task is not None and self._running.get(job.key) is task:
                del self._running[job.key]

    async def run_once(self, job: Job) -> Collected | None:
        """Collect once under the job's timeout and publish the outcome."""
        if self._jobs.get(job.key) is not job:
            return None  # replaced by a reload while this run was queued
        stats = self._stats.setdefault(job.key, JobStats())
        cls = type(job.collector)
        start = time.perf_counter()
        result: Collected | None = None
        try:
            # a backstop a little beyond the collector's own timeout, so the collector's more
            # precise message and clean-up win when it honours the timeout itself
            result = await asyncio.wait_for(job.collector.collect(), _backstop(job))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason, message = failure_reason(exc)
            stats.errors[reason] += 1
            state = f"{reason}: {message}"
            if state != stats.state:
                level = logging.ERROR if reason == "other" else logging.WARNING
                log.log(
                    level,
                    "collector failed",
                    extra={
                        "collector": job.collector_name,
                        "target": job.target,
                        "reason": reason,
                        "error": message,
                    },
                    exc_info=exc if reason == "other" else None,
                )
            stats.state = state
        duration = time.perf_counter() - start
        now = time.time()
        stats.duration = duration
        stats.success = result is not None
        target_label = job.target if cls.target_label else None
        if result is not None:
            if stats.state not in ("ok", "new"):
                log.info(
                    "collector recovered",
                    extra={"collector": job.collector_name, "target": job.target},
                )
            stats.state = "ok"
            stats.last_success = now
        if self._jobs.get(job.key) is not job:
            return result  # reloaded meanwhile: its replacement owns the snapshot parts
        data: list[Metric] = list(result.families) if result is not None else []
        if cls.up_metric:
            data.append(GaugeMetricFamily(cls.up_metric, cls.up_help, value=float(stats.success)))
        stale = [GaugeMetricFamily(cls.up_metric, cls.up_help, value=0.0)] if cls.up_metric else []
        self.snapshot.put(
            ("data", *job.key), data, target=target_label, ttl=2 * job.interval, stale=stale
        )
        self._publish_meta(job, stats)
        for listener in self._listeners:
            listener(job.collector_name, job.target, result, now)
        self._on_change()
        return result

    def _publish_meta(self, job: Job, stats: JobStats) -> None:
        labels = ["collector", "target"]
        values = [job.collector_name, job.target]
        success = GaugeMetricFamily(
            "perf_exporter_collector_success",
            "1 if the last collection of this collector and target succeeded, else 0.",
            labels=labels,
        )
        success.add_metric(values, float(stats.success))
        duration = GaugeMetricFamily(
            "perf_exporter_collector_duration_seconds",
            "How long the last collection of this collector and target took.",
            labels=labels,
        )
        duration.add_metric(values, stats.duration)
        last = GaugeMetricFamily(
            "perf_exporter_collector_last_success_timestamp_seconds",
            "Unix time of the last successful collection (0 if none yet).",
            labels=labels,
        )
        last.add_metric(values, stats.last_success)
        errors = CounterMetricFamily(
            "perf_exporter_collector_errors",
            "Failed collections by reason (timeout, connection, auth, query, other).",
            labels=[*labels, "reason"],
        )
        for reason in REASONS:
            errors.add_metric([*values, reason], float(stats.errors[reason]))
        interval = GaugeMetricFamily(
            "perf_exporter_collector_interval_seconds",
            "The configured collection interval of this collector and target.",
            labels=labels,
        )
        interval.add_metric(values, job.interval)
        self.snapshot.put(
            ("meta", *job.key), [success, duration, last, errors, interval], target=None
        )
