"""perf-exporter: one Prometheus exporter for cache hit rate, pool usage, query latency and host resources."""

from __future__ import annotations

__version__ = "0.1.0"
