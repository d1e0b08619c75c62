"""Keys per cache namespace, counted by an incremental SCAN that never blocks Redis.

A *pass* walks the whole keyspace of the target's database with ``SCAN cursor COUNT n``. Each
collection cycle advances the pass by a bounded amount (at most ``scan_max_keys_per_cycle``
keys, give or take what one SCAN returns beyond ``COUNT``, and at most
``scan_max_seconds_per_cycle``) and keeps the cursor for the next cycle. Each batch asks
``TTL`` of every key and ``MEMORY USAGE`` of the first ``memory_sample_per_namespace`` keys of
each namespace in this pass; SCAN order is hash order, so those first keys are a fair sample.
Never KEYS, never an unbounded loop.

A batch is one call of :data:`SCAN_SCRIPT`, a read-only Lua script (registered with redis-py's
``register_script``: ``SCRIPT LOAD`` once per connection, then ``EVALSHA``; after a
``SCRIPT FLUSH`` redis-py loads it again) that runs one SCAN step inside
Redis, classifies the keys and returns per-namespace sums: one command and a handful of
numbers instead of a reply per key (about 1.6 ms of Redis time for 1000 keys). When Redis
refuses scripts (an ACL user without ``+script|load +evalsha +eval``, renamed commands) the
scan falls back, from the same cursor, to a SCAN plus pipelines of ``TTL``/``MEMORY USAGE``
(no transaction) in chunks of :data:`PIPELINE_CHUNK` keys, and says so once in the log. Both
paths count exactly the same (tested) and yield to the event loop between batches.

Counts are published only when a pass completes, and the last complete pass is published
until the next one completes: a partial pass would look like keys vanishing and coming back,
exactly what a cache-leak alert must not see. Until the first pass completes there are no
namespace series at all.

``TTL`` counts as a keyspace hit (or a miss for a key that vanished) inside Redis. The scan
counts the lookups it causes so the daemon and the recording rules can subtract them from
``keyspace_hits``/``keyspace_misses``; otherwise monitoring would inflate the hit ratio it
reports (the script returns how many lookups it made, even when a command inside it is
refused). ``MEMORY USAGE`` and ``SCAN`` touch no statistics.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as rx

from exporter.config import NamespaceSplit

log = logging.getLogger(__name__)

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
        #: the same patterns for the Lua script: (Lua pattern, label or "" for the stars')
        self._lua: list[tuple[bytes, str]] = []
        #: labels made by stars or the split rule in this pass, raw (at most ``limit``)
        self._seen: set[bytes] = set()
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
            # a literal prefix goes as itself: a plain find is cheaper than a pattern
            self._lua.append(
                (_lua_pattern(prefix) if label is None else prefix.encode(), label or "")
            )

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

    def _bounded(self, raw: bytes) -> str:
        if raw not in self._seen:
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(raw)
        return raw.decode(errors="replace")

    def admit(self, raw: bytes) -> None:
        """Record a label the script admitted in this pass."""
        self._seen.add(raw)

    def script_args(self) -> list[bytes | str | int]:
        """The rules and this pass's admitted labels, as ``ARGV`` of :data:`SCAN_SCRIPT`."""
        args: list[bytes | str | int] = [self.limit - len(self._seen)]
        if self._split is not None:
            args += ["split", self._split.separator, self._split.depth]
        else:
            args += ["prefix", len(self._lua)]
            for pattern, label in self._lua:
                args += [pattern, label]
        args.append(len(self._seen))
        args.extend(sorted(self._seen))
        return args

    def classify(self, key: bytes) -> str:
        if self._split is not None:
            sep = self._split.separator.encode()
            parts = key.split(sep, self._split.depth)
            if len(parts) <= self._split.depth:
                return OTHER
            return self._bounded(sep.join(parts[: self._split.depth]))
        for pattern, label in self._patterns:
            match = pattern.match(key)
            if match is None:
                continue
            if label is not None:
                return label
            return self._bounded(b":".join(match.groups()))
        return OTHER


