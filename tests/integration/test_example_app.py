"""examples/fastapi_app.py runs: its core and its FastAPI app against real Redis and PostgreSQL."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from exporter.collectors.app import AppCollector
from exporter.config import AppSettings, AppTarget
from tests.support.registry import registry_of
from tests.support.servers import PostgresServer, RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def _get(app: Any, path: str, query: str = "") -> tuple[int, Any]:
    """One GET through the ASGI interface, as uvicorn would send it."""
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"example")],
        "client": ("127.0.0.1", 40000),
        "server": ("example", 80),
        "app": app,
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return status, json.loads(body)


async def test_example_core_publishes_cache_and_pool_stats(
    pg_server: PostgresServer, redis_server: RedisServer
) -> None:
    example = _load_example()
    prefix = f"perf:example:{uuid.uuid4().hex[:8]}:"
    service = await example.Service.start(
        pg_server.dsn, redis_server.url, prefix=prefix, pool_min=1, pool_max=3
    )
    collector = AppCollector(
        AppTarget(name="example", url=redis_server.url, prefix=prefix), AppSettings()
    )
    try:
        first = await service.item(7)
        second = await service.item(7)
        assert first == second and first["id"] == 7
        await service.search("ab")
        await service.search("ab")
        await service.search("cd")
        await service.publisher.flush()
        reg = registry_of(await collector.collect())
        api = {"namespace": "api_response"}
        search = {"namespace": "search_results"}
        assert reg.get_sample_value("perf_app_cache_hits_total", api) == 1
        assert reg.get_sample_value("perf_app_cache_misses_total", api) == 1
        assert reg.get_sample_value("perf_app_cache_sets_total", api) == 1
        assert reg.get_sample_value("perf_app_cache_hits_total", search) == 1
        assert reg.get_sample_value("perf_app_cache_misses_total", search) == 2
        assert reg.get_sample_value("perf_app_pool_max", {"pool": "main"}) == 3
        assert reg.get_sample_value("perf_app_pool_acquire_seconds_count", {"pool": "main"}) == 3
    finally:
        await service.close()
    after = registry_of(await collector.collect())
    assert after.get_sample_value("perf_app_pool_size", {"pool": "main"}) is None
    await collector.close()


async def test_example_fastapi_app_serves_and_counts(
    pg_server: PostgresServer, redis_server: RedisServer
) -> None:
    example = _load_example()
    prefix = f"perf:example:{uuid.uuid4().hex[:8]}:"
    app = example.create_app(pg_server.dsn, redis_server.url, prefix=prefix)
    collector = AppCollector(
        AppTarget(name="example", url=redis_server.url, prefix=prefix), AppSettings()
    )
    try:
        async with app.router.lifespan_context(app):
            status, body = await _get(app, "/items/42")
            assert status == 200 and body["id"] == 42
            status, again = await _get(app, "/items/42")
            assert status == 200 and again == body
            status, found = await _get(app, "/search", "q=1")
            assert status == 200 and isinstance(found, list)
            await app.state.service.publisher.flush()
            reg = registry_of(await collector.collect())
            api = {"namespace": "api_response"}
            assert reg.get_sample_value("perf_app_cache_hits_total", api) == 1
            assert reg.get_sample_value("perf_app_cache_misses_total", api) == 1
            assert reg.get_sample_value("perf_app_pool_workers", {"pool": "main"}) == 1
    finally:
        await collector.close()
