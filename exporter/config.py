"""Configuration: a YAML file, the environment and flags, validated in full before anything starts.

Precedence is flag > environment > file > default. Every problem is collected and reported at
once, each with its path (``targets.postgres[1].dsn: ...``); :class:`ConfigError` carries them
and the CLI prints them and exits 2. Passwords never sit in error text: messages are built from
field paths and our own sentences, never from the offending input.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import yaml

from exporter.schema import (
    Before,
    Field,
    Model,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_PORT = 9839
DEFAULT_LISTEN_ADDRESS = f":{DEFAULT_PORT}"
DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_INTERVAL = 15.0
DEFAULT_TIMEOUT = 5.0
ENV_PREFIX = "PERF_EXPORTER_"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason, each with its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_duration(value: object) -> object:
    """Accept ``15s``, ``1m30s``, ``250ms``, ``2h`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 15s, 1m or 500ms")
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            raise ValueError("is too large (a duration is at most 86400 seconds)") from None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        parts = _DURATION.findall(text)
        if parts and "".join(num + unit for num, unit in parts) == text:
            scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
            return sum(float(num) * scale[unit] for num, unit in parts)
    raise ValueError("must be a duration such as 15s, 1m or 500ms")


#: Up to a day: longer is a typo, and infinity would crash the scheduler's timedelta arithmetic.
Duration = Annotated[float, Before(parse_duration), Field(gt=0, le=86400)]


def parse_duration_or_off(value: object) -> object:
    """A duration, or ``0``/``off``/``false`` (YAML reads a bare ``off`` as false) for none."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "false")):
        return 0.0
    return parse_duration(value)


#: A duration where 0 (or ``off``) switches the thing off.
OptionalDuration = Annotated[float, Before(parse_duration_or_off), Field(ge=0, le=86400)]


def _hidden_userinfo(url: str) -> str | None:
    """The text between ``://`` and the last ``@`` when the parser did not see it as userinfo.

    ``postgresql://app:p#ss@db/app`` is split at ``#`` by every URL parser, so the password is
    not where a parser looks for it; it must still never be shown.
    """
    _, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return None
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        netloc = ""
    if "@" in netloc:
        return None
    return rest[: rest.rindex("@")]


def url_passwords(url: str) -> list[str]:
    """Every password a URL carries: in its userinfo and in a ``password=`` query parameter
    (asyncpg and redis-py accept both)."""
    hidden = _hidden_userinfo(url)
    if hidden is not None:
        return [hidden.partition(":")[2] or hidden]
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
    except ValueError:
        return []
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == "password" and v]
    return found


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe for logs and error messages."""
    hidden = _hidden_userinfo(url)
    if hidden is not None:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest[rest.rindex('@') + 1 :]}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{user}:***@{host}"
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is not None:
            netloc += f":{port}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(k == "password" for k, _ in pairs):
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# --- collectors: settings shared by every target of one kind ----------------------------------


class CollectorSettings(Model):
    """Settings every collector accepts; ``interval``/``timeout`` default to the global ones."""

    enabled: bool | None = None
    interval: Duration | None = None
    timeout: Duration | None = None


class HostSettings(CollectorSettings):
    """The local host: which filesystems, disks and interfaces to report (regular expressions)."""

    mountpoint_include: str = ".*"
    mountpoint_exclude: str = r"^/(dev|proc|sys|run|var/lib/docker/.+|snap)($|/)"
    fstype_exclude: str = (
        r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|"
        r"iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|"
        r"squashfs|sysfs|tracefs|tmpfs|ramfs|shm)$"
    )
    disk_exclude: str = r"^(ram|loop|fd|sr|(h|s|v|xv)d[a-z]+\d+|nvme\d+n\d+p\d+)"
    network_exclude: str = r"^lo$"
    #: Seconds one filesystem's statfs may take before it is reported as unreachable.
    filesystem_timeout: Duration = 2.0

    @field_validator(
        "mountpoint_include",
        "mountpoint_exclude",
        "fstype_exclude",
        "disk_exclude",
        "network_exclude",
    )
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from None
        except (OverflowError, RecursionError):
            raise ValueError("is not a usable regular expression (too large or too deep)") from None
        return value


class PostgresSettings(CollectorSettings):
    """PostgreSQL: how many statements, tables and applications are reported at most."""

    statements_top_n: int = Field(50, ge=1, le=1000)
    #: Statements are ranked by execution time over this window; a listed one stays a window.
    statements_window: Duration = 600.0
    statement_text: bool = False
    statement_text_max_length: int = Field(120, ge=8, le=4000)
    tables_top_n: int = Field(20, ge=1, le=500)
    applications_top_n: int = Field(10, ge=1, le=200)
    #: Index advice in /summary: a table scanned sequentially at least this often ...
    index_advice_min_seq_scans: int = Field(50, ge=1)
    #: ... reading at least this many rows per scan on average looks like it misses an index.
    index_advice_min_rows_per_scan: int = Field(10_000, ge=1)
    #: Seconds between two pg_stat_activity samples (wait events, blocking) taken between
    #: cycles; 0 or off: none (blocking is then read once per cycle).
    wait_sample_interval: OptionalDuration = 1.0
    #: Databases at most whose table and index statistics are read (the DSN's one included);
    #: each other one costs a short connection per refresh (see docs/postgres.md, Cost).
    table_stats_max_databases: int = Field(10, ge=1, le=200)
    #: Seconds between two refreshes of the table statistics of the databases other than the
    #: DSN's (0: every cycle); in between their last result is served, with its timestamp.
    table_stats_interval: OptionalDuration = 60.0

    @field_validator("wait_sample_interval")
    @classmethod
    def _wait_sample_interval(cls, value: float) -> float:
        if 0 < value < 0.1:
            raise ValueError("must be off (0) or at least 100ms")
        return value


class RedisSettings(CollectorSettings):
    """Redis: the budget of the incremental namespace SCAN (see docs/redis.md)."""

    #: COUNT of each SCAN (keys per batch; a batch is one script call, about 1.6 ms of Redis
    #: time at 1000 keys; at most 1000 so that no call blocks Redis for long).
    scan_count: int = Field(1000, ge=10, le=1000)
    #: Keys visited per cycle at most (exceeded only by what one SCAN returns beyond COUNT);
    #: the default, 2 batches, keeps a cycle at 6 commands with INFO, PING, LATENCY HISTOGRAM
    #: and SLOWLOG GET, what redis_exporter sends per scrape.
    scan_max_keys_per_cycle: int = Field(2000, ge=100, le=10_000_000)
    #: Seconds of scanning per cycle at most; the rest of the pass waits for the next cycle.
    scan_max_seconds_per_cycle: Duration = 1.0
    #: Seconds from the end of one pass to the start of the next (0: at the next cycle).
    scan_pass_pause: float = Field(0.0, ge=0, le=86_400)
    #: Keys per namespace and pass whose MEMORY USAGE is sampled (0: no memory estimate).
    memory_sample_per_namespace: int = Field(20, ge=0, le=1000)
    #: Distinct namespace labels at most (wildcard patterns, split rules); more go to "other".
    namespace_limit: int = Field(50, ge=1, le=1000)
    #: Commands with a latency histogram at most (the top by calls; 0: no LATENCY HISTOGRAM).
    latency_top_n: int = Field(20, ge=0, le=500)
    #: Newest slowlog (and Valkey COMMANDLOG) entries read per cycle; one more is asked for, so
    #: that a reply short of it is the whole log and no SLOWLOG LEN is needed.
    slowlog_fetch: int = Field(128, ge=1, le=1024)


class PgBouncerSettings(CollectorSettings):
    """PgBouncer: nothing beyond the common settings yet."""


class AppSettings(CollectorSettings):
    """The application's own pool and cache statistics, published by ``exporter.instrument``."""

    #: SCAN COUNT hint while listing the published hashes.
    scan_count: int = Field(500, ge=10, le=100_000)
    #: More matching keys than this fails the cycle (a partial read would double-count).
    max_keys: int = Field(10_000, ge=10, le=1_000_000)


class Collectors(Model):
    host: HostSettings = HostSettings()
    postgres: PostgresSettings = PostgresSettings()
    redis: RedisSettings = RedisSettings()
    pgbouncer: PgBouncerSettings = PgBouncerSettings()
    app: AppSettings = AppSettings()


# --- targets -----------------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


class TargetConfig(Model):
    """One monitored thing; ``name`` becomes the ``target`` label, so it must never be a DSN."""

    name: str
    interval: Duration | None = None
    timeout: Duration | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-64 letters, digits or '_.:-' (it becomes the target label)")
        return value


class SecretTarget(TargetConfig):
    """A target that may need a password: from a file (preferred) or an environment variable."""

    password_file: Path | None = None
    password_env: str | None = None

    @field_validator("password_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not os.access(value, os.R_OK):
            raise ValueError(f"cannot read password file {value}")
        return value

    def __repr__(self) -> str:
        # a DSN or URL may carry a password: a target printed in a log must not show it
        shown = {
            key: redact_url(value) if key in ("dsn", "url") and isinstance(value, str) else value
            for key, value in self.model_dump().items()
        }
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def password(self) -> str | None:
        """The password, read now so a rotated secret file is picked up on reconnect."""
        if self.password_file is not None:
            return self.password_file.read_text().rstrip("\r\n")
        if self.password_env is not None:
            return os.environ.get(self.password_env)
        return None


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in schemes:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
    if _hidden_userinfo(value) is not None:
        raise ValueError(
            "has an '@' after the host; if it ends a user name or password, percent-encode "
            "any '#', '/' or '?' in them (%23, %2F, %3F)"
        )
    return value


class PostgresTarget(SecretTarget):
    """A PostgreSQL server: a ``dsn`` or ``host``/``port``/``user``/``dbname``."""

    dsn: str | None = None
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    user: str | None = None
    dbname: str | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = (
        None
    )
    #: Which databases' series are reported at all (a filter on every per-database view).
    databases: Literal["all"] | list[str] = "all"
    #: The database server's logical CPUs, for the database-load signal (active sessions per
    #: CPU). Unset: the exporter host's count when the target is on this host, else unknown.
    cpus: int | None = Field(None, ge=1, le=65536)
    #: Of those, which get per-table and index statistics (each through its own connection
    #: but the DSN's); at most ``table_stats_max_databases`` of the collector's settings.
    table_stats_databases: Literal["all"] | list[str] = "all"

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value, ("postgresql", "postgres"))

    @field_validator("databases", "table_stats_databases")
    @classmethod
    def _databases(cls, value: Literal["all"] | list[str]) -> Literal["all"] | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError('must be "all" or a non-empty list of database names')
        return value

    @model_validator(mode="after")
    def _one_way(self) -> PostgresTarget:
        if self.dsn is not None and any(
            v is not None for v in (self.host, self.port, self.user, self.dbname)
        ):
            raise ValueError("give either dsn or host/port/user/dbname, not both")
        return self


class TlsFiles(Model):
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


class NamespaceSplit(Model):
    """Namespaces from key structure: the first ``depth`` parts split by ``separator``."""

    separator: str = ":"
    depth: int = Field(2, ge=1, le=8)


class RedisTarget(SecretTarget):
    """A Redis server: ``url`` or ``host``/``port``/``db``; optional ACL user and TLS."""

    url: str | None = None
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    db: int | None = Field(None, ge=0, le=15)
    username: str | None = None
    tls: TlsFiles | None = None
    #: Key prefixes (``cache:api_response:``; a trailing ``*`` is ignored) or a split rule.
    namespaces: list[str] | NamespaceSplit | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value, ("redis", "rediss", "unix"))

    @model_validator(mode="after")
    def _one_way(self) -> RedisTarget:
        if self.url is not None and any(v is not None for v in (self.host, self.port, self.db)):
            raise ValueError("give either url or host/port/db, not both")
        return self


class PgBouncerTarget(SecretTarget):
    """A PgBouncer admin console, e.g. ``postgresql://stats@127.0.0.1:6432/pgbouncer``."""

    dsn: str

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: str) -> str:
        return _check_url(value, ("postgresql", "postgres"))


class AppTarget(SecretTarget):
    """The Redis where ``exporter.instrument`` publishes an application's pool and cache stats."""

    url: str
    prefix: str = "perf:app:"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, ("redis", "rediss", "unix"))


class Targets(Model):
    postgres: list[PostgresTarget] = []
    redis: list[RedisTarget] = []
    pgbouncer: list[PgBouncerTarget] = []
    app: list[AppTarget] = []

    @model_validator(mode="after")
    def _unique_names(self) -> Targets:
        for kind in ("postgres", "redis", "pgbouncer", "app"):
            names = [t.name for t in getattr(self, kind)]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(
                    f"{kind} target names must be unique; repeated: {', '.join(dupes)}"
                )
        return self


@dataclass(frozen=True)
class Timing:
    """How often one collector samples one target, and how long one sample may take."""

    interval: float
    timeout: float


def resolve_timing(
    settings: CollectorSettings,
    target: TargetConfig | None = None,
    *,
    interval: float = DEFAULT_INTERVAL,
    timeout: float = DEFAULT_TIMEOUT,
) -> Timing:
    """Target override, then collector override, then the global value (``interval`` and
    ``timeout``); the timeout is never longer than 90 % of the interval it belongs to.

    The one place these rules live: the scheduler and every collector use what it returns.
    """
    chosen_interval = next(
        (v for v in (target.interval if target else None, settings.interval) if v is not None),
        interval,
    )
    chosen_timeout = next(
        (v for v in (target.timeout if target else None, settings.timeout) if v is not None),
        timeout,
    )
    return Timing(chosen_interval, min(chosen_timeout, 0.9 * chosen_interval))


# --- the whole file -----------------------------------------------------------------------------


class WebSettings(Model):
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    config_file: Path | None = None
    max_connections: int = Field(512, ge=1, le=100_000)
    read_timeout: Duration = 10.0

    @field_validator("listen_address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_listen_address(value)
        return value

    @field_validator("config_file")
    @classmethod
    def _web_config(cls, value: Path | None) -> Path | None:
        if value is not None and not os.access(value, os.R_OK):
            raise ValueError(f"cannot read web config file {value}")
        return value


class LogSettings(Model):
    level: Literal["debug", "info", "warn", "error"] = "info"
    format: Literal["logfmt", "json"] = "logfmt"

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.lower()
            return "warn" if value == "warning" else value
        return value


class Config(Model):
    """The validated configuration of one daemon."""

    interval: Duration = DEFAULT_INTERVAL
    timeout: Duration = DEFAULT_TIMEOUT
    web: WebSettings = WebSettings()
    log: LogSettings = LogSettings()
    collectors: Collectors = Collectors()
    targets: Targets = Targets()
    #: Overrides of the performance-summary thresholds (validated by ``exporter.mixin``).
    thresholds: dict[str, Any] = {}

    @model_validator(mode="after")
    def _timeout_fits(self) -> Config:
        # only a timeout the user set is an error; the 5 s default is capped to 90 % of a short
        # interval by resolve_timing, so `interval: 2s` alone just works
        if "timeout" in self.model_fields_set and self.timeout >= self.interval:
            raise ValueError("timeout must be shorter than interval")
        return self

    def timing_for(self, collector: str, target: TargetConfig | None = None) -> Timing:
        """The interval and timeout of one collector for one target (see :func:`resolve_timing`)."""
        settings: CollectorSettings = getattr(self.collectors, collector)
        return resolve_timing(settings, target, interval=self.interval, timeout=self.timeout)

    def enabled(self, collector: str) -> bool:
        settings: CollectorSettings = getattr(self.collectors, collector)
        if settings.enabled is not None:
            return settings.enabled
        return True


def split_listen_address(value: str) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``[v6]:port`` to (host, port); host '' means every interface."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("must be host:port or :port, e.g. :9839 or 127.0.0.1:9839")
    return host.strip("[]"), int(port_text)


def read_file(path: Path) -> dict[str, Any]:
    """Parse the YAML file; an empty file is an empty config."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([f"{path}: {problem}{where}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of settings"])
    return data


def _set(data: dict[str, Any], dotted: str, value: object) -> None:
    node = data
    keys = dotted.split(".")
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


#: Environment variables and the config keys they set (the environment beats the file).
ENV_KEYS = {
    "PERF_EXPORTER_INTERVAL": "interval",
    "PERF_EXPORTER_TIMEOUT": "timeout",
    "PERF_EXPORTER_WEB_LISTEN_ADDRESS": "web.listen_address",
    "PERF_EXPORTER_WEB_CONFIG_FILE": "web.config_file",
    "PERF_EXPORTER_LOG_LEVEL": "log.level",
    "PERF_EXPORTER_LOG_FORMAT": "log.format",
}


def load(
    path: Path | None,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the configuration from file, environment and flag ``overrides`` (dotted keys).

    With no ``targets`` key anywhere, PostgreSQL (``DATABASE_URL`` or localhost:5432) and Redis
    (``REDIS_URL`` or localhost:6379) are the default targets, so a bare start is useful.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = read_file(path) if path is not None else {}
    for var, key in ENV_KEYS.items():
        if env.get(var):
            _set(data, key, env[var])
    for var, value in env.items():
        # PERF_EXPORTER_COLLECTOR_<NAME>=true|false, like --collector.<name>
        if var.startswith(ENV_PREFIX + "COLLECTOR_") and value:
            name = var.removeprefix(ENV_PREFIX + "COLLECTOR_").lower()
            _set(data, f"collectors.{name}.enabled", value.lower() in ("1", "true", "yes", "on"))
    for key, override in (overrides or {}).items():
        _set(data, key, override)
    if "targets" not in data:
        data["targets"] = {
            "postgres": [
                {"name": "default", "dsn": env.get("DATABASE_URL") or DEFAULT_POSTGRES_DSN}
            ],
            "redis": [{"name": "default", "url": env.get("REDIS_URL") or DEFAULT_REDIS_URL}],
        }
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(exc.problems()) from None
