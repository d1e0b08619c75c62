"""TLS and basic auth for the HTTP side, from a web-config file in the exporter-toolkit format.

Operators reuse the file they already have for node_exporter & co::

    tls_server_config:
      cert_file: server.crt            # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: clients-ca.crt
      min_version: TLS12
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      prometheus: $2b$12$...            # bcrypt hash, e.g. htpasswd -nBC 12 prometheus
    unauthenticated_paths: [/healthz]  # ours: paths served without basic auth

Problems are reported all at once, each with its path, and never quote a hash or a key.

Reload: :class:`LiveTLS` owns the one :class:`ssl.SSLContext` a listener keeps for its
lifetime. A reload updates that object in place (client-certificate mode, protocol versions) and
points its SNI callback, which OpenSSL runs on every handshake with or without SNI, at a freshly
built context holding the new certificate chain and client CA store. New connections use the
new settings; established ones keep theirs. Only switching TLS on or off needs a new listener.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import secrets
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from aiohttp import web

from exporter.config import ConfigError
from exporter.schema import Field, Model, ValidationError, field_validator, model_validator

ClientAuthType = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]

_VERIFY_MODES: dict[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}

_TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

#: Security headers exporter-toolkit lets an operator add; anything else is refused.
ALLOWED_HEADERS = (
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
)

_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$")

#: exporter-toolkit settings we recognise but do not implement: refused by name, not ignored,
#: since silently dropping a restriction would weaken what the operator asked for.
_UNSUPPORTED_TLS_KEYS = ("cipher_suites", "curve_preferences", "client_allowed_sans", "cert", "key")


class TLSServerConfig(Model):
    """``tls_server_config``: the server certificate and how clients must authenticate."""

    cert_file: Path
    key_file: Path
    client_auth_type: ClientAuthType = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str | None = None
    #: Accepted for compatibility with exporter-toolkit files; Python's TLS picks the order.
    prefer_server_cipher_suites: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_but_unsupported(cls, data: object) -> object:
        if isinstance(data, dict):
            found = [key for key in _UNSUPPORTED_TLS_KEYS if key in data]
            if found:
                raise ValueError(
                    f"{', '.join(found)} not supported by perf-exporter; remove "
                    "(inline cert/key: use cert_file/key_file)"
                )
        return data

    @field_validator("min_version", "max_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and value not in _TLS_VERSIONS:
            raise ValueError("must be TLS12 or TLS13 (older versions are not offered)")
        return value

    @field_validator("client_auth_type")
    @classmethod
    def _auth_type(cls, value: str) -> str:
        if value not in _VERIFY_MODES:
            # Python's ssl module cannot accept a client certificate without verifying it
            raise ValueError(
                f"{value} is not supported (a client certificate is always verified here); "
                "use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TLSServerConfig:
        verifies = self.client_auth_type != "NoClientCert"
        if verifies and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if not verifies and self.client_ca_file is not None:
            raise ValueError(
                "client_ca_file is set but client_auth_type is NoClientCert; "
                "set client_auth_type to VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            )
        if (
            self.max_version is not None
            and _TLS_VERSIONS[self.max_version] < _TLS_VERSIONS[self.min_version]
        ):
            raise ValueError("max_version must not be lower than min_version")
        return self

    def resolved(self, directory: Path) -> TLSServerConfig:
        """The same settings with relative file paths taken relative to ``directory``."""

        def anchor(path: Path | None) -> Path | None:
            return None if path is None or path.is_absolute() else directory / path

        changes = {
            key: anchored
            for key in ("cert_file", "key_file", "client_ca_file")
            if (anchored := anchor(getattr(self, key))) is not None
        }
        return self.model_copy(update=changes)

    def build(self) -> ssl.SSLContext:
        """A new server context; :class:`ConfigError` if a file cannot be read or does not fit."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = _TLS_VERSIONS[self.min_version]
        if self.max_version is not None:
            context.maximum_version = _TLS_VERSIONS[self.max_version]
        problems: list[str] = []
        for key in ("cert_file", "key_file", "client_ca_file"):
            path: Path | None = getattr(self, key)
            if path is None:
                continue
            try:
                with path.open("rb"):
                    pass
            except OSError as exc:
                problems.append(f"tls_server_config.{key}: cannot read {path} ({exc.strerror})")
        if problems:
            raise ConfigError(problems)
        try:
            # An empty password makes an encrypted key fail instead of prompting on a terminal.
            context.load_cert_chain(self.cert_file, self.key_file, password=b"")
        except ssl.SSLError as exc:
            raise ConfigError(
                [
                    "tls_server_config: cannot use cert_file and key_file together "
                    f"({_ssl_reason(exc)}); they must be PEM files, the key unencrypted "
                    "and belonging to the certificate"
                ]
            ) from None
        if self.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca_file)
            except ssl.SSLError as exc:
                raise ConfigError(
                    [
                        "tls_server_config.client_ca_file: holds no usable PEM certificate "
                        f"({_ssl_reason(exc)})"
                    ]
                ) from None
        context.verify_mode = _VERIFY_MODES[self.client_auth_type]
        return context


