"""Snapshot: parts rendered once, merged by name, stale parts replaced, both formats valid."""

from __future__ import annotations

import gc
import gzip
import random
import subprocess
import sys
import zlib
from collections.abc import Iterator

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

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


def test_a_large_body_is_gzipped_by_isal_both_ways_and_decompresses_to_the_plain_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshot, "GZIP_CHUNK", 256)
    monkeypatch.setattr(snapshot, "FAST_GZIP_BYTES", 1000)  # "large": the fleet's path
    snap = Snapshot()
    for i in range(40):
        snap.put(("data", "demo", f"t{i:02}"), [up(i % 2), hits(i)], target=f"t{i:02}")
    rendered = snap.render()
    assert rendered.size > 1000
    kept = rendered.text  # the plain body is kept: compressed from it in slices
    made = rendered.body(False, True)
    monkeypatch.setattr(snapshot, "PLAIN_KEEP_MAX", 100)  # streamed: compressed from chunks
    streamed = snap.render().body(False, True)
    assert gzip.decompress(made) == gzip.decompress(streamed) == kept
    assert zlib.decompress(streamed, 31) == kept  # a plain zlib reader (curl, Go) takes it
    assert made != gzip.compress(kept, snapshot.GZIP_LEVEL, mtime=0)  # not zlib's deflate
    # a small body keeps zlib's, byte for byte what gzip.compress writes
    monkeypatch.setattr(snapshot, "FAST_GZIP_BYTES", 1 << 20)
    small = snap.render()
    assert small.body(True, True) == gzip.compress(small.openmetrics, snapshot.GZIP_LEVEL, mtime=0)


