"""Redis ``INFO`` text to metric families, driven by declarative tables.

Read :data:`FIELDS` and you know every plain series: one row maps an INFO field to a metric
name, a type, a scale to base units and its HELP. The sections that hold one line per
command, error class, database or replica (commandstats, latencystats, errorstats, keyspace,
replication) get a short function each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from exporter.collectors.base import parse_number
from exporter.collectors.field_metric import FieldMetric
from exporter.snapshot import sample_name

Info = dict[str, str]


def parse_info(text: str) -> Info:
    """``field:value`` lines of every section into one flat mapping (field names are unique)."""
    info: Info = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep:
            info[key] = value
    return info


def parse_pairs(value: str) -> dict[str, str]:
    """``calls=2,usec=5,usec_per_call=2.50`` into a mapping; malformed parts are skipped."""
    out: dict[str, str] = {}
    for part in value.split(","):
        key, sep, val = part.partition("=")
        if sep:
            out[key] = val
    return out


@dataclass(frozen=True)
class InfoMetric(FieldMetric):
    """One INFO field published as one unlabelled series."""

    #: Turns the INFO text into the value when it is not a number (``ok`` -> 1).
    convert: Callable[[str], float | None] | None = None


def _is(expected: str) -> Callable[[str], float | None]:
    return lambda text: 1.0 if text == expected else 0.0


FIELDS: tuple[InfoMetric, ...] = (
    # cache effectiveness
    InfoMetric(
        "keyspace_hits",
        "perf_redis_keyspace_hits",
        "counter",
        "Key lookups that found the key (INFO keyspace_hits). Includes the TTL checks of this "
        "exporter's namespace scan: subtract perf_redis_exporter_keyspace_hits_total.",
    ),
    InfoMetric(
        "keyspace_misses",
        "perf_redis_keyspace_misses",
        "counter",
        "Key lookups that did not find the key (INFO keyspace_misses). Includes the exporter's "
        "own lookups of keys that vanished mid-scan: subtract "
        "perf_redis_exporter_keyspace_misses_total.",
    ),
    InfoMetric(
        "evicted_keys",
        "perf_redis_evicted_keys",
        "counter",
        "Keys removed because maxmemory was reached.",
    ),
    InfoMetric("expired_keys", "perf_redis_expired_keys", "counter", "Keys removed by their TTL."),
    # memory
    InfoMetric("used_memory", "perf_redis_memory_used_bytes", "gauge", "Bytes allocated by Redis."),
    InfoMetric(
        "used_memory_rss",
        "perf_redis_memory_rss_bytes",
        "gauge",
        "Resident set size of the Redis process in bytes.",
    ),
    InfoMetric(
        "used_memory_peak",
        "perf_redis_memory_peak_bytes",
        "gauge",
        "Highest perf_redis_memory_used_bytes since the server started.",
    ),
    InfoMetric(
        "maxmemory",
        "perf_redis_memory_max_bytes",
        "gauge",
        "The maxmemory limit in bytes; 0 means unlimited (no eviction, bounded only by the host).",
    ),
    InfoMetric(
        "mem_fragmentation_ratio",
        "perf_redis_memory_fragmentation_ratio",
        "gauge",
        "RSS divided by allocated memory; well above 1 means fragmentation, below 1 swapping.",
    ),
    # clients and load
    InfoMetric(
        "connected_clients",
        "perf_redis_clients_connected",
        "gauge",
        "Client connections, excluding replicas.",
    ),
    InfoMetric(
        "blocked_clients",
        "perf_redis_clients_blocked",
        "gauge",
        "Clients waiting in a blocking call (BLPOP, XREAD BLOCK, WAIT, ...).",
    ),
    InfoMetric("maxclients", "perf_redis_clients_max", "gauge", "The maxclients limit."),
    InfoMetric(
        "rejected_connections",
        "perf_redis_rejected_connections",
        "counter",
        "Connections refused because maxclients was reached.",
    ),
    InfoMetric(
        "total_connections_received",
        "perf_redis_connections_received",
        "counter",
        "Connections accepted by the server.",
    ),
    InfoMetric(
        "total_commands_processed",
        "perf_redis_commands_processed",
        "counter",
        "Commands processed by the server (rate() of it is ops/s).",
    ),
    InfoMetric(
        "total_net_input_bytes",
        "perf_redis_net_input_bytes",
        "counter",
        "Bytes read from the network, replication included.",
    ),
    InfoMetric(
        "total_net_output_bytes",
        "perf_redis_net_output_bytes",
        "counter",
        "Bytes written to the network, replication included.",
    ),
    InfoMetric(
        "total_error_replies",
        "perf_redis_error_replies",
        "counter",
        "Error replies sent to clients (rejected and failed commands).",
    ),
    InfoMetric("uptime_in_seconds", "perf_redis_uptime_seconds", "gauge", "Seconds since start."),
    # persistence
    InfoMetric(
        "rdb_changes_since_last_save",
        "perf_redis_rdb_changes_since_last_save",
        "gauge",
        "Writes not yet in an RDB snapshot.",
    ),
    InfoMetric(
        "rdb_last_save_time",
        "perf_redis_rdb_last_save_timestamp_seconds",
        "gauge",
        "Unix time of the last successful RDB save.",
    ),
    InfoMetric(
        "rdb_last_bgsave_status",
        "perf_redis_rdb_last_bgsave_ok",
        "gauge",
        "1 if the last RDB background save succeeded, 0 if it failed.",
        convert=_is("ok"),
    ),
    InfoMetric(
        "rdb_bgsave_in_progress",
        "perf_redis_rdb_bgsave_in_progress",
        "gauge",
        "1 while an RDB background save runs.",
    ),
    InfoMetric(
        "aof_enabled", "perf_redis_aof_enabled", "gauge", "1 if the append-only file is on."
    ),
    InfoMetric(
        "aof_last_write_status",
        "perf_redis_aof_last_write_ok",
        "gauge",
        "1 if the last write to the append-only file succeeded.",
        convert=_is("ok"),
    ),
    InfoMetric(
        "aof_last_bgrewrite_status",
        "perf_redis_aof_last_rewrite_ok",
        "gauge",
        "1 if the last append-only file rewrite succeeded.",
        convert=_is("ok"),
    ),
    # replication
    InfoMetric(
        "role",
        "perf_redis_replication_is_replica",
        "gauge",
        "1 if this server replicates from a primary, 0 if it is a primary.",
        convert=_is("slave"),
    ),
    InfoMetric(
        "connected_slaves",
        "perf_redis_replication_connected_replicas",
        "gauge",
        "Replicas connected to this server.",
    ),
    InfoMetric(
        "master_repl_offset",
        "perf_redis_replication_offset_bytes",
        "gauge",
        "Replication offset of this server in bytes.",
    ),
    InfoMetric(
        "master_link_status",
        "perf_redis_replication_master_link_up",
        "gauge",
        "On a replica: 1 if the link to the primary is up.",
        convert=_is("up"),
    ),
    InfoMetric(
        "master_last_io_seconds_ago",
        "perf_redis_replication_master_last_io_seconds",
        "gauge",
        "On a replica: seconds since the last interaction with the primary.",
    ),
)


def _plain_families(info: Info) -> list[Metric]:
    families: list[Metric] = []
    for field in FIELDS:
        text = info.get(field.source)
        if text is None:
            continue
        value = field.convert(text) if field.convert else parse_number(text)
        if value is None:
            continue
        family = field.family()
        family.add_metric([], value * field.scale)
        families.append(family)
    return families


def _info_families(info: Info) -> list[Metric]:
    out: list[Metric] = []
    version = GaugeMetricFamily(
        "perf_redis_version_info",
        "Always 1; the labels say which Redis (or Valkey) version runs and in which mode.",
        labels=["version", "mode"],
    )
    # Valkey reports redis_version 7.2.4 for clients' sake; its own version is valkey_version
    own = info.get("valkey_version") or info.get("redis_version", "")
    mode = info.get("redis_mode") or info.get("server_mode", "")  # Valkey: server_mode
    version.add_metric([own, mode], 1.0)
    out.append(version)
    if "maxmemory_policy" in info:
        policy = GaugeMetricFamily(
            "perf_redis_maxmemory_policy_info",
            "Always 1; the policy label is what Redis does when maxmemory is reached.",
            labels=["policy"],
        )
        policy.add_metric([info["maxmemory_policy"]], 1.0)
        out.append(policy)
    return out


def _commandstats(info: Info) -> list[Metric]:
    calls = CounterMetricFamily(
        "perf_redis_command_calls", "Calls per command (INFO commandstats).", labels=["cmd"]
    )
    duration = CounterMetricFamily(
        "perf_redis_command_duration_seconds",
        "Seconds spent executing each command, network time excluded (INFO commandstats).",
        labels=["cmd"],
    )
    rejected = CounterMetricFamily(
        "perf_redis_command_rejected_calls",
        "Calls refused before execution (ACL, OOM, wrong arity, ...), per command.",
        labels=["cmd"],
    )
    failed = CounterMetricFamily(
        "perf_redis_command_failed_calls",
        "Calls that executed and returned an error, per command.",
        labels=["cmd"],
    )
    # the samples add_metric would make, with one {"cmd": ...} dict shared by a command's four
    # families (the summary board keeps some of them a while)
    calls_name, duration_name, rejected_name, failed_name = map(
        sample_name, (calls, duration, rejected, failed)
    )
    for key, value in info.items():
        if not key.startswith("cmdstat_"):
            continue
        stats = parse_pairs(value)
        n_calls, usec = parse_number(stats.get("calls")), parse_number(stats.get("usec"))
        if n_calls is None or usec is None:
            continue
        labels = {"cmd": key.removeprefix("cmdstat_")}
        calls.samples.append(Sample(calls_name, labels, n_calls))
        duration.samples.append(Sample(duration_name, labels, usec / 1e6))
        n_rejected, n_failed = (
            parse_number(stats.get("rejected_calls")),
            parse_number(stats.get("failed_calls")),
        )
        if n_rejected is not None:
            rejected.samples.append(Sample(rejected_name, labels, n_rejected))
        if n_failed is not None:
            failed.samples.append(Sample(failed_name, labels, n_failed))
    return [f for f in (calls, duration, rejected, failed) if f.samples]


def _latencystats(info: Info) -> list[Metric]:
    # The label is `percentile`, not `quantile`: `promtool check metrics` rejects a `quantile`
    # label on anything but a summary ("non-summary metrics should not have quantile label").
    latency = GaugeMetricFamily(
        "perf_redis_command_latency_percentile_seconds",
        "Latency percentiles per command since the last CONFIG RESETSTAT (INFO latencystats, "
        "Redis 7+); percentile is 50, 99, 99.9, ...",
        labels=["cmd", "percentile"],
    )
    for key, value in info.items():
        if not key.startswith("latency_percentiles_usec_"):
            continue
        cmd = key.removeprefix("latency_percentiles_usec_")
        for name, text in parse_pairs(value).items():
            usec = parse_number(text)
            if name.startswith("p") and usec is not None:
                latency.add_metric([cmd, name[1:]], usec / 1e6)
    return [latency] if latency.samples else []


def _errorstats(info: Info) -> list[Metric]:
    errors = CounterMetricFamily(
        "perf_redis_errors",
        "Error replies by error prefix (ERR, WRONGTYPE, NOPERM, OOM, ...) from INFO errorstats.",
        labels=["error"],
    )
    for key, value in info.items():
        if key.startswith("errorstat_"):
            count = parse_number(parse_pairs(value).get("count"))
            if count is not None:
                errors.add_metric([key.removeprefix("errorstat_")], count)
    return [errors] if errors.samples else []


_AVG_TTL = "Estimated average remaining TTL of the expiring keys per database (0 if none)."

#: The fields of each ``db<N>`` line of INFO keyspace, labelled ``db``.
KEYSPACE: tuple[FieldMetric, ...] = (
    FieldMetric("keys", "perf_redis_db_keys", "gauge", "Keys per database."),
    FieldMetric("expires", "perf_redis_db_keys_expiring", "gauge", "Keys with a TTL per database."),
    FieldMetric("avg_ttl", "perf_redis_db_avg_ttl_seconds", "gauge", _AVG_TTL, 1e-3),
)


def _keyspace(info: Info) -> list[Metric]:
    families = [field.family(["db"]) for field in KEYSPACE]
    for key, value in info.items():
        if not (key.startswith("db") and key[2:].isdigit()):
            continue
        stats = parse_pairs(value)
        for field, family in zip(KEYSPACE, families, strict=True):
            number = parse_number(stats.get(field.source))
            if number is not None:
                family.add_metric([key[2:]], number * field.scale)
    return [f for f in families if f.samples]


def _replicas(info: Info) -> list[Metric]:
    lag_bytes = GaugeMetricFamily(
        "perf_redis_replication_replica_lag_bytes",
        "On a primary: bytes each replica is behind this server's replication offset.",
        labels=["replica"],
    )
    lag_seconds = GaugeMetricFamily(
        "perf_redis_replication_replica_lag_seconds",
        "On a primary: seconds since each replica last acknowledged.",
        labels=["replica"],
    )
    own = parse_number(info.get("master_repl_offset"))
    for key, value in info.items():
        if not (key.startswith("slave") and key[5:].isdigit()):
            continue
        stats = parse_pairs(value)
        replica = f"{stats.get('ip', '')}:{stats.get('port', '')}"
        offset, lag = parse_number(stats.get("offset")), parse_number(stats.get("lag"))
        if own is not None and offset is not None:
            lag_bytes.add_metric([replica], max(0.0, own - offset))
        if lag is not None:
            lag_seconds.add_metric([replica], lag)
    return [f for f in (lag_bytes, lag_seconds) if f.samples]


def families_from_info(info: Info) -> list[Metric]:
    """Every family INFO gives; sections absent on older servers are simply left out."""
    return [
        *_plain_families(info),
        *_info_families(info),
        *_commandstats(info),
        *_latencystats(info),
        *_errorstats(info),
        *_keyspace(info),
        *_replicas(info),
    ]
