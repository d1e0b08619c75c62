"""The daemon: wires config -> scheduler -> collectors -> snapshot -> server on one event loop.

Signals: SIGTERM/SIGINT stop cleanly (scheduler down, connections closed, exit 0) within a few
seconds; SIGHUP reloads the config file, and an invalid new config keeps the old one running.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from aiohttp import web
from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter import __version__, logs, memory
from exporter import config as config_module
from exporter.config import Config, ConfigError, split_listen_address
from exporter.listener import GuardedSite
from exporter.mixin.runbooks import runbooks_html
from exporter.mixin.thresholds import Thresholds
from exporter.notify import SystemdNotifier
from exporter.scheduler import Scheduler, build_jobs
from exporter.server import Handlers, build_app
from exporter.server_thread import ServerThread, on_loop
from exporter.snapshot import Rendered, Snapshot
from exporter.summary.board import SummaryBoard
from exporter.webconfig import (
    LiveTLS,
    WebConfig,
    auth_middleware,
    load_web_config,
    response_headers,
)

log = logging.getLogger(__name__)

#: Renders are coalesced: at least this many seconds apart however many jobs finish, and
#: further apart when a render is expensive (many targets), so that rendering never takes more
#: than about 1 / (1 + RENDER_COST_FACTOR) of a core. With results arriving all the time a
#: fleet's render always uses its budget: at a thousand targets a render takes ~2 ms to group
#: and ~40 ms more to gzip 44 MB with ISA-L (~130 ms with zlib), so at 40 bodies are ~1.6 s
#: apart and rendering is 2.4 % of a core (at 20 with zlib: 3.2 s apart and 4.8 %).
RENDER_MIN_GAP = 0.25
RENDER_COST_FACTOR = 40.0
#: Bodies of up to this many bytes are joined and compressed on the event loop (about a
#: millisecond at one target's 170 kB); larger ones in a worker thread, which keeps the loop free
#: for the collections but is a thread with a malloc arena of its own: ~0.5 MB of a one-target
#: daemon's RSS for a millisecond's work per render.
PREPARE_ON_LOOP_BYTES = 512 * 1024
#: How often parts are checked for expiry.
EXPIRY_CHECK = 1.0
#: Allocations between young-generation garbage collections (CPython's default is 700). A
#: collection's results are short-lived containers by the thousand; at the default they were
#: promoted to the old generation and made full collections, which pause the loop for up to
#: seconds with a thousand targets, happen every few seconds. Measured at 1,000 targets: full
#: collections in a quiet interval from 58 (24.8 s of pauses) to 0, CPU per collection -22 %.
GC_THRESHOLDS = (50_000, 20, 20)


def _timed(work: Callable[[], object]) -> float:
    """Seconds ``work()`` took (run in a worker thread)."""
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _prepared(rendered: Rendered, trim: bool) -> float:
    """Seconds ``rendered.prepare()`` took; then, when ``trim``, the freed memory handed back
    (the joins and compressions just done left the most of it, in the same thread's arena)."""
    try:
        return _timed(rendered.prepare)
    finally:
        if trim:  # a prepare that failed freed what it had made, too
            memory.trim()


class ListenError(Exception):
    """The listen address cannot be bound (in use, not ours, or not resolvable)."""


class Daemon:
    """One running exporter."""

    def __init__(
        self,
        config: Config,
        config_path: Path | None,
        overrides: Mapping[str, object],
        web_config: WebConfig | None = None,
    ) -> None:
        self.config = config
        #: TLS and basic auth; the auth middleware reads it on every request, reload swaps it.
        self.web_config = web_config
        self._tls = (
            LiveTLS(web_config.tls_server_config)
            if web_config is not None and web_config.tls_server_config is not None
            else None
        )
        self.config_path = config_path
        self.overrides = dict(overrides)
        self.board = SummaryBoard(Thresholds.from_overrides(config.thresholds))
        self.reload_failures = 0
        self.last_reload_success = time.time()
        self._process = ProcessCollector(registry=None)
        self.snapshot = Snapshot(extra_families=self._self_families)
        self.scheduler = Scheduler(self.snapshot, on_change=self.request_render)
        self.scheduler.add_listener(self.board.record)
        self.board.error_of = self._collector_error
        self._render_handle: asyncio.TimerHandle | None = None
        self._render_task: asyncio.Task[None] | None = None
        self._render_again = False
        self._last_render = 0.0
        self._render_gap = RENDER_MIN_GAP
        #: when a render last handed freed memory back (see exporter/memory.py)
        self._last_trim = 0.0
        self._stop = asyncio.Event()
        #: The HTTP server's own loop and thread (see exporter/server_thread.py).
        self.web = ServerThread()
        self._reloading = False
        #: SIGHUP reloads in flight: the loop keeps only weak references to tasks
        self._reloads: set[asyncio.Task[bool]] = set()

    def _self_families(self) -> list[Metric]:
        info = GaugeMetricFamily(
            "perf_exporter_build_info", "The running perf-exporter's version.", labels=["version"]
        )
        info.add_metric([__version__], 1.0)
        failures = CounterMetricFamily(
            "perf_exporter_config_reload_failures",
            "Config reloads (SIGHUP) refused because the new config was invalid.",
            value=self.reload_failures,
        )
        last_ok = GaugeMetricFamily(
            "perf_exporter_config_last_reload_success_timestamp_seconds",
            "Unix time the config was last loaded successfully.",
            value=self.last_reload_success,
        )
        try:
            alive = len(asyncio.all_tasks())
        except RuntimeError:  # a render before the event loop runs
            alive = 0
        tasks = GaugeMetricFamily(
            "perf_exporter_asyncio_tasks",
            "Tasks alive on the daemon's event loop; steady growth means a leak.",
            value=alive,
        )
        return [info, failures, last_ok, tasks, *self._process.collect()]

    # --- rendering ---------------------------------------------------------------------------

    def request_render(self) -> None:
        """Render soon, coalescing the bursts of results that arrive together."""
        if self._render_handle is not None or self._render_task is not None:
            self._render_again = self._render_task is not None
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_render + self._render_gap - loop.time())
        self._render_handle = loop.call_later(delay, self._start_render)

    def _start_render(self) -> None:
        self._render_handle = None
        self._render_task = asyncio.get_running_loop().create_task(self._render())

    async def _render(self) -> None:
        loop = asyncio.get_running_loop()
        # the render's own work: grouping and compression, not the collections that run while
        # the worker thread compresses (counting those made a busy daemon render ever more rarely)
        cost = 0.0
        try:
            # at once: the snapshot keeps its fragments grouped by name as results arrive, so a
            # thousand targets' grouping is a list per name (~2 ms), not a walk of every fragment
            started = time.perf_counter()
            rendered = self.snapshot.assemble()
            cost += time.perf_counter() - started
            trim = loop.time() - self._last_trim >= memory.TRIM_EVERY
            if trim:
                self._last_trim = loop.time()
            if rendered.size <= PREPARE_ON_LOOP_BYTES:
                cost += _prepared(rendered, trim)
            else:
                # joined and compressed beside the event loop: zlib releases the GIL, and so
                # does the trim (it waits for each arena's lock)
                cost += await loop.run_in_executor(None, _prepared, rendered, trim)
            self.snapshot.publish(rendered)
        except Exception:
            # a bug, but /metrics must not freeze on it: keep serving the last body, say why
            log.exception("rendering /metrics failed; serving the previous body")
        finally:
            self._render_gap = max(RENDER_MIN_GAP, RENDER_COST_FACTOR * cost)
            self._last_render = loop.time()
            self._render_task = None
        if self._render_again:
            self._render_again = False
            self.request_render()

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_CHECK)
            if self.snapshot.expire():
                self.request_render()

    # --- lifecycle -----------------------------------------------------------------------------

    def healthy(self) -> bool:
        return self.scheduler.running and not self._stop.is_set()

    async def reload(self) -> bool:
        """Re-read the config file; on any problem keep the running config and say why."""
        if self._reloading:
            return False
        self._reloading = True
        try:
            try:
                new = config_module.load(self.config_path, self.overrides)
                thresholds = Thresholds.from_overrides(new.thresholds)
                new_web = self._reload_web(new)
            except ConfigError as exc:
                self.reload_failures += 1
                log.error(
                    "config reload failed, keeping the running config",
                    extra={"problems": "; ".join(exc.problems)},
                )
                self.request_render()
                return False
            except Exception as exc:  # a bug of ours must not end reloads or the daemon
                self.reload_failures += 1
                # only the type: the message of an unexpected error may quote the input
                log.error(
                    "config reload failed unexpectedly, keeping the running config",
                    extra={"error": type(exc).__name__},
                )
                self.request_render()
                return False
            for key in ("listen_address", "max_connections", "read_timeout"):
                if getattr(new.web, key) != getattr(self.config.web, key):
                    log.warning("web.%s changes take effect only after a restart", key)
            logs.configure(new.log.level, new.log.format)
            self.config = new
            self.web_config = new_web
            jobs = build_jobs(new)
            await self.scheduler.replace(jobs)
            self.board.forget_except({job.key for job in jobs})
            self.board.refresh_seconds = min((job.interval for job in jobs), default=None)
            self.board.thresholds = thresholds
            self.last_reload_success = time.time()
            log.info("config reloaded", extra={"jobs": len(jobs)})
            self.request_render()
            return True
        finally:
            self._reloading = False

    def _reload_web(self, new: Config) -> WebConfig | None:
        """Load the web config ``new`` names and move new TLS handshakes onto it.

        Raises :class:`ConfigError` (changing nothing) when the file is invalid. TLS can be
        re-keyed in place but not switched on or off: that keeps the current mode and says so.
        """
        path = new.web.config_file
        web_config = None if path is None else load_web_config(path)
        tls = web_config.tls_server_config if web_config is not None else None
        if (tls is None) != (self._tls is None):
            log.warning(
                "switching TLS on or off takes effect only after a restart; "
                "basic auth changes apply now"
            )
        elif tls is not None and self._tls is not None:
            self._tls.update(tls)
        return web_config

    def _collector_error(self, collector: str, target: str) -> str | None:
        """The scheduler's "reason: message" of a failing job, for the summary's no-data rows."""
        stats = self.scheduler.stats().get((collector, target))
        if stats is None or stats.state in ("ok", "new"):
            return None
        return stats.state.partition(": ")[2] or stats.state

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    def stop(self) -> None:
        self._stop.set()

    async def _start_web(self, here: asyncio.AbstractEventLoop) -> web.AppRunner:
        """The HTTP server on :attr:`web`'s loop (this coroutine runs there); the handlers
        that read the board run on ``here``, the collections' loop."""
        handlers = Handlers(
            rendered=lambda: self.snapshot.rendered,
            healthy=self.healthy,
            summary_json=on_loop(here, self.board.as_json),
            summary_html=on_loop(here, self.board.as_html),
            summary_text=on_loop(here, self.board.as_text),
            runbooks_html=on_loop(here, lambda: runbooks_html(self.board.thresholds)),
        )
        app = build_app(handlers, middlewares=[auth_middleware(lambda: self.web_config)])
        app.on_response_prepare.append(response_headers(lambda: self.web_config))
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            # aiohttp's keep-alive timer also closes a connection whose request headers have
            # not fully arrived in time: it is the read timeout against slow clients
            keepalive_timeout=self.config.web.read_timeout,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        host, port = split_listen_address(self.config.web.listen_address)
        site = GuardedSite(
            runner,
            host or None,
            port,
            max_connections=self.config.web.max_connections,
            handshake_timeout=self.config.web.read_timeout,
            ssl_context=self._tls.context if self._tls is not None else None,
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            reason = exc.strerror or str(exc)
            raise ListenError(
                f"cannot listen on {self.config.web.listen_address}: {reason}"
            ) from None
        return runner

    async def run(self) -> int:
        # what exists now (modules, config, the app) lives as long as the process: out of every
        # collection's way from here on
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        # bind first: a taken port is reported before any target is touched
        self.web.start()
        try:
            runner = await self.web.run(self._start_web(loop))
        except BaseException:
            self.web.stop()
            raise
        jobs = build_jobs(self.config)
        self.scheduler.start(jobs)
        self.board.refresh_seconds = min((job.interval for job in jobs), default=None)
        self.request_render()
        expiry = loop.create_task(self._expire_loop())
        log.info(
            "perf-exporter started",
            extra={
                "version": __version__,
                "listen": self.config.web.listen_address,
                "tls": self._tls is not None,
                "basic_auth": bool(self.web_config and self.web_config.basic_auth_users),
                "jobs": len(jobs),
            },
        )
        notifier = SystemdNotifier.from_environ()
        notifier.ready()
        watchdog = notifier.start_watchdog(self.healthy)
        await self._stop.wait()
        log.info("shutting down")
        notifier.stopping()
        if watchdog is not None:
            watchdog.cancel()
        expiry.cancel()
        if self._render_handle is not None:
            self._render_handle.cancel()
        if self._render_task is not None:
            self._render_task.cancel()
        await self.scheduler.shutdown(grace=2.0)
        for task in list(self._reloads):
            task.cancel()
        try:
            await asyncio.wait_for(self.web.run(runner.cleanup()), 2.0)
        except TimeoutError:
            log.warning("HTTP connections did not close within 2 s; exiting anyway")
        self.web.stop()
        return 0
