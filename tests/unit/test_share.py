"""The shipped operator files: in a checkout they are the committed ones, and ``mixin`` there
still runs the generator (``make mixin`` must regenerate, not copy files onto themselves)."""

from __future__ import annotations

from pathlib import Path

from exporter import share

ROOT = Path(__file__).resolve().parents[2]


def test_checkout_ships_exactly_the_committed_files() -> None:
    files = share.shipped_files()
    assert not share.installed()
    assert "alerts/perf-exporter.rules.yml" in files
    assert "examples/kubernetes/prometheusrule.yml" in files
    for rel, path in files.items():
        assert path == ROOT / rel


def test_mixin_in_a_checkout_leaves_the_work_to_the_generator(tmp_path: Path) -> None:
    assert share.mixin_from_package(["--out", str(tmp_path)]) is None
    assert not list(tmp_path.iterdir())


def test_write_shipped_copies_every_file_byte_for_byte(tmp_path: Path) -> None:
    count = share.write_shipped(tmp_path)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(share.shipped_files())
    assert count == len(written)
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (ROOT / rel).read_bytes()
