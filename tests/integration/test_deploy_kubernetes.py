"""The Kubernetes manifests: kubernetes-validate accepts the core kinds, the PrometheusRule is the
generated rule files unchanged and promtool accepts its groups, and the pieces point at each
other (selectors, port names, mounts, secret keys, probes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import mixin_k8s
from tests.support.deploy import ROOT, password_files, run

pytestmark = pytest.mark.integration

K8S = ROOT / "examples/kubernetes"
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
#: the rules select job="perf-exporter": both monitors must produce that job label
JOB = "perf-exporter"


def docs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for _, d in docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return run([str(VALIDATE), "--strict", str(path)], timeout=120)


@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.yml")))
def test_manifest_passes_kubernetes_validate_offline(name: str) -> None:
    result = _validate(K8S / name)
    assert result.returncode == 0, result.stdout + result.stderr
    for file_name, doc in docs():
        if file_name != name:
            continue
        resource = f"{doc['kind'].lower()}/{doc['metadata']['name']}"
        if doc["kind"] in OPERATOR_KINDS:
            # the operator's kinds have no schema there; the tests below check them instead
            assert f"Couldn't find schema for kind {doc['kind']}" in result.stdout
        else:
            assert f"passed for resource {resource}" in result.stdout, result.stdout


def test_kubernetes_validate_rejects_a_misspelt_field(tmp_path: Path) -> None:
    bad = tmp_path / "deployment.yml"
    bad.write_text(
        (K8S / "deployment.yml").read_text().replace("readinessProbe:", "readynessProbe:")
    )
    result = _validate(bad)
    assert result.returncode != 0
    assert "readynessProbe" in result.stdout + result.stderr


def test_every_kind_the_issue_names_is_there() -> None:
    kinds = {d["kind"] for _, d in docs()}
    assert {"Deployment", "Service", "ConfigMap", "Secret"} | OPERATOR_KINDS <= kinds


def test_committed_prometheusrule_is_the_generated_one() -> None:
    assert (K8S / "prometheusrule.yml").read_text() == mixin_k8s.render(ROOT / "alerts"), (
        "examples/kubernetes/prometheusrule.yml is stale: run make mixin"
    )


def test_prometheusrule_holds_every_group_of_the_rule_files() -> None:
    spec = one("PrometheusRule", "perf-exporter")["spec"]
    expected = [
        group
        for path in sorted((ROOT / "alerts").glob("*.rules.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert spec["groups"] == expected
    assert len(expected) >= 2


def test_prometheusrule_groups_pass_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "groups.yml"
    rules.write_text(
        yaml.safe_dump({"groups": one("PrometheusRule", "perf-exporter")["spec"]["groups"]})
    )
    result = run(["/usr/bin/promtool", "check", "rules", str(rules)], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name
    ]
    return found


def _port_names(container: dict[str, Any]) -> set[str]:
    return {p["name"] for p in container["ports"]}


def _config_and_secret_agree(deployment: dict[str, Any], container_name: str) -> None:
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment, container_name)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (config_volume,) = [n for n in mounts if "configMap" in volumes[n]]
    (secret_volume,) = [n for n in mounts if "secret" in volumes[n]]
    config_map = one("ConfigMap", volumes[config_volume]["configMap"]["name"])
    (file_name,) = config_map["data"]
    assert container["args"] == [f"--config.file={mounts[config_volume]}/{file_name}"]
    config = yaml.safe_load(config_map["data"][file_name])
    secret = volumes[secret_volume]["secret"]
    keys = {i["path"] for i in secret.get("items", [])} or set(
        one("Secret", secret["secretName"])["stringData"]
    )
    wanted = {f"{mounts[secret_volume]}/{key}" for key in keys}
    assert password_files(config) <= wanted, (password_files(config), wanted)
    assert password_files(config)
    assert secret["defaultMode"] == 0o400
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
        assert container[probe]["httpGet"]["port"] in _port_names(container)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_deployment_service_and_servicemonitor_point_at_each_other() -> None:
    deployment = one("Deployment", "perf-exporter")
    _config_and_secret_agree(deployment, "perf-exporter")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one("Service", "perf-exporter")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in _port_names(_container(deployment, "perf-exporter"))
    monitor = one("ServiceMonitor", "perf-exporter")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["endpoints"]] == [port["name"]]
    # without a jobLabel the job is the Service's name, which the rules select on
    assert "jobLabel" not in monitor and service["metadata"]["name"] == JOB


def test_sidecar_pods_are_scraped_by_the_podmonitor_as_the_rules_expect() -> None:
    app = one("Deployment", "my-app")
    _config_and_secret_agree(app, "perf-exporter")
    pod_labels = app["spec"]["template"]["metadata"]["labels"]
    monitor = one("PodMonitor", "perf-exporter-sidecars")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pod_labels[monitor["jobLabel"]] == JOB
    (endpoint,) = monitor["podMetricsEndpoints"]
    assert endpoint["port"] in _port_names(_container(app, "perf-exporter"))
    config = yaml.safe_load(one("ConfigMap", "my-app-perf-exporter")["data"]["perf-exporter.yml"])
    assert list(config["targets"]) == ["app"]
