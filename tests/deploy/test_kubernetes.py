"""deploy/kubernetes/: every document is valid for the Kubernetes versions we support
(strict: unknown fields are errors), and holds the values the service relies on."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import DEPLOY
from tests.deploy.conftest import SERVICE

MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
# Native gRPC probes are GA since 1.27; the oldest release still supported and the newest.
KUBERNETES_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
SHUTDOWN_GRACE_DEFAULT = 10.0
EXIT_AFTER_GRACE = 2.0  # the server exits within grace + 2 s


def documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def the(kind: str, name: str | None = None) -> dict[str, Any]:
    """The one manifest of this kind (and name) in the directory."""
    found = [
        document
        for path in MANIFESTS
        for document in documents(path)
        if document["kind"] == kind and name in (None, document["metadata"]["name"])
    ]
    assert len(found) == 1, f"{len(found)} {kind} manifests named {name}"
    return found[0]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    (only,) = containers
    return only


def env(workload: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(workload).get("env", [])}


def selects(selector: dict[str, str], workload: dict[str, Any]) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_manifest_is_valid(path: Path, version: str) -> None:
    for document in documents(path):
        kubernetes_validate.validate(document, version, strict=True)


def test_validation_rejects_a_misspelt_field() -> None:
    """The control for the test above: a typo in a probe is an error, not ignored."""
    deployment = copy.deepcopy(the("Deployment"))
    probe = container(deployment)["readinessProbe"]["grpc"]
    probe["servce"] = probe.pop("service")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_expected_objects_are_there() -> None:
    kinds = sorted(document["kind"] for path in MANIFESTS for document in documents(path))
    assert kinds == ["ConfigMap", "Deployment", "Job", "PodDisruptionBudget", "Service", "Service"]


def test_probes_use_grpc_health_liveness_and_readiness_names() -> None:
    serving = container(the("Deployment"))
    assert serving["livenessProbe"]["grpc"] == {"port": 50051, "service": ""}
    assert serving["startupProbe"]["grpc"] == {"port": 50051, "service": ""}
    assert serving["readinessProbe"]["grpc"] == {"port": 50051, "service": SERVICE}


def test_termination_grace_outlasts_pre_stop_and_shutdown_grace() -> None:
    deployment = the("Deployment")
    command = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    shutdown_grace = float(env(deployment).get("ORGSERVICE_SHUTDOWN_GRACE", SHUTDOWN_GRACE_DEFAULT))
    needed = pre_stop + shutdown_grace + EXIT_AFTER_GRACE
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > needed


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_containers_run_locked_down(kind: str) -> None:
    workload = the(kind)
    assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    security = container(workload)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = container(workload)["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_replicas_are_spread_and_share_their_secrets() -> None:
    deployment = the("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] >= 2
    assert pod.get("topologySpreadConstraints") or pod.get("affinity", {}).get("podAntiAffinity")
    # Page tokens must verify on every replica: the secret comes from one Secret.
    sources = container(deployment)["envFrom"]
    assert {"secretRef": {"name": "orgservice"}} in sources
    config_map = the("ConfigMap")
    assert {"configMapRef": {"name": config_map["metadata"]["name"]}} in sources
    assert "ORGSERVICE_JWKS_URL" in config_map["data"]


def test_ports_match_the_service_and_the_metrics_setting() -> None:
    deployment = the("Deployment")
    ports = {port["name"]: port["containerPort"] for port in container(deployment)["ports"]}
    assert ports == {"grpc": 50051, "metrics": 9464}
    assert env(deployment)["ORGSERVICE_METRICS_PORT"] == "9464"
    assert env(deployment)["ORGSERVICE_PORT"] == "50051"

    service = the("Service", "orgservice")
    assert service["spec"]["type"] == "ClusterIP"
    assert selects(service["spec"]["selector"], deployment)
    by_name = {port["name"]: port for port in service["spec"]["ports"]}
    assert by_name["grpc"]["appProtocol"] == "grpc"
    assert by_name["grpc"]["targetPort"] == "grpc"
    assert by_name["metrics"]["port"] == 9464


def test_disruption_budget_covers_the_deployment() -> None:
    deployment = the("Deployment")
    budget = the("PodDisruptionBudget")
    assert selects(budget["spec"]["selector"]["matchLabels"], deployment)
    assert budget["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]


def test_migration_job_migrates_outside_the_service() -> None:
    job = the("Job")
    assert container(job)["args"] == ["migrate"]
    assert container(job)["image"] == container(the("Deployment"))["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # Its pods are no endpoints of the Service and do not count against the budget.
    assert not selects(the("Service", "orgservice")["spec"]["selector"], job)
    assert not selects(the("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], job)