def _lua_pattern(prefix: str) -> bytes:
    """The Lua pattern that matches what :meth:`NamespaceRules._compile`'s regex matches."""

    def literal(text: str) -> bytes:
        out = b""
        for byte in text.encode():
            char = bytes([byte])
            # %z is NUL in Lua 5.1 patterns; any other non-alphanumeric byte is escaped by %
            out += b"%z" if byte == 0 else char if char.isalnum() else b"%" + char
        return out

    parts = prefix.split("*")
    pattern = b"^" + literal(parts[0])
    for part in parts[1:]:
        stop = part[:1]
        pattern += b"([^" + literal(stop) + b"]+)" if stop else b"(.+)"
        pattern += literal(part)
    return pattern


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
class StepResult:
    """What one batch (one SCAN step) found, from the script or from the pipelines."""

    cursor: int
    keys: int


#: One bounded step of a pass, run inside Redis: one ``SCAN cursor COUNT n``, then ``TTL`` of
#: each key returned and ``MEMORY USAGE`` of the first keys of each namespace, classified by the
#: rules the caller passes. Read-only; returns per-namespace sums, not per-key replies. Errors
#: of the commands inside (an ACL without ``+ttl``, say) come back as a reply, not an error, so
#: the lookups done before them are still accounted for.
#:
#: ``ARGV``: cursor, count, memory quota per namespace, free label slots, then ``split``,
#: separator, depth or ``prefix``, n, n pairs (Lua pattern, label or "" to label by the
#: captures), then m labels already admitted in this pass, then k pairs (label, samples taken).
#: Reply: ``{cursor, keys scanned, hits, misses, {label, keys, without ttl, sampled, bytes,
#: ...}, {labels admitted in this call}}`` or ``{"err", hits, misses, message, command}``.
SCAN_SCRIPT = """
local cursor, count = ARGV[1], ARGV[2]
local quota, free = tonumber(ARGV[3]), tonumber(ARGV[4])
local i, sep, depth = 7, nil, 0
local patterns, fixed = {}, {}
if ARGV[5] == 'split' then
  sep, depth, i = ARGV[6], tonumber(ARGV[7]), 8
else
  for j = 1, tonumber(ARGV[6]) do
    patterns[j], fixed[j] = ARGV[i], ARGV[i + 1]
    i = i + 2
  end
end
local seen = {}
local n = tonumber(ARGV[i])
for j = 1, n do seen[ARGV[i + j]] = true end
i = i + n + 1
local taken = {}
for j = 1, tonumber(ARGV[i]) do taken[ARGV[i + 2 * j - 1]] = tonumber(ARGV[i + 2 * j]) end

local admitted = {}
local function admit(label)
  if not seen[label] then
    if free <= 0 then return 'other' end
    free = free - 1
    seen[label] = true
    admitted[#admitted + 1] = label
  end
  return label
end

local function classify(key)
  if sep then
    local stop, from = 0, 1
    for _ = 1, depth do
      stop = string.find(key, sep, from, true)
      if not stop then return 'other' end
      from = stop + #sep
    end
    return admit(string.sub(key, 1, stop - 1))
  end
  for j = 1, #patterns do
    if fixed[j] ~= '' then
      if string.find(key, patterns[j], 1, true) == 1 then return fixed[j] end
    else
      local found = {string.match(key, patterns[j])}
      if found[1] then return admit(table.concat(found, ':')) end
    end
  end
  return 'other'
end

local scanned = redis.pcall('SCAN', cursor, 'COUNT', count)
if scanned.err then return {'err', 0, 0, scanned.err, 'scan'} end
local keys = scanned[2]
local hits, misses = 0, 0
local sums, order = {}, {}
for k = 1, #keys do
  local key = keys[k]
  local label = classify(key)
  local ttl = redis.pcall('TTL', key)
  if type(ttl) == 'table' then return {'err', hits, misses, ttl.err, 'ttl'} end
  if ttl == -2 then
    misses = misses + 1
  else
    hits = hits + 1
    local sum = sums[label]
    if not sum then
      sum = {0, 0, 0, 0}
      sums[label] = sum
      order[#order + 1] = label
    end
    sum[1] = sum[1] + 1
    if ttl == -1 then sum[2] = sum[2] + 1 end
    if (taken[label] or 0) + sum[3] < quota then
      local usage = redis.pcall('MEMORY', 'USAGE', key)
      if type(usage) == 'table' then return {'err', hits, misses, usage.err, 'memory|usage'} end
      if usage then
        sum[3] = sum[3] + 1
        sum[4] = sum[4] + usage
      end
    end
  end
end
local out = {}
for _, label in ipairs(order) do
  local sum = sums[label]
  for _, value in ipairs({label, sum[1], sum[2], sum[3], sum[4]}) do out[#out + 1] = value end
end
return {scanned[1], #keys, hits, misses, out, admitted}
"""

