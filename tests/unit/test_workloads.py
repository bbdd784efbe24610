"""kubearts.workloads: how every kind follows its worker Job — the Job's state, the pod's
reasons, progress lines, the worker's result, and failures with the log's tail."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubearts.builders.jobs import JobLimits, worker_job
from kubearts.builders.placement import build_placement
from kubearts.config import DEFAULT_POOLS
from kubearts.constants import TRAINING_JOB
from kubearts.workloads import (
    JobView,
    job_failure,
    job_state,
    log_tail,
    observe_job,
    pod_waiting,
    worker_result,
)

EXIT_REASONS = {10: "DownloadFailed"}


def job(*conditions: tuple[str, str], deadline: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "digits-ingest-1"},
        "status": {
            "conditions": [
                {"type": kind, "status": "True", "reason": reason} for kind, reason in conditions
            ]
        },
    }
    if deadline is not None:
        body["spec"] = {"activeDeadlineSeconds": deadline}
    return body


def pod(state: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    containers = [] if state is None else [{"name": "worker", "state": state}]
    return {
        "metadata": {"name": "digits-ingest-1-abcde", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"containerStatuses": containers, **status},
    }


def terminated(code: int, message: str = "", reason: str = "") -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "message": message, "reason": reason}}


@pytest.mark.parametrize(
    ("conditions", "state"),
    [
        pytest.param((), "Running", id="no-condition"),
        pytest.param((("Complete", ""),), "Complete", id="complete"),
        pytest.param((("Failed", "BackoffLimitExceeded"),), "Failed", id="failed"),
    ],
)
def test_job_state_follows_the_jobs_conditions(conditions: Any, state: str) -> None:
    assert job_state(job(*conditions)) == state


def test_a_deadline_names_the_deadline_and_the_reason() -> None:
    failure = job_failure(job(("Failed", "DeadlineExceeded"), deadline=600))
    assert failure["reason"] == "DeadlineExceeded"
    assert "deadline of 600 s" in failure["message"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(
            {"containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]},
            None,
            id="starting",
        ),
        pytest.param(
            {
                "containerStatuses": [
                    {"state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}
                ]
            },
            ("ErrImagePull", "not found"),
            id="image",
        ),
        pytest.param(
            {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.",
                    }
                ]
            },
            ("Unschedulable", "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."),
            id="unschedulable",
        ),
    ],
)
def test_why_a_pod_does_not_run(status: dict[str, Any], expected: Any) -> None:
    assert pod_waiting({"status": status}) == expected


def test_a_result_in_the_termination_message_is_the_result() -> None:
    message = json.dumps({"status": "Succeeded", "sampleCount": 3})
    assert worker_result({"exitCode": 0, "message": message}, None, EXIT_REASONS) == {
        "status": "Succeeded",
        "sampleCount": 3,
    }


def test_a_truncated_result_is_read_whole_from_the_log() -> None:
    message = json.dumps({"status": "Succeeded", "truncated": True})
    log = "starting\n" + json.dumps({"event": "result", "status": "Succeeded", "classes": [1]})
    result = worker_result({"exitCode": 0, "message": message}, log, EXIT_REASONS)
    assert result == {"status": "Succeeded", "classes": [1]}


def test_exit_zero_without_a_result_is_a_failure_not_an_empty_success() -> None:
    result = worker_result({"exitCode": 0, "message": ""}, "done\n", EXIT_REASONS)
    assert (result["status"], result["reason"]) == ("Failed", "ResultMissing")
    assert result["message"].endswith("done")


def test_a_known_exit_code_names_its_reason_with_the_log_tail() -> None:
    log = "\n".join(f"line {i}" for i in range(100)) + "\nTraceback: boom"
    result = worker_result({"exitCode": 10, "message": ""}, log, EXIT_REASONS)
    assert (result["status"], result["reason"]) == ("Failed", "DownloadFailed")
    assert "Traceback: boom" in result["message"]
    assert "line 0\n" not in result["message"]


def test_an_oom_kill_is_reported_as_such() -> None:
    result = worker_result({"exitCode": 137, "reason": "OOMKilled"}, "", EXIT_REASONS)
    assert (result["status"], result["reason"]) == ("Failed", "OOMKilled")


def test_the_log_tail_is_bounded_in_lines_and_characters() -> None:
    text = "\n".join("x" * 500 for _ in range(100))
    tail = log_tail(text)
    assert len(tail) <= 1500
    assert log_tail("a\nb\nc", lines=2) == "b\nc"


class Logs:
    """A log reader that records what it was asked for."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls: list[tuple[str, int | None]] = []

    def __call__(self, name: str, tail: int | None) -> str:
        self.calls.append((name, tail))
        return self.text


def test_a_running_job_shows_the_last_progress_line() -> None:
    logs = Logs(
        json.dumps({"event": "progress", "files": 1})
        + "\n"
        + json.dumps({"event": "progress", "files": 2})
    )
    view = observe_job(job(), [pod({"running": {}})], logs, EXIT_REASONS)
    assert (view.state, view.progress, view.result) == ("Running", {"files": 2}, None)
    assert logs.calls == [("digits-ingest-1-abcde", 20)]


def test_a_finished_job_reads_the_log_only_when_the_message_lacks_the_result() -> None:
    logs = Logs("")
    message = json.dumps({"status": "Succeeded"})
    view = observe_job(job(("Complete", "")), [pod(terminated(0, message))], logs, EXIT_REASONS)
    assert view.succeeded
    assert logs.calls == []


def test_a_failed_job_whose_pod_is_gone_takes_the_jobs_reason() -> None:
    view = observe_job(job(("Failed", "DeadlineExceeded"), deadline=5), [], Logs(""), {})
    assert view == JobView(view.job, "Failed", result=view.result)
    assert view.result is not None
    assert view.result["reason"] == "DeadlineExceeded"
    assert not view.succeeded


def test_a_worker_job_is_bounded_in_time_and_scratch_space() -> None:
    owner = {"metadata": {"name": "t", "namespace": "ml", "uid": "u-1"}}
    manifest = worker_job(
        TRAINING_JOB,
        owner,
        name="t-train",
        labels={"kubearts.io/trainingjob": "t"},
        container={"name": "train", "image": "trainer:1", "args": ["--epochs=1"]},
        placement=build_placement("cpu", 0, DEFAULT_POOLS),
        limits=JobLimits(600, scratch_size="2Gi", ttl_seconds_after_finished=60),
    )
    spec = manifest["spec"]
    assert (spec["activeDeadlineSeconds"], spec["backoffLimit"]) == (600, 0)
    assert spec["ttlSecondsAfterFinished"] == 60
    pod_spec = spec["template"]["spec"]
    assert {"name": "scratch", "emptyDir": {"sizeLimit": "2Gi"}} in pod_spec["volumes"]
    assert pod_spec["automountServiceAccountToken"] is False
    (container,) = pod_spec["containers"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "u-1"
