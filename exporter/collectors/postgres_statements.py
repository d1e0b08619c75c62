"""Statement counters that stay counters: per-entry deltas of pg_stat_statements, top N by window.

pg_stat_statements forgets: it evicts the least used entries when ``pg_stat_statements.max`` is
reached, ``pg_stat_statements_reset()`` empties it, and a crash loses it. Exporting its values
as they are would make every such event a counter reset. :class:`StatementAccounts` instead
reads every entry each cycle, keeps the last values of each entry (queryid, dbid, userid,
toplevel) as its baseline and adds only the growth since that baseline to the exported
counters. An entry that is gone stops contributing; an entry seen for the first time, or whose
values went below its baseline (evicted and re-created, reset, crash), counts from zero.

Which statements get their own series is decided on recent activity: execution time over the
last ``window`` seconds. A statement listed stays listed for at least one window, so series do
not flap, and at most ``top_n`` are listed. Every delta lands in exactly one series: the
statement's own when the statement was listed both before and after the interval it accrued in,
``queryid="other"`` otherwise. So the listed rows plus ``other`` sum to exactly what the view
counted while the exporter watched, and a statement entering or leaving the list moves none of
its past into or out of ``other``. No I/O here: unit tested without a server.

Reading every entry every cycle costs the most where the view is largest (up to
``pg_stat_statements.max``, 5,000 by default), while most entries are idle in any one cycle. So
once the baselines are known, a cycle asks only for the entries whose ``calls`` (or, on 17+,
``stats_since``) differ from them (:meth:`StatementAccounts.known` goes along as arrays) plus the
number of entries there are; an execution adds to ``calls`` and to every counter we export in
one step, so an entry with the same calls has nothing new. When that answer cannot stand for a
whole read (an entry is gone, the view was reset or evicted entries: :meth:`changes_suffice`),
the collector reads everything as before, in the same cycle. Baselines are packed bytes, which
the garbage collector does not track: thousands of tuples per target made every full collection
of a large fleet a pause of seconds.
"""

from __future__ import annotations

import heapq
import math
import struct
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from operator import add, sub
from typing import Any, NamedTuple

from exporter.collectors.postgres_families import STATEMENT_FIELDS, StatementRow

#: Index of the execution time (milliseconds) and of the calls in a values tuple.
_EXEC = STATEMENT_FIELDS.index("exec_ms")
_CALLS = STATEMENT_FIELDS.index("calls")

Values = tuple[float, ...]
#: A baseline by entry, both packed (:data:`_KEY`, :data:`_STATE`): a PostgreSQL target keeps
#: one per pg_stat_statements entry, up to ``pg_stat_statements.max`` (5,000 by default), and as
#: Python tuples of numbers they took ~470 bytes each, as bytes ~160.
Baselines = dict[bytes, bytes]
#: hidden (no queryid), queryid, dbid, userid, toplevel
_KEY = struct.Struct("<?qqq?")
#: the values in STATEMENT_FIELDS order, then stats_since (NaN: none); doubles hold the
#: counters exactly up to 2**53
_STATE = struct.Struct(f"<{len(STATEMENT_FIELDS) + 1}d")
#: The visible baselines as the read of changed entries takes them: queryids, dbids, userids,
#: toplevel flags, calls and stats_since, one PostgreSQL array literal each.
Known = tuple[str, str, str, str, str, str]


class StatementKey(NamedTuple):
    """The labels of one exported statement row: what other code means by "a statement"."""

    queryid: str
    datname: str
    user: str


class EntryId(NamedTuple):
    """The identity of one pg_stat_statements entry (queryid None: hidden from our role)."""

    queryid: int | None
    dbid: int
    userid: int
    toplevel: bool


