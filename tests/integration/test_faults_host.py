"""Faults survived by the host collector: a filesystem that hangs, one that disappears.

The daemon runs in its own mount namespace (``unshare -m``) holding two test mounts: a FUSE
mount (``bindfs``) that hangs when its process is stopped with SIGSTOP, as a dead network mount
does, and a plain bind mount that is lazily unmounted, as a removed volume is. Nothing else on
the machine sees either mount.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import ROOT, DaemonProcess
from tests.support.servers import require_binary

pytestmark = pytest.mark.integration

INTERVAL = 1.0


class NamespacedDaemon(DaemonProcess):
    """The daemon started by a shell that first mounts ``hung`` (FUSE) and ``gone`` (bind)."""

    def __init__(self, tmp_path: Path) -> None:
        self.src = tmp_path / "src"
        self.hung = tmp_path / "mnt-hung"
        self.gone = tmp_path / "mnt-gone"
        for path in (self.src, self.hung, self.gone):
            path.mkdir()
        config = {
            "interval": f"{INTERVAL}s",
            "timeout": "0.8s",
            "targets": {},
            "collectors": {
                "host": {
                    "filesystem_timeout": "0.3s",
                    "mountpoint_include": f"^{tmp_path}/mnt-",
                    "fstype_exclude": "^$",
                }
            },
        }
        super().__init__(config, tmp_path)

    def start(self, wait: bool = True) -> DaemonProcess:
        assert self.config_path is not None
        script = (
            f"mount --make-rprivate / && "
            f"{require_binary('bindfs')} {self.src} {self.hung} && "
            f"mount --bind {self.src} {self.gone} && "
            f"exec {sys.executable} -m exporter --web.listen-address 127.0.0.1:{self.port} "
            f"--config.file {self.config_path}"
        )
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [require_binary("unshare"), "--mount", "sh", "-c", script],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        if wait:
            self.wait_for(self._healthy, timeout=20, what="/healthz to answer 200")
        return self

    def in_namespace(self, *cmd: str) -> None:
        assert self.proc is not None
        subprocess.run(
            [require_binary("nsenter"), "-t", str(self.proc.pid), "-m", *cmd],
            check=True,
            capture_output=True,
            timeout=10,
        )

    def bindfs_pid(self) -> int:
        """The FUSE server of ``hung``: the bindfs whose arguments name our directories."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if argv[0].endswith(b"bindfs") and str(self.hung).encode() in argv:
                    return int(entry.name)
        raise AssertionError("the bindfs process of the test mount is gone")

    def filesystem(self, name: str, mount: Path) -> float | None:
        return self.value(name, {"mountpoint": str(mount)})


@contextlib.contextmanager
def hung_mount(d: NamespacedDaemon) -> Iterator[None]:
    """The FUSE mount hangs (its bindfs stopped) inside the block, and the daemon has said so."""
    pid = d.bindfs_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        d.wait_for(
            lambda: d.filesystem("perf_host_filesystem_device_error", d.hung) == 1.0,
            timeout=5,
            what="the hung mount reported",
        )
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[NamespacedDaemon]:
    d = NamespacedDaemon(tmp_path)
    d.start()
    bindfs = d.bindfs_pid()
    try:
        yield d
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(bindfs, signal.SIGCONT)
        d.stop()
        # bindfs keeps the namespace (and its mounts) alive: end the one this test started
        with contextlib.suppress(ProcessLookupError):
            os.kill(bindfs, signal.SIGTERM)


def fresh(d: NamespacedDaemon) -> bool:
    last = d.value(
        "perf_exporter_collector_last_success_timestamp_seconds",
        {"collector": "host", "target": "local"},
    )
    return last is not None and time.time() - last < 2 * INTERVAL + 1


@pytest.mark.timeout(60)
def test_hung_filesystem_is_an_error_for_that_mount_only_and_recovers(
    daemon: NamespacedDaemon,
) -> None:
    d = daemon
    size = "perf_host_filesystem_size_bytes"
    d.wait_for(lambda: d.filesystem(size, d.hung) and d.filesystem(size, d.gone), what="mounts")
    assert d.filesystem("perf_host_filesystem_device_error", d.hung) == 0.0
    with hung_mount(d):
        for _ in range(3):  # several cycles while it hangs
            start = time.monotonic()
            assert d.filesystem(size, d.hung) is None  # no stale size for a mount that hangs
            assert d.filesystem(size, d.gone) is not None
            assert time.monotonic() - start < 0.5
            assert fresh(d)
            assert d.value("perf_exporter_collector_success", {"collector": "host"}) == 1.0
            time.sleep(INTERVAL)
    start = time.monotonic()
    d.wait_for(lambda: d.filesystem(size, d.hung) is not None, timeout=5, what="recovery")
    assert time.monotonic() - start < 2 * INTERVAL + 0.5
    assert d.filesystem("perf_host_filesystem_device_error", d.hung) == 0.0


@pytest.mark.timeout(60)
def test_removed_mount_disappears_from_metrics(daemon: NamespacedDaemon) -> None:
    d = daemon
    size = "perf_host_filesystem_size_bytes"
    d.wait_for(lambda: d.filesystem(size, d.gone) is not None, what="the bind mount")
    d.in_namespace("umount", "-l", str(d.gone))
    start = time.monotonic()
    d.wait_for(lambda: d.filesystem(size, d.gone) is None, timeout=5, what="the mount gone")
    assert time.monotonic() - start < 2 * INTERVAL + 0.5
    assert d.filesystem("perf_host_filesystem_device_error", d.gone) is None
    assert d.filesystem(size, d.hung) is not None
    assert fresh(d)


@pytest.mark.timeout(60)
def test_sigterm_while_a_filesystem_hangs_exits_0_within_5_seconds(
    daemon: NamespacedDaemon,
) -> None:
    d = daemon
    d.wait_for(
        lambda: d.filesystem("perf_host_filesystem_size_bytes", d.hung), what="the FUSE mount"
    )
    with hung_mount(d):
        code, took = d.terminate()
    assert code == 0
    assert took < 5, f"exit took {took:.1f}s with a statvfs thread stuck on the hung mount"
