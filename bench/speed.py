"""How fast the machine runs a fixed piece of pure Python, at the moment it is measured.

On the development VM (2 vCPUs of an AMD EPYC host, Firecracker) the same unit of work
(:func:`unit`, about a millisecond of dict building, float formatting and joining) takes
1.2-1.3 ms of thread CPU time at some moments and 2.0-2.9 ms at others, idle or not, on either
vCPU, while the guest reports no steal time (2026-12-07, bench/README.md "The eighth pass").
Thread CPU time as the guest counts it includes whatever the host does to the vCPU (another
tenant on its sibling thread, a lower clock), so a process's CPU seconds over a window are its
work times the machine's speed in that window: the fleet point's CPU moved 33-53 % of a core
between 15 s windows of one unchanged daemon.

:class:`SpeedProbe` samples that speed beside a measurement, from a thread of the bench process:
a few units every second (well under 1 % of a core), each timed with
:func:`time.thread_time`. It changes nothing that is measured; it says in which state the
machine was while it was measured, so that two runs can be compared (the same daemon is not
faster because the machine was).
"""

from __future__ import annotations

import statistics
import threading
import time

#: Units timed at each sample, and seconds between samples.
UNITS_PER_SAMPLE = 4
SAMPLE_PERIOD = 1.0


def unit() -> int:
    """A fixed piece of interpreter work, like an exporter's (dicts, float text, one join)."""
    values = {}
    for i in range(3000):
        values[f"key{i}"] = repr(i * 1.5)
    return len("\n".join(f"{k} {v}" for k, v in values.items()))


def unit_ms() -> float:
    """Thread CPU milliseconds of one :func:`unit` now."""
    started = time.thread_time()
    unit()
    return (time.thread_time() - started) * 1000


class SpeedProbe:
    """Times :data:`UNITS_PER_SAMPLE` units every :data:`SAMPLE_PERIOD` seconds until stopped.

    Use as a context manager around the window measured; :meth:`window` then summarizes the
    samples taken in it.
    """

    def __init__(self, period: float = SAMPLE_PERIOD, units: int = UNITS_PER_SAMPLE) -> None:
        self.period = period
        self.units = units
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="speed-probe", daemon=True)

    def _main(self) -> None:
        while not self._stop.is_set():
            # one sample is the median of its units: a unit interrupted by a context switch
            # to another thread of this process (time.thread_time does not count that) or by
            # the GIL does not decide it
            self.samples.append(statistics.median(unit_ms() for _ in range(self.units)))
            self._stop.wait(self.period)

    def __enter__(self) -> SpeedProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mark(self) -> int:
        """The number of samples so far: where a window starts or ends."""
        return len(self.samples)

    def window(self, start: int = 0, end: int | None = None) -> dict[str, float | int]:
        """Median, fastest and slowest sample (ms per unit) of ``samples[start:end]``, their count
        and ``factor``: the median over the fastest sample of the whole probe (1.0: the window
        ran as fast as the machine ran at its best while probed; 1.8: a unit of work cost 1.8
        times as much thread CPU time).
        """
        samples = self.samples[start:end]
        if not samples:
            return {"samples": 0}
        median = statistics.median(samples)
        return {
            "samples": len(samples),
            "median_ms": round(median, 3),
            "fastest_ms": round(min(samples), 3),
            "slowest_ms": round(max(samples), 3),
            "factor": round(median / min(self.samples), 2),
        }
