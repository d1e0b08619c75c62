"""Hypothesis throws YAML at both config loaders: a valid config or one-line problems, nothing else.

Documents are built from the real key names, so many of them get deep into validation, with a
distinctive password planted in DSNs, URLs, hashes and free text: no problem may quote it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import Config, ConfigError, load
from exporter.webconfig import WebConfig, load_web_config

SECRET = "Zq9fuzzS3cret"

KEYS = [
    "interval", "timeout", "web", "log", "collectors", "targets", "thresholds", "postgres",
    "redis", "pgbouncer", "app", "host", "name", "dsn", "url", "password_file", "password_env",
    "enabled", "statements_top_n", "namespaces", "separator", "depth", "listen_address",
    "config_file", "level", "format", "tls", "ca", "databases", "sslmode", "port", "db",
    "user", "dbname", "username", "prefix", "max_connections", "read_timeout", "scan_count",
    "tls_server_config", "basic_auth_users", "unauthenticated_paths", "http_server_config",
    "cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version",
    "headers", "mountpoint_include", "filesystem_timeout",
]  # fmt: skip

SAMPLES = [
    "15s", "1m30s", "0", "-1s", "250ms", "abc", "all", ":9839", "127.0.0.1:99999", "[::1]:1",
    f"postgresql://monitor:{SECRET}@127.0.0.1:5432/app", f"redis://:{SECRET}@127.0.0.1:6379/0",
    f"postgres://u:{SECRET}@[::1:bad/x", f"$2b$04${SECRET}", SECRET, "/healthz", "TLS13",
    "RequireAndVerifyClientCert", "(unclosed", "debug", "json", "true",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(SAMPLES),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=5),
    ),
    max_leaves=25,
)
documents = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=6).map(yaml.safe_dump),
    values.map(yaml.safe_dump),
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
)


def check_problems(problems: list[str]) -> None:
    assert problems, "a ConfigError must say what is wrong"
    for problem in problems:
        assert isinstance(problem, str) and problem.strip()
        assert "\n" not in problem
        assert "Traceback" not in problem
        assert SECRET not in problem, problem


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fuzz.yml"
    path.write_text(text, errors="surrogateescape")
    return path


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents)
def test_any_yaml_is_a_valid_config_or_a_list_of_one_line_problems(
    tmp_path: Path, text: str
) -> None:
    try:
        config = load(written(tmp_path, text), environ={})
    except ConfigError as exc:
        check_problems(exc.problems)
        return
    assert isinstance(config, Config)
    assert math.isfinite(config.interval) and config.timeout < config.interval


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents)
def test_any_yaml_is_a_valid_web_config_or_a_list_of_one_line_problems(
    tmp_path: Path, text: str
) -> None:
    try:
        config = load_web_config(written(tmp_path, text))
    except ConfigError as exc:
        check_problems(exc.problems)
        return
    assert isinstance(config, WebConfig)


def test_planted_secret_reaches_validation(tmp_path: Path) -> None:
    """Guard for the fuzz tests above: the secret does sit in input that fails validation."""
    doc: dict[str, Any] = {
        "targets": {"postgres": [{"name": "x y", "dsn": f"postgresql://u:{SECRET}@h:1/d"}]},
        "interval": SECRET,
    }
    try:
        load(written(tmp_path, yaml.safe_dump(doc)), environ={})
    except ConfigError as exc:
        check_problems(exc.problems)
        assert len(exc.problems) == 2
    else:
        raise AssertionError("an invalid name and interval must be refused")
    try:
        load_web_config(written(tmp_path, yaml.safe_dump({"basic_auth_users": {"a": SECRET}})))
    except ConfigError as exc:
        check_problems(exc.problems)
    else:
        raise AssertionError("a password that is not a bcrypt hash must be refused")


def test_problem_paths_name_the_field_even_when_it_looks_like_a_type(tmp_path: Path) -> None:
    """Found by the fuzz test: ``interval`` was dropped from paths as if it were ``int``."""
    text = 'collectors: {host: {interval: x}}\nstrange: 1\n"a\\nb": 2\ninterval: .inf\n'
    try:
        load(written(tmp_path, text), environ={})
    except ConfigError as exc:
        assert exc.problems == [
            "interval: must be a finite number",
            "collectors.host.interval: must be a duration such as 15s, 1m or 500ms",
            "strange: unknown key (check its spelling and place)",
            "'a\\nb': unknown key (check its spelling and place)",
        ]
    else:
        raise AssertionError("the config is invalid")
