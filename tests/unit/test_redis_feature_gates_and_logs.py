"""Version gates, the latency histogram's accounting and the slowlog's counting by id."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily

from exporter.collectors.redis_latency import (
    LE,
    LatencyHistograms,
    ServerKind,
    power_of_two_below,
)
from exporter.collectors.redis_slowlog import EntryLog, is_full


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


def test_histogram_samples_are_add_metrics_own_with_label_dicts_shared_by_targets() -> None:
    # the summary board keeps two collections of these buckets per Redis target: every target
    # and cycle reuses one label dict per (command, bound) instead of making its own
    one, two = LatencyHistograms(top_n=5), LatencyHistograms(top_n=5)
    info = {
        "run_id": "a",
        "cmdstat_get": "calls=10,usec=50,usec_per_call=5.0",
        "cmdstat_set": "calls=4,usec=40,usec_per_call=10.0",
    }
    reply = {
        b"get": {b"calls": 10, b"histogram_usec": {1: 4, 33: 10}},
        b"set": {b"calls": 4, b"histogram_usec": {8: 1, 2048: 4}},
    }
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
