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
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

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
#: One metric family of one part: its headers and its rendered sample lines.
#:
#: Plain tuples of strings and bytes on purpose: the garbage collector stops tracking an exact
#: tuple of untracked items at its first young collection, but never a tuple subclass. As a
#: NamedTuple, the ~57,000 fragments of a thousand targets were walked by every collection of
#: the older generation (~100 ms each).
Fragment = tuple[Head, bytes]

#: Each distinct headers tuple kept once (a fleet sends a few hundred families).
_heads: Interned[Head, Head] = Interned(lambda head: head, 10_000)


def _head_of(family: Metric) -> Head:
    kind = family.type
    head: Head = (
        family.name + "_total" if kind == "counter" else family.name,
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


def _sample_lines(family: Metric, extra: tuple[tuple[str, str], ...]) -> bytes:
    # Sample lines read the same in both formats as long as no _created samples, exemplars or
    # timestamps are emitted (we emit none), so they are rendered once and shared.
    lines = []
    first = ",".join(_pair(k, v) for k, v in extra)
    cached = _PAIRS.get
    for sample in family.samples:
        labels = sample.labels
        if labels:
            pairs = [cached(kv) or _pair(*kv) for kv in labels.items()]
            inner = f"{first},{','.join(pairs)}" if first else ",".join(pairs)
            lines.append(f"{sample.name}{{{inner}}} {format_value(sample.value)}\n")
        elif first:
            lines.append(f"{sample.name}{{{first}}} {format_value(sample.value)}\n")
        else:
            lines.append(f"{sample.name} {format_value(sample.value)}\n")
    return "".join(lines).encode()


def render_fragments(families: Iterable[Metric], target: str | None) -> list[Fragment]:
    """Pre-render ``families``; ``target`` (when given) becomes the first label of every sample."""
    extra: tuple[tuple[str, str], ...] = (("target", target),) if target is not None else ()
    return [(_head_of(family), _sample_lines(family, extra)) for family in families]


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
        if plain is not None:
            return gzip.compress(plain, GZIP_LEVEL, mtime=0)
        # the gzip wrapper of zlib (wbits 31) is what gzip.compress(mtime=0) writes
        packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        out = [packer.compress(chunk) for chunk in self.chunks(openmetrics)]
        out.append(packer.flush())
        return b"".join(out)


#: Bytes of plain text compressed at a time when the plain body itself is not kept.
GZIP_CHUNK = 1 << 20


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


class Snapshot:
    """Latest parts by key; ``render()`` joins them into the exposition bodies."""

    def __init__(self, extra_families: Callable[[], list[Metric]] | None = None) -> None:
        self._parts: dict[tuple[str, ...], _Part] = {}
        self._extra = extra_families
        self._demand: Demand = {}
        self.version = 0
        self.rendered = self.render()

    def put(
        self,
        key: tuple[str, ...],
        families: Iterable[Metric],
        *,
        target: str | None,
        ttl: float | None = None,
        stale: Iterable[Metric] = (),
        now: float | None = None,
    ) -> None:
        """Store a part; after ``ttl`` seconds it is replaced by ``stale`` (default: nothing)."""
        now = time.monotonic() if now is None else now
        self._parts[key] = _Part(
            fragments=render_fragments(families, target),
            expires_at=None if ttl is None else now + ttl,
            stale=render_fragments(stale, target),
        )
        self.version += 1

    def drop(self, key: tuple[str, ...]) -> None:
        if self._parts.pop(key, None) is not None:
            self.version += 1

    def expire(self, now: float | None = None) -> list[tuple[str, ...]]:
        """Replace parts past their expiry by their stale form; returns the keys affected."""
        now = time.monotonic() if now is None else now
        expired = []
        for key, part in self._parts.items():
            if part.expires_at is not None and part.expires_at <= now:
                part.fragments = part.stale
                part.expires_at = None
                expired.append(key)
        if expired:
            self.version += 1
        return expired

    def assemble(self) -> Rendered:
        """Group every part's fragments by metric name (sorted, so output is stable).

        The bodies are joined by :meth:`Rendered.prepare`, which the daemon runs in a thread
        (zlib releases the GIL), or on the first request; then :meth:`publish`.
        """
        steps = self.assemble_steps()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: Rendered = done.value
                return result

    def assemble_steps(self, step: int = 4000) -> Generator[None, None, Rendered]:
        """:meth:`assemble` cut into slices of about ``step`` fragments each.

        The generator yields between slices, so the daemon can serve scrapes between them (at a
        thousand targets a whole assembly holds the loop for a hundred milliseconds and more);
        its return value is the :class:`Rendered`. The parts are taken at the start: a result
        that arrives meanwhile is in the next render, never half in this one.
        """
        taken = [self._parts[key].fragments for key in sorted(self._parts)]
        extra = render_fragments(self._extra(), None) if self._extra is not None else []
        by_name: dict[str, list[Fragment]] = {}
        done = 0
        for fragments in taken:
            for fragment in fragments:
                by_name.setdefault(fragment[0][OM_NAME], []).append(fragment)
            done += len(fragments)
            if done >= step:
                done = 0
                yield
        for fragment in extra:
            by_name.setdefault(fragment[0][OM_NAME], []).append(fragment)
        groups: list[Group] = []
        size = 0
        for name in sorted(by_name):
            fragments = by_name[name]
            head = fragments[0][0]
            # a name emitted with two types by two parts is a bug; keep the first type's samples
            kind = head[OM_TYPE]
            lines = [f[1] for f in fragments if f[0][OM_TYPE] == kind]
            size += sum(map(len, lines))
            groups.append((head, lines))
            done += len(fragments)
            if done >= step:
                done = 0
                yield
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
