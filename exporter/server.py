"""The HTTP side: /metrics serves pre-rendered bytes, plus /healthz, /summary (JSON, or plain
text with ``?format=text`` or ``Accept: text/plain``), /runbooks (where
the alerts' default runbook_url points) and a landing page.

Nothing here collects, renders or mutates: every handler reads what the snapshot and the summary
board already hold. Request lines and headers are capped, bodies are refused, unknown paths get
404 and other methods 405 (aiohttp's router does both).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from exporter.snapshot import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, Rendered

MAX_LINE = 8 * 1024
MAX_FIELD = 8 * 1024
MAX_BODY = 1024


def _qualities(accept: str) -> dict[str, float]:
    """The best ``q`` an Accept header gives each media type (lower-case; 1.0 when unset)."""
    best: dict[str, float] = {}
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        best[media] = max(best.get(media, -1.0), q)
    return best


def _best(qualities: dict[str, float], *media: str) -> float:
    return max((qualities[m] for m in media if m in qualities), default=-1.0)


def wants_openmetrics(accept: str) -> bool:
    """True when the Accept header prefers OpenMetrics, as Prometheus sends it by default."""
    q = _qualities(accept)
    best_om = _best(q, "application/openmetrics-text")
    return best_om > 0 and best_om >= _best(q, "text/plain", "*/*", "text/*")


def wants_text(format_param: str, accept: str) -> bool:
    """``?format=text``, or an Accept that prefers text/plain to JSON (curl -H ...)."""
    if format_param:
        return format_param.lower() == "text"
    q = _qualities(accept)
    best_text = _best(q, "text/plain")
    return best_text > 0 and best_text > _best(q, "application/json", "*/*", "application/*")


def accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


@dataclass(frozen=True)
class Handlers:
    """Request handlers over read-only views of the daemon's state."""

    #: Read on the server's own thread: an attribute read of an immutable body, and a flag.
    rendered: Callable[[], Rendered]
    healthy: Callable[[], bool]
    #: Run where the board lives (the collections' loop): awaited, never read across threads.
    summary_json: Callable[[], Awaitable[dict[str, Any]]]
    summary_html: Callable[[], Awaitable[str]]
    runbooks_html: Callable[[], Awaitable[str]]
    summary_text: Callable[[], Awaitable[str]] | None = None

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        body = self.rendered()
        om = wants_openmetrics(request.headers.get("Accept", ""))
        gz = accepts_gzip(request.headers.get("Accept-Encoding", ""))
        content_type = OPENMETRICS_CONTENT_TYPE if om else TEXT_CONTENT_TYPE
        headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        if not gz and body.streams_plain:
            return await _stream(request, body, om, headers)
        payload = body.body(om, gz)
        if gz:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=payload, headers=headers)

    async def healthz(self, request: web.Request) -> web.Response:
        if self.healthy():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="scheduler not running\n")

    async def summary(self, request: web.Request) -> web.Response:
        if request.query.get("format", "json").lower() not in ("json", "text"):
            return web.Response(status=400, text="format must be json or text.\n")
        if self.summary_text is not None and wants_text(
            request.query.get("format", ""), request.headers.get("Accept", "")
        ):
            return web.Response(
                text=await self.summary_text(),
                content_type="text/plain",
                headers={"Vary": "Accept"},
            )
        return web.Response(
            text=json.dumps(await self.summary_json(), indent=1, sort_keys=True),
            content_type="application/json",
        )

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text=await self.summary_html(), content_type="text/html")

    async def runbooks(self, request: web.Request) -> web.Response:
        return web.Response(text=await self.runbooks_html(), content_type="text/html")


async def _stream(
    request: web.Request, body: Rendered, om: bool, headers: dict[str, str]
) -> web.StreamResponse:
    """A plain body too large to keep, written a piece at a time as it is joined."""
    body.want(om, False)
    response = web.StreamResponse(headers=headers)
    response.content_length = body.length(om)
    await response.prepare(request)
    if request.method != "HEAD":
        for chunk in body.chunks(om):
            await response.write(chunk)
    await response.write_eof()
    return response


@web.middleware
async def _refuse_bodies(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    # every endpoint is read-only; a request body is a client error, not something to read
    if request.content_length or request.body_exists:
        raise web.HTTPRequestEntityTooLarge(max_size=0, actual_size=request.content_length or 0)
    response: web.StreamResponse = await handler(request)
    return response


def build_app(handlers: Handlers, middlewares: Iterable[Any] = ()) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[*middlewares, _refuse_bodies],
        handler_args={"max_line_size": MAX_LINE, "max_field_size": MAX_FIELD},
    )
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/summary", handlers.summary)
    app.router.add_get("/runbooks", handlers.runbooks)
    app.router.add_get("/", handlers.index)
    return app
