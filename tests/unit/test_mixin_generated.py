"""The committed alerts/, dashboards/ and docs/runbooks.md are what the generator produces, and
they pass the mixin lints: real PromQL parse, filters, $__rate_interval, counters, units,
alert naming and annotations."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard

from exporter.mixin import generate
from exporter.mixin.catalog import BY_KEY, COMPARED, SIGNALS
from exporter.mixin.dashboards import dashboards
from exporter.mixin.rules import alert_rules
from exporter.mixin.thresholds import Thresholds
from tests.support.promql_lint import problems, selectors, substitute

ROOT = Path(__file__).resolve().parents[2]
RENDERED = generate.render(Thresholds())


@pytest.mark.parametrize("rel", sorted(RENDERED))
def test_committed_file_matches_the_generator(rel: str) -> None:
    path = ROOT / rel
    assert path.exists(), f"{rel} is missing: run python -m exporter mixin --out ."
    assert path.read_text() == RENDERED[rel], (
        f"{rel} is stale: run python -m exporter mixin --out ."
    )


def test_no_stray_generated_files_are_committed() -> None:
    on_disk = {
        str(p.relative_to(ROOT))
        for d in ("alerts", "dashboards")
        for p in (ROOT / d).iterdir()
        if p.is_file()
    }
    assert on_disk == {rel for rel in RENDERED if rel.startswith(("alerts/", "dashboards/"))}


def test_main_writes_into_out_and_applies_config_thresholds(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("thresholds:\n  redis_hit_ratio: {warn: 0.85}\n")
    assert generate.main(["--config", str(cfg), "--out", str(tmp_path / "out")]) == 0
    rules = (tmp_path / "out/alerts/perf-exporter.rules.yml").read_text()
    assert ':perf_redis_keyspace_hit:ratio_rate5m{job="perf-exporter"} < 0.85 and on' in rules
    assert (tmp_path / "out/dashboards/overview.json").exists()


def test_main_rejects_bad_thresholds_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("thresholds:\n  redis_hit_ratio: {warn: high}\n")
    assert generate.main(["--config", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("thresholds.redis_hit_ratio.warn: ")
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


# --- rules ---------------------------------------------------------------------------------


def _rule_files() -> list[dict[str, Any]]:
    out = []
    for rel in ("alerts/perf-exporter.rules.yml", "alerts/recording.rules.yml"):
        for group in yaml.safe_load(RENDERED[rel])["groups"]:
            out.extend(group["rules"])
    return out


def test_alert_names_severities_and_annotations_follow_the_conventions() -> None:
    alerts = [r for r in _rule_files() if "alert" in r]
    assert len(alerts) == 2 * len(SIGNALS)
    for rule in alerts:
        assert re.fullmatch(r"(?:[A-Z][a-z0-9]*)+", rule["alert"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        summary = rule["annotations"]["summary"]
        description = rule["annotations"]["description"]
        assert summary.endswith(".") and "{{" not in summary, summary
        assert "$value" in description and "{{ $labels." in description, description
        # the exporter that was scraped serves the runbooks itself
        assert rule["annotations"]["runbook_url"] == (
            f"http://{{{{ $labels.instance }}}}/runbooks#{rule['alert'].lower()}"
        )


def test_warning_and_critical_twins_share_one_alert_name() -> None:
    names: dict[str, set[str]] = {}
    for rule in alert_rules(Thresholds()):
        names.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    assert all(sev == {"warning", "critical"} for sev in names.values())


def test_every_rule_anchor_exists_in_the_runbooks() -> None:
    text = RENDERED["docs/runbooks.md"]
    for rule in _rule_files():
        if "alert" in rule:
            anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
            assert f"## {rule['alert']}\n" in text and anchor == rule["alert"].lower()


def test_recording_rule_names_are_level_metric_operation() -> None:
    for rule in _rule_files():
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_every_rule_expression_parses_and_selects_the_configured_job() -> None:
    for rule in _rule_files():
        assert problems(rule["expr"], ("job",)) == [], rule["expr"]
        for sel in selectors(rule["expr"]):
            assert sel.matchers["job"] == ("=", "perf-exporter")


def test_alerts_compare_recorded_series_and_write_no_expression_again() -> None:
    recorded = {r["record"] for r in _rule_files() if "record" in r}
    for rule in _rule_files():
        if "alert" in rule:
            used = {s.name for s in selectors(rule["expr"])}
            assert used and used <= recorded, (rule["alert"], used - recorded)
            assert all(s.functions == [] for s in selectors(rule["expr"])), rule["expr"]


def test_guarded_alerts_require_the_minimum_traffic() -> None:
    t = Thresholds()
    guarded = {s.alert: s for s in SIGNALS if s.guarded}
    assert set(guarded) == {
        "PerfPostgresCacheHitRatioLow",
        "PerfRedisHitRatioLow",
        "PerfAppCacheHitRatioLow",
        "PerfAppCacheSpeedupLow",
    }
    for rule in _rule_files():
        signal = guarded.get(rule.get("alert", ""))
        if signal is not None:
            traffic = signal.traffic_record_name(t.rate_window)
            least = t.min_rate(signal.key)
            assert rule["expr"].endswith(f'{traffic}{{job="perf-exporter"}} >= {least:g}'), rule[
                "expr"
            ]


def test_the_statement_latency_rule_divides_rates_of_counters() -> None:
    # the reference postgres mixin takes rate() of a gauge here; ours divides two counter rates
    name = BY_KEY["postgres_statement_mean_latency"].record_name("5m")
    (rule,) = [r for r in _rule_files() if r.get("record") == name]
    found = {s.name: s.functions for s in selectors(rule["expr"])}
    assert found == {
        "perf_postgres_statement_exec_seconds_total": ["rate"],
        "perf_postgres_statement_calls_total": ["rate"],
    }


# --- dashboards ----------------------------------------------------------------------------


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


BOARDS = dashboards(Thresholds())


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_dashboard_round_trips_through_the_sdk(name: str) -> None:
    board = BOARDS[name]
    model = Dashboard.from_json(board)
    assert model.uid == board["uid"]
    again = json.loads(json.dumps(model.to_json(), default=lambda o: o.to_json()))
    assert again["panels"] == board["panels"]
    assert again["templating"] == board["templating"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_dashboard_metadata(name: str) -> None:
    board = BOARDS[name]
    assert board["uid"].startswith("perf-exporter-")
    assert board["editable"] is False
    assert "perf-exporter" in board["tags"]
    assert board["schemaVersion"] >= 39  # Grafana 11/12 accept it without migration
    assert any(link.get("url", "") == "http://${instance}/runbooks" for link in board["links"])
    assert any(p["type"] == "row" for p in board["panels"])
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for name_ in ("job", "instance", *(("target",) if "target" in variables else ())):
        var = variables[name_]
        assert var["multi"] and var["includeAll"] and var["allValue"] == ".+"
        assert var["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_dashboard_panels_pass_the_lint(name: str) -> None:
    board = BOARDS[name]
    has_target = any(v["name"] == "target" for v in board["templating"]["list"])
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels(board):
        where = f"{name}: {panel['title']}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{where} has no unit"
        assert panel.get("description"), f"{where} has no description"
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"]["uid"] == "${datasource}", where
            # every range in a rate is the rate interval, but for a comparison with the day
            # before, whose window is part of its meaning
            fixed = {COMPARED} if " offset " in expr else set()
            for rng in re.findall(r"\[([^\]]+)\]", expr):
                assert rng == "$__rate_interval" or rng in fixed or "deriv(" in expr, (
                    f"{where}: [{rng}]"
                )
            for sel in selectors(substitute(expr)):
                assert sel.matchers.get("job") == ("=~", ".+"), f"{where}: {sel.name} no $job"
                assert sel.matchers.get("instance") == ("=~", ".+"), f"{where}: {sel.name}"
                remote = not sel.name.startswith(("perf_host_", "perf_exporter_"))
                if remote:
                    assert has_target and "target" in sel.matchers, f"{where}: {sel.name}"
            assert problems(expr, ("job", "instance")) == [], f"{where}: {expr}"


def test_stat_panels_colour_at_the_alert_levels() -> None:
    t = Thresholds()
    by_title = {s.title: s for s in SIGNALS}
    seen = 0
    for board in BOARDS.values():
        for panel in _panels(board):
            if panel["type"] != "stat":
                continue
            signal = by_title[panel["title"]]
            level = t.level(signal.key)
            steps = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
            assert steps[0] is None
            assert level.warn in steps and level.crit in steps, panel["title"]
            assert panel["links"][0]["url"].endswith("#" + signal.anchor)
            seen += 1
    assert seen >= len(SIGNALS) - 2


def test_every_signal_appears_on_some_dashboard() -> None:
    exprs = " ".join(t["expr"] for b in BOARDS.values() for p in _panels(b) for t in p["targets"])
    for signal in SIGNALS:
        for metric in signal.metrics:
            assert metric in exprs, metric


def test_the_lint_catches_what_it_claims_to() -> None:
    assert problems('rate(x_total{job="a"}[5m])', ("job",)) == []
    assert problems('x_total{job="a"}', ("job",)) == [
        "counter x_total used outside rate/irate/increase"
    ]
    assert problems("rate(x_total[5m])", ("job",)) == ["x_total lacks a filter on job"]
    assert problems("rate(x_total{job=", ("job",))[0].startswith("does not parse")
    assert problems('avg_over_time(x_total{job="a"}[5m])', ("job",)) != []
