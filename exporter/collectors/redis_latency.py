"""``LATENCY HISTOGRAM`` as a Prometheus histogram per command, and what each server offers.

Redis 7+ and Valkey keep one latency histogram per command with power-of-two microsecond
buckets (cumulative, sparse: only buckets that changed are listed). They become
``perf_redis_command_latency_seconds{cmd}`` on fixed ``le`` bounds, so ``histogram_quantile``
over ``rate()`` gives the p99 of the last minutes, where INFO latencystats gives one since start.
``_sum`` is INFO commandstats' ``usec`` of the same command, ``_count`` the histogram's calls.

Only the top commands by calls are exported (``latency_top_n``). A command once chosen stays
chosen while the daemon runs: its series never disappear and its counts are never counted twice
(a command leaving and re-entering the top would otherwise add its whole count again).
CONFIG RESETSTAT and restarts lower the server's numbers; :class:`MonotonicSums` keeps the
exported totals going up, and one reset seen on any chosen command closes the epoch of all of
them, so buckets, sum and count of a command always stay consistent.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from exporter.collectors.base import parse_number
from exporter.collectors.interned import Interned
from exporter.collectors.monotonic_sums import MonotonicSums, Series
from exporter.collectors.redis_info import Info, parse_pairs
from exporter.snapshot import Block, with_blocks

#: Upper bounds of the exported buckets, in microseconds: the server's own power-of-two
#: bounds from 1 us to about 4.2 s (slower calls land in +Inf).
BOUNDS_USEC: tuple[int, ...] = tuple(2**k for k in range(23))


@dataclass(frozen=True)
class Feature:
    """A command family a server version may lack, with the first version of each server."""

    name: str
    #: server_name ("redis", "valkey") -> first version that has it; absent: never.
    since: Mapping[str, tuple[int, ...]]


#: Read this table to know which server sends what; nothing else is ever sent.
FEATURES: tuple[Feature, ...] = (
    # Valkey forked from Redis 7.2.4, which already had LATENCY HISTOGRAM
    Feature("latency_histogram", {"redis": (7, 0), "valkey": (7, 2)}),
    Feature("commandlog", {"valkey": (8, 1)}),
)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


@dataclass(frozen=True)
class ServerKind:
    """Which server and version answers on a connection, read once from INFO server."""

    name: str
    version: tuple[int, ...]

    @classmethod
    def from_info(cls, info: Info) -> ServerKind:
        # Valkey reports redis_version 7.2.4 for client compatibility and its own valkey_version
        if info.get("server_name") == "valkey" or "valkey_version" in info:
            return cls("valkey", _version(info.get("valkey_version", "")))
        return cls("redis", _version(info.get("redis_version", "")))

    def has(self, feature: str) -> bool:
        for row in FEATURES:
            if row.name == feature:
                since = row.since.get(self.name)
                return since is not None and self.version >= since
        raise KeyError(feature)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _pairs(value: Any) -> list[tuple[Any, Any]]:
    # RESP2 sends a flat array; redis-py may already have turned it into a mapping
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        return list(zip(value[::2], value[1::2], strict=False))
    return []


def power_of_two_below(usec: int) -> int:
    """The power of two a server bucket stands for.

    The server names a bucket by the highest value its HDR histogram files there, a little
    above the power of two from 32 us on (33, 66, ..., 264, 528): the bucket ends at 2**k.
    """
    return 1 << (max(usec, 1).bit_length() - 1)


def _commands(reply: Any) -> dict[str, tuple[float, Any]]:
    """The reply into cmd -> (calls, the histogram_usec field as sent), buckets not parsed."""
    out: dict[str, tuple[float, Any]] = {}
    for name, body in _pairs(reply):
        fields = {_text(k): v for k, v in _pairs(body)}
        calls = parse_number(_text(fields.get("calls", "")))
        if calls is not None:
            out[_text(name).lower()] = (calls, fields.get("histogram_usec"))
    return out


def _buckets(histogram_usec: Any) -> list[tuple[int, float]]:
    """[(power-of-two bound in usec, cumulative count)], sorted, from one command's field."""
    return sorted(
        (power_of_two_below(int(bound)), float(count)) for bound, count in _pairs(histogram_usec)
    )


