"""A TrainingJob's inputs, on scikit-learn's digits served over http: one on a split version
resolves them (manifests, pinned image, effective hyperparameters) as it starts; one on an
unsplit version fails with a clear reason. The whole flow to predictions is
``test_offline_flow.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kopf.testing import KopfRunner

from clusterkit import REPO, Kube
from datagen import DIGITS_CLASSES, DIGITS_SAMPLES, tar_tree, write_digits
from gallery_configmap import configmap

OPERATOR_NAMESPACE = "kubearts-system"


@pytest.fixture(scope="module")
def digits_url(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("digits")
    write_digits(data / "digits")
    served = tmp_path_factory.mktemp("served")
    tar_tree(served / "digits.tar.gz", data)
    with kube.serve(served) as base:
        yield f"{base}/digits.tar.gz"


@pytest.fixture
def gallery(kube: Kube, kubearts_operator: KopfRunner) -> Iterator[str]:
    """The default gallery under a name of this test's own."""
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    cm = configmap(REPO / "charts/kubearts/files/gallery/default.yaml")
    cm["metadata"] = {"name": f"gallery-{name}", "labels": {"kubearts.io/gallery": name}}
    kube.apply(cm, OPERATOR_NAMESPACE)
    yield name
    kube.kubectl("delete", "configmap", f"gallery-{name}", "-n", OPERATOR_NAMESPACE, check=False)


def training_job(name: str, version: str) -> dict:
    return {
        "apiVersion": "kubearts.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "algorithm": {"subscription": "resnet"},
            "inputs": [{"dataset": "digits", "version": version}],
            # Small: this test checks inputs and the start; test_trainingjobs trains for real.
            "hyperparameters": {"epochs": 1, "batch_size": 64, "image_size": 32},
            "resources": {"pool": "cpu"},
        },
    }


def test_digits_pipeline(kube: Kube, namespace: str, gallery: str, digits_url: str) -> None:
    kube.apply(
        {
            "apiVersion": "kubearts.io/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "digits"},
            "spec": {
                "source": {"uri": digits_url},
                "versions": [
                    {"name": "v1", "trainRatio": 0.8, "seed": 7},
                    {"name": "all", "trainRatio": 1},
                ],
            },
        },
        namespace,
    )
    kube.apply(
        {
            "apiVersion": "kubearts.io/v1alpha1",
            "kind": "Subscription",
            "metadata": {"name": "resnet"},
            "spec": {"gallery": gallery, "algorithm": "resnet_v1_50", "version": "latest"},
        },
        namespace,
    )
    kube.apply(training_job("on-v1", "v1"), namespace)
    kube.apply(training_job("on-unsplit", "all"), namespace)

    kube.wait_condition("kads", "digits", "-n", namespace, type="Ready", timeout=240)
    dataset = kube.get("kads", "digits", "-n", namespace)["status"]
    assert (dataset["sampleCount"], dataset["classCount"]) == (DIGITS_SAMPLES, DIGITS_CLASSES)
    versions = {v["name"]: v for v in dataset["versions"]}
    assert versions["v1"]["trainCount"] + versions["v1"]["evalCount"] == DIGITS_SAMPLES
    assert versions["all"]["evalCount"] == 0

    kube.wait_condition("kasub", "resnet", "-n", namespace, type="Ready", timeout=60)

    failed = kube.wait_condition("katj", "on-unsplit", "-n", namespace, type="Failed", timeout=120)
    assert failed["reason"] == "DatasetVersionNotSplit"
    assert "spec.inputs[0].version" in failed["message"]
    assert "trainRatio" in failed["message"]

    created = kube.wait_condition("katj", "on-v1", "-n", namespace, type="Created", timeout=120)
    assert created["reason"] == "JobCreated"
    job = kube.get("katj", "on-v1", "-n", namespace)["status"]
    assert job["jobName"] == "on-v1-train"
    assert job["hyperparameters"]["epochs"] == 1
    assert job["hyperparameters"]["learning_rate"] > 0  # the schema's default
    (data,) = job["inputs"]
    assert data["trainManifest"].endswith("train.jsonl")
    assert data["evalManifest"].endswith("eval.jsonl")
    assert len(data["classes"]) == DIGITS_CLASSES
