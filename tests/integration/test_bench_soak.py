"""``python -m bench --soak 15`` runs end to end and writes the soak's records, table and plot.

No timing is asserted (a shared machine makes it noise): what must hold is that the servers
flapped, the daemon saw collections fail and recover, every sample carries the quantities the
report is built from, and the daemon came through it (every target up again, exit code 0).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.processes import run_module

pytestmark = pytest.mark.integration

SAMPLE_FIELDS = {
    "t_s",
    "rss_bytes",
    "open_fds",
    "asyncio_tasks",
    "cpu_seconds",
    "scrapes",
    "scrape_p50_ms",
    "scrape_max_ms",
    "failed_cycles",
    "recoveries",
    "scrape_errors",
    "flaps",
    "down",
}
SUMMARY_FIELDS = {
    "samples",
    "duration_s",
    "flaps",
    "redis_kills",
    "pg_stops",
    "failed_cycles",
    "recoveries",
    "scrapes",
    "scrape_errors",
    "scrape_p50_ms",
    "scrape_p99_ms",
    "scrape_max_ms",
    "cpu_core_pct",
    "rss_bytes",
    "open_fds",
    "asyncio_tasks",
}


@pytest.mark.timeout(150)
def test_short_soak_writes_samples_summary_table_and_plot(tmp_path: Path) -> None:
    proc = run_module("bench", "--soak", "15", "--out", str(tmp_path), timeout=140)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [jsonl] = tmp_path.glob("soak-*.jsonl")
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    run, *samples, summary = records

    assert run["kind"] == "soak_run" and run["seconds"] == 15 and run["interval_s"] == 1.0
    assert run["exit_code"] == 0
    assert run["all_up_at_end"] is True

    assert len(samples) >= 3
    for sample in samples:
        assert sample["kind"] == "soak_sample"
        assert set(sample) >= SAMPLE_FIELDS
        assert sample["rss_bytes"] > 10 * 2**20
        assert sample["open_fds"] > 0 and sample["asyncio_tasks"] > 0
    assert [s["t_s"] for s in samples] == sorted(s["t_s"] for s in samples)

    assert summary["kind"] == "soak_summary"
    assert set(summary) >= SUMMARY_FIELDS
    assert summary["samples"] == len(samples)
    # the flapping reached the daemon: cycles failed and collectors came back
    assert summary["redis_kills"] >= 1 and summary["pg_stops"] >= 1
    assert summary["failed_cycles"] >= 1
    assert summary["recoveries"] >= 1
    assert summary["scrape_errors"] == 0
    for quantity in ("rss_bytes", "open_fds", "asyncio_tasks"):
        stats = summary[quantity]
        assert set(stats) == {"start", "end", "min", "max", "growth", "growth_after_warmup"}
        assert stats["min"] <= stats["start"] <= stats["max"], quantity
        assert stats["end"] - stats["start"] == stats["growth"], quantity

    table = (tmp_path / "soak.md").read_text()
    assert "| RSS (MiB) |" in table and "| open fds |" in table and "| asyncio tasks |" in table
    failed = "| failed collection cycles (`perf_exporter_collector_errors_total`) "
    assert f"{failed}| {summary['failed_cycles']} |" in table
    assert (tmp_path / "soak.png").stat().st_size > 10_000
