"""Cache statistics per namespace: hits, misses, sets, errors and fallbacks to memory.

Counting is an integer increment in this process; the application's :class:`Publisher` flushes
the differences to Redis once a second in one pipelined round trip, never once per call.

:meth:`CacheStats.cached` is also the cache itself for a function (the reference application's
"decorator for caching functions"): it times every call, so the summary can say how much faster
a hit is than the work it saves, which Redis cannot see.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import inspect
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from exporter.instrument.layout import CACHE_KINDS, REQUEST_BUCKETS, REQUEST_RESULTS, le_text
from exporter.instrument.publisher import Publisher

P = ParamSpec("P")
R = TypeVar("R")


class CacheStats:
    """Counters of one cache namespace (``api_response``, ``user_session`` ...).

    Call :meth:`hit`, :meth:`miss`, :meth:`set`, :meth:`error` and :meth:`fallback` where the
    cache does those things, or decorate the cache's get with :meth:`track_get` (a ``None``
    result is a miss, an exception an error) and its set with :meth:`track_set`.

    The ``publisher`` the application created ships the counts; closing these stats detaches
    them from it and leaves the publisher (and every other namespace) running. Meant for
    asyncio code: the counters are plain integers, not guarded for threads.
    """

    def __init__(self, namespace: str, publisher: Publisher) -> None:
        self.namespace = namespace
        self.publisher = publisher
        self.hits = 0
        self.misses = 0
        self.sets = 0
        self.errors = 0
        self.fallbacks = 0
        self._fields = {kind: f"{namespace}:{kind}" for kind in CACHE_KINDS}
        # cached-call durations since this process started, per result: bucket counts (the
        # last one above every bound) and the sum; published as totals, so a failed flush
        # loses nothing and needs no give-back
        self._bucket_counts = {r: [0] * (len(REQUEST_BUCKETS) + 1) for r in REQUEST_RESULTS}
        self._seconds = dict.fromkeys(REQUEST_RESULTS, 0.0)
        self._le = [le_text(b) for b in (*REQUEST_BUCKETS, float("inf"))]
        self._observed = 0
        self._published = 0
        publisher.add_cache(self)

    def hit(self) -> None:
        self.hits += 1

    def miss(self) -> None:
        self.misses += 1

    def set(self) -> None:
        self.sets += 1

    def error(self) -> None:
        self.errors += 1

    def fallback(self) -> None:
        """The value came from (or went to) the in-memory fallback because Redis failed."""
        self.fallbacks += 1

    def observe(self, result: str, seconds: float) -> None:
        """One cached call that was a ``hit`` or a ``miss`` took ``seconds``."""
        self._bucket_counts[result][bisect.bisect_left(REQUEST_BUCKETS, seconds)] += 1
        self._seconds[result] += seconds
        self._observed += 1

    def timings(self) -> dict[str, str | int] | None:
        """The timing totals as request-hash fields, or None when unchanged since published."""
        if self._observed == self._published:
            return None
        out: dict[str, str | int] = {}
        for result in REQUEST_RESULTS:
            running = 0
            for le, n in zip(self._le, self._bucket_counts[result], strict=True):
                running += n
                out[f"{self.namespace}:{result}:le={le}"] = running
            out[f"{self.namespace}:{result}:count"] = running
            out[f"{self.namespace}:{result}:sum"] = repr(self._seconds[result])
        return out

    def timings_published(self, observed: int) -> None:
        self._published = observed

    @property
    def observed(self) -> int:
        """Cached calls timed so far (the publisher notes which count it sent)."""
        return self._observed

    def take(self) -> dict[str, int]:
        """The counts since the last call, by Redis hash field, and reset them (publisher use)."""
        counts = {
            "hits": self.hits,
            "misses": self.misses,
            "sets": self.sets,
            "errors": self.errors,
            "fallbacks": self.fallbacks,
        }
        self.hits = self.misses = self.sets = self.errors = self.fallbacks = 0
        return {self._fields[kind]: n for kind, n in counts.items() if n}

    def give_back(self, deltas: dict[str, int]) -> None:
        """A flush failed: add its counts back so the next one sends them."""
        for field, n in deltas.items():
            kind = field.rpartition(":")[2]
            setattr(self, kind, getattr(self, kind) + n)

    def _counted(self, func: Callable[P, R], *, get: bool) -> Callable[P, R]:
        """``func`` (sync or async) counted: an exception is an error; a return is a hit or a
        miss (``get``) or a set. Inline branches, not a callback: this runs on every cache call."""
        if inspect.iscoroutinefunction(func):
            afunc = cast(Callable[P, Awaitable[Any]], func)
            publisher = self.publisher

            @functools.wraps(func)
            async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                if not publisher.running:  # created before the loop ran: start now
                    publisher.ensure_started()
                try:
                    result = await afunc(*args, **kwargs)
                except Exception:
                    self.errors += 1
                    raise
                if not get:
                    self.sets += 1
                elif result is None:
                    self.misses += 1
                else:
                    self.hits += 1
                return result

            return cast(Callable[P, R], awrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                result = func(*args, **kwargs)
            except Exception:
                self.errors += 1
                raise
            if not get:
                self.sets += 1
            elif result is None:
                self.misses += 1
            else:
                self.hits += 1
            return result

        return wrapper

    def track_get(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a cache get (sync or async): ``None`` is a miss, a value a hit."""
        return self._counted(func, get=True)

    def track_set(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a cache set (sync or async): each call that returns is a set."""
        return self._counted(func, get=False)

    def cached(
        self,
        ttl: float,
        key: Callable[..., str] | None = None,
        *,
        redis: Any = None,
        prefix: str = "cache:",
        fallback_size: int = 1024,
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Cache an async function's JSON-serialisable result in Redis for ``ttl`` seconds.

        A call looks the key up (``GET``); a hit returns the stored value, a miss calls the
        function and stores its result (``SET ... EX ttl``). The key is
        ``<prefix><namespace>:<sha256 of key(*args, **kwargs)>`` (``key`` defaults to the
        arguments' repr), hashed so user ids never show in key names. When Redis fails, the
        call uses a bounded in-memory cache instead, counted in ``fallbacks``; the application
        never sees a Redis error from here. Every call is timed as a ``hit`` or a ``miss``
        (``perf_app_cache_request_seconds``); a call whose function raises is an error and
        re-raises. ``redis`` defaults to the publisher's client.
        """
        stats = self
        memory: OrderedDict[str, tuple[float, str]] = OrderedDict()
        key_of = key or (lambda *a, **kw: repr((a, sorted(kw.items()))))
        expire = max(1, round(ttl))

        def remember(name: str, text: str) -> None:
            memory[name] = (time.monotonic() + ttl, text)
            memory.move_to_end(name)
            while len(memory) > fallback_size:
                memory.popitem(last=False)

        def recall(name: str) -> str | None:
            entry = memory.get(name)
            if entry is None or entry[0] < time.monotonic():
                memory.pop(name, None)
                return None
            return entry[1]

        def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
            @functools.wraps(func)
            async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                started = time.perf_counter()
                client = redis if redis is not None else stats.publisher.redis
                if not stats.publisher.running:
                    stats.publisher.ensure_started()
                digest = hashlib.sha256(str(key_of(*args, **kwargs)).encode()).hexdigest()
                name = f"{prefix}{stats.namespace}:{digest[:32]}"
                redis_ok = True
                try:
                    text = await client.get(name)
                except Exception:  # Redis down or slow: serve from memory
                    redis_ok = False
                    stats.fallbacks += 1
                    text = recall(name)
                if text is not None:
                    value = cast(R, json.loads(text))
                    stats.hits += 1
                    stats.observe("hit", time.perf_counter() - started)
                    return value
                stats.misses += 1
                try:
                    value = await func(*args, **kwargs)
                except Exception:
                    stats.errors += 1
                    raise
                text = json.dumps(value)
                if redis_ok:
                    try:
                        await client.set(name, text, ex=expire)
                    except Exception:
                        redis_ok = False
                        stats.fallbacks += 1
                if not redis_ok:
                    remember(name, text)
                stats.sets += 1
                stats.observe("miss", time.perf_counter() - started)
                return value

            return wrapper

        return decorate

    async def close(self) -> None:
        """Send this namespace's last counts and stop publishing it (its publisher runs on)."""
        await self.publisher.remove_cache(self)
