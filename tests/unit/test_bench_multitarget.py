"""The multi-target point's bookkeeping: collections between bodies, failed cycles, the split of
series by target, the scrape URL with its query, and the table with its ratios."""

from __future__ import annotations

from typing import Any

from bench.multitarget import _collection_errors, _collections, _series_split
from bench.report import markdown
from bench.scrape import Scraper


def _body(stamps: dict[str, float], errors: float = 0.0) -> str:
    lines = [
        "# HELP perf_exporter_collector_last_success_timestamp_seconds x",
        *(
            "perf_exporter_collector_last_success_timestamp_seconds"
            f'{{collector="{name.rstrip("0123456789")}",target="{name}"}} {ts}'
            for name, ts in stamps.items()
        ),
        "perf_exporter_collector_errors_total"
        f'{{collector="redis",reason="timeout",target="redis0"}} {errors}',
        'perf_postgres_up{target="pg0"} 1.0',
        'perf_redis_up{target="redis0"} 1.0',
        "perf_exporter_build_info 1.0",
    ]
    return "\n".join(lines) + "\n"


def test_collections_count_each_job_at_most_once_between_two_bodies() -> None:
    first = _body({"pg0": 1.0, "redis0": 1.0})
    second = _body({"pg0": 16.0, "redis0": 1.0})  # redis0 fell behind
    third = _body({"pg0": 31.0, "redis0": 17.0})
    assert _collections([first, second, third]) == [1, 2]
    assert _collections([first, third]) == [2]  # one body pair: one collection per job at most


def test_collection_errors_add_up_every_reason_and_job() -> None:
    text = _body({}, errors=3) + (
        'perf_exporter_collector_errors_total{collector="postgres",reason="query",target="pg0"} 2\n'
    )
    assert _collection_errors(text) == 5


def test_series_are_split_by_target_kind() -> None:
    assert _series_split(_body({"pg0": 1.0, "redis0": 1.0})) == (2, 3, 1)


def test_scraper_keeps_the_query_string() -> None:
    scraper = Scraper("http://127.0.0.1:9121/scrape?target=redis%3A%2F%2F127.0.0.1%3A6379%2F0")
    assert scraper.path == "/scrape?target=redis%3A%2F%2F127.0.0.1%3A6379%2F0"
    assert Scraper("http://127.0.0.1:9187/metrics").path == "/metrics"


def _exporter(cpu_ms: float, rss_mib: float, **extra: Any) -> dict[str, Any]:
    return {
        "processes": 1,
        "targets": 100,
        "cpu_seconds": 1.0,
        "cpu_core_pct": 10.0,
        "cpu_ms_per_target_interval": cpu_ms,
        "rss_bytes": int(rss_mib * 2**20),
        "rss_peak_bytes": int(rss_mib * 2**20),
        "pss_bytes": int(rss_mib * 2**20),
        "scrapes": 200,
        "failed_scrapes": 0,
        "targets_down": 0,
        "scrape_p50_ms": 10.0,
        "scrape_p99_ms": 20.0,
        "series_per_target": 300.0,
        **extra,
    }


def test_multitarget_table_has_ratios_against_the_references_added_up_and_alone() -> None:
    ours = _exporter(
        20.0,
        500,
        targets=200,
        scrapes=2,
        series=60000,
        series_per_pg_target=300.0,
        series_per_redis_target=300.0,
        series_untargeted=10,
        collections=400,
        collections_expected=400,
        collection_errors=0,
        phases=30,
        phases_p50_ms=1.0,
        phases_p99_ms=500.0,
        phases_max_ms=600.0,
    )
    record = {
        "kind": "multitarget",
        "targets": 100,
        "interval_s": 15.0,
        "warmup_intervals": 1,
        "warmup_clean": True,
        "measured_intervals": 2,
        "window_s": 30.0,
        "loop_lag_max_ms": 1.0,
        "loop_late_scrapes": 0,
        "references_cpu_ms_per_target_interval": 5.0,
        "references_scrape_p50_ms": 10.0,
        "references_scrape_p99_ms": 20.0,
        "settings": {"perf_exporter": "x"},
        "exporters": {
            "perf_exporter": ours,
            "postgres_exporter": _exporter(8.0, 1500, processes=100),
            "redis_exporter": _exporter(2.0, 20),
        },
    }
    run = {
        "kind": "run",
        "run_id": "x-multi100",
        "date": "d",
        "quick": False,
        "duration_s": 1.0,
        "workload": {},
        "machine": {
            "cpu": "c",
            "cores": 2,
            "memory_gb": 1,
            "kernel": "k",
            "loadavg_start": [0, 0, 0],
        },
    }
    text = markdown([run, record])
    assert "## Multi-target at 100 targets: perf-exporter vs the references' multi-target" in text
    # CPU per target: 20 against 5 added up (over 2N), 8 and 2 alone
    assert "| CPU ms per target per 15 s | 20.00 | 8.00 | 2.00 | 5.00 | 4 | 2.5 | 10 |" in text
    # RSS: 500 against 1,520 MiB added up
    assert "| RSS at the end (MiB) | 500 | 1,500 | 20.00 | 1,520 | 0.329 | 0.333 | 25 |" in text
    assert "| processes (targets) | 1 (200) | 100 (100) | 1 (100) | 101 (200) | | | |" in text
    assert "| failed scrapes | 0 | 0 | 0 | 0 |  |  |  |" in text
