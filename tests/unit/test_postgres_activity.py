"""The wait sampler's pure parts: chain roots, counting, families, the setting."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import pytest

from exporter.collectors import postgres_activity as act
from exporter.config import ConfigError, PostgresSettings, load
from tests.support.registry import registry_of


def unconnected_sampler(interval: float) -> act.ActivitySampler:
    """A sampler whose connection is never open, sampling every ``interval`` seconds (0: off)."""
    return act.ActivitySampler(
        connection=lambda: None,
        lock=asyncio.Lock(),
        interval=interval,
        timeout=1.0,
        databases=None,
        listed=frozenset,
        log_extra={},
    )


def test_a_chain_has_one_root_with_everyone_behind_it() -> None:
    # 30 waits for 20, which waits for 10; 40 waits for 20 too
    roots = act.chain_roots({20: [10], 30: [20], 40: [20, 30]})
    assert roots == {10: {20, 30, 40}}


def test_independent_chains_have_their_own_roots_and_a_waiter_counts_for_each() -> None:
    roots = act.chain_roots({2: [1], 4: [3], 5: [1, 3]})
    assert roots == {1: {2, 5}, 3: {4, 5}}


def test_a_cycle_has_no_root_and_an_empty_blocker_list_blocks_nobody() -> None:
    assert act.chain_roots({1: [2], 2: [1]}) == {}
    assert act.chain_roots({7: []}) == {}


def test_blocking_counts_waiters_per_database_and_describes_the_roots() -> None:
    waiters = [
        {"pid": 20, "datname": "app", "blockers": [10], "wait_seconds": 3.5},
        {"pid": 30, "datname": "app", "blockers": [20], "wait_seconds": 1.0},
        {"pid": 50, "datname": "jobs", "blockers": [0], "wait_seconds": None},
    ]
    sessions = [
        {
            "pid": 10,
            "datname": "app",
            "application_name": "migrate",
            "state": "idle in transaction",
            "transaction_age": 42.0,
            "query_id": "77",
        },
        {"pid": 20, "datname": "app", "application_name": "api", "state": "active"},
    ]
    blocking = act.blocking_from(waiters, sessions)
    assert blocking.blocked == {"app": (2, 3.5), "jobs": (1, 0.0)}
    assert blocking.roots == [
        {
            "pid": 10,
            "datname": "app",
            "application_name": "migrate",
            "state": "idle in transaction",
            "transaction_age_seconds": 42.0,
            "waiting": 2,
            "queryid": "77",
        },
        {
            "pid": 0,
            "datname": "",
            "application_name": "",
            "state": "prepared transaction",
            "transaction_age_seconds": None,
            "waiting": 1,
            "queryid": None,
        },
    ]


def test_counts_add_per_wait_event_and_per_listed_statement_only() -> None:
    counts = act.WaitCounts()
    rows = [
        {"datname": "app", "type": "CPU", "event": "CPU", "query_id": 5, "n": 3},
        {"datname": "app", "type": "Lock", "event": "relation", "query_id": 5, "n": 1},
        {"datname": "app", "type": "IO", "event": "DataFileRead", "query_id": 6, "n": 2},
        {"datname": "app", "type": "CPU", "event": "CPU", "query_id": None, "n": 1},
    ]
    counts.add(rows, {5})
    counts.add(rows[:1], {5, 6})
    assert counts.rounds == 2
    assert counts.samples == {
        ("app", "CPU", "CPU"): 7,
        ("app", "Lock", "relation"): 1,
        ("app", "IO", "DataFileRead"): 2,
    }
    assert counts.statements == {("5", "app", "CPU"): 6, ("5", "app", "Lock"): 1}


def test_statement_waits_are_exported_for_listed_statements_and_kept_for_later() -> None:
    counts = act.WaitCounts()
    counts.add([{"datname": "app", "type": "CPU", "event": "CPU", "query_id": 5, "n": 2}], {5})
    name = "perf_postgres_statement_wait_samples_total"
    labels = {"queryid": "5", "datname": "app", "wait_event_type": "CPU"}
    assert registry_of(act.wait_families(counts, {5})).get_sample_value(name, labels) == 2
    assert registry_of(act.wait_families(counts, {9})).get_sample_value(name, labels) is None
    # listed again later: the count goes on from where it was, never from zero
    counts.add([{"datname": "app", "type": "CPU", "event": "CPU", "query_id": 5, "n": 1}], {5})
    reg = registry_of(act.wait_families(counts, {5}))
    assert reg.get_sample_value(name, labels) == 3
    assert reg.get_sample_value("perf_postgres_wait_sample_rounds_total") == 2
    assert (
        reg.get_sample_value(
            "perf_postgres_wait_samples_total",
            {"datname": "app", "wait_event_type": "CPU", "wait_event": "CPU"},
        )
        == 3
    )


def test_blocking_families_give_zeros_for_quiet_databases_and_bound_application_names() -> None:
    roots = [
        {"datname": "app", "application_name": f"job{i % 12}", "waiting": 1} for i in range(14)
    ]
    blocking = act.Blocking(blocked={"app": (14, 9.5)}, roots=roots)
    reg = registry_of(act.blocking_families(["app", "quiet"], blocking))
    assert reg.get_sample_value("perf_postgres_blocked_sessions", {"datname": "quiet"}) == 0
    assert reg.get_sample_value("perf_postgres_blocked_max_seconds", {"datname": "quiet"}) == 0
    assert reg.get_sample_value("perf_postgres_blocked_sessions", {"datname": "app"}) == 14
    assert reg.get_sample_value("perf_postgres_blocked_max_seconds", {"datname": "app"}) == 9.5
    name = "perf_postgres_blocking_sessions"
    # job0 and job1 have two roots each and come first; the 10-name bound puts job10 and
    # job11 into "other"
    assert reg.get_sample_value(name, {"datname": "app", "application_name": "job0"}) == 2
    assert reg.get_sample_value(name, {"datname": "app", "application_name": "other"}) == 2
    shown = [
        s for f in act.blocking_families(["app"], blocking) if f.name == name for s in f.samples
    ]
    assert len(shown) == act.ROOT_APPLICATIONS_MAX + 1
    assert sum(s.value for s in shown) == 14


def test_the_sample_statement_reads_waitstart_and_query_id_only_where_they_exist() -> None:
    modern, old = act.activity_sql(150000), act.activity_sql(130000)
    assert "waitstart" in modern and "query_id AS query_id" in modern
    assert "waitstart" not in old and "NULL::bigint AS query_id" in old
    assert "current_setting('compute_query_id')" not in old


@pytest.mark.parametrize(
    ("given", "seconds"), [("1s", 1.0), ("250ms", 0.25), ("off", 0.0), (False, 0.0), (0, 0.0)]
)
def test_wait_sample_interval_takes_a_duration_or_off(given: object, seconds: float) -> None:
    settings = PostgresSettings.model_validate({"wait_sample_interval": given})
    assert settings.wait_sample_interval == seconds


def test_wait_sample_interval_defaults_to_one_second_and_refuses_a_tiny_one() -> None:
    assert PostgresSettings().wait_sample_interval == 1.0
    with pytest.raises(ConfigError) as err:
        load(None, {"collectors.postgres.wait_sample_interval": "10ms"}, environ={})
    assert err.value.problems == [
        "collectors.postgres.wait_sample_interval: must be off (0) or at least 100ms"
    ]


async def test_a_disabled_sampler_never_starts_and_close_is_harmless() -> None:
    sampler = unconnected_sampler(0.0)
    sampler.start(150000)
    assert sampler._task is None
    await sampler.close()


async def test_a_sampler_without_a_connection_takes_no_round() -> None:
    sampler = unconnected_sampler(0.1)
    sampler.start(150000)
    await asyncio.sleep(0.35)
    await sampler.close()
    assert sampler.counts.rounds == 0 and sampler.counts.errors == 0


async def test_a_refused_sample_in_the_cycle_costs_the_blocking_gauges_not_the_cycle() -> None:
    async def refuse(*_args: object) -> list[object]:
        raise asyncpg.InsufficientPrivilegeError("permission denied for function pg_blocking_pids")

    sampler = unconnected_sampler(0.0)
    families, blocking, problem = await sampler.cycle(refuse, None, 150000, {"app": 0})  # type: ignore[arg-type]
    assert families == [] and blocking.roots == [] and problem is None
    assert sampler.counts.errors == 1


def background_sample(blocked: dict[str, tuple[int, float]]) -> act.Sample:
    """A background sample taken just now that saw ``blocked``."""
    return act.Sample(
        taken=time.monotonic(),
        active=[],
        blocking=act.Blocking(blocked=blocked, roots=[]),
        compute_query_id="auto",
    )


class OneWaiter:
    """A fetch answering the sample statement with one session waiting 2.5 s in ``app``."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, *_args: object) -> list[dict[str, object]]:
        self.calls += 1
        waiter = {"pid": 20, "datname": "app", "blockers": [10], "wait_seconds": 2.5}
        return [
            {
                "compute_query_id": "auto",
                "active": None,
                "waiters": json.dumps([waiter]),
                "blockers": json.dumps([{"pid": 10, "datname": "app", "state": "idle"}]),
            }
        ]