class Entry(NamedTuple):
    """One pg_stat_statements entry as read this cycle, values in ``STATEMENT_FIELDS`` order.

    ``datname``/``user`` are None when the database or role is gone or not visible; such an
    entry, like one whose queryid is hidden, only ever counts in ``other``. ``since`` is the
    entry's ``stats_since`` (PostgreSQL 17+): when it changes the entry was re-created.
    """

    id: EntryId
    datname: str | None
    user: str | None
    values: Values
    since: float | None = None

    @property
    def key(self) -> StatementKey | None:
        """The row the entry may be listed under; None when it can only count in ``other``."""
        if self.id.queryid is None or self.datname is None or self.user is None:
            return None
        return StatementKey(str(self.id.queryid), self.datname, self.user)


def _zero() -> list[float]:
    return [0] * len(STATEMENT_FIELDS)


def _add(into: list[float], values: Iterable[float]) -> None:
    for i, v in enumerate(values):
        into[i] += v


class StatementAccounts:
    """Monotonic statement counters for one target, from successive full reads of the view.

    Call :meth:`update` once per cycle with every entry; then :meth:`rows` gives the listed
    statements and the ``other`` row, :attr:`listed` the set of listed statements and
    :attr:`deallocations` the accumulated ``pg_stat_statements_info.dealloc``.
    """

    def __init__(self, top_n: int, window: float) -> None:
        self.top_n = top_n
        self.window = window
        self._baselines: Baselines = {}
        # exported totals of every statement ever listed, kept while unlisted so that a
        # statement listed again continues where its series stopped instead of going down
        self._totals: dict[StatementKey, list[float]] = {}
        self._other = _zero()
        self._listed: dict[StatementKey, float] = {}  # -> when it was listed
        # (time, {statement: (exec ms, calls)}) of each cycle in the window, and their sums
        self._cycles: deque[tuple[float, dict[StatementKey, tuple[float, float]]]] = deque()
        self._recent: dict[StatementKey, list[float]] = {}
        self._recent_cycles: dict[StatementKey, int] = {}
        self._dealloc_seen: int | None = None
        # what :meth:`known` sends, kept up to date entry by entry: encoding thousands of
        # baselines anew every cycle was a quarter of a fleet's CPU. Entry i of each column is
        # the i-th visible baseline (a read of changed entries renews them in place and appends
        # new ones, so the order holds; a whole read or a reset rebuilds). Joined texts and
        # arrays of numbers: a few bytes per entry, not an object.
        self._known_ids = ("", "", "", "")
        self._known_calls = array("q")
        self._known_since = array("d")
        self._known_since_text: str | None = None
        #: visible baselines new or changed since the last :meth:`known`
        self._known_dirty: dict[bytes, bytes] = {}
        self._known_stale = True
        self._started = False
        self._first_read = 0.0
        #: ``pg_stat_statements_info.dealloc`` accumulated across resets: how often the view
        #: had to evict its least used entries to make room (None before PostgreSQL 14).
        self.deallocations: int | None = None
        #: ``pg_stat_statements_info.stats_reset`` as a Unix time, None before PostgreSQL 14.
        self.reset_time: float | None = None

    @property
    def listed(self) -> frozenset[StatementKey]:
        """The statements with their own series since the last :meth:`update`."""
        return frozenset(self._listed)

    # --- one cycle ----------------------------------------------------------------------------

    @property
    def has_baselines(self) -> bool:
        """Whether a read of the changed entries can stand for a whole read."""
        return self._started and bool(self._baselines)

    def known(self) -> Known:
        """The visible entries' ids, calls and stats_since, for the read of changed entries.

        Six PostgreSQL array literals whose elements line up (entry i is element i of each).
        """
        if self._known_stale:
            self._rebuild_known()
        elif self._known_dirty:
            self._refresh_known()
        since = self._known_since_text
        if since is None:
            # repr keeps every digit of a float: the comparison in SQL is exact
            since = ",".join("NULL" if v != v else repr(v) for v in self._known_since)
            self._known_since_text = since
        queryids, dbids, userids, toplevels = self._known_ids
        return (
            f"{{{queryids}}}",
            f"{{{dbids}}}",
            f"{{{userids}}}",
            f"{{{toplevels}}}",
            "{" + ",".join(map(str, self._known_calls)) + "}",
            f"{{{since}}}",
        )

    def _rebuild_known(self) -> None:
        ids: tuple[list[str], list[str], list[str], list[str]] = ([], [], [], [])
        calls, since = array("q"), array("d")
        for key, state in self._baselines.items():
            if key[0]:
                continue
            _add_id_texts(ids, key)
            values = _STATE.unpack(state)
            calls.append(int(values[_CALLS]))
            since.append(values[-1])
        self._known_ids = (",".join(ids[0]), ",".join(ids[1]), ",".join(ids[2]), ",".join(ids[3]))
        self._known_calls, self._known_since = calls, since
        self._known_since_text = None
        self._known_dirty = {}
        self._known_stale = False

    def _refresh_known(self) -> None:
        dirty, calls, since = self._known_dirty, self._known_calls, self._known_since
        had = len(calls)
        added: tuple[list[str], list[str], list[str], list[str]] = ([], [], [], [])
        position = 0
        for key in self._baselines:
            if key[0]:
                continue
            state = dirty.get(key)
            if state is not None:
                values = _STATE.unpack(state)
                new_since = values[-1]
                if position < had:
                    calls[position] = int(values[_CALLS])
                    old_since = since[position]
                    if old_since != new_since and not (
                        old_since != old_since and new_since != new_since
                    ):
                        since[position] = new_since
                        self._known_since_text = None
                else:
                    _add_id_texts(added, key)
                    calls.append(int(values[_CALLS]))
                    since.append(new_since)
                    self._known_since_text = None
            position += 1
        if added[0]:
            self._known_ids = tuple(  # type: ignore[assignment]
                f"{old},{','.join(new)}" if old else ",".join(new)
                for old, new in zip(self._known_ids, added, strict=True)
            )
        self._known_dirty = {}

    def changes_suffice(self, rows: Iterable[Mapping[str, Any]]) -> bool:
        """Whether a read of the changed entries (and the count of all) stands for a whole read.

        Not when an entry is gone (the count is short of the known ones plus the new), the view
        was reset, or it evicted entries since the last read (one may be back under its id).
        """
        info: Mapping[str, Any] | None = None
        new = 0
        for row in rows:
            if row["is_info"]:
                info = row
            elif (
                row["queryid"] is not None
                and _packed_key(row["queryid"], row["dbid"], row["userid"], row["toplevel"])
                not in self._baselines
            ):
                new += 1
        if info is None or info["entries"] is None:
            return False
        if None not in (info["stats_reset"], self.reset_time) and (
            info["stats_reset"] != self.reset_time
        ):
            return False
        if None not in (info["dealloc"], self._dealloc_seen) and (
            info["dealloc"] != self._dealloc_seen
        ):
            return False
        if self._known_stale or self._known_dirty:
            visible = sum(1 for k in self._baselines if not k[0])
        else:  # known() is up to date: one column entry per visible baseline
            visible = len(self._known_calls)
        return bool(info["entries"] == visible + new)

    def update_from_rows(
        self, rows: list[Mapping[str, Any]], now: float, *, changed_only: bool = False
    ) -> None:
        """Account the rows of :func:`~exporter.collectors.postgres_queries.statements_sql`.

        ``changed_only``: the rows are the changed entries only (see :meth:`changes_suffice`);
        the others keep their baselines.

        ``rows`` is consumed (left empty): each record is let go as soon as it is accounted, so
        a whole read of thousands of entries is never held as records and entries at once. The
        peak of that read sets the daemon's RSS at one target (the arenas it takes stay).
        """
        # the query puts the info row last
        info = next((row for row in reversed(rows) if row["is_info"]), None)
        self.update(
            _entries_of(rows),
            now,
            reset_time=None if info is None else info["stats_reset"],
            dealloc=None if info is None else info["dealloc"],
            changed_only=changed_only,
        )

    def update(
        self,
        entries: Iterable[Entry],
        now: float,
        *,
        reset_time: float | None = None,
        dealloc: int | None = None,
        changed_only: bool = False,
    ) -> None:
        """Account one read of the view taken at ``now`` (monotonic seconds).

        A whole read, or with ``changed_only`` the entries that changed since the last one.
        """
        if None not in (reset_time, self.reset_time) and reset_time != self.reset_time:
            # a full reset: entries re-created since then may already be above their old
            # values, so no old baseline can be trusted
            self._baselines.clear()
            self._known_stale = True
        self.reset_time = reset_time
        self._count_deallocations(dealloc)

        deltas = self._deltas(entries, changed_only)
        # the first read lists its best top_n, which are all _select needs to see: remembering
        # every entry of a view of thousands only to forget all but those would be the daemon's
        # largest allocation, and the arenas it took would stay with the process
        self._remember(now, deltas if self._started else self._first_candidates(deltas))
        before = set(self._listed)
        self._select(now)
        # the first read has no listing before it: what the view holds at start goes to the
        # statements listed now, so their first values equal the view's own
        credited = set(self._listed) if not self._started else before & set(self._listed)
        if not self._started:
            self._first_read = now
        self._started = True
        for key, delta in deltas.items():
            if key is not None and key in credited:
                _add(self._totals[key], delta)
            else:
                _add(self._other, delta)

    def _count_deallocations(self, dealloc: int | None) -> None:
        if dealloc is None:
            return
        seen = self._dealloc_seen
        # below the last value: the counter was reset with the view, count it from zero
        growth = dealloc if seen is None or dealloc < seen else dealloc - seen
        self.deallocations = (self.deallocations or 0) + growth
        self._dealloc_seen = dealloc

    def _deltas(
        self, entries: Iterable[Entry], changed_only: bool = False
    ) -> dict[StatementKey | None, list[float]]:
        """Growth of each entry since its baseline, summed per statement; baselines renewed.

        A whole read replaces the baselines; a read of changed entries keeps the others, except
        hidden ones (no queryid), which come in every read since their sum is what is known.
        """
        old = self._baselines
        # a read of changed entries renews the visible baselines in place; hidden ones come in
        # every read, so those it lacks are gone
        fresh = old if changed_only else {}
        hidden_gone = {k for k in old if k[0]} if changed_only else set()
        dirty = self._known_dirty
        deltas: dict[StatementKey | None, list[float]] = {}
        nan = math.nan

        def account(entry: Entry) -> None:
            key = _packed_key(*entry.id)
            state = _STATE.pack(*entry.values, nan if entry.since is None else entry.since)
            baseline = old.get(key)
            fresh[key] = state
            hidden_gone.discard(key)
            if baseline == state:
                return  # idle since the last read: most entries, most cycles
            if not key[0]:
                dirty[key] = state
            delta = self._growth(entry, baseline)
            if any(delta):
                statement = entry.key
                summed = deltas.get(statement)
                if summed is None:
                    # the delta's own numbers, not new ones added to zeros: the first read
                    # has a delta for every entry
                    deltas[statement] = list(delta)
                else:
                    _add(summed, delta)

        # a visible entry's id is the view's own key, so it comes once and is accounted as it
        # comes (no read is held whole); several hidden entries of one role share an id, so
        # those are summed first and accounted as one
        hidden: dict[EntryId, Entry] = {}
        for entry in entries:
            if entry.id.queryid is None:
                twin = hidden.get(entry.id)
                if twin is not None:
                    entry = entry._replace(values=tuple(map(add, twin.values, entry.values)))
                hidden[entry.id] = entry
            else:
                account(entry)
        for entry in hidden.values():
            account(entry)
        for key in hidden_gone:
            del fresh[key]
        if not changed_only:
            self._known_stale = True  # a whole read may drop entries and orders them anew
        self._baselines = fresh
        return deltas

    @staticmethod
    def _growth(entry: Entry, packed: bytes | None) -> Values:
        if packed is None:
            return entry.values
        *values, since = _STATE.unpack(packed)
        if entry.since is not None and not math.isnan(since) and entry.since != since:
            return entry.values  # re-created (PostgreSQL 17 says so)
        growth = tuple(map(sub, entry.values, values))
        if min(growth) >= 0:
            return growth
        if entry.id.queryid is None:
            # a sum over hidden entries shrank: one of them left, which one is unknown; count
            # only what grew rather than the remaining entries a second time
            return tuple(max(g, 0) for g in growth)
        return entry.values  # below its baseline: a new entry under the same id

    def _remember(self, now: float, deltas: dict[StatementKey | None, list[float]]) -> None:
        """Keep this cycle's execution time per statement for the window, drop what aged out."""
        cycle = {k: (d[_EXEC], d[_CALLS]) for k, d in deltas.items() if k is not None}
        self._cycles.append((now, cycle))
        for key, (exec_ms, calls) in cycle.items():
            recent = self._recent.setdefault(key, [0.0, 0.0])
            recent[0] += exec_ms
            recent[1] += calls
            self._recent_cycles[key] = self._recent_cycles.get(key, 0) + 1
        while self._cycles and self._cycles[0][0] <= now - self.window:
            _when, old = self._cycles.popleft()
            for key, (exec_ms, calls) in old.items():
                left = self._recent_cycles[key] - 1
                if left == 0:
                    # dropped rather than subtracted to zero: no float residue lingers
                    del self._recent[key], self._recent_cycles[key]
                else:
                    self._recent_cycles[key] = left
                    self._recent[key][0] -= exec_ms
                    self._recent[key][1] -= calls

    def _first_candidates(
        self, deltas: dict[StatementKey | None, list[float]]
    ) -> dict[StatementKey | None, list[float]]:
        """The statements :meth:`_select` lists after a first read, picked the same way.

        Before the first read nothing is listed or remembered, so :meth:`_select` picks the best
        ``top_n`` with calls by (execution time, calls, key) out of this read alone. The window
        needs no other entry of it: a statement the first read did not list cannot be listed
        before that read ages out of the window, since the ones it listed all stay listed
        exactly that long, so no room opens sooner.
        """
        best = heapq.nsmallest(
            self.top_n,
            ((k, d) for k, d in deltas.items() if k is not None and d[_CALLS] > 0),
            key=lambda kv: (-kv[1][_EXEC], -kv[1][_CALLS], kv[0]),
        )
        return dict(best)

    def _select(self, now: float) -> None:
        """Keep statements listed less than a window ago, fill the rest by recent time."""
        listed = {k: t for k, t in self._listed.items() if now - t < self.window}
        room = self.top_n - len(listed)
        if room > 0:
            # calls, not time: integers, so a cycle that aged out leaves no float residue here
            candidates = [kv for kv in self._recent.items() if kv[1][1] > 0 and kv[0] not in listed]
            # the best ``room`` only: after a first read the window holds every entry of the view
            for key, _ in heapq.nsmallest(
                room, candidates, key=lambda kv: (-kv[1][0], -kv[1][1], kv[0])
            ):
                listed[key] = self._listed.get(key, now)
        for key in listed:
            self._totals.setdefault(key, _zero())
        self._listed = listed

    # --- output -------------------------------------------------------------------------------

    def recent_exec_seconds(self, key: StatementKey) -> float:
        """Execution time of the statement over the window (0 when idle or unknown)."""
        recent = self._recent.get(key)
        return max(recent[0], 0.0) / 1000.0 if recent else 0.0

    def rows(self) -> tuple[list[StatementRow], StatementRow]:
        """The listed statements (by recent execution time, longest first) and ``other``."""
        order = sorted(self._listed, key=lambda k: (-self.recent_exec_seconds(k), k))
        return [_row(k, self._totals[k]) for k in order], _row(
            StatementKey("other", "", ""), self._other
        )

    def slow_statements(self, now: float, limit: int = 10) -> list[dict[str, Any]]:
        """The listed statements busiest over the window, with their means, for /summary.

        ``mean_seconds`` is over the window, ``mean_seconds_history`` over everything the
        exported counters hold (the exporter's own history); ``calls_per_second`` over the
        part of the window the exporter has seen.
        """
        span = min(self.window, now - self._first_read)
        # the first read holds everything the view had counted before the exporter started:
        # not part of what the exporter saw happen in the window
        first: Mapping[StatementKey, tuple[float, float]] = {}
        if self._cycles and self._cycles[0][0] == self._first_read:
            first = self._cycles[0][1]
        out: list[dict[str, Any]] = []
        for key in sorted(self._listed, key=lambda k: (-self.recent_exec_seconds(k), k)):
            recent = self._recent.get(key)
            if not recent:
                continue
            early_ms, early_calls = first.get(key, (0.0, 0.0))
            exec_ms, calls = max(recent[0] - early_ms, 0.0), recent[1] - early_calls
            if calls <= 0:
                continue
            total = self._totals[key]
            out.append(
                {
                    "queryid": key.queryid,
                    "datname": key.datname,
                    "user": key.user,
                    "mean_seconds": exec_ms / 1000.0 / calls,
                    "mean_seconds_history": (
                        total[_EXEC] / 1000.0 / total[_CALLS] if total[_CALLS] > 0 else None
                    ),
                    "calls_per_second": calls / span if span > 0 else None,
                    "exec_seconds_window": exec_ms / 1000.0,
                }
            )
            if len(out) >= limit:
                break
        return out


