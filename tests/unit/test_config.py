"""Config: validated up front, every problem at once with its path, precedence, no secrets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from exporter import config
from exporter.config import ConfigError, Timing, load, parse_duration, redact_url
from tests.support.processes import run_module

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), environ={})
    return info.value.problems


def test_every_kind_of_invalid_value_is_reported_at_once_with_its_path(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
interval: fast
timeout: -1
web: {listen_address: "nowhere"}
log: {level: loud, format: xml}
collectors:
  host: {mountpoint_exclude: "([", bogus: 1}
  postgres: {statements_top_n: 0}
targets:
  postgres:
    - {name: main, dsn: "mysql://x@y/z"}
    - {dsn: "postgresql://a@b/c"}
    - {name: "bad name!", host: h, dsn: "postgresql://a@b/c"}
  redis:
    - {name: cache, url: "redis://h:99999/0"}
    - {name: cache2, url: "redis://h/0", password_file: /nonexistent/secret}
  pgbouncer:
    - {name: pgb}
unknown_top: 1
""",
    )
    text = "\n".join(found)
    expected = [
        "interval: must be a duration",
        "timeout: must be greater than 0",
        "web.listen_address: must be host:port or :port",
        'log.level: must be one of "debug", "info", "warn", "error"',
        'log.format: must be one of "logfmt", "json"',
        "collectors.host.mountpoint_exclude: is not a valid regular expression",
        "collectors.host.bogus: unknown key",
        "collectors.postgres.statements_top_n: must be at least 1",
        "targets.postgres[0].dsn: must start with postgresql:// or postgres://",
        "targets.postgres[1].name: is required",
        "targets.postgres[2].name: must be 1-64 letters",
        "targets.redis[0].url: is not a valid URL",
        "targets.redis[1].password_file: cannot read password file /nonexistent/secret",
        "targets.pgbouncer[0].dsn: is required",
        "unknown_top: unknown key",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in found), f"missing {line!r} in:\n{text}"
    assert len(found) == len(expected), text


def test_timeout_must_be_shorter_than_interval(tmp_path: Path) -> None:
    assert problems(tmp_path, "interval: 5s\ntimeout: 10s\n") == [
        "(top level): timeout must be shorter than interval"
    ]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "interval: 15s\ntargets: [\n")
    assert len(found) == 1 and "line" in found[0]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert problems(tmp_path, "- a\n- b\n")[0].endswith(
        "the top level must be a mapping of settings"
    )


def test_durations() -> None:
    assert parse_duration("15s") == 15.0
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration(2) == 2.0
    for bad in ("15", "15x", "", "s", True):
        if bad == "15":
            assert parse_duration(bad) == 15.0
            continue
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_env_beats_file_and_flags_beat_env(tmp_path: Path) -> None:
    path = write(tmp_path, "interval: 30s\nlog: {level: error}\nweb: {listen_address: ':1111'}\n")
    env = {"PERF_EXPORTER_INTERVAL": "20s", "PERF_EXPORTER_LOG_LEVEL": "debug"}
    cfg = load(path, {"log.level": "warn"}, environ=env)
    assert cfg.interval == 20.0  # env over file
    assert cfg.log.level == "warn"  # flag over env
    assert cfg.web.listen_address == ":1111"  # file over default
    assert load(None, environ={}).interval == 15.0  # default


def test_collector_switch_from_env_and_flag(tmp_path: Path) -> None:
    cfg = load(None, {}, environ={"PERF_EXPORTER_COLLECTOR_HOST": "false"})
    assert not cfg.enabled("host")
    cfg = load(
        None, {"collectors.host.enabled": True}, environ={"PERF_EXPORTER_COLLECTOR_HOST": "0"}
    )
    assert cfg.enabled("host")


def test_zero_config_targets_localhost_or_the_environment() -> None:
    cfg = load(None, environ={})
    assert cfg.targets.postgres[0].dsn == config.DEFAULT_POSTGRES_DSN
    assert cfg.targets.redis[0].url == config.DEFAULT_REDIS_URL
    cfg = load(
        None,
        environ={"DATABASE_URL": "postgresql://app@db:5432/app", "REDIS_URL": "redis://r:6380/1"},
    )
    assert cfg.targets.postgres[0].dsn == "postgresql://app@db:5432/app"
    assert cfg.targets.redis[0].url == "redis://r:6380/1"


def test_explicit_empty_targets_mean_none(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, "targets: {}\n"), environ={})
    assert cfg.targets.postgres == [] and cfg.targets.redis == []


def test_interval_and_timeout_overrides_per_collector_and_target(tmp_path: Path) -> None:
    cfg = load(
        write(
            tmp_path,
            """
interval: 30s
timeout: 10s
collectors: {host: {interval: 5s}, postgres: {timeout: 3s}}
targets:
  postgres:
    - {name: a, dsn: "postgresql://u@h/d"}
    - {name: b, dsn: "postgresql://u@h/d", interval: 60s, timeout: 20s}
""",
        ),
        environ={},
    )
    a, b = cfg.targets.postgres
    assert cfg.timing_for("host") == Timing(5.0, 4.5)  # never beyond 90 % of the interval
    assert cfg.timing_for("postgres", a) == Timing(30.0, 3.0)
    assert cfg.timing_for("postgres", b) == Timing(60.0, 20.0)


