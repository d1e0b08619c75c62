"""/summary by question: sections from each signal's ``question``, no-data rows with a reason
that do not count in the score, one sentence per non-ok row, each question's facts, and the
same content as plain text."""

from __future__ import annotations

from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.mixin.catalog import SIGNALS
from exporter.summary.board import SCHEMA_VERSION, SummaryBoard
from exporter.summary.questions import QUESTIONS


def postgres(connections: float, available: bool = False) -> list[Metric]:
    c = GaugeMetricFamily("perf_postgres_connections", "c", labels=["datname", "state"])
    c.add_metric(["app", "active"], connections)
    m = GaugeMetricFamily("perf_postgres_max_connections", "m", value=103)
    r = GaugeMetricFamily("perf_postgres_superuser_reserved_connections", "r", value=3)
    return [c, m, r]


PG_FACTS = {
    "connections": 95,
    "max_connections": 103,
    "superuser_reserved_connections": 3,
    "stat_statements_available": False,
    "blocking": [
        {
            "pid": 7,
            "datname": "app",
            "application_name": "migrate",
            "state": "idle in transaction",
            "transaction_age_seconds": 40.0,
            "waiting": 3,
            "queryid": None,
        }
    ],
    "index_recommendations": [],
}


def app(hits: float, misses: float, hit_s: float, miss_s: float) -> list[Metric]:
    out: list[Metric] = []
    for kind, value in (("hits", hits), ("misses", misses)):
        c = CounterMetricFamily(f"perf_app_cache_{kind}", "c", labels=["namespace"])
        c.add_metric(["api_response"], value)
        out.append(c)
    h = HistogramMetricFamily("perf_app_cache_request_seconds", "h", labels=["namespace", "result"])
    h.add_metric(["api_response", "hit"], [("+Inf", hits)], sum_value=hit_s)
    h.add_metric(["api_response", "miss"], [("+Inf", misses)], sum_value=miss_s)
    out.append(h)
    return out


def board_with_everything() -> SummaryBoard:
    board = SummaryBoard()
    board.error_of = lambda collector, target: (
        "cannot connect to Redis at redis://127.0.0.1:1: connection refused"
        if (collector, target) == ("redis", "gone")
        else None
    )
    board.refresh_seconds = 15.0
    board.update("postgres", "main", postgres(90), PG_FACTS, now=0.0)
    board.update("postgres", "main", postgres(95), PG_FACTS, now=15.0)
    board.failed("redis", "gone", now=15.0)
    app_facts = {
        "cache": {"api_response": {"hit_ratio": 0.8, "speedup": 2.0}},
        "pools": {"main": {"in_use": 18, "max": 20, "utilisation": 0.9}},
    }
    # 300 calls in 15 s, 240 hits of 2 ms and 60 misses of 4 ms: a 2x speedup
    board.update("app", "web", app(0, 0, 0, 0), app_facts, now=0.0)
    board.update("app", "web", app(240, 60, 0.48, 0.24), app_facts, now=15.0)
    return board


def question(data: dict[str, Any], qid: str) -> dict[str, Any]:
    return next(q for q in data["questions"] if q["id"] == qid)


def test_questions_come_in_order_and_every_signal_sits_in_its_own_question() -> None:
    data = board_with_everything().as_json(now=15.0)
    assert data["schema_version"] == SCHEMA_VERSION == 2
    assert [q["id"] for q in data["questions"]] == list(QUESTIONS)
    assert list(QUESTIONS) == ["cache", "pools", "queries", "resources", "exporter"]
    question_of = {s.key: s.question for s in SIGNALS}
    for q in data["questions"]:
        assert q["title"].endswith("?")
        for row in q["signals"]:
            assert question_of[row["signal"]] == q["id"] == row["question"]


