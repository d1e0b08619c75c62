"""A minimal client for PgBouncer's admin console, speaking the simple query protocol.

Why not asyncpg: the admin console only implements the *simple* query protocol, and asyncpg
sends every query with the extended protocol (Parse/Bind/Execute), even with
``statement_cache_size=0``. Against Debian's PgBouncer 1.18 asyncpg logs in fine, then every
``fetch("SHOW POOLS")`` fails with "extended query protocol not supported by admin console".
asyncpg's simple-protocol path (``execute`` without arguments) discards the rows. So this module
speaks the few messages the console needs: startup, authentication (trust, cleartext, md5,
SCRAM-SHA-256 through ``scramp``) and ``Query`` -> ``RowDescription``/``DataRow``/
``CommandComplete``.

Every value arrives as text (the simple protocol has no binary results); callers convert.
TLS is not implemented: the console is normally reached on localhost or a unix socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from scramp import ScramClient

Row = dict[str, str | None]

_PROTOCOL_VERSION = 196608  # 3.0


class ConsoleError(Exception):
    """PgBouncer answered with an ErrorResponse (``sqlstate`` tells which kind)."""

    def __init__(self, sqlstate: str, message: str, *, at_login: bool = False) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        #: Raised while logging in: the user, password or database was refused.
        self.at_login = at_login

    @property
    def is_auth(self) -> bool:
        # 28000 invalid_authorization_specification, 28P01 invalid_password; PgBouncer refuses
        # a user outside admin_users/stats_users at login with 08P01 "not allowed".
        return self.at_login or self.sqlstate.startswith("28") or "password" in self.message.lower()


class ProtocolError(Exception):
    """The peer sent something that is not the PostgreSQL protocol we expect."""


@dataclass(frozen=True)
class ConsoleAddress:
    """Where and as whom to log in, parsed from a ``postgresql://`` DSN."""

    host: str
    port: int
    user: str
    dbname: str
    password: str | None

    @classmethod
    def from_dsn(cls, dsn: str, password: str | None = None) -> ConsoleAddress:
        """Parse ``postgresql://user[:pw]@host:port/db`` (``?host=/dir`` for a unix socket).

        An explicit ``password`` (from ``password_file``/``password_env``) beats one in the URL.
        """
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
        port = int(query.get("port", [str(parts.port or 6432)])[0])
        user = unquote(parts.username) if parts.username else query.get("user", ["pgbouncer"])[0]
        dbname = unquote(parts.path.lstrip("/")) or "pgbouncer"
        url_password = unquote(parts.password) if parts.password is not None else None
        return cls(host, port, user, dbname, password if password is not None else url_password)


