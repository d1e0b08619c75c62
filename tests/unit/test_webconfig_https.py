"""Real HTTPS and basic-auth requests against a tiny aiohttp app using the web-config pieces."""

from __future__ import annotations

import asyncio
import base64
import ssl
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web

import exporter.webconfig as webconfig
from exporter.config import ConfigError
from exporter.webconfig import (
    LiveTLS,
    TLSServerConfig,
    WebConfig,
    auth_middleware,
    response_headers,
)
from tests.support.certs import Issued
from tests.support.servers import free_port

PASSWORD = "scrape-Pa55-7d1e"


@pytest.fixture(scope="module")
def hashed() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


class Holder:
    """What the daemon does on SIGHUP: swap the config the middleware reads."""

    def __init__(self, config: WebConfig | None) -> None:
        self.config = config

    def __call__(self) -> WebConfig | None:
        return self.config


@asynccontextmanager
async def serve(
    get_config: Callable[[], WebConfig | None], context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text="perf_exporter_up 1\n")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application(middlewares=[auth_middleware(get_config)])
    app.on_response_prepare.append(response_headers(get_config))
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def serve_tls(server_config: TLSServerConfig) -> AbstractAsyncContextManager[str]:
    """``serve`` over HTTPS, its web config ``server_config`` and nothing else."""
    config = WebConfig(tls_server_config=server_config)
    return serve(lambda: config, config.ssl_context())


def client_context(ca: Issued, cert: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    return context


async def get(
    url: str, *, context: ssl.SSLContext | bool = True, auth: tuple[str, str] | None = None
) -> tuple[int, aiohttp.typedefs.LooseHeaders]:
    headers = {}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=context, headers=headers) as response,
    ):
        await response.read()
        return response.status, dict(response.headers)


async def metrics_status(url: str, ca: Issued, cert: Issued | None = None) -> int:
    """The status of GET /metrics from a client trusting ``ca`` and presenting ``cert``."""
    return (await get(url + "/metrics", context=client_context(ca, cert)))[0]


def tls(pki: dict[str, Issued], **extra: object) -> TLSServerConfig:
    return TLSServerConfig.model_validate(
        {"cert_file": pki["server"].cert, "key_file": pki["server"].key, **extra}
    )


def client_auth(pki: dict[str, Issued], kind: str) -> TLSServerConfig:
    """The server certificate, and client certificates of ``kind`` checked against the client CA."""
    return tls(pki, client_auth_type=kind, client_ca_file=pki["client_ca"].cert)


# --- TLS ---------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_https_presents_the_configured_certificate(pki: dict[str, Issued]) -> None:
    async with serve_tls(tls(pki)) as url:
        assert await metrics_status(url, pki["ca"]) == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await metrics_status(url, pki["new_ca"])


@pytest.mark.timeout(20)
async def test_min_version_tls13_refuses_a_tls12_only_client(pki: dict[str, Issued]) -> None:
    async with serve_tls(tls(pki, min_version="TLS13")) as url:
        old = client_context(pki["ca"])
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(aiohttp.ClientConnectorError):
            await get(url + "/metrics", context=old)
        assert await metrics_status(url, pki["ca"]) == 200


@pytest.mark.timeout(20)
async def test_required_client_certificate_must_come_from_the_client_ca(
    pki: dict[str, Issued],
) -> None:
    async with serve_tls(client_auth(pki, "RequireAndVerifyClientCert")) as url:
        assert await metrics_status(url, pki["ca"], pki["client"]) == 200
        for bad in (None, pki["rogue"]):
            with pytest.raises(aiohttp.ClientError):
                await metrics_status(url, pki["ca"], bad)


@pytest.mark.timeout(20)
async def test_optional_client_certificate_is_verified_only_when_given(
    pki: dict[str, Issued],
) -> None:
    async with serve_tls(client_auth(pki, "VerifyClientCertIfGiven")) as url:
        assert await metrics_status(url, pki["ca"]) == 200
        with pytest.raises(aiohttp.ClientError):
            await metrics_status(url, pki["ca"], pki["rogue"])


@pytest.mark.timeout(30)
async def test_live_tls_update_applies_to_new_connections_without_a_new_listener(
    pki: dict[str, Issued],
) -> None:
    live = LiveTLS(tls(pki))
    config = WebConfig(tls_server_config=tls(pki))
    async with serve(lambda: config, live.context) as url:
        assert await metrics_status(url, pki["ca"]) == 200

        # certificate rotated to one from another CA
        live.update(TLSServerConfig(cert_file=pki["rotated"].cert, key_file=pki["rotated"].key))
        assert await metrics_status(url, pki["new_ca"]) == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await metrics_status(url, pki["ca"])

        # client certificates now required, then the trusted client CA replaced (not added)
        live.update(client_auth(pki, "RequireAndVerifyClientCert"))
        with pytest.raises(aiohttp.ClientError):
            await metrics_status(url, pki["ca"])
        assert await metrics_status(url, pki["ca"], pki["client"]) == 200
        rogue_ca = pki["rogue"].cert.parent / "rogue-ca.crt"
        live.update(
            tls(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=rogue_ca)
        )
        with pytest.raises(aiohttp.ClientError):
            await metrics_status(url, pki["ca"], pki["client"])
        assert await metrics_status(url, pki["ca"], pki["rogue"]) == 200

        # a broken update raises and changes nothing
        with pytest.raises(ConfigError):
            live.update(TLSServerConfig(cert_file=pki["server"].cert, key_file=pki["rogue"].key))
        assert await metrics_status(url, pki["ca"], pki["rogue"]) == 200