def test_a_down_target_lists_its_signals_as_no_data_with_the_error_and_no_score() -> None:
    data = board_with_everything().as_json(now=15.0)
    gone = [
        r
        for q in data["questions"]
        for r in q["signals"]
        if r["target"] == "gone" and r["source"] == "redis"
    ]
    assert {r["signal"] for r in gone} == {s.key for s in SIGNALS if s.source == "redis"}
    assert {r["status"] for r in gone} == {"no_data"}
    assert {r["reason"] for r in gone} == {
        "redis target gone is down: cannot connect to Redis at redis://127.0.0.1:1: "
        "connection refused."
    }
    assert all(r["sentence"] == r["reason"] for r in gone)
    assert data["score_signals"]["without_data"] >= 6  # the six Redis signals at least
    counted = data["score_signals"]
    assert data["score_note"] == (
        f"Counted: {counted['with_data']} signals with data; not counted: "
        f"{counted['without_data']} without data, {counted['idle']} idle."
    )
    # the down collector itself is judged: its success row is critical
    success = [
        r
        for r in question(data, "exporter")["signals"]
        if r["signal"] == "exporter_collector_success" and r["target"] == "gone"
    ]
    assert [(r["collector"], r["status"]) for r in success] == [("redis", "crit")]
    assert question(data, "exporter")["status"] == "crit"


def test_statement_signals_say_pg_stat_statements_is_not_loaded() -> None:
    data = board_with_everything().as_json(now=15.0)
    (row,) = [
        r
        for r in question(data, "queries")["signals"]
        if r["signal"] == "postgres_statement_mean_latency"
    ]
    assert row["status"] == "no_data"
    assert row["reason"].startswith("pg_stat_statements is not loaded on postgres target main")


def test_every_row_that_is_not_ok_carries_value_level_and_runbook() -> None:
    data = board_with_everything().as_json(now=15.0)
    rows = [r for q in data["questions"] for r in q["signals"]]
    assert all((r["sentence"] is None) == (r["status"] == "ok") for r in rows)
    (pg,) = [r for r in rows if r["signal"] == "postgres_connection_utilisation"]
    assert pg["status"] == "crit"  # 95 of 100 usable
    assert pg["sentence"] == (
        "PostgreSQL connection utilisation on postgres target main is 95.0 %, above the "
        "critical level of 90%: see /runbooks#perfpostgresconnectionssaturated"
    )


def test_the_speedup_is_mean_miss_over_mean_hit_with_the_hit_ratio_beside_it() -> None:
    data = board_with_everything().as_json(now=15.0)
    cache = question(data, "cache")
    (speed,) = [r for r in cache["signals"] if r["signal"] == "app_cache_speedup"]
    assert speed["value"] == 2.0 and speed["display"] == "2.0x"
    assert speed["status"] == "warn"  # below 3x, above 1.5x
    assert speed["labels"] == {"namespace": "api_response"}
    (ratio,) = [r for r in cache["signals"] if r["signal"] == "app_cache_hit_ratio"]
    assert ratio["value"] == 0.8
    (ns,) = cache["namespaces"]
    assert (ns["namespace"], ns["hit_ratio"], ns["speedup"]) == ("api_response", 0.8, 2.0)


def test_pools_chain_queries_and_resources_carry_their_facts() -> None:
    data = board_with_everything().as_json(now=15.0)
    chain = question(data, "pools")["chain"]
    assert [(c["tier"], c["in_use"], c["limit"], c["status"]) for c in chain] == [
        ("app_pool", 18, 20, "warn"),
        ("postgres", 95, 100, "crit"),
    ]
    queries = question(data, "queries")
    assert queries["slow_statements"] == []
    assert queries["blocking"] == [{"target": "main", **PG_FACTS["blocking"][0]}]  # type: ignore[dict-item]
    resources = question(data, "resources")
    # no host collector: nothing about the box; the down Redis' memory rows have no data
    assert (resources["host"], resources["container"], resources["pressure"]) == (None,) * 3
    assert resources["status"] == "no_data"


