"""PostgreSQL: buffer-cache hit rate, connections against max_connections, query latency.

One dedicated asyncpg connection per target (``application_name=perf-exporter``, read-only,
``statement_timeout`` and ``lock_timeout`` derived from the target's timeout), kept and
reopened by :class:`~exporter.collectors.connected.ConnectedCollector`. A cycle runs a handful
of statements (see :mod:`exporter.collectors.postgres_queries`), all on statistics views and
catalogs; between cycles :mod:`exporter.collectors.postgres_activity` samples wait events and
blocking on the same connection. Works with a role that only has ``pg_monitor`` (see
``docs/postgres.md``). Sample output (the snapshot adds ``target``; the wait and blocking series
are shown there)::

    perf_postgres_probe_duration_seconds_bucket{le="0.0005"} 41.0
    perf_postgres_probe_duration_seconds_count 42.0
    perf_postgres_blocks_hit_total{datname="app"} 1.843e+06
    perf_postgres_blocks_read_total{datname="app"} 5210.0
    perf_postgres_transactions_committed_total{datname="app"} 90211.0
    perf_postgres_tuples_fetched_total{datname="app"} 4.1e+06
    perf_postgres_database_size_bytes{datname="app"} 8.2e+07
    perf_postgres_connections{datname="app",state="active"} 3.0
    perf_postgres_connections{datname="app",state="idle in transaction"} 1.0
    perf_postgres_connections{datname="app",state="fastpath function call"} 0.0
    perf_postgres_lock_waiters{datname="app"} 0.0
    perf_postgres_max_connections 100.0
    perf_postgres_superuser_reserved_connections 3.0
    perf_postgres_transaction_max_age_seconds{application_name="api"} 0.8
    perf_postgres_idle_in_transaction_max_age_seconds{application_name="api"} 0.0
    perf_postgres_version_info{version="15.20",version_num="150020"} 1.0
    perf_postgres_postmaster_start_time_seconds 1.7646e+09
    perf_postgres_in_recovery 0.0
    perf_postgres_standby_lag_bytes{application_name="replica1",client_addr="10.0.0.7"} 0.0
    perf_postgres_stat_statements_available 1.0
    perf_postgres_statement_calls_total{datname="app",queryid="-46168174",user="api"} 12040.0
    perf_postgres_statement_exec_seconds_total{datname="app",queryid="other",user=""} 3.2
    perf_postgres_statements_deallocations_total 12.0
    perf_postgres_statements_reset_timestamp_seconds 1.7646e+09
    perf_postgres_table_seq_scan_total{datname="app",relname="orders",schemaname="public"} 902.0
    perf_postgres_table_size_bytes{datname="app",relname="orders",schemaname="public"} 4.1e+07
    perf_postgres_unused_index_size_bytes{datname="app",indexrelname="orders_note_idx",...} 1.6e+07
    perf_postgres_table_dead_tuples{datname="app",relname="orders",schemaname="public"} 1204.0
    perf_postgres_table_last_vacuum_timestamp_seconds{datname="app",relname="orders",...} 1.76e+09
    perf_postgres_database_xid_age{datname="app"} 1.2e+07
    perf_postgres_collector_statements 4.0
    perf_postgres_collector_query_duration_seconds 0.0031

Per-table series describe the database the target connects to and, read over short connections
of their own by :mod:`exporter.collectors.postgres_databases` (which also gives the wraparound
and vacuum-progress series), the server's other databases. Facts for /summary:
``cache_hit_ratio`` (over the last interval), ``connections``, ``max_connections``,
``superuser_reserved_connections``, ``probe_seconds``, ``longest_transaction_seconds``,
``longest_idle_in_transaction_seconds``, ``stat_statements_available``, ``replication_lag_seconds``,
``index_recommendations`` (advice only; nothing is ever run on the database) and ``blocking``
(the roots of the lock-blocking chains).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import time
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import asyncpg
from prometheus_client.metrics_core import Metric

from exporter.collectors import postgres_activity as act
from exporter.collectors import postgres_databases as pgdb
from exporter.collectors import postgres_families as fam
from exporter.collectors import postgres_queries as sql
from exporter.collectors import postgres_server_stats as server_stats
from exporter.collectors.base import Collected, CollectError
from exporter.collectors.connected import ConnectedCollector
from exporter.collectors.postgres_statements import StatementAccounts, StatementKey
from exporter.config import PostgresSettings, PostgresTarget, Timing, redact_url

logger = logging.getLogger(__name__)

APPLICATION_NAME = "perf-exporter"


def where(target: PostgresTarget) -> str:
    """Where the target is, for messages: the DSN without password, or host:port/dbname."""
    if target.dsn is not None:
        return redact_url(target.dsn)
    host = target.host or "localhost"
    port = target.port or 5432
    user = f"{target.user}@" if target.user else ""
    return f"postgresql://{user}{host}:{port}/{target.dbname or ''}"


_LOCAL_HOSTS = frozenset(("localhost", "127.0.0.1", "::1"))


def server_cpus(target: PostgresTarget) -> int | None:
    """The database server's CPUs: configured, else this host's when the target is on it."""
    if target.cpus is not None:
        return target.cpus
    host = target.host
    if target.dsn is not None:
        parts = urlsplit(target.dsn)
        host = parts.hostname or next(iter(parse_qs(parts.query).get("host", [])), None)
    # libpq's default (PGHOST, else the local socket) applies when no host is given
    host = host or os.environ.get("PGHOST") or "/"
    if host.startswith("/") or host in _LOCAL_HOSTS:
        return os.cpu_count()
    return None


def _clean(text: str, password: str | None) -> str:
    """The server's message on one line, with the password masked should it ever appear."""
    line = " ".join(str(text).split())
    if password:
        line = line.replace(password, "***")
    return line.rstrip(".")


