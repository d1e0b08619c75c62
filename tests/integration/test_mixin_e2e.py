"""The mixin end to end: the daemon, real Prometheus, Alertmanager, a webhook and a second
Prometheus receiving remote_write, against suite-started PostgreSQL, Redis and PgBouncer and an
instrumented app worker.

One stack per module. Rules are the generated ones with test-only short ``for:`` and rate
windows (from Thresholds overrides, the way an operator would set them). Proves: every
dashboard and recording expression runs in Prometheus and returns data where its source
exists; every metric name the mixin uses is in a real scrape; a Redis hit ratio under the
critical level and a PostgreSQL connection saturation each page through Alertmanager with the
warning twin inhibited, and resolve after recovery; remote_write reaches the second Prometheus;
and headless Chromium renders the summary page.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from exporter.mixin.alertmanager import alertmanager_config
from exporter.mixin.catalog import SIGNALS
from exporter.mixin.generate import render
from exporter.mixin.thresholds import Thresholds
from tests.support.app_worker_process import AppWorker
from tests.support.daemon import DaemonProcess
from tests.support.processes import wait_until
from tests.support.prom_stack import Alertmanager, Prometheus, Webhook
from tests.support.promql_lint import selectors
from tests.support.servers import PostgresServer, RedisServer, pg_bin, require_binary

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
RATE_INTERVAL = "5s"  # what Grafana's $__rate_interval is with a 1 s scrape
#: Expressions that legitimately return nothing on a healthy machine: the fill prediction only
#: has a value for a shrinking filesystem, the container signal only inside a memory-limited
#: cgroup (checked against the scrape below).
#: Slowlog entries need a command slower than slowlog-log-slower-than, COMMANDLOG a Valkey;
#: blocking roots exist only while a session blocks another.
DATA_DEPENDENT = (
    "perf_host_filesystem_hours_until_full",
    "Filesystem predicted full in",
    "Blocking roots by application",  # no session blocks another in the stack
    "Slowlog entries per second",
    "COMMANDLOG large requests and replies per second (Valkey 8.1+)",
    "COMMANDLOG length (Valkey 8.1+)",
    # pg_stat_progress_vacuum is empty while no vacuum runs (autovacuum comes and goes)
    "Vacuums in progress by phase",
)
#: Expressions comparing with a day ago have no data in a stack minutes old.
NEEDS_A_DAY = " offset 1d"
#: Metrics a dashboard reads that the suite's Redis 7 never has (COMMANDLOG is Valkey 8.1's).
VALKEY_ONLY = {"perf_redis_commandlog_entries_total", "perf_redis_commandlog_length"}


def e2e_thresholds() -> Thresholds:
    overrides: dict[str, Any] = {s.key: {"for_warn": "1s", "for_crit": "1s"} for s in SIGNALS}
    overrides.update(rate_window="10s", predict_window="1m")
    return Thresholds.from_overrides(overrides)


class PsqlSession:
    """A psql session named ``application_name`` reading ``script`` from its standard input."""

    def __init__(self, pg: PostgresServer, application_name: str, script: str) -> None:
        self.proc = subprocess.Popen(
            [
                *(require_binary("psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port)),
                *("-U", "postgres", "-d", "postgres"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"SET application_name = '{application_name}';\n{script}")
        self.proc.stdin.flush()


class IdleTransaction(PsqlSession):
    """A psql session that opened a transaction and went idle (the transaction age signals)."""

    def __init__(self, pg: PostgresServer) -> None:
        super().__init__(pg, "e2e-idle", "BEGIN;\nSELECT 1;\n")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class SleepingCaller(PsqlSession):
    """A psql session calling a 200 ms pg_sleep back to back (at most 10 minutes): an active
    session the wait sampler sees, in a listed statement, for the database-load series."""

    def __init__(self, pg: PostgresServer) -> None:
        super().__init__(pg, "e2e-sleeper", "SELECT pg_sleep(0.2);\n" * 3000)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@dataclass
class Stack:
    pg: PostgresServer
    redis: RedisServer
    daemon: DaemonProcess
    prometheus: Prometheus
    remote: Prometheus
    alertmanager: Alertmanager
    webhook: Webhook
    thresholds: Thresholds
    files: dict[str, str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # from the PgBouncer collector's branch; imported here so that, before it is merged, only
    # this module's tests fail and not the collection of the whole suite
    from tests.support.pgbouncer_server import STATS_PASSWORD, PgBouncerServer

    tmp = tmp_path_factory.mktemp("mixin-e2e")
    t = e2e_thresholds()
    files = render(t)
    closers: list[Any] = []
    try:
        # PostgreSQL 18: every PostgreSQL panel has its source there (pg_stat_io's bytes, 16+
        # evictions), so every expression must return data; e2e_closed refuses every login:
        # its table statistics fail and are counted
        hba = [
            "local all all trust",
            "host e2e_closed all 127.0.0.1/32 reject",
            "host all all 127.0.0.1/32 trust",
            "host all all ::1/128 trust",
        ]
        pg = PostgresServer(
            stat_statements=True,
            settings={"max_connections": "20", "superuser_reserved_connections": "3"},
            hba=hba,
            bin_dir=pg_bin("18"),
        )
        pg.sql("CREATE DATABASE e2e_closed")
        closers.append(pg)
        closers.append(IdleTransaction(pg))
        closers.append(SleepingCaller(pg))
        # an index nothing uses: the collector's advice must reach the summary page
        pg.sql(
            "CREATE TABLE e2e_orders AS SELECT g AS id, md5(g::text) AS note "
            "FROM generate_series(1, 5000) g; CREATE INDEX e2e_orders_note ON e2e_orders (note)"
        )
        pg.sql("VACUUM ANALYZE e2e_orders")  # the last vacuum and analyze times
        cache = RedisServer("--maxmemory", "64mb")
        closers.append(cache)
        bouncer = PgBouncerServer(pg, pool_size=2, pool_mode="transaction")
        closers.append(bouncer)
        prefix = f"perf:e2e:{uuid.uuid4().hex[:6]}:"
        worker = AppWorker(
            {
                "redis": cache.url,
                "dsn": pg.dsn,
                "prefix": prefix,
                "flush": 0.2,
                "ttl": 30.0,
                "pool_interval": 0.3,
                "pool_max": 2,
            }
        )
        closers.append(worker)
        worker.send(cmd="cache", namespace="api_response", sets=1, hits=40, misses=2)
        worker.send(cmd="cache", namespace="search_results", cached=40)
        worker.send(cmd="flush")
        config = {
            "interval": "1s",
            "timeout": "800ms",
            # the statements table joins the text in: its info series must be in the scrape
            "collectors": {"postgres": {"statement_text": True}},
            "targets": {
                "postgres": [{"name": "pg", "dsn": pg.dsn}],
                "redis": [{"name": "cache", "url": cache.url, "namespaces": ["cache:"]}],
                "pgbouncer": [{"name": "bouncer", "dsn": bouncer.dsn(password=STATS_PASSWORD)}],
                "app": [{"name": "app", "url": cache.url, "prefix": prefix}],
            },
            "thresholds": t.model_dump(),
        }
        daemon = DaemonProcess(config, tmp).start()
        closers.append(daemon)
        webhook = Webhook()
        closers.append(webhook)
        am_config = alertmanager_config(t, webhook_base=webhook.url)
        # group_wait longer than a sample, a scrape and an evaluation (1 s each here), as the
        # example's 30 s is against 15 s: a level crossed between two samples makes the warning
        # twin fire up to a couple of seconds before the critical one, and with a group_wait of
        # 1 s the warning was now and then sent before the critical could inhibit it
        am_config["route"].update(group_wait="3s", group_interval="1s", repeat_interval="1h")
        alertmanager = Alertmanager(am_config)
        closers.append(alertmanager)
        remote = Prometheus({"global": {"scrape_interval": "1s"}}, receiver=True)
        closers.append(remote)
        rules = []
        for rel in ("alerts/perf-exporter.rules.yml", "alerts/recording.rules.yml"):
            path = tmp / Path(rel).name
            path.write_text(files[rel])
            rules.append(str(path))
        prometheus = Prometheus(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": rules,
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}]}
                    ]
                },
                "scrape_configs": [
                    {
                        "job_name": "perf-exporter",
                        "static_configs": [{"targets": [f"127.0.0.1:{daemon.port}"]}],
                    }
                ],
                "remote_write": [
                    {
                        "url": f"{remote.url}/api/v1/write",
                        "queue_config": {"batch_send_deadline": "1s"},
                    }
                ],
            }
        )
        closers.append(prometheus)
        s = Stack(pg, cache, daemon, prometheus, remote, alertmanager, webhook, t, files)
        # every source up in Prometheus and enough samples for the rates
        for up in ("perf_postgres_up", "perf_redis_up", "perf_pgbouncer_up", "perf_app_up"):
            assert prometheus.wait_for(f"{up} == 1", 30), f"{up}: {daemon.log[-3000:]}"
        assert prometheus.wait_for(f"count_over_time(perf_redis_up[{RATE_INTERVAL}]) >= 4", 20)
        yield s
    finally:
        for closer in reversed(closers):
            closer.stop() if isinstance(closer, DaemonProcess) else closer.close()


# --- expressions and names --------------------------------------------------------------------


def dashboard_exprs(files: dict[str, str]) -> list[tuple[str, str, str]]:
    out = []
    for rel, text in files.items():
        if rel.startswith("dashboards/"):
            for panel in json.loads(text)["panels"]:
                for target in panel.get("targets", []):
                    out.append((rel, panel["title"], target["expr"]))
    return out


def substitute(expr: str) -> str:
    return (
        expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace('"$job"', '"perf-exporter"')
        .replace('"$instance"', '".+"')
        .replace('"$target"', '".+"')
    )


def scraped_names(daemon: DaemonProcess) -> set[str]:
    return {
        sample.name
        for family in text_string_to_metric_families(daemon.scrape())
        for sample in family.samples
    }


def test_every_metric_name_in_rules_and_dashboards_is_in_a_real_scrape(stack: Stack) -> None:
    import yaml

    used: set[str] = set()
    for rel in ("alerts/perf-exporter.rules.yml", "alerts/recording.rules.yml"):
        for group in yaml.safe_load(stack.files[rel])["groups"]:
            for rule in group["rules"]:
                # alerts select the recorded series; the raw names are in the recording rules
                used |= {s.name for s in selectors(rule["expr"]) if ":" not in s.name}
    for _, _, expr in dashboard_exprs(stack.files):
        used |= {s.name for s in selectors(substitute(expr))}
    # a loaded machine may time a collector out for one cycle (its series are then absent):
    # take the union of a few scrapes
    names: set[str] = set()
    for _ in range(20):
        names |= scraped_names(stack.daemon)
        missing = used - names
        missing -= VALKEY_ONLY
        # a cgroup (v2 or v1) without a limit has no limit series; no cgroup fs, no series
        missing -= {"perf_host_cgroup_memory_max_bytes", "perf_host_cgroup_cpu_quota_cores"}
        if not any(n.startswith("perf_host_cgroup_") for n in names):
            missing -= {"perf_host_cgroup_memory_current_bytes"}
        # roots of blocking chains exist only while a session blocks another: not in the stack
        missing -= {"perf_postgres_blocking_sessions"}
        # absent while no vacuum runs (see DATA_DEPENDENT)
        missing -= {"perf_postgres_vacuums_in_progress"}
        if not missing:
            break
        time.sleep(0.5)
    assert not missing, sorted(missing)
    assert len(used) > 40


def test_every_dashboard_expression_runs_and_returns_data(stack: Stack) -> None:
    exprs = dashboard_exprs(stack.files)
    assert len(exprs) > 60
    empty = []
    for rel, title, expr in exprs:
        result = stack.prometheus.query(substitute(expr))  # asserts status success
        if (
            not result
            and title not in DATA_DEPENDENT
            and "cgroup" not in expr
            and NEEDS_A_DAY not in expr
        ):
            empty.append((rel, title, substitute(expr)))
    # a collector timed out on a loaded machine leaves a gap: look again for a few seconds
    still = [e for e in empty if not stack.prometheus.wait_for(e[2], 10)]
    assert not still, "\n".join(f"{rel}: {title}: {expr}" for rel, title, expr in still)


def test_every_recording_rule_produces_series(stack: Stack) -> None:
    empty = []
    for signal in SIGNALS:
        name = signal.record_name(stack.thresholds.rate_window)
        if signal.key in ("host_filesystem_fill_hours", "host_cgroup_memory_utilisation"):
            continue  # data-dependent, see DATA_DEPENDENT
        if signal.formula.span >= 86400:
            continue  # see NEEDS_A_DAY
        if not stack.prometheus.wait_for(name, 15):
            empty.append(name)
        if signal.guarded:
            traffic = signal.traffic_record_name(stack.thresholds.rate_window)
            if not stack.prometheus.wait_for(traffic, 15):
                empty.append(traffic)
    assert not empty, empty


def test_remote_write_delivers_the_exporter_series_to_the_second_prometheus(
    stack: Stack,
) -> None:
    found = stack.remote.wait_for('perf_redis_up{job="perf-exporter", target="cache"}', 30)
    assert found and found[0]["value"][1] == "1"
    assert stack.remote.wait_for('perf_postgres_blocks_hit_total{target="pg"}', 10)


# --- alerts through Alertmanager ----------------------------------------------------------------


def assert_paged_and_inhibited(stack: Stack, alertname: str, start: int) -> None:
    """The critical twin reaches the webhook; the warning twin is suppressed, never sent."""
    assert stack.webhook.wait_for(alertname, "critical", "firing", 45), (
        f"no critical {alertname}; alertmanager has {stack.alertmanager.alerts(alertname)}"
    )

    def warning_inhibited() -> bool:
        return any(
            a["labels"]["severity"] == "warning" and a["status"]["inhibitedBy"]
            for a in stack.alertmanager.alerts(alertname)
        )

    wait_until(warning_inhibited, 15, f"the warning {alertname} to be inhibited", interval=0.3)
    sent = [n for n in stack.webhook.notifications(alertname) if n[3] >= start]
    assert not [n for n in sent if n[2] == "warning"], sent


class Traffic:
    """GETs against Redis from a thread until stopped: all misses or all hits."""

    def __init__(self, url: str, hits: bool) -> None:
        self.client = redis.Redis.from_url(url)
        self.hits = hits
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        if hits:
            self.client.set("e2e:present", "1")
        self.thread.start()

    def _run(self) -> None:
        for _ in range(100_000):  # bounded: ~10 min at most
            if self.stop_event.is_set():
                return
            pipe = self.client.pipeline(transaction=False)
            for i in range(50):
                pipe.get("e2e:present" if self.hits else f"e2e:absent:{i}")
            pipe.execute()
            time.sleep(0.05)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        self.client.close()


@pytest.mark.timeout(150)
def test_redis_hit_ratio_under_critical_pages_inhibits_the_warning_and_resolves(
    stack: Stack,
) -> None:
    name = "PerfRedisHitRatioLow"
    start = len(stack.webhook.received)
    misses = Traffic(stack.redis.url, hits=False)
    try:
        assert_paged_and_inhibited(stack, name, start)
    finally:
        misses.stop()
    hits = Traffic(stack.redis.url, hits=True)
    try:
        assert stack.webhook.wait_for(name, "critical", "resolved", 60), (
            stack.webhook.notifications(name)
        )
    finally:
        hits.stop()
    # the summary judged the same signal with the same thresholds
    summary = json.loads(stack.daemon.get("/summary")[2])
    rows = [r for r in summary["signals"] if r["signal"] == "redis_hit_ratio"]
    assert rows and rows[0]["warn"] == 0.8 and rows[0]["crit"] == 0.7


@pytest.mark.timeout(150)
async def test_postgres_connection_saturation_pages_and_resolves(stack: Stack) -> None:
    name = "PerfPostgresConnectionsSaturated"
    start = len(stack.webhook.received)
    # 17 usable connections (20 - 3 reserved): 14 more on top of the app's and the idle
    # transaction's pass the 90 % critical level whether or not the exporter counts its own
    held = [await asyncpg.connect(stack.pg.dsn) for _ in range(14)]
    try:
        await asyncio.to_thread(assert_paged_and_inhibited, stack, name, start)
        value = stack.prometheus.query(
            'job_instance_target:perf_postgres_connections:utilisation{target="pg"}'
        )
        assert float(value[0]["value"][1]) > 0.9
    finally:
        for conn in held:
            await conn.close()
    resolved = await asyncio.to_thread(stack.webhook.wait_for, name, "critical", "resolved", 60)
    assert resolved, stack.webhook.notifications(name)


# --- the summary page in a real browser ---------------------------------------------------------


@pytest.mark.timeout(90)
def test_headless_chromium_renders_the_summary_page(stack: Stack) -> None:
    chromium = require_binary("chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "summary.png"
    png.unlink(missing_ok=True)
    common = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1400,2400",
    ]
    url = stack.daemon.url + "/"
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for title in ("Performance summary", "Redis keyspace hit ratio", "PostgreSQL connection"):
        assert title in dom, title
    assert re.search(r'class="score"[^>]*>\d+<', dom), "no score"
    assert "<svg" in dom and "<script" not in dom
    assert "e2e_orders_note" in dom  # the PostgreSQL collector's index advice
    subprocess.run(
        [*common, f"--screenshot={png}", url], capture_output=True, timeout=60, check=True
    )
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
