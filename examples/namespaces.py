"""The reference application's cache namespaces and their TTLs in seconds.

The example app caches under them (``cache:<namespace>:<hash>``), the demo test checks that each
gets hits, and the bench fills its Redis with keys in them. The exporter's default namespace
prefixes (``exporter.collectors.redis_namespaces.DEFAULT_PREFIXES``) name the same seven.
"""

from __future__ import annotations

NAMESPACES: dict[str, int] = {
    "api_response": 300,
    "search_results": 600,
    "budget_status": 60,
    "llm_response": 1800,
    "user_session": 3600,
    "vector_search": 900,
    "system_stats": 120,
}
