"""The Python perf-exporter runs under in the benchmark: its runtime dependencies and nothing else.

The development venv also holds the test and generator tools, and some of them change what the
daemon loads: redis-py imports OpenTelemetry when it finds it (fastapi, a dev dependency, pulls it
in), and setuptools' and the editable install's ``.pth`` hooks run in every interpreter. A user's
``pip install perf-exporter`` (or the Docker image) has none of that, so the benchmark measures the
daemon the way it ships: in a venv that holds exactly the distributions ``perf-exporter``'s
``Requires-Dist`` reach (no extras), linked from this venv (same versions, offline, in a second),
with the tree's own code on ``sys.path`` (the daemon starts with ``-m exporter`` in the checkout),
compiled to bytecode first as ``pip install`` leaves it (a shell with ``PYTHONDONTWRITEBYTECODE``
set, like this machine's, would otherwise compile the package from source at every start, which
costs the process 1.1 MB).

If a runtime import is missing from ``pyproject.toml``'s dependencies, the daemon fails to start
here: the benchmark doubles as a check of the declared dependencies.
"""

from __future__ import annotations

import compileall
import sys
import venv
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

PROJECT = "perf-exporter"
REPO = Path(__file__).resolve().parent.parent


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def runtime_distributions(project: str = PROJECT) -> list[metadata.Distribution]:
    """Every installed distribution ``project`` needs at run time, itself excluded."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [project]
    while todo:
        dist = metadata.distribution(todo.pop())
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue  # an extra's, or another Python's
            name = _canonical(requirement.name)
            if name not in seen:
                seen[name] = metadata.distribution(requirement.name)
                todo.append(requirement.name)
    return sorted(seen.values(), key=lambda d: _canonical(d.metadata["Name"]))


def _top_entries(dist: metadata.Distribution) -> set[str]:
    """Top-level names a distribution installed into site-packages (packages, modules, .so)."""
    entries = set()
    for file in dist.files or ():
        first = file.parts[0]
        if first not in ("..", "__pycache__") and not first.endswith(".pth"):
            entries.add(first)
    return entries


def product_python(workdir: Path) -> str:
    """The interpreter of ``workdir/product-venv``, made on first use."""
    root = workdir / "product-venv"
    python = root / "bin" / "python"
    if python.exists():
        return str(python)
    compileall.compile_dir(REPO / "exporter", quiet=1)
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = root / "lib" / version / "site-packages"
    for dist in runtime_distributions():
        source = Path(str(dist.locate_file("")))
        for entry in _top_entries(dist):
            target = source / entry
            if target.exists() and not (site / entry).exists():
                (site / entry).symlink_to(target)
    return str(python)


def main() -> int:
    """``python -m bench.product``: list what the daemon's venv holds (a check by hand)."""
    for dist in runtime_distributions():
        print(dist.metadata["Name"], dist.version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