def parse_latency_histogram(reply: Any) -> dict[str, tuple[float, list[tuple[int, float]]]]:
    """The reply into cmd -> (calls, [(power-of-two bound in usec, cumulative count)])."""
    return {cmd: (calls, _buckets(field)) for cmd, (calls, field) in _commands(reply).items()}


def commandstats_calls(info: Info) -> dict[str, tuple[float, float]]:
    """cmd -> (calls, usec) from INFO commandstats."""
    out: dict[str, tuple[float, float]] = {}
    for key, value in info.items():
        if key.startswith("cmdstat_"):
            stats = parse_pairs(value)
            calls, usec = parse_number(stats.get("calls")), parse_number(stats.get("usec"))
            if calls is not None and usec is not None:
                out[key.removeprefix("cmdstat_")] = (calls, usec)
    return out


class LatencyHistograms:
    """The chosen commands and the monotonic totals of their histograms (see the module doc)."""

    def __init__(self, top_n: int) -> None:
        self.top_n = top_n
        self.chosen: list[str] = []
        self._sums = MonotonicSums()
        self._epoch = 0
        self._run_id: str | None = None
        self._last: dict[str, tuple[float, float]] = {}
        # the (source, (cmd, bound)) keys of each chosen command in this epoch, made once: a
        # target's ~270 keys a cycle, new each time, were hundreds of thousands of tuples at a
        # thousand targets for the garbage collector to walk
        self._keys: dict[str, list[tuple[str, Series]]] = {}
        # INFO commandstats of the cycle, parsed once for choose() and family()
        self._stats: tuple[Info, dict[str, tuple[float, float]]] | None = None
        # each chosen command's totals and render block (snapshot.Block) as made at its
        # (calls, usec), a state of None while the reply leaves it out: most commands of a
        # server are not called between two cycles, and one that was not has the same buckets
        # and totals
        self._made: dict[str, _Made] = {}

    def _commandstats(self, info: Info) -> dict[str, tuple[float, float]]:
        if self._stats is None or self._stats[0] is not info:
            self._stats = (info, commandstats_calls(info))
        return self._stats[1]

    def asking(self) -> list[str] | None:
        """What to ask LATENCY HISTOGRAM before this cycle's INFO is read: the chosen commands
        once the top is full, else every command (an empty list: the reply then holds any
        command :meth:`choose` adds from that INFO); None when the top is 0."""
        if self.top_n <= 0:
            return None
        return list(self.chosen) if len(self.chosen) >= self.top_n else []

    def choose(self, info: Info) -> list[str]:
        """The commands to ask LATENCY HISTOGRAM about this cycle: the chosen, topped up."""
        stats = self._commandstats(info)
        room = self.top_n - len(self.chosen)
        if room > 0:
            ranked = sorted(
                (c for c in stats if c not in self.chosen), key=lambda c: (-stats[c][0], c)
            )
            self.chosen.extend(ranked[:room])
        return list(self.chosen)

    def family(self, info: Info, reply: Any) -> Metric:
        """This cycle's histogram family, from INFO (for ``_sum``) and the LATENCY reply.

        A command's buckets are parsed and summed only when its calls or usec moved, or a new
        epoch began: within an epoch the calls only grow and every call lands in one bucket,
        so a command whose calls (and usec) are what they were has the same buckets and totals,
        kept with their render block. The one case this misses is a reset that neither number
        shows, followed within one cycle by exactly as many calls and microseconds as before;
        the epochs themselves miss a reset that lowers neither.
        """
        commands = _commands(reply)
        stats = self._commandstats(info)
        self._stats = None  # the cycle's INFO is not kept past it
        run_id = info.get("run_id")
        now = {c: (calls, stats.get(c, (0.0, 0.0))[1]) for c, (calls, _) in commands.items()}
        went_down = any(
            now[c][0] < calls or now[c][1] < usec
            for c, (calls, usec) in self._last.items()
            if c in now
        )
        if went_down or (self._run_id is not None and run_id != self._run_id):
            self._epoch += 1  # CONFIG RESETSTAT or a restart: every command starts again
            self._keys = {}
            self._made = {}
            self._sums.rebase()
        self._run_id, self._last = run_id, now
        family = HistogramMetricFamily(
            "perf_redis_command_latency_seconds",
            "Latency of each of the top commands by calls (LATENCY HISTOGRAM, Redis 7+ and "
            "Valkey); _sum is INFO commandstats usec. histogram_quantile over rate() gives "
            "the percentile of now.",
            labels=["cmd"],
        )
        samples = family.samples
        bucket, count, total = (
            f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum")
        )
        blocks: list[Block] = []
        for cmd in self.chosen:
            state = now.get(cmd)
            made = self._made.get(cmd)
            if made is None or made.state != state:
                field = commands[cmd][1] if state is not None else None
                made = self._made[cmd] = self._make(cmd, state, field)
            if made.block is None:
                continue
            # the samples add_metric would make, with label dicts shared by every target and
            # cycle (the summary board keeps two collections of these buckets per Redis target)
            # and made anew: kept from cycle to cycle, a thousand targets' ~400,000 Samples
            # were ~70 MB and objects every older garbage collection walks
            values = made.values
            labels = _bucket_labels(cmd)
            # a bucket per bound and +Inf, then _count and _sum
            for value, bound_labels in zip(values[:-2], labels, strict=False):
                samples.append(Sample(bucket, bound_labels, value))
            samples.append(Sample(count, labels[-1], values[-2]))
            samples.append(Sample(total, labels[-1], values[-1]))
            blocks.append(made.block)
        return with_blocks(family, blocks)

    def _make(self, cmd: str, state: tuple[float, float] | None, histogram_usec: Any) -> _Made:
        """``cmd``'s totals taken at ``state`` (None: left out of the reply)."""
        keys = self._keys_of(cmd)
        current: dict[tuple[str, Series], float] = {}
        if state is not None:
            calls, usec = state
            buckets = _buckets(histogram_usec)
            cumulative, i = 0.0, 0
            for key, bound in zip(keys, BOUNDS_USEC, strict=False):
                while i < len(buckets) and buckets[i][0] <= bound:
                    cumulative = buckets[i][1]
                    i += 1
                current[key] = min(cumulative, calls)
            current[keys[-2]] = calls
            current[keys[-1]] = usec
        sums = self._sums
        sums.update_some(keys, current)
        calls_total = sums.total(keys[-2])
        if calls_total is None:
            return _Made(state, array("d"), None)
        # a bucket per bound in LE, +Inf (the calls), then _count and _sum (seconds)
        values = array("d", [sums.total(key) or 0.0 for key in keys[: len(LE)]])
        values.extend((calls_total, calls_total, (sums.total(keys[-1]) or 0.0) / 1e6))
        return _Made(state, values, Block(_SAMPLES_PER_COMMAND))

    def _keys_of(self, cmd: str) -> list[tuple[str, Series]]:
        """This epoch's keys of ``cmd``: one per bound in BOUNDS_USEC, then +Inf, then sum."""
        keys = self._keys.get(cmd)
        if keys is None:
            keys = self._keys[cmd] = _series_keys((str(self._epoch), cmd))
        return keys


