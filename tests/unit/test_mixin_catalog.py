"""The catalog: a signal is one complete entry; Thresholds and dashboards follow from it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from exporter.mixin.catalog import BY_KEY, SIGNALS, Formula
from exporter.mixin.dashboards import dashboards
from exporter.mixin.dashboards.panels import Panels
from exporter.mixin.thresholds import Thresholds


def test_a_signal_without_its_daemon_evaluation_cannot_be_built() -> None:
    signal = BY_KEY["redis_evictions"]
    no_evaluation: Any = None
    with pytest.raises(TypeError, match="redis_evictions: a signal needs both"):
        dataclasses.replace(
            signal, formula=Formula(signal.formula.promql, no_evaluation, signal.metrics)
        )


def test_a_signal_with_an_unknown_unit_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="unit 'furlongs'"):
        dataclasses.replace(BY_KEY["redis_evictions"], unit="furlongs")


def test_threshold_defaults_are_the_catalog_levels() -> None:
    t = Thresholds()
    for signal in SIGNALS:
        level = t.level(signal.key)
        assert (level.warn, level.crit, level.for_warn, level.for_crit, level.min_rate) == (
            signal.levels
        )


def test_every_signal_key_is_a_thresholds_key_and_no_other_level_exists() -> None:
    levels = {k for k, v in Thresholds().model_dump().items() if isinstance(v, dict)}
    assert levels == {s.key for s in SIGNALS}


def test_a_signal_not_laid_out_gets_a_graph_on_its_home_dashboard() -> None:
    data = Panels(Thresholds()).dashboard("perf-exporter-redis", "Redis", "no layout", [])
    titles = [panel["title"] for panel in data["panels"]]
    redis = [s.title for s in SIGNALS if s.source == "redis"]
    assert titles == ["More signals", *redis]


def test_every_signal_is_on_its_home_dashboard() -> None:
    boards = dashboards(Thresholds())
    for signal in SIGNALS:
        panels = boards[f"{signal.dashboard}.json"]["panels"]
        assert signal.title in {panel["title"] for panel in panels}, signal.key
