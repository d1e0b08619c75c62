"""The latest result of every collector x target, pre-rendered so /metrics only serves bytes.

Each *part* (one job's data, or one job's self metrics) is turned into exposition text when it
arrives (sample lines read the same in both formats); a render then groups those fragments by
metric name, and only the formats scrapers asked for lately are joined, with their HELP/TYPE
headers, into a body and gzipped. Parts carry an expiry: a result older than twice its
interval is replaced by its stale form (for a remote source just ``<kind>_up 0``), so nothing
frozen is ever served as fresh.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Protocol

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from exporter.collectors.interned import Interned

_INF = float("inf")
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

#: Types the text format 0.0.4 knows; others are written as gauges there.
_TEXT_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_help_om(value: str) -> str:
    return _escape_label(value)


#: The headers of one metric family: text name and type, OpenMetrics name and type, help. One
#: tuple for every part and cycle that sends the family (:func:`_head_of`).
Head = tuple[str, str, str, str, str]
TEXT_NAME, TEXT_TYPE, OM_NAME, OM_TYPE, HELP = range(5)
#: The rendered sample lines of one family of one part: one bytes, or the lines of each of its
#: :class:`Block` in order.
Payload = bytes | tuple[bytes, ...]
#: One metric family of one part: its headers and its rendered sample lines.
#:
#: Plain tuples of strings and bytes on purpose: the garbage collector stops tracking an exact
#: tuple of untracked items at its first young collection, but never a tuple subclass. As a
#: NamedTuple, the ~57,000 fragments of a thousand targets were walked by every collection of
#: the older generation (~100 ms each).
Fragment = tuple[Head, Payload]

#: Each distinct headers tuple kept once (a fleet sends a few hundred families).
_heads: Interned[Head, Head] = Interned(lambda head: head, 10_000)


def sample_name(family: Metric) -> str:
    """The name of ``family``'s samples as ``add_metric`` makes them (a counter's end in
    ``_total``), and its name in the text format; for collectors that append samples directly."""
    return family.name + "_total" if family.type == "counter" else family.name


def _head_of(family: Metric) -> Head:
    kind = family.type
    head: Head = (
        sample_name(family),
        kind if kind in _TEXT_TYPES else "gauge",
        family.name,
        "unknown" if kind == "untyped" else kind,
        family.documentation,
    )
    return _heads(head)


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: +Inf, -Inf, NaN, integers without ``.0``."""
    if -1e15 < value < 1e15:  # the common case first: one comparison, false for NaN
        whole = int(value)
        return str(whole) if whole == value else repr(float(value))
    if value != value:
        return "NaN"
    if value in (_INF, -_INF):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


#: ``name="escaped value"`` by (name, value): label pairs repeat from cycle to cycle (commands,
#: bucket bounds, databases, targets), so each is escaped and formatted once. Cleared when full.
_PAIRS: dict[tuple[str, str], str] = {}
_PAIRS_MAX = 50_000


def _pair(name: str, value: str) -> str:
    text = _PAIRS.get((name, value))
    if text is None:
        if len(_PAIRS) >= _PAIRS_MAX:
            _PAIRS.clear()
        text = _PAIRS[(name, value)] = f'{name}="{_escape_label(str(value))}"'
    return text


class Block:
    """A run of ``count`` consecutive samples of a family, which its collector hands over again,
    the same object, while their values stay as they were: the render keeps the run's lines
    and takes them again instead of formatting its samples anew (see :func:`with_blocks`).

    A thousand targets' Redis latency histograms are ~360,000 sample lines of the fleet's
    ~650,000, and most of their commands are not called between two cycles.
    """

    __slots__ = ("count", "extra", "lines")

    def __init__(self, count: int) -> None:
        self.count = count
        #: the labels the lines were rendered with (the target), None before the first render
        self.extra: tuple[tuple[str, str], ...] | None = None
        self.lines = b""


def with_blocks(family: Metric, blocks: list[Block]) -> Metric:
    """Mark ``family`` as made of ``blocks``, covering its samples in order."""
    family.blocks = blocks  # type: ignore[attr-defined]
    return family


#: A part's label sets as rendered (the target's pair first), by the identity of their dict,
#: which the entry keeps alive for the length of one :func:`render_fragments`.
_Memo = dict[int, tuple[dict[str, str], str]]


