"""The summary board: signals evaluated from collector families against the Thresholds."""

from __future__ import annotations

import gc
import math
import random
import re
from array import array

import pytest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric

from exporter.collectors.base import Collected
from exporter.config import ConfigError
from exporter.mixin.thresholds import Thresholds
from exporter.summary.board import SummaryBoard
from exporter.summary.page import sparkline
from exporter.summary.window import SampleColumn, Window, histogram_quantile


def redis(
    hits: float, misses: float, used: float = 10, maxmem: float = 100, own_hits: float = 0
) -> list[Metric]:
    h = CounterMetricFamily("perf_redis_keyspace_hits", "hits")
    h.add_metric([], hits + own_hits)
    m = CounterMetricFamily("perf_redis_keyspace_misses", "misses")
    m.add_metric([], misses)
    oh = CounterMetricFamily("perf_redis_exporter_keyspace_hits", "own hits")
    oh.add_metric([], own_hits)
    om = CounterMetricFamily("perf_redis_exporter_keyspace_misses", "own misses")
    om.add_metric([], 0)
    u = GaugeMetricFamily("perf_redis_memory_used_bytes", "used", value=used)
    x = GaugeMetricFamily("perf_redis_memory_max_bytes", "max", value=maxmem)
    return [h, m, oh, om, u, x]


def test_redis_hit_ratio_leaves_out_the_exporters_own_lookups() -> None:
    board = SummaryBoard()
    board.update("redis", "cache", redis(1000, 1000, own_hits=0), {}, now=10.0)
    # 60 application hits, 40 misses, and 20,000 TTL checks of the namespace scan
    board.update("redis", "cache", redis(1060, 1040, own_hits=20_000), {}, now=25.0)
    assert row(board, "redis_hit_ratio")["value"] == 0.6


def postgres(connections: int, max_connections: int = 103, reserved: int = 3) -> list[Metric]:
    c = GaugeMetricFamily("perf_postgres_connections", "c", labels=["datname", "state"])
    c.add_metric(["app", "active"], connections - 1)
    c.add_metric(["app", "idle"], 1)
    return [
        c,
        GaugeMetricFamily("perf_postgres_max_connections", "m", value=max_connections),
        GaugeMetricFamily("perf_postgres_superuser_reserved_connections", "r", value=reserved),
    ]


def row(board: SummaryBoard, signal: str, target: str | None = None) -> dict[str, object]:
    rows = [
        r
        for r in board.as_json(now=1000.0)["signals"]
        if r["signal"] == signal and (target is None or r["target"] == target)
    ]
    assert len(rows) == 1, rows
    return rows[0]


def test_redis_hit_ratio_is_the_share_of_hits_since_the_last_sample() -> None:
    board = SummaryBoard()
    board.update("redis", "cache", redis(1000, 1000), {}, now=10.0)
    assert all(r["signal"] != "redis_hit_ratio" for r in board.as_json(now=10.0)["signals"])
    board.update("redis", "cache", redis(1060, 1040), {}, now=25.0)
    r = row(board, "redis_hit_ratio")
    assert r["value"] == 0.6
    assert r["status"] == "crit"  # under the 70 % critical level
    assert r["display"] == "60.0 %"
    assert (r["warn"], r["crit"], r["bad_when"]) == (0.8, 0.7, "below")


def test_a_counter_reset_gives_no_value_instead_of_a_negative_ratio() -> None:
    board = SummaryBoard()
    board.update("redis", "cache", redis(1000, 1000), {}, now=10.0)
    board.update("redis", "cache", redis(5, 1), {}, now=20.0)
    assert all(r["signal"] != "redis_hit_ratio" for r in board.as_json(now=20.0)["signals"])


def test_connection_utilisation_uses_max_connections_minus_the_superuser_reserve() -> None:
    board = SummaryBoard()
    board.update("postgres", "main", postgres(81), {}, now=1.0)
    r = row(board, "postgres_connection_utilisation")
    assert r["value"] == 0.81
    assert r["status"] == "warn"
    board.update("postgres", "main", postgres(80), {}, now=2.0)
    assert row(board, "postgres_connection_utilisation")["status"] == "ok"


