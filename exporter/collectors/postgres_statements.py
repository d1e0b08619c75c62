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
the collector reads everything as before, in the same cycle. The baselines are columns of
numbers (:class:`_Columns`), which the garbage collector does not see: thousands of tuples per
target made every full collection of a large fleet a pause of seconds, and as packed bytes in a
dict they were still ~190 bytes an entry, a hundred megabytes of a thousand-target fleet.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from operator import add, sub
from typing import Any, NamedTuple

from exporter.collectors.postgres_families import STATEMENT_FIELDS, StatementRow

#: Index of the execution time (milliseconds) and of the calls in a values tuple.
_EXEC = STATEMENT_FIELDS.index("exec_ms")
_CALLS = STATEMENT_FIELDS.index("calls")

Values = tuple[float, ...]
#: A baseline: the values in STATEMENT_FIELDS order, then stats_since (:data:`_NO_SINCE`: none).
#: Doubles hold the counters exactly up to 2**53.
State = tuple[float, ...]
_WIDTH = len(STATEMENT_FIELDS) + 1
_SINCE = _WIDTH - 1
#: stats_since of an entry that has none (before PostgreSQL 17); no real time compares equal
_NO_SINCE = float("-inf")
#: Entries per kept piece of the calls' literal (:meth:`_Columns.known`): ~400 characters,
#: ~35 pieces at 2,000 entries, so one changed entry costs the joining of 64 numbers, not 2,000.
_CHUNK = 64
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


