"""What every collector is: a small class that samples one target and returns metric families.

A collector knows nothing of HTTP, scheduling or other collectors. The scheduler creates one
instance per configured target (so the instance may keep a connection, a SCAN cursor or counter
baselines between cycles), calls :meth:`Collector.collect` on its interval under a timeout, and
hands the result to the snapshot.

The ``target`` label is added by the snapshot to every sample of a collector whose
``target_label`` is true, so collectors build families without it.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

from prometheus_client.metrics_core import Metric

from exporter.config import CollectorSettings, TargetConfig, Timing, resolve_timing

Reason = Literal["timeout", "connection", "auth", "query", "other"]
REASONS: tuple[Reason, ...] = ("timeout", "connection", "auth", "query", "other")


class CollectError(Exception):
    """A failure the user can do something about, with one of the fixed error reasons.

    The message is one sentence for the log; it must never contain a password or a DSN with
    credentials.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message


@dataclass(frozen=True)
class Collected:
    """One successful sample of one target.

    ``facts`` carries the few values /summary needs beyond the metric families (for example
    index recommendations); it must be JSON-serialisable.
    """

    families: list[Metric]
    facts: Mapping[str, Any] = field(default_factory=dict)


TargetT = TypeVar("TargetT", bound=TargetConfig)
SettingsT = TypeVar("SettingsT", bound=CollectorSettings)


class Collector(abc.ABC, Generic[TargetT, SettingsT]):
    """Base class of every collector; subclasses set ``name`` and implement ``collect``."""

    name: ClassVar[str]
    #: For remote sources: the ``<kind>_up`` gauge the scheduler emits for each target (1 after
    #: a successful cycle, 0 after a failed one, when every other series of the target is dropped).
    up_metric: ClassVar[str | None] = None
    up_help: ClassVar[str] = ""
    #: Whether every sample gets ``target="<name>"`` (false only for the local host).
    target_label: ClassVar[bool] = True

    def __init__(self, target: TargetT, settings: SettingsT, timing: Timing | None = None) -> None:
        self.target = target
        self.settings = settings
        # the scheduler always passes what config resolved; built by hand (tests, tools), the
        # same rules apply with the global defaults, so no collector has a default of its own
        resolved = timing if timing is not None else resolve_timing(settings, target)
        #: Seconds between cycles, and how long one cycle may take (already capped by config).
        self.interval = resolved.interval
        self.timeout = resolved.timeout

    @abc.abstractmethod
    async def collect(self) -> Collected:
        """Sample the target once. Raise :class:`CollectError` for failures a user can fix."""

    async def close(self) -> None:
        """Release connections; called on shutdown and before a config reload replaces us."""


def parse_number(value: str | None, *, finite: bool = False) -> float | None:
    """A number read from a server's text (INFO fields, SHOW columns, hashes); None when absent
    or not a number, and with ``finite`` also when it is NaN or infinite."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if finite and not math.isfinite(number):
        return None
    return number
