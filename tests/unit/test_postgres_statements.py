"""The statement accounting without a server: deltas, eviction, reset, stickiness, ``other``."""

from __future__ import annotations

import random
import weakref
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.collectors.postgres_families import StatementRow
from exporter.collectors.postgres_statements import (
    Entry,
    EntryId,
    StatementAccounts,
    StatementKey,
)

WINDOW = 60.0


def entry(
    queryid: int | None,
    calls: int,
    exec_ms: float | None = None,
    *,
    user: str = "api",
    toplevel: bool = True,
    since: float | None = None,
) -> Entry:
    """An entry of database ``app`` with rows, hits and reads derived from its calls."""
    return Entry(
        EntryId(queryid, 1, 10 if user == "api" else 11, toplevel),
        "app",
        user,
        (
            calls,
            float(calls) if exec_ms is None else exec_ms,
            2 * calls,
            3 * calls,
            calls,
            calls / 2,
            0.0,
        ),
        since,
    )


def key(queryid: int, user: str = "api") -> StatementKey:
    return StatementKey(str(queryid), "app", user)


def exported(accounts: StatementAccounts) -> dict[str, StatementRow]:
    top, other = accounts.rows()
    return {r.queryid: r for r in (*top, other)}


def calls(accounts: StatementAccounts) -> dict[str, int]:
    return {q: r.calls for q, r in exported(accounts).items()}


def test_first_read_lists_the_busiest_and_other_holds_the_exact_rest() -> None:
    acc = StatementAccounts(top_n=2, window=WINDOW)
    acc.update([entry(1, 5, 50.0), entry(2, 7, 10.0), entry(3, 100, 20.0), entry(4, 1, 1.0)], 0.0)
    assert acc.listed == {key(1), key(3)}
    rows = exported(acc)
    assert (rows["1"].calls, rows["1"].exec_ms, rows["1"].rows) == (5, 50.0, 10)
    assert (rows["3"].calls, rows["3"].shared_blks_hit) == (100, 300)
    assert (rows["other"].calls, rows["other"].exec_ms, rows["other"].rows) == (8, 11.0, 16)
    # ordered by recent execution time, the remainder last
    assert [r.queryid for r in acc.rows()[0]] == ["1", "3"]


def test_growth_is_added_and_an_evicted_entry_stops_contributing() -> None:
    acc = StatementAccounts(top_n=1, window=WINDOW)
    acc.update([entry(1, 10, 100.0), entry(2, 4)], 0.0)
    acc.update([entry(1, 15, 150.0), entry(2, 6)], 15.0)
    assert calls(acc) == {"1": 15, "other": 6}
    acc.update([entry(1, 15, 150.0)], 30.0)  # entry 2 evicted
    assert calls(acc) == {"1": 15, "other": 6}
    acc.update([entry(1, 18, 180.0)], 45.0)
    assert calls(acc) == {"1": 18, "other": 6}


def test_an_entry_below_its_baseline_is_new_and_counts_from_zero() -> None:
    acc = StatementAccounts(top_n=1, window=WINDOW)
    acc.update([entry(1, 40, 400.0), entry(2, 30)], 0.0)
    # both evicted and re-created between two reads: 3 and 2 calls since
    acc.update([entry(1, 3, 30.0), entry(2, 2)], 15.0)
    assert calls(acc) == {"1": 43, "other": 32}
    assert exported(acc)["1"].exec_ms == 430.0


def test_a_full_reset_drops_every_baseline_even_when_values_grew_past_them() -> None:
    acc = StatementAccounts(top_n=1, window=WINDOW)
    acc.update([entry(1, 5, 50.0)], 0.0, reset_time=1000.0, dealloc=4)
    # reset at 1010, then 8 calls: above the old 5, indistinguishable without stats_reset
    acc.update([entry(1, 8, 80.0)], 15.0, reset_time=1010.0, dealloc=0)
    assert calls(acc) == {"1": 13, "other": 0}
    assert acc.reset_time == 1010.0
    assert acc.deallocations == 4  # dealloc went back to zero with the reset: nothing negative
    acc.update([entry(1, 9, 90.0)], 30.0, reset_time=1010.0, dealloc=3)
    assert calls(acc) == {"1": 14, "other": 0}
    assert acc.deallocations == 7


def test_the_same_reset_time_keeps_the_baselines() -> None:
    acc = StatementAccounts(top_n=1, window=WINDOW)
    acc.update([entry(1, 5)], 0.0, reset_time=1000.0)
    acc.update([entry(1, 8)], 15.0, reset_time=1000.0)
    assert calls(acc)["1"] == 8


