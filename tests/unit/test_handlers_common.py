"""kubearts.handlers.common: how every handler writes status and reports problems."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import kopf
import pytest
from prometheus_client import REGISTRY

from kubearts.conditions import SpecError
from kubearts.config import Config, load_config
from kubearts.constants import DATASET, INFERENCE_SERVICE, MODEL, TRAINING_JOB
from kubearts.handlers.common import (
    ConditionUpdate,
    following,
    forget_deleted,
    generation_of,
    invalid_spec,
    operator_config,
    status_changes,
    wait,
    waiting,
    write_status,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)
NOT_READY = ConditionUpdate("Ready", "False", "JobPending", "not yet")
LOGGER = logging.getLogger("test")


def body(generation: int = 1, status: dict[str, Any] | None = None, name: str = "obj") -> kopf.Body:
    raw: dict[str, Any] = {
        "apiVersion": "kubearts.io/v1alpha1",
        "metadata": {"name": name, "namespace": "ml", "generation": generation, "uid": "u"},
        "spec": {},
    }
    if status is not None:
        raw["status"] = status
    return kopf.Body(cast(kopf.RawBody, raw))


def objects_gauge(kind: str, condition: str, status: str) -> float | None:
    return REGISTRY.get_sample_value(
        "kubearts_objects", {"kind": kind, "condition": condition, "status": status}
    )


def test_first_write_sets_conditions_generation_and_phase() -> None:
    assert status_changes({}, 4, [NOT_READY], now=T0) == {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "JobPending",
                "message": "not yet",
                "lastTransitionTime": "2024-05-01T12:00:00Z",
                "observedGeneration": 4,
            }
        ],
        "observedGeneration": 4,
        "phase": "NotReady",
    }


def test_unchanged_status_means_nothing_to_write() -> None:
    current = status_changes({}, 4, [NOT_READY], now=T0)
    assert status_changes(current, 4, [NOT_READY], now=T1) == {}


def test_new_generation_rewrites_generation_but_keeps_transition_time() -> None:
    current = status_changes({}, 4, [NOT_READY], now=T0)
    changes = status_changes(current, 5, [NOT_READY], now=T1)
    assert set(changes) == {"conditions", "observedGeneration"}
    assert changes["observedGeneration"] == 5
    assert changes["conditions"][0]["observedGeneration"] == 5
    assert changes["conditions"][0]["lastTransitionTime"] == "2024-05-01T12:00:00Z"


def test_updates_apply_in_order_and_the_whole_list_is_written() -> None:
    current = status_changes({}, 1, [ConditionUpdate("Created", "True", "JobCreated", "")], now=T0)
    changes = status_changes(
        current,
        1,
        [
            ConditionUpdate("Running", "True", "JobRunning", ""),
            ConditionUpdate("Ready", "False", "JobRunning", "training"),
        ],
        now=T1,
    )
    assert [c["type"] for c in changes["conditions"]] == ["Created", "Running", "Ready"]
    assert changes["phase"] == "Running"


def test_fields_are_written_and_may_override_the_phase() -> None:
    changes = status_changes(
        {}, 1, [NOT_READY], fields={"phase": "Downloading", "url": "http://x"}, now=T0
    )
    assert (changes["phase"], changes["url"]) == ("Downloading", "http://x")


def test_write_status_fills_kopf_patch() -> None:
    patch = kopf.Patch()
    conditions = write_status(patch, body(generation=2), MODEL, [NOT_READY], now=T0)
    assert patch.status["conditions"] == conditions
    assert patch.status["observedGeneration"] == 2
    assert patch.status["phase"] == "NotReady"


def test_write_status_calls_accumulate_within_one_handler_run() -> None:
    patch = kopf.Patch()
    obj = body()
    write_status(patch, obj, MODEL, [ConditionUpdate("Created", "True", "JobCreated", "")])
    conditions = write_status(patch, obj, MODEL, [NOT_READY])
    assert [c["type"] for c in conditions] == ["Created", "Ready"]
    assert patch.status["conditions"] == conditions


def test_write_status_writes_nothing_when_nothing_changed() -> None:
    first = kopf.Patch()
    write_status(first, body(), MODEL, [NOT_READY], now=T0)
    second = kopf.Patch()
    write_status(second, body(status=dict(first.status)), MODEL, [NOT_READY], now=T1)
    assert not second


def test_write_status_counts_objects_per_condition() -> None:
    before = objects_gauge("InferenceService", "Ready", "False") or 0
    write_status(kopf.Patch(), body(name="gauge-a"), INFERENCE_SERVICE, [NOT_READY])
    write_status(kopf.Patch(), body(name="gauge-b"), INFERENCE_SERVICE, [NOT_READY])
    assert objects_gauge("InferenceService", "Ready", "False") == before + 2


def test_deleted_objects_leave_the_gauge() -> None:
    write_status(kopf.Patch(), body(name="gone"), DATASET, [NOT_READY])
    before = objects_gauge("Dataset", "Ready", "False")
    assert before is not None
    event = {"type": "DELETED", "object": {"kind": "Dataset", **body(name="gone")}}
    forget_deleted(event=event)
    assert objects_gauge("Dataset", "Ready", "False") == before - 1


def test_invalid_spec_marks_the_object_and_returns_a_permanent_error() -> None:
    patch = kopf.Patch()
    error = invalid_spec(
        TRAINING_JOB,
        body(),
        patch,
        SpecError("spec.resources.pool", "unknown pool 'tpu'", "use gpu"),
    )
    assert isinstance(error, kopf.PermanentError)
    assert str(error) == "spec.resources.pool: unknown pool 'tpu'; use gpu"
    (condition,) = patch.status["conditions"]
    assert (condition["reason"], condition["message"]) == ("InvalidSpec", str(error))


def test_wait_marks_the_object_and_ends_the_handler_so_a_change_can_wake_it() -> None:
    patch = kopf.Patch()
    assert wait(MODEL, body(), patch, "TrainingJob 'mnist' has not succeeded") is None
    (condition,) = patch.status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "WaitingForDependency")
    assert waiting(patch.status)
    assert following(patch.status)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(
            {"conditions": [{"type": "Ready", "status": "False", "reason": "ModelNotReady"}]},
            True,
            id="model-not-ready",
        ),
        pytest.param({"jobName": "j", "phase": "Running"}, True, id="running"),
        pytest.param({"jobName": "j", "phase": "Succeeded"}, False, id="succeeded"),
        pytest.param(
            {"conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSpec"}]},
            False,
            id="invalid-spec",
        ),
        pytest.param({}, False, id="nothing-yet"),
    ],
)
def test_the_timers_follow_waiting_and_running_objects(
    status: dict[str, Any], expected: bool
) -> None:
    assert following(status) is expected


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        pytest.param({"generation": 9}, 9, id="set"),
        pytest.param({}, 0, id="absent"),
    ],
)
def test_generation_of(metadata: dict[str, Any], expected: int) -> None:
    assert generation_of({"metadata": metadata}) == expected


def test_operator_config_comes_from_the_memo() -> None:
    config = Config(namespace="elsewhere")
    assert operator_config(kopf.Memo(config=config)) is config


def test_operator_config_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEARTS_NAMESPACE", "from-env")
    assert operator_config(kopf.Memo()) == load_config()
    assert operator_config(kopf.Memo()).namespace == "from-env"
