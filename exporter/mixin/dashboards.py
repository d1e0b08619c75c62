"""Grafana dashboards built with grafana-foundation-sdk from the signal catalog and Thresholds.

An overview (the performance summary on one screen: hit ratios, the saturation chain app pool ->
PgBouncer -> max_connections, latency, resources, collector health) and one dashboard per
source. Every panel queries the ``$datasource`` variable, filters on ``$job`` and ``$instance``
(and ``$target`` for remote sources) and uses ``$__rate_interval`` in every rate; stat panels
colour at the same levels the alerts fire at.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m

from exporter.mixin.catalog import BY_KEY, Query, Signal
from exporter.mixin.thresholds import Thresholds

DATASOURCE = dash_m.DataSourceRef(type_val="prometheus", uid="${datasource}")
REMOTE_SELECTOR = 'job=~"$job", instance=~"$instance", target=~"$target"'
LOCAL_SELECTOR = 'job=~"$job", instance=~"$instance"'
TAGS = ["perf-exporter"]

REMOTE = Query(selector=REMOTE_SELECTOR, window="$__rate_interval", predict_window="6h")
LOCAL = Query(selector=LOCAL_SELECTOR, window="$__rate_interval", predict_window="6h")


def signal_query(t: Thresholds, signal: Signal) -> Query:
    """Grafana variables and $__rate_interval; the fill prediction looks back as the rules do."""
    return Query(
        selector=REMOTE_SELECTOR if signal.remote else LOCAL_SELECTOR,
        window="$__rate_interval",
        predict_window=t.predict_window,
    )


@dataclass(frozen=True)
class Graph:
    """A time-series panel that is not a signal: a raw view of one source's metrics."""

    title: str
    expr: Callable[[Query], str]
    unit: str
    legend: str
    remote: bool = True
    description: str = ""


def _thresholds(t: Thresholds, signal: Signal) -> dash_b.ThresholdsConfig:
    level = t.level(signal.key)
    if signal.above:
        steps = [
            dash_m.Threshold(value=None, color="green"),
            dash_m.Threshold(value=level.warn, color="orange"),
            dash_m.Threshold(value=level.crit, color="red"),
        ]
    else:
        steps = [
            dash_m.Threshold(value=None, color="red"),
            dash_m.Threshold(value=level.crit, color="orange"),
            dash_m.Threshold(value=level.warn, color="green"),
        ]
    if level.warn == level.crit:
        # one level only (collector success): no orange band
        steps = [steps[0], steps[2]]
    return dash_b.ThresholdsConfig().mode(dash_m.ThresholdsMode.ABSOLUTE).steps(steps)


def _legend(signal: Signal) -> str:
    extra = [label for label in signal.labels if label not in ("job",)]
    return " ".join(f"{{{{{label}}}}}" for label in extra)


def _runbook_link(t: Thresholds, signal: Signal) -> dash_b.DashboardLink:
    return dash_b.DashboardLink(f"Runbook: {signal.alert}").url(t.runbook(signal.anchor))


def _target(expr: str, legend: str) -> prom_b.Dataquery:
    return prom_b.Dataquery().expr(expr).legend_format(legend).ref_id("A").datasource(DATASOURCE)


def _worst(signal: Signal, expr: str) -> str:
    return f"{'max' if signal.above else 'min'}({expr})"


def signal_stat(t: Thresholds, key: str, width: int = 4) -> stat_b.Panel:
    """The worst current value of a signal, coloured at the alert levels."""
    signal = BY_KEY[key]
    return (
        stat_b.Panel()
        .title(signal.title)
        .description(signal.meaning)
        .datasource(DATASOURCE)
        .with_target(_target(_worst(signal, signal.expr(signal_query(t, signal))), signal.title))
        .unit(signal.unit)
        .thresholds(_thresholds(t, signal))
        .color_scheme(dash_b.FieldColor().mode(dash_m.FieldColorModeId.THRESHOLDS))
        .links([_runbook_link(t, signal)])
        .height(4)
        .span(width)
    )


