"""build_jobs hands collectors the interval and timeout the scheduler will actually use."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

import exporter.scheduler as scheduler
from exporter.collectors.base import Collected, Collector
from exporter.config import Config, RedisSettings, RedisTarget


class Recording(Collector[RedisTarget, RedisSettings]):
    """Keeps the target it was built with; collects nothing."""

    name: ClassVar[str] = "redis"
    up_metric: ClassVar[str | None] = "perf_redis_up"

    async def collect(self) -> Collected:
        return Collected([], {})


def test_collectors_get_the_effective_interval_and_timeout_not_their_own_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry: dict[str, Any] = {"redis": Recording}
    monkeypatch.setattr(scheduler, "COLLECTORS", registry)
    config = Config.model_validate(
        {
            "interval": "1s",
            "timeout": "0.8s",
            "targets": {
                "redis": [
                    {"name": "global", "url": "redis://127.0.0.1:1/0"},
                    {"name": "own", "url": "redis://127.0.0.1:1/0", "interval": "4s"},
                ]
            },
        }
    )
    jobs = {job.target: job for job in scheduler.build_jobs(config)}
    first = jobs["global"].collector
    assert (first.interval, first.timeout) == (1.0, 0.8)
    second = jobs["own"].collector
    assert (second.interval, second.timeout) == (4.0, 0.8)
    assert (jobs["own"].interval, jobs["own"].timeout) == (4.0, 0.8)
    # the configured object itself is left as the user wrote it
    assert config.targets.redis[0].interval is None