def test_resources_show_the_host_and_the_container_against_its_limit() -> None:
    board = SummaryBoard()
    current = GaugeMetricFamily("perf_host_cgroup_memory_current_bytes", "c", value=3e9)
    limit = GaugeMetricFamily("perf_host_cgroup_memory_max_bytes", "m", value=4e9)
    facts = {"cpu_utilisation": 0.5, "memory_utilisation": 0.25, "pressure": {"cpu_some": 0.1}}
    board.update("host", "local", [current, limit], facts, now=0.0)
    resources = question(board.as_json(now=0.0), "resources")
    assert resources["host"] == {"cpu_utilisation": 0.5, "memory_utilisation": 0.25}
    assert resources["container"] == {
        "memory_current_bytes": 3e9,
        "memory_max_bytes": 4e9,
        "memory_utilisation": 0.75,
    }
    assert resources["pressure"] == {"cpu_some": 0.1}
    (row,) = [r for r in resources["signals"] if r["signal"] == "host_cgroup_memory_utilisation"]
    assert row["value"] == 0.75 and row["status"] == "ok"


def test_slow_statements_from_a_collector_fact_reach_the_queries_question() -> None:
    board = SummaryBoard()
    item = {
        "queryid": "42",
        "datname": "app",
        "mean_seconds": 0.4,
        "history_mean_seconds": 0.05,
        "calls_per_second": 3.0,
        "wait_types": {"IO": 0.5},
    }
    board.update("postgres", "main", postgres(1), {"slow_statements": [item]}, now=0.0)
    assert question(board.as_json(now=0.0), "queries")["slow_statements"] == [
        {"target": "main", **item}
    ]


def test_plain_text_has_every_question_status_and_sentence() -> None:
    board = board_with_everything()
    data = board.as_json(now=15.0)
    text = board.as_text(now=15.0)
    for q in data["questions"]:
        assert f"{q['title']} [{q['status'].upper().replace('_', ' ')}]" in text
        for r in q["signals"]:
            if r["sentence"]:
                assert f"* {r['sentence']}" in text
    assert "app_pool main 18/20 (90.0%, warn) -> postgres max_connections 95/100" in text
    assert "Score " in text and data["score_note"] in text
    # aligned: the value column starts at the same place on every row of a table
    pools = text.split("Is a pool saturated?")[1].split("\n\n")[0].splitlines()[1:]
    rows = [line for line in pools if line.startswith("  ") and not line.startswith("  *")]
    header = rows[0]
    assert all(len(line) >= header.index("VALUE") for line in rows[1:])


def test_the_page_has_a_section_per_question_a_chain_and_refreshes() -> None:
    page = board_with_everything().as_html(now=15.0)
    for qid in QUESTIONS:
        assert f'data-question="{qid}"' in page
    assert '<meta http-equiv="refresh" content="15">' in page
    assert 'name="viewport"' in page
    assert 'aria-label="saturation chain"' in page and "\u2192" in page
    assert "<script" not in page.lower()
    rows = page.count('<div class="row ')
    assert rows == page.count('class="spark"')  # a sparkline on every row
    assert 'data-target="gone" data-status="no_data"' in page or (
        'data-status="no_data" data-collector="redis" data-target="gone"' in page
    )
    assert "? NO DATA" in page and "\u2717 CRIT" in page


def test_a_hit_ratio_without_any_lookup_is_idle_not_absent() -> None:
    board = SummaryBoard()
    for now in (0.0, 15.0):  # Redis up, its counters standing still
        hits = CounterMetricFamily("perf_redis_keyspace_hits", "h", value=10)
        misses = CounterMetricFamily("perf_redis_keyspace_misses", "m", value=5)
        board.update("redis", "cache", [hits, misses], {}, now=now)
    data = board.as_json(now=15.0)
    (row,) = [r for r in question(data, "cache")["signals"] if r["signal"] == "redis_hit_ratio"]
    assert row["status"] == "idle"
    assert row["reason"] == (
        "No traffic on redis target cache over the last interval, below the 1/s needed to "
        "judge this ratio."
    )
    assert data["score_signals"]["idle"] == 1
    assert "redis_hit_ratio" not in data["status"]
