"""JSON lines, the Markdown comparison table (ratios ours/theirs) and the scaling plot."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Record = dict[str, Any]

#: (field, label, how the references combine: "best" low, "best_high", or "sum")
_ROWS: tuple[tuple[str, str, str], ...] = (
    ("series", "series", "sum"),
    ("bytes_plain", "body bytes (plain)", "sum"),
    ("bytes_gzip", "body bytes (gzip)", "sum"),
    ("seq_p50_ms", "sequential scrape p50 (ms)", "best"),
    ("seq_p99_ms", "sequential scrape p99 (ms)", "best"),
    ("wrk_p50_ms", "4 scrapers p50 (ms)", "best"),
    ("wrk_p99_ms", "4 scrapers p99 (ms)", "best"),
    ("wrk_rps", "4 scrapers requests/s", "best_high"),
    ("cpu_per_scrape_ms", "CPU per scrape (ms)", "sum"),
    ("rss_mb", "RSS (MB)", "sum"),
    ("pg_statements_per_scrape", "PostgreSQL statements per scrape", "sum"),
    ("redis_commands_per_scrape", "Redis commands per scrape", "sum"),
)


#: What perf-exporter's Redis namespace scan sends when Redis refuses its script.
_NAMESPACE_SCAN_COMMANDS = ("scan", "ttl", "memory|usage", "memory")


def _redis_cell(record: Record) -> str:
    """Commands sent per collection, what ran inside scripts, and the Redis time."""
    cell = f"{record['redis_commands_per_collection']}"
    inside = record.get("redis_commands_inside_scripts_per_collection")
    if inside:
        cell += f" (+{inside:g} in scripts)"
    usec = record.get("redis_usec_per_collection")
    if usec is not None:
        cell += f", {usec:g} us"
    return cell


def _pg_cell(record: Record) -> str:
    """Statements per collection, and the wait samples taken between collections with their
    server time (runs before the wait sampler existed have none)."""
    cell = f"{record['pg_statements_per_collection']}"
    samples = record.get("pg_wait_samples_per_collection")
    if samples is not None:
        server_ms = record.get("pg_wait_sample_server_ms_per_collection")
        cell += f" (+{samples:g} wait samples, {server_ms:g} ms)"
    return cell


def write_jsonl(records: Iterable[Record], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for record in records:
            fh.write(json.dumps(record, sort_keys=True) + "\n")


def read_jsonl(path: Path) -> list[Record]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _value(record: Record, field: str) -> float:
    if field == "rss_mb":
        return float(record["rss_bytes"]) / 2**20
    value = record.get(field)
    return float("nan") if value is None else float(value)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _ratio(ours: float, theirs: float) -> str:
    if math.isnan(ours) or math.isnan(theirs):
        return "n/a"
    if theirs == 0:
        return "0 vs 0" if ours == 0 else "inf"
    return f"{ours / theirs:.3g}"


def _combine(values: list[float], how: str) -> float:
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return float("nan")
    if how == "sum":
        return sum(clean)
    return max(clean) if how == "best_high" else min(clean)


def targets_check(records: list[Record]) -> list[Record]:
    """The issue's targets, each with the measured values and met / missed."""
    exporters = [r for r in records if r.get("kind") == "exporter"]
    ours = next((r for r in exporters if r["ours"]), None)
    refs = [r for r in exporters if not r["ours"]]
    scaling = {r["targets"]: r for r in records if r.get("kind") == "scaling"}
    fleet = next((r for r in records if r.get("kind") == "fleet"), None)
    if ours is None or not refs:
        return [] if fleet is None else fleet_checks(fleet)
    best = min(refs, key=lambda r: r["wrk_p99_ms"])
    fastest = max(refs, key=lambda r: r["wrk_rps"])
    cpu_refs = sum(r["cpu_per_scrape_ms"] for r in refs)
    rss_refs = sum(r["rss_bytes"] for r in refs)
    by_name = {r["exporter"]: r for r in refs}
    checks = [
        {
            "target": "p99 with 4 scrapers >= 5x lower than the best reference "
            f"({best['exporter']})",
            "value": f"{ours['wrk_p99_ms']} ms vs {best['wrk_p99_ms']} ms",
            "ratio": best["wrk_p99_ms"] / max(ours["wrk_p99_ms"], 1e-9),
            "met": best["wrk_p99_ms"] >= 5 * ours["wrk_p99_ms"],
        },
        {
            "target": f"requests/s >= 10x the fastest reference ({fastest['exporter']})",
            "value": f"{ours['wrk_rps']} vs {fastest['wrk_rps']}",
            "ratio": ours["wrk_rps"] / max(fastest["wrk_rps"], 1e-9),
            "met": ours["wrk_rps"] >= 10 * fastest["wrk_rps"],
        },
        {
            "target": "CPU per scrape >= 20x lower than the three references combined",
            "value": f"{ours['cpu_per_scrape_ms']} ms vs {cpu_refs:.3f} ms",
            "ratio": cpu_refs / max(ours["cpu_per_scrape_ms"], 1e-9),
            "met": cpu_refs >= 20 * ours["cpu_per_scrape_ms"],
        },
        {
            "target": "0 PostgreSQL statements and 0 Redis commands per scrape",
            "value": (
                f"{ours['pg_statements_per_scrape']} statements, "
                f"{ours['redis_commands_per_scrape']} commands"
                + ("" if ours["load_window_clean"] else " (window not clean)")
            ),
            "ratio": None,
            "met": ours["pg_statements_per_scrape"] == 0
            and ours["redis_commands_per_scrape"] == 0
            and ours["load_window_clean"],
        },
        {
            "target": "RSS below the three references' RSS added up",
            "value": f"{ours['rss_bytes'] / 2**20:.1f} MB vs {rss_refs / 2**20:.1f} MB",
            "ratio": rss_refs / ours["rss_bytes"],
            "met": ours["rss_bytes"] < rss_refs,
        },
    ]
    single = scaling.get(1)
    pg_ref = by_name.get("postgres_exporter")
    redis_ref = by_name.get("redis_exporter")
    if single is not None and pg_ref is not None and redis_ref is not None:
        pg_cycle = single.get("pg_statements_per_collection")
        redis_cycle = single.get("redis_commands_per_collection")
        by_name = single.get("redis_commands_by_name_per_collection", {})
        inside = single.get("redis_commands_inside_scripts_per_collection") or 0
        scan = 0 if inside else sum(by_name.get(n, 0) for n in _NAMESPACE_SCAN_COMMANDS)
        usec = single.get("redis_usec_per_collection")
        checks.append(
            {
                "target": "per collection at most what postgres_exporter / redis_exporter "
                "issue per scrape",
                "value": (
                    f"{pg_cycle} vs {pg_ref['pg_statements_per_scrape']} statements, "
                    f"{redis_cycle} vs {redis_ref['redis_commands_per_scrape']} commands"
                    + (f" ({scan:g} of them the namespace SCAN/TTL/MEMORY USAGE)" if scan else "")
                    + (f" (+{inside:g} run inside its scan script)" if inside else "")
                    + (f", {usec:g} us of Redis time" if usec is not None else "")
                ),
                "ratio": None,
                "met": pg_cycle is not None
                and redis_cycle is not None
                and pg_cycle <= pg_ref["pg_statements_per_scrape"]
                and redis_cycle <= redis_ref["redis_commands_per_scrape"],
            }
        )
    hundred = scaling.get(100)
    direct = next(
        (r for r in records if r.get("kind") == "scaling_direct" and r["targets"] == 100), None
    )
    if direct is not None:
        extrapolated = ""
        if hundred is not None and hundred["cpu_core_pct_at_15s"] is not None:
            extrapolated = f" (extrapolated from {hundred['interval_s']:g} s: "
            extrapolated += f"{hundred['cpu_core_pct_at_15s']} %)"
        checks.append(
            {
                "target": "100 targets at a 15 s interval under 20 % of one core",
                "value": f"{direct['cpu_core_pct_at_interval']} % of a core measured at 15 s"
                + extrapolated,
                "ratio": None,
                "met": direct["cpu_core_pct_at_interval"] < 20,
            }
        )
    elif hundred is not None and hundred["cpu_core_pct_at_15s"] is not None:
        checks.append(
            {
                "target": "100 targets at a 15 s interval under 20 % of one core",
                "value": f"{hundred['cpu_core_pct_at_15s']} % of a core (extrapolated)",
                "ratio": None,
                "met": hundred["cpu_core_pct_at_15s"] < 20,
            }
        )
    if fleet is not None:
        checks += fleet_checks(fleet)
    return checks


