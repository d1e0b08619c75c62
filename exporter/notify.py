"""systemd's notify protocol (``Type=notify``) with the standard library only.

The daemon says ``READY=1`` once it listens, ``WATCHDOG=1`` from its event loop at half the
``WatchdogSec=`` while healthy, and ``STOPPING=1`` when it begins to shut down. A wedged loop
sends no more pings, so systemd restarts it. Outside systemd (no ``NOTIFY_SOCKET``) every call
does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends state lines to the datagram socket systemd named in ``NOTIFY_SOCKET``."""

    def __init__(self, address: str | None, watchdog_seconds: float | None) -> None:
        #: a filesystem path, or for a leading ``@`` an abstract address (leading NUL)
        self.address = address or None
        if address and address.startswith("@"):
            self.address = "\0" + address[1:]
        #: the watchdog timeout; pings go out at half of it
        self.watchdog_seconds = watchdog_seconds if self.address else None
        self._warned = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        env = os.environ if environ is None else environ
        watchdog: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process systemd watches: a child that inherited it must not ping
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = int(usec) / 1_000_000
        return cls(env.get("NOTIFY_SOCKET"), watchdog)

    def send(self, state: str) -> None:
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(state.encode(), self.address)
        except OSError as exc:
            # systemd gone or the socket unreachable: the daemon's real work goes on regardless
            if not self._warned:
                self._warned = True
                log.warning("cannot notify systemd", extra={"error": exc.strerror or str(exc)})

    def ready(self) -> None:
        self.send("READY=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def start_watchdog(self, healthy: Callable[[], bool]) -> asyncio.Task[None] | None:
        """Ping from the running loop while ``healthy()``; None when systemd wants no pings."""
        if self.watchdog_seconds is None:
            return None
        # half the timeout, as sd_watchdog_enabled(3) advises: one late ping is not a restart
        interval = self.watchdog_seconds / 2
        return asyncio.get_running_loop().create_task(self._watchdog(healthy, interval))

    async def _watchdog(self, healthy: Callable[[], bool], interval: float) -> None:
        while True:
            if healthy():
                self.send("WATCHDOG=1")
            await asyncio.sleep(interval)
