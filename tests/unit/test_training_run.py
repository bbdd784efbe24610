"""A TrainingJob's run (pure): the Job it becomes, and what its Job's states mean for its
status — Created, Running with progress, Succeeded with evaluation and outputs, Failed with
the pod's reason, a spec edit after the start refused."""

from __future__ import annotations

from typing import Any

import pytest

from kubearts.builders.placement import build_placement
from kubearts.builders.training_jobs import (
    SPEC_DIGEST_ANNOTATION,
    spec_digest,
    training_job,
)
from kubearts.conditions import SpecError
from kubearts.config import DEFAULT_POOLS
from kubearts.runs import spec_check
from kubearts.training_plan import (
    RunSettings,
    TrainingPlan,
    follow_run,
    needs_job,
    resolve_run,
)
from kubearts.workloads import JobView

PLAN = TrainingPlan(
    image="ghcr.io/kubearts/trainer:0.1.0",
    algorithm_version="1.1.0",
    entrypoint={"command": ["python", "-m", "kubearts_trainer"], "args": ["train", "--model", "m"]},
    hyperparameters={"epochs": 5, "learning_rate": 0.001, "pretrained_weights": "a b ü"},
    inputs=[
        {
            "name": "data",
            "dataset": "digits",
            "version": "v1",
            "location": "pvc://kubearts-workspace/datasets/digits",
            "trainManifest": "pvc://kubearts-workspace/datasets/digits/.kubearts/versions/v1/train.jsonl",
            "evalManifest": "pvc://kubearts-workspace/datasets/digits/.kubearts/versions/v1/eval.jsonl",
        }
    ],
)
SETTINGS = RunSettings("kubearts-workspace", allow_cpu_fallback=True, default_deadline_seconds=99)
SPEC: dict[str, Any] = {"resources": {"pool": "gpu", "count": 1}, "runPolicy": {"backoffLimit": 1}}
OWNER = {"metadata": {"name": "tj", "namespace": "ml", "uid": "u-1"}}
NOW = "2026-12-01T00:00:00Z"


def job_of(spec: dict[str, Any] = SPEC) -> dict[str, Any]:
    run = resolve_run("tj", "ml", spec, PLAN, SETTINGS)
    placement = build_placement("gpu", 1, DEFAULT_POOLS)
    return training_job(run, OWNER, placement=placement)


def test_the_job_runs_the_pinned_entrypoint_with_data_output_and_hyperparameters() -> None:
    job = job_of()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "kubearts_trainer"]
    args = container["args"]
    assert args[:3] == ["train", "--model", "m"]
    assert args[args.index("--train-manifest") + 1] == (
        "/mnt/data/data/.kubearts/versions/v1/train.jsonl"
    )
    assert args[args.index("--output") + 1] == "/mnt/output"
    # One argv element per hyperparameter: spaces and unicode need no quoting.
    assert args[-3:] == ["--epochs=5", "--learning_rate=0.001", "--pretrained_weights=a b ü"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["KUBEARTS_DEVICE"], env["KUBEARTS_ALLOW_CPU_FALLBACK"]) == ("gpu", "true")


def test_data_is_read_only_and_the_output_writable() -> None:
    job = job_of()
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/mnt/data/data"]["readOnly"] is True
    assert mounts["/mnt/data/data"]["subPath"] == "datasets/digits"
    assert mounts["/mnt/output"]["readOnly"] is False
    assert mounts["/mnt/output"]["subPath"] == "trainingjobs/tj"
    # One claim, one volume: the mounts say what may be written.
    assert [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"][1:]] == [
        "kubearts-workspace"
    ]


def test_run_policy_and_gpu_placement_reach_the_job() -> None:
    job = job_of()
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (1, 99)
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert any(t.get("key") == "nvidia.com/gpu" for t in pod["tolerations"])
    assert job["metadata"]["annotations"][SPEC_DIGEST_ANNOTATION] == spec_digest(SPEC)


def test_an_s3_data_set_is_refused_naming_the_input() -> None:
    plan = TrainingPlan(**{**PLAN.__dict__, "inputs": [{**PLAN.inputs[0], "location": "s3://b/d"}]})
    with pytest.raises(SpecError, match=r"spec.inputs\[0\].dataset"):
        resolve_run("tj", "ml", SPEC, plan, SETTINGS)


