"""PostgreSQL server-wide database health: wraparound, vacuums in progress, every database's tables.

Three things the per-database statistics views cannot give over the one connection of the
PostgreSQL collector:

* **Wraparound**: ``age(datfrozenxid)`` of every database (templates included: any of them
  reaching ``autovacuum_freeze_max_age`` forces an anti-wraparound vacuum, and 2^31 stops
  writes) beside the setting, from :data:`HEALTH_COLUMNS` of the collector's server statement.
* **Vacuums in progress**: ``pg_stat_progress_vacuum`` counted by database and phase (the view
  is server-wide; a relation name would only resolve in its own database, so none is given).
* **Table statistics of the other databases**: ``pg_stat_user_tables`` and friends describe the
  connected database only, so :class:`DatabaseTables` opens one short connection per other
  database (same session settings, tighter timeout), runs
  :data:`~exporter.collectors.postgres_queries.TABLES` and closes it. At most
  ``table_stats_max_databases`` databases, at most :data:`CONCURRENCY` connections at a time,
  refreshed every ``table_stats_interval``; one database that fails (dropped, no CONNECT
  privilege, too many connections, slow) is counted and logged once per change of reason and
  never fails the target.

Sample output::

    perf_postgres_autovacuum_freeze_max_age 2e+08
    perf_postgres_database_xid_age{datname="app"} 1.2e+07
    perf_postgres_vacuums_in_progress{datname="app",phase="scanning heap"} 1.0
    perf_postgres_table_stats_up{datname="reports"} 1.0
    perf_postgres_table_stats_timestamp_seconds{datname="reports"} 1.7646e+09
    perf_postgres_table_stats_errors_total{datname="old",reason="gone"} 1.0
    perf_postgres_table_stats_databases_skipped 0.0
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.collectors import postgres_queries as sql

logger = logging.getLogger(__name__)

#: Connections to other databases open at the same time, at most.
CONCURRENCY = 2

# One row: the setting, every database with its frozen-xid age and whether the exporter may
# connect to it (so a database without CONNECT privilege costs no failed login per refresh),
# and the vacuums running now by database and phase.
#: Columns of the collector's server statement (collectors/postgres.py appends them, so the
#: wraparound and vacuum figures cost no statement of their own): the freeze age setting, every
#: database's transaction ID age, and the vacuums running now.
HEALTH_COLUMNS = """\
current_setting('autovacuum_freeze_max_age')::float8 AS freeze_max_age,
    (SELECT json_agg(json_build_object(
        'datname', d.datname, 'xid_age', age(d.datfrozenxid),
        'connectable', d.datallowconn AND NOT d.datistemplate,
        'may_connect', has_database_privilege(d.oid, 'CONNECT')) ORDER BY d.datname)
      FROM pg_database d) AS database_ages,
    (SELECT json_agg(json_build_object('datname', v.datname, 'phase', v.phase, 'count', v.n)
                     ORDER BY v.datname, v.phase)
      FROM (SELECT coalesce(datname, '') AS datname, phase, count(*) AS n
            FROM pg_stat_progress_vacuum GROUP BY 1, 2) v) AS vacuums"""


Row = Mapping[str, Any]
#: The tables and unused indexes of one database, as :data:`~postgres_queries.TABLES` gives them.
TableRows = tuple[list[dict[str, Any]], list[dict[str, Any]]]
#: Opens a connection to the named database with the given session settings.
Opener = Callable[[str, dict[str, str], float], Awaitable[asyncpg.Connection]]


def wraparound_families(freeze_max_age: float, databases: Iterable[Row]) -> list[Metric]:
    """The freeze age setting and each database's transaction ID age."""
    age = GaugeMetricFamily(
        "perf_postgres_database_xid_age",
        "Transactions since the database's oldest unfrozen transaction ID (age(datfrozenxid)); "
        "autovacuum forces a freeze at autovacuum_freeze_max_age, writes stop near 2^31.",
        labels=["datname"],
    )
    for row in databases:
        age.add_metric([row["datname"]], float(row["xid_age"]))
    setting = GaugeMetricFamily(
        "perf_postgres_autovacuum_freeze_max_age",
        "The autovacuum_freeze_max_age setting (transactions).",
        value=freeze_max_age,
    )
    return [age, setting]


