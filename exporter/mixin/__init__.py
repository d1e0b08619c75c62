"""The mixin: the signal catalog, its thresholds, and the offline generators.

:mod:`~exporter.mixin.catalog` is the single source of truth, ``Thresholds`` its levels with
the config's overrides; :func:`exporter.mixin.generate.main` writes ``alerts/``,
``dashboards/`` and ``docs/runbooks.md`` from them. The daemon evaluates the same catalog for
/summary in :mod:`exporter.summary`.
"""

from __future__ import annotations

from exporter.mixin.thresholds import Level, Thresholds

__all__ = ["Level", "Thresholds"]
