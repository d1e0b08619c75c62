"""Shared fixtures: suite-started servers (session-scoped; fault tests start their own)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import PostgresServer, RedisServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 with pg_stat_statements preloaded, shared by the read-only tests."""
    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis 7 shared by the tests that do not break it."""
    server = RedisServer()
    yield server
    server.close()
