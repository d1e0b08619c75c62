"""Keys per cache namespace, counted by an incremental SCAN that never blocks Redis.

A *pass* walks the whole keyspace of the target's database with ``SCAN cursor COUNT n``. Each
collection cycle advances the pass by a bounded amount (at most ``scan_max_keys_per_cycle``
keys, give or take what one SCAN returns beyond ``COUNT``, and at most
``scan_max_seconds_per_cycle``) and keeps the cursor for the next cycle. For each batch one
pipeline (no transaction, no Lua) asks ``TTL`` of every key and ``MEMORY USAGE`` of the first
``memory_sample_per_namespace`` keys of each namespace in this pass; SCAN order is hash order,
so those first keys are a fair sample. Never KEYS, never an unbounded loop.

Counts are published only when a pass completes, and the last complete pass is published
until the next one completes: a partial pass would look like keys vanishing and coming back,
exactly what a cache-leak alert must not see. Until the first pass completes there are no
namespace series at all.

``TTL`` counts as a keyspace hit (or a miss for a key that vanished) inside Redis. The scan
counts the lookups it causes so the daemon and the recording rules can subtract them from
``keyspace_hits``/``keyspace_misses``; otherwise monitoring would inflate the hit ratio it
reports. ``MEMORY USAGE`` and ``SCAN`` touch no statistics.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from exporter.config import NamespaceSplit

#: Namespaces of the reference application: ``cache:<namespace>:<hash>``.
DEFAULT_PREFIXES: tuple[str, ...] = tuple(
    f"cache:{name}:"
    for name in (
        "api_response",
        "search_results",
        "budget_status",
        "llm_response",
        "user_session",
        "vector_search",
        "system_stats",
    )
)

OTHER = "other"
_SEPARATORS = ":/.|"


class NamespaceRules:
    """Maps a key to its namespace label, or ``other``.

    A prefix is literal text where ``*`` matches one run of characters up to the character that
    follows it in the pattern (a trailing ``*`` is ignored). The first matching prefix wins.
    Labels are the names an application gives its caches, so they join with
    ``perf_app_cache_*{namespace}``:

    * a literal prefix is labelled by its last part: ``cache:api_response:`` ->
      ``api_response`` (when two prefixes of the list end in the same part, both keep their
      whole prefix, ``a:users`` and ``b:users``, so counts never merge silently);
    * a prefix with ``*`` is labelled by what the stars matched: ``cache:*:`` puts
      ``cache:api_response:9f2c`` in ``api_response``;
    * a split rule labels a key by its first ``depth`` parts when it has more than ``depth``.

    Stars and split rules can produce many labels, so at most ``limit`` of those exist in one
    pass; keys of further ones count as ``other``.
    """

    def __init__(self, spec: list[str] | NamespaceSplit | None, limit: int) -> None:
        self.limit = limit
        self._split: NamespaceSplit | None = None
        #: (pattern, label for a literal prefix or None when the stars name the namespace)
        self._patterns: list[tuple[re.Pattern[bytes], str | None]] = []
        self._seen: set[str] = set()
        if isinstance(spec, NamespaceSplit):
            self._split = spec
            return
        prefixes = [text.rstrip("*") for text in (DEFAULT_PREFIXES if spec is None else spec)]
        literal = [p for p in prefixes if "*" not in p]
        short = [_last_part(p) for p in literal]
        for prefix in prefixes:
            label: str | None = None
            if "*" not in prefix:
                label = _last_part(prefix)
                if short.count(label) > 1:
                    label = prefix.rstrip(_SEPARATORS) or OTHER
            self._patterns.append((self._compile(prefix), label))

    @staticmethod
    def _compile(prefix: str) -> re.Pattern[bytes]:
        parts = prefix.split("*")
        regex = re.escape(parts[0])
        for part in parts[1:]:
            stop = part[:1]
            # the wildcard stops at the next literal character of the pattern
            regex += f"([^{re.escape(stop)}]+)" if stop else "(.+)"
            regex += re.escape(part)
        return re.compile(("^" + regex).encode())

    def fixed_labels(self) -> list[str]:
        """Labels of the literal prefixes: published (as 0) even when no key matches."""
        return [label for _, label in self._patterns if label is not None]

    def new_pass(self) -> None:
        self._seen = set()

    def _bounded(self, label: str) -> str:
        if label in self._seen:
            return label
        if len(self._seen) >= self.limit:
            return OTHER
        self._seen.add(label)
        return label

    def classify(self, key: bytes) -> str:
        if self._split is not None:
            sep = self._split.separator.encode()
            parts = key.split(sep, self._split.depth)
            if len(parts) <= self._split.depth:
                return OTHER
            return self._bounded(sep.join(parts[: self._split.depth]).decode(errors="replace"))
        for pattern, label in self._patterns:
            match = pattern.match(key)
            if match is None:
                continue
            if label is not None:
                return label
            return self._bounded(b":".join(match.groups()).decode(errors="replace"))
        return OTHER


def _last_part(prefix: str) -> str:
    parts = [p for p in re.split(f"[{re.escape(_SEPARATORS)}]", prefix) if p]
    return parts[-1] if parts else OTHER


@dataclass
class NamespaceCounts:
    """What one namespace holds, from one complete pass."""

    keys: int = 0
    keys_without_ttl: int = 0
    sampled: int = 0
    sampled_bytes: int = 0

    @property
    def memory_bytes(self) -> float:
        """Average sampled MEMORY USAGE times the key count (0 when nothing was sampled)."""
        if not self.sampled:
            return 0.0
        return self.sampled_bytes / self.sampled * self.keys


@dataclass
class ScanBudget:
    count: int
    max_keys: int
    max_seconds: float
    memory_sample: int
    pass_pause: float = 0.0


@dataclass
class CycleCost:
    """What the last cycle's share of the pass cost Redis (for tests and debug logs)."""

    scans: int = 0
    keys: int = 0
    seconds: float = 0.0


