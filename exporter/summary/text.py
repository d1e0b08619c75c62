"""The summary as aligned plain text, for ``curl /summary?format=text`` on a box without a browser.

The same content as the JSON and the page, question by question: the status of each, one line
per signal row, the sentence of every row that is not ok, then the question's own facts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    out = []
    for row in (header, *rows):
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def percent(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:.1f}%"


def number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def series_text(row: Mapping[str, Any]) -> str:
    labels = {k: v for k, v in row["labels"].items() if k not in ("collector", "target")}
    return " ".join(f"{k}={v}" for k, v in labels.items()) or "-"


def _facts(question: Mapping[str, Any]) -> list[str]:
    q = question["id"]
    lines: list[str] = []
    if q == "cache" and question["namespaces"]:
        lines.append("  Namespaces:")
        lines += table(
            ("NAMESPACE", "KEYS", "NO TTL", "MEMORY", "HIT RATIO", "SPEEDUP"),
            [
                (
                    n["namespace"],
                    number(n["keys"]),
                    number(n["keys_without_ttl"]),
                    number(n["memory_bytes"]),
                    percent(n["hit_ratio"]),
                    "-" if n["speedup"] is None else f"{n['speedup']:.1f}x",
                )
                for n in question["namespaces"]
            ],
            "    ",
        )
    if q == "pools" and question["chain"]:
        lines.append(
            "  Saturation chain: "
            + " -> ".join(
                f"{link['tier']} {link['name']} {number(link['in_use'])}/"
                f"{number(link['limit'])} ({percent(link['utilisation'])}, {link['status']})"
                for link in question["chain"]
            )
        )
    if q == "queries":
        for name, title in (("slow_statements", "Slow statements"), ("blocking", "Blocking")):
            items = question[name]
            lines.append(f"  {title}: {'none' if not items else ''}".rstrip())
            for item in items:
                lines.append("    " + ", ".join(f"{k}={v}" for k, v in item.items()))
    if q == "resources":
        for name in ("host", "container", "pressure"):
            facts = question[name]
            if facts:
                text = ", ".join(
                    f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in facts.items()
                )
                lines.append(f"  {name.capitalize()}: {text}")
    return lines


def render_text(data: Mapping[str, Any]) -> str:
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(data["generated_at"]))
    score = "-" if data["score"] is None else str(data["score"])
    lines = [
        f"perf-exporter {data['version']} performance summary, {generated}",
        f"Score {score}/100: {data['score_note']}",
    ]
    for question in data["questions"]:
        lines += ["", f"{question['title']} [{question['status'].upper().replace('_', ' ')}]"]
        rows = question["signals"]
        if rows:
            lines += table(
                ("STATUS", "SIGNAL", "COLLECTOR/TARGET", "SERIES", "VALUE"),
                [
                    (
                        r["status"].replace("_", " "),
                        r["title"],
                        f"{r['collector']}/{r['target']}",
                        series_text(r),
                        r["display"],
                    )
                    for r in rows
                ],
            )
        else:
            lines.append("  No target of this kind is configured.")
        lines += [f"  * {r['sentence']}" for r in rows if r["sentence"]]
        lines += _facts(question)
    return "\n".join(lines) + "\n"
