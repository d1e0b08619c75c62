"""Where the daemon makes its bodies: on its own loop while they are small, else in a worker."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from exporter import config as config_module
from exporter import daemon as daemon_module
from exporter import memory
from exporter.daemon import Daemon
from exporter.snapshot import Rendered


def _daemon(tmp_path: Path) -> Daemon:
    """A daemon with no targets: its body is only its own families."""
    path = tmp_path / "c.yml"
    path.write_text("targets: {}\n")
    return Daemon(config_module.load(path, environ={}), path, {})


async def test_small_bodies_are_made_on_the_loop_and_large_ones_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    daemon = _daemon(tmp_path)
    made_on: list[threading.Thread] = []
    prepare = Rendered.prepare

    def recording(rendered: Rendered) -> None:
        made_on.append(threading.current_thread())
        prepare(rendered)

    monkeypatch.setattr(Rendered, "prepare", recording)
    await daemon._render()
    assert 0 < daemon.snapshot.rendered.size <= daemon_module.PREPARE_ON_LOOP_BYTES
    monkeypatch.setattr(daemon_module, "PREPARE_ON_LOOP_BYTES", 0)
    await daemon._render()
    assert made_on[0] is threading.current_thread()
    assert made_on[1] is not threading.current_thread()
    assert b"perf_exporter_build_info" in daemon.snapshot.rendered.text


async def test_renders_hand_freed_memory_back_at_most_every_trim_every_seconds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    daemon = _daemon(tmp_path)
    trimmed_on: list[threading.Thread] = []

    def recording() -> bool:
        trimmed_on.append(threading.current_thread())
        return True

    monkeypatch.setattr(memory, "trim", recording)
    for _ in range(3):
        await daemon._render()
    # the first render trims, the next ones within TRIM_EVERY do not
    assert trimmed_on == [threading.current_thread()]
    monkeypatch.setattr(memory, "TRIM_EVERY", 0.0)
    await daemon._render()
    # beside the loop, with the bodies, once they are made in a worker thread
    monkeypatch.setattr(daemon_module, "PREPARE_ON_LOOP_BYTES", 0)
    await daemon._render()
    assert len(trimmed_on) == 3
    assert trimmed_on[1] is threading.current_thread()
    assert trimmed_on[2] is not threading.current_thread()