def translate_failure(
    exc: BaseException, location: str, password: str | None = None
) -> CollectError:
    """Map a driver, network or server failure to a :class:`CollectError` with one sentence."""
    detail = _clean(str(exc) or type(exc).__name__, password)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return CollectError("timeout", f"PostgreSQL at {location} did not answer in time")
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return CollectError(
            "connection",
            f"PostgreSQL at {location} refused the connection because it has too many "
            f"connections ({detail})",
        )
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return CollectError("auth", f"PostgreSQL at {location} rejected the password ({detail})")
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        hint = ""
        if "no encryption" in detail:
            hint = "; the server accepts this role only over TLS, set sslmode: require"
        return CollectError("auth", f"PostgreSQL at {location} rejected the login ({detail}){hint}")
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return CollectError(
            "auth",
            f"PostgreSQL at {location} denied a statistics query ({detail}); "
            "grant the monitoring role pg_monitor",
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return CollectError("connection", f"PostgreSQL at {location}: {detail}")
    if isinstance(exc, asyncpg.QueryCanceledError | asyncpg.LockNotAvailableError):
        return CollectError(
            "timeout", f"a statistics query on {location} hit the session timeout ({detail})"
        )
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError,
    ):
        return CollectError(
            "connection", f"lost the connection to PostgreSQL at {location} ({detail})"
        )
    if isinstance(exc, asyncpg.PostgresError):
        return CollectError("query", f"a statistics query on {location} failed ({detail})")
    if isinstance(exc, ssl.SSLError):
        return CollectError("connection", f"TLS with PostgreSQL at {location} failed ({detail})")
    if isinstance(exc, ConnectionRefusedError):
        return CollectError("connection", f"PostgreSQL at {location} refused the connection")
    if isinstance(exc, OSError | asyncpg.InterfaceError):
        return CollectError("connection", f"cannot reach PostgreSQL at {location} ({detail})")
    return CollectError("other", f"sampling PostgreSQL at {location} failed ({detail})")


def _rows(value: str | None) -> list[dict[str, Any]]:
    """A JSON array column (``json_agg`` gives NULL for no rows)."""
    if value is None:
        return []
    rows: list[dict[str, Any]] = json.loads(value)
    return rows


