"""Running a collector's cycles in a test until one succeeds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from exporter.collectors.base import Collected, CollectError, Collector


async def collect_until_ok(
    collector: Collector[Any, Any], timeout: float = 15.0, poll: float = 0.1
) -> Collected:
    """Collect until a cycle succeeds (the reconnect backoff may fail a few at once); after
    ``timeout`` seconds, the last cycle's CollectError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await collector.collect()
        except CollectError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(poll)
