"""Planted passwords never leave the process: not in logs, pages, metrics or CLI output.

A distinctive password goes into every target kind, through each way a password can arrive
(``password_file``, ``password_env``, inside the DSN/URL), and every target points at a port
where nothing listens, so each collector that exists fails its connection on every cycle and
writes its error paths at debug level. Whatever collectors main holds, the test covers them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.collectors import COLLECTORS
from tests.support.daemon import DaemonProcess
from tests.support.pgbouncer_server import STATS_PASSWORD, PgBouncerServer
from tests.support.processes import run_module
from tests.support.servers import PostgresServer, RedisServer, free_port

pytestmark = pytest.mark.integration

SECRETS = {
    "pg_file": "pgFile-Secret-4f1d2a",
    "pg_dsn": "pgDsn-Secret-7b3a11",
    "redis_env": "rdEnv-Secret-9c3e7b",
    "redis_url": "rdUrl-Secret-0d4e5f",
    "bouncer_env": "pbEnv-Secret-1a8d6f",
    "app_env": "apEnv-Secret-5e2c90",
    "web_user": "webUser-Secret-b7c1",
}


def planted_config(tmp_path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    closed = free_port()
    pw_file = tmp_path / "pg-password"
    pw_file.write_text(SECRETS["pg_file"] + "\n")
    env = {
        "PERF_TEST_REDIS_PW": SECRETS["redis_env"],
        "PERF_TEST_BOUNCER_PW": SECRETS["bouncer_env"],
        "PERF_TEST_APP_PW": SECRETS["app_env"],
    }
    config = {
        "interval": "1s",
        "timeout": "0.5s",
        "targets": {
            "postgres": [
                {
                    "name": "pg-file",
                    "dsn": f"postgresql://monitor@127.0.0.1:{closed}/app",
                    "password_file": str(pw_file),
                },
                {
                    "name": "pg-dsn",
                    "dsn": f"postgresql://monitor:{SECRETS['pg_dsn']}@127.0.0.1:{closed}/app",
                },
            ],
            "redis": [
                {
                    "name": "redis-env",
                    "url": f"redis://127.0.0.1:{closed}/0",
                    "password_env": "PERF_TEST_REDIS_PW",
                },
                {
                    "name": "redis-url",
                    "url": f"redis://:{SECRETS['redis_url']}@127.0.0.1:{closed}/0",
                },
            ],
            "pgbouncer": [
                {
                    "name": "bouncer",
                    "dsn": f"postgresql://stats@127.0.0.1:{closed}/pgbouncer",
                    "password_env": "PERF_TEST_BOUNCER_PW",
                }
            ],
            "app": [
                {
                    "name": "web",
                    "url": f"redis://127.0.0.1:{closed}/0",
                    "password_env": "PERF_TEST_APP_PW",
                }
            ],
        },
    }
    return config, env


def assert_no_secret(where: str, text: str) -> None:
    for kind, secret in SECRETS.items():
        assert secret not in text, f"the {kind} password leaked into {where}"


@pytest.mark.timeout(60)
def test_planted_passwords_never_appear_in_logs_pages_or_metrics(tmp_path: Path) -> None:
    config, env = planted_config(tmp_path)
    with DaemonProcess(config, tmp_path, env=env, args=["--log.level", "debug"]) as d:
        jobs = d.wait_for(
            lambda: d.value("perf_exporter_collector_success", {"collector": "host"}) == 1.0,
            what="the first cycle",
        )
        assert jobs
        # a few cycles of every failing target, then a reload that fails and one that works
        time.sleep(2.5)
        d.write_config({**config, "interval": "bogus"})
        d.signal(signal.SIGHUP)
        d.wait_for(lambda: "config reload failed" in d.log, what="the failed reload")
        d.write_config(config)
        d.signal(signal.SIGHUP)
        d.wait_for(lambda: d.log.count("config reloaded") >= 1, what="the good reload")
        pages = {path: d.get(path) for path in ("/metrics", "/summary", "/", "/healthz")}
        for path, (status, headers, body) in pages.items():
            assert status == 200, path
            assert_no_secret(path, body.decode(errors="replace") + str(headers))
        # each collector main holds reports its unreachable targets as down, by name only
        for kind, targets in config["targets"].items():
            cls = COLLECTORS.get(kind)
            for target in targets if cls is not None else []:
                assert d.value(cls.up_metric, {"target": target["name"]}) == 0.0, target
        assert d.stop() == 0
        assert "level=debug" in d.log
        assert_no_secret("the debug log", d.log)


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_module("exporter", *args, timeout=30, env={**os.environ, **env})


@pytest.mark.timeout(60)
def test_check_config_and_config_errors_never_print_passwords(tmp_path: Path) -> None:
    config, env = planted_config(tmp_path)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    ok = run_cli(["--check-config", "--config.file", str(path), "--log.level", "debug"], env)
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK" in ok.stdout
    assert_no_secret("--check-config output", ok.stdout + ok.stderr)

    # every target broken in a way that makes the validator look at the DSN/URL
    broken = yaml.safe_load(yaml.safe_dump(config))
    broken["targets"]["postgres"][1]["dsn"] = f"mysql://u:{SECRETS['pg_dsn']}@127.0.0.1:1/app"
    broken["targets"]["postgres"][1]["host"] = "db"
    broken["targets"]["redis"][1]["url"] = f"redis://:{SECRETS['redis_url']}@127.0.0.1:99999/0"
    broken["targets"]["app"][0]["url"] = f"http://:{SECRETS['app_env']}@x/"
    broken["targets"]["postgres"][0]["password_file"] = str(tmp_path / "missing")
    broken["interval"] = SECRETS["web_user"]
    path.write_text(yaml.safe_dump(broken))
    bad = run_cli(["--check-config", "--config.file", str(path)], env)
    assert bad.returncode == 2
    assert "targets.postgres[1]" in bad.stderr and "targets.redis[1].url" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert_no_secret("config error messages", bad.stdout + bad.stderr)

    # and the daemon refusing to start says the same, without the secrets
    start = run_cli(["--config.file", str(path)], env)
    assert start.returncode == 2
    assert_no_secret("start-up errors", start.stdout + start.stderr)


WRONG = {
    "pg": "pgWrong-Secret-31c7",
    "redis": "rdWrong-Secret-8e02",
    "bouncer": "pbWrong-Secret-5a66",
    "app": "apWrong-Secret-d419",
}


@pytest.mark.timeout(90)
def test_passwords_servers_reject_never_appear_in_logs_or_pages(tmp_path: Path) -> None:
    """Real servers that check the password: every target fails by ``auth``, nothing leaks."""
    pg = PostgresServer(
        stat_statements=False,
        hba=[
            "local all all trust",
            "host all monitor 127.0.0.1/32 scram-sha-256",
            "host all all 127.0.0.1/32 trust",
        ],
    )
    guarded = RedisServer("--requirepass", "the-real-Redis-pw")
    bouncer = PgBouncerServer(pg)
    try:
        pg.sql("CREATE ROLE monitor LOGIN PASSWORD 'the-real-pg-pw' IN ROLE pg_monitor")
        pw_file = tmp_path / "pg-password"
        pw_file.write_text(WRONG["pg"])
        env = {"PERF_W_REDIS": WRONG["redis"], "PERF_W_BOUNCER": WRONG["bouncer"]}
        config = {
            "interval": "1s",
            "timeout": "0.8s",
            "targets": {
                "postgres": [
                    {"name": "pg", "dsn": pg.dsn_for("monitor"), "password_file": str(pw_file)}
                ],
                "redis": [{"name": "cache", "url": guarded.url, "password_env": "PERF_W_REDIS"}],
                "pgbouncer": [
                    {"name": "bouncer", "dsn": bouncer.dsn(), "password_env": "PERF_W_BOUNCER"}
                ],
                "app": [
                    {
                        "name": "web",
                        "url": f"redis://:{WRONG['app']}@127.0.0.1:{guarded.port}/0",
                    }
                ],
            },
        }
        with DaemonProcess(config, tmp_path, env=env, args=["--log.level", "debug"]) as d:
            for kind, name in (("postgres", "pg"), ("redis", "cache"),
                               ("pgbouncer", "bouncer"), ("app", "web")):  # fmt: skip
                labels = {"collector": kind, "target": name, "reason": "auth"}
                d.wait_for(
                    lambda labels=labels: (
                        (d.value("perf_exporter_collector_errors_total", labels) or 0) >= 2
                    ),
                    what=f"{name} to fail authentication twice",
                )
                assert d.value(COLLECTORS[kind].up_metric or "", {"target": name}) == 0.0
            pages = "".join(d.get(p)[2].decode() for p in ("/metrics", "/summary", "/"))
            assert d.stop() == 0
        for where, text in (("pages", pages), ("the debug log", d.log)):
            for secret in (*WRONG.values(), "the-real-pg-pw", "the-real-Redis-pw", STATS_PASSWORD):
                assert secret not in text, f"a password leaked into {where}"
        assert "reason=auth" in d.log
    finally:
        bouncer.close()
        guarded.close()
        pg.close()


@pytest.mark.timeout(30)
def test_credentials_in_malformed_requests_stay_out_of_the_debug_log(tmp_path: Path) -> None:
    token = "clientToken-Secret-66e0"
    config = {"interval": "1s", "timeout": "0.5s", "targets": {}}
    with DaemonProcess(config, tmp_path, args=["--log.level", "debug"]) as d:
        for request in (
            f"GET /metrics HTTP/1.1\r\nAuthorization: Bearer {token}{'x' * 9000}\r\n\r\n",
            f"GET /metrics HTTP/1.1\r\nAuthorization: Basic {token}\x00\r\n\r\n",
            f"GET /metrics?token={token} HTTP/9.9\r\n\r\n",
        ):
            with socket.create_connection(("127.0.0.1", d.port), 2) as sock:
                sock.sendall(request.encode())
                sock.settimeout(2)
                assert sock.recv(100).startswith(b"HTTP/1.")
        d.wait_for(lambda: d.log.count("malformed HTTP request refused") == 3, timeout=5)
        assert d.stop() == 0
    assert token not in d.log