def signal_graph(t: Thresholds, key: str, width: int = 12) -> ts_b.Panel:
    """A signal over time per series, with the alert levels drawn as lines."""
    signal = BY_KEY[key]
    return (
        ts_b.Panel()
        .title(signal.title)
        .description(signal.meaning)
        .datasource(DATASOURCE)
        .with_target(_target(signal.expr(signal_query(t, signal)), _legend(signal)))
        .unit(signal.unit)
        .thresholds(_thresholds(t, signal))
        .thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common_m.GraphThresholdsStyleMode.LINE)
        )
        .links([_runbook_link(t, signal)])
        .height(8)
        .span(width)
    )


def raw_graph(graph: Graph, width: int = 12) -> ts_b.Panel:
    q = REMOTE if graph.remote else LOCAL
    return (
        ts_b.Panel()
        .title(graph.title)
        .description(graph.description or graph.title)
        .datasource(DATASOURCE)
        .with_target(_target(graph.expr(q), graph.legend))
        .unit(graph.unit)
        .height(8)
        .span(width)
    )


def _variables(remote: bool) -> list[Any]:
    def query_var(name: str, label: str, query: str) -> dash_b.QueryVariable:
        return (
            dash_b.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query(query)
            .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".+")
            .current(dash_m.VariableOption(selected=True, text="All", value="$__all"))
        )

    variables: list[Any] = [
        dash_b.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        query_var("job", "Job", "label_values(perf_exporter_build_info, job)"),
        query_var(
            "instance", "Instance", 'label_values(perf_exporter_build_info{job=~"$job"}, instance)'
        ),
    ]
    if remote:
        variables.append(
            query_var(
                "target",
                "Target",
                'label_values(perf_exporter_collector_success{job=~"$job", instance=~"$instance"}'
                ", target)",
            )
        )
    return variables


Row = tuple[str, Sequence[Any]]