def test_password_file_is_read_at_use(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("first\n")
    cfg = load(
        write(
            tmp_path,
            "targets: {postgres: [{name: a, dsn: 'postgresql://u@h/d', "
            f"password_file: {secret}}}]}}\n",
        ),
        environ={},
    )
    target = cfg.targets.postgres[0]
    assert target.password() == "first"
    secret.write_text("rotated")
    assert target.password() == "rotated"


def test_redact_url() -> None:
    assert redact_url("postgresql://u:hunter22@db:5432/app") == "postgresql://u:***@db:5432/app"
    assert redact_url("redis://:pw1234@h/0") == "redis://:***@h/0"
    assert redact_url("redis://h/0") == "redis://h/0"
    assert (
        redact_url("postgresql://u@db/app?sslmode=require&password=hunter22")
        == "postgresql://u@db/app?sslmode=require&password=***"
    )


def test_a_password_with_an_unescaped_delimiter_is_refused_and_never_shown() -> None:
    """``#``, ``/`` or ``?`` in a password end the host part for every URL parser."""
    url = "postgresql://app:12#Sekr3t@db:5432/app"
    assert "Sekr3t" not in redact_url(url)
    assert redact_url(url) == "postgresql://***@db:5432/app"
    assert any("Sekr3t" in p for p in config.url_passwords(url))
    with pytest.raises(ConfigError) as err:
        load(None, {"targets.postgres": [{"name": "a", "dsn": url}]}, environ={})
    [problem] = err.value.problems
    assert problem.startswith("targets.postgres[0].dsn: has an '@' after the host")
    assert "Sekr3t" not in problem


def test_oversized_numbers_and_patterns_are_problems_not_crashes(tmp_path: Path) -> None:
    huge = "1" + "0" * 400
    found = problems(
        tmp_path,
        f"interval: {huge}\n"
        f"collectors:\n  redis: {{scan_pass_pause: {huge}}}\n"
        "  host: {disk_exclude: 'a{4294967296}', network_exclude: '"
        + "(" * 2000
        + ")" * 2000
        + "'}\n"
        "thresholds: {}\n",
    )
    assert found == [
        "interval: is too large (a duration is at most 86400 seconds)",
        "collectors.host.disk_exclude: is not a usable regular expression (too large or too deep)",
        "collectors.host.network_exclude: is not a usable regular expression "
        "(too large or too deep)",
        "collectors.redis.scan_pass_pause: must be a finite number",
    ]


def test_short_interval_alone_is_fine_but_an_explicit_longer_timeout_is_not(
    tmp_path: Path,
) -> None:
    cfg = load(write(tmp_path, "interval: 2s\ntargets: {}\n"), environ={})
    assert cfg.timing_for("host").timeout == 1.8
    assert load(None, environ={"PERF_EXPORTER_INTERVAL": "5s"}).interval == 5.0


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_module("exporter", *args, timeout=60, env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_cli_bad_config_exits_2_without_traceback_or_secret(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
interval: nope
targets:
  postgres: [{name: a, dsn: "postgresql://u:Sekr3tPassw0rd@h:notaport/d"}]
  redis: [{name: r, url: "redis://:An0therSecret@h/0", tls: {ca: 1, bad: 2}}]
""",
    )
    out = run_cli("--config.file", str(path), "--check-config")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "interval: must be a duration" in out.stderr
    assert "targets.postgres[0].dsn: is not a valid URL" in out.stderr
    assert "targets.redis[0].tls.bad: unknown key" in out.stderr
    assert "Sekr3tPassw0rd" not in out.stderr + out.stdout
    assert "An0therSecret" not in out.stderr + out.stdout


def test_cli_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    out = run_cli("--config.file", str(tmp_path / "absent.yml"))
    assert out.returncode == 2
    assert "cannot read the config file" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_check_config_lists_jobs(tmp_path: Path) -> None:
    path = write(tmp_path, "interval: 10s\ntargets: {}\n")
    out = run_cli("--config.file", str(path), "--check-config", "--no-collector.host")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("configuration OK: 0 jobs")
    out = run_cli("--config.file", str(path), "--check-config")
    assert "host/local every 10s" in out.stdout


def test_cli_flag_errors_exit_2() -> None:
    out = run_cli("--log.level", "loud")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr


def test_cli_version_and_help() -> None:
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("perf-exporter ")
    out = run_cli("--help")
    for flag in (
        "--config.file",
        "--web.listen-address",
        "--web.config.file",
        "--log.level",
        "--log.format",
        "--collector.host",
        "--no-collector.host",
        "--check-config",
        "--version",
    ):
        assert flag in out.stdout
    # described from each collector's docstring, loaded for the help only
    words = " ".join(out.stdout.split())
    assert "enable the postgres collector: Samples one PostgreSQL server" in words


def test_model_rules_are_reported_when_fields_are_valid(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "targets: {postgres: [{name: a, host: h, dsn: 'postgresql://a@b/c'}]}\n",
    )
    assert found == ["targets.postgres[0]: give either dsn or host/port/user/dbname, not both"]


def test_duplicate_target_names_are_refused(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "targets: {redis: [{name: a, url: 'redis://h/0'}, {name: a, url: 'redis://g/0'}]}\n",
    )
    assert found == ["targets: redis target names must be unique; repeated: a"]
