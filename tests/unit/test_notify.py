"""The systemd notifier: addresses, the watchdog's rules, and pings only from a running loop."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from exporter.notify import SystemdNotifier


class Listener:
    """An abstract datagram socket whose arrivals a thread timestamps as they come."""

    def __init__(self) -> None:
        self.name = f"perf-notify-unit-{uuid.uuid4().hex[:12]}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.settimeout(0.05)
        self.arrivals: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.arrivals.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    sock = Listener()
    yield sock
    sock.close()


def test_at_sign_means_an_abstract_socket() -> None:
    assert SystemdNotifier("@sd-notify", None).address == "\0sd-notify"
    assert SystemdNotifier("/run/systemd/notify", None).address == "/run/systemd/notify"


def test_watchdog_comes_from_watchdog_usec_for_this_process_only() -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000"}
    assert SystemdNotifier.from_environ(env).watchdog_seconds == 30.0
    mine = {**env, "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier.from_environ(mine).watchdog_seconds == 30.0
    # a child that inherited its parent's variables must not ping for it
    other = {**env, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert SystemdNotifier.from_environ(other).watchdog_seconds is None
    assert SystemdNotifier.from_environ({"WATCHDOG_USEC": "30000000"}).watchdog_seconds is None


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = SystemdNotifier.from_environ({})
    notifier.ready()
    notifier.stopping()
    assert notifier.address is None


def test_unreachable_socket_is_not_an_error() -> None:
    notifier = SystemdNotifier(f"@perf-nobody-listens-{uuid.uuid4().hex}", None)
    notifier.ready()
    notifier.ready()  # warned once, never raised


async def test_watchdog_pings_only_while_the_loop_runs_and_the_daemon_is_healthy(
    listener: Listener,
) -> None:
    notifier = SystemdNotifier("@" + listener.name, 0.2)  # a ping every 0.1 s
    healthy = True
    task = notifier.start_watchdog(lambda: healthy)
    assert task is not None
    await asyncio.sleep(0.45)
    # a wedged loop: nothing else runs, so no ping goes out while it is blocked
    blocked_from = time.monotonic()
    time.sleep(0.6)
    blocked_until = time.monotonic()
    await asyncio.sleep(0.35)
    healthy = False
    unhealthy_from = time.monotonic()
    await asyncio.sleep(0.5)
    task.cancel()
    await asyncio.sleep(0.1)
    pings = [at for at, state in listener.arrivals if state == "WATCHDOG=1"]
    assert len([at for at in pings if at < blocked_from]) >= 3, pings
    # a ping queued just as the block began may still arrive at its start
    assert not [at for at in pings if blocked_from + 0.1 < at < blocked_until], pings
    assert [at for at in pings if blocked_until <= at < unhealthy_from], pings
    # unhealthy: at most the ping already in flight when health changed
    assert not [at for at in pings if at > unhealthy_from + 0.15], pings