@dataclass
class NamespaceScan:
    """The state of the incremental pass, kept in the collector between cycles."""

    rules: NamespaceRules
    budget: ScanBudget
    cursor: int = 0
    current: dict[str, NamespaceCounts] = field(default_factory=dict)
    published: dict[str, NamespaceCounts] | None = None
    passes: int = 0
    keys_visited: int = 0
    #: Keyspace hits/misses caused by our own TTL lookups, since this collector started.
    own_hits: int = 0
    own_misses: int = 0
    pass_started: float | None = None
    pass_completed: float | None = None
    last_pass_seconds: float | None = None
    last_cycle: CycleCost = field(default_factory=CycleCost)

    def restart(self) -> None:
        """Forget the pass in progress (after a reconnect the server may have changed)."""
        self.cursor = 0
        self.current = {}
        self.pass_started = None

    def forget(self, completed_before: float) -> None:
        """Drop published counts of a pass completed before ``completed_before``.

        Called when the server restarted: such counts describe the old dataset. The pass in
        progress began after the reconnect, on the new one, and goes on.
        """
        if self.pass_completed is not None and self.pass_completed < completed_before:
            self.published = None
            self.pass_completed = None

    async def step(self, client: Any) -> None:
        """Advance the pass within the budget; publish the counts if the pass completes."""
        started = time.monotonic()
        deadline = started + self.budget.max_seconds
        cost = CycleCost()
        self.last_cycle = cost
        if (
            self.pass_started is None
            and self.pass_completed is not None
            and started - self.pass_completed < self.budget.pass_pause
        ):
            return  # resting between passes: the published counts stay
        if self.pass_started is None:
            self.pass_started = started
            self.current = {}
            self.rules.new_pass()
        # SCAN does bounded work but may return few keys from a sparse table: cap calls too
        max_scans = max(1, self.budget.max_keys // self.budget.count)
        while True:
            cursor, keys = await client.scan(cursor=self.cursor, count=self.budget.count)
            cost.scans += 1
            cost.keys += len(keys)
            if keys:
                await self._tally(client, keys)
            self.cursor = int(cursor)
            if self.cursor == 0:
                self._complete()
                break
            if cost.keys + self.budget.count > self.budget.max_keys or cost.scans >= max_scans:
                break
            if time.monotonic() >= deadline:
                break
        self.keys_visited += cost.keys
        cost.seconds = time.monotonic() - started

    async def _tally(self, client: Any, keys: list[bytes]) -> None:
        labels = [self.rules.classify(key) for key in keys]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(key)
        sampled: list[str] = []
        pending: dict[str, int] = {}
        for key, label in zip(keys, labels, strict=True):
            counts = self.current.setdefault(label, NamespaceCounts())
            if counts.sampled + pending.get(label, 0) < self.budget.memory_sample:
                pipe.memory_usage(key)
                sampled.append(label)
                pending[label] = pending.get(label, 0) + 1
        replies = await pipe.execute(raise_on_error=False)
        ttls = replies[: len(keys)]
        # every TTL that ran was a lookup in Redis's statistics, even if the batch then fails
        for ttl in ttls:
            if isinstance(ttl, int) and ttl == -2:
                self.own_misses += 1
            elif isinstance(ttl, int):
                self.own_hits += 1
        failed = next((r for r in replies if isinstance(r, Exception)), None)
        if failed is not None:
            raise failed  # the cursor stays put: the batch is counted when it is scanned again
        for label, ttl in zip(labels, ttls, strict=True):
            if ttl == -2:  # vanished between SCAN and TTL: Redis counted a miss
                continue
            counts = self.current[label]
            counts.keys += 1
            if ttl == -1:
                counts.keys_without_ttl += 1
        for label, usage in zip(sampled, replies[len(keys) :], strict=True):
            if usage is not None:
                counts = self.current[label]
                counts.sampled += 1
                counts.sampled_bytes += int(usage)

    def _complete(self) -> None:
        now = time.monotonic()
        if self.pass_started is not None:
            self.last_pass_seconds = now - self.pass_started
        self.pass_completed = now
        published = {k: v for k, v in self.current.items() if v.keys}
        for label in (*self.rules.fixed_labels(), OTHER):
            published.setdefault(label, NamespaceCounts())
        self.published = published
        self.passes += 1
        self.current = {}
        self.pass_started = None
