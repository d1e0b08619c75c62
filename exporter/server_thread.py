"""The HTTP server's own event loop, on a thread of its own.

The collections share one event loop; with a thousand targets it is busy a good part of every
second, and a scrape waiting its turn there waited behind hundreds of collection steps (the
fleet benchmark saw a p99 of seconds). On its own loop a scrape waits only for the interpreter
lock, which Python hands over every few milliseconds (:data:`SWITCH_INTERVAL`), and /metrics
needs little of it: the body is pre-rendered bytes, and sending them releases the lock. What
the server reads across the threads is an attribute holding an immutable body and a flag;
everything else (the summary board, the runbooks' thresholds) is asked of the collections'
loop with :func:`on_loop` and awaited.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds a thread may hold the interpreter lock while another waits for it (CPython's default
#: is 5 ms): how long a scrape can wait behind a collection step, at most, per hand-over. A
#: scrape of a thousand targets' 2 MB gzip body takes the lock many times; A/B at that size,
#: 0.2 ms against 1 ms: wrk's p99 27-31 against 34-39 ms, CPU no higher, RSS ~15 MiB higher.
SWITCH_INTERVAL = 0.0002


class ServerThread:
    """An event loop running forever on a daemon thread until :meth:`stop`."""

    def __init__(self, name: str = "perf-exporter-http") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def start(self) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL)
        self._thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's loop and await its result from the calling loop."""
        return await run_on(self.loop, coro)

    def stop(self, timeout: float = 2.0) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)


def on_loop(loop: asyncio.AbstractEventLoop, read: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """``read`` made awaitable from any thread's loop: it runs on ``loop``, where its data lives."""

    async def call() -> T:
        return read()

    return lambda: run_on(loop, call())


async def run_on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on ``loop`` (another thread's) and await its result on the calling loop."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))
