"""Conversion, model registry and serving on a real control plane, after one small real
training run (MobileNet v1 on digits, 32 px, one epoch):

- the training job's frozen graph converts to ONNX, verified on its eval split;
- the Ascend template runs ATC's command line and fails honestly where ATC is missing;
- options that do not fit the graph fail naming the graph's real inputs and outputs;
- a Model with a saved-model and an onnx version registers both, immutable, with digest,
  signature, metrics and lineage; an ARM-Ascend ``om`` folder imports;
- an InferenceService serves the onnx version through its ClusterIP with the training
  run's accuracy, rolls over to the saved-model version with no failed request, and an
  ``om`` model on ascend310 fails honestly; batch mode writes one line per image.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.error
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

import demo  # hack/demo.py; clusterkit puts hack/ on sys.path
from clusterkit import REPO, Kube, wait_for
from datagen import tar_tree, write_digits

pytestmark = pytest.mark.cluster

OPERATOR_NAMESPACE = "kubearts-system"
DEFAULT_GALLERY = REPO / "charts" / "kubearts" / "files" / "gallery" / "default.yaml"
API = "kubearts.io/v1alpha1"
HYPERPARAMETERS = {
    "image_size": 32,
    "epochs": 1,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 0.001,
}


def tree_digest(folder: Path) -> str:
    """Bytes of every file under ``folder``, by relative path: what must not change."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def status_of(kube: Kube, kind: str, name: str, namespace: str) -> dict[str, Any]:
    return kube.get(kind, name, "-n", namespace).get("status") or {}


@pytest.fixture(scope="module")
def trained(kube: Kube, kubearts_operator: KopfRunner, tmp_path_factory: Any) -> Iterator[str]:
    """A namespace with a digits Dataset (v1, 0.8) and a succeeded MobileNet TrainingJob."""
    name = f"t-pipeline-{uuid.uuid4().hex[:5]}"
    kube.kubectl("create", "namespace", name)
    data = tmp_path_factory.mktemp("digits")
    write_digits(data / "digits", every=2)
    served = tmp_path_factory.mktemp("served")
    tar_tree(served / "digits.tar.gz", data)
    gallery = yaml.safe_load(DEFAULT_GALLERY.read_text(encoding="utf-8"))
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
        for manifest in (
            {
                "kind": "Dataset",
                "metadata": {"name": "digits"},
                "spec": {
                    "source": {"uri": f"{base}/digits.tar.gz"},
                    "versions": [{"name": "v1", "trainRatio": 0.8, "seed": 1}],
                },
            },
            {
                "kind": "Subscription",
                "metadata": {"name": "mobilenet"},
                "spec": {"gallery": name, "algorithm": "mobilenet_v1", "version": "latest"},
            },
            {
                "kind": "TrainingJob",
                "metadata": {"name": "mobilenet"},
                "spec": {
                    "algorithm": {"subscription": "mobilenet"},
                    "inputs": [{"dataset": "digits", "version": "v1"}],
                    "hyperparameters": HYPERPARAMETERS,
                },
            },
        ):
            kube.apply({"apiVersion": API, **manifest}, name)
        kube.wait_condition("kads", "digits", "-n", name, type="Ready", timeout=600)
    kube.wait_condition("katj", "mobilenet", "-n", name, type="Succeeded", timeout=900)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)
    kube.kubectl("delete", "configmap", f"gallery-{name}", "-n", OPERATOR_NAMESPACE, check=False)


def convert(kube: Kube, namespace: str, name: str, template: str, **options: Any) -> None:
    kube.apply(
        {
            "apiVersion": API,
            "kind": "ModelConversion",
            "metadata": {"name": name},
            "spec": {
                "source": {"trainingJob": "mobilenet"},
                "template": template,
                "options": options,
                "verify": {"samples": 16, "tolerance": 0.001},
            },
        },
        namespace,
    )