def fleet_checks(fleet: Record) -> list[Record]:
    """The issue's fleet goals (1,000 targets at 15 s) against the fleet point."""
    n = fleet["targets"]
    rss_mib = fleet["rss_bytes"] / 2**20
    return [
        {
            "target": f"{n} targets at 15 s: 4 scrapers p99 <= 20 ms while collections run",
            "value": f"{fleet['wrk_p99_ms']} ms (p50 {fleet['wrk_p50_ms']} ms, "
            f"{fleet['loaded_collections']} collections in the window)",
            "ratio": None,
            "met": fleet["wrk_p99_ms"] <= 20 and fleet["loaded_collections"] > 0,
        },
        {
            "target": f"{n} targets at 15 s: CPU <= 25 % of a core",
            "value": f"{fleet['cpu_core_pct']} % ({fleet['quiet_collections']} collections)",
            "ratio": None,
            "met": fleet["cpu_core_pct"] <= 25,
        },
        {
            "target": f"{n} targets at 15 s: RSS <= 300 MiB",
            "value": f"{rss_mib:.1f} MiB",
            "ratio": None,
            "met": rss_mib <= 300,
        },
    ]


def fleet_lines(records: list[Record]) -> list[str]:
    """The fleet table (one row per fleet point)."""
    rows = [r for r in records if r.get("kind") == "fleet"]
    if not rows:
        return []
    lines = [
        "",
        "## Fleet (PostgreSQL + Redis targets at 15 s, one quiet and one loaded interval)",
        "",
        "| targets (pg + redis) | series | body MB (gzip) | RSS MiB (peak) | % core quiet "
        "| % core under wrk | servers % core quiet (PostgreSQL / Redis) "
        "| collections quiet / loaded | 4 scrapers p50 / p99 ms | req/s "
        "| 4 paced scrapers p50 / p99 / max ms (req/s) "
        "| seq p50 / p99 ms | collection ms (pg / redis, max) | machine speed idle / quiet / "
        "loaded |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        durations = r["collector_duration_ms"]
        pg_ms = durations.get("postgres", {}).get("max", float("nan"))
        redis_ms = durations.get("redis", {}).get("max", float("nan"))
        lines.append(
            f"| {r['targets']} ({r['postgres_targets']} + {r['redis_targets']}) "
            f"| {r['series']} | {r['bytes_plain'] / 1e6:.1f} ({r['bytes_gzip'] / 1e6:.1f}) "
            f"| {_rss(r)} "
            f"| {r['cpu_core_pct']} | {r['cpu_core_pct_loaded']} | {_servers(r)} "
            f"| {r['quiet_collections']} / {r['loaded_collections']} "
            f"| {r['wrk_p50_ms']} / {r['wrk_p99_ms']} | {r['wrk_rps']} "
            f"| {_paced(r)} "
            f"| {r['seq_p50_ms']} / {r['seq_p99_ms']} | {_fmt(pg_ms)} / {_fmt(redis_ms)} "
            f"| {_speeds(r)} |"
        )
    lines += [
        "",
        "The windows start three minutes after the daemon, past its start-up (see "
        "bench/fleet.py). Quiet: the process's CPU over one whole 15 s interval with two gzip "
        "scrapes in it, "
        "as Prometheus asks (the daemon makes ahead only the bodies asked for). Loaded: "
        "wrk -c4 for the next whole interval, so its latencies include every collection and "
        "snapshot rebuild of an interval. Redis targets skip the namespace scan (see "
        "bench/fleet.py). Paced: the next whole interval, four scrapers each asking about four "
        "times a second at their own phase, so a latency is the wait behind the collections "
        "rather than the queue behind other scrapers' answers (wrk asks again the moment an "
        "answer arrives); the goal is still judged on wrk. Servers: the CPU of every "
        "`postgres` and `redis-server` process on the box over the quiet window (the bench's "
        "one PostgreSQL and one Redis serve all the targets, on the daemon's two cores). "
        "Machine speed: thread CPU time "
        "of a fixed unit of Python work "
        "sampled every second beside the daemon (bench/speed.py), the window's median over "
        "the fastest sample of the point: 1.0 is the machine at its best, 1.8 means the same "
        "work cost 1.8 times the CPU time. This VM's speed changes by that much from one "
        "moment to the next, so CPU figures of two runs compare only at similar speeds.",
    ]
    return lines


def _rss(r: Record) -> str:
    """RSS at the end (peak), and when every target was first up where that was read."""
    text = f"{r['rss_bytes'] / 2**20:.1f} ({r['rss_peak_bytes'] / 2**20:.1f})"
    if "rss_ready_bytes" in r:
        text += f", {r['rss_ready_bytes'] / 2**20:.1f} when up"
    return text


def _paced(r: Record) -> str:
    """The paced window's p50 / p99 / max (req/s), ``-`` for a record from before it existed."""
    if "paced_p99_ms" not in r:
        return "-"
    return f"{r['paced_p50_ms']} / {r['paced_p99_ms']} / {r['paced_max_ms']} ({r['paced_rps']})"


def _servers(r: Record) -> str:
    """The servers' % of a core over the quiet window, ``-`` for a record from before it."""
    servers = r.get("servers_cpu_core_pct")
    if not servers:
        return "-"
    return f"{servers.get('postgres', '-')} / {servers.get('redis-server', '-')}"


def _speeds(r: Record) -> str:
    """The fleet point's machine speed factors (idle / quiet / loaded), ``-`` where unmeasured."""
    factors = [
        r.get(key, {}).get("factor") for key in ("speed_idle", "speed_quiet", "speed_loaded")
    ]
    return " / ".join("-" if f is None else f"{f:.2f}" for f in factors)


_MULTI_NAMES = ("perf_exporter", "postgres_exporter", "redis_exporter")


def _multi_values(r: Record) -> list[tuple[str, list[float], float]]:
    """(label, [ours, postgres_exporter, redis_exporter], the references together) rows.

    Together: totals added up; per-target numbers over the references' 2N targets; scrape
    percentiles over their requests pooled.
    """
    e = [r["exporters"][name] for name in _MULTI_NAMES]
    ours, pg, redis = e
    every = f"per {r['interval_s']:g} s"

    def row(label: str, field: str, scale: float = 1.0) -> tuple[str, list[float], float]:
        values = [float(x.get(field, float("nan"))) / scale for x in e]
        return label, values, values[1] + values[2]

    def per_target(label: str, field: str, together: float) -> tuple[str, list[float], float]:
        return label, [float(x[field]) for x in e], together

    rows = [
        per_target(
            f"CPU ms per target {every}",
            "cpu_ms_per_target_interval",
            r["references_cpu_ms_per_target_interval"],
        ),
        row("CPU, % of one core", "cpu_core_pct"),
        row("RSS at the end (MiB)", "rss_bytes", 2**20),
        row("RSS peak (MiB, sum of peaks)", "rss_peak_bytes", 2**20),
        row("PSS at the end (MiB)", "pss_bytes", 2**20),
        per_target(
            "series per target",
            "series_per_target",
            (pg["series_per_target"] + redis["series_per_target"]) / 2,
        ),
        per_target("scrape p50 (ms), the loop", "scrape_p50_ms", r["references_scrape_p50_ms"]),
        per_target("scrape p99 (ms), the loop", "scrape_p99_ms", r["references_scrape_p99_ms"]),
        (
            f"scrape p50 (ms), perf-exporter at {ours.get('phases', 0)} phases",
            [ours.get("phases_p50_ms", float("nan")), pg["scrape_p50_ms"], redis["scrape_p50_ms"]],
            r["references_scrape_p50_ms"],
        ),
        (
            f"scrape p99 (ms), perf-exporter at {ours.get('phases', 0)} phases",
            [ours.get("phases_p99_ms", float("nan")), pg["scrape_p99_ms"], redis["scrape_p99_ms"]],
            r["references_scrape_p99_ms"],
        ),
        row("scrapes (no ratio)", "scrapes"),
        row("failed scrapes (no ratio)", "failed_scrapes"),
        row("targets down in the scrapes (no ratio)", "targets_down"),
    ]
    if "pg_statements_per_pg_target_interval" in ours:
        field = "pg_statements_per_pg_target_interval"
        statements = [ours[field], pg[field], float("nan")]
        rows.append((f"PostgreSQL statements per PG target {every}", statements, pg[field]))
    return rows


def multitarget_lines(records: list[Record]) -> list[str]:
    """The multi-target side by side: perf-exporter against the references serving N targets."""
    lines: list[str] = []
    for r in (r for r in records if r.get("kind") == "multitarget"):
        n = r["targets"]
        e = r["exporters"]
        ours = e["perf_exporter"]
        lines += [
            "",
            f"## Multi-target at {n} targets: perf-exporter vs the references' multi-target modes",
            "",
            f"{n} PostgreSQL + {n} Redis targets on the bench's servers, one loop scraping every "
            f"target once per {r['interval_s']:g} s spread evenly over the interval, "
            f"{r['measured_intervals']} whole interval(s) measured ({r['window_s']} s) after "
            f"{r['warmup_intervals']} warm-up interval(s)"
            + ("" if r["warmup_clean"] else " (**no warm-up interval had every target up**)")
            + ". postgres_exporter runs as "
            f"{e['postgres_exporter']['processes']} processes: 0.11.1 has no `/probe`.",
            "",
            "| | perf_exporter | postgres_exporter | redis_exporter | references added up "
            "| ours / theirs | ours / postgres_exporter | ours / redis_exporter |",
            "|---|---|---|---|---|---|---|---|",
        ]
        processes = [e[name]["processes"] for name in _MULTI_NAMES]
        targets = [e[name]["targets"] for name in _MULTI_NAMES]
        lines.append(
            "| processes (targets) | "
            + " | ".join(f"{p} ({t})" for p, t in zip(processes, targets, strict=True))
            + f" | {processes[1] + processes[2]} ({targets[1] + targets[2]}) | | | |"
        )
        for label, values, together in _multi_values(r):
            cells = [_fmt(v) for v in values]
            ratios = [_ratio(values[0], together), _ratio(values[0], values[1])]
            ratios.append(_ratio(values[0], values[2]))
            if label.endswith(" (no ratio)"):
                # counts: perf-exporter is scraped once per interval, the references per target
                label = label.removesuffix(" (no ratio)")
                cells = [f"{v:.0f}" for v in values]
                together_cell, ratios = f"{together:.0f}", ["", "", ""]
            else:
                together_cell = _fmt(together)
            lines.append(f"| {label} | " + " | ".join([*cells, together_cell, *ratios]) + " |")
        lines += [
            "",
            f"perf-exporter: {ours['series']} series, {ours['series_per_pg_target']} per "
            f"PostgreSQL target and {ours['series_per_redis_target']} per Redis target, "
            f"{ours['series_untargeted']} without a target; {ours['collections']} collections "
            f"completed in the window ({ours['collections_expected']} due), "
            f"{ours.get('collection_errors', 'n/a')} failed. "
            f"Its scrapes at {ours.get('phases', 0)} phases of one interval after the window "
            f"(every {r['interval_s'] / max(1, ours.get('phases', 1)):g} s): "
            f"max {ours.get('phases_max_ms', 'n/a')} ms; Prometheus scrapes it at one fixed "
            "phase of its schedule, which is what the loop's own p50/p99 are. The loop was more "
            f"than 5 ms behind its schedule {r['loop_late_scrapes']} time(s), at most "
            f"{r['loop_lag_max_ms']} ms. CPU: utime + stime of every process over the window; "
            "RSS and PSS summed over the processes (PSS counts the shared binary pages of the "
            "postgres_exporter processes once). Scrape percentiles: the loop's requests to each "
            f"exporter (perf-exporter: {ours['scrapes']} scrape(s), one per interval); the "
            "references added up: their requests pooled. A failed scrape: an error, a status "
            "other than 200, or the target not up in the body.",
            "",
            "Settings: " + "; ".join(f"{k}: {v}" for k, v in r["settings"].items()) + ".",
        ]
    return lines


def markdown(records: list[Record]) -> str:
    run = next(r for r in records if r.get("kind") == "run")
    exporters = [r for r in records if r.get("kind") == "exporter"]
    ours = [r for r in exporters if r["ours"]]
    refs = [r for r in exporters if not r["ours"]]
    machine = run["machine"]
    lines = [
        f"# Benchmark {run['run_id']}"
        + (" (quick mode: smoke numbers only)" if run["quick"] else ""),
        "",
        f"{run['date']} on {machine['cpu']} ({machine['cores']} cores, "
        f"{machine['memory_gb']} GB, Linux {machine['kernel']}); load average at start "
        f"{machine['loadavg_start']}. Whole run: {run['duration_s']} s.",
        "",
        "Workload: "
        + ", ".join(
            f"{k} {v}" for k, v in run["workload"].items() if k != "redis_keys_per_namespace"
        )
        + ".",
        "",
    ]
    if exporters:
        # a fleet-only run (--targets N) has no comparison table
        names = [r["exporter"] for r in ours + refs]
        header = ["", *names]
        if ours and refs:
            header += ["references (best or sum)", "ours / theirs"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for field, label, how in _ROWS:
            values = [_value(r, field) for r in ours + refs]
            row = [label, *(_fmt(v) for v in values)]
            if ours and refs:
                theirs = _combine([_value(r, field) for r in refs], how)
                kind = {"sum": "sum", "best": "best", "best_high": "best"}[how]
                row += [f"{_fmt(theirs)} ({kind})", _ratio(_value(ours[0], field), theirs)]
            lines.append("| " + " | ".join(row) + " |")
        lines += [
            "",
            "Sequential: one keep-alive connection asking for gzip, as Prometheus does. "
            "4 scrapers: `wrk -c4 -t2 --latency` with gzip"
            + (f", wrk pinned to CPU {run['wrk_cpu']}" if run.get("wrk_cpu") is not None else "")
            + "; "
            + ", ".join(f"{r['exporter']} {r['wrk_seconds']} s" for r in exporters)
            + " (perf-exporter's run spans one whole 15 s collection interval, so that its "
            "collections, which share the event loop with the scrapes, count in their real "
            "proportion). CPU per scrape: process CPU (utime + "
            "stime from /proc/<pid>/stat) over the sequential and wrk scrapes divided by their "
            "number; for perf-exporter it includes its scheduled collections meanwhile. "
            "Server load: pg_stat_statements calls of the exporter's own role and INFO "
            "commandstats deltas over a window of scrapes, with perf-exporter SIGSTOPped "
            "during the references' windows.",
            "",
            "Reference settings: "
            + "; ".join(f"{r['exporter']}: {json.dumps(r['settings'])}" for r in refs)
            + ".",
        ]
    checks = targets_check(records)
    if checks:
        lines += ["", "## Targets", "", "| target | measured | factor | |", "|---|---|---|---|"]
        for check in checks:
            factor = "" if check["ratio"] is None else f"{check['ratio']:.1f}x"
            verdict = "met" if check["met"] else "**missed**"
            lines.append(f"| {check['target']} | {check['value']} | {factor} | {verdict} |")
    scaling = sorted((r for r in records if r.get("kind") == "scaling"), key=lambda r: r["targets"])
    if scaling:
        lines += [
            "",
            f"## Scaling (PostgreSQL + Redis targets, interval {scaling[0]['interval_s']} s, "
            "extrapolated to 15 s)",
            "",
            "| targets | series | RSS MB | CPU per round ms | % core at 15 s | seq p50/p99 ms "
            "| 4 scrapers p99 ms | req/s "
            "| PG statements per collection (+ wait samples, server time) "
            "| Redis commands per collection (inside scripts), Redis time "
            "| collection ms (pg / redis, max) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        direct_rows = [r for r in records if r.get("kind") == "scaling_direct"]
        for r in scaling + direct_rows:
            durations = r["collector_duration_ms"]
            pg_ms = durations.get("postgres", {}).get("max", float("nan"))
            redis_ms = durations.get("redis", {}).get("max", float("nan"))
            label = f"{r['targets']} at {r['interval_s']:g} s" if r in direct_rows else r["targets"]
            lines.append(
                f"| {label} | {r['series']} | {r['rss_bytes'] / 2**20:.1f} "
                f"| {_fmt(_value(r, 'cpu_per_round_ms'))} "
                f"| {_fmt(_value(r, 'cpu_core_pct_at_15s'))} "
                f"| {r['seq_p50_ms']} / {r['seq_p99_ms']} | {r['wrk_p99_ms']} | {r['wrk_rps']} "
                f"| {_pg_cell(r)} | {_redis_cell(r)} "
                f"| {_fmt(pg_ms)} / {_fmt(redis_ms)} |"
            )
        lines += [
            "",
            "CPU per round: process CPU over the window divided by the rounds completed (every "
            "target collected once); it includes the host collector, the bench's polling "
            "scrapes and idle overhead, so the 15 s extrapolation is an upper bound. The row "
            "'at 15 s' is measured at the production interval: its % of a core is the process's "
            "CPU over the window, not an extrapolation.",
        ]
    lines += fleet_lines(records)
    lines += multitarget_lines(records)
    return "\n".join(lines) + "\n"


def plot(records: list[Record], path: Path) -> bool:
    """Latency and cost vs number of targets; False when there is no scaling data."""
    scaling = sorted((r for r in records if r.get("kind") == "scaling"), key=lambda r: r["targets"])
    if not scaling:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [r["targets"] for r in scaling]
    direct = [r for r in records if r.get("kind") == "scaling_direct"]
    interval = scaling[0]["interval_s"]
    fig, (lat, cost) = plt.subplots(1, 2, figsize=(11, 4.2))
    lat.plot(targets, [r["seq_p50_ms"] for r in scaling], "o-", label="sequential p50")
    lat.plot(targets, [r["seq_p99_ms"] for r in scaling], "o-", label="sequential p99")
    lat.plot(targets, [r["wrk_p99_ms"] for r in scaling], "s--", label="4 scrapers p99")
    for r in direct:
        lat.plot(
            [r["targets"]],
            [r["wrk_p99_ms"]],
            "*",
            color="C2",
            markersize=12,
            label=f"4 scrapers p99 at {r['interval_s']:g} s",
        )
        lat.plot(
            [r["targets"]],
            [r["seq_p99_ms"]],
            "*",
            color="C1",
            markersize=12,
            label=f"sequential p99 at {r['interval_s']:g} s",
        )
    lat.set_yscale("log")
    lat.set_xlabel("PostgreSQL + Redis targets")
    lat.set_ylabel("scrape latency (ms, log scale)")
    lat.set_title(f"perf-exporter scrape latency (interval {interval:g} s)")
    lat.legend(fontsize=8)
    lat.grid(alpha=0.3, which="both")
    cost.plot(
        targets,
        [_value(r, "cpu_core_pct_at_15s") for r in scaling],
        "o-",
        color="C3",
        label=f"CPU, % of a core at 15 s (from {interval:g} s)",
    )
    for r in direct:
        cost.plot(
            [r["targets"]],
            [r["cpu_core_pct_at_interval"]],
            "*",
            color="C3",
            markersize=12,
            label=f"CPU measured at {r['interval_s']:g} s",
        )
    cost.axhline(20, color="C3", linestyle=":", label="target: 20 % at 100 targets")
    cost.set_xlabel("PostgreSQL + Redis targets")
    cost.set_ylabel("% of one core")
    rss = cost.twinx()
    rss.plot(targets, [r["rss_bytes"] / 2**20 for r in scaling], "s--", color="C2", label="RSS")
    rss.set_ylabel("RSS (MB)")
    handles = cost.get_legend_handles_labels()
    extra = rss.get_legend_handles_labels()
    cost.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper left", fontsize=8)
    cost.set_title("perf-exporter cost")
    cost.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
