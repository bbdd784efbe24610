"""kubearts.conditions: setting, reading and summarising status.conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from kubearts.conditions import (
    get_condition,
    is_false,
    is_true,
    phase,
    rfc3339,
    set_condition,
    status_events,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def ready(status: str, reason: str = "Reason", generation: int = 1) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": "m",
        "lastTransitionTime": rfc3339(T0),
        "observedGeneration": generation,
    }


def test_new_condition_is_appended_with_every_field() -> None:
    result = set_condition([], "Ready", "False", "NotImplemented", "not yet", 3, now=T0)
    assert result == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "NotImplemented",
            "message": "not yet",
            "lastTransitionTime": "2024-05-01T12:00:00Z",
            "observedGeneration": 3,
        }
    ]


def test_none_is_an_empty_list() -> None:
    assert len(set_condition(None, "Ready", "True", "Available", "", 1, now=T0)) == 1


@pytest.mark.parametrize(
    ("old", "new", "expected_time"),
    [
        pytest.param("False", "True", T1, id="false-to-true"),
        pytest.param("True", "False", T1, id="true-to-false"),
        pytest.param("Unknown", "True", T1, id="unknown-to-true"),
        pytest.param("True", "True", T0, id="true-stays-true"),
        pytest.param("False", "False", T0, id="false-stays-false"),
    ],
)
def test_transition_time_changes_only_when_status_flips(
    old: str, new: Any, expected_time: datetime
) -> None:
    (result,) = set_condition([ready(old)], "Ready", new, "Other", "new message", 1, now=T1)
    assert result["lastTransitionTime"] == rfc3339(expected_time)


def test_reason_and_message_change_without_a_flip() -> None:
    (result,) = set_condition([ready("False")], "Ready", "False", "Waiting", "new", 1, now=T1)
    assert (result["reason"], result["message"]) == ("Waiting", "new")


def test_missing_transition_time_is_filled_in() -> None:
    old = {"type": "Ready", "status": "True", "reason": "R", "message": ""}
    (result,) = set_condition([old], "Ready", "True", "R", "", 2, now=T1)
    assert result["lastTransitionTime"] == rfc3339(T1)


@pytest.mark.parametrize("flip", [True, False], ids=["flip", "no-flip"])
def test_observed_generation_is_always_set(flip: bool) -> None:
    (result,) = set_condition(
        [ready("True", generation=1)], "Ready", "False" if flip else "True", "R", "", 7, now=T1
    )
    assert result["observedGeneration"] == 7


def test_order_is_stable_and_others_are_untouched() -> None:
    created: dict[str, Any] = {
        "type": "Created",
        "status": "True",
        "reason": "JobCreated",
        "extra": "kept",
    }
    running: dict[str, Any] = {"type": "Running", "status": "True", "reason": "JobRunning"}
    conditions = [created, ready("False"), running]
    result = set_condition(conditions, "Ready", "True", "Complete", "", 2, now=T1)
    assert [c["type"] for c in result] == ["Created", "Ready", "Running"]
    assert result[0] == created
    assert result[2] == running


def test_input_is_not_mutated() -> None:
    conditions = [ready("False")]
    snapshot = [dict(c) for c in conditions]
    set_condition(conditions, "Ready", "True", "Complete", "done", 2, now=T1)
    assert conditions == snapshot


def test_duplicate_entries_of_the_type_collapse_into_one() -> None:
    result = set_condition([ready("False"), ready("True")], "Ready", "True", "R", "", 1, now=T1)
    assert [c["type"] for c in result] == ["Ready"]


@pytest.mark.parametrize(
    ("type_", "status", "reason"),
    [
        pytest.param("Ready", "Yes", "Complete", id="bad-status"),
        pytest.param("Ready", "True", "not camel case", id="reason-with-spaces"),
        pytest.param("Ready", "True", "", id="empty-reason"),
        pytest.param("", "True", "Complete", id="empty-type"),
    ],
)
def test_invalid_values_are_refused(type_: str, status: Any, reason: str) -> None:
    with pytest.raises(ValueError, match="condition"):
        set_condition([], type_, status, reason, "", 1, now=T0)


def test_negative_generation_is_refused() -> None:
    with pytest.raises(ValueError, match="generation"):
        set_condition([], "Ready", "True", "Complete", "", -1, now=T0)


def test_get_condition_normalises_missing_fields() -> None:
    found = get_condition([{"type": "Ready", "status": "Maybe"}], "Ready")
    assert found == {
        "type": "Ready",
        "status": "Unknown",
        "reason": "",
        "message": "",
        "lastTransitionTime": "",
        "observedGeneration": 0,
    }


def test_get_condition_of_absent_type_is_none() -> None:
    assert get_condition([ready("True")], "Succeeded") is None


@pytest.mark.parametrize(
    ("conditions", "true", "false"),
    [
        pytest.param([ready("True")], True, False, id="true"),
        pytest.param([ready("False")], False, True, id="false"),
        pytest.param([ready("Unknown")], False, False, id="unknown"),
        pytest.param([], False, False, id="absent"),
    ],
)
def test_is_true_and_is_false(conditions: list[dict[str, Any]], true: bool, false: bool) -> None:
    assert (is_true(conditions, "Ready"), is_false(conditions, "Ready")) == (true, false)


def cond(type_: str, status: str) -> dict[str, str]:
    return {"type": type_, "status": status}


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        pytest.param([], "Pending", id="nothing-yet"),
        pytest.param([cond("Ready", "Unknown")], "Pending", id="ready-unknown"),
        pytest.param([cond("Ready", "False")], "NotReady", id="not-ready"),
        pytest.param([cond("Ready", "True")], "Ready", id="ready"),
        pytest.param([cond("Created", "True"), cond("Running", "True")], "Running", id="running"),
        pytest.param(
            [cond("Running", "False"), cond("Succeeded", "True"), cond("Ready", "True")],
            "Succeeded",
            id="succeeded-wins-over-ready",
        ),
        pytest.param(
            [cond("Succeeded", "True"), cond("Failed", "True")], "Failed", id="failed-wins"
        ),
    ],
)
def test_phase_summarises_conditions(conditions: list[dict[str, str]], expected: str) -> None:
    assert phase(conditions) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(T0, "2024-05-01T12:00:00Z", id="utc"),
        pytest.param(
            datetime(2024, 5, 1, 14, 0, 0, 999, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01T12:00:00Z",
            id="offset-converted-and-truncated",
        ),
        pytest.param(datetime(2024, 5, 1, 12, 0, 0), "2024-05-01T12:00:00Z", id="naive-is-utc"),
    ],
)
def test_rfc3339(moment: datetime, expected: str) -> None:
    assert rfc3339(moment) == expected


def _status(phase: str, *conditions: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "phase": phase,
        "conditions": [
            {"type": kind, "status": status, "reason": reason, "message": reason}
            for kind, status, reason in conditions
        ],
    }


@pytest.mark.parametrize(
    ("before", "after", "events"),
    [
        pytest.param(
            _status("Pending"),
            _status("Downloading", ("Ready", "False", "Downloading")),
            [("Normal", "Downloading")],
            id="first-state",
        ),
        pytest.param(
            _status("Downloading", ("Ready", "False", "Downloading")),
            _status("Downloading", ("Ready", "False", "Downloading")),
            [],
            id="progress-posts-nothing",
        ),
        pytest.param(
            _status("Publishing", ("Ready", "False", "Publishing")),
            _status("Ready", ("Ready", "True", "Published")),
            [("Normal", "Published")],
            id="ready",
        ),
        pytest.param(
            _status("Downloading", ("Ready", "False", "Downloading")),
            _status("Failed", ("Ready", "False", "DownloadFailed")),
            [("Warning", "DownloadFailed")],
            id="failed-phase",
        ),
        pytest.param(
            _status("Ready", ("Ready", "True", "Published")),
            _status("NotReady", ("Ready", "False", "ModelLoadFailed")),
            [("Warning", "ModelLoadFailed")],
            id="ready-lost",
        ),
        pytest.param(
            _status("Pending", ("Failed", "False", "InputsValid")),
            _status("Failed", ("Failed", "True", "OOMKilled"), ("Ready", "False", "OOMKilled")),
            [("Warning", "OOMKilled")],
            id="failed-condition-once",
        ),
    ],
)
def test_status_changes_worth_an_event(
    before: dict[str, Any], after: dict[str, Any], events: list[tuple[str, str]]
) -> None:
    assert [(e.type, e.reason) for e in status_events(before, after)] == events
