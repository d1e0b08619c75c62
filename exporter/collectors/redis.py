"""Redis: cache hit rate, memory and evictions, clients, command latency, cache namespaces.

One instance per configured target keeps exactly one connection (a blocking pool of size 1,
so pipelines share it), the PING histogram, the namespace SCAN cursor and the counter
baselines for /summary between cycles. A cycle is: advance the namespace scan (bounded), one
pipeline of ``INFO all``, LATENCY HISTOGRAM and SLOWLOG GET (COMMANDLOG GET of its three logs on
Valkey 8.1+), as far as the server offers them, then a PING alone, timed. Which server it is, is
read from INFO server once per connection (redis_latency.FEATURES), so a command a version lacks
is never sent: the first cycle on a connection sends that INFO alone, before the pipeline.
SLOWLOG LEN is sent only when the GET came back full (redis_slowlog), in one more round trip.
Only read commands are sent, so a Redis that is out of memory (OOM) is still sampled. Sample
output (the ``target`` label is added by the snapshot)::

    perf_redis_keyspace_hits_total 1.234e+06
    perf_redis_keyspace_misses_total 310211.0
    perf_redis_exporter_keyspace_hits_total 40000.0
    perf_redis_evicted_keys_total 17.0
    perf_redis_memory_used_bytes 1.048576e+08
    perf_redis_memory_max_bytes 2.68435456e+08
    perf_redis_maxmemory_policy_info{policy="allkeys-lru"} 1.0
    perf_redis_clients_connected 12.0
    perf_redis_commands_processed_total 9.1e+06
    perf_redis_command_calls_total{cmd="get"} 1.5e+06
    perf_redis_command_duration_seconds_total{cmd="get"} 1.21
    perf_redis_command_latency_percentile_seconds{cmd="get",percentile="99.9"} 2.1e-05
    perf_redis_command_latency_seconds_bucket{cmd="get",le="1.6e-05"} 1.49e+06
    perf_redis_slowlog_length 12.0
    perf_redis_slowlog_entries_total{cmd="keys"} 3.0
    perf_redis_commandlog_entries_total{cmd="get",type="large-reply"} 1.0
    perf_redis_errors_total{error="WRONGTYPE"} 3.0
    perf_redis_db_keys{db="0"} 20000.0
    perf_redis_probe_duration_seconds_bucket{le="0.0005"} 41.0
    perf_redis_namespace_keys{namespace="api_response"} 5120.0
    perf_redis_namespace_keys_without_ttl{namespace="api_response"} 0.0
    perf_redis_namespace_memory_bytes{namespace="api_response"} 2.9e+06

Failures map to reasons: refused/reset/unreachable, TLS mismatch and LOADING (the server
answers but serves nothing until its dataset is loaded) are ``connection``; WRONGPASS/NOAUTH
and NOPERM (an ACL user lacking a command the collector needs: fixed by the operator's ACL,
like a password) are ``auth``; socket timeouts are ``timeout``; any other error reply is
``query``.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from redis import exceptions as rx
from redis._parsers import _AsyncHiredisParser
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from exporter.collectors.base import Collected, CollectError
from exporter.collectors.connected import ConnectedCollector
from exporter.collectors.field_metric import FieldMetric
from exporter.collectors.probe_histogram import ProbeHistogram
from exporter.collectors.redis_info import Info, families_from_info, parse_info
from exporter.collectors.redis_latency import LatencyHistograms, ServerKind
from exporter.collectors.redis_namespaces import (
    NamespaceRules,
    NamespaceScan,
    ScanBudget,
)
from exporter.collectors.redis_slowlog import (
    COMMANDLOG_TYPES,
    EntryLog,
    commandlog_families,
    is_full,
    slowlog_families,
)
from exporter.config import DEFAULT_REDIS_URL, RedisSettings, RedisTarget, Timing

CLIENT_NAME = "perf-exporter"
#: The part of the cycle's timeout a connect (TCP and TLS handshake) may take.
CONNECT_SHARE = 0.9
#: Skip CLIENT SETINFO on connect: Redis < 7.2 answers it with an error that would show up in
#: the very errorstats we report (redis-py 8 spells this driver_info=None, older lib_name=None).
_NO_SETINFO: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(AbstractConnection.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)


class ReleasingHiredisParser(_AsyncHiredisParser):
    """redis-py's hiredis parser, giving back the buffer a large reply grew once it is read.

    hiredis keeps the buffer a reply grew until the next reply arrives, a collection later: a
    40 kB INFO, LATENCY HISTOGRAM or SLOWLOG reply leaves 64 kB behind per connection, ~40 MB
    at 750 targets that no Python allocator sees. After a reply that grew the buffer past
    hiredis' own limit (16 kB) and left nothing unread, the reader is made anew.
    """

    _connection: AbstractConnection | None = None
    _grown = 0

    def on_connect(self, connection: AbstractConnection) -> None:
        self._connection = connection
        self._grown = 0
        super().on_connect(connection)  # type: ignore[no-untyped-call]

    async def read_from_socket(self) -> bool:
        read: bool = await super().read_from_socket()  # type: ignore[no-untyped-call]
        reader: Any = self._reader
        self._grown = max(self._grown, reader.len())
        return read

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        response = await super().read_response(*args, **kwargs)
        reader: Any = self._reader
        if self._grown > RELEASE_BUFFER_BYTES and not reader.has_data():
            self._grown = 0
            if self._connection is not None:
                # a new reader with the same settings, the grown buffer freed with the old one
                super().on_connect(self._connection)  # type: ignore[no-untyped-call]
        return response


#: hiredis' own limit (``maxbuf``): a buffer this large is freed when the next reply arrives.
RELEASE_BUFFER_BYTES = 16 * 1024


def _connection_settings(
    target: RedisTarget, timeout: float, password_from_file: str | None
) -> tuple[type[AbstractConnection], dict[str, Any], str]:
    """Connection class, its keyword arguments and a password-free ``where`` for messages."""
    kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        # shorter than the cycle's timeout, so a connect that hangs (a TLS client on a plain
        # port) is reported by the driver, which says it was connecting
        "socket_connect_timeout": CONNECT_SHARE * timeout,
        "retry": Retry(NoBackoff(), 0),  # we decide when to retry: connected.Backoff
        "client_name": CLIENT_NAME,
        # RESP2: no HELLO, no maintenance-notification handshake, so the ACL stays minimal
        "protocol": 2,
        **_NO_SETINFO,
    }
    kwargs["parser_class"] = ReleasingHiredisParser
    cls: type[AbstractConnection] = Connection
    username: str | None = None
    password: str | None = None
    if target.url is not None or target.host is None:
        parts = urlsplit(target.url or DEFAULT_REDIS_URL)
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        db_text = parse_qs(parts.query).get("db", [parts.path.strip("/") or "0"])[0]
        kwargs["db"] = int(db_text) if db_text.isdigit() else 0
        if parts.scheme == "unix":
            cls = UnixDomainSocketConnection
            kwargs["path"] = parts.path
            kwargs["db"] = int(parse_qs(parts.query).get("db", ["0"])[0] or 0)
            where = f"unix:{parts.path}"
        else:
            if parts.scheme == "rediss":
                cls = SSLConnection
            kwargs["host"] = parts.hostname or "127.0.0.1"
            kwargs["port"] = parts.port or 6379
            where = f"{kwargs['host']}:{kwargs['port']}"
    else:
        kwargs["host"] = target.host
        kwargs["port"] = target.port or 6379
        kwargs["db"] = target.db or 0
        where = f"{target.host}:{kwargs['port']}"
    if target.tls is not None:
        cls = SSLConnection
        kwargs["ssl_ca_certs"] = str(target.tls.ca) if target.tls.ca else None
        kwargs["ssl_certfile"] = str(target.tls.cert) if target.tls.cert else None
        kwargs["ssl_keyfile"] = str(target.tls.key) if target.tls.key else None
    kwargs["username"] = target.username or username
    kwargs["password"] = password_from_file or password
    return cls, kwargs, where


#: Per-namespace counts of the last complete pass: NamespaceCounts attribute -> metric.
NAMESPACE_METRICS: tuple[FieldMetric, ...] = (
    FieldMetric(
        "keys",
        "perf_redis_namespace_keys",
        "gauge",
        "Keys per namespace at the last complete SCAN pass; keys matching no pattern are "
        'namespace="other".',
    ),
    FieldMetric(
        "keys_without_ttl",
        "perf_redis_namespace_keys_without_ttl",
        "gauge",
        "Keys per namespace that never expire (a growing value is a cache leak).",
    ),
    FieldMetric(
        "memory_bytes",
        "perf_redis_namespace_memory_bytes",
        "gauge",
        "Approximate bytes per namespace: mean MEMORY USAGE of a sample times the key count.",
    ),
)


def _raw(response: Any, **_: Any) -> Any:
    return response


#: redis-py copies its table of reply callbacks into every client it makes (~6.5 kB, 4.9 MB for
#: 750 targets); every client of ours reads the same one, INFO answered raw, and none changes it.
_CALLBACKS: dict[str, Any] = {}


class RedisCollector(ConnectedCollector[RedisTarget, RedisSettings, Redis]):
    """Samples one Redis server over a single connection; see the module docstring."""

    name: ClassVar[str] = "redis"
    up_metric: ClassVar[str | None] = "perf_redis_up"
    up_help: ClassVar[str] = "1 if the last sample of this Redis succeeded, 0 if it failed."

    def __init__(
        self, target: RedisTarget, settings: RedisSettings, timing: Timing | None = None
    ) -> None:
        super().__init__(target, settings, timing)
        self._cycle_started = 0.0
        self._where = "redis"
        self._password: str | None = None
        self._tls = False
        self._probe = ProbeHistogram(
            "perf_redis_probe_duration_seconds",
            "Round trip of one PING per cycle on the exporter's warm connection.",
        )
        self._run_id: str | None = None
        self._baseline: dict[str, float] | None = None
        #: Which server answers, read from INFO server once per connection.
        self._server: ServerKind | None = None
        #: Optional commands refused on this connection (ACL, or a server without them): not
        #: sent again on it.
        self._refused: set[str] = set()
        self._latency = LatencyHistograms(settings.latency_top_n)
        self._slowlog = EntryLog()
        self._commandlog = {kind: EntryLog() for kind in COMMANDLOG_TYPES}
        self._latency_family: Metric | None = None
        self.scan: NamespaceScan | None = None
        if target.namespaces != []:
            self.scan = NamespaceScan(
                rules=NamespaceRules(target.namespaces, settings.namespace_limit),
                budget=ScanBudget(
                    count=settings.scan_count,
                    max_keys=settings.scan_max_keys_per_cycle,
                    max_seconds=settings.scan_max_seconds_per_cycle,
                    memory_sample=settings.memory_sample_per_namespace,
                    pass_pause=settings.scan_pass_pause,
                ),
                target=target.name,
            )

    # --- connection ---------------------------------------------------------------------------

    async def connect(self) -> Redis:
        # the client connects on its first command; a refused port shows up in sample()
        cls, kwargs, self._where = _connection_settings(
            self.target, self.timeout, self.read_password()
        )
        self._password = kwargs.get("password")
        self._tls = issubclass(cls, SSLConnection)
        pool = BlockingConnectionPool(
            max_connections=1, timeout=self.timeout, connection_class=cls, **kwargs
        )
        client = Redis(connection_pool=pool)
        shared = _CALLBACKS.get("table")
        if shared is None:
            client.set_response_callback("INFO", _raw)
            _CALLBACKS["table"] = client.response_callbacks
        else:
            client.response_callbacks = shared
        self._server = None
        self._refused = set()
        if self.scan is not None:
            self.scan.restart()
        return client

    async def disconnect(self, conn: Redis, *, abort: bool) -> None:
        with contextlib.suppress(rx.RedisError, OSError):
            await conn.aclose(close_connection_pool=True)

    def keeps_connection(self, error: CollectError) -> bool:
        # an error reply leaves the connection in a clean state: no need to reconnect
        return error.reason == "query"

    # --- one cycle ----------------------------------------------------------------------------

    async def sample(self, conn: Redis) -> Collected:
        self._cycle_started = time.monotonic()
        info, probe_seconds = await self._info_and_ping(conn)
        return self._result(info, probe_seconds)

    async def _info_and_ping(self, client: Redis) -> tuple[Info, float]:
        if self.scan is not None:
            await self.scan.step(client)
        # INFO after the scan, so its keyspace_hits already include our own TTL lookups. Which
        # server answers (read from the first INFO on a connection) decides what else a cycle
        # may send; once it is known, INFO goes in one pipeline with LATENCY HISTOGRAM and the
        # log GETs: one round trip fewer per cycle, the replies all from one moment
        server = self._server
        asked = self.settings.slowlog_fetch + 1
        if server is None:
            info = self._info(await client.execute_command("INFO", "all"))  # type: ignore[no-untyped-call]
            server = self._server = ServerKind.from_info(info)
            chosen = None
            if server.has("latency_histogram"):
                chosen = self._latency.choose(info) or None  # none yet: nothing to ask
            replies = await self._round_trip(client, self._optional(server, chosen, asked))
        else:
            # the commands already chosen, or all of them while the top has room (the reply
            # then holds any command this INFO would add to it: choose() below takes it)
            chosen = self._latency.asking() if server.has("latency_histogram") else None
            commands = {"info": ("INFO", "all"), **self._optional(server, chosen, asked)}
            replies = await self._round_trip(client, commands, required="info")
            info = self._info(replies.pop("info"))
            if chosen is not None:
                self._latency.choose(info)
        started = time.perf_counter()
        await client.ping()
        probe = time.perf_counter() - started
        await self._take_logs_and_latency(client, info, server, replies, asked)
        return info, probe

    def _info(self, text: Any) -> Info:
        info = parse_info(text.decode(errors="replace") if isinstance(text, bytes) else text)
        if info.get("loading") == "1":
            # INFO is allowed while loading, but every number would describe half a dataset
            raise rx.BusyLoadingError("Redis is loading the dataset in memory")
        return info

    def _optional(
        self, server: ServerKind, chosen: list[str] | None, asked: int
    ) -> dict[str, tuple[Any, ...]]:
        """LATENCY HISTOGRAM of ``chosen`` (None: not at all, empty: every command) and the
        logs' GETs, as this server offers them."""
        commands: dict[str, tuple[Any, ...]] = {}
        if chosen is not None:
            commands["latency"] = ("LATENCY", "HISTOGRAM", *chosen)
        for kind, (_, get, _) in self._entry_logs(server, asked).items():
            commands[kind] = get
        return commands

    async def _take_logs_and_latency(
        self,
        client: Redis,
        info: Info,
        server: ServerKind,
        replies: dict[str, Any],
        asked: int,
    ) -> None:
        """The latency family and the logs from the cycle's replies.

        Each GET asks for one entry more than ``slowlog_fetch``, so a reply short of that is the
        whole log and tells its length; only a log whose GET came back full costs a second round
        trip in this cycle, for its LEN (redis_slowlog.is_full).
        """
        logs = self._entry_logs(server, asked)
        reply = replies.get("latency")
        self._latency_family = None if reply is None else self._latency.family(info, reply)
        full = {kind: logs[kind][2] for kind in logs if is_full(replies.get(kind), asked)}
        lengths = await self._round_trip(client, full) if full else {}
        run_id = info.get("run_id")
        for kind, (log, _, _) in logs.items():
            # a full reply whose LEN was refused has no exact length: the log is left as it was
            if kind in replies and (kind not in full or kind in lengths):
                log.update(run_id, replies[kind], lengths.get(kind))

    def _entry_logs(
        self, server: ServerKind, asked: int
    ) -> dict[str, tuple[EntryLog, tuple[Any, ...], tuple[Any, ...]]]:
        """Per log kind: its EntryLog, its GET and its LEN command on this server."""
        if server.has("commandlog"):
            kinds = {"slow": self._slowlog, **self._commandlog}
            return {
                kind: (log, ("COMMANDLOG", "GET", asked, kind), ("COMMANDLOG", "LEN", kind))
                for kind, log in kinds.items()
            }
        return {"slow": (self._slowlog, ("SLOWLOG", "GET", asked), ("SLOWLOG", "LEN"))}

    async def _round_trip(
        self, client: Redis, commands: Mapping[str, tuple[Any, ...]], required: str | None = None
    ) -> dict[str, Any]:
        """One pipeline of commands: their replies by key. An optional command the server
        refuses is left out (and not sent again on this connection); the ``required`` one's
        error is raised, as if it had been sent alone."""
        wanted = {k: v for k, v in commands.items() if k == required or v[0] not in self._refused}
        if not wanted:
            return {}
        pipe = client.pipeline(transaction=False)
        for args in wanted.values():
            pipe.execute_command(*args)
        replies = dict(zip(wanted, await pipe.execute(raise_on_error=False), strict=True))
        failed = replies.get(required) if required is not None else None
        if isinstance(failed, Exception):
            raise failed
        for key, reply in list(replies.items()):
            if isinstance(reply, rx.ResponseError):
                # an ACL without these optional commands (NOPERM), or a Redis-compatible server
                # that lacks one despite its version: collect the rest, ask no more on this
                # connection
                self._refused.add(wanted[key][0])
                del replies[key]
            elif isinstance(reply, Exception):
                raise reply
        return replies

    def translate(self, exc: Exception) -> CollectError | None:
        if not isinstance(exc, rx.RedisError | OSError | TimeoutError):
            return None
        where = f"Redis at {self._where}"
        detail = self._scrub(str(exc)).rstrip(".")
        if isinstance(exc, rx.NoPermissionError):
            user = self.target.username or "default"
            return CollectError(
                "auth",
                f"{where}: ACL user {user!r} may not run a command the collector needs "
                f"({detail}); grant the commands listed in docs/redis.md.",
            )
        if isinstance(exc, rx.AuthenticationError | rx.AuthorizationError):
            # WRONGPASS, and NOAUTH when no password is configured but one is required
            return CollectError("auth", f"{where} rejected the credentials ({detail}).")
        if isinstance(exc, rx.BusyLoadingError):
            return CollectError(
                "connection",
                f"{where} is loading its dataset into memory and serves no queries yet.",
            )
        if self._tls and isinstance(exc, rx.TimeoutError) and "connecting" in str(exc):
            # a TLS client talking to a plain port waits for a ServerHello that never comes
            return CollectError(
                "connection",
                f"the TLS handshake with {where} did not complete within "
                f"{CONNECT_SHARE * self.timeout:g}s (does that port speak TLS?).",
            )
        if isinstance(exc, rx.TimeoutError | TimeoutError):
            return CollectError("timeout", f"{where} did not answer within {self.timeout:g}s.")
        if isinstance(exc, rx.ConnectionError | OSError):
            return CollectError("connection", f"cannot reach {where} ({detail}).")
        if isinstance(exc, rx.ResponseError):
            return CollectError("query", f"{where} returned an error ({detail}).")
        return CollectError("other", f"{where}: {type(exc).__name__} ({detail}).")

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    # --- results ------------------------------------------------------------------------------

    def _result(self, info: Info, probe_seconds: float) -> Collected:
        run_id = info.get("run_id")
        if self._run_id is not None and run_id != self._run_id:
            # a restarted server: counters restarted, namespace counts describe the past
            self._baseline = None
            if self.scan is not None:
                self.scan.forget(completed_before=self._cycle_started)
        self._run_id = run_id
        self._probe.observe(probe_seconds)
        families = families_from_info(info)
        families.append(self._probe.family())
        families.extend(self._log_families())
        families.extend(self._scan_families())
        return Collected(families=families, facts=self._facts(info, probe_seconds))

    def _log_families(self) -> list[Metric]:
        server = self._server
        if server is None:
            return []
        out: list[Metric] = []
        # handed over, not kept: hundreds of samples per target would otherwise live on
        # between cycles for nothing
        family, self._latency_family = self._latency_family, None
        if family is not None:
            out.append(family)
        refused = self._refused
        if "SLOWLOG" not in refused and "COMMANDLOG" not in refused:
            out.extend(slowlog_families(self._slowlog))
        if server.has("commandlog") and "COMMANDLOG" not in refused:
            out.extend(commandlog_families(self._commandlog))
        return out

    def _scan_families(self) -> list[Metric]:
        scan = self.scan
        own_hits = CounterMetricFamily(
            "perf_redis_exporter_keyspace_hits",
            "Keyspace hits caused by this exporter's TTL checks (namespace scan) since it "
            "started; subtract from perf_redis_keyspace_hits_total for the application's.",
            value=float(scan.own_hits if scan else 0),
        )
        own_misses = CounterMetricFamily(
            "perf_redis_exporter_keyspace_misses",
            "Keyspace misses caused by this exporter's TTL checks of keys that vanished "
            "mid-scan; subtract from perf_redis_keyspace_misses_total.",
            value=float(scan.own_misses if scan else 0),
        )
        if scan is None:
            return [own_hits, own_misses]
        out: list[Metric] = [
            own_hits,
            own_misses,
            CounterMetricFamily(
                "perf_redis_namespace_scan_passes",
                "Complete SCAN passes over the keyspace; namespace series appear after the first.",
                value=float(scan.passes),
            ),
            CounterMetricFamily(
                "perf_redis_namespace_scan_keys",
                "Keys visited by the namespace scan.",
                value=float(scan.keys_visited),
            ),
        ]
        if scan.last_pass_seconds is not None:
            out.append(
                GaugeMetricFamily(
                    "perf_redis_namespace_scan_pass_duration_seconds",
                    "Wall time of the last complete pass, spread over several cycles.",
                    value=scan.last_pass_seconds,
                )
            )
        if scan.published is None:
            return out
        shown = [
            m for m in NAMESPACE_METRICS if m.source != "memory_bytes" or scan.budget.memory_sample
        ]
        families = [metric.family(["namespace"]) for metric in shown]
        for label, counts in sorted(scan.published.items()):
            for metric, family in zip(shown, families, strict=True):
                family.add_metric([label], float(getattr(counts, metric.source)))
        out.extend(families)
        return out

    def _facts(self, info: Info, probe_seconds: float) -> Mapping[str, Any]:
        now = time.monotonic()
        own_hits = self.scan.own_hits if self.scan else 0
        own_misses = self.scan.own_misses if self.scan else 0
        current = {
            "at": now,
            "hits": _int(info.get("keyspace_hits")) - own_hits,
            "misses": _int(info.get("keyspace_misses")) - own_misses,
            "evicted": _int(info.get("evicted_keys")),
            "expired": _int(info.get("expired_keys")),
        }
        facts: dict[str, Any] = {
            "hit_ratio": None,
            "keyspace_hits": None,
            "keyspace_misses": None,
            "evicted_keys": None,
            "expired_keys": None,
            "interval_seconds": None,
            "memory_used_bytes": _int(info.get("used_memory")),
            "memory_max_bytes": _int(info.get("maxmemory")),
            "maxmemory_policy": info.get("maxmemory_policy"),
            "clients_connected": _int(info.get("connected_clients")),
            "clients_max": _int(info.get("maxclients")),
            "role": info.get("role"),
            "probe_seconds": probe_seconds,
            "namespaces": None,
        }
        previous, self._baseline = self._baseline, current
        if previous is not None:
            deltas = {k: current[k] - previous[k] for k in ("hits", "misses", "evicted", "expired")}
            if min(deltas.values()) >= 0:  # negative: counters were reset (CONFIG RESETSTAT)
                lookups = deltas["hits"] + deltas["misses"]
                facts.update(
                    hit_ratio=deltas["hits"] / lookups if lookups else None,
                    keyspace_hits=int(deltas["hits"]),
                    keyspace_misses=int(deltas["misses"]),
                    evicted_keys=int(deltas["evicted"]),
                    expired_keys=int(deltas["expired"]),
                    interval_seconds=now - previous["at"],
                )
        if self.scan is not None and self.scan.published is not None:
            facts["namespaces"] = {
                label: {
                    "keys": c.keys,
                    "keys_without_ttl": c.keys_without_ttl,
                    "memory_bytes": round(c.memory_bytes),
                }
                for label, c in sorted(self.scan.published.items())
            }
        return facts


def _int(text: str | None) -> int:
    try:
        return int(float(text)) if text is not None else 0
    except ValueError:
        return 0
