"""The summary page: the board's JSON rendered as one self-contained HTML page.

No script and no external reference: sparklines are inline SVG, styles inline CSS, and the page
reloads itself at the collection interval with a ``<meta http-equiv="refresh">``. One section
per question, each row a block that wraps, so a 390 px wide phone never scrolls sideways. A
status reads as a word and a symbol as well as a colour, and the colours (blue, orange,
vermilion, grey) stay apart for the common colour-vision deficiencies.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from exporter.mixin.catalog import BY_KEY

#: Okabe-Ito-derived, darkened for text contrast on white.
COLOURS = {
    "ok": "#0060a0",
    "warn": "#a85400",
    "crit": "#b2182b",
    "idle": "#555",
    "no_data": "#555",
    None: "#555",
}
WORDS = {
    "ok": "\u2713 OK",
    "warn": "! WARN",
    "crit": "\u2717 CRIT",
    "idle": "\u2013 IDLE",
    "no_data": "? NO DATA",
}
TIERS = {"app_pool": "App pool", "pgbouncer": "PgBouncer", "postgres": "PostgreSQL"}
e = html.escape


def sparkline(
    values: Sequence[float], status: str | None, width: int = 120, height: int = 24
) -> str:
    """An inline SVG polyline of ``values``; a dashed baseline when there is no history yet."""
    points = [v for v in values if math.isfinite(v)]
    colour = COLOURS.get(status, "#555")
    head = (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="recent history">'
    )
    if len(points) < 2:
        return (
            f'{head}<line x1="0" y1="{height / 2}" x2="{width}" y2="{height / 2}" stroke="#bbb" '
            f'stroke-dasharray="3 3"/></svg>'
        )
    lo, hi = min(points), max(points)
    span = (hi - lo) or 1.0
    step = width / (len(points) - 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}"
        for i, v in enumerate(points)
    )
    return (
        f'{head}<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
        f'points="{coords}"/></svg>'
    )


def badge(status: str) -> str:
    return (
        f'<span class="badge" style="color:{COLOURS.get(status, "#555")};border-color:'
        f'{COLOURS.get(status, "#555")}">{e(WORDS.get(status, status.upper()))}</span>'
    )


def _row(row: Mapping[str, Any]) -> str:
    signal = BY_KEY[row["signal"]]
    word = "&gt;" if row["bad_when"] == "above" else "&lt;"
    status = row["status"]
    labels = " ".join(
        f"{k}={v}" for k, v in row["labels"].items() if k not in ("collector", "target")
    )
    where = f"{row['collector']} \u00b7 {row['target']}" + (f" \u00b7 {labels}" if labels else "")
    why = f'<p class="why">{e(row["sentence"])}</p>' if row.get("sentence") else ""
    return (
        f'<div class="row st-{e(status)}" data-signal="{e(row["signal"])}" '
        f'data-status="{e(status)}" data-collector="{e(row["collector"])}" '
        f'data-target="{e(row["target"])}">'
        f"{badge(status)}"
        f'<a class="title" href="{e(row["runbook_url"])}">{e(row["title"])}</a>'
        f'<span class="where">{e(where)}</span>'
        f'<span class="value">{e(row["display"])}</span>'
        f'<span class="levels">warn {word} {e(signal.format_level(row["warn"]))}, crit {word} '
        f"{e(signal.format_level(row['crit']))}</span>"
        f"{sparkline(row['history'], status)}{why}</div>"
    )


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:.0f} %"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else e(str(value))


def _speedup(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}x"


def _chain(chain: Sequence[Mapping[str, Any]]) -> str:
    if not chain:
        return "<p class='note'>No pool is reported yet.</p>"
    links = []
    for link in chain:
        status = str(link["status"])
        links.append(
            f'<li class="link st-{e(status)}" data-tier="{e(link["tier"])}">'
            f"<b>{e(TIERS.get(link['tier'], link['tier']))}</b> "
            f"<span>{e(str(link['name']))} on {e(str(link['target']))}</span>"
            f"<span class='value'>{_num(link['in_use'])} / {_num(link['limit'])} "
            f"({_pct(link['utilisation'])})</span>{badge(status)}</li>"
        )
    arrow = '<li class="arrow" aria-hidden="true">\u2192</li>'
    return f'<ol class="chain" aria-label="saturation chain">{arrow.join(links)}</ol>'


def _namespaces(items: Sequence[Mapping[str, Any]]) -> str:
    if not items:
        return ""
    rows = "".join(
        f"<tr><td>{e(n['namespace'])}</td><td>{_num(n['keys'])}</td>"
        f"<td>{_num(n['keys_without_ttl'])}</td><td>{_num(n['memory_bytes'])}</td>"
        f"<td>{_pct(n['hit_ratio'])}</td>"
        f"<td>{_speedup(n['speedup'])}</td></tr>"
        for n in items
    )
    return (
        "<div class='wide'><table class='facts'><caption>Namespaces</caption><tr><th>namespace"
        "</th><th>keys</th><th>no TTL</th><th>bytes</th><th>hit ratio</th><th>speedup</th>"
        f"</tr>{rows}</table></div>"
    )


def _items(title: str, items: Sequence[Any], cls: str) -> str:
    if not items:
        return f"<h3>{e(title)}</h3><p class='note {cls}'>None.</p>"
    lis = "".join(f"<li>{e(_item(i))}</li>" for i in items)
    return f"<h3>{e(title)}</h3><ul class='{cls}'>{lis}</ul>"


def _item(item: Any) -> str:
    if isinstance(item, Mapping):
        if "advice" in item:
            where = "/".join(str(item[k]) for k in ("target", "datname") if item.get(k))
            return f"{where}: {item['advice']}" if where else str(item["advice"])
        return ", ".join(f"{k}: {v}" for k, v in item.items() if v is not None)
    return str(item)


def _resources(q: Mapping[str, Any]) -> str:
    parts = []
    for name in ("host", "container", "pressure"):
        facts = q.get(name)
        if not facts:
            continue
        text = ", ".join(
            f"{k} {_fact(k, v)}"
            for k, v in facts.items()
            if v is not None and not isinstance(v, Mapping | list)
        )
        parts.append(f"<p class='note'><b>{e(name.capitalize())}</b>: {e(text)}</p>")
    return "".join(parts)


def _fact(name: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{value * 100:.0f} %" if "utilisation" in name else f"{value:.3g}"
    return str(value)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 1000:.1f} ms"


def _table(caption: str, head: Sequence[str], rows: Sequence[Sequence[str]], cls: str) -> str:
    """A facts table that scrolls inside its box on a narrow screen, never the page."""
    if not rows:
        return f"<h3>{e(caption)}</h3><p class='note {cls}'>None.</p>"
    header = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return (
        f"<h3>{e(caption)}</h3><div class='wide'><table class='facts {cls}'>"
        f"<tr>{header}</tr>{body}</table></div>"
    )


def _slow_statements(items: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        (
            str(i.get("target", "")),
            str(i.get("queryid", "")),
            str(i.get("datname", "")),
            _ms(i.get("mean_seconds")),
            _ms(i.get("mean_seconds_history")),
            f"{float(i.get('calls_per_second') or 0):.2f}/s",
            ", ".join(f"{k} {v}" for k, v in (i.get("wait_samples") or {}).items()),
            str(i.get("query") or ""),
        )
        for i in items
    ]
    head = ("target", "queryid", "database", "mean now", "mean (history)", "calls", "waits", "text")
    return _table("Slow statements", head, rows, "slow")


def _blocking(chains: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        (
            str(c.get("target", "")),
            str(c.get("pid", "")),
            str(c.get("application_name") or ""),
            str(c.get("state", "")),
            str(c.get("waiting", "")),
            str(c.get("queryid", "")),
            str(c.get("query") or ""),
        )
        for c in chains
    ]
    head = ("target", "root pid", "application", "state", "waiting behind", "queryid", "text")
    return _table("Blocking", head, rows, "blocking")


def _extras(q: Mapping[str, Any]) -> str:
    qid = q["id"]
    if qid == "cache":
        return _namespaces(q["namespaces"])
    if qid == "pools":
        return "<h3>Saturation chain</h3>" + _chain(q["chain"])
    if qid == "queries":
        return (
            _slow_statements(q["slow_statements"])
            + _blocking(q["blocking"])
            + _items("Index recommendations", q["index_recommendations"], "recs")
        )
    if qid == "resources":
        return _resources(q)
    return ""


def render_html(data: Mapping[str, Any]) -> str:
    score = data["score"]
    score_text = "-" if score is None else str(score)
    score_status = (
        None if score is None else "ok" if score >= 90 else "warn" if score >= 60 else "crit"
    )
    refresh = data.get("refresh_seconds")
    meta_refresh = (
        f'<meta http-equiv="refresh" content="{max(1, round(refresh))}">' if refresh else ""
    )
    sections = []
    for q in data["questions"]:
        rows = "".join(_row(r) for r in q["signals"]) or (
            "<p class='note'>No target of this kind is configured.</p>"
        )
        sections.append(
            f'<section id="q-{e(q["id"])}" data-question="{e(q["id"])}" '
            f'data-status="{e(q["status"])}"><h2>{e(q["title"])} {badge(q["status"])}</h2>'
            f"{rows}{_extras(q)}</section>"
        )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta_refresh}<title>perf-exporter: performance summary</title><style>"
        "*{box-sizing:border-box}"
        "body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em;max-width:80em;"
        "color:#222;overflow-wrap:anywhere}"
        "h1{margin:.2em 0}h2{font-size:1.2em;margin:1.2em 0 .4em;display:flex;gap:.5em;"
        "flex-wrap:wrap;align-items:center}h3{font-size:1em;margin:.8em 0 .3em}"
        "section{border-top:2px solid #ddd;padding-top:.2em}"
        ".badge{font-weight:bold;border:2px solid;border-radius:.3em;padding:0 .35em;"
        "font-size:.85em;white-space:nowrap}"
        ".row{display:flex;flex-wrap:wrap;gap:.3em .8em;align-items:center;padding:.4em .3em;"
        "border-bottom:1px solid #eee}"
        ".row .title{flex:1 1 14em;font-weight:600}.row .where{flex:1 1 12em;color:#444}"
        ".row .value{flex:0 0 7em;text-align:right;font-variant-numeric:tabular-nums;"
        "font-weight:600}.row .levels{flex:0 1 13em;color:#555;font-size:.9em}"
        ".spark{max-width:100%;flex:0 0 auto}"
        ".why{flex:1 1 100%;margin:.1em 0 0;font-size:.9em;color:#333}"
        ".st-crit{background:#fbe9eb}.st-warn{background:#fdf1e3}"
        ".chain{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.4em;"
        "align-items:center}.link{border:1px solid #bbb;border-radius:.4em;padding:.4em .6em;"
        "display:flex;flex-direction:column;gap:.15em;min-width:9em}"
        ".arrow{font-size:1.5em;color:#555}"
        ".wide{max-width:100%;overflow-x:auto}table{border-collapse:collapse;overflow-wrap:normal}"
        "td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}"
        "caption{text-align:left;font-weight:bold;padding:.3em 0}"
        ".score{font-size:3em;font-weight:bold}.note{color:#444}"
        "a{color:#0050a0}"
        "@media (max-width:30em){td,th{padding:.2em .25em;font-size:.85em}"
        ".row .value{flex-basis:5em}}"
        "</style></head><body>"
        f"<h1>Performance summary</h1><p>perf-exporter {e(data['version'])} \u00b7 "
        "<a href='/metrics'>/metrics</a> \u00b7 <a href='/summary'>/summary</a> \u00b7 "
        "<a href='/summary?format=text'>text</a> \u00b7 <a href='/runbooks'>runbooks</a> \u00b7 "
        "<a href='/healthz'>/healthz</a></p>"
        f'<p>Score <span class="score" style="color:{COLOURS[score_status]}">{score_text}</span>'
        f" / 100 {badge(score_status) if score_status else ''}</p>"
        f"<p class='note' id='score-note'>{e(data['score_note'])} "
        f"<small>({e(data['score_formula'])})</small></p>" + "".join(sections) + "</body></html>"
    )
