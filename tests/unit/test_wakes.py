"""Which objects a dependency wakes, and which of its changes wake them."""

from __future__ import annotations

from typing import Any

from kubearts.handlers import wakes

WAITING = {"conditions": [{"type": "Ready", "status": "False", "reason": "WaitingForDependency"}]}


def test_a_waiting_training_job_is_indexed_under_its_subscription_and_data_sets() -> None:
    index = wakes.waiting_index(wakes.training_job_references)
    spec = {
        "algorithm": {"subscription": "resnet"},
        "inputs": [{"dataset": "digits", "version": "v1"}, {"dataset": "extra"}],
    }
    assert index(namespace="ml", name="job", spec=spec, status=WAITING) == {
        ("ml", "subscriptions", "resnet"): "job",
        ("ml", "datasets", "digits"): "job",
        ("ml", "datasets", "extra"): "job",
    }


def test_an_object_that_does_not_wait_is_not_indexed() -> None:
    index = wakes.waiting_index(wakes.training_job_references)
    running = {"jobName": "job-train", "phase": "Running"}
    assert index(namespace="ml", name="job", spec={}, status=running) is None


def test_conversions_and_models_are_indexed_under_each_source() -> None:
    conversion = {
        "source": {"trainingJob": "train"},
        "verify": {"dataset": "digits"},
    }
    assert wakes.waiting_index(wakes.conversion_references)(
        namespace="ml", name="c", spec=conversion, status=WAITING
    ) == {("ml", "trainingjobs", "train"): "c", ("ml", "datasets", "digits"): "c"}
    model = {
        "versions": [
            {"version": "1", "source": {"trainingJob": "train"}},
            {"version": "2", "source": {"conversion": "onnx"}},
            {"version": "3", "source": {"template": "ARM-Ascend", "uri": "pvc://ws/om"}},
        ]
    }
    assert wakes.waiting_index(wakes.model_references)(
        namespace="ml", name="m", spec=model, status=WAITING
    ) == {("ml", "trainingjobs", "train"): "m", ("ml", "modelconversions", "onnx"): "m"}


def _dependency(**status: Any) -> dict[str, Any]:
    return {"status": status}


def test_readiness_changes_with_what_ends_a_wait_and_not_with_progress() -> None:
    running = _dependency(
        phase="Running",
        conditions=[{"type": "Ready", "status": "False", "reason": "JobRunning"}],
        progress={"percent": 10},
    )
    further = _dependency(**{**running["status"], "progress": {"percent": 60}})
    done = _dependency(
        phase="Succeeded", conditions=[{"type": "Ready", "status": "True", "reason": "Complete"}]
    )
    assert wakes.readiness(running) == wakes.readiness(further)
    assert wakes.readiness(running) != wakes.readiness(done)
    published = _dependency(versions=[{"name": "v1", "published": True}])
    assert wakes.readiness(published) != wakes.readiness(_dependency(versions=[]))
    registered = _dependency(versions=[{"version": "1.0.0", "ready": True}])
    assert wakes.readiness(registered) != wakes.readiness(_dependency())


def test_a_job_wakes_its_owner_when_it_starts_and_ends_not_when_nothing_changed() -> None:
    created = {"status": {}}
    running = {"status": {"active": 1}}
    again = {"status": {"active": 1}, "metadata": {"resourceVersion": "2"}}
    done = {"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}
    states = [wakes.job_state(job) for job in (created, running, again, done)]
    assert states == ["0/0/0", "1/0/0", "1/0/0", "0/1/0/Complete"]