class _Columns:
    """The visible entries' baselines, as columns sorted by (queryid, dbid, userid, toplevel).

    A PostgreSQL target keeps one per pg_stat_statements entry, up to
    ``pg_stat_statements.max`` (5,000 by default). As a packed key and state in a dict an entry
    took ~190 bytes; here 17 bytes of id and :data:`_WIDTH` doubles, and no object the garbage
    collector tracks. An entry is found by bisection; a new one moves the tail of each column,
    and a cycle adds few. The ids' and stats_since's literals for :meth:`known` are kept until
    an entry comes or a stats_since changes (~70 kB a target, 0.5 ms of a cycle saved). The
    calls' literal changes every cycle, but only at the few entries renewed, so it is kept as
    one text per :data:`_CHUNK` entries (~15 kB a target, the literal's own size; no text per
    entry): :meth:`known` makes again only the pieces whose calls :meth:`renew` changed and,
    after :meth:`insert`, those from the new entry's on. Made whole, it took 0.3-0.5 ms of every
    cycle at 2,100 entries, 1.3 % of a core at a thousand targets. Hence :attr:`values` is
    changed only by :meth:`renew` and :meth:`insert`.
    """

    __slots__ = (
        "_calls_texts",
        "_ids_text",
        "_since_text",
        "dbids",
        "queryids",
        "toplevels",
        "userids",
        "values",
    )

    def __init__(self) -> None:
        self.queryids = array("q")
        self.dbids = array("I")
        self.userids = array("I")
        self.toplevels = array("b")
        self.values = array("d")
        self._ids_text: tuple[str, str, str, str] | None = None
        self._since_text: str | None = None
        #: the calls' literal without its braces, per :data:`_CHUNK` entries; "" (no piece is
        #: empty): made again by the next :meth:`known`, as are those missing at the end
        self._calls_texts: list[str] = []

    def __len__(self) -> int:
        return len(self.queryids)

    def find(self, queryid: int, dbid: int, userid: int, toplevel: bool) -> int:
        """The entry's position, or ``~position`` where it would be inserted when absent."""
        queryids = self.queryids
        at, end = bisect_left(queryids, queryid), len(queryids)
        wanted = (dbid, userid, int(toplevel))
        while at < end and queryids[at] == queryid:
            here = (self.dbids[at], self.userids[at], self.toplevels[at])
            if here == wanted:
                return at
            if here > wanted:
                break
            at += 1
        return ~at

    def state(self, at: int) -> State:
        return tuple(self.values[at * _WIDTH : (at + 1) * _WIDTH])

    def renew(self, at: int, state: State) -> None:
        values = self.values
        if values[at * _WIDTH + _SINCE] != state[_SINCE]:
            self._since_text = None
        if values[at * _WIDTH + _CALLS] != state[_CALLS]:
            texts, piece = self._calls_texts, at // _CHUNK
            if piece < len(texts):
                texts[piece] = ""
        values[at * _WIDTH : (at + 1) * _WIDTH] = array("d", state)

    def insert(self, at: int, entry: EntryId, state: State) -> None:
        self.queryids.insert(at, entry.queryid or 0)
        self.dbids.insert(at, entry.dbid)
        self.userids.insert(at, entry.userid)
        self.toplevels.insert(at, int(entry.toplevel))
        self.values[at * _WIDTH : at * _WIDTH] = array("d", state)
        self._ids_text = self._since_text = None
        # the entries from here on moved by one: their pieces are made again, those before
        # stay (an append drops at most the last)
        del self._calls_texts[at // _CHUNK :]

    def append(self, entry: EntryId, state: State) -> None:
        self.insert(len(self.queryids), entry, state)

    def ordered(self) -> _Columns:
        """These columns sorted by id (a whole read appends in the server's order)."""
        ids = list(zip(self.queryids, self.dbids, self.userids, self.toplevels, strict=True))
        order = sorted(range(len(ids)), key=ids.__getitem__)
        if all(i == at for at, i in enumerate(order)):
            return self
        out = _Columns()
        out.queryids = array("q", (self.queryids[i] for i in order))
        out.dbids = array("I", (self.dbids[i] for i in order))
        out.userids = array("I", (self.userids[i] for i in order))
        out.toplevels = array("b", (self.toplevels[i] for i in order))
        values = self.values
        for i in order:
            out.values.extend(values[i * _WIDTH : (i + 1) * _WIDTH])
        return out

    def known(self) -> Known:
        """The columns as PostgreSQL array literals, entry i being element i of each."""
        values = self.values
        ids = self._ids_text
        if ids is None:
            ids = self._ids_text = (
                "{" + ",".join(map(str, self.queryids)) + "}",
                "{" + ",".join(map(str, self.dbids)) + "}",
                "{" + ",".join(map(str, self.userids)) + "}",
                "{" + ",".join(map(_FLAG.__getitem__, self.toplevels)) + "}",
            )
        since = self._since_text
        if since is None:
            sinces = values[_SINCE::_WIDTH]
            if sinces.count(_NO_SINCE) == len(sinces):  # before PostgreSQL 17: all NULL
                since = ",".join(["NULL"] * len(sinces))
            else:
                since = ",".join(map(_since_text, sinces))
            since = self._since_text = "{" + since + "}"
        texts = self._calls_texts
        for piece, text in enumerate(texts):
            if not text:
                texts[piece] = self._calls_text(piece)
        for piece in range(len(texts), -(-len(self) // _CHUNK)):
            texts.append(self._calls_text(piece))
        return (*ids, "{" + ",".join(texts) + "}", since)

    def _calls_text(self, piece: int) -> str:
        """The calls of entries ``piece * _CHUNK`` up to the next piece's, joined by commas."""
        start = piece * _CHUNK * _WIDTH
        calls = self.values[start + _CALLS : start + _CHUNK * _WIDTH : _WIDTH]
        return ",".join(map(str, map(int, calls)))


_FLAG = ("f", "t")


def _since_text(since: float) -> str:
    # repr keeps every digit of a float: the comparison in SQL is exact
    return "NULL" if since == _NO_SINCE else repr(since)


def _zero() -> list[float]:
    return [0] * len(STATEMENT_FIELDS)


def _add(into: list[float], values: Iterable[float]) -> None:
    for i, v in enumerate(values):
        into[i] += v


class _Cycle:
    """One cycle's execution time and calls per statement, as the window keeps it.

    A window of ten minutes holds forty of these per target. As a dict of tuples, with a new
    key and queryid text per statement per read, a statement's place in one cycle took ~360
    bytes: 4.9 MB a target at ten minutes on a server running 300 statements every 15 s. Here
    the key is a reference to the accounts' one instance and the numbers are doubles: 24 bytes
    (0.63 MB in all at 300).
    """

    __slots__ = ("calls", "exec_ms", "keys", "time")

    def __init__(self, time: float) -> None:
        self.time = time
        self.keys: list[StatementKey] = []
        self.exec_ms = array("d")
        self.calls = array("d")

    def add(self, key: StatementKey, exec_ms: float, calls: float) -> None:
        self.keys.append(key)
        self.exec_ms.append(exec_ms)
        self.calls.append(calls)

    def items(self) -> Iterator[tuple[StatementKey, float, float]]:
        return zip(self.keys, self.exec_ms, self.calls, strict=True)


class StatementAccounts:
    """Monotonic statement counters for one target, from successive full reads of the view.

    Call :meth:`update` once per cycle with every entry; then :meth:`rows` gives the listed
    statements and the ``other`` row, :attr:`listed` the set of listed statements and
    :attr:`deallocations` the accumulated ``pg_stat_statements_info.dealloc``.
    """

    def __init__(self, top_n: int, window: float) -> None:
        self.top_n = top_n
        self.window = window
        self._visible = _Columns()
        #: baselines of the entries hidden from our role (no queryid), summed by id; every read
        #: has them all, so those a read lacks are gone
        self._hidden: dict[EntryId, State] = {}
        # exported totals of every statement ever listed, kept while unlisted so that a
        # statement listed again continues where its series stopped instead of going down
        self._totals: dict[StatementKey, list[float]] = {}
        self._other = _zero()
        self._listed: dict[StatementKey, float] = {}  # -> when it was listed
        #: ``_listed``'s statements and their queryids, made when a cycle replaces it: the wait
        #: sampler of every target asks for them each second
        self.listed: frozenset[StatementKey] = frozenset()
        self.listed_queryids: frozenset[int] = frozenset()
        # each cycle in the window (its time, and per statement its exec ms and calls); per
        # statement in the window [exec ms, calls, cycles it is in], and its one key instance
        self._cycles: deque[_Cycle] = deque()
        self._recent: dict[StatementKey, list[float]] = {}
        self._keys: dict[StatementKey, StatementKey] = {}
        self._dealloc_seen: int | None = None
        self._started = False
        self._first_read = 0.0
        #: ``pg_stat_statements_info.dealloc`` accumulated across resets: how often the view
        #: had to evict its least used entries to make room (None before PostgreSQL 14).
        self.deallocations: int | None = None
        #: ``pg_stat_statements_info.stats_reset`` as a Unix time, None before PostgreSQL 14.
        self.reset_time: float | None = None

    # --- one cycle ----------------------------------------------------------------------------

    @property
    def has_baselines(self) -> bool:
        """Whether a read of the changed entries can stand for a whole read."""
        return self._started and bool(len(self._visible) or self._hidden)

    def known(self) -> Known:
        """The visible entries' ids, calls and stats_since, for the read of changed entries.

        Six PostgreSQL array literals whose elements line up (entry i is element i of each),
        kept by the columns and made again only where entries came or changed (see
        :class:`_Columns`).
        """
        return self._visible.known()

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
                and self._visible.find(row["queryid"], row["dbid"], row["userid"], row["toplevel"])
                < 0
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
        return bool(info["entries"] == len(self._visible) + new)

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
            self._visible, self._hidden = _Columns(), {}
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
        old = self._visible
        # a whole read makes new columns, in the server's order, sorted once at the end
        fresh = old if changed_only else _Columns()
        deltas: dict[StatementKey | None, list[float]] = {}

        def account(entry: Entry, baseline: State | None, state: State) -> None:
            if baseline == state:
                return  # idle since the last read: most entries, most cycles
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
            entry_id = entry.id
            if entry_id.queryid is None:
                twin = hidden.get(entry_id)
                if twin is not None:
                    entry = entry._replace(values=tuple(map(add, twin.values, entry.values)))
                hidden[entry_id] = entry
                continue
            state = (*entry.values, _NO_SINCE if entry.since is None else entry.since)
            at = old.find(entry_id.queryid, entry_id.dbid, entry_id.userid, entry_id.toplevel)
            baseline = old.state(at) if at >= 0 else None
            if not changed_only:
                fresh.append(entry_id, state)
            elif baseline is None:
                old.insert(~at, entry_id, state)
            elif baseline != state:
                old.renew(at, state)
            account(entry, baseline, state)
        hidden_now: dict[EntryId, State] = {}
        for entry in hidden.values():
            state = (*entry.values, _NO_SINCE if entry.since is None else entry.since)
            hidden_now[entry.id] = state
            account(entry, self._hidden.get(entry.id), state)
        self._hidden = hidden_now
        if not changed_only:
            self._visible = fresh.ordered()
        return deltas

    @staticmethod
    def _growth(entry: Entry, baseline: State | None) -> Values:
        if baseline is None:
            return entry.values
        *values, since = baseline
        if entry.since is not None and since != _NO_SINCE and entry.since != since:
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
        cycle = _Cycle(now)
        keys, recent_sums = self._keys, self._recent
        for fresh, d in deltas.items():
            if fresh is None:
                continue
            # every read makes new keys (and queryid texts) for the same statements: the
            # window's cycles hold the one kept while the statement is in the window
            key = keys.setdefault(fresh, fresh)
            exec_ms, calls = d[_EXEC], d[_CALLS]
            cycle.add(key, exec_ms, calls)
            recent = recent_sums.get(key)
            if recent is None:
                recent_sums[key] = [float(exec_ms), float(calls), 1]
            else:
                recent[0] += exec_ms
                recent[1] += calls
                recent[2] += 1
        self._cycles.append(cycle)
        while self._cycles and self._cycles[0].time <= now - self.window:
            for key, exec_ms, calls in self._cycles.popleft().items():
                recent = recent_sums[key]
                if recent[2] == 1:
                    # dropped rather than subtracted to zero: no float residue lingers
                    del recent_sums[key], keys[key]
                else:
                    recent[0] -= exec_ms
                    recent[1] -= calls
                    recent[2] -= 1

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
        self.listed = frozenset(listed)
        self.listed_queryids = frozenset(int(key.queryid) for key in listed)

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
        if self._cycles and self._cycles[0].time == self._first_read:
            first = {key: (e, c) for key, e, c in self._cycles[0].items()}
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
