"""Shutdown while collections hang: they are cancelled quietly, nothing is logged as an error."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client.core import GaugeMetricFamily

from exporter.collectors.base import Collected, Collector
from exporter.config import CollectorSettings, TargetConfig
from exporter.scheduler import Job, Scheduler
from exporter.snapshot import Snapshot


class Hanging(Collector[TargetConfig, CollectorSettings]):
    """Waits for an answer that never comes, like a Redis in DEBUG SLEEP."""

    name = "hanging"
    up_metric = "perf_hanging_up"
    up_help = "Whether the hanging source answered."
    started = 0

    async def collect(self) -> Collected:
        Hanging.started += 1
        await asyncio.sleep(3600)
        return Collected([GaugeMetricFamily("perf_hanging_value", "Never.", value=1.0)], {})


@pytest.mark.timeout(20)
async def test_shutdown_cancels_hung_collections_without_error_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sched = Scheduler(Snapshot(), on_change=lambda: None)
    jobs = [
        Job("hanging", name, Hanging(TargetConfig(name=name), CollectorSettings()), 10.0, 8.0)
        for name in ("a", "b")
    ]
    Hanging.started = 0
    sched.start(jobs)
    deadline = time.monotonic() + 5
    while Hanging.started < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert Hanging.started == 2
    start = time.monotonic()
    await sched.shutdown(grace=2.0)
    await asyncio.sleep(0.1)  # APScheduler reports a job's outcome from a done-callback
    assert time.monotonic() - start < 2.5
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]
