"""Least privilege, proven by running: the chart installed with one replica runs the
operator as the chart's ServiceAccount, which drives every kind through its workers without
a single ``forbidden`` in its log — a Dataset and a Subscription to Ready, a TrainingJob to
its running pod, a ModelConversion to its failed Job (its source is no graph), a Model
registered from a template, an InferenceService's Deployment, Service and failing pods —
and may not do what it has no business doing.

The release gets a cluster of its own (a second local cluster, its own slot), so its
operator — watching all namespaces like a real installation — never meets the objects of
the tests that run the operator in-process against the session's cluster.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

import clusterkit
from clusterkit import REPO, Kube, wait_for
from datagen import tar_tree, write_digits
from localcluster import cluster

pytestmark = pytest.mark.cluster

CHART = REPO / "charts" / "kubearts"
RELEASE_NAMESPACE = "kubearts-system"
WORK = "work"
API = "kubearts.io/v1alpha1"
READY_TIMEOUT = 300


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    handle = clusterkit.start(tmp_path_factory.mktemp("rbac") / "cluster")
    try:
        yield handle
    finally:
        cluster.down(handle.root)


@pytest.fixture(scope="module")
def operator(own_cluster: Kube) -> Iterator[dict[str, Any]]:
    """The chart installed with its operator running; yields the operator's pod."""
    own_cluster.kubectl("create", "namespace", RELEASE_NAMESPACE)
    name = f"kubearts-{uuid.uuid4().hex[:6]}"
    with helm.Config(kubeconfig_path=own_cluster.kubeconfig, namespace=RELEASE_NAMESPACE) as cfg:
        cfg.install(CHART, name, {"replicaCount": 1}, namespace=RELEASE_NAMESPACE, timeout=180)

        def ready_pod() -> dict[str, Any] | None:
            pods = own_cluster.get(
                "pods", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/component=operator"
            )["items"]
            for pod in pods:
                conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
                if conditions.get("Ready") == "True":
                    return pod  # type: ignore[no-any-return]
            return None

        yield wait_for(ready_pod, 180, "the chart's operator pod to be Ready", interval=1)


def test_the_operator_runs_as_its_service_account_without_a_forbidden_call(
    own_cluster: Kube, operator: dict[str, Any], tmp_path: Path
) -> None:
    account = operator["spec"]["serviceAccountName"]
    assert account != "default"
    own_cluster.kubectl("create", "namespace", WORK)
    write_digits(tmp_path / "data" / "digits")
    (tmp_path / "served").mkdir()
    tar_tree(tmp_path / "served" / "digits.tar.gz", tmp_path / "data")
    with own_cluster.serve(tmp_path / "served") as base:
        own_cluster.apply(
            {
                "apiVersion": "kubearts.io/v1alpha1",
                "kind": "Dataset",
                "metadata": {"name": "digits"},
                "spec": {
                    "source": {"uri": f"{base}/digits.tar.gz"},
                    "versions": [{"name": "v1", "trainRatio": 0.8}],
                },
            },
            WORK,
        )
        own_cluster.apply(
            {
                "apiVersion": "kubearts.io/v1alpha1",
                "kind": "Subscription",
                "metadata": {"name": "resnet"},
                "spec": {"gallery": "default", "algorithm": "resnet_v1_50", "version": "latest"},
            },
            WORK,
        )
        own_cluster.wait_condition("kasub", "resnet", "-n", WORK, type="Ready", timeout=120)
        own_cluster.wait_condition(
            "kads", "digits", "-n", WORK, type="Ready", timeout=READY_TIMEOUT
        )
    drive_the_other_kinds(own_cluster)
    log = own_cluster.kubectl("logs", operator["metadata"]["name"], "-n", RELEASE_NAMESPACE).stdout
    assert "forbidden" not in log.lower(), [
        line for line in log.splitlines() if "forbidden" in line.lower()
    ][:5]


def drive_the_other_kinds(kube: Kube) -> None:
    """Each kind's worker path once, cheaply: nothing here trains to the end."""
    location = kube.get("kads", "digits", "-n", WORK)["status"]["location"]
    workspace = location.split("/datasets/")[0]
    om = {"uri": f"{workspace}/imports/digits-om", "template": "ARM-Ascend"}
    imports = kube.claim_folder(WORK, f"{workspace}/imports/digits-om")
    imports.mkdir(parents=True)
    (imports / "digits.om").write_bytes(b"\x00om" * 100)
    labels = [str(i) for i in range(10)]
    config = {"model_algorithm": "image_classification", "model_type": "Ascend", "labels": labels}
    (imports / "config.json").write_text(json.dumps(config), encoding="utf-8")
    for kind, name, spec in (
        (
            "TrainingJob",
            "resnet",
            {
                "algorithm": {"subscription": "resnet"},
                "inputs": [{"dataset": "digits", "version": "v1"}],
                "hyperparameters": {"epochs": 1, "image_size": 32},
            },
        ),
        (
            "ModelConversion",
            "not-a-graph",
            {
                "source": {"uri": f"{workspace}/imports/digits-om"},
                "template": "TF-FrozenGraph-To-ONNX",
            },
        ),
        (
            "Model",
            "digits",
            {
                "versions": [
                    {
                        "version": "1.0.0",
                        "source": om,
                        "format": "om",
                    }
                ]
            },
        ),
        (
            "InferenceService",
            "digits",
            {"model": {"name": "digits", "version": "1.0.0"}, "resources": {"pool": "ascend310"}},
        ),
    ):
        manifest = {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}
        kube.apply(manifest, WORK)

    def training_pod_followed() -> bool | None:
        # Said once the operator has seen the pod run and read its log for progress.
        running = kube.condition("katj", "resnet", "-n", WORK, type="Running") or {}
        followed = running.get("message") == "the training pod starts"
        return True if followed or running.get("reason") == "JobRunning" else None

    wait_for(training_pod_followed, READY_TIMEOUT, "the training pod to be followed")
    kube.wait_condition("kaconv", "not-a-graph", "-n", WORK, type="Failed", timeout=READY_TIMEOUT)
    kube.wait_condition("kamodel", "digits", "-n", WORK, type="Ready", timeout=READY_TIMEOUT)
    kube.wait_condition(
        "kaisvc", "digits", "-n", WORK, type="Ready", status="False",
        reason="ModelLoadFailed", timeout=READY_TIMEOUT,
    )  # fmt: skip
    kube.kubectl("delete", "katj", "resnet", "-n", WORK)


@pytest.mark.parametrize(
    ("verb", "resource", "namespace"),
    [
        pytest.param("create", "configmaps", "kube-system", id="write-configmaps-kube-system"),
        pytest.param("update", "configmaps", "kube-system", id="update-configmaps-kube-system"),
        pytest.param("get", "secrets", "kube-system", id="read-secrets-kube-system"),
        pytest.param("list", "secrets", WORK, id="list-secrets"),
        pytest.param("create", "pods", WORK, id="create-pods"),
        pytest.param("delete", "deployments", WORK, id="delete-deployments"),
        pytest.param("update", "services", WORK, id="update-services"),
        pytest.param("delete", "datasets.kubearts.io", WORK, id="delete-datasets"),
    ],
)
def test_the_service_account_may_not(
    own_cluster: Kube, operator: dict[str, Any], verb: str, resource: str, namespace: str
) -> None:
    who = f"system:serviceaccount:{RELEASE_NAMESPACE}:{operator['spec']['serviceAccountName']}"
    answer = own_cluster.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace, f"--as={who}", check=False
    )
    assert answer.stdout.strip() == "no", answer.stdout + answer.stderr
