"""A throw-away PgBouncer (Debian ``pgbouncer``) on a free port, in front of a suite PostgreSQL.

PgBouncer refuses to run as root, so when we are root it runs as the ``postgres`` user (the same
drop the suite's PostgreSQL makes). Its config, user list, log and pid file live in a temp dir.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.servers import PostgresServer, free_port, require_binary, wait_for_port

#: Users every test bouncer knows: the admin-console user the exporter logs in as, and an app user.
STATS_USER = "stats"
STATS_PASSWORD = "stats-secret"
APP_USER = "postgres"
APP_PASSWORD = "app-secret"


class PgBouncerServer:
    """PgBouncer on 127.0.0.1:<free port> proxying every database of ``backend``.

    ``pool_size`` is the default per-pool server connection limit; tests saturate it with slow
    queries. ``auth_type`` is ``md5`` or ``scram-sha-256`` (passwords are plain in the user list,
    which PgBouncer accepts for both).
    """

    def __init__(
        self,
        backend: PostgresServer,
        *,
        pool_size: int = 2,
        auth_type: str = "md5",
        pool_mode: str = "session",
        max_client_conn: int = 50,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.binary = require_binary("pgbouncer")
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="perf-pgbouncer-"))
        os.chmod(self.base, 0o755)
        self.config = self.base / "pgbouncer.ini"
        self.logfile = self.base / "pgbouncer.log"
        self.pidfile = self.base / "pgbouncer.pid"
        userlist = self.base / "userlist.txt"
        userlist.write_text(f'"{STATS_USER}" "{STATS_PASSWORD}"\n"{APP_USER}" "{APP_PASSWORD}"\n')
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": auth_type,
            "auth_file": str(userlist),
            "admin_users": STATS_USER,
            "stats_users": STATS_USER,
            "pool_mode": pool_mode,
            "default_pool_size": str(pool_size),
            "max_client_conn": str(max_client_conn),
            "ignore_startup_parameters": "extra_float_digits",
            "logfile": str(self.logfile),
            "pidfile": str(self.pidfile),
            "stats_period": "1",
            "server_login_retry": "1",
        }
        settings.update(extra or {})
        lines = [
            "[databases]",
            f"postgres = host=127.0.0.1 port={backend.port} dbname=postgres",
            "",
            "[pgbouncer]",
            *(f"{key} = {value}" for key, value in settings.items()),
        ]
        self.config.write_text("\n".join(lines) + "\n")
        if os.geteuid() == 0:
            for path in (self.base, self.config, userlist):
                shutil.chown(path, "postgres", "postgres")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def dsn(
        self, user: str = STATS_USER, password: str | None = None, db: str = "pgbouncer"
    ) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        cmd = [self.binary, str(self.config)]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.port)
        except TimeoutError:
            log = self.logfile.read_text() if self.logfile.exists() else "(no log)"
            self.stop()
            raise RuntimeError(f"pgbouncer did not start: {log[-2000:]}") from None

    def _pid(self) -> int | None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int(self.pidfile.read_text().split()[0])
            time.sleep(0.05)
        return None

    def pause(self) -> None:
        """SIGSTOP the process: it keeps its port open but answers nothing (a hung bouncer)."""
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        if self.proc is not None:
            # runuser stops itself when its child stops; it must be continued too
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        pid = self._pid() if self.pidfile.exists() else None
        if pid is not None:
            self.resume()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # immediate shutdown (SIGINT waits)
        else:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
