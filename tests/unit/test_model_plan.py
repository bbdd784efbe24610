"""A Model's versions without a cluster: registration, immutability, minAccuracy, removal,
lineage, the registration Job, and the format, runtime and pool table."""

from __future__ import annotations

from typing import Any

import pytest

from kubearts import runtimes
from kubearts.builders.model_jobs import (
    registration_job,
    registration_job_name,
    registry_location,
    removal_job,
)
from kubearts.builders.placement import build_placement
from kubearts.config import DEFAULT_POOLS
from kubearts.model_plan import Reads, decide, semver_key, version_digest
from kubearts.workloads import JobView

WS = "pvc://kubearts-workspace"
NOW = "2026-12-01T00:00:00Z"
REGISTRY = registry_location("kubearts-workspace", "digits")
OWNER = {"metadata": {"name": "digits", "namespace": "ml", "uid": "u-1"}}
SAVED = {"version": "1.0.0", "source": {"trainingJob": "tj"}, "format": "saved-model"}
ONNX = {"version": "1.1.0", "source": {"conversion": "conv"}, "format": "onnx"}


def succeeded(**status: Any) -> dict[str, Any]:
    return {
        "spec": {"algorithm": {"subscription": "resnet"}},
        "status": {"conditions": [{"type": "Succeeded", "status": "True"}], **status},
    }


TRAINING = succeeded(
    outputs={"uri": f"{WS}/trainingjobs/tj"},
    algorithmVersion="1.1.0",
    inputs=[{"dataset": "digits", "version": "v1"}],
)
CONVERSION = succeeded(
    outputUri=f"{WS}/modelconversions/conv",
    output={"format": "onnx"},
    lineage={"trainingJob": "tj"},
)
DATASET = {
    "status": {"digest": "sha256:d", "versions": [{"name": "v1", "manifestDigest": "sha256:v1"}]}
}
SUBSCRIPTION = {"status": {"algorithm": "resnet_v1_50"}}
READS = Reads(
    training_jobs={"tj": TRAINING},
    conversions={"conv": CONVERSION},
    datasets={"digits": DATASET},
    subscriptions={"resnet": SUBSCRIPTION},
)
RESULT = {
    "status": "Succeeded",
    "reason": "Registered",
    "digest": "sha256:abc",
    "sizeBytes": 1234,
    "files": 5,
    "signature": {"inputs": [{"name": "images"}], "outputs": [{"name": "logits"}], "labels": ["0"]},
    "metrics": {"accuracy": 0.95},
}


def step(versions: list[dict[str, Any]], status: dict[str, Any] | None = None, **reads: Any):
    merged = Reads(**{**READS.__dict__, **reads})
    return decide("digits", {"versions": versions}, status or {}, merged, NOW, REGISTRY)


