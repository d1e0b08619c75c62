"""The demo's traffic: the reference application's day in miniature, against the example app.

``python -m examples.demo.load --app URL --dsn DSN --bouncer DSN`` sends about ``--rate``
requests a second from ``--clients`` concurrent clients over every route of
examples/fastapi_app.py, so each cache namespace sees its own hit ratio (personal data per
user, LLM prompts rarely repeat, the stats key almost always hits), a few uncached slow reports
and payments that take the pool. Beside the app it runs what a real database also sees: a
maintenance job that locks ``orders`` against writes for a few seconds now and then (the
payments queue behind it, /summary's blocking shows the chain) and reporting clients going
through PgBouncer in transaction mode with fewer server connections than clients.

It exits when its standard input closes (the demo holds the other end, so a demo that dies
takes its load with it), on SIGTERM/SIGINT, or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import asyncpg


@dataclass
class Keys:
    """Keys of one namespace: a fresh one with probability ``fresh``, else a recent one.

    The miss rate is then about ``fresh`` from the first second on, whatever the TTLs.
    """

    fresh: float
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=200))
    next_id: int = 1

    def pick(self, rng: random.Random) -> int:
        if not self.recent or rng.random() < self.fresh:
            self.next_id += 1
            self.recent.append(self.next_id)
            return self.next_id
        return rng.choice(self.recent)


#: Route, share of the requests, and the namespace's chance of a fresh key (its miss rate).
#: llm_response misses on purpose: the demo's summary shows what a poor cache looks like.
MIX: list[tuple[str, float, float]] = [
    ("item", 0.30, 0.12),
    ("search", 0.14, 0.25),
    ("session", 0.14, 0.05),
    ("budget", 0.10, 0.10),
    ("llm", 0.09, 0.40),
    ("vector", 0.08, 0.20),
    ("stats", 0.06, 0.0),
    ("report", 0.03, 0.0),
    ("pay", 0.06, 0.0),
]
STATUSES = ("new", "paid", "shipped", "refunded")


class Traffic:
    """The app's clients: weighted random requests at a steady overall rate."""

    def __init__(self, app: str, rate: float, clients: int, seed: int) -> None:
        self.app = app.rstrip("/")
        self.rate = rate
        self.clients = clients
        self.rng = random.Random(seed)
        self.keys = {name: Keys(fresh) for name, _, fresh in MIX}
        self.routes = [name for name, _, _ in MIX]
        self.weights = [share for _, share, _ in MIX]
        self.requests = 0
        self.errors = 0

    def request(self) -> tuple[str, str]:
        name = self.rng.choices(self.routes, self.weights)[0]
        key = self.keys[name].pick(self.rng)
        paths: dict[str, Callable[[], tuple[str, str]]] = {
            "item": lambda: ("GET", f"/items/{key}"),
            "search": lambda: ("GET", f"/search?q=q{key}"),
            "session": lambda: ("GET", f"/users/{key}/session"),
            "budget": lambda: ("GET", f"/users/{key % 5000}/budget"),
            "llm": lambda: ("GET", f"/llm?prompt=prompt-{key}"),
            "vector": lambda: ("GET", f"/vector?q=v{key}"),
            "stats": lambda: ("GET", "/stats"),
            "report": lambda: ("GET", f"/reports/{self.rng.choice(STATUSES)}"),
            "pay": lambda: ("POST", f"/orders/{self.rng.randint(1, 100_000)}/pay"),
        }
        return paths[name]()

    async def client(self, http: aiohttp.ClientSession) -> None:
        period = self.clients / self.rate
        while True:
            started = time.monotonic()
            method, path = self.request()
            try:
                async with http.request(method, self.app + path) as resp:
                    await resp.read()
                    self.errors += resp.status >= 500
            except (aiohttp.ClientError, TimeoutError):
                self.errors += 1
            self.requests += 1
            pause = period * self.rng.uniform(0.5, 1.5) - (time.monotonic() - started)
            await asyncio.sleep(max(0.0, pause))

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await asyncio.gather(*(self.client(http) for _ in range(self.clients)))


async def maintenance(dsn: str, every: float, hold: float) -> None:
    """Lock ``orders`` against writes for ``hold`` seconds every ``every`` seconds."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "nightly-maintenance"})
    try:
        await asyncio.sleep(min(5.0, every))
        while True:
            async with conn.transaction():
                await conn.execute("LOCK TABLE orders IN SHARE MODE")
                await asyncio.sleep(hold)
            await asyncio.sleep(every)
    finally:
        await conn.close()


async def reporting(dsn: str, clients: int) -> None:
    """``clients`` reporting sessions through PgBouncer, each a short query then a pause."""

    async def one(rng: random.Random) -> None:
        # transaction pooling: prepared statements do not survive a transaction
        conn = await asyncpg.connect(
            dsn, statement_cache_size=0, server_settings={"application_name": "reporting"}
        )
        try:
            while True:
                await conn.fetchval(
                    "SELECT count(*) FROM orders, pg_sleep(0.05) WHERE status = $1",
                    rng.choice(STATUSES),
                )
                await asyncio.sleep(rng.uniform(0.0, 0.3))
        finally:
            await conn.close()

    await asyncio.gather(*(one(random.Random(i)) for i in range(clients)))


def stop_when_input_closes(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    # a daemon thread, not the loop's executor: asyncio.run would wait for a blocked read
    def read() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read, daemon=True).start()


async def main(args: argparse.Namespace) -> None:
    traffic = Traffic(args.app, args.rate, args.clients, args.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stop_when_input_closes(loop, stop)
    tasks = [
        asyncio.create_task(traffic.run()),
        asyncio.create_task(maintenance(args.dsn, args.lock_every, args.lock_hold)),
        asyncio.create_task(reporting(args.bouncer, args.report_clients)),
    ]
    watchers = [asyncio.create_task(stop.wait())]
    done, _ = await asyncio.wait(
        [*tasks, *watchers], timeout=args.max_seconds, return_when=asyncio.FIRST_COMPLETED
    )
    for task in [*tasks, *watchers]:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    # a part that failed on its own (a server gone) is worth one line in the demo's log
    for task in done & set(tasks):
        if not task.cancelled() and task.exception() is not None:
            sys.stderr.write(f"load: {task.exception()!r}\n")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.demo.load", description=__doc__)
    parser.add_argument("--app", required=True, help="base URL of examples/fastapi_app.py")
    parser.add_argument("--dsn", required=True, help="PostgreSQL, for the maintenance job")
    parser.add_argument("--bouncer", required=True, help="PgBouncer, for the reporting clients")
    parser.add_argument("--rate", type=float, default=25.0, help="app requests per second")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--report-clients", type=int, default=3)
    parser.add_argument("--lock-every", type=float, default=15.0)
    parser.add_argument("--lock-hold", type=float, default=4.0)
    parser.add_argument("--max-seconds", type=float, default=86_400.0)
    parser.add_argument("--seed", type=int, default=17)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