def _lines(samples: Iterable[Sample], first: str, memo: _Memo) -> bytes:
    # Sample lines read the same in both formats as long as no _created samples, exemplars or
    # timestamps are emitted (we emit none), so they are rendered once and shared.
    # Collectors hand one label dict to all the families of a row (a statement's counters, a
    # table's families, a Redis command's stats, _count and _sum): it is joined once a part.
    lines = []
    cached = _PAIRS.get
    for sample in samples:
        labels = sample.labels
        if labels:
            hit = memo.get(id(labels))
            if hit is None:
                pairs = [cached(kv) or _pair(*kv) for kv in labels.items()]
                inner = f"{first},{','.join(pairs)}" if first else ",".join(pairs)
                memo[id(labels)] = (labels, inner)
            else:
                inner = hit[1]
            lines.append(f"{sample.name}{{{inner}}} {format_value(sample.value)}\n")
        elif first:
            lines.append(f"{sample.name}{{{first}}} {format_value(sample.value)}\n")
        else:
            lines.append(f"{sample.name} {format_value(sample.value)}\n")
    return "".join(lines).encode()


def _sample_lines(
    family: Metric, extra: tuple[tuple[str, str], ...], first: str, memo: _Memo
) -> Payload:
    blocks: list[Block] | None = getattr(family, "blocks", None)
    if blocks is None:
        return _lines(family.samples, first, memo)
    samples = family.samples
    out = []
    start = 0
    for block in blocks:
        end = start + block.count
        if block.extra != extra:
            block.lines = _lines(samples[start:end], first, memo)
            block.extra = extra
        out.append(block.lines)
        start = end
    if start < len(samples):
        out.append(_lines(samples[start:], first, memo))
    return tuple(out)


def payload_size(payload: Payload) -> int:
    """Bytes of sample lines in ``payload``."""
    return len(payload) if isinstance(payload, bytes) else sum(map(len, payload))


def _flat(payloads: Iterable[Payload]) -> list[bytes]:
    out: list[bytes] = []
    for payload in payloads:
        if isinstance(payload, bytes):
            out.append(payload)
        else:
            out.extend(payload)
    return out


def render_fragments(families: Iterable[Metric], target: str | None) -> list[Fragment]:
    """Pre-render ``families``; ``target`` (when given) becomes the first label of every sample."""
    extra: tuple[tuple[str, str], ...] = (("target", target),) if target is not None else ()
    first = ",".join(_pair(k, v) for k, v in extra)  # the part's own labels, first on every line
    memo: _Memo = {}
    return [(_head_of(family), _sample_lines(family, extra, first, memo)) for family in families]


#: A body variant (format, gzip or not) asked for within this many seconds is made ahead of the
#: next scrape; the others are made only when asked for.
DEMAND_WINDOW = 600.0
#: A plain body of more sample bytes than this is never kept: each request for it is streamed from
#: the fragments, a megabyte at a time. At a thousand targets the text is over 60 MB (its gzip
#: 3 MB), kept once per format asked and twice while a render replaces it, for the odd ``curl``;
#: joining it also held the interpreter lock long enough to stall the scrapes served meanwhile.
PLAIN_KEEP_MAX = 8 << 20
#: Fast compression: on metrics text level 1 is ~2.5x cheaper than 6 for ~13 % more bytes, and
#: it runs once per render, not per scrape.
GZIP_LEVEL = 1

#: (openmetrics, gzip) -> when a scraper last asked for that variant (monotonic seconds).
Demand = dict[tuple[bool, bool], float]
#: The fragments of one metric name, the first giving the headers.
Group = tuple[Head, list[bytes]]


