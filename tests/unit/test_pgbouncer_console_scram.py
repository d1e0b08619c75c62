"""The console client's SCRAM-SHA-256 login against a server side built on scramp."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from scramp import ScramMechanism

from exporter.collectors.pgbouncer_console import (
    AdminConsole,
    ConsoleAddress,
    ConsoleError,
    ProtocolError,
)

MECHANISM = ScramMechanism("SCRAM-SHA-256")
AUTH_INFO = MECHANISM.make_auth_info("s3cret", iteration_count=4096)

Tamper = Callable[[str], str]
Start = Callable[[Tamper], Awaitable[int]]


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def auth(code: int, data: bytes = b"") -> bytes:
    return message(b"R", struct.pack("!i", code) + data)


async def read_message(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(5)
    return await reader.readexactly(struct.unpack("!i", header[1:])[0] - 4)


async def serve_one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tamper: Tamper
) -> None:
    """Just enough of PgBouncer's login: SASL with SCRAM-SHA-256, then ReadyForQuery."""
    length = struct.unpack("!i", await reader.readexactly(4))[0]
    await reader.readexactly(length - 4)  # startup packet
    writer.write(auth(10, b"SCRAM-SHA-256\0\0"))
    first = await read_message(reader)
    mechanism, _, rest = first.partition(b"\0")
    assert mechanism == b"SCRAM-SHA-256"
    server = MECHANISM.make_server(lambda _user: AUTH_INFO)
    server.set_client_first(rest[4:].decode())
    writer.write(auth(11, server.get_server_first().encode()))
    try:
        server.set_client_final((await read_message(reader)).decode())
    except Exception:
        body = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
        writer.write(message(b"E", body))
    else:
        writer.write(auth(12, tamper(server.get_server_final()).encode()))
        writer.write(auth(0) + message(b"Z", b"I"))
    await writer.drain()
    await reader.read()  # until the client goes
    writer.close()


@pytest.fixture
async def server_factory() -> AsyncIterator[Start]:
    servers: list[asyncio.Server] = []

    async def start(tamper: Tamper) -> int:
        server = await asyncio.start_server(lambda r, w: serve_one(r, w, tamper), "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()


def address(port: int, password: str) -> ConsoleAddress:
    return ConsoleAddress("127.0.0.1", port, "stats", "pgbouncer", password)


async def test_scram_login_with_the_right_password_succeeds(server_factory: Start) -> None:
    port = await server_factory(lambda final: final)
    console = await asyncio.wait_for(AdminConsole.connect(address(port, "s3cret")), 5)
    console.abort()


async def test_scram_login_with_a_wrong_password_is_an_auth_error(server_factory: Start) -> None:
    port = await server_factory(lambda final: final)
    with pytest.raises(ConsoleError) as raised:
        await asyncio.wait_for(AdminConsole.connect(address(port, "wrong")), 5)
    assert raised.value.is_auth and raised.value.sqlstate == "28P01"


async def test_a_forged_server_signature_is_refused(server_factory: Start) -> None:
    port = await server_factory(lambda final: "v=" + "A" * 43 + "=")
    with pytest.raises(ProtocolError, match="SCRAM signature does not match"):
        await asyncio.wait_for(AdminConsole.connect(address(port, "s3cret")), 5)
