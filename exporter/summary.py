"""The facts each collector reported last, for /summary and the landing page.

The scheduler tells the board about every run; the board keeps, per collector and target,
whether it is up, when it last succeeded and the facts the collector returned (hit ratios over
the last interval, utilisations, index recommendations ...). Threshold evaluation and the score
live in ``exporter.mixin``; this module only keeps and shows the raw picture.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter import __version__
from exporter.collectors.base import Collected


@dataclass
class _Entry:
    up: bool
    last_run: float
    last_success: float | None
    facts: Mapping[str, Any] = field(default_factory=dict)


class SummaryBoard:
    """Latest facts per (collector, target)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}

    def record(self, collector: str, target: str, result: Collected | None, now: float) -> None:
        old = self._entries.get((collector, target))
        if result is None:
            self._entries[(collector, target)] = _Entry(
                up=False,
                last_run=now,
                last_success=old.last_success if old else None,
                facts={},
            )
        else:
            self._entries[(collector, target)] = _Entry(True, now, now, dict(result.facts))

    def forget_except(self, keys: set[tuple[str, str]]) -> None:
        """Drop entries of jobs a reload removed."""
        for key in list(self._entries):
            if key not in keys:
                del self._entries[key]

    def as_json(self) -> dict[str, Any]:
        sources: dict[str, dict[str, Any]] = {}
        for (collector, target), entry in sorted(self._entries.items()):
            sources.setdefault(collector, {})[target] = {
                "up": entry.up,
                "last_run": entry.last_run,
                "last_success": entry.last_success,
                "facts": dict(entry.facts),
            }
        return {"version": __version__, "generated_at": time.time(), "sources": sources}

    def as_html(self) -> str:
        rows = []
        for (collector, target), entry in sorted(self._entries.items()):
            facts = ", ".join(
                f"{html.escape(k)}={_fmt(v)}"
                for k, v in sorted(entry.facts.items())
                if isinstance(v, int | float)
            )
            state = "up" if entry.up else "DOWN"
            rows.append(
                f"<tr><td>{html.escape(collector)}</td><td>{html.escape(target)}</td>"
                f'<td class="{state.lower()}">{state}</td><td>{facts}</td></tr>'
            )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>perf-exporter</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em .8em;"
            "text-align:left}.down{color:#b00;font-weight:bold}.up{color:#070}</style>"
            f"</head><body><h1>perf-exporter {html.escape(__version__)}</h1>"
            "<p><a href='/metrics'>/metrics</a> · <a href='/summary'>/summary</a> · "
            "<a href='/healthz'>/healthz</a></p>"
            "<table><tr><th>collector</th><th>target</th><th>state</th><th>facts</th></tr>"
            + "".join(rows)
            + "</table></body></html>"
        )


def _fmt(value: float) -> str:
    return f"{value:.4g}"
