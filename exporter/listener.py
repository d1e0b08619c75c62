"""The listening socket: optional TLS, a cap on open connections and a TLS handshake deadline.

aiohttp's ``TCPSite`` accepts every connection and gives a TLS handshake asyncio's default 60 s.
A monitoring endpoint must stay answerable when a misbehaving client opens thousands of
sockets, so :class:`GuardedSite` answers ``503`` and closes once ``max_connections`` HTTP
connections are open, and drops handshakes that take longer than ``handshake_timeout``.
(Clients that send their request headers too slowly are closed by aiohttp's keep-alive timer,
which since 3.10 also runs before the first request: the daemon sets it to ``web.read_timeout``.)
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: 38\r\n"
    b"\r\n"
    b"too many open connections, retry soon\n"
)


class _Busy(asyncio.Protocol):
    """Says 503 and hangs up: the connection cap is reached."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_BUSY)
        transport.close()

    def data_received(self, data: bytes) -> None:
        return None


class MalformedRequestFilter(logging.Filter):
    """Turns aiohttp's error-with-traceback for an unparsable request into one debug line.

    A malformed request is the client's error and already answered 400; logging it at error
    level with a traceback would let anyone flood the log and bury real problems.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        if not logging.getLogger("exporter").isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg, record.args = "malformed HTTP request refused", ()
        record.exc_info, record.exc_text = None, None
        record.status = exc.code
        # only aiohttp's description: what follows its colon quotes the request, which may be a
        # credential (an oversized Authorization header is echoed in part)
        first = str(exc.message).splitlines()[0] if exc.message else ""
        record.reason = first.split(":", 1)[0][:120]
        return True


def quiet_malformed_requests() -> None:
    """Install :class:`MalformedRequestFilter` on aiohttp's server logger (once)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())


class GuardedSite(web.TCPSite):
    """A ``TCPSite`` that refuses connections beyond ``max_connections`` with a quick 503."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        *,
        max_connections: int,
        handshake_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 256,
    ) -> None:
        super().__init__(
            runner, host, port, ssl_context=ssl_context, backlog=backlog, reuse_address=True
        )
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self.refused = 0

    def _protocol(self) -> asyncio.BaseProtocol:
        server = self._runner.server
        assert server is not None
        if len(server.connections) >= self.max_connections:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning(
                    "connection cap reached, answering 503",
                    extra={"max_connections": self.max_connections, "refused": self.refused},
                )
            return _Busy()
        return server()

    async def start(self) -> None:
        # TCPSite.start would create the server with its own factory; keep only the bookkeeping
        await web.BaseSite.start(self)
        quiet_malformed_requests()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            ssl_handshake_timeout=self.handshake_timeout if self._ssl_context else None,
        )
        self._bound_port = (
            self._server.sockets[0].getsockname()[1] if self._server.sockets else None
        )
