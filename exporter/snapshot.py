"""The latest result of every collector x target, pre-rendered so /metrics only serves bytes.

Each *part* (one job's data, or one job's self metrics) is turned into exposition text when it
arrives, once per format; a render then only joins those fragments per metric name, adds the
HELP/TYPE headers and gzips the result. Parts carry an expiry: a result older than twice its
interval is replaced by its stale form (for a remote source just ``<kind>_up 0``), so nothing
frozen is ever served as fresh.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

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


@dataclass(frozen=True)
class Fragment:
    """One metric family of one part, as header fields plus rendered sample lines."""

    text_name: str
    text_type: str
    om_name: str
    om_type: str
    help: str
    lines: str


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: +Inf, -Inf, NaN, integers without ``.0``."""
    if value != value:
        return "NaN"
    if value in (_INF, -_INF):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
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


def _sample_lines(family: Metric, extra: tuple[tuple[str, str], ...]) -> str:
    # Sample lines read the same in both formats as long as no _created samples, exemplars or
    # timestamps are emitted (we emit none), so they are rendered once and shared.
    lines = []
    first = [_pair(k, v) for k, v in extra]
    for sample in family.samples:
        pairs = first + [_pair(k, v) for k, v in sample.labels.items()] if sample.labels else first
        if pairs:
            lines.append(f"{sample.name}{{{','.join(pairs)}}} {format_value(sample.value)}\n")
        else:
            lines.append(f"{sample.name} {format_value(sample.value)}\n")
    return "".join(lines)


def render_fragments(families: Iterable[Metric], target: str | None) -> list[Fragment]:
    """Pre-render ``families``; ``target`` (when given) becomes the first label of every sample."""
    extra: tuple[tuple[str, str], ...] = (("target", target),) if target is not None else ()
    out = []
    for family in families:
        text_name = family.name + "_total" if family.type == "counter" else family.name
        lines = _sample_lines(family, extra)
        out.append(
            Fragment(
                text_name=text_name,
                text_type=family.type if family.type in _TEXT_TYPES else "gauge",
                om_name=family.name,
                om_type="unknown" if family.type == "untyped" else family.type,
                help=family.documentation,
                lines=lines,
            )
        )
    return out


#: A gzip variant asked for within this many seconds is compressed ahead of the next scrape.
GZIP_DEMAND_WINDOW = 600.0
#: Fast compression: on metrics text level 1 is ~2.5x cheaper than 6 for ~13 % more bytes, and
#: it runs once per render, not per scrape.
GZIP_LEVEL = 1


@dataclass
class Rendered:
    """The bodies /metrics answers with, made once per change.

    The plain bodies always exist; a gzip body is compressed ahead of time when that variant was
    asked for recently (see :meth:`compress_wanted`), else once on first request and kept.
    """

    text: bytes
    openmetrics: bytes
    demand: dict[bool, float]
    gzipped: dict[bool, bytes] = field(default_factory=dict)

    def body(self, openmetrics: bool, gz: bool) -> bytes:
        plain = self.openmetrics if openmetrics else self.text
        if not gz:
            return plain
        self.demand[openmetrics] = time.monotonic()
        packed = self.gzipped.get(openmetrics)
        if packed is None:
            packed = self.gzipped[openmetrics] = gzip.compress(plain, GZIP_LEVEL, mtime=0)
        return packed

    def compress_wanted(self) -> None:
        """Compress the variants scrapers asked for lately; safe to run in a worker thread."""
        now = time.monotonic()
        for openmetrics, last in list(self.demand.items()):
            if now - last < GZIP_DEMAND_WINDOW and openmetrics not in self.gzipped:
                plain = self.openmetrics if openmetrics else self.text
                self.gzipped[openmetrics] = gzip.compress(plain, GZIP_LEVEL, mtime=0)


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
        self._gzip_demand: dict[bool, float] = {}
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
        """Join every part's fragments by metric name (sorted, so output is stable).

        Returns the plain bodies only; gzip comes from :meth:`Rendered.compress_wanted`, which
        the daemon runs in a thread (zlib releases the GIL), then :meth:`publish`.
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
                by_name.setdefault(fragment.om_name, []).append(fragment)
            done += len(fragments)
            if done >= step:
                done = 0
                yield
        for fragment in extra:
            by_name.setdefault(fragment.om_name, []).append(fragment)
        text_chunks: list[bytes] = []
        om_chunks: list[bytes] = []
        text: list[str] = []
        om: list[str] = []
        for name in sorted(by_name):
            fragments = by_name[name]
            head = fragments[0]
            # a name emitted with two types by two parts is a bug; keep the first type's samples
            same = [f for f in fragments if f.om_type == head.om_type]
            text.append(f"# HELP {head.text_name} {_escape_help_text(head.help)}\n")
            text.append(f"# TYPE {head.text_name} {head.text_type}\n")
            text.extend(f.lines for f in same)
            om.append(f"# HELP {head.om_name} {_escape_help_om(head.help)}\n")
            om.append(f"# TYPE {head.om_name} {head.om_type}\n")
            om.extend(f.lines for f in same)
            done += len(fragments)
            if done >= step:
                done = 0
                text_chunks.append("".join(text).encode())
                om_chunks.append("".join(om).encode())
                text, om = [], []
                yield
        text_chunks.append("".join(text).encode())
        om_chunks.append("".join(om).encode())
        om_chunks.append(b"# EOF\n")
        return Rendered(
            text=b"".join(text_chunks),
            openmetrics=b"".join(om_chunks),
            demand=self._gzip_demand,
        )

    def publish(self, rendered: Rendered) -> None:
        """Make ``rendered`` what /metrics serves from now on."""
        self.rendered = rendered

    def render(self) -> Rendered:
        """Assemble, compress what is wanted, and publish, all at once."""
        rendered = self.assemble()
        rendered.compress_wanted()
        self.publish(rendered)
        return rendered
