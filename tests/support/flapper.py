"""Breaking and repairing suite-started servers in turn, for the soak test and ``bench --soak``.

One cycle: SIGKILL Redis, wait, start it again; stop PostgreSQL (``immediate``), wait, start it
again; wait. Every collector watching those servers keeps failing and recovering underneath.
The loop runs in a thread until ``stop`` (or leaving the ``with`` block); a wait cut short by
``stop`` still restarts what it took down, so the servers are up when the flapper returns.
"""

from __future__ import annotations

import threading
import time

from tests.support.servers import PostgresServer, RedisServer


class Flapper:
    """Kills/restarts ``cache`` and stops/starts ``pg`` every ``period`` seconds until stopped."""

    def __init__(self, pg: PostgresServer, cache: RedisServer, period: float) -> None:
        self.pg, self.cache, self.period = pg, cache, period
        #: whole cycles completed (Redis killed and back, PostgreSQL stopped and back)
        self.flaps = 0
        self.redis_kills = 0
        self.pg_stops = 0
        #: seconds each server was down, one entry per outage (start() included)
        self.redis_down_s: list[float] = []
        self.pg_down_s: list[float] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flapper", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                down = time.monotonic()
                self.cache.kill()
                self.redis_kills += 1
                self._stop.wait(self.period)
                self.cache.start()
                self.redis_down_s.append(time.monotonic() - down)
                down = time.monotonic()
                self.pg.stop("immediate")
                self.pg_stops += 1
                self._stop.wait(self.period)
                self.pg.start()
                self.pg_down_s.append(time.monotonic() - down)
                self.flaps += 1
                self._stop.wait(self.period)
        except BaseException as exc:  # reported by stop(): a thread's traceback is lost
            self.error = exc

    def start(self) -> Flapper:
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """End the loop (servers left running); raise if it failed or does not end in time."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the flapper did not stop within {timeout:.0f}s")
        if self.error is not None:
            raise RuntimeError(f"the flapper failed: {self.error!r}") from self.error

    def __enter__(self) -> Flapper:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
