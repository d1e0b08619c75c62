"""Version gates, the latency histogram's accounting and the slowlog's counting by id."""

from __future__ import annotations

import random
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.collectors.redis_latency import (
    LE,
    LatencyHistograms,
    ServerKind,
    power_of_two_below,
)
from exporter.collectors.redis_slowlog import EntryLog, is_full
from exporter.snapshot import Block, _flat, render_fragments


class _Families:
    def __init__(self, families: list[object]) -> None:
        self.families = families

    def collect(self) -> list[object]:
        return self.families


def _registry(family: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_Families([family]))  # type: ignore[arg-type]
    return registry


def test_features_follow_the_server_and_its_version() -> None:
    redis62 = ServerKind.from_info({"redis_version": "6.2.14"})
    redis70 = ServerKind.from_info({"redis_version": "7.0.15"})
    valkey80 = ServerKind.from_info({"redis_version": "7.2.4", "valkey_version": "8.0.2"})
    valkey81 = ServerKind.from_info(
        {"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "8.1.8"}
    )
    assert (redis62.name, redis62.version) == ("redis", (6, 2, 14))
    assert not redis62.has("latency_histogram") and not redis62.has("commandlog")
    assert redis70.has("latency_histogram") and not redis70.has("commandlog")
    assert valkey80.has("latency_histogram") and not valkey80.has("commandlog")
    assert valkey81.name == "valkey" and valkey81.has("commandlog")


def test_server_buckets_map_to_their_power_of_two() -> None:
    assert [power_of_two_below(b) for b in (1, 2, 4, 16, 33, 66, 264, 528)] == [
        1, 2, 4, 16, 32, 64, 256, 512,
    ]  # fmt: skip


def _info(run_id: str, calls: int, usec: int) -> dict[str, str]:
    return {"run_id": run_id, "cmdstat_get": f"calls={calls},usec={usec},usec_per_call=1.0"}


def _reply(calls: int, buckets: dict[int, int]) -> dict[bytes, object]:
    return {b"get": {b"calls": calls, b"histogram_usec": buckets}}


def test_histogram_totals_never_go_down_after_a_reset() -> None:
    hist = LatencyHistograms(top_n=5)
    assert hist.choose(_info("a", 10, 50)) == ["get"]
    first = _registry(hist.family(_info("a", 10, 50), _reply(10, {1: 4, 33: 10})))
    # CONFIG RESETSTAT: the server starts again from 0, then counts 3 calls
    second = _registry(hist.family(_info("a", 3, 9), _reply(3, {2: 3})))
    name = "perf_redis_command_latency_seconds"
    assert first.get_sample_value(f"{name}_bucket", {"cmd": "get", "le": "1e-06"}) == 4
    assert first.get_sample_value(f"{name}_bucket", {"cmd": "get", "le": "3.2e-05"}) == 10
    assert first.get_sample_value(f"{name}_bucket", {"cmd": "get", "le": "1.6e-05"}) == 4
    assert second.get_sample_value(f"{name}_bucket", {"cmd": "get", "le": "1e-06"}) == 4
    assert second.get_sample_value(f"{name}_bucket", {"cmd": "get", "le": "2e-06"}) == 7
    assert second.get_sample_value(f"{name}_count", {"cmd": "get"}) == 13
    assert second.get_sample_value(f"{name}_sum", {"cmd": "get"}) == 59e-6


def test_a_chosen_command_stays_chosen_and_the_choice_is_bounded() -> None:
    hist = LatencyHistograms(top_n=2)
    info = {
        "cmdstat_get": "calls=9,usec=1",
        "cmdstat_set": "calls=5,usec=1",
        "cmdstat_del": "calls=1,usec=1",
    }
    assert hist.choose(info) == ["get", "set"]
    info["cmdstat_del"] = "calls=100,usec=1"
    assert hist.choose(info) == ["get", "set"]


def _entries(*ids_and_names: tuple[int, str]) -> list[list[object]]:
    # newest first, like SLOWLOG GET; the arguments must never reach a label
    return [
        [i, 1700000000, 12, [name.encode(), b"secret-key", b"secret-value"], b"1.2.3.4:5", b"app"]
        for i, name in sorted(ids_and_names, reverse=True)
    ]


def test_slowlog_counts_new_ids_and_the_gap_as_other() -> None:
    log = EntryLog()
    log.update("a", _entries((0, "GET"), (1, "KEYS")))
    assert dict(log.totals) == {"get": 1, "keys": 1, "other": 0}
    # ids 2..4 came and went between the cycles; only 5 and 6 were fetched (the reply was full,
    # so LEN told the length)
    log.update("a", _entries((5, "get"), (6, "get")), 128)
    assert dict(log.totals) == {"get": 3, "keys": 1, "other": 3}
    assert log.length == 128


def test_a_reply_without_len_is_the_whole_log_and_gives_its_length() -> None:
    log = EntryLog()
    log.update("a", _entries((3, "get"), (4, "set"), (5, "get")))
    assert log.length == 3
    log.update("a", [])  # SLOWLOG RESET, or slowlog-max-len 0
    assert log.length == 0
    assert dict(log.totals) == {"get": 2, "set": 1, "other": 0}


def test_a_get_reply_is_full_only_at_the_count_asked() -> None:
    asked = 4  # slowlog_fetch 3, plus the one that tells whether the log holds more
    assert not is_full(_entries((1, "get"), (2, "get"), (3, "get")), asked)
    assert is_full(_entries((1, "get"), (2, "get"), (3, "get"), (4, "get")), asked)
    assert not is_full([], asked)
    assert not is_full(None, asked)


def test_slowlog_reset_and_restart_never_lower_the_totals() -> None:
    log = EntryLog()
    log.update("a", _entries((7, "get")))
    log.update("a", [])  # SLOWLOG RESET: empty, the id sequence goes on
    log.update("a", _entries((8, "set")))
    log.update("b", _entries((0, "get"), (1, "get")))  # restarted: ids from 0 again
    assert dict(log.totals) == {"get": 3, "set": 1, "other": 0}
    assert "secret" not in repr(dict(log.totals))


def test_a_reset_seen_on_the_sum_alone_restarts_every_series_of_the_command() -> None:
    # after CONFIG RESETSTAT more fast calls than before: only usec shows the reset
    hist = LatencyHistograms(top_n=5)
    hist.choose(_info("a", 10, 50))
    hist.family(_info("a", 10, 50), _reply(10, {1: 4, 33: 10}))
    after = _registry(hist.family(_info("a", 12, 12), _reply(12, {1: 12})))
    name = "perf_redis_command_latency_seconds"
    assert after.get_sample_value(f"{name}_bucket", {"cmd": "get", "le": "1e-06"}) == 16
    assert after.get_sample_value(f"{name}_bucket", {"cmd": "get", "le": "3.2e-05"}) == 22
    assert after.get_sample_value(f"{name}_count", {"cmd": "get"}) == 22
    assert after.get_sample_value(f"{name}_sum", {"cmd": "get"}) == 62e-6


#: INFO commandstats and a LATENCY HISTOGRAM reply of a server that has seen GET and SET.
_TWO_COMMANDS_INFO = {
    "run_id": "a",
    "cmdstat_get": "calls=10,usec=50,usec_per_call=5.0",
    "cmdstat_set": "calls=4,usec=40,usec_per_call=10.0",
}
_TWO_COMMANDS_REPLY = {
    b"get": {b"calls": 10, b"histogram_usec": {1: 4, 33: 10}},
    b"set": {b"calls": 4, b"histogram_usec": {8: 1, 2048: 4}},
}


def test_histogram_samples_are_add_metrics_own_with_label_dicts_shared_by_targets() -> None:
    # the summary board keeps two collections of these buckets per Redis target: every target
    # and cycle reuses one label dict per (command, bound) instead of making its own
    one, two = LatencyHistograms(top_n=5), LatencyHistograms(top_n=5)
    info, reply = dict(_TWO_COMMANDS_INFO), dict(_TWO_COMMANDS_REPLY)
    one.choose(info)
    two.choose(info)
    a, b = one.family(info, reply), two.family(info, reply)
    # what prometheus_client's add_metric makes of the same buckets, sample for sample
    expected = HistogramMetricFamily(a.name, a.documentation, labels=["cmd"])
    for cmd in ("get", "set"):
        buckets = [
            (s.labels["le"], s.value)
            for s in a.samples
            if s.name.endswith("_bucket") and s.labels["cmd"] == cmd
        ]
        total = next(
            s.value for s in a.samples if s.name.endswith("_sum") and s.labels["cmd"] == cmd
        )
        expected.add_metric([cmd], buckets, total)
    assert a.samples == expected.samples
    assert [s.labels["le"] for s in a.samples[:3]] == ["1e-06", "2e-06", "4e-06"]
    assert a.samples[len(LE)].labels == {"cmd": "get", "le": "+Inf"}
    assert a.samples[len(LE)].value == 10
    assert all(x.labels is y.labels for x, y in zip(a.samples, b.samples, strict=True))
    # and the keys of the monotonic totals: one list per command and epoch for every target
    assert one._keys_of("get") is two._keys_of("get")


class _Unread(dict[int, int]):
    """A LATENCY HISTOGRAM field that fails the test when it is read."""

    def items(self) -> Any:
        raise AssertionError("the histogram of a command whose calls did not move was read")

    def __iter__(self) -> Any:
        raise AssertionError("the histogram of a command whose calls did not move was read")


def _plain(family: Metric) -> Metric:
    """``family`` without its render blocks: every sample formatted anew."""
    copy = HistogramMetricFamily(family.name, family.documentation, labels=["cmd"])
    copy.samples = list(family.samples)
    return copy


def test_unchanged_commands_keep_their_render_block_and_render_exactly() -> None:
    """Over random cycles (calls on some commands, a reset now and then) the body rendered
    with the blocks is the body of every sample formatted anew, and a command whose inputs did
    not change keeps its block (its lines are not formatted again)."""
    rng = random.Random(18)
    cmds = ["get", "set", "hget", "expire", "ping", "info"]
    hist = LatencyHistograms(top_n=len(cmds))
    calls = {c: rng.randrange(1, 50) for c in cmds}
    usec = {c: calls[c] * 3 for c in cmds}
    buckets = {c: {1: calls[c]} for c in cmds}
    run_id = "a"
    blocks_before: dict[str, Block] = {}
    # what the server counted in the epochs before this one: the totals' oracle
    counted = {c: 0 for c in cmds}
    counted_usec = {c: 0 for c in cmds}
    counted_buckets = {c: [0.0] * len(LE) for c in cmds}

    def cumulative(c: str) -> list[float]:
        # the server's cumulative count at each exported bound (its bounds are powers of two)
        return [
            float(max((n for b, n in buckets[c].items() if b <= 2**k), default=0))
            for k in range(len(LE))
        ]

    reused = fresh = 0
    for cycle in range(60):
        called: set[str] = set()
        if cycle % 17 == 16:  # CONFIG RESETSTAT: everything starts again
            for c in cmds:
                counted[c] += calls[c]
                counted_usec[c] += usec[c]
                counted_buckets[c] = [
                    a + b for a, b in zip(counted_buckets[c], cumulative(c), strict=True)
                ]
                calls[c], usec[c], buckets[c] = 1, 2, {2: 1}
        else:
            for c in rng.sample(cmds, rng.randrange(0, 3)):
                n = rng.randrange(1, 9)
                calls[c] += n
                usec[c] += n * rng.randrange(1, 40)
                bound = 2 ** rng.randrange(0, 12)
                buckets[c] = {b: (v + n if b >= bound else v) for b, v in buckets[c].items()}
                buckets[c].setdefault(
                    bound, max((v for b, v in buckets[c].items() if b < bound), default=0) + n
                )
                buckets[c] = dict(sorted(buckets[c].items()))
                called.add(c)
        info = {"run_id": run_id}
        info.update(
            {f"cmdstat_{c}": f"calls={calls[c]},usec={usec[c]},usec_per_call=1.0" for c in cmds}
        )
        # a command not called since the cycle before has the same calls and usec: its
        # histogram must not even be read again
        unchanged = set() if cycle in (0, 16, 33, 50) else set(cmds) - called
        reply = {
            c.encode(): {
                b"calls": calls[c],
                b"histogram_usec": _Unread() if c in unchanged else dict(buckets[c]),
            }
            for c in cmds
        }
        hist.choose(info)
        family = hist.family(info, reply)
        ours = render_fragments([family], "redis-1")
        anew = render_fragments([_plain(family)], "redis-1")
        assert b"".join(_flat([ours[0][1]])) == anew[0][1]
        blocks = dict(zip(hist.chosen, family.blocks, strict=True))  # type: ignore[attr-defined]
        per_command = {c: family.samples[i * len(LE) + 3 * i :][: len(LE) + 3] for i, c in
                       enumerate(hist.chosen)}  # fmt: skip
        for c, block in blocks.items():
            mine = per_command[c]
            assert mine[-2].value == counted[c] + calls[c], (cycle, c)  # _count
            assert mine[-1].value == (counted_usec[c] + usec[c]) / 1e6, (cycle, c)  # _sum
            expected = [a + b for a, b in zip(counted_buckets[c], cumulative(c), strict=True)]
            assert [s.value for s in mine[: len(LE)]] == expected, (cycle, c)
            if cycle % 17 != 16 and c not in called and c in blocks_before:
                assert block is blocks_before[c], (cycle, c)
                reused += 1
            else:
                assert block is not blocks_before.get(c), (cycle, c)
                fresh += 1
        blocks_before = blocks
    assert reused > 150 and fresh > 50


def test_a_command_left_out_of_the_reply_keeps_its_totals_and_its_block() -> None:
    hist = LatencyHistograms(top_n=5)
    info, both = dict(_TWO_COMMANDS_INFO), dict(_TWO_COMMANDS_REPLY)
    hist.choose(info)
    first = hist.family(info, both)
    # the server stops listing "set" (no call since a reset it has not seen): its totals stay
    second = hist.family(info, {b"get": both[b"get"]})
    third = hist.family(info, {b"get": both[b"get"]})
    assert second.samples == first.samples == third.samples
    get1, set1 = first.blocks  # type: ignore[attr-defined]
    get2, set2 = second.blocks  # type: ignore[attr-defined]
    get3, set3 = third.blocks  # type: ignore[attr-defined]
    assert get2 is get1 and get3 is get1
    assert set2 is not set1  # its inputs went away: rendered anew once
    assert set3 is set2


def _counts(family: Metric) -> dict[str, tuple[float, float, float]]:
    """cmd -> (_count, _sum, the 2 us bucket) of a latency family."""
    out: dict[str, list[float]] = {}
    for s in family.samples:
        row = out.setdefault(s.labels["cmd"], [0.0, 0.0, 0.0])
        if s.name.endswith("_count"):
            row[0] = s.value
        elif s.name.endswith("_sum"):
            row[1] = s.value
        elif s.labels["le"] == "2e-06":
            row[2] = s.value
    return {cmd: (a, b, c) for cmd, (a, b, c) in out.items()}


def test_totals_through_a_restart_an_absence_a_late_choice_and_usec_alone() -> None:
    """The cases the unchanged-command shortcut must get right besides RESETSTAT: a restart
    seen only in run_id, a command left out of the reply and back in one epoch, a command
    chosen when the top has room later, one that is chosen but never in the reply, and a
    cycle where only usec moved (a call under a microsecond)."""
    hist = LatencyHistograms(top_n=3)

    def cycle(run_id: str, stats: dict[str, tuple[int, int]], listed: set[str]) -> Metric:
        info = {"run_id": run_id}
        info.update(
            {f"cmdstat_{c}": f"calls={n},usec={u},usec_per_call=1.0" for c, (n, u) in stats.items()}
        )
        hist.choose(info)
        reply = {
            c.encode(): {b"calls": n, b"histogram_usec": {2: n}}
            for c, (n, _) in stats.items()
            if c in listed
        }
        return hist.family(info, reply)

    first = cycle("a", {"get": (5, 50), "ghost": (9, 9)}, {"get"})
    assert hist.chosen == ["ghost", "get"]
    assert _counts(first) == {"get": (5, 50e-6, 5)}  # ghost: chosen, never counted, not sent
    # usec moved, calls did not: _sum follows
    assert _counts(cycle("a", {"get": (5, 51), "ghost": (9, 9)}, {"get"}))["get"] == (
        5,
        51e-6,
        5,
    )
    # get left out of the reply: it keeps its totals
    assert _counts(cycle("a", {"get": (5, 51), "ghost": (9, 9)}, set()))["get"] == (5, 51e-6, 5)
    # back: the server lists a command again only after it counted from zero (a reset), so
    # what it shows now adds to what was counted before
    back = cycle("a", {"get": (7, 60), "set": (1, 2), "ghost": (9, 9)}, {"get", "set"})
    assert hist.chosen == ["ghost", "get", "set"]  # set chosen when the top had room
    assert _counts(back) == {"get": (12, 111e-6, 12), "set": (1, 2e-6, 1)}
    # a restart that only run_id shows (more calls than before): every total goes on from it
    restarted = cycle("b", {"get": (8, 70), "set": (2, 3), "ghost": (9, 9)}, {"get", "set"})
    assert _counts(restarted) == {"get": (20, 181e-6, 20), "set": (3, 5e-6, 3)}
    again = cycle("b", {"get": (8, 70), "set": (2, 3), "ghost": (9, 9)}, {"get", "set"})
    assert again.samples == restarted.samples
    assert again.blocks == restarted.blocks  # type: ignore[attr-defined]
