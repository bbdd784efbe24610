"""TrainingJobs on a real control plane: placement on CPU, GPU and Ascend nodes, failures
with the reason lifted from the pod, deadlines, deletion, edits after the start, and one
real training run whose exported model is checked.

The module shares one namespace holding one digits Dataset (split 0.8) and a gallery of its
own: the default gallery's algorithms plus small test algorithms whose "image" is plain
Python (the local cluster runs image ``python`` as ``python3``), so each failure mode is a
program of a few lines rather than a broken trainer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from clusterkit import REPO, Kube, wait_for
from datagen import tar_tree, write_digits

pytestmark = pytest.mark.cluster

OPERATOR_NAMESPACE = "kubearts-system"
DEFAULT_GALLERY = REPO / "charts" / "kubearts" / "files" / "gallery" / "default.yaml"
HYPERPARAMETERS = [{"name": "epochs", "type": "int", "default": 1, "minimum": 1}]


def program(gallery: dict[str, str], source: str) -> dict[str, Any]:
    """A test algorithm: the default ResNet entry whose one version runs ``python -c
    source`` (any pool) instead of the trainer."""
    entry: dict[str, Any] = yaml.safe_load(gallery["algorithm.resnet_v1_50.yaml"])
    version = {
        **entry["versions"][-1],
        "version": "1.0.0",
        "image": "python:3.11-slim",
        "entrypoint": {"command": ["python", "-c", source]},
        "hyperparameters": HYPERPARAMETERS,
    }
    return {**entry, "displayName": "test program", "versions": [version]}


PROGRAMS = {
    "crash": "import sys; print('loading'); print('Traceback: boom', file=sys.stderr); sys.exit(7)",
    "sleeper": "import time; time.sleep(600)",
    # Written, not just reserved: every page of 3 GiB is touched.
    "hog": "import time; hog = b'x' * (3 * 2**30); time.sleep(60)",
}


@pytest.fixture(scope="module")
def workspace(kube: Kube, kubearts_operator: KopfRunner, tmp_path_factory: Any) -> Iterator[str]:
    """A namespace with a Ready digits Dataset (version v1 split 0.8, version all unsplit)
    and the test gallery."""
    name = f"t-training-{uuid.uuid4().hex[:5]}"
    kube.kubectl("create", "namespace", name)
    data = tmp_path_factory.mktemp("digits")
    write_digits(data / "digits")
    served = tmp_path_factory.mktemp("served")
    tar_tree(served / "digits.tar.gz", data)
    gallery: dict[str, str] = yaml.safe_load(DEFAULT_GALLERY.read_text(encoding="utf-8"))
    for key, source in PROGRAMS.items():
        gallery[f"algorithm.{key}.yaml"] = yaml.safe_dump(program(gallery, source))
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"gallery-{name}", "labels": {"kubearts.io/gallery": name}},
            "data": gallery,
        },
        OPERATOR_NAMESPACE,
    )
    with kube.serve(served) as base:
        kube.apply(
            {
                "apiVersion": "kubearts.io/v1alpha1",
                "kind": "Dataset",
                "metadata": {"name": "digits"},
                "spec": {
                    "source": {"uri": f"{base}/digits.tar.gz"},
                    "versions": [
                        {"name": "v1", "trainRatio": 0.8, "seed": 1},
                        {"name": "all", "trainRatio": 1},
                    ],
                },
            },
            name,
        )
        for algorithm in ["resnet_v1_50", "mobilenet_v1", *PROGRAMS]:
            kube.apply(
                {
                    "apiVersion": "kubearts.io/v1alpha1",
                    "kind": "Subscription",
                    "metadata": {"name": algorithm.replace("_", "-")},
                    "spec": {"gallery": name, "algorithm": algorithm, "version": "latest"},
                },
                name,
            )
        kube.wait_condition("kads", "digits", "-n", name, type="Ready", timeout=300)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)
    kube.kubectl("delete", "configmap", f"gallery-{name}", "-n", OPERATOR_NAMESPACE, check=False)


def train(
    kube: Kube,
    namespace: str,
    name: str,
    algorithm: str,
    *,
    pool: str = "cpu",
    count: int = 1,
    flavor: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
    run_policy: dict[str, Any] | None = None,
    version: str = "v1",
) -> None:
    kube.apply(
        {
            "apiVersion": "kubearts.io/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": name},
            "spec": {
                "algorithm": {"subscription": algorithm.replace("_", "-")},
                "inputs": [{"dataset": "digits", "version": version}],
                "hyperparameters": hyperparameters or {},
                "resources": {
                    "pool": pool,
                    "count": count,
                    **({"flavor": flavor} if flavor else {}),
                },
                "runPolicy": run_policy or {},
            },
        },
        namespace,
    )


def pod_of(kube: Kube, namespace: str, job: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        pods = kube.get("pods", "-n", namespace, "-l", f"job-name={job}")["items"]
        return pods[0] if pods and pods[0]["spec"].get("nodeName") else None

    return wait_for(found, 120, f"a scheduled pod of Job {job}")


def test_an_unsplit_version_fails_naming_the_field_and_the_fix(kube: Kube, workspace: str) -> None:
    train(kube, workspace, "on-unsplit", "mobilenet_v1", version="all")
    failed = kube.wait_condition("katj", "on-unsplit", "-n", workspace, type="Failed", timeout=120)
    assert failed["reason"] == "DatasetVersionNotSplit"
    assert "spec.inputs[0].version" in failed["message"]
    assert "trainRatio" in failed["message"]
    assert "jobName" not in kube.get("katj", "on-unsplit", "-n", workspace)["status"]


def test_a_split_version_resolves_the_inputs_as_the_run_starts(kube: Kube, workspace: str) -> None:
    train(kube, workspace, "inputs", "mobilenet_v1", hyperparameters={"epochs": 1})
    created = kube.wait_condition("katj", "inputs", "-n", workspace, type="Created", timeout=120)
    assert created["reason"] == "JobCreated"
    status = kube.get("katj", "inputs", "-n", workspace)["status"]
    kube.kubectl("delete", "katj", "inputs", "-n", workspace, "--wait=false")
    assert status["jobName"] == "inputs-train"
    assert status["hyperparameters"]["epochs"] == 1
    assert status["hyperparameters"]["learning_rate"] > 0  # the schema's default
    (data,) = status["inputs"]
    assert data["trainManifest"].endswith("train.jsonl")
    assert data["evalManifest"].endswith("eval.jsonl")
    assert len(data["classes"]) == 10


@pytest.mark.parametrize(
    ("pool", "node", "resource"),
    [
        pytest.param("gpu", "gpu-0", "nvidia.com/gpu", id="gpu"),
        pytest.param("ascend910", "ascend910-0", "huawei.com/Ascend910", id="ascend910"),
    ],
)
def test_an_accelerator_pool_lands_on_its_node_with_its_request(
    kube: Kube, workspace: str, pool: str, node: str, resource: str
) -> None:
    name = f"on-{pool}"
    train(kube, workspace, name, "sleeper", pool=pool)
    pod = pod_of(kube, workspace, f"{name}-train")
    assert pod["spec"]["nodeName"] == node
    (container,) = pod["spec"]["containers"]
    assert container["resources"]["limits"][resource] == "1"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["KUBEARTS_DEVICE"], env["KUBEARTS_ALLOW_CPU_FALLBACK"]) == (pool, "true")
    kube.wait_condition("katj", name, "-n", workspace, type="Created", timeout=60)


def test_more_gpus_than_any_node_has_is_unschedulable_naming_the_resource(
    kube: Kube, workspace: str
) -> None:
    train(kube, workspace, "too-many-gpus", "sleeper", pool="gpu", count=8)
    ready = kube.wait_condition(
        "katj",
        "too-many-gpus",
        "-n",
        workspace,
        type="Ready",
        status="False",
        reason="Unschedulable",
        timeout=120,
    )
    assert "nvidia.com/gpu" in ready["message"]


def test_a_crashing_trainer_fails_with_its_exit_code_and_log_tail(
    kube: Kube, workspace: str
) -> None:
    train(kube, workspace, "crashes", "crash")
    failed = kube.wait_condition("katj", "crashes", "-n", workspace, type="Failed", timeout=120)
    assert failed["reason"] == "JobFailed"  # 7 is not in the trainer's exit-code table
    assert "exited with code 7" in failed["message"]
    assert "Traceback: boom" in failed["message"]
    status = kube.get("katj", "crashes", "-n", workspace)["status"]
    assert status["phase"] == "Failed"


def test_a_trainer_over_its_memory_limit_fails_oom_killed(kube: Kube, workspace: str) -> None:
    train(kube, workspace, "hog", "hog", flavor="small")
    failed = kube.wait_condition("katj", "hog", "-n", workspace, type="Failed", timeout=120)
    assert failed["reason"] == "OOMKilled", failed
    container = pod_of(kube, workspace, "hog-train")["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == "1Gi"  # the small flavor


def test_a_run_without_a_flavor_gets_the_pools_default_size(kube: Kube, workspace: str) -> None:
    train(kube, workspace, "sized", "sleeper")
    pod = pod_of(kube, workspace, "sized-train")
    (container,) = pod["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "4Gi"},
        "limits": {"memory": "4Gi"},
    }
    assert pod["spec"]["nodeName"] == "cpu-0"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_deadline_stops_the_run_as_deadline_exceeded(kube: Kube, workspace: str) -> None:
    train(kube, workspace, "too-slow", "sleeper", run_policy={"activeDeadlineSeconds": 3})
    failed = kube.wait_condition("katj", "too-slow", "-n", workspace, type="Failed", timeout=120)
    assert failed["reason"] == "DeadlineExceeded"
    assert "deadline of 3 s" in failed["message"]


def test_an_edit_after_the_start_is_refused_and_the_run_goes_on(kube: Kube, workspace: str) -> None:
    train(kube, workspace, "edited", "sleeper")
    kube.wait_condition("katj", "edited", "-n", workspace, type="Created", timeout=60)
    job_uid = kube.get("job", "edited-train", "-n", workspace)["metadata"]["uid"]
    patch = json.dumps({"spec": {"hyperparameters": {"epochs": 3}}})
    kube.kubectl("patch", "katj", "edited", "-n", workspace, "--type=merge", "-p", patch)
    refused = kube.wait_condition(
        "katj", "edited", "-n", workspace, type="SpecValid", status="False", timeout=60
    )
    assert refused["reason"] == "SpecImmutable"
    assert kube.get("job", "edited-train", "-n", workspace)["metadata"]["uid"] == job_uid


def test_deleting_a_running_trainingjob_stops_its_pod(kube: Kube, workspace: str) -> None:
    train(kube, workspace, "deleted", "sleeper")
    pod = pod_of(kube, workspace, "deleted-train")
    kube.wait_pod_phase(pod["metadata"]["name"], workspace, ("Running",), timeout=120)
    kube.kubectl("delete", "katj", "deleted", "-n", workspace, "--wait=false")

    def gone() -> bool | None:
        pods = kube.get("pods", "-n", workspace, "-l", "job-name=deleted-train")["items"]
        return True if not pods else None

    wait_for(gone, 120, "the training pod to go with its TrainingJob")


def test_a_real_run_trains_evaluates_and_exports(kube: Kube, workspace: str) -> None:
    """A real trainer run through the operator, kept small for the suite: MobileNet v1 on
    digits at 32 px for one epoch. Progress moves, the run succeeds with an evaluation, and
    every export loads. (Accuracy targets are for the slow run below.)"""
    hyperparameters = {
        "image_size": 32,
        "epochs": 1,
        "batch_size": 32,
        "optimizer": "adam",
        "learning_rate": 0.001,
    }
    status = _run_to_success(kube, workspace, "mobilenet", "mobilenet_v1", hyperparameters)
    assert 0.0 <= status["evaluation"]["accuracy"] <= 1.0
    _check_outputs(kube, workspace, status)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_resnet_on_digits_reaches_the_accuracy_it_should(kube: Kube, workspace: str) -> None:
    """ResNet_v1_50 on digits at 32 px, 5 epochs: eval accuracy at least 0.85."""
    hyperparameters = {"image_size": 32, "epochs": 5, "batch_size": 32}
    status = _run_to_success(kube, workspace, "resnet", "resnet_v1_50", hyperparameters, 3000)
    assert status["evaluation"]["accuracy"] >= 0.85, status["evaluation"]
    _check_outputs(kube, workspace, status)


def _run_to_success(
    kube: Kube,
    workspace: str,
    name: str,
    algorithm: str,
    hyperparameters: dict[str, Any],
    timeout: float = 900,
) -> dict[str, Any]:
    train(kube, workspace, name, algorithm, hyperparameters=hyperparameters)
    seen_progress: set[int] = set()

    def done() -> dict[str, Any] | None:
        status = kube.get("katj", name, "-n", workspace).get("status") or {}
        if "percent" in (status.get("progress") or {}):
            seen_progress.add(status["progress"]["percent"])
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        failed = conditions.get("Failed", {})
        assert failed.get("status") != "True", failed
        return status if conditions.get("Succeeded", {}).get("status") == "True" else None

    status: dict[str, Any] = wait_for(done, timeout, f"the {algorithm} run to succeed", interval=2)
    assert seen_progress, "no progress was ever reported"
    assert status["device"] == "CPU"
    return status


def _check_outputs(kube: Kube, workspace: str, status: dict[str, Any]) -> None:
    outputs = status["outputs"]
    for key in ("savedModel", "frozenGraph", "labels", "modelCard"):
        assert outputs[key].startswith(outputs["uri"]), outputs
    assert status["logs"]["uri"].startswith(outputs["uri"])
    _check_exports(kube, workspace, outputs)


def _check_exports(kube: Kube, namespace: str, outputs: dict[str, str]) -> None:
    """Load what the run exported, straight from the claim's folder on this machine."""
    import numpy as np
    import tensorflow as tf

    folder = _claim_folder(kube, namespace, outputs["uri"])
    labels = (folder / "labels.txt").read_text(encoding="utf-8").splitlines()
    assert len(labels) == 10
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    saved = tf.saved_model.load(str(folder / "saved_model"))
    logits = saved.signatures["serving_default"](images=tf.constant(images))["logits"]
    assert logits.shape == (2, 10)
    model_card = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    assert model_card["labels"] == labels
    assert "result" in (folder / "logs" / "train.log").read_text(encoding="utf-8")


def _claim_folder(kube: Kube, namespace: str, uri: str) -> Path:
    """The host folder behind ``pvc://<claim>/<path>`` (the local cluster's volumes are
    host folders)."""
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    volume = kube.get("pvc", claim, "-n", namespace)["spec"]["volumeName"]
    host = kube.get("pv", volume)["spec"]["hostPath"]["path"]
    return Path(host) / path