@pytest.fixture(scope="module")
def onnx(kube: Kube, trained: str) -> dict[str, Any]:
    """The training job's frozen graph converted to ONNX."""
    convert(kube, trained, "onnx", "TF-FrozenGraph-To-ONNX", outputNodes="logits:0")
    kube.wait_condition("kaconv", "onnx", "-n", trained, type="Succeeded", timeout=600)
    return status_of(kube, "kaconv", "onnx", trained)


def test_the_frozen_graph_converts_to_onnx_verified_on_the_eval_split(
    kube: Kube, trained: str, onnx: dict[str, Any]
) -> None:
    verification = onnx["verification"]
    assert verification["passed"] is True
    assert verification["inputs"] == "eval-split"
    assert verification["samples"] == 16
    assert verification["maxAbsDiff"] <= 0.001
    assert verification["top1Agreement"] == 1.0
    assert onnx["output"]["format"] == "onnx"
    assert onnx["output"]["digest"].startswith("sha256:")
    assert {"tf2onnx", "onnxruntime", "tensorflow"} <= set(onnx["tools"])
    assert onnx["opset"] == 13
    assert onnx["lineage"]["trainingJob"] == "mobilenet"
    model = kube.claim_folder(trained, onnx["output"]["uri"])
    assert model.stat().st_size == onnx["output"]["sizeBytes"]


def test_the_ascend_template_fails_honestly_with_the_atc_command_line(
    kube: Kube, trained: str
) -> None:
    options = {
        "inputShape": "images:1,32,32,3",
        "inputFormat": "NHWC",
        "outputNodes": "logits:0",
        "precision": "FP32",
        "socVersion": "Ascend310",
    }
    convert(kube, trained, "om", "TF-FrozenGraph-To-Ascend-C32", **options)
    failed = kube.wait_condition(
        "kaconv", "om", "-n", trained, type="Failed", reason="ConverterUnavailable", timeout=600
    )
    assert "atc" in failed["message"]
    status = status_of(kube, "kaconv", "om", trained)
    command = status["command"]
    assert command[0].endswith("atc")
    assert "--framework=3" in command
    assert "--soc_version=Ascend310" in command
    assert "--input_shape=images:1,32,32,3" in command
    assert "--out_nodes=logits:0" in command
    pod = kube.get("pods", "-n", trained, "-l", "job-name=om-convert")["items"][0]
    assert pod["spec"]["containers"][0]["image"].startswith("ghcr.io/kubearts/converter-cann")
    output = kube.claim_folder(trained, status["outputUri"])
    assert not list(output.rglob("*.om"))


@pytest.mark.parametrize(
    ("name", "options", "field", "real"),
    [
        pytest.param("rank", {"inputShape": "images:1,32,32"}, "inputShape", "images", id="rank"),
        pytest.param("node", {"outputNodes": "probs:0"}, "outputNodes", "logits", id="node"),
    ],
)
def test_options_that_do_not_fit_the_graph_name_its_real_inputs_and_outputs(
    kube: Kube, trained: str, name: str, options: dict[str, str], field: str, real: str
) -> None:
    convert(kube, trained, name, "TF-FrozenGraph-To-ONNX", **options)
    failed = kube.wait_condition(
        "kaconv", name, "-n", trained, type="Failed", reason="InvalidOptions", timeout=600
    )
    assert f"spec.options.{field}" in failed["message"]
    assert real in failed["message"]


def version_of(status: dict[str, Any], version: str) -> dict[str, Any]:
    return next(v for v in status.get("versions") or [] if v["version"] == version)


