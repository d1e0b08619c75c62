"""Snapshot: parts rendered once, merged by name, stale parts replaced, both formats valid."""

from __future__ import annotations

import gc
import gzip

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_families,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter import snapshot
from exporter.snapshot import Snapshot, format_value


def up(value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily("perf_demo_up", "Whether the demo answered.", value=value)


def hits(value: float) -> CounterMetricFamily:
    fam = CounterMetricFamily(
        "perf_demo_hits", 'Hits, with "quotes" and \\ backslash.', labels=["ns"]
    )
    fam.add_metric(['a"b\\c\nd'], value)
    return fam


def test_parts_of_two_targets_merge_into_one_family() -> None:
    snap = Snapshot()
    snap.put(("data", "demo", "one"), [up(1), hits(3)], target="one")
    snap.put(("data", "demo", "two"), [up(0)], target="two")
    text = snap.render().text.decode()
    assert text.count("# TYPE perf_demo_up gauge") == 1
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.labels["target"], s.value) for s in fams["perf_demo_up"].samples}
    assert samples == {("one", 1.0), ("two", 0.0)}
    hit = fams["perf_demo_hits"].samples[0]
    assert hit.labels == {"target": "one", "ns": 'a"b\\c\nd'}
    assert fams["perf_demo_hits"].type == "counter"


def test_openmetrics_body_parses_and_ends_with_eof() -> None:
    snap = Snapshot()
    hist = HistogramMetricFamily(
        "perf_demo_latency_seconds",
        "Latency.",
        buckets=[("0.1", 2), ("1", 3), ("+Inf", 3)],
        sum_value=0.9,
    )
    snap.put(("data", "demo", "one"), [up(1), hits(3), hist], target="one")
    body = snap.render().openmetrics.decode()
    assert body.endswith("# EOF\n")
    fams = {f.name: f for f in om_families(body)}
    assert fams["perf_demo_hits"].type == "counter"
    assert fams["perf_demo_latency_seconds"].type == "histogram"
    assert {s.name for s in fams["perf_demo_hits"].samples} == {"perf_demo_hits_total"}


def test_gzip_bodies_match_plain_ones() -> None:
    snap = Snapshot()
    snap.put(("data", "demo", "one"), [up(1)], target="one")
    rendered = snap.render()
    assert gzip.decompress(rendered.body(False, True)) == rendered.text
    assert gzip.decompress(rendered.body(True, True)) == rendered.openmetrics
    assert rendered.body(False, False) == rendered.text


def test_gzip_variants_asked_for_are_compressed_ahead_of_the_next_scrape() -> None:
    snap = Snapshot()
    snap.put(("data", "demo", "one"), [up(1)], target="one")
    first = snap.render()
    assert first.gzipped == {}  # nobody asked yet: no compression work at all
    first.body(True, True)  # a scraper wants OpenMetrics + gzip
    snap.put(("data", "demo", "one"), [up(0)], target="one")
    second = snap.render()
    assert set(second.gzipped) == {True}  # ready before anyone asks again
    assert gzip.decompress(second.gzipped[True]) == second.openmetrics


def test_only_the_variants_asked_for_lately_are_made_ahead() -> None:
    snap = Snapshot()
    snap.put(("data", "demo", "one"), [up(1)], target="one")
    first = snap.render()
    assert first.plain == {} and first.gzipped == {}  # nobody asked: no body joined at all
    first.body(False, False)  # curl: plain text
    snap.put(("data", "demo", "one"), [up(0)], target="one")
    second = snap.render()
    assert set(second.plain) == {False} and second.gzipped == {}
    second.body(True, True)  # Prometheus: OpenMetrics + gzip
    third = snap.render()
    # OpenMetrics is wanted gzipped only: compressed as it is joined, no plain body kept
    assert set(third.plain) == {False} and set(third.gzipped) == {True}
    assert gzip.decompress(third.gzipped[True]) == third.openmetrics
    assert b"perf_demo_up" in third.text  # a variant not made ahead is made when read


def test_a_body_gzipped_as_it_is_joined_is_the_plain_body_gzipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshot, "GZIP_CHUNK", 64)  # many chunks
    snap = Snapshot()
    for i in range(30):
        snap.put(("data", "demo", f"t{i:02}"), [up(i % 2), hits(i)], target=f"t{i:02}")
    streamed = snap.render().body(False, True)
    plain = snap.render().text
    assert gzip.decompress(streamed) == plain
    assert streamed == gzip.compress(plain, snapshot.GZIP_LEVEL, mtime=0)


def test_render_is_byte_identical_without_changes() -> None:
    snap = Snapshot()
    snap.put(("data", "demo", "one"), [up(1), hits(3)], target="one")
    first = snap.render()
    second = snap.render()
    assert first.text == second.text
    assert first.body(False, True) == second.body(False, True)


