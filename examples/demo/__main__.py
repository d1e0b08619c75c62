"""``python -m examples.demo`` (``make demo``): the whole picture on this machine in a minute.

Starts PostgreSQL with pg_stat_statements, Redis, PgBouncer, the example FastAPI app under
load, perf-exporter watching all of them, Prometheus with our recording and alert rules and
Alertmanager, all on free 127.0.0.1 ports; prints where to look; Ctrl-C (or SIGTERM) stops
everything and removes its files. ``--duration SECONDS`` stops by itself (the suite's test).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import urllib.request
from types import FrameType
from typing import Any

from examples.demo.stack import Stack


class Stop(Exception):
    """SIGTERM, turned into an exception so the teardown runs as for Ctrl-C."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def status_line(stack: Stack, started: float) -> str:
    """One line from /summary: the score, the app's cache, slow statements, blocking."""
    try:
        with urllib.request.urlopen(f"{stack.daemon.url}/summary", timeout=5) as resp:
            summary: dict[str, Any] = json.loads(resp.read())
    except OSError as exc:
        return f"[{time.monotonic() - started:5.0f} s] /summary did not answer: {exc}"
    ratios = [
        f"{row['labels'].get('namespace')} {row['display']}"
        for row in summary["signals"]
        if row["signal"] == "app_cache_hit_ratio" and row["value"] is not None
    ]
    return (
        f"[{time.monotonic() - started:5.0f} s] score {summary['score']} | app cache hit: "
        f"{', '.join(ratios) or 'waiting'} | slow statements {len(summary['slow_statements'])}"
        f" | blocking chains {len(summary['blocking'])}"
    )


def run(stack: Stack, duration: float | None) -> int:
    began = time.monotonic()
    say("Starting the perf-exporter demo (PostgreSQL, Redis, PgBouncer, app, Prometheus ...)")
    say(f"Files: {stack.base} (removed on exit)")
    stack.start()
    say(f"Everything is up after {time.monotonic() - began:.1f} s. Open:")
    for name, url in stack.urls.items():
        say(f"  {name:<18} {url}")
    say("Ctrl-C stops everything." if duration is None else f"Stopping after {duration:g} s.")
    seen = 0
    next_status = time.monotonic() + 10
    deadline = None if duration is None else time.monotonic() + duration
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.5)
        dead = stack.dead()
        if dead is not None:
            say(f"demo: {dead} exited on its own; stopping everything.")
            return 1
        for receiver, payload in stack.webhook.received[seen:]:
            for alert in payload.get("alerts", []):
                labels = alert["labels"]
                say(
                    f"  alert {alert['status']}: {labels.get('alertname')} "
                    f"({labels.get('severity')}, to {receiver})"
                )
        seen = len(stack.webhook.received)
        if time.monotonic() >= next_status:
            say(status_line(stack, began))
            next_status += 15
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__)
    parser.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_stop)
    # Ctrl-C (SIGINT) stops the demo even when it was started with SIGINT ignored, as every
    # command run in the background by a non-interactive shell is (``make test &``)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stack = Stack(say)
    code = 0
    try:
        code = run(stack, args.duration)
    except (KeyboardInterrupt, Stop):
        say("")
    except Exception as exc:
        say(f"demo: could not start everything: {exc}")
        code = 1
    finally:
        # a second Ctrl-C must not cut the teardown short and leave servers behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("Stopping everything and removing the demo's files ...")
        stack.close()
        say("Done.")
    return code


if __name__ == "__main__":
    sys.exit(main())