@pytest.fixture(scope="module")
def model(kube: Kube, trained: str, onnx: dict[str, Any]) -> dict[str, Any]:
    """Model ``digits`` with the saved-model (1.0.0) and the onnx conversion (1.1.0)."""
    kube.apply(
        {
            "apiVersion": API,
            "kind": "Model",
            "metadata": {"name": "digits"},
            "spec": {
                "versions": [
                    {
                        "version": "1.0.0",
                        "source": {"trainingJob": "mobilenet"},
                        "format": "saved-model",
                        "minAccuracy": 0.0,
                    },
                    {"version": "1.1.0", "source": {"conversion": "onnx"}, "format": "onnx"},
                ]
            },
        },
        trained,
    )
    kube.wait_condition("kamodel", "digits", "-n", trained, type="Ready", timeout=600)
    return status_of(kube, "kamodel", "digits", trained)


def test_both_versions_register_with_digest_signature_metrics_and_lineage(
    kube: Kube, trained: str, model: dict[str, Any]
) -> None:
    evaluation = status_of(kube, "katj", "mobilenet", trained)["evaluation"]
    dataset = status_of(kube, "kads", "digits", trained)
    for version, files in (("1.0.0", "saved_model"), ("1.1.0", "model.onnx")):
        entry = version_of(model, version)
        assert (entry["ready"], entry["reason"]) == (True, "Registered"), entry
        assert entry["location"].endswith(f"/models/digits/{version}")
        assert entry["digest"].startswith("sha256:")
        assert entry["sizeBytes"] > 0
        assert len(entry["signature"]["labels"]) == 10
        assert entry["metrics"]["accuracy"] == pytest.approx(evaluation["accuracy"])
        lineage = entry["lineage"]
        assert lineage["trainingJob"] == "mobilenet"
        assert lineage["datasets"] == [
            {"name": "digits", "version": "v1", "digest": dataset["versions"][0]["manifestDigest"]}
        ]
        assert (kube.claim_folder(trained, entry["location"]) / files).exists()
    assert version_of(model, "1.1.0")["lineage"]["conversion"] == "onnx"
    assert model["latestVersion"] == "1.1.0"


def test_an_edit_of_a_registered_version_is_refused_and_changes_nothing(
    kube: Kube, trained: str, model: dict[str, Any]
) -> None:
    entry = version_of(model, "1.0.0")
    folder = kube.claim_folder(trained, entry["location"])
    before = tree_digest(folder)
    patch = [{"op": "replace", "path": "/spec/versions/0/format", "value": "frozen-graph"}]
    kube.kubectl(
        "patch", "kamodel", "digits", "-n", trained, "--type=json", "-p", json.dumps(patch)
    )
    try:
        kube.wait_condition(
            "kamodel",
            "digits",
            "-n",
            trained,
            type="VersionsValid",
            status="False",
            reason="VersionImmutable",
            timeout=120,
        )
        kept = version_of(status_of(kube, "kamodel", "digits", trained), "1.0.0")
        assert (kept["ready"], kept["digest"], kept["format"]) == (
            True,
            entry["digest"],
            "saved-model",
        )
        assert tree_digest(folder) == before
    finally:
        patch[0]["value"] = "saved-model"
        kube.kubectl(
            "patch", "kamodel", "digits", "-n", trained, "--type=json", "-p", json.dumps(patch)
        )
    kube.wait_condition("kamodel", "digits", "-n", trained, type="VersionsValid", timeout=120)


def test_an_arm_ascend_om_folder_imports(kube: Kube, trained: str, model: dict[str, Any]) -> None:
    registry = kube.claim_folder(trained, version_of(model, "1.0.0")["location"]).parents[2]
    imports = registry / "imports" / "digits-om"
    imports.mkdir(parents=True, exist_ok=True)
    (imports / "digits.om").write_bytes(b"\x00om" * 1000)
    config = {
        "model_algorithm": "image_classification",
        "model_type": "MindSpore",
        "labels": [str(i) for i in range(10)],
    }
    (imports / "config.json").write_text(json.dumps(config), encoding="utf-8")
    workspace = version_of(model, "1.0.0")["location"].split("/models/")[0]
    kube.apply(
        {
            "apiVersion": API,
            "kind": "Model",
            "metadata": {"name": "digits-ascend"},
            "spec": {
                "versions": [
                    {
                        "version": "1.0.0",
                        "source": {
                            "uri": f"{workspace}/imports/digits-om",
                            "template": "ARM-Ascend",
                        },
                        "format": "om",
                    }
                ]
            },
        },
        trained,
    )
    kube.wait_condition("kamodel", "digits-ascend", "-n", trained, type="Ready", timeout=600)
    entry = version_of(status_of(kube, "kamodel", "digits-ascend", trained), "1.0.0")
    assert entry["digest"].startswith("sha256:")
    assert entry["signature"]["labels"] == [str(i) for i in range(10)]
    assert entry["runtimes"] == [{"runtime": "ascend", "pools": ["ascend310"]}]
    assert (kube.claim_folder(trained, entry["location"]) / "digits.om").exists()


