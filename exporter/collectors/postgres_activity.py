"""Why PostgreSQL is slow: wait-event sampling of pg_stat_activity and lock-blocking chains.

:class:`ActivitySampler` runs as a background task of one PostgreSQL collector instance and
takes a sample every ``wait_sample_interval`` between the collector's cycles: one statement
(:func:`activity_sql`) on the collector's own connection, under the lock that keeps one
statement at a time on it. Each sample counts the active client backends by database and wait
event (active and not waiting is ``CPU``/``CPU``) and one round, so that::

    rate(perf_postgres_wait_samples_total[5m]) / rate(perf_postgres_wait_sample_rounds_total[5m])

is the average number of active sessions in each state ("database load"). For the statements
the collector lists, samples are also counted by ``pg_stat_activity.query_id`` (PostgreSQL 14+,
with ``compute_query_id`` in effect). Sample output (the snapshot adds ``target``)::

    perf_postgres_wait_samples_total{datname="app",wait_event_type="CPU",wait_event="CPU"} 812.0
    perf_postgres_wait_samples_total{datname="app",wait_event_type="Lock",wait_event="relation"} 9.0
    perf_postgres_wait_sample_rounds_total 3600.0
    perf_postgres_wait_sample_errors_total 0.0
    perf_postgres_wait_sample_seconds_total 1.9
    perf_postgres_statement_wait_samples_total{datname="app",queryid="-4",wait_event_type="Lock"} 9
    perf_postgres_blocked_sessions{datname="app"} 1.0
    perf_postgres_blocked_max_seconds{datname="app"} 12.4
    perf_postgres_blocking_sessions{datname="app",application_name="migrate"} 1.0

Counters live in the sampler, so they keep counting across reconnects and never go down while
the daemon runs. Blocking (``pg_blocking_pids()``, called only for sessions waiting on a lock)
comes from the latest sample, or from one taken in the cycle when none is recent (sampling off,
or starved) or the latest disagrees with the lock waiters the cycle itself just counted; the
chains go to /summary as the ``blocking`` fact.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

logger = logging.getLogger(__name__)

#: Distinct application_name values of blocking roots per database at most; the rest "other".
ROOT_APPLICATIONS_MAX = 10

Fetch = Callable[..., Awaitable[list[Any]]]


def activity_sql(version_num: int) -> str:
    """One sample: active client backends grouped by wait, and the lock waiters with blockers.

    ``$1`` is the database filter (``NULL`` for all). Our own backend is left out. The lock
    functions (``pg_blocking_pids``, ``pg_locks``) need the lock manager's partition locks, so
    they run only for sessions waiting on a heavyweight lock: the CASE branches are evaluated
    only when there is one, which keeps a quiet server's sample a plain scan of the backends.
    The wait start is ``pg_locks.waitstart`` (PostgreSQL 14+); before 14, or in the instant
    before PostgreSQL fills it in, the start of the waiting statement (``state_change``), which
    is an upper bound. The wait is measured to ``clock_timestamp()``, after the backends were
    read, not to ``now()``: the statement's start may precede the wait of a session it sees
    waiting, which would read as a wait of 0 s.

    The backends are not read through ``pg_stat_activity``: that view makes a whole row (some
    thirty columns, the query text clipped, the client's address) for every backend, and a
    server's backends are mostly pooled connections idle between statements. Those wait for
    their client's next message outside a transaction (``ClientRead`` with no transaction
    start), which two cheap per-backend functions tell; only the others get a row, by pid.
    That cannot leave out an active backend: a statement runs inside a transaction, and one
    waiting for its client inside it (COPY FROM STDIN, a half-sent extended-protocol message)
    keeps its transaction start. Blockers are read by pid apart: a session holding an advisory
    lock can be idle outside any transaction. With 250 idle connections a sample took 1.1 ms
    instead of 2.8 (pgbench, round trip included; bench/README.md).
    """
    modern = version_num >= 140000
    query_id = "s.query_id" if modern else "NULL::bigint"
    waitstart = (
        "(SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = w.pid AND NOT l.granted)"
        if modern
        else "NULL::timestamptz"
    )
    compute = "current_setting('compute_query_id')" if modern else "'off'"
    return f"""
