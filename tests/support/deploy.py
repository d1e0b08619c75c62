"""What the deployment tests share: a clean venv, and running a command as an unprivileged user
with secrets mounted where the example configs expect them."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
#: nobody:nogroup on Debian; the daemon never needs more
NOBODY = 65534


def world_readable_dir(prefix: str) -> Path:
    """A fresh directory outside pytest's private tmp (mode 0700), so ``nobody`` can enter it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def run(cmd: list[str], timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


#: The Debian Python an operator has: unlike the suite's own interpreter (which may live under
#: /root), an unprivileged user can run it.
SYSTEM_PYTHON = "/usr/bin/python3"


def clean_venv(where: Path) -> Path:
    """A new venv of the system Python, without its site-packages; returns its bin directory."""
    result = run([SYSTEM_PYTHON, "-m", "venv", str(where)])
    assert result.returncode == 0, result.stderr
    return where / "bin"


def password_files(config: Mapping[str, Any]) -> set[str]:
    """Every ``password_file`` a config names, over all target kinds."""
    found: set[str] = set()
    for targets in (config.get("targets") or {}).values():
        for target in targets:
            if target.get("password_file"):
                found.add(str(target["password_file"]))
    return found


def as_nobody(
    cmd: list[str], secrets: Iterable[str] = (), env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` as nobody in a private mount namespace whose /run is a fresh tmpfs holding
    ``secrets`` (owned by nobody, mode 0400, as systemd credentials and Kubernetes secret
    volumes are); the machine's own /run is never touched."""
    assert os.geteuid() == 0, "the deployment tests switch users: run the suite as root (CI does)"
    script = ["mount -t tmpfs -o mode=0755 perf-exporter-test /run"]
    for path in sorted(secrets):
        assert path.startswith("/run/"), path
        script += [
            f'mkdir -p "$(dirname {path})"',
            f'printf "not-a-real-password" > {path}',
            f"chown {NOBODY}:{NOBODY} {path}",
            f"chmod 0400 {path}",
        ]
    script.append(
        f'exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups --no-new-privs "$@"'
    )
    clean_env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    return run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-ec",
            "\n".join(script),
            "sh",
            *cmd,
        ],
        env={**clean_env, **(env or {})},
        cwd="/",
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