def serve(kube: Kube, namespace: str, name: str, model: str, version: str, **spec: Any) -> None:
    kube.apply(
        {
            "apiVersion": API,
            "kind": "InferenceService",
            "metadata": {"name": name},
            "spec": {"model": {"name": model, "version": version}, **spec},
        },
        namespace,
    )


@pytest.fixture(scope="module")
def online(kube: Kube, trained: str, model: dict[str, Any]) -> str:
    """InferenceService ``digits`` serving the onnx version on the cpu pool."""
    serve(kube, trained, "digits", "digits", "1.1.0", replicas=1)
    kube.wait_condition("kaisvc", "digits", "-n", trained, type="Ready", timeout=600)
    return kube.service_url("digits-predictor", trained, "http")


def test_the_service_predicts_the_eval_split_with_the_training_accuracy(
    kube: Kube, trained: str, online: str
) -> None:
    status = status_of(kube, "kaisvc", "digits", trained)
    assert status["provider"] == "CPUExecutionProvider"
    assert (
        status["model"]["digest"]
        == version_of(status_of(kube, "kamodel", "digits", trained), "1.1.0")["digest"]
    )
    assert status["clusterIP"] in online
    assert "curl -F images=@image.jpg" in status["example"]
    samples = kube.eval_images(trained)
    correct = 0
    for start in range(0, len(samples), 32):
        chunk = samples[start : start + 32]
        answers = demo.upload(online, [path for path, _ in chunk])
        correct += sum(
            a["predicted_label"] == label for a, (_, label) in zip(answers, chunk, strict=True)
        )
    accuracy = correct / len(samples)
    evaluation = status_of(kube, "katj", "mobilenet", trained)["evaluation"]["accuracy"]
    assert abs(accuracy - evaluation) <= 0.01, (accuracy, evaluation)


def test_a_version_change_rolls_over_with_no_failed_request(
    kube: Kube, trained: str, online: str
) -> None:
    image = kube.eval_images(trained)[0][0]
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                demo.upload(online, [image])
                answered[0] += 1
            except (urllib.error.URLError, OSError, ValueError) as exc:
                failures.append(repr(exc))

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        serve(kube, trained, "digits", "digits", "1.0.0", replicas=1)
        saved = version_of(status_of(kube, "kamodel", "digits", trained), "1.0.0")["digest"]

        def rolled() -> bool | None:
            status = status_of(kube, "kaisvc", "digits", trained)
            ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
            done = status.get("model", {}).get("digest") == saved and ready.get("status") == "True"
            if done and status.get("replicas") == 1:
                return True
            seen = {k: status.get(k) for k in ("replicas", "readyReplicas", "provider")}
            raise AssertionError(f"Ready {ready.get('reason')}: {ready.get('message')}; {seen}")

        wait_for(rolled, 600, "the service to serve version 1.0.0 alone")
    finally:
        stop.set()
        thread.join(30)
    assert failures == [], failures[:3]
    assert answered[0] > 0
    assert status_of(kube, "kaisvc", "digits", trained)["provider"] == "TensorFlow:CPU"


