"""Reading only the changed pg_stat_statements entries counts exactly what whole reads count.

The collector sends the known entries (:meth:`StatementAccounts.known`) and the server returns
the entries whose calls or stats_since differ, every hidden entry, and the number of visible
entries (``statements_sql(changed_only=True)``). :func:`changed_rows` is that query over a
simulated view, reading the array literals back as PostgreSQL would, so what is compared here is
the accounting fed both ways, cycle by cycle, through evictions, new entries and resets.
"""

from __future__ import annotations

import gc
import math
import random
import sys
from array import array
from typing import Any

import pytest

from exporter.collectors import postgres_statements
from exporter.collectors.postgres_statements import EntryId, StatementAccounts, _Columns

TOP_N, WINDOW = 5, 60.0


def _literal(text: str) -> list[str]:
    assert text[0] == "{" and text[-1] == "}", text
    return [] if text == "{}" else text[1:-1].split(",")


class SimulatedView:
    """pg_stat_statements of one server: entries by (queryid, dbid, userid, toplevel)."""

    def __init__(self, rng: random.Random, stats_since: bool = False) -> None:
        self.rng = rng
        self.entries: dict[tuple[int | None, int, int, bool], list[float]] = {}
        #: PostgreSQL 17+: when each entry was created (else None everywhere)
        self.stats_since = stats_since
        self.since: dict[tuple[int | None, int, int, bool], float] = {}
        self.clock = 5000.25
        self.dealloc = 0
        self.reset_at = 1000.0
        self.next_id = 1

    def add(self) -> None:
        queryid: int | None = self.next_id if self.rng.random() > 0.1 else None
        self.next_id += 1
        key = (queryid, 1, 10 + self.rng.randrange(2), self.rng.random() > 0.2)
        if key not in self.entries:
            self.entries[key] = [0.0] * 7
            self.clock += 1.125
            self.since[key] = self.clock

    def run(self, key: tuple[int | None, int, int, bool]) -> None:
        values = self.entries[key]
        calls = self.rng.randrange(1, 4)
        for i, step in enumerate((calls, 2.5 * calls, 3 * calls, 7 * calls, calls, 0.5, 0.25)):
            values[i] += step

    def cycle(self) -> None:
        """Some activity, sometimes new entries, evictions or a reset."""
        for _ in range(self.rng.randrange(3)):
            self.add()
        if self.entries and self.rng.random() < 0.15:
            victim = self.rng.choice(list(self.entries))
            del self.entries[victim]
            self.dealloc += 1
        if self.stats_since and self.entries and self.rng.random() < 0.1:
            # pg_stat_statements_reset(userid, dbid, queryid) and the query runs again: the
            # same id, counting from zero, only stats_since tells (no eviction, no full reset)
            key = self.rng.choice(list(self.entries))
            self.entries[key] = [0.0] * 7
            self.clock += 1.125
            self.since[key] = self.clock
            self.run(key)
        if self.rng.random() < 0.03:
            self.entries.clear()
            self.reset_at += 1
        keys = list(self.entries)
        for key in self.rng.sample(keys, min(len(keys), self.rng.randrange(4))):
            self.run(key)

    def row(self, key: tuple[int | None, int, int, bool]) -> dict[str, Any]:
        values = self.entries[key]
        queryid, dbid, userid, toplevel = key
        return {
            "is_info": False,
            "queryid": queryid,
            "dbid": dbid,
            "userid": userid,
            "toplevel": toplevel,
            "datname": "app",
            "rolname": f"user{userid}",
            "calls": int(values[0]),
            "exec_ms": values[1],
            "rows": int(values[2]),
            "shared_blks_hit": int(values[3]),
            "shared_blks_read": int(values[4]),
            "blk_read_ms": values[5],
            "blk_write_ms": values[6],
            "since": self.since[key] if self.stats_since else None,
        }

    def info(self) -> dict[str, Any]:
        visible = sum(1 for k in self.entries if k[0] is not None)
        return {
            "is_info": True,
            "dealloc": self.dealloc,
            "stats_reset": self.reset_at,
            "entries": visible,
        }

    def whole_read(self) -> list[dict[str, Any]]:
        return [*(self.row(k) for k in self.entries), self.info()]

    def changed_rows(self, known: tuple[str, ...]) -> list[dict[str, Any]]:
        queryids, dbids, userids, toplevels, calls, sinces = map(_literal, known)
        if not self.stats_since:
            assert all(s == "NULL" for s in sinces)  # no stats_since before PostgreSQL 17
        seen = {
            (int(q), int(d), int(u), t == "t"): (int(c), None if s == "NULL" else float(s))
            for q, d, u, t, c, s in zip(
                queryids, dbids, userids, toplevels, calls, sinces, strict=True
            )
        }
        rows = [
            self.row(k)
            for k, values in self.entries.items()
            if k[0] is None
            or seen.get(k) != (int(values[0]), self.since[k] if self.stats_since else None)
        ]
        return [*rows, self.info()]