class Rendered:
    """The bodies /metrics answers with, from one render's fragments grouped by metric name.

    A body is joined only for a variant scrapers asked for within :data:`DEMAND_WINDOW`: by
    :meth:`prepare` ahead of the scrapes (in a worker thread), else on the first request and then
    kept. Prometheus asks for OpenMetrics, curl and most tools for the text format: at a thousand
    targets each body is tens of megabytes, so a format nobody reads is never made, and a plain
    body over :data:`PLAIN_KEEP_MAX` is streamed (:meth:`chunks`) instead of kept.
    """

    def __init__(self, groups: list[Group], demand: Demand, size: int = 0) -> None:
        self._groups = groups
        #: bytes of sample lines, the bulk of any body: what joining and compressing one costs
        self.size = size
        #: shared with the snapshot, so what one render learns the next one prepares
        self.demand = demand
        self.plain: dict[bool, bytes] = {}
        self.gzipped: dict[bool, bytes] = {}

    @property
    def text(self) -> bytes:
        return self._plain(False)

    @property
    def openmetrics(self) -> bytes:
        return self._plain(True)

    @property
    def streams_plain(self) -> bool:
        """Whether the plain bodies are too large to keep: served by :meth:`chunks` instead."""
        return self.size > PLAIN_KEEP_MAX

    def want(self, openmetrics: bool, gz: bool) -> None:
        """Record that a scraper asked for this variant (the next renders make it ahead)."""
        self.demand[(openmetrics, gz)] = time.monotonic()

    def body(self, openmetrics: bool, gz: bool) -> bytes:
        """The body of one variant, recording that it is wanted (see :meth:`streams_plain`)."""
        self.want(openmetrics, gz)
        if not gz:
            return self._plain(openmetrics)
        packed = self.gzipped.get(openmetrics)
        if packed is None:
            packed = self.gzipped[openmetrics] = self._gzip(openmetrics)
        return packed

    def prepare(self) -> None:
        """Make the variants scrapers asked for lately; safe to run in a worker thread.

        A plain body is kept only when the plain variant is wanted: one only gzipped is
        compressed as it is joined, a megabyte at a time (at a thousand targets the plain text
        is over 40 MB, its gzip 2 MB).
        """
        now = time.monotonic()
        wanted = sorted(k for k, last in list(self.demand.items()) if now - last < DEMAND_WINDOW)
        for openmetrics, gz in wanted:
            if not gz and not self.streams_plain:
                self._plain(openmetrics)
        for openmetrics, gz in wanted:
            if gz and openmetrics not in self.gzipped:
                self.gzipped[openmetrics] = self._gzip(openmetrics)

    def length(self, openmetrics: bool) -> int:
        """Bytes of the plain body of one format, without joining it."""
        heads = sum(len(_head(head, openmetrics)) for head, _ in self._groups)
        return self.size + heads + (len(_EOF) if openmetrics else 0)

    def chunks(self, openmetrics: bool) -> Iterator[bytes]:
        """The plain body of one format in pieces of about :data:`GZIP_CHUNK` bytes.

        Reads only the fragments this render holds, which nothing changes: safe on any thread.
        """
        chunk: list[bytes] = []
        size = 0
        for piece in _pieces(self._groups, openmetrics):
            chunk.append(piece)
            size += len(piece)
            if size >= GZIP_CHUNK:
                yield b"".join(chunk)
                chunk, size = [], 0
        if chunk:
            yield b"".join(chunk)

    def _plain(self, openmetrics: bool) -> bytes:
        body = self.plain.get(openmetrics)
        if body is None:
            body = b"".join(_pieces(self._groups, openmetrics))
            if not self.streams_plain:
                self.plain[openmetrics] = body
        return body

    def _gzip(self, openmetrics: bool) -> bytes:
        plain = self.plain.get(openmetrics)
        if self.size <= FAST_GZIP_BYTES:
            if plain is not None:
                return gzip.compress(plain, GZIP_LEVEL, mtime=0)
            # the gzip wrapper of zlib (wbits 31) is what gzip.compress(mtime=0) writes
            packer: _Packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        else:
            from isal import isal_zlib  # only a large body pays for the import

            packer = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31)
        if plain is not None:
            view = memoryview(plain)
            pieces: Iterable[bytes | memoryview] = (
                view[i : i + GZIP_CHUNK] for i in range(0, len(plain), GZIP_CHUNK)
            )
        else:
            pieces = self.chunks(openmetrics)
        out = [packer.compress(piece) for piece in pieces]
        out.append(packer.flush())
        return b"".join(out)


class _Packer(Protocol):
    def compress(self, data: bytes | memoryview, /) -> bytes: ...
    def flush(self) -> bytes: ...


