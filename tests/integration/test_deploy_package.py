"""``python -m build`` makes an sdist and, from it, a wheel that installs into a clean venv and
runs as an unprivileged user: ``--version``, ``--check-config`` on every example config, and
``mixin --out`` writing the shipped rules and dashboards without the generator's dependency."""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from exporter import __version__
from exporter.share import SOURCES
from tests.support.deploy import (
    ROOT,
    as_nobody,
    clean_venv,
    load_yaml,
    password_files,
    run,
    world_readable_dir,
)

pytestmark = pytest.mark.integration

EXAMPLE_CONFIGS = sorted(
    str(p.relative_to(ROOT))
    for p in [
        *(ROOT / "examples/config").glob("*.yml"),
        ROOT / "examples/systemd/perf-exporter.yml",
    ]
)


@dataclass
class Installed:
    dist: Path
    wheel: Path
    bin: Path
    share: Path


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    base = world_readable_dir("perf-wheel-")
    dist = base / "dist"
    built = run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("perf_exporter-*.whl")
    assert len(list(dist.glob("perf_exporter-*.tar.gz"))) == 1
    bin_dir = clean_venv(base / "venv")
    pip = run([str(bin_dir / "pip"), "install", "--quiet", str(wheel)], timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    # an operator's install need not carry the dashboard generator's library: uninstalled here,
    # whatever the packaging says about it, so nothing below can lean on it
    run([str(bin_dir / "pip"), "uninstall", "--yes", "grafana-foundation-sdk"])
    # from /, not the checkout, so that the installed package is the one imported
    site = run(
        [str(bin_dir / "python"), "-c", "import exporter.share as s; print(s.__file__)"], cwd="/"
    )
    assert site.returncode == 0, site.stderr
    yield Installed(dist, wheel, bin_dir, Path(site.stdout.strip()).parent)


def test_installed_wheel_reports_its_version_as_nobody(installed: Installed) -> None:
    result = as_nobody([str(installed.bin / "perf-exporter"), "--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"perf-exporter {__version__}"


@pytest.mark.parametrize("rel", EXAMPLE_CONFIGS)
def test_installed_wheel_accepts_every_example_config_as_nobody(
    installed: Installed, rel: str
) -> None:
    # the copy inside the installed package: what an operator starts from
    shipped = installed.share / SHIPPED_DIRS[str(Path(rel).parent)] / Path(rel).name
    assert shipped.read_bytes() == (ROOT / rel).read_bytes()
    secrets = password_files(load_yaml(shipped))
    result = as_nobody(
        [str(installed.bin / "perf-exporter"), "--check-config", "--config.file", str(shipped)],
        secrets=secrets,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("configuration OK: ")


def _config_maps() -> list[tuple[str, str]]:
    return [
        (path.name, doc["metadata"]["name"])
        for path in sorted((ROOT / "examples/kubernetes").glob("*.yml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == "ConfigMap"
    ]


@pytest.mark.parametrize(("file_name", "config_map"), _config_maps())
def test_installed_wheel_accepts_the_kubernetes_configmaps_config_as_nobody(
    installed: Installed, file_name: str, config_map: str
) -> None:
    shipped = installed.share / "kubernetes" / file_name
    (doc,) = [
        d
        for d in yaml.safe_load_all(shipped.read_text())
        if d and d["metadata"]["name"] == config_map
    ]
    (text,) = doc["data"].values()
    config = world_readable_dir("perf-k8s-config-") / "perf-exporter.yml"
    config.write_text(text)
    config.chmod(0o644)
    result = as_nobody(
        [str(installed.bin / "perf-exporter"), "--check-config", "--config.file", str(config)],
        secrets=password_files(yaml.safe_load(text)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("configuration OK: ")


SHIPPED_DIRS = {repo_dir: name for name, (repo_dir, _) in SOURCES.items()}


def test_wheel_carries_the_committed_operator_files(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = {
            name: wheel.read(name)
            for name in wheel.namelist()
            if name.count("/") == 3 and name.startswith("exporter/share/")
        }
    expected = {
        f"exporter/share/{name}/{path.name}": path.read_bytes()
        for name, (repo_dir, pattern) in SOURCES.items()
        for path in (ROOT / repo_dir).glob(pattern)
    }
    assert sorted(shipped) == sorted(expected)
    for name, content in expected.items():
        assert shipped[name] == content, f"{name} differs from the committed file"
    for needed in (
        "alerts/perf-exporter.rules.yml",
        "alerts/recording.rules.yml",
        "alerts/alertmanager.example.yml",
        "dashboards/overview.json",
        "docs/runbooks.md",
        "config/full.yml",
        "systemd/perf-exporter.service",
        "kubernetes/prometheusrule.yml",
    ):
        assert f"exporter/share/{needed}" in shipped, needed


@pytest.mark.parametrize("config", [None, "minimal.yml"], ids=["no-config", "no-thresholds"])
def test_installed_mixin_writes_the_shipped_files_without_the_generator(
    installed: Installed, config: str | None
) -> None:
    out = world_readable_dir("perf-mixin-out-")
    out.chmod(0o777)
    args = [] if config is None else ["--config", str(installed.share / "config" / config)]
    result = as_nobody([str(installed.bin / "perf-exporter"), "mixin", *args, "--out", str(out)])
    assert result.returncode == 0, result.stdout + result.stderr
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    committed = {
        f"{repo_dir}/{p.name}"
        for repo_dir, pattern in SOURCES.values()
        for p in (ROOT / repo_dir).glob(pattern)
    }
    assert written == committed
    for rel in committed:
        assert (out / rel).read_bytes() == (ROOT / rel).read_bytes(), rel
    assert len(list((out / "dashboards").glob("*.json"))) == 5