WITH a AS MATERIALIZED (
    SELECT s.pid, coalesce(d.datname, '') AS datname, coalesce(s.state, '') AS state,
           s.wait_event_type, s.wait_event, {query_id} AS query_id,
           coalesce(s.application_name, '') AS application_name,
           s.backend_type = 'client backend' AS client, s.xact_start, s.state_change
    FROM pg_stat_get_backend_idset() AS b(id)
    CROSS JOIN LATERAL pg_stat_get_activity(pg_stat_get_backend_pid(b.id)) AS s
    LEFT JOIN pg_database d ON d.oid = s.datid
    WHERE (pg_stat_get_backend_wait_event(b.id) IS DISTINCT FROM 'ClientRead'
           OR pg_stat_get_backend_xact_start(b.id) IS NOT NULL)
      AND s.pid <> pg_backend_pid()
), w AS MATERIALIZED (
    SELECT pid, pg_blocking_pids(pid) AS blockers
    FROM a
    WHERE client AND wait_event_type = 'Lock'
      AND ($1::text[] IS NULL OR datname = ANY($1::text[]))
)
SELECT
    {compute} AS compute_query_id,
    (SELECT json_agg(json_build_object('datname', s.datname, 'type', s.type, 'event', s.event,
                                       'query_id', s.query_id, 'n', s.n))
      FROM (SELECT datname, coalesce(wait_event_type, 'CPU') AS type,
                   coalesce(wait_event, 'CPU') AS event, query_id, count(*) AS n
            FROM a
            WHERE client AND state = 'active'
              AND ($1::text[] IS NULL OR datname = ANY($1::text[]))
            GROUP BY 1, 2, 3, 4) s) AS active,
    CASE WHEN EXISTS (SELECT 1 FROM w) THEN
        (SELECT json_agg(json_build_object(
            'pid', w.pid, 'datname', a.datname, 'blockers', w.blockers,
            'wait_seconds', greatest(0, extract(epoch FROM
                clock_timestamp() - coalesce({waitstart}, a.state_change)))::float8))
          FROM w JOIN a USING (pid))
    END AS waiters,
    CASE WHEN EXISTS (SELECT 1 FROM w WHERE cardinality(w.blockers) > 0) THEN
        (SELECT json_agg(json_build_object(
            'pid', s.pid, 'datname', coalesce(d.datname, ''),
            'application_name', coalesce(s.application_name, ''),
            'state', coalesce(s.state, ''), 'query_id', ({query_id})::text,
            'transaction_age', extract(epoch FROM now() - s.xact_start)::float8))
          FROM (SELECT DISTINCT unnest(w.blockers) AS pid FROM w) AS bp
          CROSS JOIN LATERAL pg_stat_get_activity(bp.pid) AS s
          LEFT JOIN pg_database d ON d.oid = s.datid
          WHERE s.pid <> pg_backend_pid())
    END AS blockers