async def test_a_recent_sample_that_saw_the_cycles_lock_waiters_gives_the_blocking_gauges() -> None:
    sampler = unconnected_sampler(1.0)
    sampler.latest = background_sample({"app": (1, 4.0)})
    fetch = OneWaiter()
    families, blocking, _problem = await sampler.cycle(fetch, None, 150000, {"app": 1, "b": 0})  # type: ignore[arg-type]
    await sampler.close()
    assert fetch.calls == 0
    assert blocking.blocked == {"app": (1, 4.0)}
    reg = registry_of(families)
    assert reg.get_sample_value("perf_postgres_blocked_max_seconds", {"datname": "app"}) == 4.0
    assert reg.get_sample_value("perf_postgres_blocked_sessions", {"datname": "b"}) == 0


@pytest.mark.parametrize(
    ("seen", "waiting"),
    [
        ({}, {"app": 1}),  # sampled before the session queued on the lock
        ({"app": (1, 4.0)}, {"app": 0}),  # sampled before it got the lock
        ({"app": (2, 4.0)}, {"app": 1}),
    ],
)
async def test_a_recent_sample_that_disagrees_with_the_cycles_lock_waiters_is_taken_again(
    seen: dict[str, tuple[int, float]], waiting: dict[str, int]
) -> None:
    # the cycle's own statement counted the waiters a moment ago: a gauge from the older
    # sample would contradict perf_postgres_lock_waiters in the same scrape
    sampler = unconnected_sampler(1.0)
    sampler.latest = background_sample(seen)
    fetch = OneWaiter()
    families, blocking, _problem = await sampler.cycle(fetch, None, 150000, waiting)  # type: ignore[arg-type]
    await sampler.close()
    assert fetch.calls == 1
    assert blocking.blocked == {"app": (1, 2.5)}
    reg = registry_of(families)
    assert reg.get_sample_value("perf_postgres_blocked_sessions", {"datname": "app"}) == 1
    assert reg.get_sample_value("perf_postgres_blocked_max_seconds", {"datname": "app"}) == 2.5
    assert sampler.counts.rounds == 0  # a round is the background's, not the cycle's