class _Made:
    """One command's totals and their render block, made at ``state`` (calls, usec); no block
    when nothing was ever counted for it. The values in doubles: a bucket per bound in LE,
    +Inf, _count and _sum, none of them an object the garbage collector walks."""

    __slots__ = ("block", "state", "values")

    def __init__(
        self, state: tuple[float, float] | None, values: array[float], block: Block | None
    ) -> None:
        self.state = state
        self.values = values
        self.block = block


#: The keys of a command in an epoch, (source, cmd) -> one per bound, +Inf, sum: the same for
#: every target (see _keys_of).
_series_keys: Interned[tuple[str, str], list[tuple[str, Series]]] = Interned(
    lambda key: [(key[0], (key[1], bound)) for bound in (*BOUND_TEXT, "+Inf", "sum")], 5_000
)


#: The bounds as the series keys spell them, and as ``le`` label values (seconds).
BOUND_TEXT: tuple[str, ...] = tuple(str(bound) for bound in BOUNDS_USEC)
LE: tuple[str, ...] = tuple(repr(bound / 1e6) for bound in BOUNDS_USEC)
#: A command's samples: a bucket per bound, +Inf, _count and _sum.
_SAMPLES_PER_COMMAND = len(LE) + 3

#: Label dicts of a command's samples: one per bound in LE, then +Inf, then ``{"cmd": ...}``
#: for _count and _sum, shared by every target.
_bucket_labels: Interned[str, tuple[dict[str, str], ...]] = Interned(
    lambda cmd: (*({"cmd": cmd, "le": le} for le in (*LE, "+Inf")), {"cmd": cmd}), 5_000
)
