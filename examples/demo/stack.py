"""Everything the demo runs, started in order on free 127.0.0.1 ports and stopped in reverse.

The servers come from tests.support, the same classes (and Debian packages) the suite starts, so
the demo shows exactly what the tests check. Every temporary directory is made under one base
directory (``tempfile.tempdir`` points there while the demo runs), which goes at the end with
everything in it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Protocol

import psutil
import yaml

from examples.fastapi_app import SCHEMA
from tests.support.daemon import DaemonProcess
from tests.support.pgbouncer_server import APP_PASSWORD, APP_USER, STATS_PASSWORD, PgBouncerServer
from tests.support.processes import ROOT, stop_process
from tests.support.prom_stack import Alertmanager, Prometheus, Webhook
from tests.support.servers import PostgresServer, RedisServer, free_port, wait_for_port

#: How often the exporter samples and Prometheus scrapes and evaluates: fast enough that every
#: page has data within seconds of the start.
INTERVAL = "2s"
#: A recorded series to open Prometheus on: the app's hit ratio per cache namespace.
CACHE_RATIO = "job_instance_target_namespace%3Aperf_app_cache_hit%3Aratio_rate5m"
RULE_FILES = ("alerts/recording.rules.yml", "alerts/perf-exporter.rules.yml")


class Closable(Protocol):
    def close(self) -> None: ...


class Child:
    """A process of the demo's own (the app, the load), its output in a log file."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in close()
        # its own session: a Ctrl-C in the terminal reaches the demo, which stops it in order
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        stop_process(self.proc)
        self._log.close()


