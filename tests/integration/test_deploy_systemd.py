"""The systemd unit passes ``systemd-analyze verify`` and its security review, and the real daemon
speaks the notify protocol to a socket the test listens on, as systemd would."""

from __future__ import annotations

import configparser
import itertools
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.deploy import ROOT, run, world_readable_dir

pytestmark = pytest.mark.integration

UNIT = ROOT / "examples/systemd/perf-exporter.service"
INSTALLED_AT = "/opt/perf-exporter/bin/perf-exporter"
#: the unit's exposure in `systemd-analyze security` (0 best, 10 worst); 1.5 today
MAX_EXPOSURE = 2.0
#: a short watchdog keeps the test short: pings every 0.2 s
WATCHDOG_USEC = 400_000


def _verifiable_unit(text: str, where: Path) -> Path:
    """The unit with only its ExecStart binary moved to one that exists here (verify checks that
    the command is executable); every other line is verified as committed."""
    assert text.count(INSTALLED_AT) == 1
    # the suite's own install of the entry point
    here = Path(sys.executable).parent / "perf-exporter"
    path = where / "perf-exporter.service"
    path.write_text(text.replace(INSTALLED_AT, str(here)))
    return path


def _verify(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run(["systemd-analyze", "verify", str(_verifiable_unit(text, tmp_path))], timeout=60)


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = _verify(UNIT.read_text(), tmp_path)
    # verify exits 0 on unknown keys too, only saying so: any output is a problem
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stderr


def test_verify_reports_a_misspelt_directive(tmp_path: Path) -> None:
    # the check above can fail: a typo in a directive is reported
    result = _verify(UNIT.read_text().replace("ProtectSystem=", "ProtectSistem="), tmp_path)
    assert "Unknown key 'ProtectSistem'" in result.stderr


def test_unit_security_review_rates_it_well_hardened(tmp_path: Path) -> None:
    unit = _verifiable_unit(UNIT.read_text(), tmp_path)
    result = run(
        [
            "systemd-analyze",
            "security",
            "--offline=yes",
            f"--threshold={MAX_EXPOSURE * 10:.0f}",
            str(unit),
        ],
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    exposure = re.search(
        r"Overall exposure level for perf-exporter.service: ([\d.]+)", result.stdout
    )
    assert exposure is not None and float(exposure.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_runs_as_notify_with_credentials_and_hardening() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text().replace("LoadCredential=", "LoadCredential_"))
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["WatchdogSec"] == "30s"
    assert service["Restart"] == "on-failure"
    assert service["DynamicUser"] == service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    credentials = {k.removeprefix("LoadCredential_").split(":")[0] for k in service}
    assert {"postgres", "redis"} <= credentials
    config = (ROOT / "examples/systemd/perf-exporter.yml").read_text()
    for name in ("postgres", "redis"):
        assert f"/run/credentials/perf-exporter.service/{name}\n" in config


class NotifySocket:
    """A datagram socket listening where NOTIFY_SOCKET points, as systemd's is."""

    def __init__(self, abstract: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"perf-exporter-test-{uuid.uuid4().hex[:12]}"
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            # unix socket paths are limited to 107 bytes: pytest's tmp_path may be longer
            self.env = str(world_readable_dir("perf-notify-") / "notify")
            self.sock.bind(self.env)

    def receive(self, timeout: float) -> tuple[str, float]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096)
        return data.decode(), time.monotonic()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=[False, True], ids=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest) -> Iterator[NotifySocket]:
    sock = NotifySocket(abstract=request.param)
    yield sock
    sock.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


HOST_ONLY = {"targets": {}, "interval": "1s", "timeout": "500ms"}


def test_daemon_notifies_ready_once_listening_then_pings_the_watchdog_then_stopping(
    notify_socket: NotifySocket, tmp_path: Path
) -> None:
    env = {"NOTIFY_SOCKET": notify_socket.env, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    daemon = DaemonProcess(HOST_ONLY, tmp_path, env=env).start(wait=False)
    try:
        state, _ = notify_socket.receive(timeout=20)
        # the first word is READY, and by then the port already takes connections
        assert state == "READY=1", daemon.log
        assert _accepts(daemon.port)
        pings = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            state, at = notify_socket.receive(timeout=2)
            assert state == "WATCHDOG=1"
            pings.append(at)
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert len(pings) >= 5, gaps
        # half of WATCHDOG_USEC apart, with room for a loaded machine
        assert max(gaps) < WATCHDOG_USEC / 1e6, gaps
        daemon.signal(signal.SIGTERM)
        states = []
        while "STOPPING=1" not in states:
            states.append(notify_socket.receive(timeout=10)[0])
        assert set(states) <= {"WATCHDOG=1", "STOPPING=1"}
        assert daemon.proc is not None and daemon.proc.wait(10) == 0
    finally:
        daemon.stop()


def test_daemon_without_watchdog_sends_only_ready_and_stopping(
    notify_socket: NotifySocket, tmp_path: Path
) -> None:
    daemon = DaemonProcess(HOST_ONLY, tmp_path, env={"NOTIFY_SOCKET": notify_socket.env})
    daemon.env.pop("WATCHDOG_USEC", None)
    daemon.start(wait=False)
    try:
        assert notify_socket.receive(timeout=20)[0] == "READY=1", daemon.log
        with pytest.raises(TimeoutError):
            notify_socket.receive(timeout=1.0)
        daemon.signal(signal.SIGTERM)
        assert notify_socket.receive(timeout=10)[0] == "STOPPING=1"
    finally:
        daemon.stop()