#: Bytes of plain text compressed at a time when the plain body itself is not kept.
GZIP_CHUNK = 1 << 20
#: Bodies of more sample bytes than this are gzipped by ISA-L's deflate (the ``isal`` package):
#: at a thousand targets 44 MB in 22 ms and 3.2 MB where zlib at level 1 takes 105 ms for 4.0
#: MB, and like zlib it lets the interpreter lock go while it compresses. Smaller bodies keep
#: zlib, byte for byte what ``gzip.compress`` writes, and do not import it (0.7 MB).
FAST_GZIP_BYTES = 1 << 20


_EOF = b"# EOF\n"


def _head(head: Head, openmetrics: bool) -> bytes:
    if openmetrics:
        name, kind, help_text = head[OM_NAME], head[OM_TYPE], _escape_help_om(head[HELP])
    else:
        name, kind, help_text = head[TEXT_NAME], head[TEXT_TYPE], _escape_help_text(head[HELP])
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n".encode()


def _pieces(groups: list[Group], openmetrics: bool) -> Iterator[bytes]:
    for head, lines in groups:
        yield _head(head, openmetrics)
        yield from lines
    if openmetrics:
        yield _EOF


@dataclass
class _Part:
    fragments: list[Fragment]
    expires_at: float | None
    stale: list[Fragment]


PartKey = tuple[str, ...]
_lines_of = itemgetter(1)


class _Family:
    """The fragments of one metric name by part, kept in the parts' sorted order.

    The snapshot keeps one of these per name as parts come and go, so a render groups a
    thousand targets' ~57,000 fragments with a list per name instead of walking every fragment
    (30 ms a render at a thousand targets, and the loop held meanwhile).
    """

    __slots__ = ("blocked", "frags", "kinds", "last", "ordered", "repeated", "size")

    def __init__(self) -> None:
        #: part key -> that part's fragment of this name (the first, if it sends two)
        self.frags: dict[PartKey, Fragment] = {}
        #: how many parts send it as each type: two types is a bug the render must survive
        self.kinds: dict[str, int] = {}
        #: parts that send two fragments of this name
        self.repeated: set[PartKey] = set()
        #: bytes of sample lines of the fragments in ``frags``
        self.size = 0
        #: fragments in ``frags`` whose lines come in blocks (a tuple)
        self.blocked = 0
        self.ordered = True
        self.last: PartKey = ()

    def put(self, key: PartKey, fragment: Fragment) -> None:
        frags = self.frags
        old = frags.get(key)
        if old is not None:
            self._uncount(old)
        elif key > self.last:
            self.last = key
        else:
            self.ordered = False
        frags[key] = fragment  # a key already there keeps its place
        kind = fragment[0][OM_TYPE]
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        payload = fragment[1]
        if isinstance(payload, bytes):
            self.size += len(payload)
        else:
            self.size += payload_size(payload)
            self.blocked += 1

    def remove(self, key: PartKey) -> None:
        self._uncount(self.frags.pop(key))
        self.repeated.discard(key)

    def _uncount(self, fragment: Fragment) -> None:
        kind = fragment[0][OM_TYPE]
        left = self.kinds[kind] - 1
        if left:
            self.kinds[kind] = left
        else:
            del self.kinds[kind]
        payload = fragment[1]
        if isinstance(payload, bytes):
            self.size -= len(payload)
        else:
            self.size -= payload_size(payload)
            self.blocked -= 1

    def in_order(self) -> dict[PartKey, Fragment]:
        """``frags`` in the parts' sorted order (sorted again only after a part came in between)."""
        if not self.ordered:
            self.frags = dict(sorted(self.frags.items()))
            self.last = next(reversed(self.frags))
            self.ordered = True
        return self.frags

    @property
    def regular(self) -> bool:
        """One type and one fragment a part: the render takes the lines as they are."""
        return len(self.kinds) == 1 and not self.repeated