def test_redis_without_maxmemory_has_no_memory_utilisation() -> None:
    board = SummaryBoard()
    board.update("redis", "cache", redis(1, 1, used=5e9, maxmem=0), {}, now=1.0)
    assert all(r["signal"] != "redis_memory_utilisation" for r in board.as_json(now=1.0)["signals"])


def test_probe_p99_interpolates_like_histogram_quantile() -> None:
    assert histogram_quantile(0.5, [(0.1, 50), (0.2, 100), (math.inf, 100)]) == 0.1
    assert histogram_quantile(0.99, [(0.1, 0), (0.2, 100), (math.inf, 100)]) == 0.199
    assert histogram_quantile(0.99, [(0.1, 50), (math.inf, 100)]) == 0.1
    assert histogram_quantile(0.99, [(0.1, 0), (math.inf, 0)]) is None

    def probe(counts: list[float], total: float) -> list[Metric]:
        h = HistogramMetricFamily("perf_postgres_probe_duration_seconds", "probe")
        h.add_metric([], [("0.01", counts[0]), ("0.1", counts[1]), ("+Inf", total)], 0.0)
        return [h]

    board = SummaryBoard()
    board.update("postgres", "main", probe([0, 0], 0), {}, now=1.0)
    board.update("postgres", "main", probe([0, 100], 100), {}, now=2.0)
    r = row(board, "postgres_probe_p99")
    assert math.isclose(float(r["value"]), 0.0991)  # type: ignore[arg-type]
    assert r["status"] == "warn"  # above 50 ms, under 200 ms


def test_statement_mean_latency_divides_execution_time_by_calls() -> None:
    def stmts(calls: float, seconds: float) -> list[Metric]:
        c = CounterMetricFamily(
            "perf_postgres_statement_calls", "c", labels=["datname", "queryid", "user"]
        )
        c.add_metric(["app", "42", "api"], calls)
        s = CounterMetricFamily(
            "perf_postgres_statement_exec_seconds", "s", labels=["datname", "queryid", "user"]
        )
        s.add_metric(["app", "42", "api"], seconds)
        return [c, s]

    board = SummaryBoard()
    board.update("postgres", "main", stmts(100, 10), {}, now=1.0)
    board.update("postgres", "main", stmts(200, 70), {}, now=2.0)
    r = row(board, "postgres_statement_mean_latency")
    assert r["value"] == 0.6
    assert r["labels"] == {"datname": "app", "queryid": "42", "user": "api"}
    assert r["status"] == "crit"


def test_a_failed_target_loses_its_values_and_marks_the_collector_failing() -> None:
    board = SummaryBoard()
    board.update("postgres", "main", postgres(10), {}, now=1.0)
    board.failed("postgres", "main", now=2.0)
    data = board.as_json(now=2.0)
    assert row(board, "postgres_connection_utilisation")["value"] is None
    success = [r for r in data["signals"] if r["signal"] == "exporter_collector_success"]
    assert [(r["target"], r["value"], r["status"]) for r in success] == [("main", 0.0, "crit")]
    assert data["sources"]["postgres"]["main"]["up"] is False
    board.update("postgres", "main", postgres(10), {}, now=3.0)
    assert row(board, "exporter_collector_success")["status"] == "ok"
    assert row(board, "postgres_connection_utilisation")["value"] == 0.1


def test_staleness_is_the_age_of_the_last_success() -> None:
    board = SummaryBoard()
    board.update("redis", "cache", redis(1, 1), {}, now=100.0)
    board.failed("redis", "cache", now=400.0)
    r = next(
        x
        for x in board.as_json(now=1000.0)["signals"]
        if x["signal"] == "exporter_collector_staleness"
    )
    assert r["value"] == 900.0
    assert r["status"] == "crit"


def test_drop_forgets_a_target() -> None:
    board = SummaryBoard()
    board.update("redis", "a", redis(1, 1), {}, now=1.0)
    board.update("redis", "b", redis(1, 1), {}, now=1.0)
    board.drop("redis", "a")
    data = board.as_json(now=1.0)
    assert {r["target"] for r in data["signals"]} == {"b"}
    assert list(data["sources"]["redis"]) == ["b"]