def _row(key: StatementKey, values: list[float]) -> StatementRow:
    field = dict(zip(STATEMENT_FIELDS, values, strict=True))
    return StatementRow(
        queryid=key.queryid,
        datname=key.datname,
        user=key.user,
        calls=int(field["calls"]),
        exec_ms=float(field["exec_ms"]),
        rows=int(field["rows"]),
        shared_blks_hit=int(field["shared_blks_hit"]),
        shared_blks_read=int(field["shared_blks_read"]),
        blk_read_ms=float(field["blk_read_ms"]),
        blk_write_ms=float(field["blk_write_ms"]),
    )


def _entries_of(rows: list[Mapping[str, Any]]) -> Iterator[Entry]:
    """The entries of ``rows`` (statements_sql's), in order, each record dropped once read."""
    rows.reverse()
    while rows:
        row = rows.pop()
        if row["is_info"]:
            continue
        yield Entry(
            EntryId(row["queryid"], row["dbid"], row["userid"], row["toplevel"]),
            row["datname"],
            row["rolname"],
            # STATEMENT_FIELDS order
            (
                row["calls"],
                row["exec_ms"],
                row["rows"],
                row["shared_blks_hit"],
                row["shared_blks_read"],
                row["blk_read_ms"],
                row["blk_write_ms"],
            ),
            row["since"],
        )


def _add_id_texts(columns: tuple[list[str], list[str], list[str], list[str]], key: bytes) -> None:
    _hidden, queryid, dbid, userid, toplevel = _KEY.unpack(key)
    columns[0].append(str(queryid))
    columns[1].append(str(dbid))
    columns[2].append(str(userid))
    columns[3].append("t" if toplevel else "f")


def _packed_key(queryid: int | None, dbid: int, userid: int, toplevel: bool) -> bytes:
    return _KEY.pack(queryid is None, queryid or 0, dbid, userid, bool(toplevel))
