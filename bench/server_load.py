"""What an exporter costs the servers it watches.

PostgreSQL: statements executed per role, from ``pg_stat_statements`` (each exporter logs in as
its own role, so the bench's own queries and the other exporters' never count). Redis: command
calls from ``INFO commandstats``, which cannot tell clients apart; the bench keeps everything
else quiet during a window (the other daemon is SIGSTOPped) and subtracts its own INFO calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import redis

SqlRunner = Callable[[str], str]


def pg_calls_by_role(sql: SqlRunner, roles: Iterable[str]) -> dict[str, int]:
    """Total ``calls`` in pg_stat_statements for each role (0 for a role with none)."""
    names = list(roles)
    quoted = ", ".join(f"'{name}'" for name in names)
    out = sql(
        "SELECT r.rolname, sum(s.calls) FROM pg_stat_statements s "
        f"JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname IN ({quoted}) GROUP BY 1"
    )
    calls = dict.fromkeys(names, 0)
    for line in out.splitlines():
        role, total = line.split("|")
        calls[role] = int(total)
    return calls


class RedisCommandCounter:
    """Counts every command Redis executed, less the INFO calls this counter made itself."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._own_calls = 0
        # the first call opens the connection (and its handshake commands) before any window
        self._commandstats()

    def _commandstats(self) -> dict[str, int]:
        # Redis updates commandstats after a command ran: this INFO shows our earlier ones only
        stats = self._client.info("commandstats")
        calls = {
            name.removeprefix("cmdstat_"): int(value.get("calls", 0))
            for name, value in stats.items()
            if isinstance(value, dict)
        }
        if "info" in calls:
            calls["info"] -= self._own_calls
        self._own_calls += 1
        return calls

    def total(self) -> int:
        """Commands executed so far by everyone but this counter."""
        return sum(self._commandstats().values())

    def by_command(self) -> dict[str, int]:
        return self._commandstats()

    def close(self) -> None:
        self._client.close()