def test_size_is_the_bytes_of_sample_lines_either_body_carries() -> None:
    snap = Snapshot()
    snap.put(("data", "demo", "one"), [up(1), hits(3)], target="one")
    snap.put(("data", "demo", "two"), [up(0)], target="two")
    rendered = snap.render()
    for body in (rendered.text, rendered.openmetrics):
        samples = [line for line in body.splitlines(keepends=True) if not line.startswith(b"#")]
        assert rendered.size == sum(map(len, samples)) > 0


def test_expired_part_is_replaced_by_its_stale_form() -> None:
    snap = Snapshot()
    snap.put(
        ("data", "demo", "one"), [up(1), hits(3)], target="one", ttl=10, stale=[up(0)], now=100
    )
    snap.put(("data", "demo", "two"), [up(1)], target="two", ttl=50, stale=[up(0)], now=100)
    assert snap.expire(now=105) == []
    assert snap.expire(now=111) == [("data", "demo", "one")]
    fams = {f.name: f for f in text_string_to_metric_families(snap.render().text.decode())}
    assert "perf_demo_hits" not in fams
    assert {(s.labels["target"], s.value) for s in fams["perf_demo_up"].samples} == {
        ("one", 0.0),
        ("two", 1.0),
    }
    assert snap.expire(now=1000) == [("data", "demo", "two")]
    assert snap.expire(now=2000) == []  # stale forms never expire again


def test_dropped_part_disappears() -> None:
    snap = Snapshot()
    snap.put(("data", "demo", "one"), [up(1)], target="one")
    snap.drop(("data", "demo", "one"))
    assert b"perf_demo_up" not in snap.render().text


def test_values_are_formatted_like_prometheus() -> None:
    assert format_value(3.0) == "3"
    assert format_value(0.25) == "0.25"
    assert format_value(float("inf")) == "+Inf"
    assert format_value(float("-inf")) == "-Inf"
    assert format_value(float("nan")) == "NaN"
    assert format_value(1e20) == "1e+20"


def test_sliced_assembly_yields_between_slices_and_gives_the_same_bodies() -> None:
    snap = Snapshot()
    for i in range(50):
        snap.put(("data", "demo", f"t{i:02}"), [up(i % 2), hits(i)], target=f"t{i:02}")
    whole = snap.assemble()
    steps = snap.assemble_steps(step=10)
    slices = 0
    # a result arriving mid-render belongs to the next render, not half to this one
    while True:
        try:
            next(steps)
        except StopIteration as done:
            sliced = done.value
            break
        slices += 1
        if slices == 1:
            snap.put(("data", "demo", "t00"), [up(7)], target="t00")
    assert slices >= 10  # 100 fragments grouped, then 100 joined, 10 at a time
    assert sliced.text == whole.text
    assert sliced.openmetrics == whole.openmetrics
    assert b'perf_demo_up{target="t00"} 7\n' in snap.assemble().text


def _fleet_like(monkeypatch: pytest.MonkeyPatch) -> Snapshot:
    # bodies over the keep limit, in many chunks
    monkeypatch.setattr(snapshot, "PLAIN_KEEP_MAX", 100)
    monkeypatch.setattr(snapshot, "GZIP_CHUNK", 64)
    snap = Snapshot()
    for i in range(30):
        snap.put(("data", "demo", f"t{i:02}"), [up(i % 2), hits(i)], target=f"t{i:02}")
    return snap


def test_a_plain_body_over_the_limit_is_streamed_and_never_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    snap = _fleet_like(monkeypatch)
    first = snap.render()
    assert first.streams_plain
    first.body(False, False)  # curl asks plain text: wanted from now on
    first.body(True, True)
    second = snap.render()
    # the gzip variant is made ahead; the plain one is not, and reading it keeps nothing
    assert second.plain == {} and set(second.gzipped) == {True}
    for om in (False, True):
        whole = second.openmetrics if om else second.text
        chunks = list(second.chunks(om))
        assert len(chunks) > 5 and b"".join(chunks) == whole
        assert second.length(om) == len(whole)
    assert second.plain == {}
    assert gzip.decompress(second.body(True, True)) == second.openmetrics


def test_a_small_plain_body_is_kept_as_before() -> None:
    snap = Snapshot()
    snap.put(("data", "demo", "one"), [up(1), hits(3)], target="one")
    rendered = snap.render()
    assert not rendered.streams_plain
    assert rendered.body(False, False) is rendered.body(False, False)
    assert rendered.length(False) == len(rendered.text)


def test_fragments_leave_the_garbage_collectors_lists() -> None:
    # a fleet keeps tens of thousands: tracked, every older collection walked them all
    snap = Snapshot()
    snap.put(("data", "demo", "one"), [up(1), hits(3)], target="one")
    snap.put(("data", "demo", "two"), [up(0), hits(4)], target="two")
    fragments = [f for part in snap._parts.values() for f in part.fragments]
    gc.collect()
    assert len(fragments) == 4 and not any(gc.is_tracked(f) for f in fragments)
    # and the headers of a family are one tuple for every part
    assert fragments[0][0] is fragments[2][0]