def known_rows(accounts: StatementAccounts) -> list[tuple[str, ...]]:
    """What known() sends, one tuple per entry (the columns must line up)."""
    columns = [_literal(text) for text in accounts.known()]
    assert len({len(c) for c in columns}) == 1, columns
    return sorted(zip(*columns, strict=True))


def encoded_afresh(accounts: StatementAccounts) -> list[tuple[str, ...]]:
    """The visible baselines encoded one by one from the columns, not by known()."""
    columns = accounts._visible
    out = []
    for at in range(len(columns)):
        values = columns.state(at)
        since = "NULL" if math.isinf(values[-1]) else repr(values[-1])
        out.append(
            (
                str(columns.queryids[at]),
                str(columns.dbids[at]),
                str(columns.userids[at]),
                "t" if columns.toplevels[at] else "f",
                str(int(values[0])),
                since,
            )
        )
    return sorted(out)


def exported(accounts: StatementAccounts) -> dict[str, tuple[int, float, int]]:
    top, other = accounts.rows()
    return {r.queryid: (r.calls, round(r.exec_ms, 6), r.rows) for r in (*top, other)}


@pytest.mark.parametrize("stats_since", [False, True], ids=["pg16", "pg17"])
def test_changed_entries_only_count_what_whole_reads_count(stats_since: bool) -> None:
    for seed in range(40):
        rng = random.Random(seed)
        view = SimulatedView(rng, stats_since)
        for _ in range(8):
            view.add()
        whole, changed = StatementAccounts(TOP_N, WINDOW), StatementAccounts(TOP_N, WINDOW)
        partial_reads = 0
        for step in range(60):
            view.cycle()
            now = 10.0 * step
            whole.update_from_rows(view.whole_read(), now)
            if changed.has_baselines:
                rows = view.changed_rows(changed.known())
                if changed.changes_suffice(rows):
                    changed.update_from_rows(rows, now, changed_only=True)
                    partial_reads += 1
                else:
                    changed.update_from_rows(view.whole_read(), now)
            else:
                changed.update_from_rows(view.whole_read(), now)
            assert exported(changed) == exported(whole), (seed, step)
            if step % 3 == 0:  # kept up to date across several updates, too
                assert known_rows(changed) == encoded_afresh(changed), (seed, step)
            assert changed.deallocations == whole.deallocations
        assert partial_reads > 20, seed  # most cycles really were read by change


def test_a_vanished_entry_a_reset_or_evictions_need_a_whole_read() -> None:
    view = SimulatedView(random.Random(1))
    for _ in range(6):
        view.add()
    view.entries = {k: v for k, v in view.entries.items() if k[0] is not None}
    accounts = StatementAccounts(TOP_N, WINDOW)
    accounts.update_from_rows(view.whole_read(), 0.0)
    assert accounts.changes_suffice(view.changed_rows(accounts.known()))
    view.add()  # a new entry is read by change
    assert accounts.changes_suffice(view.changed_rows(accounts.known()))

    accounts.update_from_rows(view.whole_read(), 10.0)
    del view.entries[next(iter(view.entries))]  # gone without an eviction being counted
    assert not accounts.changes_suffice(view.changed_rows(accounts.known()))
    accounts.update_from_rows(view.whole_read(), 20.0)

    view.dealloc += 1
    assert not accounts.changes_suffice(view.changed_rows(accounts.known()))
    view.dealloc -= 1
    view.reset_at += 1
    assert not accounts.changes_suffice(view.changed_rows(accounts.known()))


def test_only_the_first_reads_listed_statements_stay_in_the_window() -> None:
    view = SimulatedView(random.Random(3))
    for _ in range(40):
        view.add()
    view.entries = {k: v for k, v in view.entries.items() if k[0] is not None}
    for key in view.entries:
        view.run(key)
    accounts = StatementAccounts(TOP_N, WINDOW)
    accounts.update_from_rows(view.whole_read(), 0.0)
    assert len(accounts.listed) == TOP_N
    assert {key for key in accounts._recent} == set(accounts.listed)