#: Keys per pipeline on the fallback path: parsing a reply costs about 10 us of our CPU, so a
#: pipeline of this size keeps the event loop busy for a few milliseconds at most.
PIPELINE_CHUNK = 200


@dataclass
class NamespaceScan:
    """The state of the incremental pass, kept in the collector between cycles."""

    rules: NamespaceRules
    budget: ScanBudget
    #: The target's name, for the one log line about the fallback.
    target: str = ""
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
    #: None: not tried on this connection yet; True: the script runs; False: pipelines.
    scripted: bool | None = None
    #: Why the script path is off (logged once per change), or None.
    fallback_reason: str | None = None
    #: :data:`SCAN_SCRIPT` registered on this connection's client (redis-py ``AsyncScript``).
    script: Any = None

    def restart(self) -> None:
        """Forget the pass in progress (after a reconnect the server may have changed)."""
        self.cursor = 0
        self.current = {}
        self.pass_started = None
        self.scripted = None
        self.script = None

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
        if self.scripted is None:
            self.scripted = await self._load_script(client)
        # SCAN does bounded work but may return few keys from a sparse table: cap calls too
        max_scans = max(1, math.ceil(self.budget.max_keys / self.budget.count))
        try:
            while True:
                if self.scripted:
                    found = await self._script_step(client)
                    if found is None:  # refused: the pipelines take over from the same cursor
                        self.scripted = False
                        continue
                else:
                    found = await self._pipelined_step(client)
                cost.scans += 1
                cost.keys += found.keys
                self.cursor = found.cursor
                if self.cursor == 0:
                    self._complete()
                    break
                if cost.keys >= self.budget.max_keys or cost.scans >= max_scans:
                    break
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0)  # let scrapes in between batches
        finally:
            self.keys_visited += cost.keys
            cost.seconds = time.monotonic() - started

    # --- the script path ---------------------------------------------------------------------

    async def _load_script(self, client: Any) -> bool:
        """SCRIPT LOAD once per connection; False (and one log line) if that is refused."""
        self.script = client.register_script(SCAN_SCRIPT)
        try:
            # loaded now rather than on the first call, so a refusal shows before any scan
            await client.script_load(SCAN_SCRIPT)
        except rx.ResponseError as exc:
            if not _script_refused(exc):
                raise
            self._fall_back(exc)
            return False
        if self.fallback_reason is not None:
            log.info("Redis namespace scan runs as a script again", extra={"target": self.target})
            self.fallback_reason = None
        return True

    def _fall_back(self, exc: rx.ResponseError) -> None:
        reason = str(exc)
        if self.fallback_reason is None:
            log.warning(
                "Redis refused the namespace scan script (%s); scanning with pipelined TTL "
                "checks instead, which costs more CPU here and more commands there (grant "
                "+script|load +evalsha +eval, see docs/redis.md)",
                reason,
                extra={"target": self.target},
            )
        self.fallback_reason = reason

    async def _script_step(self, client: Any) -> StepResult | None:
        quota = self.budget.memory_sample
        taken = [(label, c.sampled) for label, c in self.current.items() if c.sampled]
        args: list[bytes | str | int] = [self.cursor, self.budget.count, quota]
        args += self.rules.script_args()
        args.append(len(taken))
        for label, sampled in taken:
            args += [label, sampled]
        try:
            # EVALSHA; after a SCRIPT FLUSH redis-py loads the script again and retries
            reply = await self.script(args=args, client=client)
        except rx.ResponseError as exc:
            if not _script_refused(exc):
                raise
            self._fall_back(exc)
            return None
        if reply[0] == b"err":
            self.own_hits += int(reply[1])
            self.own_misses += int(reply[2])
            message = f"{reply[3].decode(errors='replace')} ({reply[4].decode()} in a script)"
            # Redis 7.0 words an ACL refusal inside a script as an ERR, 7.2 as NOPERM
            refused = message.startswith("NOPERM") or "user executing the script can't" in message
            error = rx.NoPermissionError if refused else rx.ResponseError
            # the cursor stays put: the batch is counted when it is scanned again
            raise error(message)
        cursor, scanned, hits, misses, sums, admitted = reply
        self.own_hits += int(hits)
        self.own_misses += int(misses)
        for raw in admitted:
            self.rules.admit(raw)
        for at in range(0, len(sums), 5):
            raw, keys, without_ttl, sampled, sampled_bytes = sums[at : at + 5]
            label = raw.decode(errors="replace")
            counts = self.current.setdefault(label, NamespaceCounts())
            counts.keys += int(keys)
            counts.keys_without_ttl += int(without_ttl)
            counts.sampled += int(sampled)
            counts.sampled_bytes += int(sampled_bytes)
        return StepResult(cursor=int(cursor), keys=int(scanned))

    # --- the fallback: SCAN, then pipelines of TTL and MEMORY USAGE --------------------------

    async def _pipelined_step(self, client: Any) -> StepResult:
        cursor, keys = await client.scan(cursor=self.cursor, count=self.budget.count)
        labels = [self.rules.classify(key) for key in keys]
        # counted apart and merged only when every chunk succeeded: a failed batch is scanned
        # again from the same cursor and must not be counted twice
        batch: dict[str, NamespaceCounts] = {}
        for at in range(0, len(keys), PIPELINE_CHUNK):
            if at:
                await asyncio.sleep(0)
            chunk = slice(at, at + PIPELINE_CHUNK)
            await self._tally(client, keys[chunk], labels[chunk], batch)
        for label, counts in batch.items():
            total = self.current.setdefault(label, NamespaceCounts())
            total.keys += counts.keys
            total.keys_without_ttl += counts.keys_without_ttl
            total.sampled += counts.sampled
            total.sampled_bytes += counts.sampled_bytes
        return StepResult(cursor=int(cursor), keys=len(keys))

    async def _tally(
        self,
        client: Any,
        keys: list[bytes],
        labels: list[str],
        batch: dict[str, NamespaceCounts],
    ) -> None:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(key)
        sampled: list[str] = []
        pending: dict[str, int] = {}
        for key, label in zip(keys, labels, strict=True):
            done = self.current.get(label, _NONE).sampled + batch.get(label, _NONE).sampled
            if done + pending.get(label, 0) < self.budget.memory_sample:
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
            counts = batch.setdefault(label, NamespaceCounts())
            counts.keys += 1
            if ttl == -1:
                counts.keys_without_ttl += 1
        for label, usage in zip(sampled, replies[len(keys) :], strict=True):
            if usage is not None:
                counts = batch.setdefault(label, NamespaceCounts())
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


#: A namespace with nothing counted yet (read only).
_NONE = NamespaceCounts()


def _script_refused(exc: rx.ResponseError) -> bool:
    """True when the error says scripts are unavailable to us, not that Redis is unwell.

    NOPERM: an ACL user without ``+script|load``/``+evalsha``/``+eval``; unknown command: the
    commands are renamed away (some managed services); a script error: a Redis whose Lua
    differs from what we expect. BUSY, LOADING, OOM and the like are not refusals.
    """
    if isinstance(exc, rx.NoPermissionError):
        return True
    text = str(exc).lower()
    return any(
        marker in text
        for marker in ("unknown command", "error running script", "error compiling script")
    )