def _conditions(run: Any) -> dict[str, tuple[str, str]]:
    return {u.type: (u.status, u.reason) for u in run.updates}


def test_progress_while_running() -> None:
    job = {"metadata": {"name": "tj-train"}, "status": {}}
    progress = {"epoch": 2, "epochs": 5, "percent": 40, "loss": 0.5, "accuracy": 0.8}
    run = follow_run({}, JobView(job, "Running", progress=progress), NOW)
    assert _conditions(run)["Running"] == ("True", "JobRunning")
    assert run.fields["progress"]["epoch"] == 2
    assert run.fields["progress"]["totalEpochs"] == 5
    assert run.fields["metrics"] == {"loss": 0.5, "accuracy": 0.8}


def test_an_unschedulable_pod_names_the_short_resource() -> None:
    job = {"metadata": {"name": "tj-train"}, "status": {}}
    waiting = ("Unschedulable", "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.")
    run = follow_run({}, JobView(job, "Running", waiting=waiting), NOW)
    assert _conditions(run)["Ready"] == ("False", "Unschedulable")
    assert "nvidia.com/gpu" in run.updates[-1].message


def test_success_records_evaluation_outputs_as_uris_and_the_device() -> None:
    job = {"metadata": {"name": "tj-train"}, "status": {"completionTime": NOW}}
    result = {
        "status": "Succeeded",
        "device": "CPU",
        "fallback": True,
        "evaluation": {"accuracy": 0.93, "loss": 0.2, "samples": 360, "top5": 0.99},
        "outputs": {
            "savedModel": "saved_model",
            "labels": "labels.txt",
            "metrics": "evaluation/metrics.json",
            "confusionMatrix": "evaluation/confusion_matrix.json",
        },
        "metrics": {"epoch": [1, 2], "loss": [1.0, 0.5], "evalAccuracy": [0.8, 0.93]},
    }
    status = {"outputs": {"uri": "pvc://ws/trainingjobs/tj"}}
    run = follow_run(status, JobView(job, "Complete", result=result), NOW)
    assert _conditions(run)["Succeeded"] == ("True", "Complete")
    assert _conditions(run)["Ready"] == ("True", "Complete")
    assert run.fields["evaluation"] == {
        "accuracy": 0.93,
        "loss": 0.2,
        "top5Accuracy": 0.99,
        "sampleCount": 360,
        "confusionMatrix": "pvc://ws/trainingjobs/tj/evaluation/confusion_matrix.json",
    }
    assert run.fields["outputs"]["savedModel"] == "pvc://ws/trainingjobs/tj/saved_model"
    assert run.fields["outputs"]["evaluation"] == "pvc://ws/trainingjobs/tj/evaluation/metrics.json"
    assert run.fields["history"] == [
        {"epoch": 1, "loss": 1.0, "evalAccuracy": 0.8},
        {"epoch": 2, "loss": 0.5, "evalAccuracy": 0.93},
    ]
    assert run.fields["metrics"] == {"loss": 0.5, "evalAccuracy": 0.93}
    assert (run.fields["device"], run.fields["deviceFallback"]) == ("CPU", True)


def test_a_failure_carries_the_workers_reason() -> None:
    job = {"metadata": {"name": "tj-train"}, "status": {}}
    result = {"status": "Failed", "reason": "OOMKilled", "message": "ran out of memory"}
    run = follow_run({}, JobView(job, "Failed", result=result), NOW)
    assert _conditions(run)["Failed"] == ("True", "OOMKilled")


def test_a_job_deleted_mid_run_fails_the_run_instead_of_starting_another() -> None:
    status = {"jobName": "tj-train", "conditions": []}
    assert not needs_job(status)
    run = follow_run(status, None, NOW)
    assert _conditions(run)["Failed"] == ("True", "JobMissing")


def test_a_spec_edit_after_the_start_is_refused() -> None:
    started = spec_digest(SPEC)
    assert spec_check(started, started, "TrainingJob").status == "True"
    edited = spec_digest({**SPEC, "hyperparameters": {"epochs": 9}})
    refused = spec_check(edited, started, "TrainingJob")
    assert (refused.status, refused.reason) == ("False", "SpecImmutable")
    assert "create a new TrainingJob" in refused.message
