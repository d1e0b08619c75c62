"""``python -m bench --quick`` runs end to end and writes the records the report is built from.

Timings are not asserted (a shared CI machine makes them noise); what must hold is that every
exporter was measured, every field is there, and the server-load accounting tells an exporter
that queries a server on each scrape from one that does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.processes import run_module

pytestmark = pytest.mark.integration

EXPORTER_FIELDS = {
    "exporter",
    "ours",
    "settings",
    "series",
    "bytes_plain",
    "bytes_gzip",
    "seq_scrapes",
    "seq_p50_ms",
    "seq_p99_ms",
    "wrk_requests",
    "wrk_rps",
    "wrk_p50_ms",
    "wrk_p99_ms",
    "wrk_errors",
    "cpu_per_scrape_ms",
    "cpu_per_scrape_ms_seq",
    "cpu_per_scrape_ms_wrk",
    "rss_bytes",
    "rss_peak_bytes",
    "pg_statements_per_scrape",
    "redis_commands_per_scrape",
    "load_window_clean",
}
SCALING_FIELDS = {
    "targets",
    "interval_s",
    "rounds",
    "cpu_per_round_ms",
    "cpu_core_pct_at_15s",
    "rss_bytes",
    "series",
    "seq_p50_ms",
    "seq_p99_ms",
    "wrk_p99_ms",
    "wrk_rps",
    "pg_statements_per_collection",
    "redis_commands_per_collection",
    "collector_duration_ms",
}


@pytest.mark.timeout(180)
def test_quick_bench_measures_every_exporter(tmp_path: Path) -> None:
    proc = run_module("bench", "--quick", "--out", str(tmp_path), timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [jsonl] = tmp_path.glob("*-quick.jsonl")
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]

    run = records[0]
    assert run["kind"] == "run" and run["quick"] is True
    assert run["duration_s"] < 120
    workload = run["workload"]
    assert workload["pg_stat_statements_entries"] >= workload["generated_statements"] >= 200
    assert workload["redis_keys"] >= 3000
    assert 0.7 < workload["redis_hit_ratio"] < 0.9

    exporters = {r["exporter"]: r for r in records if r["kind"] == "exporter"}
    assert {"postgres_exporter", "redis_exporter", "node_exporter"} <= set(exporters)
    for name, record in exporters.items():
        assert set(record) >= EXPORTER_FIELDS, name
        assert record["series"] > 50, name
        assert 0 < record["bytes_gzip"] < record["bytes_plain"], name
        assert record["seq_scrapes"] > 0 and record["wrk_requests"] > 0, name
        assert record["wrk_errors"] == 0, name
        assert record["rss_bytes"] > 0 and record["cpu_per_scrape_ms"] > 0, name

    # postgres_exporter queries PostgreSQL and redis_exporter Redis on every scrape ...
    assert exporters["postgres_exporter"]["pg_statements_per_scrape"] >= 1
    assert exporters["redis_exporter"]["redis_commands_per_scrape"] >= 1
    # ... while node_exporter touches neither, and the accounting must show exactly that
    assert exporters["node_exporter"]["pg_statements_per_scrape"] == 0
    assert exporters["node_exporter"]["redis_commands_per_scrape"] == 0
    assert exporters["redis_exporter"]["pg_statements_per_scrape"] == 0
    assert exporters["postgres_exporter"]["redis_commands_per_scrape"] == 0

    if run["perf_exporter"]:
        assert exporters["perf_exporter"]["ours"] is True
        scaling = [r for r in records if r["kind"] == "scaling"]
        assert [r["targets"] for r in scaling] == [1, 3]
        for record in scaling:
            assert set(record) >= SCALING_FIELDS
            assert record["rounds"] >= 1
        assert (tmp_path / "latest.png").stat().st_size > 10_000

        # the multi-target point: perf-exporter, postgres_exporter (one process per target) and
        # redis_exporter (/scrape?target=) serving the same targets, scraped by one loop
        [multi] = [r for r in records if r["kind"] == "multitarget"]
        assert multi["targets"] == 5 and multi["warmup_clean"], multi
        assert set(multi["exporters"]) == {"perf_exporter", "postgres_exporter", "redis_exporter"}
        assert multi["exporters"]["postgres_exporter"]["processes"] == 5
        for name, record in multi["exporters"].items():
            assert record["cpu_seconds"] > 0 and record["cpu_ms_per_target_interval"] > 0, name
            assert record["rss_bytes"] > 0 and record["pss_bytes"] > 0, name
            assert record["scrapes"] > 0 and record["failed_scrapes"] == 0, name
            assert record["series_per_target"] > 10, name
        assert multi["exporters"]["perf_exporter"]["collections"] > 0
        assert "## Multi-target at 5 targets" in (tmp_path / "latest.md").read_text()

    table = (tmp_path / "latest.md").read_text()
    assert "| 4 scrapers p99 (ms) |" in table
    assert "node_exporter" in table


@pytest.mark.timeout(180)
def test_profile_mode_records_the_daemon_with_py_spy(tmp_path: Path) -> None:
    """``python -m bench --profile``: the tool that found the summary board's quadratic update."""
    # 7 s: longer than the 5 s interval, so that every target is collected while py-spy records;
    # 10 targets: with 3 the daemon was busy for so few samples that a full run caught only 3
    args = ["--profile", "10", "--profile-seconds", "7", "--quick", "--out", str(tmp_path)]
    proc = run_module("bench", *args, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    raw = (tmp_path / "profile-10.raw").read_text()
    assert "exporter/cli.py" in raw
    summary = (tmp_path / "profile-10.txt").read_text()
    assert summary.startswith("perf-exporter with 10 PostgreSQL + Redis targets")
    busy = int(summary.split("busy samples: ")[1].split()[0])
    assert busy > 0
    # which of the daemon's functions the busy samples land in is chance (a quick workload keeps
    # it busy for only milliseconds per cycle); that they are the daemon's own is not
    inclusive = summary.split("inclusive (share of busy samples):")[1].split("self:")[0]
    assert "(exporter/cli.py:" in inclusive, summary