def test_an_om_model_on_ascend310_fails_honestly(kube: Kube, trained: str) -> None:
    kube.wait_condition("kamodel", "digits-ascend", "-n", trained, type="Ready", timeout=600)
    serve(kube, trained, "ascend", "digits-ascend", "1.0.0", resources={"pool": "ascend310"})
    ready = kube.wait_condition(
        "kaisvc",
        "ascend",
        "-n",
        trained,
        type="Ready",
        status="False",
        reason="ModelLoadFailed",
        timeout=600,
    )
    assert "AscendCL not available" in ready["message"]
    pod = kube.get("pods", "-n", trained, "-l", "kubearts.io/inferenceservice=ascend")["items"][0]
    assert pod["spec"]["nodeSelector"] == {"accelerator": "huawei-Ascend310"}


def test_a_gpu_service_lands_on_a_gpu_node_and_reports_its_cpu_fallback(
    kube: Kube, trained: str, online: str
) -> None:
    serve(kube, trained, "gpu", "digits", "1.1.0", resources={"pool": "gpu"})
    ready = kube.wait_condition("kaisvc", "gpu", "-n", trained, type="Ready", timeout=600)
    assert "CPU fallback" in ready["message"]
    status = status_of(kube, "kaisvc", "gpu", trained)
    assert (status["provider"], status["deviceFallback"]) == ("CPUExecutionProvider", True)
    pod = kube.get("pods", "-n", trained, "-l", "kubearts.io/inferenceservice=gpu")["items"][0]
    assert pod["spec"]["nodeName"] == "gpu-0"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    kube.kubectl("delete", "kaisvc", "gpu", "-n", trained, "--wait=false")


def test_batch_mode_writes_one_line_per_image(kube: Kube, trained: str, online: str) -> None:
    dataset = status_of(kube, "kads", "digits", trained)
    workspace = dataset["location"].split("/datasets/")[0]
    serve(
        kube,
        trained,
        "digits-batch",
        "digits",
        "1.1.0",
        mode="batch",
        batch={"input": f"{dataset['location']}/digits/3", "output": f"{workspace}/batch/digits"},
    )
    kube.wait_condition("kaisvc", "digits-batch", "-n", trained, type="Succeeded", timeout=600)
    status = status_of(kube, "kaisvc", "digits-batch", trained)
    images = sorted((kube.claim_folder(trained, dataset["location"]) / "digits" / "3").iterdir())
    assert status["batch"]["total"] == len(images)
    output = kube.claim_folder(trained, status["batch"]["output"])
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["file"] for line in lines) == sorted(p.name for p in images)
    assert all("label" in line for line in lines)


def test_a_removed_version_stays_while_served_then_its_files_go(
    kube: Kube, trained: str, model: dict[str, Any]
) -> None:
    serve(kube, trained, "pinned", "digits", "1.1.0", replicas=0)
    folder = kube.claim_folder(trained, version_of(model, "1.1.0")["location"])
    assert folder.exists()
    patch = [{"op": "remove", "path": "/spec/versions/1"}]
    kube.kubectl(
        "patch", "kamodel", "digits", "-n", trained, "--type=json", "-p", json.dumps(patch)
    )

    def in_use() -> dict[str, Any] | None:
        entry = version_of(status_of(kube, "kamodel", "digits", trained), "1.1.0")
        return entry if entry.get("reason") == "InUse" else None

    entry = wait_for(in_use, 120, "version 1.1.0 to stay while a service uses it")
    assert "pinned" in entry["usedBy"]
    assert folder.exists()
    for service in ("pinned", "digits-batch"):
        kube.kubectl("delete", "kaisvc", service, "-n", trained, "--wait=true", check=False)

    def removed() -> bool | None:
        versions = status_of(kube, "kamodel", "digits", trained).get("versions") or []
        return True if all(v["version"] != "1.1.0" for v in versions) else None

    wait_for(removed, 300, "version 1.1.0 to be removed once unused")
    assert not folder.exists()