def _preloaded(setting: str | None) -> bool | None:
    """Whether pg_stat_statements is in shared_preload_libraries; None when we may not see it."""
    if setting is None:
        return None
    return "pg_stat_statements" in {part.strip().strip('"') for part in setting.split(",")}


class PostgresCollector(ConnectedCollector[PostgresTarget, PostgresSettings, asyncpg.Connection]):
    """Samples one PostgreSQL server over one long-lived connection.

    Work between collections (such as sampling wait events) runs on the same session through
    :meth:`borrow`, which holds :attr:`lock` so it never interleaves with a cycle.
    """

    name: ClassVar[str] = "postgres"
    up_metric: ClassVar[str | None] = "perf_postgres_up"
    up_help: ClassVar[str] = "1 when the last sample of the PostgreSQL target succeeded."

    def __init__(
        self, target: PostgresTarget, settings: PostgresSettings, timing: Timing | None = None
    ) -> None:
        super().__init__(target, settings, timing)
        self.location = where(target)
        self._password: str | None = None
        self._server_cpus = server_cpus(target)
        self._probe = fam.probe_histogram()
        self._previous_blocks: dict[str, tuple[int, int]] | None = None
        self._texts: dict[str, str] = {}
        self._accounts = StatementAccounts(settings.statements_top_n, settings.statements_window)
        self._pgss_notice: str | None = None
        self._statements = 0
        self._query_seconds = 0.0
        self._query_id_notice: str | None = None
        self._server_stats = server_stats.ServerStats()
        self._server_sql: tuple[asyncpg.Connection, str] | None = None
        # one statement at a time on an asyncpg connection: the cycle and the sampler take turns
        # under the base's lock
        self._activity = act.ActivitySampler(
            connection=lambda: self.connection,
            lock=self.lock,
            interval=settings.wait_sample_interval,
            timeout=self.timeout,
            databases=None if target.databases == "all" else list(target.databases),
            listed=self.listed_queryids,
            log_extra={"collector": self.name, "target": target.name},
        )
        self._other_databases = pgdb.DatabaseTables(
            open_connection=self._open_database,
            session=self.session_settings,
            timeout=self.timeout,
            max_databases=settings.table_stats_max_databases,
            interval=settings.table_stats_interval,
            tables_top_n=settings.tables_top_n,
            log_extra={"collector": self.name, "target": target.name},
            describe=lambda exc: _clean(str(exc) or type(exc).__name__, self._password),
        )

    def listed_queryids(self) -> frozenset[int]:
        """The queryids whose statement series are exported (per-statement waits follow)."""
        return self._accounts.listed_queryids

    @property
    def listed_statements(self) -> frozenset[StatementKey]:
        """The statements (queryid, datname, user) with their own series after the last cycle."""
        return self._accounts.listed

    # --- connection -----------------------------------------------------------------------

    def session_settings(self, timeout: float | None = None) -> dict[str, str]:
        """Per-session settings: a query never outlives the cycle, never waits long on a lock.

        ``timeout`` is a shorter budget (a short connection to another database).
        """
        budget = self.timeout if timeout is None else timeout
        return {
            "application_name": APPLICATION_NAME,
            "statement_timeout": f"{max(1, int(budget * 900))}ms",
            "lock_timeout": f"{max(1, int(budget * 500))}ms",
            "default_transaction_read_only": "on",
            "jit": "off",
        }

    def _connect_kwargs(self, session: dict[str, str], timeout: float) -> dict[str, Any]:
        target = self.target
        kwargs: dict[str, Any] = {"timeout": timeout, "server_settings": session}
        if target.dsn is not None:
            kwargs["dsn"] = target.dsn
        else:
            kwargs.update(
                host=target.host, port=target.port, user=target.user, database=target.dbname
            )
        self._password = self.read_password()
        if self._password is not None:
            kwargs["password"] = self._password
        if target.sslmode is not None:
            kwargs["ssl"] = target.sslmode
        return kwargs

    async def connect(self) -> asyncpg.Connection:
        kwargs = self._connect_kwargs(self.session_settings(), self.timeout)
        conn: asyncpg.Connection = await asyncpg.connect(**kwargs)
        return conn

    async def _open_database(
        self, datname: str, session: dict[str, str], connect_timeout: float
    ) -> asyncpg.Connection:
        """A short connection to another database of the server, as the target's role."""
        kwargs = self._connect_kwargs(session, connect_timeout)
        # an explicit database wins over the DSN's path in asyncpg
        kwargs["database"] = datname
        conn: asyncpg.Connection = await asyncpg.connect(**kwargs)
        return conn

    def translate(self, exc: Exception) -> CollectError:
        return translate_failure(exc, self.location, self._password)

    def is_open(self, conn: asyncpg.Connection) -> bool:
        return not conn.is_closed()

    async def disconnect(self, conn: asyncpg.Connection, *, abort: bool) -> None:
        # terminate, not close, after a failure: close() waits on the server, which may be
        # the problem; on shutdown say goodbye politely, and cut the socket if that hangs
        if not abort:
            with contextlib.suppress(Exception):
                await conn.close(timeout=1.0)
                return
        conn.terminate()

    async def close(self) -> None:
        """Stop the wait sampler before the connection it borrows goes away."""
        await self._activity.close()
        await self._other_databases.close()
        await super().close()

    # --- one cycle ------------------------------------------------------------------------

    async def _fetch(self, conn: asyncpg.Connection, query: str, *args: Any) -> list[Any]:
        started = time.perf_counter()
        try:
            rows: list[Any] = await conn.fetch(query, *args)
        finally:
            self._statements += 1
            self._query_seconds += time.perf_counter() - started
        return rows

    async def sample(self, conn: asyncpg.Connection) -> Collected:
        self._statements = 0
        self._query_seconds = 0.0
        settings = self.settings
        filter_dbs = None if self.target.databases == "all" else list(self.target.databases)

        started = time.perf_counter()
        await self._fetch(conn, sql.PROBE)
        probe = time.perf_counter() - started
        self._probe.observe(probe)

        server = dict(
            (
                await self._fetch(
                    conn, self._server_statement(conn), filter_dbs, settings.applications_top_n
                )
            )[0]
        )
        databases = _rows(server["databases"])
        applications = _rows(server["applications"])
        server["standbys"] = _rows(server["standbys"])
        current_db: str = server["current_database"]

        families: list[Metric] = [self._probe.family()]
        families += fam.server_families(server)
        families += self._server_stats.families(server)
        families += fam.database_families(databases)
        datnames = [d["datname"] for d in databases]
        connections = _rows(server["connections"])
        families += fam.connection_families(datnames, connections)
        families += fam.application_families(applications)

        per_database: dict[str, pgdb.TableRows] = {}
        wanted = self.target.table_stats_databases
        wanted_dbs = None if wanted == "all" else list(wanted)
        if (filter_dbs is None or current_db in filter_dbs) and (
            wanted_dbs is None or current_db in wanted_dbs
        ):
            row = (await self._fetch(conn, sql.TABLES, settings.tables_top_n))[0]
            per_database[current_db] = (_rows(row["tables"]), _rows(row["unused_indexes"]))
        all_databases = _rows(server["database_ages"])
        families += pgdb.wraparound_families(server["freeze_max_age"], all_databases)
        families += pgdb.vacuum_families(_rows(server["vacuums"]))

        available = await self._statement_families(conn, server, filter_dbs, families)
        families.append(
            fam.gauge(
                "perf_postgres_stat_statements_available",
                "1 when pg_stat_statements is loaded and created in the connected database.",
                1.0 if available else 0.0,
            )
        )

        activity, blocking, problem = await self._activity.cycle(
            self._fetch, conn, server["version_num"], fam.lock_waiters(datnames, connections)
        )
        families += activity
        if available and problem != self._query_id_notice:
            if problem is not None:
                logger.info(problem, extra={"collector": self.name, "target": self.target.name})
            self._query_id_notice = problem

        # last: the other databases get what is left of the cycle's time, never more
        chosen = self._other_databases.choose(all_databases, current_db, filter_dbs, wanted_dbs)
        budget = self.timeout * 0.8 - (time.perf_counter() - started)
        per_database.update(await self._other_databases.refresh(chosen, budget))
        self._statements += self._other_databases.statements
        families += fam.databases_table_families(per_database)
        families += self._other_databases.families(
            chosen, current_db if current_db in per_database else None
        )
        recommendations: list[dict[str, Any]] = []
        for datname, (tables, unused) in per_database.items():
            recommendations += fam.index_recommendations(
                datname,
                tables,
                unused,
                min_seq_scans=settings.index_advice_min_seq_scans,
                min_rows_per_scan=settings.index_advice_min_rows_per_scan,
            )

        blocks = {d["datname"]: (int(d["blks_hit"]), int(d["blks_read"])) for d in databases}
        ratio = fam.hit_ratio(self._previous_blocks, blocks)
        self._previous_blocks = blocks

        if self._server_cpus is not None:
            families.append(
                fam.gauge(
                    "perf_postgres_server_cpus",
                    "Logical CPUs of the database server (the target's cpus setting, or the "
                    "exporter host's when the target is on it): the database load's capacity.",
                    self._server_cpus,
                )
            )
        families += [
            fam.gauge(
                "perf_postgres_collector_statements",
                "Statements the collector ran on this target in its last cycle.",
                self._statements,
            ),
            fam.gauge(
                "perf_postgres_collector_query_duration_seconds",
                "Time the collector's statements took in its last cycle, round trips included.",
                self._query_seconds,
            ),
        ]
        facts = {
            "cache_hit_ratio": ratio,
            "connections": server["client_backends"],
            "max_connections": server["max_connections"],
            "superuser_reserved_connections": server["superuser_reserved_connections"],
            "probe_seconds": probe,
            "longest_transaction_seconds": max(
                (a["transaction_age"] or 0.0 for a in applications), default=0.0
            ),
            "longest_idle_in_transaction_seconds": max(
                (a["idle_in_transaction_age"] or 0.0 for a in applications), default=0.0
            ),
            "stat_statements_available": available,
            "replication_lag_seconds": server["replica_lag_seconds"],
            "index_recommendations": recommendations,
            "blocking": await self._blocking_facts(
                conn, server["pgss_schema"] if available else None, blocking
            ),
            "slow_statements": self._slow_statements() if available else [],
        }
        # a family without samples (no standbys, no tables yet) is only noise on the page
        return Collected(families=[f for f in families if f.samples], facts=facts)

    def _server_statement(self, conn: asyncpg.Connection) -> str:
        """The server statement for this connection's version, built once per connection from
        the version the server announced at connect (no query needed to learn it)."""
        if self._server_sql is None or self._server_sql[0] is not conn:
            announced = conn.get_server_version()
            version = server_stats.version_num(announced.major, announced.minor)
            statement = server_stats.server_sql(sql.SERVER, version, pgdb.HEALTH_COLUMNS)
            self._server_sql = (conn, statement)
        return self._server_sql[1]

    # --- pg_stat_statements ---------------------------------------------------------------

    def _notice(self, message: str | None) -> None:
        """Log an availability problem once, and again only when it changes."""
        if message is not None and message != self._pgss_notice:
            logger.warning(message, extra={"collector": self.name, "target": self.target.name})
        self._pgss_notice = message

    def _not_loaded(self, current_db: str) -> str:
        return (
            "pg_stat_statements is not loaded, so statement metrics are off: add "
            "pg_stat_statements to shared_preload_libraries in postgresql.conf, restart "
            f"PostgreSQL, then run CREATE EXTENSION pg_stat_statements in database {current_db}"
        )

    async def _statement_families(
        self,
        conn: asyncpg.Connection,
        server: dict[str, Any],
        filter_dbs: list[str] | None,
        families: list[Metric],
    ) -> bool:
        current_db = server["current_database"]
        schema: str | None = server["pgss_schema"]
        if _preloaded(server["preload"]) is False:
            self._notice(self._not_loaded(current_db))
            return False
        if schema is None:
            self._notice(
                "pg_stat_statements is loaded but the extension is not created in database "
                f"{current_db}, so statement metrics are off: run CREATE EXTENSION "
                f"pg_stat_statements there as a superuser"
            )
            return False
        accounts = self._accounts
        version = server["version_num"]
        try:
            changed_only = accounts.has_baselines
            if changed_only:
                query = sql.statements_sql(schema, version, changed_only=True)
                rows = await self._fetch(conn, query, filter_dbs, *accounts.known())
                changed_only = accounts.changes_suffice(rows)
            if not changed_only:
                rows = await self._fetch(conn, sql.statements_sql(schema, version), filter_dbs)
        except asyncpg.ObjectNotInPrerequisiteStateError as exc:
            if isinstance(exc, asyncpg.LockNotAvailableError):
                raise
            # the extension exists but the library is not preloaded (we could not see the GUC)
            self._notice(self._not_loaded(current_db))
            return False
        self._notice(None)
        accounts.update_from_rows(rows, time.monotonic(), changed_only=changed_only)
        top, other = accounts.rows()
        texts = (
            await self._statement_texts(conn, schema, top) if self.settings.statement_text else None
        )
        families += fam.statement_families(top, other, texts)
        families += fam.statement_view_families(accounts.deallocations, accounts.reset_time)
        return True

    async def _statement_texts(
        self, conn: asyncpg.Connection, schema: str, top: list[fam.StatementRow]
    ) -> dict[str, str]:
        """Texts of the listed statements, fetched only for queryids not seen before."""
        wanted = {r.queryid for r in top}
        missing = sorted(wanted - self._texts.keys())
        if missing:
            rows = await self._fetch(
                conn, sql.statement_text_sql(schema), [int(q) for q in missing]
            )
            limit = self.settings.statement_text_max_length
            # an id whose text is gone (evicted) is remembered as "" so it is not asked again
            self._texts.update(dict.fromkeys(missing, ""))
            for row in rows:
                self._texts[str(row["queryid"])] = fam.statement_text(row["query"] or "", limit)
        self._texts = {q: t for q, t in self._texts.items() if q in wanted}
        return self._texts

    def _slow_statements(self) -> list[dict[str, Any]]:
        """The window's busiest statements with their wait types (samples since the exporter
        started, most first) and, when ``statement_text`` is on, their normalized text."""
        waits: dict[tuple[str, str], dict[str, int]] = {}
        for (queryid, datname, type_), n in self._activity.counts.statements.items():
            waits.setdefault((queryid, datname), {})[type_] = n
        out = self._accounts.slow_statements(time.monotonic())
        for item in out:
            seen = waits.get((item["queryid"], item["datname"]), {})
            item["wait_samples"] = dict(sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])))
            if self.settings.statement_text:
                item["query"] = self._texts.get(item["queryid"]) or None
        return out

    # --- blocking chains ------------------------------------------------------------------

    async def _blocking_facts(
        self, conn: asyncpg.Connection, schema: str | None, blocking: act.Blocking
    ) -> list[dict[str, Any]]:
        """The chains for /summary; the root's normalized statement text only when
        ``statement_text`` is on (from pg_stat_statements, never pg_stat_activity's raw text,
        which carries literal values)."""
        chains = [dict(root) for root in blocking.roots]
        if not self.settings.statement_text:
            return chains
        ids = sorted({c["queryid"] for c in chains if c["queryid"] not in (None, "0")})
        texts = {q: self._texts[q] for q in ids if self._texts.get(q)}
        missing = [int(q) for q in ids if q not in texts]
        if missing and schema is not None:
            limit = self.settings.statement_text_max_length
            for row in await self._fetch(conn, sql.statement_text_sql(schema), missing):
                texts[str(row["queryid"])] = fam.statement_text(row["query"] or "", limit)
        for chain in chains:
            chain["query"] = texts.get(chain["queryid"] or "")
        return chains