def _printable(text: str) -> str:
    """A name from the file, quoted when it holds line breaks or control characters."""
    return text if text.isprintable() else repr(text)


def _ssl_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's short reason (``KEY_VALUES_MISMATCH``), never file content."""
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else "unreadable PEM data"


class HTTPServerConfig(Model):
    """``http_server_config``: extra security headers on every response."""

    #: Accepted for compatibility; aiohttp serves HTTP/1.1 only.
    http2: bool | None = None
    headers: dict[str, str] = {}

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = {h.lower(): h for h in ALLOWED_HEADERS}
        out: dict[str, str] = {}
        for name, text in value.items():
            canonical = allowed.get(name.lower())
            if canonical is None:
                raise ValueError(
                    f"header {name!r} may not be set; allowed: {', '.join(allowed.values())}"
                )
            if "\r" in text or "\n" in text:
                raise ValueError(f"header {canonical} must be one line")
            out[canonical] = text
        return out


class WebConfig(Model):
    """The validated web-config file: TLS, basic-auth users and the paths left open."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: dict[str, str] = Field(default_factory=dict)
    unauthenticated_paths: tuple[str, ...] = ()

    @field_validator("basic_auth_users")
    @classmethod
    def _users(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [user for user, hashed in value.items() if not _BCRYPT.match(str(hashed))]
        if bad:
            names = ", ".join(_printable(user) for user in sorted(bad))
            raise ValueError(
                f"the password of {names} is not a bcrypt hash "
                "(create one with `htpasswd -nBC 12 USER` and paste the part after the colon)"
            )
        odd = [user for user in value if not user or ":" in user or not user.isprintable()]
        if odd:
            raise ValueError("user names must be non-empty, printable and contain no ':'")
        return value

    @field_validator("unauthenticated_paths")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if (
                not path.startswith("/")
                or "/../" in path + "/"
                or "?" in path
                or not path.isprintable()
            ):
                raise ValueError("each path must be an absolute URL path such as /healthz")
        return value

    def ssl_context(self) -> ssl.SSLContext | None:
        """A freshly built server context, or ``None`` when the file asks for no TLS."""
        return None if self.tls_server_config is None else self.tls_server_config.build()

    def bcrypt_cost(self) -> int:
        """The cost most users' hashes have: the dummy hash for unknown users must match it."""
        costs = [int(h[4:6]) for h in self.basic_auth_users.values()]
        return max(set(costs), key=costs.count) if costs else 10


