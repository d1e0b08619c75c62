"""LATENCY HISTOGRAM, slowlog and COMMANDLOG against real Redis 7 and Valkey 8.1 servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter.collectors.base import CollectError
from exporter.collectors.redis_latency import BOUNDS_USEC
from exporter.config import RedisSettings
from tests.support.cycles import collect_until_ok
from tests.support.redis_collector import admin, command_calls, is_valkey, make_collector
from tests.support.registry import sample_value
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HIST = "perf_redis_command_latency_seconds"
#: What the namespace scan runs inside Redis: counted in commandstats, not sent by the collector.
INSIDE_SCRIPT = ("scan", "ttl", "memory|usage")


def _server_histogram(server: RedisServer, cmd: str) -> tuple[int, dict[int, int]]:
    reply = admin(server).execute_command("LATENCY", "HISTOGRAM", cmd)
    body = reply[cmd.encode()]  # redis-py hands the reply over as a mapping
    return int(body[b"calls"]), {int(b): int(n) for b, n in body[b"histogram_usec"].items()}


async def test_latency_histogram_matches_the_servers_histogram_and_commandstats(
    own_redis: RedisServer,
) -> None:
    client = admin(own_redis)
    client.set("k", "v")
    for _ in range(40):
        client.get("k")
    collector = make_collector(own_redis, namespaces=[])
    result = await collector.collect()
    await collector.close()
    calls, buckets = _server_histogram(own_redis, "get")
    usec = client.info("commandstats")["cmdstat_get"]["usec"]

    assert calls == 40
    assert sample_value(result, f"{HIST}_count", {"cmd": "get"}) == 40
    assert sample_value(result, f"{HIST}_bucket", {"cmd": "get", "le": "+Inf"}) == 40
    assert sample_value(result, f"{HIST}_sum", {"cmd": "get"}) == pytest.approx(usec / 1e6)
    for bound in BOUNDS_USEC:
        # the server's cumulative count at the largest of its buckets within the bound (the
        # server names the bucket ending at 32 us "33", at 64 us "66", ...)
        expected = max((n for b, n in buckets.items() if b <= bound * 1.04), default=0)
        le = repr(bound / 1e6)
        assert sample_value(result, f"{HIST}_bucket", {"cmd": "get", "le": le}) == expected, bound
    assert sample_value(result, f"{HIST}_count", {"cmd": "set"}) == 1


async def test_latency_histogram_never_goes_down_across_resetstat_and_restart(
    own_redis: RedisServer,
) -> None:
    client = admin(own_redis)
    for _ in range(30):
        client.get("k")
    collector = make_collector(own_redis, namespaces=[], interval=1)
    first = await collector.collect()
    client.config_resetstat()
    for _ in range(5):
        client.get("k")
    second = await collector.collect()
    own_redis.restart()
    with pytest.raises(CollectError):
        await collector.collect()  # the old connection is gone
    for _ in range(2):
        admin(own_redis).get("k")
    # the backoff is capped at the interval (1 s)
    third = await collect_until_ok(collector, timeout=10, poll=0.2)
    await collector.close()

    assert sample_value(first, f"{HIST}_count", {"cmd": "get"}) == 30
    assert sample_value(second, f"{HIST}_count", {"cmd": "get"}) == 35
    assert sample_value(third, f"{HIST}_count", {"cmd": "get"}) == 37
    sums = [sample_value(r, f"{HIST}_sum", {"cmd": "get"}) for r in (first, second, third)]
    assert sums == sorted(sums)


async def test_latency_histogram_covers_only_the_top_commands_chosen(
    own_redis: RedisServer,
) -> None:
    client = admin(own_redis)
    for i in range(6):
        client.set(f"k{i}", "v")
    for _ in range(20):
        client.get("k0")
    client.incr("n")
    collector = make_collector(own_redis, settings={"latency_top_n": 2}, namespaces=[])
    result = await collector.collect()
    await collector.close()

    # get (20) and set (6) lead; incr, and the collector's own commands, are left out
    assert collector._latency.chosen == ["get", "set"]
    assert sample_value(result, f"{HIST}_count", {"cmd": "get"}) == 20
    assert sample_value(result, f"{HIST}_count", {"cmd": "incr"}) is None


async def test_slowlog_entries_counted_by_id_survive_a_slowlog_reset(
    own_redis: RedisServer,
) -> None:
    client = admin(own_redis)
    collector = make_collector(own_redis, namespaces=[])
    await collector.collect()
    client.config_set("slowlog-log-slower-than", 0)  # every command is slow from now on
    for _ in range(4):
        client.get("k")
    second = await collector.collect()
    client.slowlog_reset()
    for _ in range(3):
        client.get("k")
    third = await collector.collect()
    length_after = client.slowlog_len()
    await collector.close()

    assert sample_value(second, "perf_redis_slowlog_entries_total", {"cmd": "get"}) == 4
    assert sample_value(third, "perf_redis_slowlog_entries_total", {"cmd": "get"}) == 7
    length = sample_value(third, "perf_redis_slowlog_length")
    # the GET sees the log before the collector's later commands are logged: 3 GETs, the
    # cycle's INFO and PING; the CONFIG SET went with SLOWLOG RESET
    assert length is not None and 3 <= length < length_after
    names = {m.name for m in third.families}
    text = str([s for m in third.families for s in m.samples if "slowlog" in s.name])
    assert "k'" not in text and '"k"' not in text  # arguments are never exported
    assert ("perf_redis_commandlog_entries" in names) == is_valkey(own_redis)


async def test_only_the_commands_a_server_has_are_sent(own_redis: RedisServer) -> None:
    client = admin(own_redis)
    # the admin connection's own handshake may be refused (CLIENT SETINFO on Redis 7.0)
    errors_before = client.info("errorstats")
    collector = make_collector(own_redis, namespaces=[])
    for _ in range(2):
        await collector.collect()
    await collector.close()
    info = client.info("commandstats")

    assert client.info("errorstats") == errors_before
    assert "cmdstat_latency|histogram" in info
    if is_valkey(own_redis):
        assert "cmdstat_commandlog|get" in info and "cmdstat_slowlog|get" not in info
    else:
        assert "cmdstat_slowlog|get" in info and "cmdstat_commandlog|get" not in info


async def test_valkey_large_replies_are_counted_per_command(own_redis: RedisServer) -> None:
    if not is_valkey(own_redis):
        # Redis has no COMMANDLOG: the series must not exist there at all
        result = await make_collector(own_redis, namespaces=[]).collect()
        assert sample_value(result, "perf_redis_commandlog_length", {"type": "large-reply"}) is None
        return
    client = admin(own_redis)
    client.set("big", "x" * 2000)
    collector = make_collector(own_redis, namespaces=[])
    await collector.collect()
    client.config_set("commandlog-reply-larger-than", 1000)
    for _ in range(3):
        client.get("big")
    client.get("absent")
    result = await collector.collect()
    await collector.close()

    labels = {"type": "large-reply", "cmd": "get"}
    assert sample_value(result, "perf_redis_commandlog_entries_total", labels) == 3
    assert sample_value(result, "perf_redis_commandlog_length", {"type": "large-request"}) == 0


async def test_an_acl_without_latency_and_slowlog_costs_one_refusal_per_connection(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    client = admin(own_redis)
    client.execute_command(
        "ACL", "SETUSER", "old-acl", "on", ">pw", "%R~*", "-@all", "+ping", "+info",
        "+client|setname",
    )  # fmt: skip
    secret = tmp_path / "pw"
    secret.write_text("pw\n")
    collector = make_collector(own_redis, namespaces=[], username="old-acl", password_file=secret)
    results = [await collector.collect()]
    refused_first = client.info("errorstats")["errorstat_NOPERM"]["count"]
    results += [await collector.collect() for _ in range(2)]
    await collector.close()

    # the first pipeline is refused command by command (LATENCY, and SLOWLOG GET or the three
    # COMMANDLOG GETs; no LEN follows a refused GET); later cycles on the connection send none
    assert refused_first == (4 if is_valkey(own_redis) else 2)
    assert client.info("errorstats")["errorstat_NOPERM"]["count"] == refused_first
    for result in results:
        assert sample_value(result, "perf_redis_keyspace_hits_total") is not None
        assert sample_value(result, f"{HIST}_count", {"cmd": "info"}) is None
        assert sample_value(result, "perf_redis_slowlog_length") is None


async def test_a_cycle_with_the_defaults_sends_no_len_and_six_commands_on_redis(
    own_redis: RedisServer,
) -> None:
    client = admin(own_redis)
    pipe = client.pipeline(transaction=False)
    for i in range(6000):  # more than one cycle's 2,000 keys: the scan takes its whole budget
        pipe.set(f"cache:api_response:{i}", "v")
    pipe.execute()
    collector = make_collector(own_redis)  # the default budget, the default namespaces
    await collector.collect()  # connects: CLIENT SETNAME and SCRIPT LOAD, once
    client.config_resetstat()
    result = await collector.collect()
    sent = command_calls(client)
    await collector.close()

    for cmd in (*INSIDE_SCRIPT, "config|resetstat"):
        sent.pop(cmd, None)
    # 2 script calls of 1,000 keys, INFO, PING and one pipeline: the GET tells the log's length
    logs = {"commandlog|get": 3} if is_valkey(own_redis) else {"slowlog|get": 1}
    assert sent == {"evalsha": 2, "info": 1, "ping": 1, "latency|histogram": 1, **logs}
    if not is_valkey(own_redis):
        assert sum(sent.values()) == 6  # redis_exporter sends 6 per scrape
    assert sample_value(result, "perf_redis_slowlog_length") == client.slowlog_len() == 0


def _fill_log(client: Any, entries: int, *, threshold: str, value: int, command: Any) -> None:
    """``entries`` new entries in a log, then its logging off so its length stays put."""
    client.config_set(threshold, value)
    pipe = client.pipeline(transaction=False)
    for _ in range(entries):
        command(pipe)
    pipe.execute()
    client.config_set(threshold, -1)


async def test_a_full_get_asks_len_and_every_entry_is_counted_once(
    own_redis: RedisServer,
) -> None:
    client = admin(own_redis)
    client.config_set("slowlog-max-len", 1000)  # more than the 129 entries a GET asks for
    client.set("big", "x" * 2000)
    slow = {"threshold": "slowlog-log-slower-than", "value": 0}
    _fill_log(client, 300, command=lambda pipe: pipe.get("k"), **slow)
    if is_valkey(own_redis):
        client.config_set("commandlog-large-reply-max-len", 1000)
        big = {"threshold": "commandlog-reply-larger-than", "value": 1000}
        _fill_log(client, 200, command=lambda pipe: pipe.get("big"), **big)
    collector = make_collector(own_redis, namespaces=[])
    before = command_calls(client)
    first = await collector.collect()
    after = command_calls(client)
    newest_first = client.slowlog_get(1)[0]["id"]
    _fill_log(client, 250, command=lambda pipe: pipe.get("k"), **slow)
    second = await collector.collect()
    newest_second = client.slowlog_get(1)[0]["id"]
    length = client.slowlog_len()
    await collector.close()

    fetched = RedisSettings().slowlog_fetch + 1
    # the full GET cost one LEN in a second round trip; the empty large-request log none
    if is_valkey(own_redis):
        assert after.get("commandlog|len", 0) - before.get("commandlog|len", 0) == 2
        big_length = client.execute_command("COMMANDLOG", "LEN", "large-reply")
        labels = {"type": "large-reply"}
        assert sample_value(second, "perf_redis_commandlog_length", labels) == big_length == 200
        assert sample_value(second, "perf_redis_commandlog_length", {"type": "large-request"}) == 0
    else:
        assert after.get("slowlog|len", 0) - before.get("slowlog|len", 0) == 1
    # 300 GETs and the CONFIG SET before them (the one after turned logging off: not logged)
    assert sample_value(first, "perf_redis_slowlog_length") == 301
    assert sample_value(second, "perf_redis_slowlog_length") == length == 301 + 251
    # the first cycle counts all 129 entries it fetched; the second the 251 new ones, of which
    # the 122 older than its fetch are cmd="other"
    totals = [
        {s.labels["cmd"]: s.value for m in r.families for s in m.samples
         if s.name == "perf_redis_slowlog_entries_total"}
        for r in (first, second)
    ]  # fmt: skip
    assert sum(totals[0].values()) == fetched and totals[0]["other"] == 0
    new = newest_second - newest_first
    assert new == 251
    assert sum(totals[1].values()) == fetched + new
    assert totals[1]["other"] == new - fetched


async def test_after_the_first_cycle_info_rides_in_the_pipeline_two_round_trips_a_cycle(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.asyncio.connection import AbstractConnection

    sends: list[int] = []
    original = AbstractConnection.send_packed_command

    async def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sends.append(1)
        await original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    client = admin(own_redis)
    client.set("k", "v")
    collector = make_collector(own_redis, namespaces=[])
    await collector.collect()  # the first: CLIENT SETNAME, INFO alone (which server?), ...
    first = len(sends)
    client.config_resetstat()
    client.get("k")
    result = await collector.collect()
    second = len(sends) - first
    sent = command_calls(client)
    await collector.close()

    # one pipeline (INFO, LATENCY HISTOGRAM, the log GETs) and the PING alone, which it times
    assert second == 2
    assert first >= 3
    logs = {"commandlog|get": 3} if is_valkey(own_redis) else {"slowlog|get": 1}
    sent.pop("config|resetstat", None)
    assert sent == {"get": 1, "info": 1, "ping": 1, "latency|histogram": 1, **logs}
    assert sample_value(result, f"{HIST}_count", {"cmd": "get"}) == 1


async def test_a_command_first_called_between_cycles_is_in_the_next_cycles_histogram(
    own_redis: RedisServer,
) -> None:
    # LATENCY HISTOGRAM goes out with INFO, before that INFO can choose: while the top has
    # room it asks for every command, so one first called since the last cycle is not late
    client = admin(own_redis)
    client.set("k", "v")
    collector = make_collector(own_redis, settings={"latency_top_n": 10}, namespaces=[])
    await collector.collect()
    for _ in range(7):
        client.incr("n")  # redis-py sends INCRBY
    second = await collector.collect()
    assert sample_value(second, f"{HIST}_count", {"cmd": "incrby"}) == 7
    # a full top asks for its commands only: a newcomer stays out, as with the choice made
    # from the same INFO
    full = make_collector(own_redis, settings={"latency_top_n": 2}, namespaces=[])
    await full.collect()
    chosen = list(full._latency.chosen)
    for _ in range(50):
        client.hset("h", "f", "v")
    later = await full.collect()
    await collector.close()
    await full.close()
    assert full._latency.chosen == chosen and "hset" not in chosen
    assert sample_value(later, f"{HIST}_count", {"cmd": "hset"}) is None
    assert {
        s.labels["cmd"] for m in later.families for s in m.samples if s.name == f"{HIST}_count"
    } == set(chosen)


async def test_info_refused_in_the_pipeline_fails_the_cycle_as_auth(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    # INFO is what a cycle needs: refused inside the pipeline it fails the cycle as it does
    # alone (NOPERM is the operator's ACL), and is not taken for an optional command
    client = admin(own_redis)
    client.execute_command(
        "ACL", "SETUSER", "narrowed", "on", ">pw", "%R~*", "+@all",
    )  # fmt: skip
    secret = tmp_path / "pw"
    secret.write_text("pw\n")
    collector = make_collector(
        own_redis, namespaces=[], username="narrowed", password_file=secret, interval=1
    )
    await collector.collect()
    client.execute_command("ACL", "SETUSER", "narrowed", "-info")
    with pytest.raises(CollectError) as failed:
        await collector.collect()
    client.execute_command("ACL", "SETUSER", "narrowed", "+info")
    again = await collect_until_ok(collector, timeout=10, poll=0.2)
    await collector.close()
    assert failed.value.reason == "auth"
    assert "'info' command" in str(failed.value)
    assert sample_value(again, "perf_redis_keyspace_hits_total") is not None
