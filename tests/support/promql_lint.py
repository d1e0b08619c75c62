"""PromQL checks shared by the mixin lint tests, on a real parser (promql-parser)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import promql_parser as pp

RANGE_FUNCTIONS = {"rate", "irate", "increase"}
#: Gauge trend functions may look back a fixed window (the fill prediction), not a rate interval.
GAUGE_RANGE_FUNCTIONS = {"deriv", "predict_linear"}
# by name: counters end in _total, histogram series in _bucket and _seconds_count/_sum
COUNTER_SUFFIXES = ("_total", "_bucket", "_seconds_count", "_seconds_sum")
OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}

GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "${datasource}": "prom",
    "$job": ".+",
    "$instance": ".+",
    "$target": ".+",
}


def substitute(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


@dataclass
class Selector:
    name: str
    matchers: dict[str, tuple[str, str]]
    #: Function names enclosing the selector, innermost first.
    functions: list[str] = field(default_factory=list)
    in_range: bool = False


def _children(node: object) -> Iterator[object]:
    if isinstance(node, pp.BinaryExpr):
        yield node.lhs
        yield node.rhs
    elif isinstance(node, pp.AggregateExpr):
        if node.param is not None:
            yield node.param
        yield node.expr
    elif isinstance(node, pp.Call):
        yield from node.args
    elif isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
        yield node.expr
    elif isinstance(node, pp.MatrixSelector):
        yield node.vector_selector


def selectors(expr: str) -> list[Selector]:
    """Every vector selector of ``expr`` with the functions around it."""
    found: list[Selector] = []

    def visit(node: object, functions: list[str], in_range: bool) -> None:
        if isinstance(node, pp.VectorSelector):
            matchers = {
                m.name: (OPS[str(m.op).rsplit(".", 1)[-1]], m.value) for m in node.matchers.matchers
            }
            found.append(Selector(node.name or "", matchers, list(functions), in_range))
            return
        if isinstance(node, pp.Call):
            functions = [node.func.name, *functions]
        if isinstance(node, pp.MatrixSelector):
            in_range = True
        for child in _children(node):
            visit(child, functions, in_range)

    visit(pp.parse(expr), [], False)
    return found


def problems(raw: str, require: tuple[str, ...]) -> list[str]:
    """Lint one expression: parses, filters on ``require`` labels, ranges use $__rate_interval
    (rules: any), counters only inside rate/irate/increase."""
    out: list[str] = []
    try:
        found = selectors(substitute(raw))
    except (ValueError, RuntimeError) as exc:
        return [f"does not parse: {exc}"]
    for sel in found:
        missing = [label for label in require if label not in sel.matchers]
        if missing:
            out.append(f"{sel.name} lacks a filter on {', '.join(missing)}")
        if sel.name.endswith(COUNTER_SUFFIXES) and not (
            sel.in_range and sel.functions and sel.functions[0] in RANGE_FUNCTIONS
        ):
            out.append(f"counter {sel.name} used outside rate/irate/increase")
        if (
            sel.in_range
            and sel.functions
            and sel.functions[0] not in (RANGE_FUNCTIONS | GAUGE_RANGE_FUNCTIONS)
        ):
            out.append(f"{sel.name} range used by {sel.functions[0]}")
    return out