def test_a_changed_stats_since_means_a_recreated_entry() -> None:
    acc = StatementAccounts(top_n=1, window=WINDOW)
    acc.update([entry(1, 5, since=100.0)], 0.0)
    acc.update([entry(1, 9, since=200.0)], 15.0)  # evicted, re-created, ran 9 times
    assert calls(acc)["1"] == 14


def test_toplevel_and_nested_entries_of_one_statement_share_its_row() -> None:
    acc = StatementAccounts(top_n=5, window=WINDOW)
    acc.update([entry(1, 2), entry(1, 3, toplevel=False), entry(1, 4, user="batch")], 0.0)
    assert acc.listed == {key(1), key(1, "batch")}
    top, _other = acc.rows()
    assert {(r.queryid, r.user, r.calls) for r in top} == {("1", "api", 5), ("1", "batch", 4)}


def test_hidden_entries_count_in_other_and_never_twice() -> None:
    acc = StatementAccounts(top_n=5, window=WINDOW)
    acc.update([entry(None, 10), entry(None, 5), entry(1, 1)], 0.0)
    assert calls(acc) == {"1": 1, "other": 15}
    # one hidden entry was evicted, the other grew by 2: the sum shrank from 15 to 12, which
    # entry left is unknown, so nothing is added rather than 12 counted a second time
    acc.update([entry(None, 12), entry(1, 1)], 15.0)
    assert calls(acc) == {"1": 1, "other": 15}
    acc.update([entry(None, 14), entry(1, 1)], 20.0)
    assert calls(acc) == {"1": 1, "other": 17}
    orphan = Entry(EntryId(7, 99, 10, True), None, "api", (4, 4.0, 0, 0, 0, 0.0, 0.0))
    acc.update([entry(None, 14), entry(1, 1), orphan], 30.0)  # database dropped: not listable
    assert calls(acc) == {"1": 1, "other": 21}


def test_a_listed_statement_stays_a_window_so_series_do_not_flap() -> None:
    acc = StatementAccounts(top_n=1, window=WINDOW)
    acc.update([entry(1, 1, 10.0), entry(2, 1, 5.0)], 0.0)
    assert acc.listed == {key(1)}
    # statement 2 becomes far busier, but 1 was listed less than a window ago
    for t in (15.0, 30.0, 45.0):
        acc.update([entry(1, 1, 10.0), entry(2, int(t), 5.0 + 100 * t)], t)
        assert acc.listed == {key(1)}, t
    acc.update([entry(1, 1, 10.0), entry(2, 60, 6005.0)], 60.0)
    before = acc.listed
    assert before == {key(2)}
    # the wait sampler asks every second: one set per cycle, a new one after each cycle
    assert acc.listed is before
    # 1 is busy again at once, but now 2 holds its place for a window
    acc.update([entry(1, 500, 1e6), entry(2, 61, 6006.0)], 75.0)
    assert acc.listed == {key(2)} and acc.listed is not before


def test_ranking_uses_the_window_not_the_totals_since_reset() -> None:
    acc = StatementAccounts(top_n=1, window=WINDOW)
    acc.update([entry(1, 1000, 1e6), entry(2, 1, 1.0)], 0.0)
    assert acc.listed == {key(1)}
    # 1 has by far the larger total but does nothing any more; 2 is busy
    for t in range(15, 136, 15):
        acc.update([entry(1, 1000, 1e6), entry(2, t, float(t))], float(t))
    assert acc.listed == {key(2)}
    assert acc.recent_exec_seconds(key(1)) == 0.0
    assert acc.recent_exec_seconds(key(2)) == pytest.approx(0.060)  # 4 reads of 15 ms


def test_moving_in_and_out_of_the_list_decreases_nothing() -> None:
    acc = StatementAccounts(top_n=1, window=WINDOW)
    acc.update([entry(1, 10, 100.0), entry(2, 1, 1.0)], 0.0)
    assert calls(acc) == {"1": 10, "other": 1}
    # 2 overtakes 1 after 1's window: 1 leaves, 2 enters at 0 (its past stays in other)
    acc.update([entry(1, 10, 100.0), entry(2, 50, 900.0)], 60.0)
    assert acc.listed == {key(2)}
    assert calls(acc) == {"2": 0, "other": 50}
    acc.update([entry(1, 12, 120.0), entry(2, 55, 950.0)], 75.0)
    assert calls(acc) == {"2": 5, "other": 52}  # 1's growth now goes to other
    # 2 idles for a window, 1 is busy: 1 comes back where its series stopped
    acc.update([entry(1, 90, 9000.0), entry(2, 55, 950.0)], 135.0)
    assert acc.listed == {key(1)}
    assert calls(acc) == {"1": 10, "other": 130}
    acc.update([entry(1, 95, 9500.0), entry(2, 55, 950.0)], 150.0)
    assert calls(acc) == {"1": 15, "other": 130}


