"""Reproducible benchmark of perf-exporter against the Debian reference exporters.

``python -m bench`` (from the repository root) starts its own PostgreSQL, Redis and exporters on
127.0.0.1 free ports, loads the servers, measures every exporter in the same run and writes
``bench/results/<run>.jsonl``, ``bench/results/latest.md`` and ``bench/results/latest.png``.
"""

from __future__ import annotations
