"""Where ``exporter.instrument`` publishes in Redis: the contract with the ``app`` collector.

One process (``<hostname>:<pid>:<random token>``, so a restarted worker is never mistaken for
its predecessor) writes:

* ``<prefix>cache:<process>``: a hash of counters ``<namespace>:<kind>`` (kind in
  :data:`CACHE_KINDS`), grown with HINCRBY; these are totals since the process started.
* ``<prefix>request:<process>``: a hash of the :meth:`CacheStats.cached` timings since the
  process started, fields ``<namespace>:<result>:<part>`` with result ``hit`` or ``miss`` and
  part ``count``, ``sum`` (seconds, HINCRBYFLOAT) or ``le=<upper bound>`` (cumulative bucket).
* ``<prefix>pool:<process>:<pool name>``: a hash with the pool's latest gauges (``size``,
  ``idle``, ``min``, ``max``, ``waiting``), its counters since the process started
  (``timeouts``, ``acquire_count``, ``acquire_sum`` in seconds) and cumulative acquire-latency
  buckets ``bucket:<le>`` (``bucket:+Inf`` equals ``acquire_count``), plus ``pool`` (the name).

Every key carries a TTL that each publish refreshes, so the keys of a dead worker vanish.
"""

from __future__ import annotations

DEFAULT_PREFIX = "perf:app:"
CACHE = "cache:"
POOL = "pool:"
REQUEST = "request:"

#: Cache events counted per namespace.
CACHE_KINDS = ("hits", "misses", "sets", "errors", "fallbacks")

#: Bucket bounds in seconds on the usual 1-2.5-5 ladder, from 100 microseconds to 10 s; each
#: histogram below takes the part of it that fits what it times.
_LADDER: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: Upper bounds (seconds) of the acquire-latency histogram: from an idle connection handed over
#: at once (well under a millisecond) to the reference app's 30 s acquire timeout.
ACQUIRE_BUCKETS: tuple[float, ...] = (*_LADDER[_LADDER.index(0.0005) :], 30.0)

#: Upper bounds (seconds) of the cached-call histogram: from a hit served from memory (tens of
#: microseconds) to an uncached call of a slow endpoint.
REQUEST_BUCKETS: tuple[float, ...] = _LADDER
#: Outcomes of a cached call.
REQUEST_RESULTS = ("hit", "miss")

POOL_GAUGES = ("size", "idle", "min", "max", "waiting")
POOL_COUNTERS = ("timeouts", "acquire_count", "acquire_sum")
BUCKET = "bucket:"


def bucket_field(upper: float) -> str:
    """``bucket:0.005`` / ``bucket:+Inf``: the same text as Prometheus' ``le`` label."""
    return BUCKET + le_text(upper)


def cache_key(prefix: str, process: str) -> str:
    return f"{prefix}{CACHE}{process}"


def pool_key(prefix: str, process: str, pool: str) -> str:
    return f"{prefix}{POOL}{process}:{pool}"


def request_key(prefix: str, process: str) -> str:
    return f"{prefix}{REQUEST}{process}"


def le_text(upper: float) -> str:
    """The ``le`` label text of a bucket bound: ``0.005``, ``+Inf``."""
    return "+Inf" if upper == float("inf") else repr(float(upper))
