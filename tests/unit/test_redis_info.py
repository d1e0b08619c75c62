"""The Redis collector's pure parts: INFO text to families, namespace rules, settings, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from redis import exceptions as rx
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from exporter.collectors.probe_histogram import ProbeHistogram
from exporter.collectors.redis import RedisCollector, _connection_settings
from exporter.collectors.redis_info import families_from_info, parse_info, parse_pairs
from exporter.collectors.redis_namespaces import OTHER, NamespaceRules
from exporter.config import NamespaceSplit, RedisSettings, RedisTarget
from tests.support.registry import registry_of

PRIMARY_INFO = """\
# Server\r
redis_version:7.0.15\r
redis_mode:standalone\r
run_id:7272faa4e48603f1d02db45cda77cecd7093ec2a\r
uptime_in_seconds:263\r
\r
# Clients\r
connected_clients:12\r
maxclients:10000\r
blocked_clients:2\r
\r
# Memory\r
used_memory:941200\r
used_memory_rss:7127040\r
used_memory_peak:1941200\r
maxmemory:0\r
maxmemory_policy:allkeys-lru\r
mem_fragmentation_ratio:7.91\r
\r
# Persistence\r
loading:0\r
rdb_changes_since_last_save:3\r
rdb_last_save_time:1795646742\r
rdb_last_bgsave_status:err\r
aof_enabled:0\r
aof_last_write_status:ok\r
\r
# Stats\r
total_connections_received:3\r
total_commands_processed:2000\r
total_net_input_bytes:59\r
total_net_output_bytes:14\r
rejected_connections:4\r
expired_keys:5\r
evicted_keys:6\r
keyspace_hits:700\r
keyspace_misses:300\r
total_error_replies:2\r
\r
# Replication\r
role:master\r
connected_slaves:1\r
slave0:ip=10.0.0.2,port=6380,state=online,offset=900,lag=1\r
master_repl_offset:1000\r
\r
# Commandstats\r
cmdstat_get:calls=1500,usec=2500,usec_per_call=1.67,rejected_calls=1,failed_calls=0\r
cmdstat_client|setname:calls=1,usec=2,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r
\r
# Errorstats\r
errorstat_WRONGTYPE:count=2\r
\r
# Latencystats\r
latency_percentiles_usec_get:p50=1.003,p99=12.031,p99.9=40.191\r
\r
# Keyspace\r
db0:keys=20,expires=5,avg_ttl=30000\r
db3:keys=1,expires=0,avg_ttl=0\r
"""


def test_plain_fields_become_counters_and_gauges_in_base_units() -> None:
    registry = registry_of(families_from_info(parse_info(PRIMARY_INFO)))
    value = registry.get_sample_value
    assert value("perf_redis_keyspace_hits_total") == 700
    assert value("perf_redis_keyspace_misses_total") == 300
    assert value("perf_redis_evicted_keys_total") == 6
    assert value("perf_redis_expired_keys_total") == 5
    assert value("perf_redis_memory_used_bytes") == 941200
    assert value("perf_redis_memory_peak_bytes") == 1941200
    assert value("perf_redis_memory_max_bytes") == 0
    assert value("perf_redis_memory_fragmentation_ratio") == 7.91
    assert value("perf_redis_clients_blocked") == 2
    assert value("perf_redis_rejected_connections_total") == 4
    assert value("perf_redis_commands_processed_total") == 2000
    assert value("perf_redis_rdb_last_bgsave_ok") == 0
    assert value("perf_redis_aof_last_write_ok") == 1
    assert value("perf_redis_replication_is_replica") == 0
    assert value("perf_redis_maxmemory_policy_info", {"policy": "allkeys-lru"}) == 1
    assert value("perf_redis_version_info", {"version": "7.0.15", "mode": "standalone"}) == 1


def test_per_command_error_db_and_replica_sections() -> None:
    value = registry_of(families_from_info(parse_info(PRIMARY_INFO))).get_sample_value
    assert value("perf_redis_command_calls_total", {"cmd": "get"}) == 1500
    assert value("perf_redis_command_duration_seconds_total", {"cmd": "get"}) == pytest.approx(
        0.0025
    )
    assert value("perf_redis_command_rejected_calls_total", {"cmd": "get"}) == 1
    assert value("perf_redis_command_calls_total", {"cmd": "client|setname"}) == 1
    assert value(
        "perf_redis_command_latency_percentile_seconds", {"cmd": "get", "percentile": "99.9"}
    ) == pytest.approx(40.191e-6)
    assert value(
        "perf_redis_command_latency_percentile_seconds", {"cmd": "get", "percentile": "50"}
    ) == pytest.approx(1.003e-6)
    assert value("perf_redis_errors_total", {"error": "WRONGTYPE"}) == 2
    assert value("perf_redis_db_keys", {"db": "3"}) == 1
    assert value("perf_redis_db_keys_expiring", {"db": "0"}) == 5
    assert value("perf_redis_db_avg_ttl_seconds", {"db": "0"}) == 30
    assert value("perf_redis_replication_replica_lag_bytes", {"replica": "10.0.0.2:6380"}) == 100
    assert value("perf_redis_replication_replica_lag_seconds", {"replica": "10.0.0.2:6380"}) == 1


def test_replica_reports_its_link_and_absent_sections_are_left_out() -> None:
    text = "role:slave\r\nmaster_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\n"
    value = registry_of(families_from_info(parse_info(text))).get_sample_value
    assert value("perf_redis_replication_is_replica") == 1
    assert value("perf_redis_replication_master_link_up") == 0
    assert value("perf_redis_keyspace_hits_total") is None
    assert value("perf_redis_command_calls_total", {"cmd": "get"}) is None


def test_parse_pairs_skips_malformed_parts() -> None:
    assert parse_pairs("calls=2,junk,usec=5") == {"calls": "2", "usec": "5"}


def test_default_namespaces_are_the_reference_applications() -> None:
    rules = NamespaceRules(None, limit=50)
    assert rules.classify(b"cache:api_response:9f2c") == "api_response"
    assert rules.classify(b"cache:system_stats:x") == "system_stats"
    assert rules.classify(b"cache:unknown:x") == OTHER
    assert rules.classify(b"cache:api_response") == OTHER  # the prefix needs its separator
    assert len(rules.fixed_labels()) == 7


def test_wildcard_prefix_stops_at_the_next_pattern_character() -> None:
    rules = NamespaceRules(["cache:*:", "session*"], limit=50)
    assert rules.classify(b"cache:llm_response:abc:def") == "llm_response"
    assert rules.classify(b"cache:nocolon") == OTHER
    assert rules.classify(b"session:42") == "session"
    assert rules.fixed_labels() == ["session"]


def test_several_stars_join_their_matches_and_colliding_literals_keep_their_prefix() -> None:
    rules = NamespaceRules(["tenant:*:cache:*:", "a:users:", "b:users:", "jobs."], limit=50)
    assert rules.classify(b"tenant:acme:cache:api_response:1") == "acme:api_response"
    assert rules.classify(b"a:users:1") == "a:users"
    assert rules.classify(b"b:users:1") == "b:users"
    assert rules.classify(b"jobs.42") == "jobs"
    assert sorted(rules.fixed_labels()) == ["a:users", "b:users", "jobs"]


def test_split_rule_and_label_limit() -> None:
    rules = NamespaceRules(NamespaceSplit(separator="/", depth=2), limit=2)
    rules.new_pass()
    assert rules.classify(b"a/b/c") == "a/b"
    assert rules.classify(b"a/b") == OTHER
    assert rules.classify(b"x/y/z") == "x/y"
    assert rules.classify(b"p/q/r") == OTHER  # a third label would exceed the limit
    assert rules.classify(b"a/b/other") == "a/b"
    rules.new_pass()
    assert rules.classify(b"p/q/r") == "p/q"


def test_probe_histogram_is_cumulative() -> None:
    histogram = ProbeHistogram("perf_redis_probe_duration_seconds", "h", (0.001, 0.01))
    for seconds in (0.0005, 0.005, 0.005, 3.0):
        histogram.observe(seconds)
    family = histogram.family()
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("perf_redis_probe_duration_seconds_bucket", "0.001")] == 1
    assert samples[("perf_redis_probe_duration_seconds_bucket", "0.01")] == 3
    assert samples[("perf_redis_probe_duration_seconds_bucket", "+Inf")] == 4
    assert samples[("perf_redis_probe_duration_seconds_count", None)] == 4
    # the samples prometheus_client makes of the same buckets, with label dicts shared by every
    # probe (the summary board keeps two collections of them per target)
    running = [("0.001", 1.0), ("0.01", 3.0), ("+Inf", 4.0)]
    made = HistogramMetricFamily(family.name, "h", buckets=running, sum_value=histogram.total)
    assert family.samples == made.samples
    other = ProbeHistogram("perf_redis_probe_duration_seconds", "h", (0.001, 0.01)).family()
    assert all(x.labels is y.labels for x, y in zip(family.samples, other.samples, strict=True))


def test_password_file_beats_the_url_and_never_reaches_the_address(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    target = RedisTarget(name="c", url="redis://monitor:in-url@cache1:6380/2", password_file=secret)
    cls, kwargs, where = _connection_settings(target, 3.0, target.password())
    assert cls is Connection
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache1", 6380, 2)
    assert (kwargs["username"], kwargs["password"]) == ("monitor", "from-file")
    assert where == "cache1:6380"
    url_only = RedisTarget(name="c", url="redis://:in-url@cache1/0")
    assert _connection_settings(url_only, 3.0, None)[1]["password"] == "in-url"


def test_tls_host_port_and_unix_targets(tmp_path: Path) -> None:
    tls = RedisTarget(name="c", host="cache1", port=6390, db=1, tls={"ca": tmp_path / "ca.pem"})
    cls, kwargs, where = _connection_settings(tls, 3.0, None)
    assert cls is SSLConnection
    assert kwargs["ssl_ca_certs"] == str(tmp_path / "ca.pem")
    assert (kwargs["db"], where) == (1, "cache1:6390")
    rediss = RedisTarget(name="c", url="rediss://h:1/0")
    assert _connection_settings(rediss, 1, None)[0] is SSLConnection
    unix = _connection_settings(RedisTarget(name="c", url="unix:///run/redis.sock?db=4"), 1, None)
    assert unix[0] is UnixDomainSocketConnection
    assert (unix[1]["path"], unix[1]["db"]) == ("/run/redis.sock", 4)


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (rx.AuthenticationError("WRONGPASS invalid username-password pair"), "auth"),
        (rx.NoPermissionError("this user has no permissions to run the 'info' command"), "auth"),
        (rx.BusyLoadingError("Redis is loading the dataset in memory"), "connection"),
        (
            rx.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
            "connection",
        ),
        (rx.TimeoutError("Timeout reading from 127.0.0.1:1"), "timeout"),
        (rx.ResponseError("ERR unknown command"), "query"),
        (ConnectionResetError(104, "reset"), "connection"),
    ],
)
async def test_errors_map_to_reasons_without_the_password(exc: Exception, reason: str) -> None:
    collector = RedisCollector(
        RedisTarget(name="c", url="redis://u:hunter2@h:1/0"), RedisSettings()
    )
    collector.connection = await collector.connect()  # learns the password it must scrub
    error = collector.translate(type(exc)(f"{exc} hunter2"))
    assert error is not None
    await collector.close()
    assert error.reason == reason
    assert "hunter2" not in error.message
    assert error.message.endswith(".")


def test_commandstats_are_add_metrics_own_with_one_label_dict_per_command() -> None:
    """The four per-command families are made sample by sample, one ``{"cmd": ...}`` dict
    shared by a command's samples: each equals what add_metric makes from the same lines,
    including a command without rejected/failed counts (before Redis 6.2) and a malformed line."""
    info = parse_info(
        PRIMARY_INFO
        + "cmdstat_set:calls=3,usec=9,usec_per_call=3.00\r\n"
        + "cmdstat_broken:calls=x,usec=1\r\n"
    )
    families = {
        f.name: f
        for f in families_from_info(info)
        if f.name.startswith("perf_redis_command_") and f.type == "counter"
    }
    assert sorted(families) == [
        "perf_redis_command_calls",
        "perf_redis_command_duration_seconds",
        "perf_redis_command_failed_calls",
        "perf_redis_command_rejected_calls",
    ]
    fields = {
        "perf_redis_command_calls": ("calls", 1.0),
        "perf_redis_command_duration_seconds": ("usec", 1e6),
        "perf_redis_command_rejected_calls": ("rejected_calls", 1.0),
        "perf_redis_command_failed_calls": ("failed_calls", 1.0),
    }
    for name, (field, divisor) in fields.items():
        expected = CounterMetricFamily(name, families[name].documentation, labels=["cmd"])
        for cmd in ("get", "client|setname", "set"):
            stats = parse_pairs(info[f"cmdstat_{cmd}"])
            if field in stats:
                expected.add_metric([cmd], float(stats[field]) / divisor)
        assert families[name] == expected, name
    shared: dict[str, dict[str, str]] = {}
    for family in families.values():
        for sample in family.samples:
            assert shared.setdefault(sample.labels["cmd"], sample.labels) is sample.labels