def test_the_window_keeps_one_key_per_statement_and_lets_it_go_with_the_statement() -> None:
    """Every read makes new (equal) keys and queryid texts; a window of cycles holding each
    read's own took ~360 bytes per statement per cycle: 4.9 MB a target where 300 statements
    run every 15 s. The window holds one instance per statement, while the statement is in
    it."""
    acc = StatementAccounts(top_n=2, window=WINDOW)
    for t in range(0, 60, 15):
        acc.update([entry(1, 1 + t), entry(2, 1 + 2 * t), entry(3, 1 + 3 * t)], float(t))
    held = [k for cycle in acc._cycles for k, _, _ in cycle.items()]
    # the first read keeps only its best top_n (2), the next three every statement
    assert len(held) == 2 + 3 * 3 and sorted(set(held)) == [key(1), key(2), key(3)]
    assert len({id(k) for k in held}) == 3
    assert len({id(k.queryid) for k in held}) == 3
    # statement 3 stops: once its last cycle leaves the window, its key goes too
    for t in range(60, 136, 15):
        acc.update([entry(1, 1 + t), entry(2, 1 + 2 * t), entry(3, 1 + 3 * 45)], float(t))
    assert sorted(acc._keys) == [key(1), key(2)]
    assert acc.recent_exec_seconds(key(3)) == 0.0
    assert {k for cycle in acc._cycles for k, _, _ in cycle.items()} == {key(1), key(2)}


def test_an_idle_statement_is_not_listed_only_to_fill_a_slot() -> None:
    acc = StatementAccounts(top_n=3, window=WINDOW)
    acc.update([entry(1, 5)], 0.0)
    acc.update([entry(1, 5), entry(2, 0, 0.0)], 15.0)
    assert acc.listed == {key(1)}


class SimulatedStatements:
    """A simulated pg_stat_statements: runs, evictions (least called first) and resets."""

    def __init__(self, rng: random.Random, size: int) -> None:
        self.rng = rng
        self.size = size
        self.values: dict[int, list[float]] = {}
        self.since: dict[int, float] = {}
        self.reset_time = 0.0
        self.clock = 0.0

    def run(self, queryid: int, times: int) -> None:
        if queryid not in self.values:
            if len(self.values) >= self.size:
                victim = min(self.values, key=lambda q: self.values[q][0])
                del self.values[victim]
            self.values[queryid] = [0, 0.0, 0, 0, 0, 0.0, 0.0]
            self.since[queryid] = self.clock
        row = self.values[queryid]
        row[0] += times
        row[1] += times * (0.25 + queryid % 7)
        row[2] += times * (queryid % 3)
        row[3] += times * 2
        row[4] += queryid % 2
        row[5] += times * 0.5

    def reset(self) -> None:
        self.values.clear()
        self.reset_time = self.clock

    def entries(self) -> Iterable[Entry]:
        for queryid, row in self.values.items():
            yield Entry(
                EntryId(queryid, 1, 10, True), "app", "api", tuple(row), self.since[queryid]
            )


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 6), st.integers(3, 30))
def test_counters_never_decrease_and_sum_to_what_the_view_counted(
    seed: int, top_n: int, size: int
) -> None:
    rng = random.Random(seed)
    view = SimulatedStatements(rng, size)
    acc = StatementAccounts(top_n=top_n, window=WINDOW)
    seen: dict[str, list[float]] = {}
    counted = 0  # calls the view held at each read that the previous read had not seen
    before: dict[int, float] = {}
    for cycle in range(40):
        view.clock = cycle * 15.0
        # eviction happens between reads, so every run below is visible at the next read
        for _ in range(rng.randint(0, 12)):
            view.run(rng.randint(1, 3 * size), rng.randint(1, 20))
        if rng.random() < 0.05:
            view.reset()
            before = {}
            view.run(rng.randint(1, 3 * size), rng.randint(1, 20))
        acc.update(view.entries(), view.clock, reset_time=view.reset_time)
        for queryid, row in view.values.items():
            fresh = view.since[queryid] > view.clock - 15.0 or queryid not in before
            counted += int(row[0] - (0 if fresh else before[queryid]))
        before = {q: r[0] for q, r in view.values.items()}
        top, other = acc.rows()
        assert len(top) <= top_n
        for row in (*top, other):
            values = [row.calls, row.exec_ms, row.rows, row.shared_blks_hit, row.shared_blks_read]
            values.append(row.blk_read_ms)
            previous = seen.get(row.queryid)
            if previous is not None:
                assert all(v >= p for v, p in zip(values, previous, strict=True)), row
            seen[row.queryid] = values
        # every listed series, even one not listed now, plus other
        assert sum(v[0] for v in seen.values()) == counted