def test_baselines_are_columns_of_numbers_not_objects() -> None:
    """~80 bytes an entry (17 of id, 8 doubles); a packed key and state in a dict took ~190."""
    view = SimulatedView(random.Random(7))
    for _ in range(3000):
        view.add()
    for key in list(view.entries):
        view.run(key)
    view.entries = {k: v for k, v in view.entries.items() if k[0] is not None}
    accounts = StatementAccounts(TOP_N, WINDOW)
    accounts.update_from_rows(view.whole_read(), 0.0)
    columns = accounts._visible
    assert len(columns) == len(view.entries) > 2500
    size = sum(
        sys.getsizeof(c)
        for c in (columns.queryids, columns.dbids, columns.userids, columns.toplevels)
    ) + sys.getsizeof(columns.values)
    assert size / len(columns) < 100
    # five objects in all, referring to none: nothing per entry for the garbage collector
    assert gc.get_referents(columns.values) == [array] and not accounts._hidden
    # sorted by id, each found where it is
    ids = list(
        zip(columns.queryids, columns.dbids, columns.userids, columns.toplevels, strict=True)
    )
    assert ids == sorted(ids)
    for at, (queryid, dbid, userid, toplevel) in enumerate(ids[:50]):
        assert columns.find(queryid, dbid, userid, bool(toplevel)) == at
    assert columns.find(-1, 1, 1, True) == ~0


def _known_made_whole(columns: _Columns) -> tuple[str, ...]:
    """What known() must say, made entry by entry from the arrays in one go."""
    states = [columns.state(at) for at in range(len(columns))]
    calls = postgres_statements._CALLS
    return (
        "{" + ",".join(map(str, columns.queryids)) + "}",
        "{" + ",".join(map(str, columns.dbids)) + "}",
        "{" + ",".join(map(str, columns.userids)) + "}",
        "{" + ",".join("t" if t else "f" for t in columns.toplevels) + "}",
        "{" + ",".join(str(int(s[calls])) for s in states) + "}",
        "{" + ",".join("NULL" if math.isinf(s[-1]) else repr(s[-1]) for s in states) + "}",
    )


@pytest.mark.parametrize("chunk", [1, 3, postgres_statements._CHUNK])
def test_known_made_again_in_pieces_says_what_made_whole_says(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """known() kept in pieces says byte for byte what it says made whole, step after step.

    Only the calls' pieces an insert moved or a renew changed are made again: a piece kept when
    its entries moved or changed would send the server other entries' calls.
    """
    monkeypatch.setattr(postgres_statements, "_CHUNK", chunk)
    rng = random.Random(20240611 + chunk)
    width = postgres_statements._WIDTH

    def state(calls: int) -> tuple[float, ...]:
        since = float("-inf") if rng.random() < 0.5 else 1.7e9 + rng.random()
        return (float(calls), 2.5 * calls, 3.0, 4.0, 5.0, 0.5, 0.25, since)

    def new_id() -> EntryId:
        # clear of int64's ends: the first and last ids are passed by one below
        return EntryId(rng.randrange(-(2**62), 2**62), rng.randrange(1, 4), 10, rng.random() < 0.8)

    # a whole read: appended in the server's order, asked before and after it is ordered
    columns = _Columns()
    assert columns.known() == _known_made_whole(columns) == ("{}",) * 6
    for _ in range(5 * chunk + 2):
        columns.append(new_id(), state(rng.randrange(10**6)))
    assert columns.known() == _known_made_whole(columns)
    columns = columns.ordered()
    assert columns.known() == _known_made_whole(columns)
    assert columns.ordered() is columns and columns.known() == _known_made_whole(columns)

    sizes = set()
    for step in range(600):
        for _ in range(rng.choice((1, 1, 2, 4))):  # several changes between two reads, too
            move = rng.random()
            if move < 0.25 or not len(columns):
                # a new entry: where its id falls, or at the very start or end
                entry = new_id()
                where = rng.random()
                if where < 0.1:
                    entry = entry._replace(queryid=columns.queryids[0] - 1 if len(columns) else 0)
                elif where < 0.2 and len(columns):
                    entry = entry._replace(queryid=columns.queryids[-1] + 1)
                at = columns.find(entry.queryid or 0, entry.dbid, entry.userid, entry.toplevel)
                if at < 0:
                    columns.insert(~at, entry, state(rng.randrange(10**6)))
            else:
                at = rng.randrange(len(columns))
                renewed = list(columns.state(at))
                if move < 0.7:  # the calls grew (and the other numbers with them)
                    renewed[0] += rng.randrange(1, 1000)
                    renewed[1] += 1.5
                elif move < 0.85:  # the same calls: only other numbers or stats_since moved
                    renewed[2] += 1.0
                    if rng.random() < 0.3:
                        renewed[-1] = 1.8e9 + rng.random()
                else:  # re-created under the same id: calls from zero, a new stats_since
                    renewed[0], renewed[-1] = float(rng.randrange(3)), 1.9e9 + step
                columns.renew(at, tuple(renewed))
        assert len(columns.values) == width * len(columns)
        assert columns.known() == _known_made_whole(columns), (chunk, step)
        sizes.add(len(columns) % chunk)
    # a whole number of pieces and a last piece of one entry were both asked for
    assert {0, 1 % chunk} <= sizes
