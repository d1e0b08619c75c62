"""Helpers for the PostgreSQL collector's integration tests (imported by the test modules)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from exporter.collectors.base import CollectError
from exporter.collectors.postgres import PostgresCollector
from exporter.config import PostgresSettings, PostgresTarget
from tests.support.certs import CertificateAuthority
from tests.support.servers import PG_BIN, PostgresServer, free_port


def collector(
    name: str = "pg", settings: dict[str, Any] | None = None, **target: Any
) -> PostgresCollector:
    target.setdefault("interval", 1.0)
    target.setdefault("timeout", 0.9)
    settings = dict(settings or {})
    # tests of exact per-database statistics work in quiet databases: reading another
    # database's tables over a short connection would add to them (tests of that raise the cap)
    settings.setdefault("table_stats_max_databases", 1)
    return PostgresCollector(PostgresTarget(name=name, **target), PostgresSettings(**settings))


async def collect_error(coll: PostgresCollector) -> CollectError:
    try:
        await coll.collect()
    except CollectError as exc:
        return exc
    raise AssertionError("the cycle succeeded but a failure was expected")


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def flush_stats(conn: asyncpg.Connection) -> None:
    """Make the backend publish its pending statistics before it reports ready (PG 15+)."""
    # the backend flushes as it goes idle, before it tells the client it is ready
    await conn.execute("SELECT pg_stat_force_next_flush()")


def postgres_server_cert(directory: Path) -> tuple[Path, Path]:
    """A throw-away server certificate readable by the postgres user (key mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    issued = CertificateAuthority(directory, "ca").issue("server")
    cert, key = issued.cert, issued.key
    os.chmod(directory, 0o755)
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    if os.geteuid() == 0:
        for path in (directory, cert, key):
            shutil.chown(path, "postgres", "postgres")
    return cert, key


class StandbyServer(PostgresServer):
    """A streaming standby of ``primary`` (pg_basebackup -R) on its own free port."""

    def __init__(self, primary: PostgresServer, application_name: str = "standby1") -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="perf-pg-standby-"))
        self.datadir = self.base / "data"
        self.logfile = self.base / "postgres.log"
        os.chmod(self.base, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        conninfo = (
            f"host=127.0.0.1 port={primary.port} user=postgres application_name={application_name}"
        )
        cmd = [
            str(PG_BIN / "pg_basebackup"),
            "-d",
            conninfo,
            "-D",
            str(self.datadir),
            "-R",
            "-X",
            "stream",
            "--no-sync",
        ]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        # postgresql.auto.conf is read last, so these win over the primary's copied settings
        with open(self.datadir / "postgresql.auto.conf", "a") as fh:
            fh.write(
                f"port = {self.port}\nunix_socket_directories = '{self.base}'\n"
                f"primary_conninfo = '{conninfo}'\n"
            )
        self.start()
