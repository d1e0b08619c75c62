"""The performance-summary thresholds: one typed object feeding alerts, dashboards and /summary.

Every signal has a ``warn`` and a ``crit`` level and the ``for:`` durations the alerts wait
before firing; the defaults are the ``levels`` of its entry in :mod:`exporter.mixin.catalog`
(the only list of them). Whether a signal is bad above or below its levels is fixed by the
signal too, so an override can move a level but never flip its meaning.

Defaults follow the reference application (cache hit rate 70-90 %, cached endpoints under
200 ms, an asyncpg pool of 20) and the mixins' conventions (node-mixin for host signals).
Overrides come from the ``thresholds`` key of the config file::

    thresholds:
      selector: 'job="perf-exporter"'
      redis_hit_ratio: {warn: 0.85, crit: 0.75, min_rate: 5}
      host_cpu_utilisation: {for_crit: 30m}
      runbook_url: "https://{{ $labels.instance }}/runbooks#{anchor}"

A ratio signal (the hit ratios) also has ``min_rate``: the traffic, in events per second of its
formula's ``traffic`` (lookups, blocks), below which it is "idle": its alerts stay quiet and
/summary leaves it out of the score. 0 judges it at any traffic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from exporter.config import ConfigError
from exporter.mixin.catalog import SETTINGS, SIGNALS
from exporter.schema import Field, Model, ValidationError, field_validator, model_validator

_PROM_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
#: Alertmanager and Prometheus render ``{{ $labels.instance }}`` to the scraped exporter's
#: host:port, which is where the daemon serves /runbooks: the default needs nothing but the
#: installed package.
DEFAULT_RUNBOOK_URL = "http://{{ $labels.instance }}/runbooks#{anchor}"
_INSTANCE_HOST = re.compile(r"^https?://\{\{\s*\$labels\.instance\s*\}\}")
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
    #: Events per second below which a ratio is not judged (signals with a traffic only).
    min_rate: float | None = Field(None, ge=0)

    @field_validator("for_warn", "for_crit")
    @classmethod
    def _duration(cls, value: str) -> str:
        return _prom_duration(value)


def _with_signal_levels(cls: type[Thresholds]) -> type[Thresholds]:
    """Give ``cls`` one :class:`Level` field per signal, defaulting to the catalog's levels.

    The fields are added before the schema first reads the class's type hints, so config
    overrides, unknown keys and error paths behave as for fields written out by hand.
    """
    for signal in SIGNALS:
        cls.__annotations__[signal.key] = Level
        setattr(cls, signal.key, Level(**signal.levels._asdict()))
    for key, value in SETTINGS.items():
        cls.__annotations__[key] = float
        setattr(cls, key, value)
    return cls


@_with_signal_levels
class Thresholds(Model):
    """Levels per signal plus the selectors and names the generated rules use.

    Besides the settings below, every signal of :data:`~exporter.mixin.catalog.SIGNALS` is a
    :class:`Level` field named by its key (``thresholds.redis_hit_ratio``), and every entry of
    :data:`~exporter.mixin.catalog.SETTINGS` a number field
    (``thresholds.statement_min_calls_now``).
    """

    #: Label matchers added to every selector of the rules (the job that scrapes the exporter).
    selector: str = 'job="perf-exporter"'
    #: The range of every rate() in the rules; dashboards use ``$__rate_interval`` instead.
    rate_window: str = "5m"
    #: How far back the filesystem fill prediction looks.
    predict_window: str = "6h"
    severity_critical: str = "critical"
    severity_warning: str = "warning"
    #: ``{anchor}`` is replaced by the signal's anchor in docs/runbooks.md; the rest may use
    #: the alert's template variables (``{{ $labels.instance }}``: the exporter's host:port).
    runbook_url: str = DEFAULT_RUNBOOK_URL

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
        if "{anchor}" not in value or not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL containing {anchor}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        bad = []
        for signal in SIGNALS:
            level = self.level(signal.key)
            if signal.guarded and level.min_rate is None:
                bad.append(f"{signal.key}.min_rate: must be a number (0 judges any traffic)")
            if not signal.guarded and level.min_rate is not None:
                bad.append(f"{signal.key}.min_rate: this signal has no traffic to guard")
            worse = level.crit >= level.warn if signal.above else level.crit <= level.warn
            if not worse:
                word = "above" if signal.above else "below"
                bad.append(
                    f"{signal.key}: crit must be at least as bad as warn "
                    f"(this signal is bad {word} its levels)"
                )
        for key in SETTINGS:
            value = getattr(self, key)
            # a zero capacity would make every load infinite; negative call rates mean nothing
            if key == "load_sessions_without_cpus" and not value > 0:
                bad.append(f"{key}: must be a number above 0")
            elif not value >= 0:
                bad.append(f"{key}: must be 0 or more")
        if bad:
            raise ValueError("; ".join(bad))
        return self

    def level(self, key: str) -> Level:
        """The levels of the signal named ``key``."""
        value = getattr(self, key)
        assert isinstance(value, Level)
        return value

    def settings(self) -> dict[str, float]:
        """The catalog's SETTINGS as configured (minimum call rates, the CPU fallback)."""
        return {key: float(getattr(self, key)) for key in SETTINGS}

    def runbook(self, anchor: str) -> str:
        """The alert's ``runbook_url`` annotation (a template Prometheus renders)."""
        return self.runbook_url.replace("{anchor}", anchor)

    def runbook_with_instance(self, anchor: str, instance: str) -> str:
        """The runbook URL where something other than Prometheus fills in the instance
        (a dashboard passes its ``${instance}`` variable)."""
        return re.sub(r"\{\{\s*\$labels\.instance\s*\}\}", instance, self.runbook(anchor))

    def runbook_here(self, anchor: str) -> str:
        """The runbook link for a page the exporter serves itself: a template naming the
        exporter's own address becomes a path on it (``/runbooks#anchor``)."""
        return _INSTANCE_HOST.sub("", self.runbook(anchor))

    def min_rate(self, key: str) -> float | None:
        """Events per second below which the signal ``key`` is idle (None: never)."""
        return self.level(key).min_rate

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
