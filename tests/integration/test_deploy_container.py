"""The Dockerfile passes hadolint, and its build stage's commands, run outside Docker in a clean
place, produce an install whose HEALTHCHECK command answers for a running daemon."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.support.deploy import NOBODY, ROOT, SYSTEM_PYTHON, as_nobody, run, world_readable_dir
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


@dataclass
class Stage:
    base: str
    name: str | None
    #: (instruction, arguments) with continuation lines joined
    steps: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for ins, args in self.steps if ins == instruction]


def stages(text: str) -> list[Stage]:
    joined = re.sub(r"\\\n", " ", text)
    found: list[Stage] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction == "FROM":
            base, _, name = args.partition(" AS ")
            found.append(Stage(base.strip(), name.strip() or None))
        elif found:
            found[-1].steps.append((instruction, args.strip()))
    return found


def _hadolint(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return run([str(HADOLINT), "--no-color", str(path)], timeout=60)


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    result = _hadolint(DOCKERFILE.read_text(), tmp_path)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout


def test_hadolint_reports_an_unpinned_curl(tmp_path: Path) -> None:
    # the check above can fail: the classic mistake is reported
    bad = DOCKERFILE.read_text().replace(
        "USER 10001:10001", "RUN apt-get update && apt-get install -y curl\nUSER 10001:10001"
    )
    result = _hadolint(bad, tmp_path)
    assert result.returncode != 0
    assert "DL3008" in result.stdout  # pin versions in apt-get install


def test_image_is_multi_stage_slim_non_root_with_a_healthcheck_and_no_curl() -> None:
    text = DOCKERFILE.read_text()
    build, final = stages(text)
    default_image = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert default_image is not None and "-slim" in default_image.group(1)
    assert build.base == final.base == "${PYTHON_IMAGE}" and build.name == "build"
    assert final.all("USER") == ["10001:10001"]
    assert any(args.startswith("--from=build ") for args in final.all("COPY"))
    (health,) = final.all("HEALTHCHECK")
    assert "/healthz" in health
    assert not re.search(r"\b(curl|wget)\b", "\n".join(a for _, a in final.steps + build.steps))
    # config and secrets come by mount: nothing of them is copied in
    assert not re.search(r"secret|password", " ".join(build.all("COPY") + final.all("COPY")))
    assert final.all("CMD") == ['["--config.file=/etc/perf-exporter/perf-exporter.yml"]']


def _python_path(where: Path) -> str:
    # the image's base has `python` on PATH; here the system Python plays that part
    shim = where / "shim"
    shim.mkdir()
    (shim / "python").symlink_to(SYSTEM_PYTHON)
    return f"{shim}:/usr/bin:/bin"


def test_build_stage_commands_install_a_daemon_whose_healthcheck_passes() -> None:
    build, final = stages(DOCKERFILE.read_text())
    base = world_readable_dir("perf-docker-")
    src = base / "src"
    src.mkdir()
    env = {"PATH": _python_path(base), "HOME": str(base), "LANG": "C.UTF-8"}
    prefix = base / "opt-perf-exporter"
    for args in build.all("ARG"):
        name, _, default = args.partition("=")
        env[name] = str(prefix) if name == "PREFIX" else default
    for args in build.all("ENV"):
        name, _, value = args.partition("=")
        env[name] = value
    assert build.all("WORKDIR") == ["/src"]
    for args in build.all("COPY"):
        *sources, dest = shlex.split(args)
        target = src / dest
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(origin, target, dirs_exist_ok=True)
            else:
                (target if dest.endswith("/") else target.parent).mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, target / origin.name if dest.endswith("/") else target)
    for command in build.all("RUN"):
        result = run(["sh", "-ec", command], cwd=src, env=env, timeout=600)
        assert result.returncode == 0, (
            command + "\n" + result.stdout[-2000:] + result.stderr[-2000:]
        )
        assert "perf-exporter " in result.stdout  # the stage's own --version check ran
    # the final stage copies the venv to the same path it was built at: rewrite that path only
    (copy,) = [a for a in final.all("COPY") if a.startswith("--from=build ")]
    assert copy == "--from=build /opt/perf-exporter /opt/perf-exporter"
    (entrypoint,) = final.all("ENTRYPOINT")
    (health,) = final.all("HEALTHCHECK")
    health_cmd = json.loads(health.split(" CMD ", 1)[1])
    port = free_port()
    config = base / "perf-exporter.yml"
    config.write_text(
        yaml.safe_dump({"targets": {}, "web": {"listen_address": f"127.0.0.1:{port}"}})
    )
    config.chmod(0o644)

    def here(argv: list[str]) -> list[str]:
        return [
            a.replace("/opt/perf-exporter", str(prefix)).replace(":9839", f":{port}") for a in argv
        ]

    daemon = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            *here(json.loads(entrypoint)),
            f"--config.file={config}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd="/",
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            check = as_nobody(here(health_cmd))
            if check.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert check.returncode == 0, check.stderr
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
        # and once it has stopped, the same check says unhealthy
        assert as_nobody(here(health_cmd)).returncode == 1
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(5)