def _dashboard(
    t: Thresholds, uid: str, title: str, description: str, rows: Sequence[Row], remote: bool
) -> dict[str, Any]:
    builder = (
        dash_b.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([*TAGS, uid.removeprefix("perf-exporter-")])
        .readonly()
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .link(
            dash_b.DashboardLink("perf-exporter dashboards")
            .type(dash_m.DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .link(
            dash_b.DashboardLink("Runbooks")
            .type(dash_m.DashboardLinkType.LINK)
            .url(t.runbook_url.replace("#{anchor}", "").replace("{anchor}", ""))
            .target_blank(True)
        )
    )
    for variable in _variables(remote):
        builder = builder.with_variable(variable)
    for row_title, panels in rows:
        builder = builder.with_row(dash_b.Row(row_title))
        for panel in panels:
            builder = builder.with_panel(panel)
    data: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(builder.build()))
    # the SDK leaves every panel id at 0; Grafana needs them unique for links and repeats
    for number, panel in enumerate(data["panels"], start=1):
        panel["id"] = number
    return data


def _sum_by(q: Query, labels: str, inner: str) -> str:
    return f"sum by ({labels}) ({inner})"


def overview(t: Thresholds) -> dict[str, Any]:
    s = signal_stat
    g = signal_graph
    rows: list[Row] = [
        (
            "Cache hit ratios",
            [
                s(t, "postgres_cache_hit_ratio", 8),
                s(t, "redis_hit_ratio", 8),
                s(t, "app_cache_hit_ratio", 8),
                g(t, "redis_hit_ratio", 12),
                g(t, "app_cache_hit_ratio", 12),
            ],
        ),
        (
            "Saturation chain: app pool -> PgBouncer -> PostgreSQL",
            [
                s(t, "app_pool_utilisation"),
                s(t, "app_pool_waiting"),
                s(t, "pgbouncer_waiting_clients"),
                s(t, "pgbouncer_max_wait"),
                s(t, "postgres_connection_utilisation", 8),
                g(t, "app_pool_utilisation", 8),
                g(t, "pgbouncer_max_wait", 8),
                g(t, "postgres_connection_utilisation", 8),
            ],
        ),
        (
            "Latency",
            [
                s(t, "postgres_probe_p99", 6),
                s(t, "redis_probe_p99", 6),
                s(t, "app_pool_acquire_p99", 6),
                s(t, "postgres_statement_mean_latency", 6),
                g(t, "postgres_probe_p99", 12),
                g(t, "redis_probe_p99", 12),
            ],
        ),
        (
            "Resources",
            [
                s(t, "host_cpu_utilisation", 6),
                s(t, "host_memory_utilisation", 6),
                s(t, "host_cgroup_memory_utilisation", 6),
                s(t, "host_filesystem_avail_ratio", 6),
                s(t, "redis_memory_utilisation", 6),
            ],
        ),
        (
            "Collector health",
            [
                s(t, "exporter_collector_success", 6),
                s(t, "exporter_collector_staleness", 6),
                g(t, "exporter_collector_success", 12),
            ],
        ),
    ]
    return _dashboard(
        t,
        "perf-exporter-overview",
        "perf-exporter / Overview",
        "The performance summary: is the cache working, is a pool saturated, what got slow.",
        rows,
        remote=True,
    )


def postgres(t: Thresholds) -> dict[str, Any]:
    by = "target, state"
    rows: list[Row] = [
        (
            "Summary",
            [
                signal_stat(t, "postgres_cache_hit_ratio", 6),
                signal_stat(t, "postgres_connection_utilisation", 6),
                signal_stat(t, "postgres_probe_p99", 6),
                signal_stat(t, "postgres_statement_mean_latency", 6),
            ],
        ),
        (
            "Cache",
            [
                signal_graph(t, "postgres_cache_hit_ratio"),
                raw_graph(
                    Graph(
                        "Blocks read from disk per database",
                        lambda q: _sum_by(
                            q, "target, datname", q.rate("perf_postgres_blocks_read_total")
                        ),
                        "ops",
                        "{{target}} {{datname}}",
                    )
                ),
            ],
        ),
        (
            "Connections",
            [
                signal_graph(t, "postgres_connection_utilisation"),
                raw_graph(
                    Graph(
                        "Connections by state",
                        lambda q: _sum_by(q, by, q.m("perf_postgres_connections")),
                        "short",
                        "{{target}} {{state}}",
                    )
                ),
                signal_graph(t, "postgres_longest_transaction"),
                signal_graph(t, "postgres_idle_in_transaction"),
            ],
        ),
        (
            "Latency",
            [
                signal_graph(t, "postgres_probe_p99"),
                signal_graph(t, "postgres_statement_mean_latency"),
                raw_graph(
                    Graph(
                        "Top statements by execution time",
                        lambda q: (
                            "topk(10, "
                            + _sum_by(
                                q,
                                "target, datname, queryid",
                                q.rate("perf_postgres_statement_exec_seconds_total"),
                            )
                            + ")"
                        ),
                        "s",
                        "{{target}} {{datname}} {{queryid}}",
                        description="Execution seconds per second: the statements that keep "
                        "the server busy.",
                    )
                ),
                raw_graph(
                    Graph(
                        "Top statements by calls",
                        lambda q: (
                            "topk(10, "
                            + _sum_by(
                                q,
                                "target, datname, queryid",
                                q.rate("perf_postgres_statement_calls_total"),
                            )
                            + ")"
                        ),
                        "ops",
                        "{{target}} {{datname}} {{queryid}}",
                    )
                ),
            ],
        ),
    ]
    rows.append(
        (
            "Transactions and locks",
            [
                raw_graph(
                    Graph(
                        "Transactions per second",
                        lambda q: (
                            _sum_by(
                                q,
                                "target, datname",
                                q.rate("perf_postgres_transactions_committed_total"),
                            )
                            + " or label_replace("
                            + _sum_by(
                                q,
                                "target, datname",
                                q.rate("perf_postgres_transactions_rolled_back_total"),
                            )
                            + ', "kind", "rollback", "", "")'
                        ),
                        "ops",
                        "{{target}} {{datname}} {{kind}}",
                        description="Commits per database; rollbacks are marked kind=rollback.",
                    ),
                    8,
                ),
                raw_graph(
                    Graph(
                        "Sessions waiting on a lock",
                        lambda q: _sum_by(q, "target, datname", q.m("perf_postgres_lock_waiters")),
                        "short",
                        "{{target}} {{datname}}",
                    ),
                    8,
                ),
                raw_graph(
                    Graph(
                        "Deadlocks and temp bytes written",
                        lambda q: (
                            _sum_by(q, "target, datname", q.rate("perf_postgres_deadlocks_total"))
                            + " or label_replace("
                            + _sum_by(
                                q, "target, datname", q.rate("perf_postgres_temp_bytes_total")
                            )
                            + ', "kind", "temp bytes", "", "")'
                        ),
                        "short",
                        "{{target}} {{datname}} {{kind}}",
                        description="Deadlocks per second, and bytes per second spilled to "
                        "temporary files (kind=temp bytes: raise work_mem or fix the sort).",
                    ),
                    8,
                ),
            ],
        )
    )
    return _dashboard(
        t,
        "perf-exporter-postgres",
        "perf-exporter / PostgreSQL",
        "Buffer-cache hit ratio, connections against max_connections, probe and statement latency.",
        rows,
        remote=True,
    )


def redis(t: Thresholds) -> dict[str, Any]:
    rows: list[Row] = [
        (
            "Summary",
            [
                signal_stat(t, "redis_hit_ratio", 6),
                signal_stat(t, "redis_memory_utilisation", 6),
                signal_stat(t, "redis_probe_p99", 6),
                signal_stat(t, "redis_evictions", 6),
            ],
        ),
        (
            "Cache",
            [
                signal_graph(t, "redis_hit_ratio"),
                raw_graph(
                    Graph(
                        "Hits and misses",
                        lambda q: (
                            _sum_by(q, "target", q.rate("perf_redis_keyspace_hits_total"))
                            + " or label_replace("
                            + _sum_by(q, "target", q.rate("perf_redis_keyspace_misses_total"))
                            + ', "kind", "miss", "", "")'
                        ),
                        "ops",
                        "{{target}} {{kind}}",
                    )
                ),
                raw_graph(
                    Graph(
                        "Keys per namespace",
                        lambda q: _sum_by(q, "target, namespace", q.m("perf_redis_namespace_keys")),
                        "short",
                        "{{target}} {{namespace}}",
                    )
                ),
                raw_graph(
                    Graph(
                        "Keys without TTL per namespace",
                        lambda q: _sum_by(
                            q, "target, namespace", q.m("perf_redis_namespace_keys_without_ttl")
                        ),
                        "short",
                        "{{target}} {{namespace}}",
                        description="Keys that never expire: the classic cache leak.",
                    )
                ),
            ],
        ),
        (
            "Memory",
            [
                signal_graph(t, "redis_memory_utilisation"),
                signal_graph(t, "redis_evictions"),
                raw_graph(
                    Graph(
                        "Memory used",
                        lambda q: _sum_by(q, "target", q.m("perf_redis_memory_used_bytes")),
                        "bytes",
                        "{{target}}",
                    )
                ),
                signal_graph(t, "redis_rejected_connections"),
            ],
        ),
        (
            "Latency",
            [
                signal_graph(t, "redis_probe_p99"),
                raw_graph(
                    Graph(
                        "Commands per second",
                        lambda q: (
                            "topk(10, "
                            + _sum_by(q, "target, cmd", q.rate("perf_redis_command_calls_total"))
                            + ")"
                        ),
                        "ops",
                        "{{target}} {{cmd}}",
                    )
                ),
            ],
        ),
    ]
    rows.append(
        (
            "Clients and load",
            [
                raw_graph(
                    Graph(
                        "Connected clients against maxclients",
                        lambda q: (
                            _sum_by(q, "target", q.m("perf_redis_clients_connected"))
                            + " or label_replace("
                            + _sum_by(q, "target", q.m("perf_redis_clients_max"))
                            + ', "kind", "max", "", "")'
                        ),
                        "short",
                        "{{target}} {{kind}}",
                    )
                ),
                raw_graph(
                    Graph(
                        "Commands processed per second",
                        lambda q: _sum_by(
                            q, "target", q.rate("perf_redis_commands_processed_total")
                        ),
                        "ops",
                        "{{target}}",
                    )
                ),
            ],
        )
    )
    return _dashboard(
        t,
        "perf-exporter-redis",
        "perf-exporter / Redis",
        "Keyspace hit ratio, memory against maxmemory, evictions, namespaces and latency.",
        rows,
        remote=True,
    )


def pools(t: Thresholds) -> dict[str, Any]:
    rows: list[Row] = [
        (
            "Summary",
            [
                signal_stat(t, "app_pool_utilisation"),
                signal_stat(t, "app_pool_waiting"),
                signal_stat(t, "app_pool_acquire_p99"),
                signal_stat(t, "pgbouncer_waiting_clients"),
                signal_stat(t, "pgbouncer_max_wait"),
                signal_stat(t, "app_cache_hit_ratio"),
            ],
        ),
        (
            "Application pools",
            [
                signal_graph(t, "app_pool_utilisation"),
                signal_graph(t, "app_pool_waiting"),
                signal_graph(t, "app_pool_acquire_p99"),
                raw_graph(
                    Graph(
                        "Pool size, idle and max",
                        lambda q: (
                            _sum_by(q, "target, pool", q.m("perf_app_pool_size"))
                            + " or label_replace("
                            + _sum_by(q, "target, pool", q.m("perf_app_pool_max"))
                            + ', "kind", "max", "", "")'
                        ),
                        "short",
                        "{{target}} {{pool}} {{kind}}",
                    )
                ),
            ],
        ),
        (
            "PgBouncer",
            [
                signal_graph(t, "pgbouncer_waiting_clients"),
                signal_graph(t, "pgbouncer_max_wait"),
                raw_graph(
                    Graph(
                        "Clients by state",
                        lambda q: _sum_by(q, "target, pool, state", q.m("perf_pgbouncer_clients")),
                        "short",
                        "{{target}} {{pool}} {{state}}",
                    )
                ),
                raw_graph(
                    Graph(
                        "Servers by state",
                        lambda q: _sum_by(q, "target, pool, state", q.m("perf_pgbouncer_servers")),
                        "short",
                        "{{target}} {{pool}} {{state}}",
                    )
                ),
            ],
        ),
        (
            "Application cache",
            [
                signal_graph(t, "app_cache_hit_ratio"),
                raw_graph(
                    Graph(
                        "Cache lookups per namespace",
                        lambda q: (
                            _sum_by(q, "target, namespace", q.rate("perf_app_cache_hits_total"))
                            + " + "
                            + _sum_by(q, "target, namespace", q.rate("perf_app_cache_misses_total"))
                        ),
                        "ops",
                        "{{target}} {{namespace}}",
                    )
                ),
            ],
        ),
    ]
    return _dashboard(
        t,
        "perf-exporter-pools",
        "perf-exporter / PgBouncer and application pools",
        "The saturation chain: the application's asyncpg pools, PgBouncer pools, and the "
        "application's cache namespaces.",
        rows,
        remote=True,
    )


def host(t: Thresholds) -> dict[str, Any]:
    rows: list[Row] = [
        (
            "Summary",
            [
                signal_stat(t, "host_cpu_utilisation", 6),
                signal_stat(t, "host_memory_utilisation", 6),
                signal_stat(t, "host_cgroup_memory_utilisation", 6),
                signal_stat(t, "host_filesystem_avail_ratio", 6),
            ],
        ),
        (
            "CPU and memory",
            [
                signal_graph(t, "host_cpu_utilisation"),
                raw_graph(
                    Graph(
                        "CPU by mode",
                        lambda q: _sum_by(
                            q, "instance, mode", q.rate("perf_host_cpu_seconds_total")
                        ),
                        "s",
                        "{{instance}} {{mode}}",
                        remote=False,
                        description="CPU seconds per second by mode (1 = one CPU fully busy).",
                    )
                ),
                raw_graph(
                    Graph(
                        "Load average (1m) per CPU",
                        lambda q: (
                            f"max by (instance) ({q.m('perf_host_load1')}) / "
                            f"max by (instance) ({q.m('perf_host_logical_cpus')})"
                        ),
                        "short",
                        "{{instance}}",
                        remote=False,
                    )
                ),
                signal_graph(t, "host_memory_utilisation"),
                signal_graph(t, "host_cgroup_memory_utilisation"),
                raw_graph(
                    Graph(
                        "Memory available",
                        lambda q: f"max by (instance) ({q.m('perf_host_memory_available_bytes')})",
                        "bytes",
                        "{{instance}}",
                        remote=False,
                    )
                ),
            ],
        ),
        (
            "Filesystems",
            [
                signal_graph(t, "host_filesystem_avail_ratio"),
                signal_graph(t, "host_filesystem_fill_hours"),
            ],
        ),
    ]
    rows.append(
        (
            "Disks and network",
            [
                raw_graph(
                    Graph(
                        "Disk busy time",
                        lambda q: _sum_by(
                            q, "instance, device", q.rate("perf_host_disk_io_time_seconds_total")
                        ),
                        "percentunit",
                        "{{instance}} {{device}}",
                        remote=False,
                        description="Share of time each disk had I/O in flight.",
                    ),
                    8,
                ),
                raw_graph(
                    Graph(
                        "Disk throughput",
                        lambda q: (
                            _sum_by(
                                q, "instance, device", q.rate("perf_host_disk_read_bytes_total")
                            )
                            + " or label_replace("
                            + _sum_by(
                                q, "instance, device", q.rate("perf_host_disk_written_bytes_total")
                            )
                            + ', "kind", "written", "", "")'
                        ),
                        "Bps",
                        "{{instance}} {{device}} {{kind}}",
                        remote=False,
                    ),
                    8,
                ),
                raw_graph(
                    Graph(
                        "Network throughput",
                        lambda q: (
                            _sum_by(
                                q,
                                "instance, interface",
                                q.rate("perf_host_network_receive_bytes_total"),
                            )
                            + " or label_replace("
                            + _sum_by(
                                q,
                                "instance, interface",
                                q.rate("perf_host_network_transmit_bytes_total"),
                            )
                            + ', "kind", "transmit", "", "")'
                        ),
                        "Bps",
                        "{{instance}} {{interface}} {{kind}}",
                        remote=False,
                    ),
                    8,
                ),
            ],
        )
    )
    return _dashboard(
        t,
        "perf-exporter-host",
        "perf-exporter / Host",
        "CPU, memory (host and container), filesystems of the machine the exporter runs on.",
        rows,
        remote=False,
    )


def dashboards(t: Thresholds) -> dict[str, dict[str, Any]]:
    """Every dashboard, file name -> Grafana JSON model."""
    return {
        "overview.json": overview(t),
        "postgres.json": postgres(t),
        "redis.json": redis(t),
        "pools.json": pools(t),
        "host.json": host(t),
    }