def vacuum_families(vacuums: Iterable[Row]) -> list[Metric]:
    """Vacuums running now (pg_stat_progress_vacuum) by database and phase."""
    family = GaugeMetricFamily(
        "perf_postgres_vacuums_in_progress",
        "Vacuums running now (manual and autovacuum) by database and phase.",
        labels=["datname", "phase"],
    )
    for row in vacuums:
        family.add_metric([row["datname"], row["phase"]], float(row["count"]))
    return [family]


def reason_of(exc: BaseException) -> str:
    """Why one database's statistics could not be read, as the error counter's label."""
    if isinstance(exc, TimeoutError | asyncpg.QueryCanceledError | asyncpg.LockNotAvailableError):
        return "timeout"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "gone"
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return "privilege"
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return "too_many_connections"
    if isinstance(
        exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError
    ):
        return "auth"
    if isinstance(exc, asyncpg.PostgresError):
        return "query"
    return "connection"


@dataclass
class _Database:
    """What is known of one other database: its last good rows and its failures."""

    rows: TableRows | None = None
    #: Unix time the rows were read.
    sampled_at: float | None = None
    problem: str | None = None
    errors: dict[str, int] = field(default_factory=dict)


class DatabaseTables:
    """Table and index statistics of the databases other than the connected one.

    One instance per target, owned by the PostgreSQL collector: it keeps each database's last
    good rows between refreshes and the error counts for the daemon's lifetime, and tracks the
    connections it has open so that :meth:`close` can cut them.
    """

    def __init__(
        self,
        *,
        open_connection: Opener,
        session: Callable[[float], dict[str, str]],
        timeout: float,
        max_databases: int,
        interval: float,
        tables_top_n: int,
        log_extra: dict[str, str],
        describe: Callable[[BaseException], str] = lambda exc: " ".join(str(exc).split()),
    ) -> None:
        #: One line about a failure for the log (the collector's masks its password).
        self._describe = describe
        self._open = open_connection
        self._session = session
        self._timeout = timeout
        self._max = max_databases
        self._interval = interval
        self._top_n = tables_top_n
        self._log_extra = log_extra
        self._known: dict[str, _Database] = {}
        self._refreshed: float | None = None
        self._live: set[asyncpg.Connection] = set()
        self.skipped = 0
        #: Statements run on other databases in the last cycle (for the collector's own count).
        self.statements = 0

    def choose(
        self,
        databases: Iterable[Row],
        current_db: str,
        reported: Sequence[str] | None,
        wanted: Sequence[str] | None,
    ) -> list[Row]:
        """The other databases to read, by name, within the cap (the connected one counts)."""
        chosen = [
            row
            for row in databases
            if row["connectable"]
            and row["datname"] != current_db
            and (reported is None or row["datname"] in reported)
            and (wanted is None or row["datname"] in wanted)
        ]
        room = self._max - 1
        self.skipped = max(0, len(chosen) - room)
        return chosen[:room]

    async def refresh(self, chosen: Sequence[Row], budget: float) -> dict[str, TableRows]:
        """The rows of every chosen database that answered (re-read only when due).

        ``budget`` is what is left of the cycle's timeout: databases not done by then count a
        timeout this time, so a slow database costs the cycle time but never the target.
        """
        self.statements = 0
        names = {row["datname"] for row in chosen}
        # a database no longer chosen (dropped, filtered) keeps only its error counts (a counter
        # never goes down); one that never failed is forgotten, so churn does not grow this
        for name, known in list(self._known.items()):
            if name not in names:
                known.rows = known.sampled_at = None
                if not known.errors:
                    del self._known[name]
        now = time.monotonic()
        due = self._refreshed is None or now - self._refreshed >= self._interval
        if due and chosen:
            self._refreshed = now
            per_database = max(0.05, min(self._timeout / 2, budget))
            gate = asyncio.Semaphore(CONCURRENCY)
            done: set[str] = set()
            try:
                async with asyncio.timeout(budget):
                    async with asyncio.TaskGroup() as group:
                        for row in chosen:
                            group.create_task(self._read(row, per_database, gate, done))
            except TimeoutError:
                for row in chosen:
                    if row["datname"] not in done:
                        late = self._known.setdefault(row["datname"], _Database())
                        self._failed(row["datname"], late, "timeout", "the cycle ran out of time")
        return {
            name: entry.rows
            for name in sorted(names)
            if (entry := self._known.get(name)) is not None and entry.rows is not None
        }

    async def _read(
        self, row: Row, seconds: float, gate: asyncio.Semaphore, done: set[str]
    ) -> None:
        name: str = row["datname"]
        known = self._known.setdefault(name, _Database())
        if not row["may_connect"]:
            done.add(name)
            self._failed(name, known, "privilege", "the monitoring role has no CONNECT on it")
            return
        async with gate:
            conn: asyncpg.Connection | None = None
            try:
                async with asyncio.timeout(seconds):
                    conn = await self._open(name, self._session(seconds), seconds)
                    self._live.add(conn)
                    self.statements += 1
                    result = (await conn.fetch(sql.TABLES, self._top_n))[0]
                    await conn.close(timeout=seconds)
            except Exception as exc:  # TimeoutError included; a cancel propagates
                done.add(name)
                self._failed(name, known, reason_of(exc), self._describe(exc) or "timeout")
                return
            finally:
                if conn is not None:
                    self._live.discard(conn)
                    if not conn.is_closed():
                        conn.terminate()
        done.add(name)
        known.rows = (_rows(result["tables"]), _rows(result["unused_indexes"]))
        known.sampled_at = time.time()
        if known.problem is not None:
            logger.info(
                "table statistics of database %s are read again",
                name,
                extra=self._log_extra,
            )
        known.problem = None

    def _failed(self, name: str, known: _Database, reason: str, detail: str) -> None:
        known.rows = known.sampled_at = None
        known.errors[reason] = known.errors.get(reason, 0) + 1
        if known.problem != reason:
            logger.warning(
                "cannot read the table statistics of database %s (%s: %s); the other "
                "databases are still reported",
                name,
                reason,
                detail,
                extra=self._log_extra,
            )
        known.problem = reason

    def families(self, chosen: Sequence[Row], current: str | None) -> list[Metric]:
        """Up per database with table statistics (``current``, the connected one, read over the
        collector's own connection, is always up), when the rows were read, errors so far, and
        the databases over the cap."""
        up = GaugeMetricFamily(
            "perf_postgres_table_stats_up",
            "1 when the table statistics of the database were read at its last refresh (each "
            "database but the connected one needs its own short connection).",
            labels=["datname"],
        )
        stamp = GaugeMetricFamily(
            "perf_postgres_table_stats_timestamp_seconds",
            "Unix time the database's table statistics were read (refreshed every "
            "table_stats_interval).",
            labels=["datname"],
        )
        if current is not None:
            up.add_metric([current], 1.0)
            stamp.add_metric([current], time.time())
        for row in chosen:
            known = self._known.get(row["datname"])
            if known is None:
                continue  # new since the last refresh: not tried yet, so neither up nor down
            good = known.rows is not None
            up.add_metric([row["datname"]], 1.0 if good else 0.0)
            if good:
                stamp.add_metric([row["datname"]], float(known.sampled_at or 0.0))
        errors = CounterMetricFamily(
            "perf_postgres_table_stats_errors",
            "Refreshes of a database's table statistics that failed, by reason (gone, "
            "privilege, too_many_connections, timeout, auth, query, connection).",
            labels=["datname", "reason"],
        )
        for name in sorted(self._known):
            for reason, count in sorted(self._known[name].errors.items()):
                errors.add_metric([name, reason], float(count))
        skipped = GaugeMetricFamily(
            "perf_postgres_table_stats_databases_skipped",
            "Databases left without table statistics because table_stats_max_databases is reached.",
            value=float(self.skipped),
        )
        return [up, stamp, errors, skipped]

    async def close(self) -> None:
        """Cut any connection still open (the collector is closing mid-refresh)."""
        for conn in list(self._live):
            self._live.discard(conn)
            if not conn.is_closed():
                conn.terminate()


def _rows(value: str | None) -> list[dict[str, Any]]:
    if value is None:
        return []
    rows: list[dict[str, Any]] = json.loads(value)
    return rows
