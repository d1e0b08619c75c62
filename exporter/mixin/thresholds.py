"""The performance-summary thresholds: one typed object feeding alerts, dashboards and /summary.

Every signal has a ``warn`` and a ``crit`` level and the ``for:`` durations the alerts wait
before firing. Whether a signal is bad above or below its levels is fixed by the signal (see
:mod:`exporter.mixin.catalog`), so an override can move a level but never flip its meaning.

Defaults follow the reference application (cache hit rate 70-90 %, cached endpoints under
200 ms, an asyncpg pool of 20) and the mixins' conventions (node-mixin for host signals).
Overrides come from the ``thresholds`` key of the config file::

    thresholds:
      selector: 'job="perf-exporter"'
      redis_hit_ratio: {warn: 0.85, crit: 0.75}
      host_cpu_utilisation: {for_crit: 30m}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from exporter.config import ConfigError
from exporter.schema import Model, ValidationError, field_validator, model_validator

_PROM_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_LABEL_MATCHER = re.compile(r'^\s*[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*$')


def _prom_duration(value: str) -> str:
    if not _PROM_DURATION.match(value):
        raise ValueError("must be a Prometheus duration such as 30s, 5m or 1h")
    return value


class Level(Model):
    """The warning and critical levels of one signal and how long each must hold to alert."""

    warn: float
    crit: float
    for_warn: str = "5m"
    for_crit: str = "5m"

    @field_validator("for_warn", "for_crit")
    @classmethod
    def _duration(cls, value: str) -> str:
        return _prom_duration(value)


def _level(warn: float, crit: float, for_warn: str = "5m", for_crit: str = "5m") -> Level:
    return Level(warn=warn, crit=crit, for_warn=for_warn, for_crit=for_crit)


class Thresholds(Model):
    """Levels per signal plus the selectors and names the generated rules use."""

    #: Label matchers added to every selector of the rules (the job that scrapes the exporter).
    selector: str = 'job="perf-exporter"'
    #: The range of every rate() in the rules; dashboards use ``$__rate_interval`` instead.
    rate_window: str = "5m"
    #: How far back the filesystem fill prediction looks.
    predict_window: str = "6h"
    severity_critical: str = "critical"
    severity_warning: str = "warning"
    #: ``{anchor}`` is replaced by the signal's anchor in docs/runbooks.md.
    runbook_url: str = (
        "https://github.com/perf-exporter/perf-exporter/blob/main/docs/runbooks.md#{anchor}"
    )

    # --- cache hit ratios (bad below) ---
    postgres_cache_hit_ratio: Level = _level(0.95, 0.90, "10m", "10m")
    redis_hit_ratio: Level = _level(0.80, 0.70, "10m", "10m")
    app_cache_hit_ratio: Level = _level(0.80, 0.70, "10m", "10m")
    # --- pool usage (bad above) ---
    postgres_connection_utilisation: Level = _level(0.80, 0.90)
    pgbouncer_waiting_clients: Level = _level(0, 10, "2m", "2m")
    pgbouncer_max_wait: Level = _level(0.1, 1.0, "2m", "2m")
    app_pool_utilisation: Level = _level(0.80, 0.95)
    app_pool_waiting: Level = _level(0, 5, "2m", "2m")
    app_pool_acquire_p99: Level = _level(0.05, 0.5)
    # --- latency (bad above) ---
    postgres_probe_p99: Level = _level(0.05, 0.2)
    redis_probe_p99: Level = _level(0.01, 0.05)
    postgres_statement_mean_latency: Level = _level(0.1, 0.5, "10m", "10m")
    postgres_longest_transaction: Level = _level(300, 1800, "1m", "1m")
    postgres_idle_in_transaction: Level = _level(60, 600, "1m", "1m")
    # --- redis memory (bad above) ---
    redis_memory_utilisation: Level = _level(0.80, 0.95)
    redis_evictions: Level = _level(0, 10)
    redis_rejected_connections: Level = _level(0, 1, "1m", "1m")
    # --- host (node-mixin conventions) ---
    host_cpu_utilisation: Level = _level(0.80, 0.95, "15m", "15m")
    host_memory_utilisation: Level = _level(0.90, 0.95, "15m", "15m")
    host_cgroup_memory_utilisation: Level = _level(0.90, 0.95, "15m", "15m")
    host_filesystem_avail_ratio: Level = _level(0.05, 0.03, "30m", "30m")
    host_filesystem_fill_hours: Level = _level(24, 4, "1h", "1h")
    # --- the exporter itself ---
    exporter_collector_success: Level = _level(1, 1, "5m", "15m")
    exporter_collector_staleness: Level = _level(120, 600, "5m", "5m")

    @field_validator("rate_window", "predict_window")
    @classmethod
    def _windows(cls, value: str) -> str:
        return _prom_duration(value)

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        # Matchers are joined with commas; each must be one `label op "value"` matcher.
        parts = [p for p in _split_matchers(value) if p.strip()]
        if not parts or not all(_LABEL_MATCHER.match(p) for p in parts):
            raise ValueError('must be label matchers such as job="perf-exporter"')
        return ", ".join(p.strip() for p in parts)

    @field_validator("severity_critical", "severity_warning")
    @classmethod
    def _severity(cls, value: str) -> str:
        if value not in ("critical", "warning", "info"):
            raise ValueError("must be critical, warning or info")
        return value

    @field_validator("runbook_url")
    @classmethod
    def _runbook(cls, value: str) -> str:
        if "{anchor}" not in value:
            raise ValueError("must contain {anchor}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        from exporter.mixin.catalog import SIGNALS

        bad = []
        for signal in SIGNALS:
            level = self.level(signal.key)
            worse = level.crit >= level.warn if signal.above else level.crit <= level.warn
            if not worse:
                word = "above" if signal.above else "below"
                bad.append(
                    f"{signal.key}: crit must be at least as bad as warn "
                    f"(this signal is bad {word} its levels)"
                )
        if bad:
            raise ValueError("; ".join(bad))
        return self

    def level(self, key: str) -> Level:
        """The levels of the signal named ``key``."""
        value = getattr(self, key)
        assert isinstance(value, Level)
        return value

    def runbook(self, anchor: str) -> str:
        return self.runbook_url.replace("{anchor}", anchor)

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None) -> Thresholds:
        """Defaults with ``overrides`` (the config's ``thresholds`` mapping) applied.

        A signal's levels are merged key by key, so ``{redis_hit_ratio: {warn: 0.85}}`` keeps
        the default ``crit``. Raises :class:`ConfigError` listing every problem with its path
        (``thresholds.redis_hit_ratio.warn: ...``).
        """
        defaults = cls()
        data: dict[str, Any] = {}
        for key, value in (overrides or {}).items():
            current = getattr(defaults, key, None) if isinstance(key, str) else None
            if isinstance(current, Level) and isinstance(value, Mapping):
                data[key] = {**current.model_dump(), **value}
            else:
                data[key] = value
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems: list[str] = []
            for problem in exc.problems():
                if problem.startswith("(top level): "):
                    problems.extend(
                        f"thresholds.{p}" for p in problem.removeprefix("(top level): ").split("; ")
                    )
                else:
                    problems.append(f"thresholds.{problem}")
            raise ConfigError(problems) from None


def _split_matchers(text: str) -> list[str]:
    """Split on commas outside double quotes."""
    parts: list[str] = []
    current = ""
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return parts
