"""Our PgBouncer console client against psycopg 3's AsyncClientCursor: memory and CPU.

    pip install 'psycopg[binary]'   # not a dependency: only this comparison uses it
    python -m bench.console_clients [--collections 200] [--rounds 3]

Starts a suite-style PostgreSQL and PgBouncer (SCRAM-SHA-256, the stats user), then runs each
client in a fresh interpreter: RSS after ``import asyncio`` (the daemon has it anyway), after
importing the client, after logging in, and after ``--collections`` collections of the six SHOW
commands the collector sends per cycle (wall time and process CPU). Rounds alternate the
clients; the medians are printed. The numbers and the decision are in docs/pgbouncer.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from tests.support.pgbouncer_server import STATS_PASSWORD, PgBouncerServer
from tests.support.servers import PostgresServer

REPO = Path(__file__).resolve().parent.parent

MODULE = str(REPO / "exporter/collectors/pgbouncer_console.py")
COMMANDS = (
    "SHOW POOLS",
    "SHOW STATS",
    "SHOW DATABASES",
    "SHOW LISTS",
    "SHOW CONFIG",
    "SHOW VERSION",
)

# Runs in a fresh interpreter so the import cost is the client's alone.
CHILD = r"""
import asyncio, json, sys, time

def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4

client, dsn, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
commands = json.loads(sys.argv[4])
out = {"base": rss_kib()}
if client == "own":
    # loaded by path: the module alone (stdlib + scramp), not the collectors package around it
    import importlib.util
    spec = importlib.util.spec_from_file_location("console", sys.argv[5])
    console_module = sys.modules["console"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(console_module)
    AdminConsole, ConsoleAddress = console_module.AdminConsole, console_module.ConsoleAddress
else:
    import psycopg
    from psycopg.rows import dict_row
out["imported"] = rss_kib()

async def main():
    if client == "own":
        console = await AdminConsole.connect(ConsoleAddress.from_dsn(dsn))
        async def collect():
            return [await console.query(sql) for sql in commands]
        close = console.close
    else:
        conn = await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, cursor_factory=psycopg.AsyncClientCursor, row_factory=dict_row
        )
        cur = conn.cursor()
        async def collect():
            result = []
            for sql in commands:
                await cur.execute(sql)
                result.append(await cur.fetchall())
            return result
        close = conn.close
    out["connected"] = rss_kib()
    rows = sum(len(r) for r in await collect())
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        await collect()
    out["wall_ms"] = (time.perf_counter() - wall) * 1000 / n
    out["cpu_ms"] = (time.process_time() - cpu) * 1000 / n
    out["after"] = rss_kib()
    out["rows"] = rows
    await close()

asyncio.run(main())
print(json.dumps(out))
"""


def run_child(client: str, dsn: str, collections: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, client, dsn, str(collections), json.dumps(COMMANDS), MODULE],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"the {client} client failed: {done.stderr.strip()[-2000:]}")
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    postgres = PostgresServer(stat_statements=False)
    bouncer = PgBouncerServer(postgres, auth_type="scram-sha-256")
    try:
        dsn = bouncer.dsn(password=STATS_PASSWORD)
        results: dict[str, list[dict[str, float]]] = {"own": [], "psycopg": []}
        for _ in range(args.rounds):
            for client in results:
                results[client].append(run_child(client, dsn, args.collections))
    finally:
        bouncer.close()
        postgres.close()
    print(
        f"{'client':8} {'import KiB':>10} {'login KiB':>10} {'after KiB':>10} "
        f"{'wall ms':>8} {'CPU ms':>7}  (median of {args.rounds}, per collection of 6 SHOWs)"
    )
    for client, runs in results.items():

        def med(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        print(
            f"{client:8} {med('imported') - med('base'):10.0f} "
            f"{med('connected') - med('imported'):10.0f} {med('after') - med('base'):10.0f} "
            f"{med('wall_ms'):8.3f} {med('cpu_ms'):7.3f}"
        )


if __name__ == "__main__":
    main()