def registered(entry: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The status entry of ``entry`` after a successful registration."""
    started = step([entry])
    view = JobView({}, "Complete", result=RESULT)
    done = step([entry], {"versions": started.versions}, jobs={entry["version"]: view})
    return {**done.versions[0], **extra}


def test_a_new_version_registers_from_its_training_job_with_lineage() -> None:
    decision = step([SAVED])
    (register,) = decision.register
    assert (register.version, register.source.uri, register.model_format) == (
        "1.0.0",
        f"{WS}/trainingjobs/tj",
        "saved-model",
    )
    (entry,) = decision.versions
    assert entry["reason"] == "Registering"
    assert entry["location"] == f"{WS}/models/digits/1.0.0"
    assert entry["lineage"] == {
        "trainingJob": "tj",
        "subscription": "resnet",
        "algorithm": "resnet_v1_50",
        "algorithmVersion": "1.1.0",
        "datasets": [{"name": "digits", "version": "v1", "digest": "sha256:v1"}],
        "sourceUri": f"{WS}/trainingjobs/tj",
    }
    assert entry["runtimes"] == [{"runtime": "tensorflow", "pools": ["cpu", "gpu"]}]


def test_a_conversion_version_carries_the_training_lineage_and_the_conversion() -> None:
    (entry,) = step([ONNX]).versions
    assert entry["lineage"]["conversion"] == "conv"
    assert entry["lineage"]["datasets"][0]["digest"] == "sha256:v1"


def test_a_finished_registration_records_digest_signature_and_metrics() -> None:
    entry = registered(SAVED)
    assert (entry["ready"], entry["reason"]) == (True, "Registered")
    assert (entry["digest"], entry["sizeBytes"], entry["files"]) == ("sha256:abc", 1234, 5)
    assert entry["signature"]["labels"] == ["0"]
    assert entry["metrics"] == {"accuracy": 0.95}


def test_a_registration_seen_done_from_a_status_before_its_start_keeps_location_and_lineage() -> (
    None
):
    waiting = {"version": "1.0.0", "ready": False, "reason": "WaitingForDependency"}
    view = JobView({}, "Complete", result=RESULT)
    (entry,) = step([SAVED], {"versions": [waiting]}, jobs={"1.0.0": view}).versions
    assert (entry["ready"], entry["location"]) == (True, f"{WS}/models/digits/1.0.0")
    assert entry["lineage"]["trainingJob"] == "tj"


def test_only_the_added_version_registers() -> None:
    decision = step([SAVED, ONNX], {"versions": [registered(SAVED)]})
    assert [r.version for r in decision.register] == ["1.1.0"]
    assert decision.fields == {"readyVersions": 1, "latestVersion": "1.0.0"}


def test_an_edit_of_a_registered_version_is_refused_and_it_stays_served() -> None:
    edited = {**SAVED, "source": {"trainingJob": "other"}}
    decision = step([edited], {"versions": [registered(SAVED)]})
    assert decision.register == []
    (entry,) = decision.versions
    assert (entry["ready"], entry["reason"], entry["digest"]) == (
        True,
        "VersionImmutable",
        "sha256:abc",
    )
    valid = next(u for u in decision.updates if u.type == "VersionsValid")
    assert (valid.status, valid.reason) == ("False", "VersionImmutable")
    assert "spec.versions[0]" in valid.message


@pytest.mark.parametrize(("minimum", "ready"), [(0.9, True), (0.96, False)], ids=["above", "below"])
def test_min_accuracy_gates_readiness_with_both_figures(minimum: float, ready: bool) -> None:
    entry = {**SAVED, "minAccuracy": minimum}
    (status,) = step([entry], {"versions": [registered(entry)]}).versions
    assert status["ready"] is ready
    if not ready:
        assert status["reason"] == "BelowMinAccuracy"
        assert "0.9500" in status["message"]
        assert "0.96" in status["message"]


def test_a_source_that_has_not_succeeded_is_waited_for() -> None:
    running = {"status": {"conditions": [{"type": "Running", "status": "True"}]}}
    decision = step([SAVED], training_jobs={"tj": running})
    assert decision.register == []
    assert decision.versions[0]["reason"] == "WaitingForDependency"
    ready = next(u for u in decision.updates if u.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "WaitingForDependency")


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        pytest.param({**SAVED, "format": "onnx"}, "spec.versions[0].format", id="tj-onnx"),
        pytest.param({**ONNX, "format": "om"}, "spec.versions[0].format", id="conversion-om"),
        pytest.param(
            {**SAVED, "source": {"uri": f"{WS}/x", "template": "ARM-Ascend"}},
            "spec.versions[0].format",
            id="ascend-template-saved-model",
        ),
        pytest.param(
            {**SAVED, "source": {"uri": "s3://b/m", "template": "image-classification"}},
            "spec.versions[0].source.uri",
            id="s3-uri",
        ),
        pytest.param({**SAVED, "runtime": "onnxruntime"}, "spec.versions[0].runtime", id="runtime"),
    ],
)
def test_a_version_that_cannot_work_names_its_field(entry: dict[str, Any], field: str) -> None:
    decision = step([entry])
    assert decision.register == []
    assert decision.versions[0]["message"].startswith(field)


def test_a_removed_version_stays_while_a_service_uses_it() -> None:
    old = registered(SAVED)
    decision = step([ONNX], {"versions": [old]}, services={"1.0.0": ["web"]})
    kept = next(v for v in decision.versions if v["version"] == "1.0.0")
    assert (kept["reason"], kept["usedBy"]) == ("InUse", ["web"])
    assert decision.unused == []
    unused = step([ONNX], {"versions": [old]})
    assert [v["version"] for v in unused.unused] == ["1.0.0"]
    removing = next(v for v in unused.versions if v["version"] == "1.0.0")
    assert (removing["ready"], removing["reason"]) == (False, "Removing")
    ready = next(u for u in unused.updates if u.type == "Ready")
    assert ready.status == "False"  # 1.1.0 registers; the removed version does not count
    deleted = JobView({}, "Complete", result={"status": "Succeeded", "reason": "Removed"})
    gone = step([ONNX], {"versions": [old]}, removals={"1.0.0": deleted})
    assert [v["version"] for v in gone.versions] == ["1.1.0"]
    assert gone.unused == []


def test_semver_order_puts_prereleases_before_their_release() -> None:
    versions = ["1.0.0", "1.0.0-rc.1", "0.9.10", "1.0.0-ascend", "1.10.0"]
    assert sorted(versions, key=semver_key) == [
        "0.9.10",
        "1.0.0-ascend",
        "1.0.0-rc.1",
        "1.0.0",
        "1.10.0",
    ]


def test_the_version_digest_ignores_min_accuracy_and_description() -> None:
    assert version_digest(SAVED) == version_digest(
        {**SAVED, "minAccuracy": 0.5, "description": "x"}
    )
    assert version_digest(SAVED) != version_digest({**SAVED, "format": "frozen-graph"})


def test_the_registration_job_copies_read_only_source_into_the_registry() -> None:
    (register,) = step([SAVED]).register
    job = registration_job(
        register,
        OWNER,
        image="ghcr.io/kubearts/converter:0.1.0",
        registry=REGISTRY,
        placement=build_placement("cpu", 1, DEFAULT_POOLS),
        deadline_seconds=60,
    )
    assert (
        job["metadata"]["name"]
        == registration_job_name("digits", "1.0.0")
        == ("digits-register-1-0-0")
    )
    (container,) = job["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:5] == ["register", "--source", "/mnt/source", "--format", "saved-model"]
    assert args[args.index("--output") + 1] == "/mnt/registry/1.0.0"
    mounts = {m["mountPath"]: (m.get("subPath"), m["readOnly"]) for m in container["volumeMounts"]}
    assert mounts["/mnt/source"] == ("trainingjobs/tj", True)
    assert mounts["/mnt/registry"] == ("models/digits", False)


def test_the_removal_job_deletes_only_the_version_folder() -> None:
    job = removal_job(
        "1.0.0",
        OWNER,
        image="ghcr.io/kubearts/converter:0.1.0",
        registry=REGISTRY,
        placement=build_placement("cpu", 1, DEFAULT_POOLS),
        deadline_seconds=60,
    )
    assert job["metadata"]["name"] == "digits-remove-1-0-0"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][:3] == ["unregister", "--target", "/mnt/registry/1.0.0"]


def test_version_names_that_differ_only_in_case_get_different_jobs() -> None:
    assert registration_job_name("m", "1.0.0-RC") != registration_job_name("m", "1.0.0-rc")


@pytest.mark.parametrize(
    ("model_format", "runtime", "pool", "reason"),
    [
        ("saved-model", "tensorflow", "cpu", None),
        ("saved-model", "tensorflow", "gpu", None),
        ("saved-model", "tensorflow", "ascend310", "PoolMismatch"),
        ("frozen-graph", "tensorflow", "cpu", "FormatNotServed"),
        ("onnx", "onnxruntime", "cpu", None),
        ("onnx", "onnxruntime", "gpu", None),
        ("onnx", "onnxruntime", "ascend310", None),
        ("onnx", "tensorflow", "cpu", "RuntimeMismatch"),
        ("om", "ascend", "ascend310", None),
        ("om", "ascend", "cpu", "PoolMismatch"),
        ("om", "onnxruntime", "ascend310", "RuntimeMismatch"),
    ],
)
def test_format_runtime_pool_table(
    model_format: str, runtime: str, pool: str, reason: str | None
) -> None:
    mismatch = runtimes.serving_mismatch(model_format, runtime, pool)
    assert (mismatch.reason if mismatch else None) == reason
    if mismatch is not None:
        assert repr(model_format) in mismatch.message


def test_every_runtime_pool_pair_names_its_provider() -> None:
    pairs = {(r, p) for r, pools in runtimes.RUNTIME_POOLS.items() for p in pools}
    assert pairs == set(runtimes.PROVIDERS)
