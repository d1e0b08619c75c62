"""The remote-collector skeleton: timeout, drop on failure, backoff, lock, translation."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest
from prometheus_client.core import GaugeMetricFamily

from exporter.collectors.base import Collected, CollectError
from exporter.collectors.connected import Backoff, ConnectedCollector
from exporter.config import CollectorSettings, SecretTarget, Timing


class FakeConnection:
    """Records what was done to it; ``fail``/``hang`` script the next sample."""

    opened = 0

    def __init__(self) -> None:
        FakeConnection.opened += 1
        self.number = FakeConnection.opened
        self.closed_by: str | None = None


class Scripted(ConnectedCollector[SecretTarget, CollectorSettings, FakeConnection]):
    """Samples a FakeConnection; ``mode`` decides what the next cycle does."""

    name: ClassVar[str] = "scripted"
    up_metric: ClassVar[str | None] = "perf_scripted_up"

    def __init__(self, timing: Timing) -> None:
        super().__init__(SecretTarget(name="t"), CollectorSettings(), timing)
        self.mode = "ok"
        self.refuse_connect = False
        self.seen: list[FakeConnection] = []

    async def connect(self) -> FakeConnection:
        if self.refuse_connect:
            raise ConnectionRefusedError(111, "refused")
        return FakeConnection()

    async def sample(self, conn: FakeConnection) -> Collected:
        self.seen.append(conn)
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "query":
            raise LookupError("no such view")
        if self.mode == "bug":
            raise ZeroDivisionError("division by zero")
        return Collected([GaugeMetricFamily("perf_scripted_value", "v", value=conn.number)])

    def translate(self, exc: Exception) -> CollectError | None:
        if isinstance(exc, TimeoutError):
            return CollectError("timeout", "the fake did not answer in time")
        if isinstance(exc, ConnectionRefusedError):
            return CollectError("connection", "the fake refused the connection")
        if isinstance(exc, LookupError):
            return CollectError("query", "a fake query failed")
        return None

    def keeps_connection(self, error: CollectError) -> bool:
        return error.reason == "query"

    async def disconnect(self, conn: FakeConnection, *, abort: bool) -> None:
        conn.closed_by = "abort" if abort else "close"


async def test_the_connection_is_kept_between_cycles_and_closed_politely_at_the_end() -> None:
    coll = Scripted(Timing(interval=1.0, timeout=0.5))
    await coll.collect()
    await coll.collect()
    assert coll.seen[0] is coll.seen[1]
    first = coll.seen[0]
    await coll.close()
    assert first.closed_by == "close"
    assert coll.connection is None


async def test_a_timeout_drops_the_connection_and_the_next_cycle_waits_the_backoff() -> None:
    coll = Scripted(Timing(interval=1.0, timeout=0.1))
    await coll.collect()
    coll.mode = "hang"
    with pytest.raises(CollectError) as err:
        await coll.collect()
    assert (err.value.reason, err.value.message) == ("timeout", "the fake did not answer in time")
    hung = coll.seen[-1]
    await asyncio.sleep(0.01)  # the dropped connection is closed in the background
    assert hung.closed_by == "abort"
    assert coll.connection is None
    coll.mode = "ok"
    with pytest.raises(CollectError) as again:  # within the first wait (at most 0.5 s)
        await coll.collect()
    assert again.value.reason == "timeout" and again.value is not err.value
    await asyncio.sleep(0.55)
    result = await coll.collect()
    assert result.families[0].samples[0].value != hung.number  # a new connection
    await coll.close()


async def test_a_query_error_keeps_the_connection_when_the_collector_says_so() -> None:
    coll = Scripted(Timing(interval=1.0, timeout=0.5))
    await coll.collect()
    coll.mode = "query"
    with pytest.raises(CollectError) as err:
        await coll.collect()
    assert err.value.reason == "query"
    coll.mode = "ok"
    await coll.collect()  # no backoff: the connection was never lost
    assert coll.seen[0] is coll.seen[-1]
    await coll.close()


async def test_a_bug_propagates_unchanged_and_still_drops_the_connection() -> None:
    coll = Scripted(Timing(interval=1.0, timeout=0.5))
    coll.mode = "bug"
    with pytest.raises(ZeroDivisionError):
        await coll.collect()
    assert coll.connection is None
    await coll.close()
    assert coll.seen[0].closed_by == "abort"


async def test_borrowing_waits_for_a_cycle_and_a_failure_in_it_drops_the_connection() -> None:
    coll = Scripted(Timing(interval=1.0, timeout=0.5))
    async with coll.borrow() as conn:
        assert conn is None  # never connected: borrowing does not connect
    await coll.collect()
    async with coll.borrow() as conn:
        assert conn is coll.connection is not None
        cycle = asyncio.ensure_future(coll.collect())
        await asyncio.sleep(0.05)
        assert not cycle.done()  # the cycle waits for the lock
    await cycle
    borrowed = coll.connection
    with pytest.raises(OSError):
        async with coll.borrow():
            raise OSError("the wait-event query failed")
    assert coll.connection is None
    await coll.collect()  # reconnects at once: the failure was not the cycle's
    assert coll.connection is not borrowed
    await coll.close()


def test_backoff_doubles_with_jitter_and_never_passes_its_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr("exporter.collectors.connected.time.monotonic", lambda: now[0])
    backoff = Backoff(initial=0.5, cap=2.0)
    waits = []
    for _ in range(6):
        backoff.failed()
        wait = backoff._not_before - now[0]
        waits.append(wait)
    for wait, nominal in zip(waits, (0.5, 1.0, 2.0, 2.0, 2.0, 2.0), strict=True):
        assert 0.8 * nominal <= wait <= nominal
    assert not backoff.ready()
    now[0] += 2.0
    assert backoff.ready()
    backoff.succeeded()
    backoff.failed()
    assert backoff._not_before - now[0] <= 0.5