def test_score_weights_ok_warn_crit_as_one_half_zero() -> None:
    board = SummaryBoard()
    board.update("postgres", "main", postgres(85), {}, now=1.0)  # warn
    board.update("redis", "cache", redis(0, 0, used=10, maxmem=100), {}, now=1.0)  # mem ok
    board.update("redis", "cache", redis(50, 50, used=10, maxmem=100), {}, now=2.0)  # hits crit
    data = board.as_json(now=2.0)
    # signals with data: connections warn, memory ok, hit ratio crit, collector success ok
    # (postgres and redis rows share one signal at its worst), staleness ok
    assert data["status"] == {
        "postgres_connection_utilisation": "warn",
        "redis_hit_ratio": "crit",
        "redis_memory_utilisation": "ok",
        "exporter_collector_success": "ok",
        "exporter_collector_staleness": "ok",
    }
    assert data["score"] == round(100 * (0.5 + 0 + 1 + 1 + 1) / 5)
    assert SummaryBoard().as_json(now=1.0)["score"] is None


def test_overridden_thresholds_change_the_status() -> None:
    board = SummaryBoard(Thresholds.from_overrides({"redis_hit_ratio": {"crit": 0.5}}))
    board.update("redis", "cache", redis(0, 0), {}, now=1.0)
    board.update("redis", "cache", redis(60, 40), {}, now=2.0)
    assert row(board, "redis_hit_ratio")["status"] == "warn"


def host(idle: float, user: float, avail: float) -> list[Metric]:
    cpu = CounterMetricFamily("perf_host_cpu_seconds", "cpu", labels=["mode"])
    cpu.add_metric(["idle"], idle)
    cpu.add_metric(["user"], user)
    fs_avail = GaugeMetricFamily(
        "perf_host_filesystem_avail_bytes", "a", labels=["mountpoint", "device", "fstype"]
    )
    fs_avail.add_metric(["/", "/dev/vda", "ext4"], avail)
    fs_size = GaugeMetricFamily(
        "perf_host_filesystem_size_bytes", "s", labels=["mountpoint", "device", "fstype"]
    )
    fs_size.add_metric(["/", "/dev/vda", "ext4"], 1000.0)
    return [
        cpu,
        fs_avail,
        fs_size,
        GaugeMetricFamily("perf_host_memory_available_bytes", "a", value=50.0),
        GaugeMetricFamily("perf_host_memory_total_bytes", "t", value=1000.0),
    ]


def test_host_cpu_memory_and_filesystem_fill_prediction() -> None:
    board = SummaryBoard()
    board.update("host", "local", host(100, 100, 900), {}, now=0.0)
    board.update("host", "local", host(110, 190, 540), {}, now=3600.0)
    assert row(board, "host_cpu_utilisation")["value"] == 0.9
    assert row(board, "host_memory_utilisation")["value"] == 0.95
    assert row(board, "host_filesystem_avail_ratio")["value"] == 0.54
    # 360 bytes an hour gone, 540 left: full in 1.5 h, under the 4 h critical level
    fill = row(board, "host_filesystem_fill_hours")
    assert fill["value"] == 1.5 and fill["status"] == "crit"


def test_fill_prediction_keeps_its_trend_across_a_failed_host_run() -> None:
    board = SummaryBoard()
    board.update("host", "local", host(100, 100, 900), {}, now=0.0)
    board.failed("host", "local", now=1800.0)
    board.update("host", "local", host(110, 190, 540), {}, now=3600.0)
    # the first hour's sample still counts: 360 bytes an hour gone, 540 left
    assert row(board, "host_filesystem_fill_hours")["value"] == 1.5