class Snapshot:
    """Latest parts by key; ``render()`` joins them into the exposition bodies."""

    def __init__(self, extra_families: Callable[[], list[Metric]] | None = None) -> None:
        self._parts: dict[PartKey, _Part] = {}
        self._families: dict[str, _Family] = {}
        #: the names of ``_families`` sorted, or None when a name came or went
        self._names: list[str] | None = None
        self._extra = extra_families
        self._demand: Demand = {}
        self.version = 0
        self.rendered = self.render()

    def put(
        self,
        key: PartKey,
        families: Iterable[Metric],
        *,
        target: str | None,
        ttl: float | None = None,
        stale: Iterable[Metric] = (),
        now: float | None = None,
    ) -> None:
        """Store a part; after ``ttl`` seconds it is replaced by ``stale`` (default: nothing)."""
        now = time.monotonic() if now is None else now
        part = _Part(
            fragments=render_fragments(families, target),
            expires_at=None if ttl is None else now + ttl,
            stale=render_fragments(stale, target),
        )
        old = self._parts.get(key)
        self._relink(key, old.fragments if old is not None else [], part.fragments)
        self._parts[key] = part
        self.version += 1

    def drop(self, key: PartKey) -> None:
        part = self._parts.pop(key, None)
        if part is not None:
            self._relink(key, part.fragments, [])
            self.version += 1

    def expire(self, now: float | None = None) -> list[PartKey]:
        """Replace parts past their expiry by their stale form; returns the keys affected."""
        now = time.monotonic() if now is None else now
        expired = []
        for key, part in self._parts.items():
            if part.expires_at is not None and part.expires_at <= now:
                self._relink(key, part.fragments, part.stale)
                part.fragments = part.stale
                part.expires_at = None
                expired.append(key)
        if expired:
            self.version += 1
        return expired

    def _relink(self, key: PartKey, old: list[Fragment], new: list[Fragment]) -> None:
        """Move the families' index of part ``key`` from fragments ``old`` to ``new``."""
        families = self._families
        firsts: dict[str, Fragment] = {}
        repeated: list[str] = []
        for fragment in new:
            name = fragment[0][OM_NAME]
            if name in firsts:
                repeated.append(name)
            else:
                firsts[name] = fragment
        for fragment in old:
            name = fragment[0][OM_NAME]
            gone = families.get(name) if name not in firsts else None
            if gone is not None and key in gone.frags:
                gone.remove(key)
                if not gone.frags:
                    del families[name]
                    self._names = None
        for name, fragment in firsts.items():
            family = families.get(name)
            if family is None:
                family = families[name] = _Family()
                self._names = None
            family.put(key, fragment)
            family.repeated.discard(key)
        for name in repeated:
            families[name].repeated.add(key)

    def assemble(self) -> Rendered:
        """Group every part's fragments by metric name (sorted, so output is stable).

        Takes the parts as they are now, at once: a result that arrives later is in the next
        render, never half in this one. The bodies are joined by :meth:`Rendered.prepare`, which
        the daemon runs in a thread (zlib releases the GIL), or on the first request; then
        :meth:`publish`.
        """
        extra: dict[str, list[Fragment]] = {}
        if self._extra is not None:
            for fragment in render_fragments(self._extra(), None):
                extra.setdefault(fragment[0][OM_NAME], []).append(fragment)
        if self._names is None:
            self._names = sorted(self._families)
        names = self._names
        if not extra.keys() <= self._families.keys():
            names = sorted({*names, *extra})
        groups: list[Group] = []
        size = 0
        for name in names:
            family = self._families.get(name)
            more = extra.get(name, [])
            if family is not None and family.regular and not more:
                frags = family.in_order().values()
                head = next(iter(frags))[0]
                lines = (
                    _flat(map(_lines_of, frags)) if family.blocked else list(map(_lines_of, frags))
                )
                size += family.size
            else:
                # the odd cases, as the parts say: a part sending a name twice or with two
                # types (the first part's type wins), or the daemon's own families
                keys = family.in_order() if family is not None else {}
                fragments = [
                    f for key in keys for f in self._parts[key].fragments if f[0][OM_NAME] == name
                ] + more
                head = fragments[0][0]
                lines = _flat(f[1] for f in fragments if f[0][OM_TYPE] == head[OM_TYPE])
                size += sum(map(len, lines))
            groups.append((head, lines))
        return Rendered(groups, self._demand, size)

    def publish(self, rendered: Rendered) -> None:
        """Make ``rendered`` what /metrics serves from now on."""
        self.rendered = rendered

    def render(self) -> Rendered:
        """Assemble, make the variants wanted, and publish, all at once."""
        rendered = self.assemble()
        rendered.prepare()
        self.publish(rendered)
        return rendered
