"""The performance summary the daemon serves at /summary (JSON) and / (HTML).

:mod:`~exporter.summary.window` is what a signal's evaluation reads, :mod:`~exporter.summary.board`
keeps the values per target and scores them, :mod:`~exporter.summary.page` renders the page.
The signals themselves, and their levels, are the catalog's (:mod:`exporter.mixin.catalog`).
"""

from __future__ import annotations