def test_record_accepts_the_core_scheduler_results() -> None:
    board = SummaryBoard()
    board.record(
        "postgres",
        "main",
        Collected(
            postgres(50), {"index_recommendations": [{"table": "public.orders", "seq_scan": 1200}]}
        ),
        now=1.0,
    )
    board.record("redis", "cache", None, now=1.0)
    data = board.as_json(now=1.0)
    assert data["index_recommendations"] == [
        {"target": "main", "table": "public.orders", "seq_scan": 1200}
    ]
    assert data["sources"]["redis"]["cache"]["up"] is False
    assert data["sources"]["redis"]["cache"]["last_run"] == 1.0
    # the collector's facts stay as they were reported, for the collectors' own readers
    assert data["sources"]["postgres"]["main"]["facts"]["index_recommendations"][0]["seq_scan"]
    board.forget_except({("postgres", "main")})
    assert "redis" not in board.as_json(now=1.0)["sources"]


def test_history_is_bounded_and_drawn_as_an_svg_sparkline() -> None:
    board = SummaryBoard(history=5)
    for i in range(10):
        board.update("postgres", "main", postgres(10 + i), {}, now=float(i))
    r = row(board, "postgres_connection_utilisation")
    assert r["history"] == [0.15, 0.16, 0.17, 0.18, 0.19]
    svg = sparkline(r["history"], "ok")  # type: ignore[arg-type]
    assert svg.startswith("<svg") and svg.count(",") == 5
    # every row has a sparkline: without two points it is a dashed baseline, not a line
    empty = sparkline([0.1], "ok")
    assert "stroke-dasharray" in empty and "<polyline" not in empty


def test_a_full_history_is_a_few_hundred_bytes_a_series() -> None:
    # a thousand targets' board holds ~15,000 series: as (time, value) tuples in a deque a full
    # history was ~6 kB each, ~80 MB in all once an hour's runs had filled them
    board = SummaryBoard(history=60)
    for i in range(61):
        board.update("postgres", "main", postgres(10 + i % 7), {}, now=float(i))
    series = [
        one for signals in board._series.values() for s in signals.values() for one in s.values()
    ]
    full = [one for one in series if len(one.history) == 60]
    assert full
    for one in full:
        values = one.history.values
        assert isinstance(values, array) and values.typecode == "d"
        assert values.buffer_info()[1] * values.itemsize < 1024


def test_html_page_shows_signals_without_scripts_or_external_assets() -> None:
    board = SummaryBoard()
    board.update("redis", "<b>cache</b>", redis(0, 0), {}, now=1.0)
    board.update("redis", "<b>cache</b>", redis(60, 40), {}, now=2.0)
    board.update("redis", "<b>cache</b>", redis(130, 70), {}, now=3.0)
    page = board.as_html(now=3.0)
    assert "<script" not in page.lower()
    assert not re.search(r"\bsrc=", page)
    assert "<link" not in page
    assert "&lt;b&gt;cache&lt;/b&gt;" in page and "<b>cache</b>" not in page
    assert "Redis keyspace hit ratio" in page
    assert "<svg" in page
    assert "Score" in page


def test_reading_the_summary_changes_nothing() -> None:
    board = SummaryBoard()
    board.update("redis", "cache", redis(10, 10), {}, now=10.0)
    first = board.as_json(now=20.0)["signals"]
    for _ in range(3):
        assert board.as_json(now=20.0)["signals"] == first  # no history point per page view
    stale = [r for r in board.as_json(now=50.0)["signals"] if r["signal"].endswith("staleness")]
    assert stale[0]["value"] == 40.0 and len(stale[0]["history"]) == 1


def test_a_ratio_under_its_minimum_traffic_is_idle_and_left_out_of_the_score() -> None:
    board = SummaryBoard()
    board.update("redis", "cache", redis(1000, 1000, used=10, maxmem=100), {}, now=10.0)
    # 5 application lookups in 15 s, 1 hit: a terrible ratio at a third of a lookup a second,
    # while the exporter's own 20,000 TTL checks are no traffic
    board.update("redis", "cache", redis(1001, 1004, own_hits=20_000), {}, now=25.0)
    r = row(board, "redis_hit_ratio")
    assert r["value"] == 0.2
    assert r["status"] == "idle"
    assert math.isclose(r["traffic"], 5 / 15)
    assert r["reason"] == (
        "Only 0.33 events/s over the last interval, below the 1/s needed to judge this ratio."
    )
    data = board.as_json(now=25.0)
    assert "redis_hit_ratio" not in data["status"]
    assert data["score"] == 100  # memory, collector success and staleness, all ok
    assert "idle rows" in data["score_formula"]