class AdminConsole:
    """One logged-in connection to the admin console; ``query`` returns rows of text."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.server_version = ""

    @classmethod
    async def connect(cls, address: ConsoleAddress) -> AdminConsole:
        """Open the connection and authenticate; raises ConsoleError, OSError, ProtocolError."""
        if address.host.startswith("/"):
            path = os.path.join(address.host, f".s.PGSQL.{address.port}")
            reader, writer = await asyncio.open_unix_connection(path)
        else:
            reader, writer = await asyncio.open_connection(address.host, address.port)
        console = cls(reader, writer)
        try:
            await console._startup(address)
        except BaseException:
            console.abort()
            raise
        return console

    async def query(self, sql: str) -> list[Row]:
        """Run one console command (``SHOW POOLS``) and return its rows by column name."""
        self._send(b"Q", sql.encode() + b"\0")
        columns: list[str] = []
        rows: list[Row] = []
        error: ConsoleError | None = None
        while True:
            kind, body = await self._receive()
            if kind == b"T":
                columns = _row_description(body)
            elif kind == b"D":
                rows.append(dict(zip(columns, _data_row(body), strict=True)))
            elif kind == b"E":
                error = _error(body)
            elif kind == b"Z":
                if error is not None:
                    raise error
                return rows
            # C (command complete), N (notice), S (parameter status), I (empty query): nothing

    def abort(self) -> None:
        """Drop the socket at once (a cancelled query leaves the protocol mid-message)."""
        self._writer.transport.abort()

    async def close(self) -> None:
        if self._writer.is_closing():
            return
        try:
            self._send(b"X", b"")
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        except (OSError, TimeoutError):
            pass

    # --- protocol ------------------------------------------------------------------------------

    def _send(self, kind: bytes, body: bytes) -> None:
        self._writer.write(kind + struct.pack("!i", len(body) + 4) + body)

    async def _receive(self) -> tuple[bytes, bytes]:
        try:
            header = await self._reader.readexactly(5)
            kind, length = header[:1], struct.unpack("!i", header[1:])[0]
            if length < 4 or length > 64 * 1024 * 1024:
                raise ProtocolError(f"implausible message length {length}")
            body = await self._reader.readexactly(length - 4)
        except asyncio.IncompleteReadError:
            raise ConnectionResetError("the server closed the connection") from None
        return kind, body

    async def _startup(self, address: ConsoleAddress) -> None:
        params = {"user": address.user, "database": address.dbname}
        params["application_name"] = "perf-exporter"
        body = struct.pack("!i", _PROTOCOL_VERSION)
        for key, value in params.items():
            body += key.encode() + b"\0" + value.encode() + b"\0"
        body += b"\0"
        self._writer.write(struct.pack("!i", len(body) + 4) + body)
        scram: ScramClient | None = None
        while True:
            kind, payload = await self._receive()
            if kind == b"E":
                error = _error(payload)
                error.at_login = True
                raise error
            if kind == b"R":
                scram = await self._authenticate(address, payload, scram)
            elif kind == b"S":
                name, _, rest = payload.partition(b"\0")
                if name == b"server_version":
                    self.server_version = rest.rstrip(b"\0").decode(errors="replace")
            elif kind == b"Z":
                return

    async def _authenticate(
        self, address: ConsoleAddress, payload: bytes, scram: ScramClient | None
    ) -> ScramClient | None:
        code = struct.unpack("!i", payload[:4])[0]
        if code == 0:  # AuthenticationOk
            return scram
        password = address.password
        if code in (3, 5, 10) and password is None:
            raise ConsoleError(
                "28P01", "the server asks for a password and none was configured", at_login=True
            )
        assert password is not None or code in (11, 12)
        if code == 3:  # cleartext
            self._send(b"p", (password or "").encode() + b"\0")
        elif code == 5:  # md5 with a 4-byte salt
            inner = hashlib.md5((password or "").encode() + address.user.encode()).hexdigest()
            outer = hashlib.md5(inner.encode() + payload[4:8]).hexdigest()
            self._send(b"p", b"md5" + outer.encode() + b"\0")
        elif code == 10:  # SASL: pick SCRAM-SHA-256
            mechanisms = payload[4:].split(b"\0")
            if b"SCRAM-SHA-256" not in mechanisms:
                raise ProtocolError("the server offers no SASL mechanism we support")
            # imported here: scramp (with asn1crypto) costs about 2 MiB, paid by SCRAM users only
            from scramp import ScramClient

            # without channel binding: the console is reached without TLS
            scram = ScramClient(["SCRAM-SHA-256"], address.user, password or "")
            first = scram.get_client_first().encode()
            self._send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
        elif code == 11 and scram is not None:  # SASL continue
            from scramp import ScramException

            try:
                scram.set_server_first(payload[4:].decode())
                final = scram.get_client_final()
            except ScramException as exc:
                raise ProtocolError(f"the server's SCRAM challenge is invalid: {exc}") from None
            self._send(b"p", final.encode())
        elif code == 12 and scram is not None:  # SASL final
            from scramp import ScramException

            try:
                scram.set_server_final(payload[4:].decode())
            except ScramException:
                raise ProtocolError("the server's SCRAM signature does not match") from None
        else:
            raise ProtocolError(f"unsupported authentication request {code}")
        return scram


def _row_description(body: bytes) -> list[str]:
    count = struct.unpack("!h", body[:2])[0]
    names: list[str] = []
    pos = 2
    for _ in range(count):
        end = body.index(b"\0", pos)
        names.append(body[pos:end].decode())
        pos = end + 1 + 18  # table oid, attnum, type oid, typlen, typmod, format
    return names


def _data_row(body: bytes) -> list[str | None]:
    count = struct.unpack("!h", body[:2])[0]
    values: list[str | None] = []
    pos = 2
    for _ in range(count):
        length = struct.unpack("!i", body[pos : pos + 4])[0]
        pos += 4
        if length < 0:
            values.append(None)
        else:
            values.append(body[pos : pos + length].decode(errors="replace"))
            pos += length
    return values


def _error(body: bytes) -> ConsoleError:
    fields: dict[str, str] = {}
    for part in body.split(b"\0"):
        if part:
            fields[part[:1].decode()] = part[1:].decode(errors="replace")
    return ConsoleError(fields.get("C", "XX000"), fields.get("M", "unknown error"))
