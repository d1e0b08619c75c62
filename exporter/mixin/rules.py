"""Prometheus alerting and recording rules generated from the signal catalog and Thresholds.

Each signal gets one alert name with a warning and a critical rule (same name, different
``severity``), so Alertmanager can inhibit the warning while the critical twin fires, and one
recording rule under a ``level:metric:operation`` name for dashboards and federation.

Each expression is written once, in the recording rules; the alerts compare the recorded series
with their levels. A guarded signal (a hit ratio) also records its traffic, and its alerts
require ``traffic >= min_rate``, so an idle source with a poor ratio stays quiet. Both files
must therefore be loaded: the alerts alone select series nobody records and never fire (the
recording group runs concurrently with the alert groups, so an alert sees the value of the
previous evaluation at worst).
"""

from __future__ import annotations

from typing import Any

from exporter.mixin.catalog import SIGNALS, UNITS, Query, Signal
from exporter.mixin.thresholds import Thresholds


def rule_query(t: Thresholds) -> Query:
    return Query(
        selector=t.selector,
        window=t.rate_window,
        predict_window=t.predict_window,
        settings=t.settings(),
    )


def _subject(signal: Signal) -> str:
    parts = []
    if "target" in signal.labels:
        parts.append("target {{ $labels.target }}")
    for label in signal.labels:
        if label not in ("job", "instance", "target"):
            parts.append(f"{label} {{{{ $labels.{label} }}}}")
    parts.append("on {{ $labels.instance }}")
    return " ".join(parts)


def alert_condition(t: Thresholds, signal: Signal, value: float) -> str:
    """The alert's expression at ``value``: the recorded series against it, and the traffic
    guard for a guarded signal."""
    q = rule_query(t)
    op = ">" if signal.above else "<"
    expr = f"{q.m(signal.record_name(t.rate_window))} {op} {value:g}"
    min_rate = t.min_rate(signal.key)
    if signal.guarded and min_rate is not None:
        traffic = q.m(signal.traffic_record_name(t.rate_window))
        expr += f" and on ({', '.join(signal.labels)}) {traffic} >= {min_rate:g}"
    return expr


def alert_rules(t: Thresholds) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for signal in SIGNALS:
        level = t.level(signal.key)
        word = "above" if signal.above else "below"
        shown = UNITS[signal.unit].template
        for severity, value, hold in (
            (t.severity_warning, level.warn, level.for_warn),
            (t.severity_critical, level.crit, level.for_crit),
        ):
            rules.append(
                {
                    "alert": signal.alert,
                    "expr": alert_condition(t, signal, value),
                    "for": hold,
                    "labels": {"severity": severity},
                    "annotations": {
                        "summary": f"{signal.title} is {word} its {severity} level.",
                        "description": (
                            f"{signal.title} of {_subject(signal)} is {shown}, "
                            f"{word} the {severity} level of {signal.format_level(value)}."
                        ),
                        "runbook_url": t.runbook(signal.anchor),
                    },
                }
            )
    return rules


def alert_groups(t: Thresholds) -> dict[str, Any]:
    """The alerting rule file, one group per source."""
    groups: dict[str, list[dict[str, Any]]] = {}
    by_alert = {s.alert: s for s in SIGNALS}
    for rule in alert_rules(t):
        source = by_alert[rule["alert"]].source
        groups.setdefault(f"perf-exporter-{source}", []).append(rule)
    return {"groups": [{"name": name, "rules": rules} for name, rules in groups.items()]}


def recording_groups(t: Thresholds) -> dict[str, Any]:
    """The recording rule file: every signal's value under its ``level:metric:operation`` name."""
    q = rule_query(t)
    rules: list[dict[str, Any]] = []
    for s in SIGNALS:
        rules.append({"record": s.record_name(t.rate_window), "expr": s.expr(q)})
        if s.guarded:
            traffic = s.traffic_record_name(t.rate_window)
            rules.append({"record": traffic, "expr": s.traffic_expr(q)})
    return {"groups": [{"name": "perf-exporter-recording", "rules": rules}]}