def test_a_ratio_exactly_at_its_minimum_traffic_is_judged() -> None:
    board = SummaryBoard(Thresholds.from_overrides({"redis_hit_ratio": {"min_rate": 2}}))
    board.update("redis", "cache", redis(0, 0), {}, now=0.0)
    board.update("redis", "cache", redis(5, 15), {}, now=10.0)  # 2 lookups/s, 25 % hits
    assert row(board, "redis_hit_ratio")["status"] == "crit"
    board.update("redis", "cache", redis(10, 29), {}, now=20.0)  # 1.9 lookups/s
    assert row(board, "redis_hit_ratio")["status"] == "idle"


def test_min_rate_is_validated_and_only_for_guarded_signals() -> None:
    with pytest.raises(ConfigError) as err:
        Thresholds.from_overrides({"redis_hit_ratio": {"min_rate": -1}})
    assert err.value.problems == ["thresholds.redis_hit_ratio.min_rate: must be at least 0"]
    with pytest.raises(ConfigError) as err:
        Thresholds.from_overrides(
            {"host_cpu_utilisation": {"min_rate": 1}, "app_cache_hit_ratio": {"min_rate": None}}
        )
    assert sorted(err.value.problems) == [
        "thresholds.app_cache_hit_ratio.min_rate: must be a number (0 judges any traffic)",
        "thresholds.host_cpu_utilisation.min_rate: this signal has no traffic to guard",
    ]


def test_summary_links_runbooks_on_the_exporter_itself() -> None:
    board = SummaryBoard()
    board.update("redis", "cache", redis(0, 0), {}, now=0.0)
    assert row(board, "redis_memory_utilisation")["runbook_url"] == (
        "/runbooks#perfredismemoryhigh"
    )
    custom = SummaryBoard(
        Thresholds.from_overrides({"runbook_url": "https://wiki.example.com/perf#{anchor}"})
    )
    custom.update("redis", "cache", redis(0, 0), {}, now=0.0)
    assert row(custom, "redis_memory_utilisation")["runbook_url"] == (
        "https://wiki.example.com/perf#perfredismemoryhigh"
    )


def test_the_board_keeps_only_the_samples_its_signals_and_questions_read() -> None:
    board = SummaryBoard()
    commands = CounterMetricFamily("perf_redis_command_calls", "calls", labels=["cmd"])
    for i in range(500):
        commands.add_metric([f"cmd{i}"], float(i))
    board.update("redis", "cache", [*redis(1000, 1000), commands], {}, now=10.0)
    board.update("redis", "cache", [*redis(1060, 1040), commands], {}, now=25.0)
    kept = {name for view in board.views() for name in view.gauges}
    # hundreds of series a Redis target sends, of which no signal reads one, are not copied
    assert "perf_redis_command_calls_total" not in kept
    assert "perf_redis_keyspace_hits_total" in kept
    assert row(board, "redis_hit_ratio")["value"] == 0.6


def test_grouping_keys_are_one_object_across_targets_and_windows() -> None:
    # the board keeps two groupings per signal and target; a histogram's are a key per bucket,
    # so equal keys of different targets and collections must be one object, not copies
    def samples() -> dict[str, SampleColumn]:
        return {
            "x_bucket": SampleColumn.of(
                ({"cmd": "get", "le": le}, float(i)) for i, le in enumerate(("0.1", "1", "+Inf"))
            )
        }

    one = Window(samples(), 1.0).gauge("x_bucket", ("cmd", "le"))
    two = Window(samples(), 2.0).gauge("x_bucket", ("cmd", "le"))
    assert one == two and len(one) == 3
    for a, b in zip(one, two, strict=True):
        assert a is b


