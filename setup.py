"""Packaging beyond pyproject.toml: ship the committed top-level files inside the package.

Rules, dashboards, runbooks and example deployments live once at the top of the repository;
each directory listed in ``exporter.share.SOURCES`` is mapped to a subpackage of
``exporter.share`` here, so the wheel carries them without a second committed copy.
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import find_packages, setup

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exporter.share import SOURCES

shared = {f"exporter.share.{name}": repo_dir for name, (repo_dir, _) in SOURCES.items()}
setup(
    packages=[*find_packages(include=["exporter*"]), *shared],
    package_dir=shared,
    package_data={f"exporter.share.{name}": [pattern] for name, (_, pattern) in SOURCES.items()},
)
