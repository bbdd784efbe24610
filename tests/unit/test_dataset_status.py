"""The pure part of the Dataset reconciliation: the worker's results and logs turned into
Dataset status (kubearts.dataset_status), the immutability of published versions, and the
one decision of each step (kubearts.dataset_plan)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubearts.dataset_plan import Observed, SecretNeed, decide, secret_needs, secret_wait
from kubearts.dataset_spec import VersionPlan, plan_dataset
from kubearts.dataset_status import (
    EXIT_REASONS,
    failure_updates,
    ingest_fields,
    progress_from_log,
    version_conflicts,
    version_entry,
)
from kubearts.workloads import JobView, job_state, result_from_log
from kubearts_dataset.errors import EXIT_CODES

PLAN = plan_dataset(
    "digits",
    "ml",
    {"source": {"uri": "https://x/digits.tgz"}},
    workspace_pvc="kubearts-workspace",
)


def test_exit_codes_match_the_workers_contract() -> None:
    assert {code: reason for reason, code in EXIT_CODES.items()} == dict(EXIT_REASONS)


@pytest.mark.parametrize(
    ("reason", "downloaded", "verified"),
    [
        pytest.param("DownloadFailed", ("False", "DownloadFailed"), ("False", "NotVerified")),
        pytest.param("ChecksumMismatch", ("False", "ChecksumMismatch"), ("False", "NotVerified")),
        pytest.param("LimitExceeded", ("False", "LimitExceeded"), ("False", "NotVerified")),
        pytest.param("UnsafeArchive", ("True", "Downloaded"), ("False", "UnsafeArchive")),
        pytest.param("NoImagesFound", ("True", "Downloaded"), ("False", "NoImagesFound")),
        pytest.param("InvalidTarget", ("False", "InvalidTarget"), ("False", "NotVerified")),
    ],
)
def test_a_failure_fails_the_stage_it_happened_in(
    reason: str, downloaded: tuple[str, str], verified: tuple[str, str]
) -> None:
    updates = {u.type: u for u in failure_updates({"reason": reason, "message": "why and fix"})}
    assert (updates["Downloaded"].status, updates["Downloaded"].reason) == downloaded
    assert (updates["Verified"].status, updates["Verified"].reason) == verified
    ready = updates["Ready"]
    assert (ready.status, ready.reason, ready.message) == ("False", reason, "why and fix")


def test_ingest_results_become_status_fields() -> None:
    result = {
        "status": "Succeeded",
        "sampleCount": 12,
        "classCount": 2,
        "classes": {"玫瑰": 7, "daisy": 5},
        "sizeBytes": 3000,
        "digest": "sha256:ab",
        "archiveBytes": 2500,
        "invalidCount": 150,
        "invalidFiles": [{"path": f"x/{i}.jpg", "reason": "truncated"} for i in range(150)],
    }
    fields = ingest_fields(result, PLAN)
    assert fields["location"] == "pvc://kubearts-workspace/datasets/digits"
    assert fields["classes"] == ["daisy", "玫瑰"]
    assert (fields["sampleCount"], fields["classCount"], fields["sizeBytes"]) == (12, 2, 3000)
    assert fields["invalidFileCount"] == 150
    assert len(fields["invalidFiles"]) == 100
    assert fields["progress"] == {"bytes": 2500, "files": 162, "totalFiles": 162}


RECORD: dict[str, Any] = {
    "status": "Succeeded",
    "name": "v1",
    "trainRatio": 0.8,
    "seed": 7,
    "stratified": True,
    "split": True,
    "trainCount": 8,
    "evalCount": 2,
    "testCount": 0,
    "classes": {"a": {"train": 4, "eval": 1, "test": 0}, "b": {"train": 4, "eval": 1, "test": 0}},
    "warnings": [],
    "manifests": {
        "train": ".kubearts/versions/v1/train.jsonl",
        "eval": ".kubearts/versions/v1/eval.jsonl",
    },
    "manifestDigest": "sha256:cd",
}


def test_a_published_version_records_counts_and_manifest_locations() -> None:
    entry = version_entry(RECORD, PLAN, "2025-01-02T03:04:05Z")
    base = "pvc://kubearts-workspace/datasets/digits/.kubearts/versions/v1/"
    assert entry == {
        "name": "v1",
        "trainRatio": 0.8,
        "seed": 7,
        "stratified": True,
        "split": True,
        "trainCount": 8,
        "evalCount": 2,
        "perClass": {"a": {"train": 4, "eval": 1}, "b": {"train": 4, "eval": 1}},
        "manifests": {"train": base + "train.jsonl", "eval": base + "eval.jsonl"},
        "manifestDigest": "sha256:cd",
        "published": True,
        "publishTime": "2025-01-02T03:04:05Z",
        "warnings": [],
    }


def test_an_unsplit_version_says_so_and_has_no_eval_list() -> None:
    record = {**RECORD, "trainRatio": 1.0, "split": False, "trainCount": 10, "evalCount": 0}
    entry = version_entry(record, PLAN, None)
    assert entry["split"] is False
    assert entry["trainRatio"] == 1.0
    assert set(entry["manifests"]) == {"train"}


PUBLISHED = {"v1": {"name": "v1", "trainRatio": 0.8, "seed": 7, "stratified": True}}


@pytest.mark.parametrize(
    ("version", "problem"),
    [
        pytest.param(VersionPlan(0, "v1", 0.8, 7, True), None, id="unchanged"),
        pytest.param(VersionPlan(0, "v2", 0.5, 1, False), None, id="new-version"),
        pytest.param(
            VersionPlan(0, "v1", 0.7, 7, True),
            "spec.versions[0] (v1): trainRatio 0.7 (published 0.8)",
            id="ratio",
        ),
        pytest.param(
            VersionPlan(2, "v1", 0.8, 8, True),
            "spec.versions[2] (v1): seed 8 (published 7)",
            id="seed",
        ),
        pytest.param(
            VersionPlan(0, "v1", 0.8, 7, False),
            "spec.versions[0] (v1): stratified false (published true)",
            id="stratified",
        ),
    ],
)
def test_changing_a_published_split_is_a_conflict(
    version: VersionPlan, problem: str | None
) -> None:
    conflicts = version_conflicts([version], PUBLISHED)
    if problem is None:
        assert conflicts == []
    else:
        assert len(conflicts) == 1
        assert conflicts[0].startswith(problem)
        assert "new version" in conflicts[0]


def _line(event: dict[str, Any]) -> str:
    return json.dumps(event)


def test_progress_is_the_last_progress_line_among_other_output() -> None:
    log = "\n".join(
        [
            _line(
                {
                    "event": "progress",
                    "phase": "download",
                    "bytes": 10,
                    "totalBytes": 100,
                    "files": 0,
                    "totalFiles": None,
                }
            ),
            "2025-01-01 INFO kubearts_dataset: downloading",
            _line(
                {
                    "event": "progress",
                    "phase": "verify",
                    "bytes": 0,
                    "totalBytes": None,
                    "files": 30,
                    "totalFiles": 90,
                }
            ),
            "{not json",
        ]
    )
    assert progress_from_log(log) == {
        "phase": "verify",
        "bytes": 0,
        "totalBytes": None,
        "files": 30,
        "totalFiles": 90,
    }
    assert progress_from_log("no json here\n") is None


def test_the_full_result_is_read_from_the_log() -> None:
    log = (
        _line({"event": "progress", "phase": "verify"})
        + "\n"
        + _line({"event": "result", "status": "Succeeded", "classes": {"a": 1}})
    )
    assert result_from_log(log) == {"status": "Succeeded", "classes": {"a": 1}}
    assert result_from_log("") is None


@pytest.mark.parametrize(
    ("spec", "needs"),
    [
        pytest.param(
            {"source": {"uri": "https://x/a.tgz", "secretRef": {"name": "token"}}},
            [SecretNeed("token", "spec.source.secretRef", ("Authorization",))],
            id="http-source",
        ),
        pytest.param(
            {"source": {"uri": "s3://data/a.tgz", "secretRef": {"name": "creds"}}},
            [
                SecretNeed(
                    "creds",
                    "spec.source.secretRef",
                    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
                )
            ],
            id="s3-source",
        ),
        pytest.param(
            {
                "source": {"uri": "https://x/a.tgz", "secretRef": {"name": "token"}},
                "storage": {"uri": "s3://out/flowers", "secretRef": {"name": "creds"}},
            },
            [
                SecretNeed(
                    "creds",
                    "spec.storage.secretRef",
                    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
                ),
                SecretNeed("token", "spec.source.secretRef", ("Authorization",)),
            ],
            id="http-source-s3-target",
        ),
        pytest.param({"source": {"uri": "https://x/a.tgz"}}, [], id="public"),
    ],
)
def test_the_secrets_a_dataset_reads_and_the_keys_they_need(
    spec: dict[str, Any], needs: list[SecretNeed]
) -> None:
    plan = plan_dataset("digits", "ml", spec, workspace_pvc="kubearts-workspace")
    assert secret_needs(plan) == needs


@pytest.mark.parametrize(
    "kubelet",
    [
        pytest.param('secret "token" not found', id="missing-secret"),
        pytest.param("couldn't find key Authorization in Secret ml/token", id="missing-key"),
    ],
)
def test_a_pod_stuck_on_a_secret_is_a_wait_naming_the_field_and_keys(kubelet: str) -> None:
    spec = {"source": {"uri": "https://x/a.tgz", "secretRef": {"name": "token"}}}
    plan = plan_dataset("digits", "ml", spec, workspace_pvc="kubearts-workspace")
    wait = secret_wait(plan, kubelet)
    assert wait is not None
    assert wait.message.startswith("spec.source.secretRef: Secret 'token' in namespace ml")
    assert "create it with Authorization" in wait.message
    assert secret_wait(plan, 'secret "other" not found') is None


# --- the one decision of a step ------------------------------------------------------------------


def _view(job: dict[str, Any], result: dict[str, Any] | None = None) -> JobView:
    return JobView(job, job_state(job), result=result)


def _job(name: str, step: str, *conditions: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"kubearts.io/step": step, "kubearts.io/data-key": PLAN.data_key, **labels},
        },
        "status": {"conditions": [{"type": c, "status": "True"} for c in conditions]},
    }


def test_with_no_job_the_step_starts_the_ingest() -> None:
    step = decide(Observed(PLAN, {}))
    assert step.start_ingest
    assert (step.outcome.phase, step.wait) == ("Downloading", None)


def test_an_ingest_pod_stuck_on_its_secret_makes_the_dataset_wait() -> None:
    spec = {"source": {"uri": "https://x/a.tgz", "secretRef": {"name": "token"}}}
    plan = plan_dataset("digits", "ml", spec, workspace_pvc="kubearts-workspace")
    ingest = _job(plan.ingest_job_name, "ingest")
    stuck = JobView(
        ingest, "Running", waiting=("CreateContainerConfigError", 'secret "token" not found')
    )
    step = decide(Observed(plan, {"phase": "Downloading"}, [stuck]))
    assert not step.starts_jobs
    assert step.wait is not None
    assert step.outcome.phase == "Downloading"  # the poll goes on until the pod starts
    ready = next(u for u in step.outcome.updates if u.type == "Ready")
    assert ready.reason == "WaitingForDependency"


def test_a_failed_ingest_fails_the_dataset_with_the_workers_reason() -> None:
    ingest = _job(PLAN.ingest_job_name, "ingest", "Failed")
    result = {"status": "Failed", "reason": "DownloadFailed", "message": "404"}
    step = decide(Observed(PLAN, {}, [_view(ingest, result)]))
    assert not step.starts_jobs
    assert step.outcome.phase == "Failed"
    ready = next(u for u in step.outcome.updates if u.type == "Ready")
    assert (ready.reason, ready.message) == ("DownloadFailed", "404")


def test_a_completed_ingest_whose_result_is_lost_runs_again() -> None:
    ingest = _job(PLAN.ingest_job_name, "ingest", "Complete")
    step = decide(Observed(PLAN, {}, [_view(ingest)]))
    assert step.delete_jobs == (PLAN.ingest_job_name,)


def test_once_the_data_is_in_each_unpublished_version_gets_a_publish_job() -> None:
    spec = {
        "source": {"uri": "https://x/a.tgz"},
        "versions": [{"name": "v1", "trainRatio": 0.8}, {"name": "v2", "trainRatio": 0.5}],
    }
    plan = plan_dataset("digits", "ml", spec, workspace_pvc="kubearts-workspace")
    ingest = _job(plan.ingest_job_name, "ingest", "Complete")
    result = {"status": "Succeeded", "sampleCount": 10, "classCount": 2, "digest": "sha256:1"}
    step = decide(Observed(plan, {}, [_view(ingest, result)]))
    assert [v.name for v in step.publish] == ["v1", "v2"]
    assert step.outcome.phase == "Publishing"
