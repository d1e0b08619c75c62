"""How the app collector keeps per-process counters monotonic when workers come and go."""

from __future__ import annotations

from exporter.collectors.app import MonotonicSums

HITS = ("hits", "api_response")


def test_totals_sum_live_processes() -> None:
    sums = MonotonicSums()
    assert sums.update({("a", HITS): 5, ("b", HITS): 3}) == {HITS: 8}


def test_a_vanished_process_keeps_its_last_count() -> None:
    sums = MonotonicSums()
    sums.update({("a", HITS): 5, ("b", HITS): 3})
    assert sums.update({("b", HITS): 4}) == {HITS: 9}
    assert sums.update({("b", HITS): 6}) == {HITS: 11}


def test_a_counter_that_restarts_under_the_same_key_is_a_reset_not_a_drop() -> None:
    sums = MonotonicSums()
    sums.update({("a", HITS): 10})
    # the key expired while idle and came back from zero
    assert sums.update({("a", HITS): 2}) == {HITS: 12}
    assert sums.update({("a", HITS): 3}) == {HITS: 13}


def test_a_new_process_adds_on_top_of_what_dead_ones_counted() -> None:
    sums = MonotonicSums()
    sums.update({("a", HITS): 7})
    sums.update({})
    assert sums.update({("c", HITS): 1}) == {HITS: 8}


def test_series_are_kept_apart() -> None:
    sums = MonotonicSums()
    misses = ("misses", "api_response")
    sums.update({("a", HITS): 1, ("a", misses): 2})
    assert sums.update({("a", HITS): 3}) == {HITS: 3, misses: 2}