class DaemonCloser:
    """DaemonProcess stops with ``stop``; the stack closes everything with ``close``."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon

    def close(self) -> None:
        self.daemon.stop()


class Stack:
    """The demo's servers, the example app under load and perf-exporter watching them all."""

    def __init__(self, say: Any = print) -> None:
        self.say = say
        self.base = Path(tempfile.mkdtemp(prefix="perf-demo-"))
        # PostgreSQL and PgBouncer run as the postgres user when we are root: they must get in
        os.chmod(self.base, 0o755)
        self._old_tempdir = tempfile.tempdir
        tempfile.tempdir = str(self.base)
        self.closers: list[Closable] = []
        self.urls: dict[str, str] = {}

    def _started(self, what: str, thing: Any, since: float) -> Any:
        self.say(f"  {what:<44} {time.monotonic() - since:4.1f} s")
        return thing

    def start(self) -> None:
        t = time.monotonic()
        pg = PostgresServer(settings={"max_connections": "100"})
        self.closers.append(pg)
        pg.sql(SCHEMA)
        self.pg = self._started(f"PostgreSQL 15 + pg_stat_statements :{pg.port}", pg, t)

        t = time.monotonic()
        self.redis = RedisServer("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
        self.closers.append(self.redis)
        self._started(f"Redis :{self.redis.port}", self.redis, t)

        t = time.monotonic()
        self.bouncer = PgBouncerServer(self.pg, pool_size=2, pool_mode="transaction")
        self.closers.append(self.bouncer)
        self._started(f"PgBouncer (transaction pooling) :{self.bouncer.port}", self.bouncer, t)

        t = time.monotonic()
        self.app = self._start_app()
        self._started(f"example FastAPI app, 2 workers :{self.app_port}", self.app, t)

        t = time.monotonic()
        self.daemon = self._start_daemon()
        self._started(f"perf-exporter :{self.daemon.port}", self.daemon, t)

        t = time.monotonic()
        self.webhook = Webhook()
        self.closers.append(self.webhook)
        am = self._alertmanager_config(self.webhook.url)
        self.alertmanager = Alertmanager(am)
        self.closers.append(self.alertmanager)
        self._started(f"Alertmanager :{self.alertmanager.port}", self.alertmanager, t)

        t = time.monotonic()
        self.prometheus = Prometheus(self._prometheus_config())
        self.closers.append(self.prometheus)
        self._started(f"Prometheus with our rules :{self.prometheus.port}", self.prometheus, t)

        t = time.monotonic()
        self.load = self._start_load()
        self._started("load generator", self.load, t)

        d, p = self.daemon.url, self.prometheus.url
        ui = f"{p}{self._prometheus_ui()}"
        self.urls = {
            "summary page": f"{d}/",
            "summary JSON": f"{d}/summary",
            "metrics": f"{d}/metrics",
            "Prometheus": f"{ui}/graph?g0.expr={CACHE_RATIO}&g0.tab=0&g0.range_input=15m",
            "Prometheus rules": f"{ui}/rules",
            "Prometheus alerts": f"{ui}/alerts",
            "Alertmanager": f"{self.alertmanager.url}/",
            "example app": f"http://127.0.0.1:{self.app_port}/items/1",
        }

    def _prometheus_ui(self) -> str:
        """Where the pages are: Debian's Prometheus 2 serves only the classic UI."""
        try:
            with urllib.request.urlopen(f"{self.prometheus.url}/classic/rules", timeout=5):
                return "/classic"
        except OSError:
            return ""

    def _env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}

    def _start_app(self) -> Child:
        self.app_port = free_port()
        cmd = [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--workers", "2"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.app_port), "--log-level", "warning"]
        env = self._env(DATABASE_URL=self.pg.dsn, REDIS_URL=self.redis.url)
        app = Child("example app", cmd, self.base / "app.log", env)
        self.closers.append(app)
        wait_for_port(self.app_port, timeout=30)
        deadline = time.monotonic() + 30
        while True:  # the port is bound before a worker has run its lifespan
            if not app.alive():
                raise RuntimeError(f"the example app exited: {app.log_path.read_text()[-1500:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.app_port}/stats", timeout=5):
                    return app
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the example app does not answer") from None
                time.sleep(0.2)

    def _start_daemon(self) -> DaemonProcess:
        password = self.base / "pgbouncer-stats.password"
        password.write_text(STATS_PASSWORD + "\n")
        config = {
            "interval": INTERVAL,
            "timeout": "1500ms",
            "collectors": {"postgres": {"statement_text": True}},
            "targets": {
                "postgres": [{"name": "shop-db", "dsn": self.pg.dsn}],
                # no namespaces key: the reference application's seven cache: prefixes
                "redis": [{"name": "shop-cache", "url": self.redis.url}],
                "pgbouncer": [
                    {
                        "name": "shop-bouncer",
                        "dsn": self.bouncer.dsn(),
                        "password_file": str(password),
                    }
                ],
                "app": [{"name": "shop", "url": self.redis.url}],
            },
        }
        daemon = DaemonProcess(config, self.base)
        self.closers.append(DaemonCloser(daemon))
        daemon.start()
        return daemon

    def _alertmanager_config(self, webhook: str) -> dict[str, Any]:
        # the shipped example, its receivers pointed at the demo's own webhook
        example = ROOT / "alerts/alertmanager.example.yml"
        config: dict[str, Any] = yaml.safe_load(example.read_text())
        for receiver in config["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = f"{webhook}/{receiver['name']}"
        return config

    def _prometheus_config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
            "rule_files": [str(ROOT / rel) for rel in RULE_FILES],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{self.alertmanager.port}"]}]}
                ]
            },
            "scrape_configs": [
                {
                    # the job the generated rules select
                    "job_name": "perf-exporter",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.daemon.port}"]}],
                }
            ],
        }

    def _start_load(self) -> Child:
        cmd = [sys.executable, "-m", "examples.demo.load"]
        cmd += ["--app", f"http://127.0.0.1:{self.app_port}", "--dsn", self.pg.dsn]
        cmd += ["--bouncer", self.bouncer.dsn(APP_USER, APP_PASSWORD, db="postgres")]
        load = Child("load generator", cmd, self.base / "load.log", self._env())
        self.closers.append(load)
        return load

    def dead(self) -> str | None:
        """The name of a demo process that exited on its own, if any."""
        for closer in self.closers:
            if isinstance(closer, Child) and not closer.alive():
                return f"{closer.name} (log: {closer.log_path.read_text()[-800:]})"
        daemon = getattr(self, "daemon", None)
        if daemon is not None and daemon.proc is not None and daemon.proc.poll() is not None:
            return f"perf-exporter (log: {daemon.log[-800:]})"
        return None

    def close(self) -> None:
        """Stop everything started, newest first, then whatever is left under the base dir."""
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                closer.close()
        self.closers.clear()
        self._stop_strays()
        shutil.rmtree(self.base, ignore_errors=True)
        tempfile.tempdir = self._old_tempdir

    def _stop_strays(self) -> None:
        # a start interrupted inside a constructor leaves a process no closer knows: our
        # children, and anything running from the base dir (PostgreSQL, which pg_ctl detaches)
        me = psutil.Process()
        strays = set(me.children(recursive=True))
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(str(self.base) in part for part in proc.info["cmdline"] or []):
                    strays.add(proc)
        for proc in strays:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(list(strays), timeout=5)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
