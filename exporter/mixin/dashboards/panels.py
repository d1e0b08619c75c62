"""The panel builder every perf-exporter dashboard is made of (grafana-foundation-sdk).

Every panel queries the ``$datasource`` variable, filters on ``$job`` and ``$instance`` (and
``$target`` for remote sources) and uses ``$__rate_interval`` in every rate; stat panels colour
at the same levels the alerts fire at.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import prometheus as prom_m

from exporter.mixin.catalog import BY_KEY, SIGNALS, Query, Signal
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
        settings=t.settings(),
    )


@dataclass(frozen=True)
class Expr:
    """A raw graph's PromQL, rendered for a query context and the labels it sums by."""

    render: Callable[[Query, str], str]
    #: Whether two expressions share the graph, told apart by a ``kind`` label.
    kinds: bool = False


def rate(name: str) -> Expr:
    return Expr(lambda q, by: f"sum by ({by}) ({q.rate(name)})")


def gauge(name: str, agg: str = "sum") -> Expr:
    return Expr(lambda q, by: f"{agg} by ({by}) ({q.m(name)})")


def top10(inner: Expr) -> Expr:
    return Expr(lambda q, by: f"topk(10, {inner.render(q, by)})", inner.kinds)


def plus(a: Expr, b: Expr) -> Expr:
    return Expr(lambda q, by: f"{a.render(q, by)} + {b.render(q, by)}")


def over(a: Expr, b: Expr) -> Expr:
    return Expr(lambda q, by: f"{a.render(q, by)} / {b.render(q, by)}")


def with_kind(first: Expr, second: Expr, kind: str) -> Expr:
    """Two expressions on one graph; the second's series carry ``kind``."""
    return Expr(
        lambda q, by: (
            f'{first.render(q, by)} or label_replace({second.render(q, by)}, "kind", "{kind}", '
            '"", "")'
        ),
        kinds=True,
    )


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


#: The dashboards' instance variable, standing in for ``{{ $labels.instance }}`` in runbook URLs.
GRAFANA_INSTANCE = "${instance}"


def _runbook_link(t: Thresholds, signal: Signal) -> dash_b.DashboardLink:
    # Grafana fills in its own variable where Prometheus would fill in the alert's instance
    url = t.runbook_with_instance(signal.anchor, GRAFANA_INSTANCE)
    return dash_b.DashboardLink(f"Runbook: {signal.alert}").url(url)


def _target(expr: str, legend: str) -> prom_b.Dataquery:
    return prom_b.Dataquery().expr(expr).legend_format(legend).ref_id("A").datasource(DATASOURCE)


def _worst(signal: Signal, expr: str) -> str:
    return f"{'max' if signal.above else 'min'}({expr})"


_StatOrGraph = TypeVar("_StatOrGraph", stat_b.Panel, ts_b.Panel)


