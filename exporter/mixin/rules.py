"""Prometheus alerting and recording rules generated from the signal catalog and Thresholds.

Each signal gets one alert name with a warning and a critical rule (same name, different
``severity``), so Alertmanager can inhibit the warning while the critical twin fires, and one
recording rule under a ``level:metric:operation`` name for dashboards and federation.
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


def alert_rules(t: Thresholds) -> list[dict[str, Any]]:
    q = rule_query(t)
    rules: list[dict[str, Any]] = []
    for signal in SIGNALS:
        level = t.level(signal.key)
        op = ">" if signal.above else "<"
        word = "above" if signal.above else "below"
        shown = UNITS[signal.unit].template
        for severity, value, hold in (
            (t.severity_warning, level.warn, level.for_warn),
            (t.severity_critical, level.crit, level.for_crit),
        ):
            rules.append(
                {
                    "alert": signal.alert,
                    "expr": f"({signal.expr(q)}) {op} {value:g}",
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
    return {
        "groups": [
            {
                "name": "perf-exporter-recording",
                "rules": [
                    {"record": s.record_name(t.rate_window), "expr": s.expr(q)} for s in SIGNALS
                ],
            }
        ]
    }
