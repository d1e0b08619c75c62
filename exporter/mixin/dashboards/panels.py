"""The panel builder every perf-exporter dashboard is made of (grafana-foundation-sdk).

Every panel queries the ``$datasource`` variable, filters on ``$job`` and ``$instance`` (and
``$target`` for remote sources) and uses ``$__rate_interval`` in every rate; stat panels colour
at the same levels the alerts fire at.
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


#: A dashboard row: its title and its panels, left to right.
Row = tuple[str, Sequence[Any]]


def dashboard(
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


def sum_by(labels: str, inner: str) -> str:
    return f"sum by ({labels}) ({inner})"


def with_kind(first: str, second: str, kind: str) -> str:
    """Two expressions on one graph; the second's series are told apart by a ``kind`` label."""
    return f'{first} or label_replace({second}, "kind", "{kind}", "", "")'


def top10(inner: str) -> str:
    return f"topk(10, {inner})"


def summary_row(t: Thresholds, keys: Sequence[str], width: int) -> Row:
    """The first row of a source dashboard: one stat per headline signal."""
    return ("Summary", [signal_stat(t, key, width) for key in keys])
