"""Command line: ``perf-exporter`` / ``python -m exporter``.

Exit codes: 0 clean stop or valid config, 1 runtime failure (e.g. the port is taken),
2 bad configuration or bad flags. Errors are one sentence each on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporter import __version__, lean, logs
from exporter import config as config_module
from exporter.collectors import COLLECTORS
from exporter.config import DEFAULT_LISTEN_ADDRESS, ConfigError

DESCRIPTION = """\
Samples cache hit rate (PostgreSQL, Redis, your app's cache namespaces), pool usage (PostgreSQL
connections, PgBouncer, your app's asyncpg pools), query latency and system resources on a
schedule, and serves them to Prometheus from memory: scrapes never touch your databases.

Settings come from flags, then PERF_EXPORTER_* environment variables, then the YAML config file,
then defaults. Without a config file the host is sampled and PostgreSQL (DATABASE_URL or
127.0.0.1:5432) and Redis (REDIS_URL or 127.0.0.1:6379) are tried.

Endpoints: /metrics (Prometheus text, OpenMetrics, gzip), /summary (JSON), / (HTML),
/healthz. Signals: SIGHUP reloads the config file, SIGTERM/SIGINT stop.
"""

EPILOG = """\
exit codes: 0 ok, 1 runtime failure, 2 invalid configuration or flags
"""


class _Parser(argparse.ArgumentParser):
    """Describes each ``--collector.<name>`` flag only when help is printed.

    A description is the first line of the collector's docstring, and reading it imports the
    collector's module with its driver (asyncpg, redis-py: 12 MB together): a daemon watching
    only some kinds of source must not load the others just to parse its flags.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.collector_flags: dict[str, argparse.Action] = {}

    def format_help(self) -> str:
        for name, action in self.collector_flags.items():
            cls = COLLECTORS[name]
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else name
            action.help = f"enable the {name} collector: {doc}"
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="perf-exporter",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        metavar="PATH",
        type=Path,
        help="YAML configuration file (env PERF_EXPORTER_CONFIG_FILE)",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="ADDR",
        help=f"address to serve on, host:port or :port (default {DEFAULT_LISTEN_ADDRESS})",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        type=Path,
        help="exporter-toolkit web config (TLS, basic auth)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=["debug", "info", "warn", "error"],
        help="log level (default info)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=["logfmt", "json"],
        help="log format (default logfmt)",
    )
    for name in sorted(COLLECTORS):
        parser.collector_flags[name] = parser.add_argument(
            f"--collector.{name}",
            dest=f"collector_{name}",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=f"enable the {name} collector",
        )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print a summary and exit (0 valid, 2 invalid)",
    )
    parser.add_argument("--version", action="version", version=f"perf-exporter {__version__}")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, object]:
    """The flags that were given, as dotted config keys (flags beat env and file)."""
    out: dict[str, object] = {}
    if args.listen_address is not None:
        out["web.listen_address"] = args.listen_address
    if args.web_config_file is not None:
        out["web.config_file"] = str(args.web_config_file)
    if args.log_level is not None:
        out["log.level"] = args.log_level
    if args.log_format is not None:
        out["log.format"] = args.log_format
    for name in COLLECTORS:
        value = getattr(args, f"collector_{name}")
        if value is not None:
            out[f"collectors.{name}.enabled"] = value
    return out


#: The generator-only dependency, and the extra that installs it.
MIXIN_SDK = "grafana_foundation_sdk"
MIXIN_INSTALL = "pip install 'perf-exporter[mixin]'"


def _error(lines: Sequence[str]) -> None:
    for line in lines:
        print(f"perf-exporter: {line}", file=sys.stderr)  # noqa: T201 - CLI output


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["mixin"]:
        # python -m exporter mixin [--config FILE] --out DIR: generate rules and dashboards;
        # an installed package writes out the files it ships when no thresholds change them
        from exporter.share import mixin_from_package

        shipped = mixin_from_package(argv[1:])
        if shipped is not None:
            return shipped
        try:
            from exporter.mixin.generate import main as mixin_main
        except ModuleNotFoundError as exc:
            # the dashboard SDK is an extra: the daemon's own install does not carry it
            if (exc.name or "").partition(".")[0] != MIXIN_SDK:
                raise
            _error([f"the mixin generator needs {MIXIN_SDK}; install it with: {MIXIN_INSTALL}"])
            return 2
        return mixin_main(argv[1:])
    args = build_parser().parse_args(argv)
    # before anything loads aiohttp (the web config's checks use it), see lean.py
    lean.import_web()
    from exporter.webconfig import load_web_config

    path = args.config_file
    if path is None and os.environ.get("PERF_EXPORTER_CONFIG_FILE"):
        path = Path(os.environ["PERF_EXPORTER_CONFIG_FILE"])
    overrides = overrides_from(args)
    try:
        config = config_module.load(path, overrides)
        # the summary's thresholds are part of the config: bad ones stop the start like any key
        from exporter.mixin.thresholds import Thresholds

        Thresholds.from_overrides(config.thresholds)
        web_config = (
            None if config.web.config_file is None else load_web_config(config.web.config_file)
        )
    except ConfigError as exc:
        _error(["invalid configuration:", *(f"  {p}" for p in exc.problems)])
        return 2
    except Exception as exc:  # a bug of ours: one line, no traceback that could quote the input
        _error(
            [
                f"cannot read the configuration ({type(exc).__name__} in perf-exporter, "
                "please report it with the shape of the setting that caused it)"
            ]
        )
        return 2
    if args.check_config:
        from exporter.scheduler import build_jobs

        jobs = build_jobs(config)
        print(  # noqa: T201 - CLI output
            f"configuration OK: {len(jobs)} jobs ("
            + ", ".join(f"{j.collector_name}/{j.target} every {j.interval:g}s" for j in jobs)
            + ")"
        )
        if web_config is not None:
            print(  # noqa: T201 - CLI output
                f"web config OK: TLS {'on' if web_config.tls_server_config else 'off'}, "
                f"{len(web_config.basic_auth_users)} basic-auth users, open paths: "
                + (", ".join(web_config.unauthenticated_paths) or "none")
            )
        return 0
    logs.configure(config.log.level, config.log.format)
    from exporter.daemon import Daemon, ListenError

    try:
        return asyncio.run(Daemon(config, path, overrides, web_config).run())
    except ListenError as exc:
        _error([str(exc)])
        return 1
    except KeyboardInterrupt:
        return 0
