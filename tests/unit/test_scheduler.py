"""Scheduler: failures and timeouts are explicit per job and never touch other jobs."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.base import Collected, CollectError, Collector
from exporter.config import CollectorSettings, TargetConfig
from exporter.scheduler import Job, Scheduler, failure_reason
from exporter.snapshot import Snapshot


class Scripted(Collector[TargetConfig, CollectorSettings]):
    """A collector whose behaviour each test scripts: ok, raise, or hang."""

    name = "scripted"
    up_metric = "perf_scripted_up"
    up_help = "Whether the scripted source answered."
    behaviour: ClassVar[dict[str, str]] = {}

    async def collect(self) -> Collected:
        mode = self.behaviour.get(self.target.name, "ok")
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "auth":
            raise CollectError("auth", "password authentication failed for user monitor")
        if mode == "crash":
            raise ZeroDivisionError("division by zero")
        return Collected(
            [GaugeMetricFamily("perf_scripted_value", "A value.", value=42.0)], {"ratio": 0.5}
        )


def job(name: str, timeout: float = 0.2) -> Job:
    target = TargetConfig(name=name)
    return Job("scripted", name, Scripted(target, CollectorSettings()), 10.0, timeout)


def samples(snapshot: Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = snapshot.render().text.decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_failing_and_hung_jobs_do_not_affect_a_healthy_one() -> None:
    Scripted.behaviour = {"bad": "auth", "slow": "hang", "broken": "crash"}
    snapshot = Snapshot()
    sched = Scheduler(snapshot, on_change=lambda: None)
    jobs = [job("good"), job("bad"), job("slow"), job("broken")]
    sched._jobs = {j.key: j for j in jobs}
    results = await asyncio.gather(*(sched.run_once(j) for j in jobs))
    assert [r is not None for r in results] == [True, False, False, False]
    got = samples(snapshot)

    def val(name: str, **labels: str) -> float | None:
        return got.get((name, tuple(sorted(labels.items()))))

    assert val("perf_scripted_value", target="good") == 42.0
    assert val("perf_scripted_up", target="good") == 1.0
    for name in ("bad", "slow", "broken"):
        assert val("perf_scripted_up", target=name) == 0.0
        assert val("perf_scripted_value", target=name) is None  # no stale series
        assert val("perf_exporter_collector_success", collector="scripted", target=name) == 0.0
    assert val("perf_exporter_collector_success", collector="scripted", target="good") == 1.0
    errors = {
        (t, r): val(
            "perf_exporter_collector_errors_total", collector="scripted", target=t, reason=r
        )
        for t in ("good", "bad", "slow", "broken")
        for r in ("auth", "timeout", "other")
    }
    assert errors[("bad", "auth")] == 1.0
    assert errors[("slow", "timeout")] == 1.0
    assert errors[("broken", "other")] == 1.0
    assert errors[("good", "auth")] == errors[("good", "timeout")] == 0.0


async def test_failure_logged_once_per_state_change(caplog) -> None:  # type: ignore[no-untyped-def]
    Scripted.behaviour = {"bad": "auth"}
    snapshot = Snapshot()
    sched = Scheduler(snapshot, on_change=lambda: None)
    bad = job("bad")
    sched._jobs = {bad.key: bad}
    caplog.set_level("INFO")
    for _ in range(3):
        await sched.run_once(bad)
    assert [r.getMessage() for r in caplog.records].count("collector failed") == 1
    Scripted.behaviour = {}
    await sched.run_once(bad)
    await sched.run_once(bad)
    assert [r.getMessage() for r in caplog.records].count("collector recovered") == 1
    stats = sched.stats()[bad.key]
    assert stats.errors["auth"] == 3 and stats.success


def test_only_collectors_translate_errors_the_scheduler_sees_timeouts_and_bugs() -> None:
    assert failure_reason(TimeoutError())[0] == "timeout"
    assert failure_reason(CollectError("query", "x")) == ("query", "x")
    # a driver's error a collector did not translate is a bug of that collector
    assert failure_reason(ConnectionRefusedError())[0] == "other"
    assert failure_reason(ValueError("x"))[0] == "other"


async def test_reload_keeps_unchanged_collectors_and_cancels_removed_runs() -> None:
    Scripted.behaviour = {"slow": "hang"}
    snapshot = Snapshot()
    sched = Scheduler(snapshot, on_change=lambda: None)
    keep, slow = job("keep"), job("slow")
    sched.start([keep, slow])
    try:
        await asyncio.sleep(0.3)  # the first runs start right away; "slow" hangs in collect()
        assert slow.key in sched._running
        running = sched._running[slow.key]
        # a reload with "keep" unchanged (a new but equal job) and "slow" gone
        await sched.replace([job("keep")])
        assert sched._jobs[keep.key] is keep  # same collector instance: nothing reconnects
        assert running.done()  # the hung run of the removed job was cancelled, not left behind
        assert slow.key not in sched._jobs
        text = snapshot.render().text.decode()
        assert 'target="slow"' not in text and 'target="keep"' in text
    finally:
        await sched.shutdown()
