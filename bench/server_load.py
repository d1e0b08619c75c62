"""What an exporter costs the servers it watches.

PostgreSQL: statements executed per role, from ``pg_stat_statements`` (each exporter logs in as
its own role, so the bench's own queries and the other exporters' never count). Redis: command
calls from ``INFO commandstats``, which cannot tell clients apart; the bench keeps everything
else quiet during a window (the other daemon is SIGSTOPped) and subtracts its own INFO calls.
Commandstats also counts the commands a Lua script runs inside Redis (perf-exporter's
namespace scan is one ``EVALSHA`` per batch running SCAN, TTLs and MEMORY USAGE):
:func:`split_script_calls` tells what the exporter sent from what ran inside its scripts, and
the ``usec`` totals give the Redis time either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import redis

SqlRunner = Callable[[str], str]

#: What perf-exporter's namespace script runs inside Redis (one SCAN per call, a TTL per key,
#: a sampled MEMORY USAGE).
SCRIPT_INNER_COMMANDS = ("scan", "ttl", "memory|usage")


def split_script_calls(by_command: dict[str, int]) -> tuple[int, int]:
    """(commands clients sent, commands run inside their scripts) from commandstats deltas.

    When scripts ran in the window, the namespace scan's commands are attributed to them: the
    perf-exporter under test scans either by script or, when Redis refuses scripts, by
    pipelines, never both on one connection, and nothing else in the window scans.
    """
    scripts = by_command.get("evalsha", 0) + by_command.get("eval", 0)
    inside = sum(by_command.get(name, 0) for name in SCRIPT_INNER_COMMANDS) if scripts else 0
    return sum(by_command.values()) - inside, inside


#: perf-exporter's wait sampler is the only statement calling this function: its samples run on
#: their own clock (1 per second per target), not per scrape or per collection, so they are
#: counted apart (:func:`pg_wait_sampling`), together with the one a cycle takes itself when no
#: sample is recent (the first cycle, or sampling off).
WAIT_SAMPLE_MARK = "pg_blocking_pids("


def pg_calls_by_role(sql: SqlRunner, roles: Iterable[str]) -> dict[str, int]:
    """Total ``calls`` in pg_stat_statements for each role (0 for a role with none), the wait
    sampler's statements left out."""
    names = list(roles)
    quoted = ", ".join(f"'{name}'" for name in names)
    out = sql(
        "SELECT r.rolname, sum(s.calls) FROM pg_stat_statements s "
        f"JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname IN ({quoted}) "
        f"AND s.query NOT LIKE '%{WAIT_SAMPLE_MARK}%' GROUP BY 1"
    )
    calls = dict.fromkeys(names, 0)
    for line in out.splitlines():
        role, total = line.split("|")
        calls[role] = int(total)
    return calls


def pg_wait_sampling(sql: SqlRunner, role: str) -> tuple[int, float]:
    """(calls, server execution milliseconds) of perf-exporter's wait samples by ``role``."""
    out = sql(
        "SELECT coalesce(sum(s.calls), 0), coalesce(sum(s.total_exec_time), 0) "
        "FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid "
        f"WHERE r.rolname = '{role}' AND s.query LIKE '%{WAIT_SAMPLE_MARK}%'"
    )
    calls, exec_ms = out.split("|")
    return int(calls), float(exec_ms)


class RedisCommandCounter:
    """Counts every command Redis executed, less the INFO calls this counter made itself."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._own_calls = 0
        #: microseconds of Redis time per command at the last snapshot (``usec``)
        self.usec: dict[str, int] = {}
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
        self.usec = {
            name.removeprefix("cmdstat_"): int(value.get("usec", 0))
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