# --- basic auth --------------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_missing_or_wrong_credentials_get_401_with_a_basic_challenge(hashed: str) -> None:
    config = WebConfig(basic_auth_users={"prometheus": hashed})
    async with serve(lambda: config) as url:
        for auth in (None, ("prometheus", "wrong"), ("nobody", PASSWORD), ("", "")):
            status, headers = await get(url + "/metrics", auth=auth)
            assert status == 401, auth
            assert headers["WWW-Authenticate"].startswith("Basic ")
        assert (await get(url + "/metrics", auth=("prometheus", PASSWORD)))[0] == 200
        # unknown paths answer 401 too, so they do not reveal what exists
        assert (await get(url + "/secret"))[0] == 401


@pytest.mark.timeout(20)
async def test_malformed_authorization_headers_are_401_not_500(hashed: str) -> None:
    config = WebConfig(basic_auth_users={"prometheus": hashed})
    async with serve(lambda: config) as url, aiohttp.ClientSession() as session:
        for value in (
            "Basic",
            "Basic !!!",
            "Bearer abc",
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
            "Basic " + base64.b64encode(b"prometheus:" + PASSWORD.encode() + b"x" * 80).decode(),
        ):
            async with session.get(url + "/metrics", headers={"Authorization": value}) as r:
                assert r.status == 401, value


@pytest.mark.timeout(20)
async def test_unauthenticated_paths_stay_open_but_lend_no_exemption(hashed: str) -> None:
    config = WebConfig(basic_auth_users={"prometheus": hashed}, unauthenticated_paths=("/healthz",))
    async with serve(lambda: config) as url, aiohttp.ClientSession() as session:
        assert (await get(url + "/healthz"))[0] == 200
        for raw in ("/healthz/../metrics", "/healthz/%2e%2e/metrics", "//healthz", "/healthz/"):
            target = aiohttp.client.URL(url + raw, encoded=True)
            async with session.get(target) as r:
                assert r.status == 401, raw


@pytest.mark.timeout(30)
async def test_a_verified_password_is_cached_and_a_new_hash_invalidates_it(
    hashed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    real = webconfig._bcrypt_matches

    def counting(password: bytes, digest: bytes) -> bool:
        calls.append(digest)
        return real(password, digest)

    monkeypatch.setattr(webconfig, "_bcrypt_matches", counting)
    holder = Holder(WebConfig(basic_auth_users={"prometheus": hashed}))
    async with serve(holder) as url:
        for _ in range(5):
            assert (await get(url + "/metrics", auth=("prometheus", PASSWORD)))[0] == 200
        assert len(calls) == 1
        # wrong passwords are never cached: each costs a bcrypt check
        for _ in range(3):
            assert (await get(url + "/metrics", auth=("prometheus", "nope")))[0] == 401
        assert len(calls) == 4

        # reload: the user's password changed; the old one must stop working at once
        holder.config = WebConfig(
            basic_auth_users={"prometheus": bcrypt.hashpw(b"rotated", bcrypt.gensalt(4)).decode()}
        )
        assert (await get(url + "/metrics", auth=("prometheus", PASSWORD)))[0] == 401
        assert (await get(url + "/metrics", auth=("prometheus", "rotated")))[0] == 200
        # and a reload that drops auth opens the endpoint
        holder.config = None
        assert (await get(url + "/metrics"))[0] == 200


@pytest.mark.timeout(60)
async def test_unknown_users_take_as_long_as_known_users_with_a_wrong_password() -> None:
    cost = 10
    config = WebConfig(
        basic_auth_users={"prometheus": bcrypt.hashpw(b"x", bcrypt.gensalt(cost)).decode()}
    )
    async with serve(lambda: config) as url:
        await get(url + "/metrics", auth=("warm-up", "x"))

        async def timed(user: str) -> float:
            start = time.perf_counter()
            assert (await get(url + "/metrics", auth=(user, "wrong")))[0] == 401
            return time.perf_counter() - start

        known, unknown = [], []
        for _ in range(7):
            known.append(await timed("prometheus"))
            unknown.append(await timed("mallory"))
    ratio = statistics.median(unknown) / statistics.median(known)
    # cost 10 is ~50 ms of bcrypt; a skipped check would make unknown users ~50x faster
    assert 0.5 < ratio < 2.0, (known, unknown)
    assert statistics.median(unknown) > 0.01


@pytest.mark.timeout(60)
async def test_bcrypt_checks_do_not_stall_other_requests() -> None:
    config = WebConfig(
        basic_auth_users={"prometheus": bcrypt.hashpw(b"x", bcrypt.gensalt(12)).decode()},
        unauthenticated_paths=("/healthz",),
    )
    async with serve(lambda: config) as url:
        guesses = [
            asyncio.create_task(get(url + "/metrics", auth=("prometheus", f"guess{i}")))
            for i in range(3)
        ]
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        assert (await get(url + "/healthz"))[0] == 200
        assert time.perf_counter() - start < 0.2
        assert [status for status, _ in await asyncio.gather(*guesses)] == [401, 401, 401]


@pytest.mark.timeout(20)
async def test_configured_security_headers_are_sent(tmp_path: Path) -> None:
    config = WebConfig.model_validate(
        {"http_server_config": {"headers": {"X-Frame-Options": "deny"}}}
    )
    async with serve(lambda: config) as url:
        status, headers = await get(url + "/metrics")
    assert status == 200
    assert headers["X-Frame-Options"] == "deny"
