"""PgBouncer: pools, clients, servers, waits and traffic from the admin console.

Reads ``SHOW POOLS``, ``SHOW STATS``, ``SHOW DATABASES``, ``SHOW LISTS``, ``SHOW CONFIG`` and
``SHOW VERSION`` over the simple query protocol (see :mod:`.pgbouncer_console` for why not
asyncpg). Each SHOW is described by a declarative table: column -> (metric, type, help, scale),
so reading the tables tells the whole output. Columns a PgBouncer version lacks are skipped;
renamed ones (``reserve_pool`` became ``reserve_pool_size`` in 1.24) are listed under both names.

Pools are labelled ``pool="<database>/<user>"`` (the stable key dashboards and alerts use) and
also carry ``database`` and ``user`` so queries can aggregate per database without
``label_replace``; the three labels are one-to-one, so they add no series.

Sample output (the snapshot adds ``target``)::

    perf_pgbouncer_clients{database="app",pool="app/web",state="active",user="web"} 2.0
    perf_pgbouncer_clients{database="app",pool="app/web",state="waiting",user="web"} 3.0
    perf_pgbouncer_servers{database="app",pool="app/web",state="active",user="web"} 2.0
    perf_pgbouncer_servers{database="app",pool="app/web",state="idle",user="web"} 0.0
    perf_pgbouncer_max_wait_seconds{database="app",pool="app/web",user="web"} 0.412837
    perf_pgbouncer_queries_total{database="app"} 1532.0
    perf_pgbouncer_query_seconds_total{database="app"} 12.503114
    perf_pgbouncer_database_pool_size{database="app"} 20.0
    perf_pgbouncer_database_current_connections{database="app"} 2.0
    perf_pgbouncer_list_items{list="used_clients"} 6.0
    perf_pgbouncer_max_client_conn 1000.0
    perf_pgbouncer_info{version="1.18.0"} 1.0
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.collectors.base import Collected, CollectError, parse_number
from exporter.collectors.connected import ConnectedCollector
from exporter.collectors.field_metric import FieldMetric
from exporter.collectors.pgbouncer_console import (
    AdminConsole,
    ConsoleAddress,
    ConsoleError,
    ProtocolError,
    Row,
)
from exporter.config import PgBouncerSettings, PgBouncerTarget, Timing, redact_url

MICROSECONDS = 1e-6


@dataclass(frozen=True)
class Column(FieldMetric):
    """One SHOW column as one metric; ``state`` adds a fixed ``state`` label value."""

    state: str | None = None


@dataclass(frozen=True)
class View:
    """A SHOW command: the label names its rows carry, its columns, and where label values
    come from: by default the row's columns of the labels' names, else ``row_labels``."""

    command: str
    labels: tuple[str, ...]
    columns: Sequence[Column]
    row_labels: Callable[[Row], tuple[str, ...]] | None = None

    def label_values(self, row: Row) -> tuple[str, ...]:
        if self.row_labels is not None:
            return self.row_labels(row)
        return tuple(row.get(label) or "" for label in self.labels)


def _pool_labels(row: Row) -> tuple[str, ...]:
    database, user = row.get("database") or "", row.get("user") or ""
    return (f"{database}/{user}", database, user)


_CLIENTS = "Client connections of the pool by state (waiting ones have no server yet)."
_SERVERS = "Server connections of the pool by state."

POOLS = View(
    command="SHOW POOLS",
    labels=("pool", "database", "user"),
    row_labels=_pool_labels,
    columns=(
        Column("cl_active", "perf_pgbouncer_clients", "gauge", _CLIENTS, state="active"),
        Column("cl_waiting", "perf_pgbouncer_clients", "gauge", _CLIENTS, state="waiting"),
        Column("cl_active_cancel_req", "perf_pgbouncer_clients", "gauge", _CLIENTS, state="cancel"),
        Column(
            "cl_waiting_cancel_req",
            "perf_pgbouncer_clients",
            "gauge",
            _CLIENTS,
            state="waiting_cancel",
        ),
        # before 1.18 both cancel kinds were one column
        Column("cl_cancel_req", "perf_pgbouncer_clients", "gauge", _CLIENTS, state="cancel"),
        Column("sv_active", "perf_pgbouncer_servers", "gauge", _SERVERS, state="active"),
        Column("sv_idle", "perf_pgbouncer_servers", "gauge", _SERVERS, state="idle"),
        Column("sv_used", "perf_pgbouncer_servers", "gauge", _SERVERS, state="used"),
        Column("sv_tested", "perf_pgbouncer_servers", "gauge", _SERVERS, state="tested"),
        Column("sv_login", "perf_pgbouncer_servers", "gauge", _SERVERS, state="login"),
        Column(
            "sv_active_cancel", "perf_pgbouncer_servers", "gauge", _SERVERS, state="active_cancel"
        ),
        Column(
            "sv_being_canceled",
            "perf_pgbouncer_servers",
            "gauge",
            _SERVERS,
            state="being_canceled",
        ),
        # maxwait_us is added to this below (see _max_wait), not exported on its own
        Column(
            "maxwait",
            "perf_pgbouncer_max_wait_seconds",
            "gauge",
            "How long the oldest waiting client of the pool has waited, in seconds.",
        ),
    ),
)

STATS = View(
    command="SHOW STATS",
    labels=("database",),
    columns=(
        Column(
            "total_query_count",
            "perf_pgbouncer_queries",
            "counter",
            "SQL queries pooled by PgBouncer.",
        ),
        Column(
            "total_xact_count",
            "perf_pgbouncer_transactions",
            "counter",
            "SQL transactions pooled by PgBouncer.",
        ),
        Column(
            "total_server_assignment_count",
            "perf_pgbouncer_server_assignments",
            "counter",
            "Times a server connection was assigned to a client (PgBouncer 1.23+).",
        ),
        Column(
            "total_received",
            "perf_pgbouncer_received_bytes",
            "counter",
            "Bytes received from clients.",
        ),
        Column("total_sent", "perf_pgbouncer_sent_bytes", "counter", "Bytes sent to clients."),
        Column(
            "total_query_time",
            "perf_pgbouncer_query_seconds",
            "counter",
            "Time spent by PgBouncer actively connected to PostgreSQL executing queries.",
            MICROSECONDS,
        ),
        Column(
            "total_xact_time",
            "perf_pgbouncer_transaction_seconds",
            "counter",
            "Time spent by PgBouncer connected to PostgreSQL in a transaction, idle or not.",
            MICROSECONDS,
        ),
        Column(
            "total_wait_time",
            "perf_pgbouncer_client_wait_seconds",
            "counter",
            "Time clients spent waiting for a server connection.",
            MICROSECONDS,
        ),
    ),
)

DATABASES = View(
    command="SHOW DATABASES",
    labels=("database",),
    # SHOW DATABASES names the database in its "name" column
    row_labels=lambda row: (row.get("name") or "",),
    columns=(
        Column(
            "pool_size",
            "perf_pgbouncer_database_pool_size",
            "gauge",
            "Maximum server connections per pool of this database.",
        ),
        Column(
            "min_pool_size",
            "perf_pgbouncer_database_min_pool_size",
            "gauge",
            "Server connections kept open per pool of this database even when idle.",
        ),
        Column(
            "reserve_pool",
            "perf_pgbouncer_database_reserve_pool_size",
            "gauge",
            "Extra server connections a pool of this database may open when clients wait.",
        ),
        Column(
            "reserve_pool_size",
            "perf_pgbouncer_database_reserve_pool_size",
            "gauge",
            "Extra server connections a pool of this database may open when clients wait.",
        ),
        Column(
            "max_connections",
            "perf_pgbouncer_database_max_connections",
            "gauge",
            "Maximum server connections to this database over all pools (0: unlimited).",
        ),
        Column(
            "current_connections",
            "perf_pgbouncer_database_current_connections",
            "gauge",
            "Server connections to this database over all pools.",
        ),
        Column(
            "paused",
            "perf_pgbouncer_database_paused",
            "gauge",
            "1 when the database is paused (PAUSE), else 0.",
        ),
        Column(
            "disabled",
            "perf_pgbouncer_database_disabled",
            "gauge",
            "1 when the database is disabled (DISABLE), else 0.",
        ),
    ),
)

#: SHOW LISTS has one row per list; ``items`` becomes one series labelled with the list name.
LISTS = View(
    command="SHOW LISTS",
    labels=("list",),
    columns=(
        Column(
            "items",
            "perf_pgbouncer_list_items",
            "gauge",
            "Entries of PgBouncer's internal lists (SHOW LISTS): databases, users, pools, "
            "free/used/login client slots, free/used server slots, DNS entries.",
        ),
    ),
)

#: SHOW CONFIG rows are key/value pairs: the settings here become gauges without labels.
CONFIG: dict[str, tuple[str, str]] = {
    "max_client_conn": (
        "perf_pgbouncer_max_client_conn",
        "Maximum client connections PgBouncer accepts (max_client_conn).",
    ),
    "default_pool_size": (
        "perf_pgbouncer_default_pool_size",
        "Server connections per pool unless the database sets pool_size (default_pool_size).",
    ),
    "reserve_pool_size": (
        "perf_pgbouncer_reserve_pool_size",
        "Default extra server connections per pool when clients wait (reserve_pool_size).",
    ),
    "max_db_connections": (
        "perf_pgbouncer_max_db_connections",
        "Default maximum server connections per database, 0 unlimited (max_db_connections).",
    ),
    "max_user_connections": (
        "perf_pgbouncer_max_user_connections",
        "Default maximum server connections per user, 0 unlimited (max_user_connections).",
    ),
}


def families_from(
    view: View, rows: Iterable[Row]
) -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
    """Build one family per metric of ``view`` from its rows (unknown columns are ignored)."""
    families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
    rows = list(rows)
    for col in view.columns:
        for row in rows:
            if col.source not in row:
                continue
            value = parse_number(row[col.source])
            if value is None:
                continue
            family = families.get(col.metric)
            labels = list(view.labels) + (["state"] if col.state is not None else [])
            if family is None:
                family = families[col.metric] = col.family(labels)
            values = list(view.label_values(row)) + ([col.state] if col.state is not None else [])
            family.add_metric(values, value * col.scale)
    return families


def _with_max_wait_us(rows: list[Row]) -> list[Row]:
    """Fold ``maxwait_us`` into ``maxwait`` so waits under a second do not read 0."""
    out: list[Row] = []
    for row in rows:
        seconds, micros = parse_number(row.get("maxwait")), parse_number(row.get("maxwait_us"))
        if seconds is not None and micros is not None:
            row = {**row, "maxwait": repr(round(seconds + micros * MICROSECONDS, 6))}
        out.append(row)
    return out


def _version(text: str) -> str:
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else text.strip()[:32]


class PgBouncerCollector(ConnectedCollector[PgBouncerTarget, PgBouncerSettings, AdminConsole]):
    """One PgBouncer admin console; the connection is kept between cycles."""

    name: ClassVar[str] = "pgbouncer"
    up_metric: ClassVar[str | None] = "perf_pgbouncer_up"
    up_help: ClassVar[str] = "1 when the last sample of the PgBouncer admin console succeeded."

    def __init__(
        self, target: PgBouncerTarget, settings: PgBouncerSettings, timing: Timing | None = None
    ) -> None:
        super().__init__(target, settings, timing)
        self._where = redact_url(target.dsn)

    async def connect(self) -> AdminConsole:
        address = ConsoleAddress.from_dsn(self.target.dsn, self.read_password())
        return await AdminConsole.connect(address)

    async def disconnect(self, conn: AdminConsole, *, abort: bool) -> None:
        # after a failure the console may be mid-reply: never wait for it
        if abort:
            conn.abort()
        else:
            await conn.close()

    def translate(self, exc: Exception) -> CollectError | None:
        where = f"PgBouncer at {self._where}"
        if isinstance(exc, TimeoutError):
            return CollectError("timeout", f"{where} did not answer within {self.timeout:g}s")
        if isinstance(exc, ConsoleError):
            if exc.is_auth:
                return CollectError("auth", f"{where} refused the login: {exc.message}")
            return CollectError("query", f"{where} rejected a command: {exc.message}")
        if isinstance(exc, OSError | ProtocolError):
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return CollectError("connection", f"cannot talk to {where}: {detail}")
        return None

    async def sample(self, console: AdminConsole) -> Collected:
        pools = _with_max_wait_us(await console.query(POOLS.command))
        stats = await console.query(STATS.command)
        databases = await console.query(DATABASES.command)
        lists = await console.query(LISTS.command)
        config = {row.get("key"): row.get("value") for row in await console.query("SHOW CONFIG")}
        version_rows = await console.query("SHOW VERSION")

        families: list[Metric] = []
        for view, rows in ((POOLS, pools), (STATS, stats), (DATABASES, databases), (LISTS, lists)):
            families.extend(families_from(view, rows).values())
        for key, (metric, help_text) in CONFIG.items():
            value = parse_number(config.get(key))
            if value is not None:
                families.append(GaugeMetricFamily(metric, help_text, value=value))
        version = _version(next(iter(version_rows[0].values()), "") or "") if version_rows else ""
        info = GaugeMetricFamily(
            "perf_pgbouncer_info", "PgBouncer version; always 1.", labels=["version"]
        )
        info.add_metric([version], 1.0)
        families.append(info)
        return Collected(families, self._facts(pools, databases, lists, config))

    @staticmethod
    def _facts(
        pools: list[Row], databases: list[Row], lists: list[Row], config: dict[Any, Any]
    ) -> dict[str, Any]:
        """Per pool: waiting clients, max wait and server use against the pool size."""
        size_of = {row.get("name"): parse_number(row.get("pool_size")) for row in databases}
        per_pool: dict[str, dict[str, float | None]] = {}
        for row in pools:
            if row.get("database") == "pgbouncer":
                continue  # the admin console's own pseudo pool
            pool, database, _ = _pool_labels(row)
            size = size_of.get(database)
            busy = parse_number(row.get("sv_active")) or 0.0
            per_pool[pool] = {
                "clients_waiting": parse_number(row.get("cl_waiting")) or 0.0,
                "max_wait_seconds": parse_number(row.get("maxwait")) or 0.0,
                "servers_active": parse_number(row.get("sv_active")) or 0.0,
                "pool_size": size,
                "utilisation": busy / size if size else None,
            }
        items = {row.get("list"): parse_number(row.get("items")) for row in lists}
        max_clients = parse_number(config.get("max_client_conn"))
        used_clients = items.get("used_clients")
        return {
            "pools": per_pool,
            "clients_waiting": sum(p["clients_waiting"] or 0.0 for p in per_pool.values()),
            "max_wait_seconds": max(
                (p["max_wait_seconds"] or 0.0 for p in per_pool.values()), default=0.0
            ),
            "client_connections_ratio": (
                used_clients / max_clients if used_clients is not None and max_clients else None
            ),
        }
