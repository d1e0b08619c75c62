"""The skeleton of every remote collector: one connection kept from one cycle to the next.

A subclass of :class:`ConnectedCollector` says how to open a connection (``connect``), what one
cycle reads over it (``sample``), how a driver's exception reads for an operator (``translate``)
and how to close a connection (``disconnect``). Everything else is written here once:

* connect and sample run under the collector's timeout (resolved by config, see
  :func:`exporter.config.resolve_timing`);
* after a failure or a cancelled cycle the connection is dropped (its session state is unknown)
  and closed in the background, never waiting on a server that may be the problem;
* reconnects are spaced by :class:`Backoff`; while it waits, a cycle fails at once with the last
  error, so the target stays down for the reason it went down;
* :attr:`ConnectedCollector.lock` is held for a whole cycle, so work between collections on the
  same connection (:meth:`ConnectedCollector.borrow`) never interleaves with one.

Failures are logged by the scheduler, once per change of state; here only connects and drops
are logged, at debug level.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

from exporter.collectors.base import Collected, CollectError, Collector, SettingsT
from exporter.config import SecretTarget, Timing

log = logging.getLogger(__name__)

SecretTargetT = TypeVar("SecretTargetT", bound=SecretTarget)
ConnectionT = TypeVar("ConnectionT")

#: How long closing one dropped connection may take before it is abandoned.
CLOSE_GRACE = 1.0


class Backoff:
    """Decides when a lost connection may be tried again.

    The wait doubles after each failure, from ``initial`` to at most ``cap`` seconds, and is
    shortened by up to a fifth at random so that targets which failed together (one network
    blip) do not all reconnect in the same instant. Collectors pass their interval as the cap: a
    recovered server is seen again within two intervals.
    """

    def __init__(self, initial: float, cap: float) -> None:
        self.initial = initial
        self.cap = cap
        self.failures = 0
        self._not_before = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self._not_before

    def failed(self) -> None:
        # the exponent is bounded so a target down for days cannot overflow the float
        delay = min(self.cap, self.initial * 2 ** min(self.failures, 32))
        self.failures += 1
        self._not_before = time.monotonic() + delay * random.uniform(0.8, 1.0)

    def succeeded(self) -> None:
        self.failures = 0
        self._not_before = 0.0


class ConnectedCollector(
    Collector[SecretTargetT, SettingsT], Generic[SecretTargetT, SettingsT, ConnectionT]
):
    """A collector for a remote source, sampled over one long-lived connection.

    Subclasses implement :meth:`connect`, :meth:`sample`, :meth:`translate` and
    :meth:`disconnect`; :meth:`collect` is this class's and is not overridden.
    """

    def __init__(
        self, target: SecretTargetT, settings: SettingsT, timing: Timing | None = None
    ) -> None:
        super().__init__(target, settings, timing)
        #: The live connection, None while the target is down. Use it only under :attr:`lock`.
        self.connection: ConnectionT | None = None
        #: Held for a whole cycle (connect and sample) and by :meth:`borrow`.
        self.lock = asyncio.Lock()
        self._backoff = Backoff(initial=min(0.5, self.interval), cap=self.interval)
        self._last_error: CollectError | None = None
        self._closing: set[asyncio.Task[None]] = set()

    # --- what a subclass writes -----------------------------------------------------------------

    @abc.abstractmethod
    async def connect(self) -> ConnectionT:
        """Open a connection to the target (runs under the cycle's timeout)."""

    @abc.abstractmethod
    async def sample(self, conn: ConnectionT) -> Collected:
        """One cycle's reads over ``conn``; raise a driver error or :class:`CollectError`."""

    @abc.abstractmethod
    def translate(self, exc: Exception) -> CollectError | None:
        """The reason and one sentence (no secrets) for a failure of ``connect`` or ``sample``.

        Must handle :class:`TimeoutError` (the cycle's timeout). None means the exception is not
        a failure of the source but a bug: it propagates unchanged, and the scheduler logs it
        with its traceback under the reason ``other``.
        """

    @abc.abstractmethod
    async def disconnect(self, conn: ConnectionT, *, abort: bool) -> None:
        """Close ``conn``; with ``abort`` (after a failure) without waiting on the server."""

    def keeps_connection(self, error: CollectError) -> bool:
        """Whether ``conn`` stays usable after ``error`` (no reconnect, so no backoff either)."""
        return False

    def is_open(self, conn: ConnectionT) -> bool:
        """False when the driver already knows the connection is gone (reconnect at once)."""
        return True

    # --- what this class does for every subclass --------------------------------------------------

    def read_password(self) -> str | None:
        """The target's password, read at each connect so that a rotated secret file is used."""
        try:
            return self.target.password()
        except OSError as exc:
            raise CollectError(
                "auth",
                f"cannot read the password file {self.target.password_file} ({exc.strerror})",
            ) from None

    async def collect(self) -> Collected:
        last = self._last_error
        if self.connection is None and last is not None and not self._backoff.ready():
            # a fresh exception: re-raising one instance would grow its traceback every cycle
            raise CollectError(last.reason, last.message)
        try:
            async with asyncio.timeout(self.timeout):
                result = await self._connect_and_sample()
        except (CollectError, TimeoutError) as exc:
            error = exc if isinstance(exc, CollectError) else self.translate(exc)
            if error is None:
                raise
            if self.connection is None:
                self._backoff.failed()
            # kept without the raised one's traceback: its frames would keep the whole failed
            # cycle's replies and families alive until the next success
            self._last_error = CollectError(error.reason, error.message)
            raise error from None
        self._backoff.succeeded()
        self._last_error = None
        return result

    async def _connect_and_sample(self) -> Collected:
        async with self.lock:
            if self.connection is not None and not self.is_open(self.connection):
                self._drop()
            try:
                if self.connection is None:
                    self.connection = await self.connect()
                    log.debug(
                        "connected", extra={"collector": self.name, "target": self.target.name}
                    )
                return await self.sample(self.connection)
            except asyncio.CancelledError:
                # the timeout or the scheduler cut the cycle mid-reply
                self._drop()
                raise
            except Exception as exc:
                error = exc if isinstance(exc, CollectError) else self.translate(exc)
                if error is None or not self.keeps_connection(error):
                    self._drop()
                if error is None:
                    raise
                raise error from None

    @contextlib.asynccontextmanager
    async def borrow(self) -> AsyncIterator[ConnectionT | None]:
        """The live connection under :attr:`lock`, for work between collections.

        Yields None while the target is down: only :meth:`collect` reconnects, with its
        backoff. When the body raises, the connection is dropped as after a failed cycle.
        """
        async with self.lock:
            conn = self.connection
            try:
                yield conn
            except BaseException:
                if conn is not None and self.connection is conn:
                    self._drop()
                raise

    def _drop(self) -> None:
        """Forget the connection now and close it in the background."""
        conn, self.connection = self.connection, None
        if conn is None:
            return
        log.debug(
            "dropped the connection", extra={"collector": self.name, "target": self.target.name}
        )
        task = asyncio.get_running_loop().create_task(self._close_quietly(conn, abort=True))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_quietly(self, conn: ConnectionT, *, abort: bool) -> None:
        try:
            await asyncio.wait_for(self.disconnect(conn, abort=abort), CLOSE_GRACE)
        except Exception as exc:  # a connection that will not close is abandoned, not fatal
            log.debug(
                "closing the connection failed",
                extra={"collector": self.name, "target": self.target.name, "error": exc},
            )

    async def close(self) -> None:
        """Close the connection politely (shutdown, reload) and finish closing dropped ones."""
        conn, self.connection = self.connection, None
        if conn is not None:
            await self._close_quietly(conn, abort=False)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
