"""New slowlog (and Valkey 8.1 COMMANDLOG) entries per command, counted by entry id.

Each cycle asks for the newest ``slowlog_fetch + 1`` entries. A reply shorter than that holds
the whole log, so its length is the log's length and no ``SLOWLOG LEN`` is needed; only a full
reply (a server whose slowlog-max-len is above the fetch, with that many entries) leaves the
length open, and the collector asks LEN for it (:func:`is_full`). Every entry of the reply is
counted, the one beyond ``slowlog_fetch`` too: it is a real entry, and counting it only turns
what would be a ``cmd="other"`` later into its command.

Entry ids only grow while a server runs (SLOWLOG RESET empties the log but keeps the id
sequence), so the entries above the highest id seen last cycle are the new ones; a gap between
that id and the oldest entry fetched is entries that came and went between two cycles, counted
as ``cmd="other"``. A restart (new run_id) starts the ids again from 0. Only the command name
of an entry is read: its arguments, client address and client name are never exported. The
first cycle counts the entries fetched. ``cmd="other"`` is exported from the first cycle on, at
0 until an entry is missed.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

#: COMMANDLOG types beyond ``slow`` (which is the slowlog and exported under its names).
COMMANDLOG_TYPES = ("large-request", "large-reply")


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def is_full(reply: Any, asked: int) -> bool:
    """True when a GET of ``asked`` entries returned that many: the log may hold more."""
    return isinstance(reply, list) and len(reply) >= asked


def entry_ids_and_commands(reply: Any) -> list[tuple[int, str]]:
    """(id, lower-case command name) of each entry of a SLOWLOG/COMMANDLOG GET reply."""
    out: list[tuple[int, str]] = []
    for entry in reply if isinstance(reply, list) else []:
        if isinstance(entry, list) and len(entry) > 3 and isinstance(entry[3], list):
            name = _text(entry[3][0]).lower() if entry[3] else "other"
            out.append((int(entry[0]), name))
    return out


class EntryLog:
    """One log's new entries per command, accumulated so the totals never go down."""

    def __init__(self) -> None:
        # "other" (entries missed between cycles) always exists: sums over cmd are never absent
        self.totals: dict[str, float] = defaultdict(float, {"other": 0.0})
        self.length = 0.0
        self._last_id: int | None = None
        self._run_id: str | None = None

    def update(self, run_id: str | None, reply: Any, length: Any = None) -> None:
        """Take one cycle's GET reply, and LEN's answer when the reply was full.

        Without ``length`` the reply is the whole log: its length is the log's.
        """
        if length is None:
            length = len(reply) if isinstance(reply, list) else 0
        self.length = float(length)
        entries = entry_ids_and_commands(reply)
        if self._run_id is not None and run_id != self._run_id:
            self._last_id = -1  # a restarted server numbers its entries from 0 again
        self._run_id = run_id
        last = self._last_id
        new = [(i, cmd) for i, cmd in entries if last is None or i > last]
        for _, cmd in new:
            self.totals[cmd] += 1
        if last is not None and new:
            # the entries between the last id seen and the oldest one fetched were logged too
            missed = min(i for i, _ in new) - last - 1
            if missed > 0:
                self.totals["other"] += missed
        if entries:
            self._last_id = max([i for i, _ in entries] + ([last] if last is not None else []))
        elif last is None:
            self._last_id = -1


def slowlog_families(log: EntryLog) -> list[Metric]:
    length = GaugeMetricFamily(
        "perf_redis_slowlog_length",
        "Entries in the slowlog now (as SLOWLOG LEN would say; at most slowlog-max-len).",
        value=log.length,
    )
    entries = CounterMetricFamily(
        "perf_redis_slowlog_entries",
        "Commands slower than slowlog-log-slower-than, per command, counted by slowlog entry "
        'id; entries not fetched in time are cmd="other". Arguments are never exported.',
        labels=["cmd"],
    )
    for cmd, total in sorted(log.totals.items()):
        entries.add_metric([cmd], total)
    return [length, entries]


def commandlog_families(logs: dict[str, EntryLog]) -> list[Metric]:
    length = GaugeMetricFamily(
        "perf_redis_commandlog_length",
        "Entries in each COMMANDLOG now (Valkey 8.1+; the slow one is perf_redis_slowlog_*).",
        labels=["type"],
    )
    entries = CounterMetricFamily(
        "perf_redis_commandlog_entries",
        "Commands with a request or reply larger than commandlog-request/reply-larger-than, "
        "per type and command (Valkey 8.1+ COMMANDLOG), counted by entry id.",
        labels=["type", "cmd"],
    )
    for kind, log in logs.items():
        length.add_metric([kind], log.length)
        for cmd, total in sorted(log.totals.items()):
            entries.add_metric([kind, cmd], total)
    return [length, entries]
