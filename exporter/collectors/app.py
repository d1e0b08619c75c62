"""The application's own asyncpg pools and cache namespaces, published by ``exporter.instrument``.

Each worker process of the app writes its own Redis hashes under the target's ``prefix`` (see
:mod:`exporter.instrument.layout`); this collector finds them with a bounded ``SCAN MATCH``,
reads them with one pipelined round of ``HGETALL`` and sums them over the processes.

Counters stay monotonic when workers restart or die, the problem prometheus_client's
multiprocess mode solves with files; here without a shared disk. For every (process, series)
the collector remembers the last value it read. When a process's hash vanishes (its TTL ran out)
or one of its counters goes down (its key expired and came back), the last value is added to a
per-series *base*; the exported counter is ``base + sum(current values of live processes)``.
A worker's TTL must therefore outlast this collector's interval, so its final counts are seen
before they vanish. The base lives in this process: an exporter restart resets the counters,
which Prometheus' ``rate()`` handles like any other counter reset.

Sample output (the snapshot adds ``target``)::

    perf_app_pool_size{pool="main"} 24.0
    perf_app_pool_idle{pool="main"} 3.0
    perf_app_pool_min{pool="main"} 10.0
    perf_app_pool_max{pool="main"} 40.0
    perf_app_pool_acquire_waiting{pool="main"} 0.0
    perf_app_pool_workers{pool="main"} 2.0
    perf_app_pool_acquire_seconds_bucket{le="0.001",pool="main"} 8123.0
    perf_app_pool_acquire_seconds_bucket{le="+Inf",pool="main"} 8200.0
    perf_app_pool_acquire_seconds_count{pool="main"} 8200.0
    perf_app_pool_acquire_seconds_sum{pool="main"} 3.2
    perf_app_pool_acquire_timeouts_total{pool="main"} 0.0
    perf_app_cache_hits_total{namespace="api_response"} 15234.0
    perf_app_cache_misses_total{namespace="api_response"} 2281.0
    perf_app_cache_request_seconds_bucket{le="0.001",namespace="api_response",result="hit"} 15100.0
    perf_app_cache_request_seconds_count{namespace="api_response",result="miss"} 2281.0
    perf_app_cache_request_seconds_sum{namespace="api_response",result="miss"} 91.2
    perf_app_processes 2.0
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric

from exporter.collectors.base import Collected, CollectError, parse_number
from exporter.collectors.connected import ConnectedCollector
from exporter.collectors.monotonic_sums import MonotonicSums
from exporter.config import AppSettings, AppTarget, Timing, redact_url
from exporter.instrument.layout import (
    BUCKET,
    CACHE,
    CACHE_KINDS,
    POOL,
    POOL_GAUGES,
    REQUEST,
    REQUEST_RESULTS,
)

#: A counter series: (metric, label value...), e.g. ("hits", "api_response").
Series = tuple[str, ...]

POOL_GAUGE_HELP = {
    "size": ("perf_app_pool_size", "Connections open in the pool, summed over worker processes."),
    "idle": ("perf_app_pool_idle", "Idle connections in the pool, summed over worker processes."),
    "min": ("perf_app_pool_min", "Configured minimum pool size, summed over worker processes."),
    "max": ("perf_app_pool_max", "Configured maximum pool size, summed over worker processes."),
    "waiting": (
        "perf_app_pool_acquire_waiting",
        "Callers waiting in pool.acquire() right now, summed over worker processes.",
    ),
}

CACHE_HELP = {
    "hits": "Cache lookups that found a value.",
    "misses": "Cache lookups that found nothing.",
    "sets": "Values written to the cache.",
    "errors": "Cache operations that raised.",
    "fallbacks": "Operations served by the in-memory fallback because Redis failed.",
}


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class AppCollector(ConnectedCollector[AppTarget, AppSettings, aioredis.Redis]):
    """One application's Redis of published stats; keeps counter bases between cycles."""

    name: ClassVar[str] = "app"
    up_metric: ClassVar[str | None] = "perf_app_up"
    up_help: ClassVar[str] = "1 when the last read of the application's published stats succeeded."

    def __init__(
        self, target: AppTarget, settings: AppSettings, timing: Timing | None = None
    ) -> None:
        super().__init__(target, settings, timing)
        self._sums = MonotonicSums()
        self._previous: dict[Series, float] | None = None
        self._where = redact_url(target.url)

    async def connect(self) -> aioredis.Redis:
        return aioredis.from_url(
            self.target.url,
            password=self.read_password(),
            decode_responses=True,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
        )

    async def disconnect(self, conn: aioredis.Redis, *, abort: bool) -> None:
        await conn.aclose()

    def translate(self, exc: Exception) -> CollectError | None:
        where = f"Redis at {self._where}"
        if isinstance(exc, TimeoutError | redis_errors.TimeoutError):
            return CollectError("timeout", f"{where} did not answer in time")
        if isinstance(exc, redis_errors.AuthenticationError):
            return CollectError("auth", f"{where} refused the login")
        if isinstance(exc, redis_errors.ConnectionError):
            return CollectError("connection", f"cannot connect to {where}: {exc}")
        if isinstance(exc, redis_errors.ResponseError):
            text = str(exc)
            if text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
                return CollectError("auth", f"{where} refused the login or command")
            return CollectError("query", f"{where} failed a read: {text}")
        return None

    async def sample(self, conn: aioredis.Redis) -> Collected:
        return self._build(await self._read(conn))

    async def _read(self, client: aioredis.Redis) -> dict[str, dict[str, str]]:
        keys: set[str] = set()
        match = _glob_escape(self.target.prefix) + "*"
        async for key in client.scan_iter(match=match, count=self.settings.scan_count):
            keys.add(key)
            if len(keys) > self.settings.max_keys:
                # a partial read would look like vanished workers and double-count them later
                raise CollectError(
                    "query",
                    f"more than {self.settings.max_keys} keys start with "
                    f"{self.target.prefix!r}; raise collectors.app.max_keys or use a "
                    "dedicated prefix",
                )
        ordered = sorted(keys)
        if not ordered:
            return {}
        pipe = client.pipeline(transaction=False)
        for key in ordered:
            pipe.hgetall(key)
        values = await pipe.execute()
        return {key: value for key, value in zip(ordered, values, strict=True) if value}

    def _build(self, hashes: dict[str, dict[str, str]]) -> Collected:
        prefix = self.target.prefix
        gauges: dict[str, dict[str, float]] = {kind: defaultdict(float) for kind in POOL_GAUGES}
        workers: dict[str, int] = defaultdict(int)
        counters: dict[tuple[str, Series], float] = {}
        processes: set[str] = set()
        for key, fields in hashes.items():
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix) :]
            if rest.startswith(CACHE):
                process = rest[len(CACHE) :]
                processes.add(process)
                for field, text in fields.items():
                    namespace, _, kind = field.rpartition(":")
                    value = parse_number(text, finite=True)
                    if kind in CACHE_KINDS and namespace and value is not None:
                        counters[(key, (kind, namespace))] = value
            elif rest.startswith(REQUEST):
                processes.add(rest[len(REQUEST) :])
                for field, text in fields.items():
                    parts = field.rsplit(":", 2)
                    value = parse_number(text, finite=True)
                    if len(parts) != 3 or value is None:
                        continue
                    namespace, result, part = parts
                    if not namespace or result not in REQUEST_RESULTS:
                        continue
                    if part in ("count", "sum"):
                        counters[(key, (f"request_{part}", namespace, result))] = value
                    elif part.startswith("le="):
                        counters[(key, ("request_bucket", namespace, result, part[3:]))] = value
            elif rest.startswith(POOL) and "pool" in fields:
                pool = fields["pool"]
                processes.add(rest[len(POOL) :].removesuffix(":" + pool))
                workers[pool] += 1
                for kind in POOL_GAUGES:
                    gauges[kind][pool] += parse_number(fields.get(kind), finite=True) or 0.0
                for field, text in fields.items():
                    value = parse_number(text, finite=True)
                    if value is None:
                        continue
                    if field.startswith(BUCKET):
                        counters[(key, ("bucket", pool, field[len(BUCKET) :]))] = value
                    elif field in ("timeouts", "acquire_count", "acquire_sum"):
                        counters[(key, (field, pool))] = value
        totals = self._sums.update(counters)

        families: list[Metric] = []
        for kind, (metric, help_text) in POOL_GAUGE_HELP.items():
            family = GaugeMetricFamily(metric, help_text, labels=["pool"])
            for pool, value in sorted(gauges[kind].items()):
                family.add_metric([pool], value)
            families.append(family)
        family = GaugeMetricFamily(
            "perf_app_pool_workers", "Worker processes publishing this pool.", labels=["pool"]
        )
        for pool, count in sorted(workers.items()):
            family.add_metric([pool], count)
        families.append(family)
        families.append(self._histogram(totals))
        families.append(self._request_histogram(totals))
        timeouts = CounterMetricFamily(
            "perf_app_pool_acquire_timeouts",
            "pool.acquire() calls that timed out, summed over worker processes.",
            labels=["pool"],
        )
        for series, value in sorted(totals.items()):
            if series[0] == "timeouts":
                timeouts.add_metric([series[1]], value)
        families.append(timeouts)
        # every namespace gets all five counters, 0 until its first event of that kind, so
        # ratios and rate() work from the start
        namespaces = sorted({s[1] for s in totals if s[0] in CACHE_KINDS and len(s) == 2})
        for kind in CACHE_KINDS:
            counter = CounterMetricFamily(
                f"perf_app_cache_{kind}", CACHE_HELP[kind], labels=["namespace"]
            )
            for namespace in namespaces:
                counter.add_metric([namespace], totals.get((kind, namespace), 0.0))
            families.append(counter)
        families.append(
            GaugeMetricFamily(
                "perf_app_processes",
                "Application processes whose published stats are present (not yet expired).",
                value=len(processes),
            )
        )
        facts = self._facts(totals, gauges)
        self._previous = totals
        return Collected(families, facts)

    @staticmethod
    def _histogram(totals: dict[Series, float]) -> Metric:
        family = HistogramMetricFamily(
            "perf_app_pool_acquire_seconds",
            "Time pool.acquire() took to hand out a connection, over worker processes.",
            labels=["pool"],
        )
        pools = sorted({s[1] for s in totals if s[0] == "acquire_count"})
        for pool in pools:
            buckets = sorted(
                ((s[2], v) for s, v in totals.items() if s[0] == "bucket" and s[1] == pool),
                key=lambda item: float(item[0]),
            )
            count = totals.get(("acquire_count", pool), 0.0)
            if not buckets or buckets[-1][0] != "+Inf":
                buckets.append(("+Inf", count))
            family.add_metric(
                [pool], buckets=buckets, sum_value=totals.get(("acquire_sum", pool), 0.0)
            )
        return family

    @staticmethod
    def _request_histogram(totals: dict[Series, float]) -> Metric:
        family = HistogramMetricFamily(
            "perf_app_cache_request_seconds",
            "Time calls of a cached function took, by namespace and hit or miss, over worker "
            "processes.",
            labels=["namespace", "result"],
        )
        for namespace, result in sorted({s[1:3] for s in totals if s[0] == "request_count"}):
            buckets = sorted(
                (
                    (s[3], v)
                    for s, v in totals.items()
                    if s[0] == "request_bucket" and s[1:3] == (namespace, result)
                ),
                key=lambda item: float(item[0]),
            )
            count = totals.get(("request_count", namespace, result), 0.0)
            if not buckets or buckets[-1][0] != "+Inf":
                buckets.append(("+Inf", count))
            family.add_metric(
                [namespace, result],
                buckets=buckets,
                sum_value=totals.get(("request_sum", namespace, result), 0.0),
            )
        return family

    def _facts(
        self, totals: dict[Series, float], gauges: dict[str, dict[str, float]]
    ) -> dict[str, Any]:
        """Per namespace over the last interval (the totals on the first cycle): hits, misses,
        hit ratio and, for a ``cached`` function, mean hit and miss time and their speedup."""
        previous = self._previous or {}
        cache: dict[str, dict[str, float | None]] = {}
        for series, value in totals.items():
            if series[0] not in ("hits", "misses"):
                continue
            entry = cache.setdefault(series[1], {"hits": 0.0, "misses": 0.0})
            entry[series[0]] = value - previous.get(series, 0.0)
        for entry in cache.values():
            lookups = (entry["hits"] or 0.0) + (entry["misses"] or 0.0)
            entry["hit_ratio"] = (entry["hits"] or 0.0) / lookups if lookups else None
        # mean time of a cached call per result over the interval, and the speedup of a hit
        for series, count in totals.items():
            if series[0] != "request_count":
                continue
            _, namespace, result = series
            calls = count - previous.get(series, 0.0)
            seconds = totals.get(("request_sum", namespace, result), 0.0) - previous.get(
                ("request_sum", namespace, result), 0.0
            )
            entry = cache.setdefault(namespace, {"hits": 0.0, "misses": 0.0, "hit_ratio": None})
            entry[f"mean_{result}_seconds"] = seconds / calls if calls > 0 else None
        for entry in cache.values():
            hit = entry.setdefault("mean_hit_seconds", None)
            miss = entry.setdefault("mean_miss_seconds", None)
            entry["speedup"] = miss / hit if hit and miss is not None else None
        pools: dict[str, dict[str, float | None]] = {}
        for pool, size in gauges["size"].items():
            idle = gauges["idle"].get(pool, 0.0)
            largest = gauges["max"].get(pool, 0.0)
            pools[pool] = {
                "size": size,
                "in_use": size - idle,
                "max": largest,
                "waiting": gauges["waiting"].get(pool, 0.0),
                "utilisation": (size - idle) / largest if largest else None,
            }
        return {"cache": cache, "pools": pools}
