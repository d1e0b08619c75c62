"""Shared fixtures: suite-started servers (session-scoped; fault tests start their own)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import closing

import pytest
import redis.asyncio as aioredis

# the shared helpers assert too: rewritten, a failing check there shows what it compared
pytest.register_assert_rewrite("tests.support")

from tests.support.certs import Issued, web_pki  # noqa: E402 - after the hook
from tests.support.servers import PostgresServer, RedisServer  # noqa: E402


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 with pg_stat_statements preloaded, shared by the read-only tests."""
    with closing(PostgresServer()) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis 7 shared by the tests that do not break it."""
    with closing(RedisServer()) as server:
        yield server


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client of the shared Redis answering ``str``; closed after the test."""
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Issued]:
    """The web TLS tests' CAs and leaves (see ``web_pki``); tests copy before they change one."""
    return web_pki(tmp_path_factory.mktemp("pki"))


def pytest_collection_finish(session: pytest.Session) -> None:
    # pytest exits 5 on an empty collection; a suite that shrank to nothing must fail loudly too
    if not session.items and not session.config.option.collectonly:
        raise pytest.UsageError("no tests were collected: the suite must never pass empty")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI a skipped test is a failure: every integration test must really run there."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run everything: {report.longrepr}"
