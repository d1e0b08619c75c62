"""The operator's files the package ships: rules, dashboards, runbooks and example deployments.

They are committed once, at the top of the repository (``alerts/``, ``dashboards/``, ...), and
``setup.py`` maps those directories into this package when a wheel is built. An installed
package therefore finds them here; a source checkout finds them at the top of the tree.
``perf-exporter mixin --out DIR`` writes them out under the same relative paths.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

#: shipped subpackage -> (directory in the repository, the files of it that ship)
SOURCES: dict[str, tuple[str, str]] = {
    "alerts": ("alerts", "*.yml"),
    "dashboards": ("dashboards", "*.json"),
    "docs": ("docs", "runbooks.md"),
    "config": ("examples/config", "*.yml"),
    "systemd": ("examples/systemd", "perf-exporter.*"),
    "kubernetes": ("examples/kubernetes", "*.yml"),
}

_HERE = Path(__file__).resolve().parent
_CHECKOUT = _HERE.parents[1]


def installed() -> bool:
    """True when the files sit inside the package (a wheel install), not only in a checkout."""
    return all((_HERE / name).is_dir() for name in SOURCES)


def shipped_files() -> dict[str, Path]:
    """Every shipped file: its path relative to the repository root -> where it is now."""
    files: dict[str, Path] = {}
    for name, (repo_dir, pattern) in SOURCES.items():
        where = _HERE / name if installed() else _CHECKOUT / repo_dir
        for path in sorted(where.glob(pattern)):
            files[f"{repo_dir}/{path.name}"] = path
    return files


def write_shipped(out: Path) -> int:
    """Copy every shipped file under ``out``; returns how many were written."""
    files = shipped_files()
    for rel, path in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return len(files)


def mixin_from_package(argv: Sequence[str]) -> int | None:
    """``mixin --out DIR`` of an installed package without custom thresholds: copy, no generator.

    Returns the exit code, or None when the generator must run instead: custom thresholds, a
    source checkout (where ``make mixin`` regenerates the committed files), or arguments the
    generator's own parser should judge and report.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--out", type=Path)
    args, rest = parser.parse_known_args(list(argv))
    if rest or args.out is None or not installed():
        return None
    if args.config is not None:
        from exporter.config import ConfigError, read_file

        try:
            if read_file(args.config).get("thresholds"):
                return None
        except ConfigError:
            return None  # the generator reports the problem in its own words
    count = write_shipped(args.out)
    print(f"wrote {count} files under {args.out}")  # noqa: T201 - CLI output
    return 0
