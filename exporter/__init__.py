"""perf-exporter: cache hit rate, pool usage, query latency and host resources in one exporter."""

from __future__ import annotations

__version__ = "0.1.0"