def test_kept_samples_are_columns_the_garbage_collector_does_not_walk() -> None:
    # two collections of every target's read samples stay on the board: at a thousand targets
    # ~300,000 (labels, value) tuples were as many tracked objects and 88 bytes each
    board = SummaryBoard()
    latency = HistogramMetricFamily("perf_redis_command_latency_seconds", "latency", labels=["cmd"])
    for cmd in ("get", "set"):
        latency.add_metric(
            [cmd],
            [(str(2.0**-i), 10.0 * i) for i in range(20, 0, -1)] + [("+Inf", 300.0)],
            sum_value=1.0,
        )
    board.update("redis", "cache", [*redis(1000, 1000), latency], {}, now=10.0)
    (view,) = board.views()
    column = view.gauges["perf_redis_command_latency_seconds_bucket"]
    assert isinstance(column, SampleColumn) and len(column) == 42
    assert gc.get_referents(column.values) == [array]
    expected = [(s.labels, s.value) for s in latency.samples if s.name.endswith("_bucket")]
    assert list(column) == expected
    assert all(a is b for a, b in zip(column.labels, (e[0] for e in expected), strict=True))


def test_every_grouping_key_is_kept_once_in_a_bounded_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A statement's key, made from a new label dict every cycle, is one object in the window
    that keeps it as "now" and in the next that keeps it as "before": made anew each cycle, such
    keys were a third of what a young garbage collection walked at a thousand targets. The
    table is bounded: when full it starts again, and groupings stay right."""
    from exporter.summary import window

    monkeypatch.setattr(window, "_KEYS", {})

    def column(queryid: str) -> SampleColumn:
        # a new label dict each time, as the collectors make them every cycle
        return SampleColumn.of([({"queryid": queryid, "datname": "app"}, 1.0)])

    one = Window({"x": column("q1")}, 1.0)
    two = Window({"x": column("q1")}, 2.0)
    ((a, _),) = one.gauge("x", ("queryid", "datname")).items()
    ((b, _),) = two.gauge("x", ("queryid", "datname")).items()
    assert a == (("queryid", "q1"), ("datname", "app")) and a is b
    # the grouping a window keeps its values under is one object too
    (first,) = one._groups[0]
    (second,) = two._groups[0]
    assert first is second

    monkeypatch.setattr(window, "_KEYS_MAX", 2)
    for i in range(5):
        got = Window({"x": column(f"q{i}")}, 3.0 + i).gauge("x", ("queryid",))
        assert got == {(("queryid", f"q{i}"),): 1.0}
        assert len(window._KEYS) <= 2


def test_histogram_groupings_by_label_dict_identity_equal_groupings_by_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bucket keys are looked up by the label dict's identity: with dicts shared across
    targets, dicts new each cycle and the lookup table started again when full, every grouping
    equals one made from the labels' content."""
    from exporter.summary import window

    # a table of its own: other tests fill the module's with their own groupings
    monkeypatch.setattr(window, "_KEY_OF", {})
    monkeypatch.setattr(window, "_KEY_OF_MAX", 40)
    rng = random.Random(18)
    shared = [{"cmd": c, "le": le} for c in ("get", "set", "del") for le in ("0.1", "1", "+Inf")]
    for cycle in range(50):
        pairs = []
        for _ in range(rng.randrange(1, 30)):
            labels = rng.choice(shared) if rng.random() < 0.6 else dict(rng.choice(shared))
            pairs.append((labels, float(rng.randrange(100))))
        column = SampleColumn.of(pairs)
        for by in (("cmd", "le"), ("le",)):
            got = Window({"x_bucket": column}, float(cycle)).gauge("x_bucket", by)
            expected: dict[tuple[tuple[str, str], ...], float] = {}
            for labels, value in pairs:
                key = tuple((k, labels[k]) for k in by)
                expected[key] = expected.get(key, 0.0) + value
            assert got == expected, (cycle, by)
            # the bound holds within a call too, not only where one starts
            assert all(len(memo) <= 40 for memo in window._KEY_OF.values()), (cycle, by)


def _quantile_by_delta(window: Window, q: float, bucket: str, by: tuple[str, ...]) -> dict:
    """The quantile as PromQL spells it: the bucket deltas by (by, le), then per series."""
    groups: dict = {}
    for key, count in window.delta(bucket, (*by, "le")).items():
        groups.setdefault(key[:-1], []).append((float(key[-1][1]), count))
    return {k: v for k, b in groups.items() if (v := histogram_quantile(q, b)) is not None}