def _of_signal(
    t: Thresholds, panel: _StatOrGraph, signal: Signal, expr: str, legend: str
) -> _StatOrGraph:
    """What a signal's stat and graph share: its words, query, unit, levels and runbook."""
    return (
        panel.title(signal.title)
        .description(signal.meaning)
        .datasource(DATASOURCE)
        .with_target(_target(expr, legend))
        .unit(signal.unit)
        .thresholds(_thresholds(t, signal))
        .links([_runbook_link(t, signal)])
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


#: Grafana's grid is this many columns wide.
GRID_WIDTH = 24

#: A dashboard row: its title and its panels, left to right.
DashboardRow = tuple[str, Sequence[Any]]


class Panels:
    """The panels of one dashboard, bound to its thresholds and to whether it filters on target."""

    def __init__(self, t: Thresholds, remote: bool = True) -> None:
        self.t = t
        self.remote = remote
        self.placed: set[str] = set()

    def stat(self, key: str, width: int = 4) -> stat_b.Panel:
        """The worst current value of a signal, coloured at the alert levels."""
        signal = BY_KEY[key]
        self.placed.add(key)
        expr = _worst(signal, signal.expr(signal_query(self.t, signal)))
        return (
            _of_signal(self.t, stat_b.Panel(), signal, expr, signal.title)
            .color_scheme(dash_b.FieldColor().mode(dash_m.FieldColorModeId.THRESHOLDS))
            .height(4)
            .span(width)
        )

    def stats(self, keys: Sequence[str], width: int) -> list[stat_b.Panel]:
        return [self.stat(key, width) for key in keys]

    def graph(self, key: str, width: int = 12) -> ts_b.Panel:
        """A signal over time per series, with the alert levels drawn as lines."""
        signal = BY_KEY[key]
        self.placed.add(key)
        expr = signal.expr(signal_query(self.t, signal))
        return (
            _of_signal(self.t, ts_b.Panel(), signal, expr, _legend(signal))
            .thresholds_style(
                common_b.GraphThresholdsStyleConfig().mode(common_m.GraphThresholdsStyleMode.LINE)
            )
            .height(8)
            .span(width)
        )

    def raw(
        self, title: str, unit: str, by: str, expr: Expr, width: int = 12, description: str = ""
    ) -> ts_b.Panel:
        """A time series that is no signal: a raw view of one source's metrics by ``by``."""
        legend = " ".join(f"{{{{{label}}}}}" for label in by.split(", "))
        q = REMOTE if self.remote else LOCAL
        return (
            ts_b.Panel()
            .title(title)
            .description(description or title)
            .datasource(DATASOURCE)
            .with_target(_target(expr.render(q, by), legend + (" {{kind}}" if expr.kinds else "")))
            .unit(unit)
            .height(8)
            .span(width)
        )

    def table(
        self,
        title: str,
        description: str,
        columns: Sequence[tuple[str, str, Callable[[Query], str]]],
        width: int = GRID_WIDTH,
    ) -> table_b.Panel:
        """One row per series, one column per (name, unit, expression) of instant queries.

        The queries' series must carry the same labels: Grafana's merge joins them on those.
        """
        q = REMOTE if self.remote else LOCAL
        panel = (
            table_b.Panel()
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .unit(columns[0][1])
            .height(10)
            .span(width)
        )
        renames: dict[str, str] = {}
        for number, (name, unit, render) in enumerate(columns):
            ref = chr(ord("A") + number)
            panel = panel.with_target(
                prom_b.Dataquery()
                .expr(render(q))
                .ref_id(ref)
                .instant()
                .format(prom_m.PromQueryFormat.TABLE)
                .datasource(DATASOURCE)
            ).override_by_name(name, [dash_m.DynamicConfigValue(id_val="unit", value=unit)])
            renames[f"Value #{ref}"] = name
        return panel.transformations(
            [
                dash_m.DataTransformerConfig(id_val="merge", options={}),
                dash_m.DataTransformerConfig(
                    id_val="organize",
                    options={"excludeByName": {"Time": True}, "renameByName": renames},
                ),
            ]
        )

    def dashboard(
        self,
        uid: str,
        title: str,
        description: str,
        rows: Sequence[DashboardRow],
        headline: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The Grafana JSON model of a dashboard of ``rows``.

        The ``headline`` signals open it: a "Summary" row of their stats, sharing the grid's
        width. Signals whose home is this dashboard but that no row shows get a graph each in a
        last row, so a new signal is on a dashboard before anyone lays it out.
        """
        t = self.t
        if headline:
            rows = [("Summary", self.stats(headline, GRID_WIDTH // len(headline))), *rows]
        name = uid.removeprefix("perf-exporter-")
        unplaced = [s.key for s in SIGNALS if s.dashboard == name and s.key not in self.placed]
        if unplaced:
            rows = [*rows, ("More signals", [self.graph(key) for key in unplaced])]
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
                .url(t.runbook_with_instance("", GRAFANA_INSTANCE).removesuffix("#"))
                .target_blank(True)
            )
        )
        for variable in _variables(self.remote):
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