def test_a_small_daemon_never_imports_isal() -> None:
    code = (
        "import sys\n"
        "from prometheus_client.core import GaugeMetricFamily\n"
        "from exporter.snapshot import Snapshot\n"
        "snap = Snapshot()\n"
        "snap.put(('data', 'x', 'one'), [GaugeMetricFamily('a', 'b', value=1)], target='one')\n"
        "snap.render().body(False, True)\n"
        "print('isal' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


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


def _grouped_afresh(snap: Snapshot, extra: list[Metric]) -> tuple[list[snapshot.Group], int]:
    """What a render must group: every part's fragments walked in sorted order, as it once was."""
    by_name: dict[str, list[snapshot.Fragment]] = {}
    for key in sorted(snap._parts):
        for fragment in snap._parts[key].fragments:
            by_name.setdefault(fragment[0][snapshot.OM_NAME], []).append(fragment)
    for fragment in snapshot.render_fragments(extra, None):
        by_name.setdefault(fragment[0][snapshot.OM_NAME], []).append(fragment)
    groups = []
    for name in sorted(by_name):
        kind = by_name[name][0][0][snapshot.OM_TYPE]
        groups.append(
            (
                by_name[name][0][0],
                snapshot._flat(f[1] for f in by_name[name] if f[0][snapshot.OM_TYPE] == kind),
            )
        )
    return groups, sum(len(line) for _, lines in groups for line in lines)


def test_the_families_kept_as_results_arrive_group_like_a_walk_of_every_part() -> None:
    rng = random.Random(18)
    extra = [
        GaugeMetricFamily("perf_demo_own", "The daemon's.", value=1),
        GaugeMetricFamily("perf_demo_f3", "Shared with the parts.", value=2),
    ]
    snap = Snapshot(lambda: extra)

    def family(name: str, value: float) -> Metric:
        if name == "perf_demo_odd" and rng.random() < 0.3:  # a name sent with two types
            return CounterMetricFamily(name, "Odd.", value=value)
        if rng.random() < 0.3:  # its lines in blocks, some samples past the last block
            fam = GaugeMetricFamily(name, f"Family {name}.", labels=["k"])
            for k in range(4):
                fam.add_metric([str(k)], value + k)
            return snapshot.with_blocks(fam, [snapshot.Block(1), snapshot.Block(2)])
        return GaugeMetricFamily(name, f"Family {name}.", value=value)

    names = [f"perf_demo_f{i}" for i in range(6)] + ["perf_demo_odd"]
    for step in range(600):
        key = ("data", "demo", f"t{rng.randrange(40):02}")
        roll = rng.random()
        if roll < 0.1:
            snap.drop(key)
        elif roll < 0.15:
            snap.expire(now=float(step))
        else:
            chosen = rng.sample(names, rng.randrange(len(names) + 1))
            if chosen and rng.random() < 0.1:
                chosen.append(chosen[0])  # a part sending a name twice
            snap.put(
                key,
                [family(n, step) for n in chosen],
                target=key[-1],
                ttl=rng.choice([None, 3.0]),
                stale=[up(0)],
                now=float(step),
            )
        rendered = snap.assemble()
        assert (rendered._groups, rendered.size) == _grouped_afresh(snap, extra), step
    # the index forgets what no part sends any more
    for key in list(snap._parts):
        snap.drop(key)
    assert snap._families == {} and snap.assemble()._groups == _grouped_afresh(snap, extra)[0]


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


def _blocked(values: list[float], blocks: list[snapshot.Block] | None) -> Metric:
    fam = GaugeMetricFamily("perf_demo_runs", "Blocks.", labels=["k"])
    for k, value in enumerate(values):
        fam.add_metric([str(k)], value)
    return fam if blocks is None else snapshot.with_blocks(fam, blocks)


def test_a_block_handed_over_again_is_not_rendered_again() -> None:
    snap = Snapshot()
    same, changed = snapshot.Block(2), snapshot.Block(1)
    snap.put(("data", "demo", "one"), [_blocked([1, 2, 3], [same, changed])], target="one")
    first = snap.render().text
    assert b'perf_demo_runs{target="one",k="1"} 2\n' in first
    # the collector hands ``same`` over again: it vouches that its samples did not change, so
    # its lines are taken as they were (here they did change, which shows they were not redone)
    snap.put(
        ("data", "demo", "one"),
        [_blocked([5, 6, 7], [same, snapshot.Block(1)])],
        target="one",
    )
    rendered = snap.render()
    assert b'perf_demo_runs{target="one",k="1"} 2\n' in rendered.text
    assert b'perf_demo_runs{target="one",k="2"} 7\n' in rendered.text
    assert rendered.length(False) == len(rendered.text)
    assert rendered.size == len(rendered.text) - len(snapshot._head(rendered._groups[0][0], False))
    # under another target the block is rendered for it
    snap.put(("data", "demo", "two"), [_blocked([5, 6, 7], [same, changed])], target="two")
    text = snap.render().text
    assert b'perf_demo_runs{target="two",k="1"} 6\n' in text
    assert gzip.decompress(snap.render().body(False, True)) == text


def test_a_family_in_blocks_renders_as_the_same_family_without() -> None:
    values = [1.5, 2, float("inf"), 0]
    ours, theirs = Snapshot(), Snapshot()
    ours.put(("data", "demo", "a"), [_blocked(values, [snapshot.Block(3)])], target="a")
    theirs.put(("data", "demo", "a"), [_blocked(values, None)], target="a")
    for openmetrics in (False, True):
        assert ours.render().body(openmetrics, False) == theirs.render().body(openmetrics, False)


def _rendered(families: list[Metric], target: str | None = "t") -> bytes:
    return b"".join(
        line
        for _, payload in snapshot.render_fragments(families, target)
        for line in ([payload] if isinstance(payload, bytes) else payload)
    )


def test_families_sharing_a_label_dict_render_as_families_with_their_own() -> None:
    # the collectors hand one label dict to all the families of a row (a statement's, a
    # table's): its pairs are joined once per part, and must read as if each family had its own
    rows = [{"db": "app", "queryid": str(i), "q": f'say "{i}"\\\n'} for i in range(5)]
    shared, own = [], []
    for kind in ("calls", "rows", "seconds"):
        for out, copy in ((shared, False), (own, True)):
            family = CounterMetricFamily(f"perf_demo_{kind}", "Demo.", labels=list(rows[0]))
            for i, labels in enumerate(rows):
                family.samples.append(
                    Sample(family.name + "_total", dict(labels) if copy else labels, float(i))
                )
            out.append(family)
    for target in ("t", None):
        assert _rendered(shared, target) == _rendered(own, target)
    assert b'perf_demo_rows_total{target="t",db="app",queryid="3",q="say \\"3\\"\\\\\\n"} 3\n' in (
        _rendered(shared)
    )


def test_a_label_dict_freed_mid_render_is_not_taken_for_the_next_at_its_address() -> None:
    # families made one at a time and dropped once rendered: CPython hands a freed dict's memory
    # to the next dict made, so a memo by identity alone would give that dict the old labels
    def families() -> Iterator[Metric]:
        for i in range(50):
            family = GaugeMetricFamily("perf_demo_size", "Demo.", labels=["table"])
            family.add_metric([f"t{i}"], float(i))
            yield family

    text = _rendered(list(families()))
    assert _rendered(families()) == text
    assert text.count(b"perf_demo_size{") == 50
    assert all(f'table="t{i}"}} {i}\n'.encode() in text for i in range(50))
