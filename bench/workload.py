"""The load the bench puts on its own PostgreSQL and Redis before measuring.

PostgreSQL: ``pgbench -i`` at a small scale, a tpcb-like pgbench run, and a pgbench script of
generated statements over tables of different shapes, so that ``pg_stat_statements`` holds a
couple of thousand distinct entries (a top-N query then has real work to do).

Redis: keys ``cache:<namespace>:<hash>`` in the reference application's seven namespaces, then
a GET mix of about 80 % hits. TTLs keep the application's ordering but are lengthened by
``TTL_EXTENSION`` seconds so that no key expires during the run.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from examples.namespaces import NAMESPACES

#: Share of keys per namespace and typical value size in bytes.
_NAMESPACE_MIX: dict[str, tuple[float, int]] = {
    "api_response": (0.30, 600),
    "search_results": (0.15, 900),
    "budget_status": (0.05, 120),
    "llm_response": (0.10, 2000),
    "user_session": (0.20, 300),
    "vector_search": (0.15, 1200),
    "system_stats": (0.05, 200),
}
TTL_EXTENSION = 3600
HIT_SHARE = 0.8

#: Roles the exporters log in as, so pg_stat_statements tells their statements apart.
PG_ROLES = ("bench_perf", "bench_pgexp")


@dataclass(frozen=True)
class Workload:
    """How much load to generate (the quick mode shrinks every number)."""

    pgbench_scale: int
    pgbench_seconds: int
    distinct_statements: int
    shape_tables: int
    redis_keys: int
    redis_gets: int


FULL = Workload(
    pgbench_scale=5,
    pgbench_seconds=8,
    distinct_statements=2000,
    shape_tables=40,
    redis_keys=40_000,
    redis_gets=20_000,
)
QUICK = Workload(
    pgbench_scale=1,
    pgbench_seconds=1,
    distinct_statements=200,
    shape_tables=8,
    redis_keys=3_000,
    redis_gets=2_000,
)


def shape_statements(tables: int, count: int, seed: int = 15) -> tuple[list[str], list[str]]:
    """DDL for ``tables`` tables of 3-10 columns and ``count`` statements that normalise apart.

    Constants are normalised away by pg_stat_statements, so statements differ in their select
    list (columns and order), the predicate column and operator, and ORDER BY / LIMIT.
    """
    rng = random.Random(seed)
    widths = [3 + (i * 7) % 8 for i in range(tables)]
    ddl = []
    for i, width in enumerate(widths):
        cols = ", ".join(f"c{j} int" for j in range(width))
        values = ", ".join(f"(g * {j + 3}) % 97" for j in range(width))
        ddl.append(f"CREATE TABLE shape_{i} ({cols})")
        ddl.append(f"INSERT INTO shape_{i} SELECT {values} FROM generate_series(1, 200) g")
    statements: list[str] = []
    seen: set[tuple[object, ...]] = set()
    operators = ("=", "<", ">", "<=", ">=", "<>")
    attempts = 0
    while len(statements) < count and attempts < count * 50:
        attempts += 1
        table = rng.randrange(tables)
        width = widths[table]
        picked = tuple(rng.sample(range(width), rng.randint(1, width)))
        where_col, operator = rng.randrange(width), rng.choice(operators)
        order_col = rng.randrange(width) if rng.random() < 0.5 else None
        shape = (table, picked, where_col, operator, order_col)
        if shape in seen:
            continue
        seen.add(shape)
        select = ", ".join(f"c{j}" for j in picked)
        text = (
            f"SELECT {select} FROM shape_{table} WHERE c{where_col} {operator} {rng.randint(0, 96)}"
        )
        if order_col is not None:
            text += f" ORDER BY c{order_col} LIMIT {rng.randint(1, 50)}"
        statements.append(text + ";")
    return ddl, statements


def _pgbench(port: int, *args: str, timeout: float = 120) -> None:
    subprocess.run(
        ["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", *args, "postgres"],
        check=True,
        capture_output=True,
        timeout=timeout,
    )


def load_postgres(sql: Any, port: int, workload: Workload, workdir: Path) -> dict[str, Any]:
    """Create the exporters' roles, run pgbench and the distinct statements; return facts.

    ``sql`` runs one statement as the superuser (``PostgresServer.sql``).
    """
    for role in PG_ROLES:
        sql(f"CREATE ROLE {role} LOGIN IN ROLE pg_monitor")
    _pgbench(port, "-i", "-q", "-s", str(workload.pgbench_scale))
    _pgbench(port, "-n", "-c", "4", "-j", "2", "-T", str(workload.pgbench_seconds))
    ddl, statements = shape_statements(workload.shape_tables, workload.distinct_statements)
    sql(";\n".join(ddl))
    script = workdir / "shapes.sql"
    script.write_text("\n".join(statements) + "\n")
    _pgbench(port, "-n", "-c", "2", "-j", "2", "-t", "1", "-f", str(script))
    entries = int(sql("SELECT count(*) FROM pg_stat_statements"))
    return {
        "pgbench_scale": workload.pgbench_scale,
        "pgbench_seconds": workload.pgbench_seconds,
        "generated_statements": len(statements),
        "pg_stat_statements_entries": entries,
    }


def _key(namespace: str, n: int) -> str:
    digest = hashlib.sha256(f"{namespace}:{n}".encode()).hexdigest()[:24]
    return f"cache:{namespace}:{digest}"


def load_redis(url: str, workload: Workload, seed: int = 7) -> dict[str, Any]:
    """Fill the seven namespaces, then GET a mix of about 80 % hits; return the counts seen."""
    rng = random.Random(seed)
    client = redis.Redis.from_url(url)
    per_namespace = {
        ns: max(1, int(workload.redis_keys * share)) for ns, (share, _) in _NAMESPACE_MIX.items()
    }
    try:
        pipe = client.pipeline(transaction=False)
        queued = 0
        for namespace, count in per_namespace.items():
            size = _NAMESPACE_MIX[namespace][1]
            ttl = NAMESPACES[namespace] + TTL_EXTENSION
            for n in range(count):
                value = rng.randbytes(max(16, int(size * rng.uniform(0.5, 1.5))))
                pipe.set(_key(namespace, n), value, ex=ttl)
                queued += 1
                if queued % 1000 == 0:
                    pipe.execute()
        pipe.execute()
        before = client.info("stats")
        namespaces = list(per_namespace)
        for n in range(workload.redis_gets):
            namespace = rng.choice(namespaces)
            existing = per_namespace[namespace]
            index = rng.randrange(existing) if rng.random() < HIT_SHARE else existing + n
            pipe.get(_key(namespace, index))
            if n % 1000 == 999:
                pipe.execute()
        pipe.execute()
        after = client.info("stats")
        hits = int(after["keyspace_hits"]) - int(before["keyspace_hits"])
        misses = int(after["keyspace_misses"]) - int(before["keyspace_misses"])
        return {
            "redis_keys": int(client.dbsize()),
            "redis_keys_per_namespace": per_namespace,
            "redis_gets": hits + misses,
            "redis_hit_ratio": round(hits / max(1, hits + misses), 3),
        }
    finally:
        client.close()


def workload_facts(workload: Workload) -> dict[str, Any]:
    return asdict(workload)
