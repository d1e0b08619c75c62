"""Replication lag from both ends: a suite-started primary and its streaming standby."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.postgres_collector import StandbyServer, collector, wait_for
from tests.support.registry import registry_of
from tests.support.servers import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

STANDBY = {"application_name": "standby1", "client_addr": "127.0.0.1"}


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[PostgresServer, StandbyServer]]:
    primary = PostgresServer(settings={"autovacuum": "off"})
    try:
        standby = StandbyServer(primary)
    except BaseException:
        primary.close()
        raise
    yield primary, standby
    standby.close()
    primary.close()


async def test_lag_is_zero_when_caught_up_and_grows_while_replay_is_paused(
    pair: tuple[PostgresServer, StandbyServer],
) -> None:
    primary, standby = pair
    primary.sql("CREATE TABLE ticks AS SELECT 1 AS n")

    async def caught_up() -> bool:
        streaming = primary.sql(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' "
            "AND replay_lsn = pg_current_wal_lsn()"
        )
        return streaming == "1" and standby.sql("SELECT to_regclass('ticks') IS NOT NULL") == "t"

    await wait_for(caught_up, timeout=20, what="the standby to catch up")
    on_primary = collector(dsn=primary.dsn)
    on_standby = collector(dsn=standby.dsn)
    try:
        for _ in range(5):  # a background WAL record may arrive between two reads: retry
            reg = registry_of(await on_standby.collect())
            if reg.get_sample_value("perf_postgres_replication_lag_bytes") == 0:
                break
            await asyncio.sleep(0.2)
        assert reg.get_sample_value("perf_postgres_in_recovery") == 1
        assert reg.get_sample_value("perf_postgres_replication_lag_bytes") == 0
        assert reg.get_sample_value("perf_postgres_replication_lag_seconds") == 0
        reg = registry_of(await on_primary.collect())
        assert reg.get_sample_value("perf_postgres_in_recovery") == 0
        assert reg.get_sample_value("perf_postgres_replication_lag_bytes") is None
        assert reg.get_sample_value("perf_postgres_standby_lag_bytes", STANDBY) is not None

        standby.sql("SELECT pg_wal_replay_pause()")
        try:
            primary.sql("INSERT INTO ticks SELECT g FROM generate_series(1, 10000) g")

            async def received() -> bool:
                out = standby.sql(
                    "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())"
                )
                return float(out) > 100_000

            await wait_for(received, timeout=20, what="WAL received but not replayed")
            standby_result = await on_standby.collect()
            reg = registry_of(standby_result)
            assert reg.get_sample_value("perf_postgres_replication_lag_bytes") > 100_000
            assert reg.get_sample_value("perf_postgres_replication_lag_seconds") > 0
            assert standby_result.facts["replication_lag_seconds"] > 0
            reg = registry_of(await on_primary.collect())
            assert reg.get_sample_value("perf_postgres_standby_lag_bytes", STANDBY) > 100_000
        finally:
            standby.sql("SELECT pg_wal_replay_resume()")
    finally:
        await on_primary.close()
        await on_standby.close()