def load_web_config(path: Path | str) -> WebConfig:
    """Read, validate and try out (TLS files loaded) the web-config file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"{path}: cannot read the web config file ({reason})"]) from None
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: invalid YAML{where}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of settings"])
    try:
        config = WebConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([f"{path}: {problem}" for problem in exc.problems()]) from None
    if config.tls_server_config is not None:
        tls = config.tls_server_config.resolved(path.parent)
        config = config.model_copy(update={"tls_server_config": tls})
        try:
            tls.build()
        except ConfigError as exc:
            raise ConfigError([f"{path}: {problem}" for problem in exc.problems]) from None
    return config


class LiveTLS:
    """The one SSLContext a listener keeps; :meth:`update` makes new handshakes use new files.

    asyncio hands the context given to ``create_server`` to every new connection, and an
    ``SSLContext`` cannot drop a loaded CA. So the listener's context stays, takes the settings
    OpenSSL reads when a connection is created (verify mode, protocol versions) in place, and its
    SNI callback moves each handshake onto the latest fully built context (certificate chain and
    client CA store).
    """

    def __init__(self, tls: TLSServerConfig) -> None:
        self.context = tls.build()
        self._current = self.context
        self.context.sni_callback = self._select

    def update(self, tls: TLSServerConfig) -> None:
        """Use ``tls`` for new connections; :class:`ConfigError` (and no change) if it is bad."""
        fresh = tls.build()
        self.context.minimum_version = fresh.minimum_version
        self.context.maximum_version = fresh.maximum_version
        self.context.verify_mode = fresh.verify_mode
        # Also on the listener's own context, in case a client's handshake skips the callback.
        self.context.load_cert_chain(tls.cert_file, tls.key_file, password=b"")
        self._current = fresh

    def _select(self, sslobj: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        if self._current is not self.context:
            sslobj.context = self._current


# --- basic auth -------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

#: At most this many distinct (user, hash, password) successes are remembered.
AUTH_CACHE_SIZE = 256


class BasicAuth:
    """Checks ``Authorization: Basic`` against the bcrypt hashes of the current web config.

    A success is remembered under a SHA-256 of user, hash and password, so a scraper pays bcrypt
    once; a changed hash on reload no longer matches. Unknown users are checked against a dummy
    hash of the same cost, so the response time does not tell which users exist. bcrypt runs in
    a thread, one check at a time, so failed guesses cost CPU but never stall the event loop.
    """

    def __init__(self) -> None:
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._lock = asyncio.Lock()
        self._dummy: dict[int, bytes] = {}

    def _dummy_hash(self, cost: int) -> bytes:
        if cost not in self._dummy:
            import bcrypt  # see _bcrypt_matches

            self._dummy[cost] = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
        return self._dummy[cost]

    async def check(self, config: WebConfig, header: str | None) -> bool:
        """True when ``header`` carries a configured user and that user's password."""
        user, password = _decode(header)
        stored = config.basic_auth_users.get(user) if user is not None else None
        hashed = stored.encode() if stored is not None else None
        key = hashlib.sha256(b"\0".join(((user or "").encode(), hashed or b"", password))).digest()
        if hashed is not None and key in self._ok:
            self._ok.move_to_end(key)
            return True
        cost = config.bcrypt_cost()
        against = hashed if hashed is not None else self._dummy_hash(cost)
        async with self._lock:
            ok = await asyncio.to_thread(_bcrypt_matches, password, against)
        if not (ok and hashed is not None):
            return False
        self._ok[key] = None
        while len(self._ok) > AUTH_CACHE_SIZE:
            self._ok.popitem(last=False)
        return True


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    # imported on the first check: a daemon without basic-auth users never loads it (0.4 MB)
    import bcrypt

    # bcrypt reads only 72 bytes; longer passwords are refused but still cost one full check
    too_long = len(password) > 72
    try:
        ok = bcrypt.checkpw(password[:72], hashed)
    except ValueError:
        return False
    return ok and not too_long


def _decode(header: str | None) -> tuple[str | None, bytes]:
    if not header:
        return None, b""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None, b""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None, b""
    user, sep, password = raw.partition(b":")
    if not sep:
        return None, b""
    try:
        return user.decode(), password
    except UnicodeDecodeError:
        return None, b""


def _unauthorized() -> web.Response:
    return web.Response(
        status=401,
        text="Unauthorized\n",
        headers={"WWW-Authenticate": 'Basic realm="perf-exporter", charset="UTF-8"'},
    )


def auth_middleware(get_config: Callable[[], WebConfig | None]) -> Middleware:
    """An aiohttp middleware enforcing ``basic_auth_users`` from the current web config.

    ``get_config`` is called on every request, so a reload takes effect on the next one. With
    no config, or no ``basic_auth_users``, every request passes. ``unauthenticated_paths`` are
    compared with the route the request actually resolved to, so ``/healthz/../metrics`` and
    friends cannot borrow the exemption.
    """
    auth = BasicAuth()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        config = get_config()
        if config is None or not config.basic_auth_users:
            return await handler(request)
        resource = request.match_info.route.resource
        if (
            resource is not None
            and resource.canonical in config.unauthenticated_paths
            and request.path == resource.canonical
        ):
            return await handler(request)
        if not await auth.check(config, request.headers.get("Authorization")):
            return _unauthorized()
        return await handler(request)

    return middleware


def response_headers(
    get_config: Callable[[], WebConfig | None],
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An ``on_response_prepare`` hook adding ``http_server_config.headers`` to every response."""

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        config = get_config()
        if config is not None:
            response.headers.update(config.http_server_config.headers)

    return add_headers


__all__ = [
    "ALLOWED_HEADERS",
    "BasicAuth",
    "HTTPServerConfig",
    "LiveTLS",
    "TLSServerConfig",
    "WebConfig",
    "auth_middleware",
    "load_web_config",
    "response_headers",
]