@pytest.mark.parametrize("seed", range(5))
def test_quantile_equals_histogram_quantile_over_the_bucket_deltas(seed: int) -> None:
    # Window.quantile works on the buckets by series and bound (no dict of deltas, no key per
    # bucket): it must say what the deltas say, resets and missing buckets included
    rng = random.Random(seed)
    bounds = ["0.001", "0.01", "0.1", "1.0", "+Inf"]

    def column(counts: dict[tuple[str, str, str], float]) -> SampleColumn:
        return SampleColumn.of(
            ({"cmd": cmd, "db": db, "le": le}, value) for (cmd, db, le), value in counts.items()
        )

    before: dict[tuple[str, str, str], float] = {}
    for cmd in ("get", "set", "hget", "del"):
        for db in ("0", "1"):
            total = 0.0
            for le in bounds:
                total += rng.choice([0, 0, 1, 5, 40])
                before[(cmd, db, le)] = total
    for cycle in range(20):
        now = dict(before)
        for key in list(now):
            roll = rng.random()
            if roll < 0.05:
                del now[key]  # a bucket missing from this sample
            elif roll < 0.1:
                now[key] = 0.0  # a reset: that bucket has no delta
        for cmd, db, _ in list(now):
            grow = rng.choice([0, 0, 3])
            for i, le in enumerate(bounds):
                if (cmd, db, le) in now:
                    now[(cmd, db, le)] += grow * (i + 1)
        window = Window(
            {"x_bucket": column(now)}, float(cycle + 1), {"x_bucket": column(before)}, float(cycle)
        )
        for by in ((), ("cmd",), ("cmd", "db")):
            expected = _quantile_by_delta(window, 0.99, "x_bucket", by)
            assert window.quantile(0.99, "x_bucket", by) == expected
            assert window.quantile(0.5, "x_bucket", by) == _quantile_by_delta(
                window, 0.5, "x_bucket", by
            )
        before = now
    assert Window({"x_bucket": column(before)}, 1.0).quantile(0.99, "x_bucket") == {}


def test_quantile_keeps_bounds_and_counts_per_series_found_by_label_dict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The buckets are kept per series as two arrays, bounds and counts (not a key of two label
    pairs per bucket), found by the label dict's identity under a bounded table, and the
    quantile still says what the deltas say, with label dicts shared or new each cycle."""
    from exporter.summary import window

    monkeypatch.setattr(window, "_BOUND_OF", {})
    monkeypatch.setattr(window, "_KEY_OF_MAX", 40)
    rng = random.Random(7)
    bounds = ("0.001", "0.01", "0.1", "+Inf")
    shared = {(c, le): {"cmd": c, "le": le} for c in ("get", "set", "del") for le in bounds}
    counts = {key: 0.0 for key in shared}
    before: SampleColumn | None = None
    for cycle in range(40):
        for c in rng.sample(["get", "set", "del"], rng.randrange(0, 3)):
            grow = 0.0
            for le in bounds:
                grow += rng.randrange(0, 4)
                counts[(c, le)] += grow
        now = SampleColumn.of(
            (shared[key] if rng.random() < 0.7 else dict(shared[key]), value)
            for key, value in counts.items()
        )
        if before is not None:
            w = Window({"x_bucket": now}, float(cycle + 1), {"x_bucket": before}, float(cycle))
            assert w.quantile(0.99, "x_bucket", ("cmd",)) == _quantile_by_delta(
                w, 0.99, "x_bucket", ("cmd",)
            )
            one = Window({"x_bucket": now}, float(cycle + 1), {"x_bucket": before}, float(cycle))
            one.quantile(0.9, "x_bucket", ("cmd",))
            (kept,) = one._groups[0].values()  # this window's buckets, for the next as before
            assert {series: (list(b), list(c)) for series, (b, c) in kept.items()} == {
                (("cmd", c),): ([float(le) for le in bounds], [counts[(c, le)] for le in bounds])
                for c in ("get", "set", "del")
            }
            assert all(len(memo) <= 40 for memo in window._BOUND_OF.values()), cycle
        before = now
