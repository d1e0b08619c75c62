"""The summary page: the board's JSON rendered as one self-contained HTML page.

No script and no external reference: sparklines are inline SVG, styles inline CSS.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from exporter.mixin.catalog import BY_KEY

COLOURS = {"ok": "#1a7f37", "warn": "#b35900", "crit": "#c00", None: "#666"}


def sparkline(
    values: Sequence[float], status: str | None, width: int = 120, height: int = 24
) -> str:
    """An inline SVG polyline of ``values`` (no script, no external reference)."""
    points = [v for v in values if math.isfinite(v)]
    if len(points) < 2:
        return ""
    lo, hi = min(points), max(points)
    span = (hi - lo) or 1.0
    step = width / (len(points) - 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}"
        for i, v in enumerate(points)
    )
    colour = COLOURS.get(status, "#666")
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="recent history"><polyline fill="none" stroke="{colour}" '
        f'stroke-width="1.5" points="{coords}"/></svg>'
    )


def render_html(data: Mapping[str, Any]) -> str:
    e = html.escape
    score = data["score"]
    score_text = "-" if score is None else str(score)
    score_colour = (
        COLOURS[None]
        if score is None
        else COLOURS["ok" if score >= 90 else "warn" if score >= 60 else "crit"]
    )
    rows = []
    for row in data["signals"]:
        extra = " ".join(f"{k}={v}" for k, v in row["labels"].items() if k != "collector")
        signal = BY_KEY[row["signal"]]
        word = "&gt;" if row["bad_when"] == "above" else "&lt;"
        status = row["status"]
        # an idle row says why on hover
        why = f' title="{e(row["reason"])}"' if row.get("reason") else ""
        rows.append(
            f'<tr class="{e(status or "none")}"><td><a href="{e(row["runbook_url"])}">'
            f"{e(row['title'])}</a></td><td>{e(row['target'])}</td><td>{e(extra)}</td>"
            f'<td class="num">{e(row["display"])}</td>'
            f"<td>warn {word} {e(signal.format_level(row['warn']))}, crit {word} "
            f"{e(signal.format_level(row['crit']))}</td>"
            f'<td class="st" style="color:{COLOURS.get(status, "#666")}"'
            f"{why}>"
            f"{e((status or 'no data').upper())}</td>"
            f"<td>{sparkline(row['history'], status)}</td></tr>"
        )
    sources = []
    for collector, targets in data["sources"].items():
        for target, info in targets.items():
            state = "up" if info["up"] else "DOWN"
            sources.append(
                f"<tr><td>{e(collector)}</td><td>{e(target)}</td>"
                f'<td class="{state.lower()}">{state}</td></tr>'
            )
    recs = "".join(
        f"<li>{e(_recommendation(r))}</li>" for r in data.get("index_recommendations", [])
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>perf-exporter: performance summary</title><style>"
        "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}"
        "td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}"
        ".num{text-align:right;font-variant-numeric:tabular-nums}.st{font-weight:bold}"
        ".score{font-size:3em;font-weight:bold}.down{color:#c00;font-weight:bold}.up{color:#1a7f37}"
        "tr.crit{background:#fde8e8}tr.warn{background:#fff4e0}"
        "</style></head><body>"
        f"<h1>Performance summary</h1><p>perf-exporter {e(data['version'])} · "
        "<a href='/metrics'>/metrics</a> · <a href='/summary'>/summary</a> · "
        "<a href='/healthz'>/healthz</a></p>"
        f'<p>Score <span class="score" style="color:{score_colour}">{score_text}</span>'
        f" / 100 <small>({e(data['score_formula'])})</small></p>"
        "<h2>Signals</h2><table><tr><th>signal</th><th>target</th><th>series</th>"
        "<th>value</th><th>thresholds</th><th>status</th><th>recent</th></tr>"
        + "".join(rows)
        + "</table><h2>Sources</h2><table><tr><th>collector</th><th>target</th><th>state</th></tr>"
        + "".join(sources)
        + "</table><h2>Slow statements</h2>"
        + _slow_table(data.get("slow_statements", []))
        + "<h2>Blocking</h2>"
        + _blocking_table(data.get("blocking", []))
        + "<h2>Index recommendations</h2>"
        + (f"<ul>{recs}</ul>" if recs else "<p>None.</p>")
        + "</body></html>"
    )


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def _slow_table(items: Sequence[Mapping[str, Any]]) -> str:
    if not items:
        return "<p>None.</p>"
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(str(i['target']))}</td><td>{e(str(i['queryid']))}</td>"
        f"<td>{e(str(i['datname']))}</td><td class='num'>{_ms(i.get('mean_seconds'))}</td>"
        f"<td class='num'>{_ms(i.get('mean_seconds_history'))}</td>"
        f"<td class='num'>{(i.get('calls_per_second') or 0):.2f}/s</td>"
        f"<td>{e(', '.join(f'{k} {v}' for k, v in (i.get('wait_samples') or {}).items()))}</td>"
        f"<td>{e(i.get('query') or '')}</td></tr>"
        for i in items
    )
    return (
        "<table><tr><th>target</th><th>queryid</th><th>database</th><th>mean now</th>"
        "<th>mean (history)</th><th>calls</th><th>wait samples</th><th>text</th></tr>"
        f"{rows}</table>"
    )


def _blocking_table(chains: Sequence[Mapping[str, Any]]) -> str:
    if not chains:
        return "<p>None.</p>"
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(str(c.get('target', '')))}</td><td>{e(str(c.get('pid')))}</td>"
        f"<td>{e(str(c.get('application_name') or ''))}</td><td>{e(str(c.get('state')))}</td>"
        f"<td class='num'>{e(str(c.get('waiting')))}</td><td>{e(str(c.get('queryid')))}</td>"
        f"<td>{e(str(c.get('query') or ''))}</td></tr>"
        for c in chains
    )
    return (
        "<table><tr><th>target</th><th>root pid</th><th>application</th><th>state</th>"
        f"<th>waiting behind</th><th>queryid</th><th>text</th></tr>{rows}</table>"
    )


def _recommendation(item: Any) -> str:
    if isinstance(item, Mapping):
        if "advice" in item:
            where = "/".join(str(item[k]) for k in ("target", "datname") if item.get(k))
            return f"{where}: {item['advice']}" if where else str(item["advice"])
        return ", ".join(f"{k}: {v}" for k, v in item.items())
    return str(item)