def query_row(queryid: int | None, calls: int, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "is_info": False,
        "queryid": queryid,
        "dbid": 1,
        "userid": 10,
        "toplevel": True,
        "datname": "app",
        "rolname": "api",
        "calls": calls,
        "exec_ms": 2.0 * calls,
        "rows": calls,
        "shared_blks_hit": 0,
        "shared_blks_read": 0,
        "blk_read_ms": 0.0,
        "blk_write_ms": 0.0,
        "since": None,
        "dealloc": None,
        "stats_reset": None,
    }
    row.update(extra)
    return row


def test_query_rows_feed_the_accounting_and_the_info_row_feeds_the_view_state() -> None:
    acc = StatementAccounts(top_n=1, window=WINDOW)
    info = query_row(None, 0, is_info=True, dealloc=3, stats_reset=1.5e9)
    acc.update_from_rows([query_row(5, 4), info, query_row(6, 1)], 0.0)
    assert calls(acc) == {"5": 4, "other": 1}
    assert exported(acc)["5"].exec_ms == 8.0
    assert (acc.deallocations, acc.reset_time) == (3, 1.5e9)


def test_before_postgresql_14_there_is_no_eviction_count_or_reset_time() -> None:
    acc = StatementAccounts(top_n=1, window=WINDOW)
    acc.update_from_rows([query_row(5, 4)], 0.0)
    assert (acc.deallocations, acc.reset_time) == (None, None)


def test_slow_statements_count_what_the_exporter_saw_not_what_the_view_held_at_start() -> None:
    acc = StatementAccounts(top_n=5, window=WINDOW)
    # the view already counted 1000 calls of 1 ms before the exporter started
    acc.update([entry(1, 1000, 1000.0), entry(2, 10, 10.0)], 0.0)
    assert acc.slow_statements(0.0) == []
    # then 20 calls of 50 ms in 10 s: the statement got slow
    acc.update([entry(1, 1020, 2000.0), entry(2, 10, 10.0)], 10.0)
    (slow,) = acc.slow_statements(10.0)
    assert (slow["queryid"], slow["datname"], slow["user"]) == ("1", "app", "api")
    assert slow["mean_seconds"] == pytest.approx(0.05)
    assert slow["calls_per_second"] == pytest.approx(2.0)
    # the exported counters' own mean still holds the view's start: the history to compare
    assert slow["mean_seconds_history"] == pytest.approx(2.0 / 1020)
    # once the first read has left the window, the window is all the exporter's
    acc.update([entry(1, 1030, 2100.0), entry(2, 10, 10.0)], WINDOW + 5)
    (slow,) = acc.slow_statements(WINDOW + 5)
    assert slow["mean_seconds"] == pytest.approx(1100.0 / 30 / 1000)


class _Record(dict[str, object]):
    """A row as asyncpg gives it, which a weak reference can follow to its end."""


def _as_record(e: Entry) -> _Record:
    calls_, exec_ms, rows_, hit, read, blk_read, blk_write = e.values
    return _Record(
        is_info=False,
        queryid=e.id.queryid,
        dbid=e.id.dbid,
        userid=e.id.userid,
        toplevel=e.id.toplevel,
        datname=e.datname,
        rolname=e.user,
        calls=calls_,
        exec_ms=exec_ms,
        rows=rows_,
        shared_blks_hit=hit,
        shared_blks_read=read,
        blk_read_ms=blk_read,
        blk_write_ms=blk_write,
        since=e.since,
    )


def test_rows_are_let_go_as_they_are_accounted() -> None:
    # a whole read of thousands of entries must not be held as records and entries at once:
    # update_from_rows consumes the fetched list, each record dropped once it is read
    entries = [entry(q, 10 + q, user="api" if q % 3 else "batch") for q in range(1, 200)]
    entries += [entry(None, 5), entry(None, 7)]  # two hidden entries of one role: one sum
    info = _Record(is_info=True, stats_reset=1000.0, dealloc=3)
    rows = [_as_record(e) for e in entries] + [info]
    refs = [weakref.ref(r) for r in rows]
    by_rows = StatementAccounts(10, WINDOW)
    by_rows.update_from_rows(rows, 0.0)  # type: ignore[arg-type]
    assert rows == []
    del info
    assert all(ref() is None for ref in refs)
    by_entries = StatementAccounts(10, WINDOW)
    by_entries.update(entries, 0.0, reset_time=1000.0, dealloc=3)
    assert exported(by_rows) == exported(by_entries)
    assert by_rows.known() == by_entries.known()
    assert by_rows.deallocations == 3 and by_rows.reset_time == 1000.0