"""


def _json(value: str | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(value) if value is not None else []
    return rows


def chain_roots(blockers: Mapping[int, Collection[int]]) -> dict[int, set[int]]:
    """Roots of the blocking chains and who waits behind each, directly or through others.

    ``blockers`` maps each waiting pid to the pids blocking it (``pg_blocking_pids``). A root
    blocks someone and is not blocked itself; a waiter behind several roots counts for each.
    Sessions in a cycle (a deadlock not yet detected) have no root.
    """
    blocked = {pid for pid, pids in blockers.items() if pids}
    roots: dict[int, set[int]] = {}
    for waiter in blocked:
        seen: set[int] = set()
        stack = list(blockers[waiter])
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            if pid in blocked:
                stack.extend(blockers[pid])
            elif pid != waiter:
                roots.setdefault(pid, set()).add(waiter)
    return roots


@dataclass(frozen=True)
class Blocking:
    """Lock waits seen in one sample: waiters per database and the roots of their chains."""

    #: datname -> (sessions waiting on a lock, longest wait in seconds)
    blocked: dict[str, tuple[int, float]]
    #: one dict per root: pid, datname, application_name, state, transaction_age_seconds,
    #: waiting, queryid
    roots: list[dict[str, Any]]


def blocking_from(
    waiters: Iterable[Mapping[str, Any]], sessions: Iterable[Mapping[str, Any]]
) -> Blocking:
    """The :class:`Blocking` of one sample from its ``waiters`` and ``blockers`` rows."""
    blocked: dict[str, tuple[int, float]] = {}
    blockers: dict[int, list[int]] = {}
    for row in waiters:
        count, longest = blocked.get(row["datname"], (0, 0.0))
        blocked[row["datname"]] = (count + 1, max(longest, float(row["wait_seconds"] or 0.0)))
        blockers[int(row["pid"])] = [int(p) for p in row["blockers"] or ()]
    known = {int(s["pid"]): s for s in sessions}
    roots = []
    for pid, behind in chain_roots(blockers).items():
        # pid 0 (a prepared transaction) or a backend gone since the snapshot: no details
        session = known.get(pid, {})
        roots.append(
            {
                "pid": pid,
                "datname": session.get("datname", ""),
                "application_name": session.get("application_name", ""),
                "state": session.get("state") or ("prepared transaction" if pid == 0 else ""),
                "transaction_age_seconds": session.get("transaction_age"),
                "waiting": len(behind),
                "queryid": session.get("query_id"),
            }
        )
    roots.sort(key=lambda r: (-r["waiting"], r["pid"]))
    return Blocking(blocked=blocked, roots=roots)


@dataclass
class WaitCounts:
    """Samples accumulated by one sampler; every value only grows."""

    samples: dict[tuple[str, str, str], int] = field(default_factory=dict)
    statements: dict[tuple[str, str, str], int] = field(default_factory=dict)
    rounds: int = 0
    errors: int = 0
    seconds: float = 0.0

    def add(self, active: Iterable[Mapping[str, Any]], listed: Collection[int]) -> None:
        """Count one round: rows are (datname, type, event, query_id, n) groups."""
        for row in active:
            n = int(row["n"])
            key = (row["datname"], row["type"], row["event"])
            self.samples[key] = self.samples.get(key, 0) + n
            query_id = row["query_id"]
            if query_id is not None and int(query_id) in listed:
                skey = (str(query_id), row["datname"], row["type"])
                self.statements[skey] = self.statements.get(skey, 0) + n
        self.rounds += 1


def wait_families(counts: WaitCounts, listed: Collection[int]) -> list[Metric]:
    """The sampling counters; per-statement series only for the currently listed statements."""
    samples = CounterMetricFamily(
        "perf_postgres_wait_samples_total",
        "Active client sessions seen per wait event by the pg_stat_activity sampler "
        '(not waiting: wait_event_type="CPU"); divide the rate by the rounds\' rate for '
        "the average active sessions.",
        labels=["datname", "wait_event_type", "wait_event"],
    )
    for (datname, type_, event), n in sorted(counts.samples.items()):
        samples.add_metric([datname, type_, event], float(n))
    statements = CounterMetricFamily(
        "perf_postgres_statement_wait_samples_total",
        "Active sessions running a listed statement seen per wait event type by the sampler.",
        labels=["queryid", "datname", "wait_event_type"],
    )
    wanted = {str(q) for q in listed}
    for (queryid, datname, type_), n in sorted(counts.statements.items()):
        if queryid in wanted:
            statements.add_metric([queryid, datname, type_], float(n))
    return [
        samples,
        CounterMetricFamily(
            "perf_postgres_wait_sample_rounds",
            "Samples of pg_stat_activity taken.",
            value=float(counts.rounds),
        ),
        CounterMetricFamily(
            "perf_postgres_wait_sample_errors",
            "Samples of pg_stat_activity that failed.",
            value=float(counts.errors),
        ),
        CounterMetricFamily(
            "perf_postgres_wait_sample_seconds",
            "Time the sampler's statements took, round trips included.",
            value=counts.seconds,
        ),
        statements,
    ]


def blocking_families(datnames: Sequence[str], blocking: Blocking) -> list[Metric]:
    """Blocked sessions and the longest lock wait per database (zeros included), and the
    roots of the chains per database and application_name."""
    blocked = GaugeMetricFamily(
        "perf_postgres_blocked_sessions",
        "Client sessions waiting for a lock held or awaited by another session.",
        labels=["datname"],
    )
    longest = GaugeMetricFamily(
        "perf_postgres_blocked_max_seconds",
        "Longest current wait for a lock, from pg_locks.waitstart (PostgreSQL 14+; before, "
        "from the start of the waiting statement).",
        labels=["datname"],
    )
    for datname in sorted({*datnames, *blocking.blocked}):
        count, seconds = blocking.blocked.get(datname, (0, 0.0))
        blocked.add_metric([datname], float(count))
        longest.add_metric([datname], seconds)
    per_app: dict[str, dict[str, int]] = {}
    for root in blocking.roots:
        apps = per_app.setdefault(root["datname"], {})
        apps[root["application_name"]] = apps.get(root["application_name"], 0) + 1
    roots = GaugeMetricFamily(
        "perf_postgres_blocking_sessions",
        "Sessions at the root of a blocking chain (they block others and are not blocked).",
        labels=["datname", "application_name"],
    )
    for datname, apps in sorted(per_app.items()):
        ranked = sorted(apps.items(), key=lambda kv: (-kv[1], kv[0]))
        # application_name is chosen by clients: bound the label values
        shown, rest = ranked[:ROOT_APPLICATIONS_MAX], ranked[ROOT_APPLICATIONS_MAX:]
        for app, n in shown:
            roots.add_metric([datname, app], float(n))
        if rest:
            roots.add_metric([datname, "other"], float(sum(n for _a, n in rest)))
    return [blocked, longest, roots]


@dataclass(frozen=True)
class Sample:
    """One sample: when it was taken (monotonic), its active groups and its blocking."""

    taken: float
    active: list[dict[str, Any]]
    blocking: Blocking
    compute_query_id: str


class ActivitySampler:
    """Samples pg_stat_activity in the background on a collector's connection.

    The collector owns the connection: ``connection()`` returns it or None (not connected,
    backing off), and every statement on it, the collector's or ours, runs under ``lock``.
    The sampler never connects and never drops the connection; a failed sample is counted and
    logged when the reason changes, and the next one is tried on schedule.
    """

    def __init__(
        self,
        *,
        connection: Callable[[], asyncpg.Connection | None],
        lock: asyncio.Lock,
        interval: float,
        timeout: float,
        databases: list[str] | None,
        listed: Callable[[], Collection[int]],
        log_extra: Mapping[str, str],
    ) -> None:
        self.interval = interval
        # a sample holds the lock: keep it well inside the cycle's own timeout
        self.timeout = min(1.0, 0.5 * timeout)
        self.counts = WaitCounts()
        self.latest: Sample | None = None
        self._connection = connection
        self._lock = lock
        self._databases = databases
        self._listed = listed
        self._log_extra = dict(log_extra)
        self._version_num: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._problem: str | None = None

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def start(self, version_num: int) -> None:
        """Learn the server version (from the cycle) and start the loop once, if enabled."""
        self._version_num = version_num
        if self.enabled and self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"wait-sampler-{self._log_extra.get('target', '')}"
            )

    async def close(self) -> None:
        """Stop the loop; a sample in flight is cancelled (the collector closes the session)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def take(self, fetch: Fetch, conn: asyncpg.Connection, version_num: int) -> Sample:
        """Run one sample statement through ``fetch``; the caller holds the lock."""
        row = (await fetch(conn, activity_sql(version_num), self._databases))[0]
        return Sample(
            taken=time.monotonic(),
            active=_json(row["active"]),
            blocking=blocking_from(_json(row["waiters"]), _json(row["blockers"])),
            compute_query_id=str(row["compute_query_id"]),
        )

    async def _run(self) -> None:
        due = time.monotonic()
        while True:
            due += self.interval
            now = time.monotonic()
            if due < now:
                # late (a long cycle held the lock, a slow server): skip the missed rounds
                # rather than burst, a round is only counted when it was taken
                due = now + self.interval
            await asyncio.sleep(due - now)
            await self._round()

    async def _timed_fetch(self, conn: asyncpg.Connection, query: str, *args: Any) -> list[Any]:
        started = time.perf_counter()
        try:
            rows: list[Any] = await conn.fetch(query, *args)
        finally:
            self.counts.seconds += time.perf_counter() - started
        return rows

    async def _round(self) -> None:
        version_num = self._version_num
        if version_num is None:
            return
        # waiting for the lock is not bounded: a cycle holds it for its own (bounded) time
        async with self._lock:
            conn = self._connection()
            if conn is None or conn.is_closed():
                return  # the collector reconnects; no round while there is no session
            try:
                async with asyncio.timeout(self.timeout):
                    sample = await self.take(self._timed_fetch, conn, version_num)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counts.errors += 1
                self._report(f"sampling pg_stat_activity failed ({_describe(exc)})")
                return
        self.counts.add(sample.active, self._listed())
        self.latest = sample
        self._report(None)

    def _report(self, problem: str | None) -> None:
        """Log when sampling starts failing, fails differently or works again; not every time."""
        if problem != self._problem:
            if problem is not None:
                logger.warning(problem, extra=self._log_extra)
            elif self._problem is not None:
                logger.info("sampling pg_stat_activity works again", extra=self._log_extra)
        self._problem = problem

    async def cycle(
        self,
        fetch: Fetch,
        conn: asyncpg.Connection,
        version_num: int,
        waiting: Mapping[str, int],
    ) -> tuple[list[Metric], Blocking, str | None]:
        """The hook of the collector's cycle (lock held): families, blocking and, when
        per-statement waits cannot work, the reason.

        ``waiting`` is the cycle's own count of sessions waiting on a lock, from its server
        statement a moment ago, for every database of the cycle (zeros included). The blocking
        gauges come from the latest background sample if it is at most two sampling intervals
        old and saw those same waiters, else from one sample taken now through ``fetch``
        (always when sampling is off): a sample taken before a session queued on a lock, or
        before one got it, would report a wait the cycle has just seen differently.
        """
        self.start(version_num)
        latest: Sample | None = self.latest
        if (
            latest is None
            or latest.taken < time.monotonic() - 2 * self.interval
            or not _sees(latest.blocking, waiting)
        ):
            try:
                latest = await self.take(fetch, conn, version_num)
            except asyncpg.PostgresError as exc:
                # the server refused the sample: the rest of the cycle still counts (a lost
                # connection fails the cycle's next statement anyway)
                self.counts.errors += 1
                self._report(f"sampling pg_stat_activity failed ({_describe(exc)})")
                latest = None
        families = wait_families(self.counts, self._listed()) if self.enabled else []
        if latest is None:
            return families, Blocking(blocked={}, roots=[]), None
        families += blocking_families(list(waiting), latest.blocking)
        return families, latest.blocking, _query_id_problem(version_num, latest.compute_query_id)


def _sees(blocking: Blocking, waiting: Mapping[str, int]) -> bool:
    """Whether a sample counted the lock waiters of ``waiting`` in each of its databases."""
    return all(blocking.blocked.get(datname, (0, 0.0))[0] == n for datname, n in waiting.items())


def _query_id_problem(version_num: int, compute_query_id: str) -> str | None:
    if version_num < 140000:
        return (
            "PostgreSQL before 14 has no pg_stat_activity.query_id, so per-statement wait "
            "samples are off"
        )
    if compute_query_id == "off":
        return (
            "compute_query_id is off, so per-statement wait samples are off: set "
            "compute_query_id = auto (with pg_stat_statements loaded) or on"
        )
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.rstrip(".")
