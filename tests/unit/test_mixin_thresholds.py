"""Thresholds: defaults, overrides from config and the problems bad overrides report."""

from __future__ import annotations

import pytest

from exporter.config import ConfigError
from exporter.mixin.catalog import SIGNALS
from exporter.mixin.thresholds import Thresholds


def test_every_signal_has_levels_ordered_by_its_direction() -> None:
    t = Thresholds()
    for signal in SIGNALS:
        level = t.level(signal.key)
        assert (level.crit >= level.warn) if signal.above else (level.crit <= level.warn)


def test_defaults_follow_the_reference_app_cache_targets() -> None:
    t = Thresholds()
    # the application aims at 70-90 % hits: below 70 % is critical
    assert t.redis_hit_ratio.crit == 0.70
    assert t.app_cache_hit_ratio.crit == 0.70
    assert t.redis_hit_ratio.warn == 0.80


def test_override_merges_one_level_and_keeps_the_rest() -> None:
    t = Thresholds.from_overrides({"redis_hit_ratio": {"warn": 0.85}, "selector": 'job="x"'})
    assert t.redis_hit_ratio.warn == 0.85
    assert t.redis_hit_ratio.crit == 0.70
    assert t.redis_hit_ratio.for_warn == "10m"
    assert t.selector == 'job="x"'


def test_bad_overrides_are_reported_all_at_once_with_their_path() -> None:
    with pytest.raises(ConfigError) as err:
        Thresholds.from_overrides(
            {
                "redis_hit_ratio": {"warn": "lots", "for_crit": "ten minutes"},
                "redis_hit_rate": {"warn": 0.1},
                "selector": "job=perf",
                "postgres_probe_p99": {"bogus": 1},
            }
        )
    assert sorted(err.value.problems) == [
        "thresholds.postgres_probe_p99.bogus: unknown key (check its spelling and place)",
        "thresholds.redis_hit_rate: unknown key (check its spelling and place)",
        "thresholds.redis_hit_ratio.for_crit: must be a Prometheus duration such as 30s, 5m or 1h",
        "thresholds.redis_hit_ratio.warn: must be a finite number",
        'thresholds.selector: must be label matchers such as job="perf-exporter"',
    ]


def test_inverted_levels_are_refused_with_the_signal_named() -> None:
    with pytest.raises(ConfigError) as err:
        Thresholds.from_overrides({"redis_hit_ratio": {"warn": 0.5, "crit": 0.9}})
    assert err.value.problems == [
        "thresholds.redis_hit_ratio: crit must be at least as bad as warn "
        "(this signal is bad below its levels)"
    ]


def test_selector_with_several_matchers_is_normalised() -> None:
    t = Thresholds.from_overrides({"selector": 'job="a",env=~"prod|stage"'})
    assert t.selector == 'job="a", env=~"prod|stage"'


def test_runbook_url_pattern_fills_the_anchor() -> None:
    t = Thresholds.from_overrides({"runbook_url": "https://wiki.example/{anchor}"})
    assert t.runbook("perfredishitratiolow") == "https://wiki.example/perfredishitratiolow"
    with pytest.raises(ConfigError):
        Thresholds.from_overrides({"runbook_url": "https://wiki.example/"})


def test_default_runbook_url_is_the_scraped_exporter_itself() -> None:
    t = Thresholds()
    anchor = "perfpostgrescachehitratiolow"
    assert t.runbook(anchor) == f"http://{{{{ $labels.instance }}}}/runbooks#{anchor}"
    assert t.runbook_with_instance(anchor, "db1:9839") == f"http://db1:9839/runbooks#{anchor}"
    assert t.runbook_here(anchor) == f"/runbooks#{anchor}"
    https = Thresholds.from_overrides(
        {"runbook_url": "https://{{ $labels.instance }}/runbooks#{anchor}"}
    )
    assert https.runbook_here(anchor) == f"/runbooks#{anchor}"


def test_runbook_url_must_be_an_http_url() -> None:
    with pytest.raises(ConfigError) as err:
        Thresholds.from_overrides({"runbook_url": "wiki/{anchor}"})
    assert err.value.problems == [
        "thresholds.runbook_url: must be an http:// or https:// URL containing {anchor}"
    ]
