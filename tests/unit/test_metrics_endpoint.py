"""/metrics over HTTP: negotiated variants, and a plain body too large to keep sent in pieces."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.core import GaugeMetricFamily

from exporter import snapshot
from exporter.server import Handlers, build_app
from exporter.snapshot import Rendered, Snapshot


async def _nothing() -> Any:
    return ""


def _snapshot(targets: int) -> Snapshot:
    snap = Snapshot()
    for i in range(targets):
        fam = GaugeMetricFamily("perf_demo_up", "Whether the demo answered.", value=i % 2)
        snap.put(("data", "demo", f"t{i:03}"), [fam], target=f"t{i:03}")
    return snap


async def _client(rendered: Rendered) -> TestClient[Any, Any]:
    handlers = Handlers(
        rendered=lambda: rendered,
        healthy=lambda: True,
        summary_json=_nothing,
        summary_html=_nothing,
        runbooks_html=_nothing,
    )
    client = TestClient(TestServer(build_app(handlers)), auto_decompress=False)
    await client.start_server()
    return client


@pytest.mark.parametrize("keep_max", [10**9, 100])
async def test_every_variant_is_served_whole(
    monkeypatch: pytest.MonkeyPatch, keep_max: int
) -> None:
    monkeypatch.setattr(snapshot, "PLAIN_KEEP_MAX", keep_max)
    monkeypatch.setattr(snapshot, "GZIP_CHUNK", 256)
    rendered = _snapshot(200).render()
    assert rendered.streams_plain == (keep_max == 100)
    client = await _client(rendered)
    try:
        for om, accept in ((False, "text/plain"), (True, "application/openmetrics-text")):
            whole = rendered.openmetrics if om else rendered.text
            plain = {"Accept": accept, "Accept-Encoding": "identity"}
            response = await client.get("/metrics", headers=plain)
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(whole))
            assert response.headers["Content-Type"].startswith(accept)
            assert await response.read() == whole
            response = await client.get(
                "/metrics", headers={"Accept": accept, "Accept-Encoding": "gzip"}
            )
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await response.read()) == whole
            head = await client.head("/metrics", headers=plain)
            assert head.status == 200 and await head.read() == b""
            assert head.headers["Content-Length"] == str(len(whole))
        # streamed: nothing kept between requests
        assert (rendered.plain == {}) == (keep_max == 100)
    finally:
        await client.close()
