"""The mixin: thresholds and generators of alert rules, dashboards and the summary's signals.

``Thresholds`` is the single source of truth; :func:`exporter.mixin.generate.main` writes
``alerts/``, ``dashboards/`` and ``docs/runbooks.md`` from it.
"""

from __future__ import annotations

from exporter.mixin.thresholds import Level, Thresholds

__all__ = ["Level", "Thresholds"]
