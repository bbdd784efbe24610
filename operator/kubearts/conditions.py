"""Pure helpers for ``status.conditions``: set, read and summarise them.

Conditions follow the Kubernetes convention (``metav1.Condition``): type, status
("True"/"False"/"Unknown"), a CamelCase reason, a message for people, lastTransitionTime
and observedGeneration. The helpers never mutate their input; they return the whole new
list, because a JSON merge patch replaces lists as a whole, so the full list is what a
handler writes back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, cast, get_args

from kubearts.constants import (
    COND_FAILED,
    COND_READY,
    COND_RUNNING,
    COND_SUCCEEDED,
    FALSE,
    PHASE_FAILED,
    PHASE_NOT_READY,
    PHASE_PENDING,
    PHASE_READY,
    PHASE_RUNNING,
    PHASE_SUCCEEDED,
    REASON_INVALID_SPEC,
    REASON_WAITING_FOR_DEPENDENCY,
    TRUE,
    UNKNOWN,
    ConditionStatus,
)

__all__ = [
    "Condition",
    "ConditionStatus",
    "ConditionUpdate",
    "SpecError",
    "StatusEvent",
    "get_condition",
    "is_false",
    "is_true",
    "phase",
    "rfc3339",
    "set_condition",
    "status_events",
]


class Condition(TypedDict):
    """One entry of ``status.conditions``."""

    type: str
    status: ConditionStatus
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


# The API server's validation for metav1.Condition.reason: CamelCase words, may contain
# ',', ':' and '_' inside, at most 1024 characters.
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_TYPE = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ConditionUpdate:
    """One condition to set: the type and the values it should have now."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


_STATUSES: frozenset[str] = frozenset(get_args(ConditionStatus))


class SpecError(ValueError):
    """The spec cannot work as written: ``field`` names the spec path, ``problem`` what is
    wrong and ``fix`` how to correct it; ``reason`` is the condition reason to report.

    The one shape every kind uses for invalid input; ``handlers.common.invalid_spec``
    turns it into the False condition and kopf's PermanentError.
    """

    def __init__(
        self, field: str, problem: str, fix: str, reason: str = REASON_INVALID_SPEC
    ) -> None:
        super().__init__(f"{field}: {problem}; {fix}")
        self.field = field
        self.problem = problem
        self.fix = fix
        self.reason = reason

    @property
    def message(self) -> str:
        """``<field>: <problem>; <fix>``, the text of the condition."""
        return str(self)


@dataclass(frozen=True)
class Wait:
    """A dependency is missing or not ready yet: retried later, never a failure (a folder
    of manifests applied at once creates objects before what they depend on is ready).
    ``reason`` is the Ready condition's reason meanwhile."""

    message: str
    reason: str = REASON_WAITING_FOR_DEPENDENCY


def describe(obj: Mapping[str, Any], type: str) -> str:
    """``<reason>: <message>`` of an object's ``type`` condition, for messages about it."""
    condition = get_condition((obj.get("status") or {}).get("conditions"), type)
    if condition is None:
        return "not reconciled yet"
    return f"{condition['reason']}: {condition['message']}".strip(": ")


@dataclass(frozen=True)
class StatusEvent:
    """A Kubernetes Event to post on the object: ``Normal`` or ``Warning``."""

    type: str
    reason: str
    message: str


def status_events(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[StatusEvent]:
    """The Events a status change is worth (pure), so ``kubectl describe`` tells the story.

    ``before`` and ``after`` are the object's status. One Event each time ``Ready``
    changes its status or reason — Downloading, Verifying, Published — a Warning when the
    object has failed (phase Failed) or Ready turns False after having been True, Normal
    otherwise; and a Warning when a ``Failed`` condition turns True. Progress within a
    state posts nothing: a Job polled every few seconds must not flood the event stream.
    """
    events: list[StatusEvent] = []
    old_conditions, new_conditions = before.get("conditions"), after.get("conditions")
    old_ready = get_condition(old_conditions, COND_READY)
    new_ready = get_condition(new_conditions, COND_READY)
    failed = after.get("phase") == PHASE_FAILED
    if new_ready is not None and (
        old_ready is None
        or (old_ready["status"], old_ready["reason"]) != (new_ready["status"], new_ready["reason"])
    ):
        lost = old_ready is not None and old_ready["status"] == TRUE
        warning = new_ready["status"] == FALSE and (failed or lost)
        kind = "Warning" if warning else "Normal"
        events.append(StatusEvent(kind, new_ready["reason"], new_ready["message"]))
    old_failed = get_condition(old_conditions, COND_FAILED)
    new_failed = get_condition(new_conditions, COND_FAILED)
    if (
        new_failed is not None
        and new_failed["status"] == TRUE
        and (old_failed is None or old_failed["status"] != TRUE)
        and all(event.reason != new_failed["reason"] for event in events)
    ):
        events.append(StatusEvent("Warning", new_failed["reason"], new_failed["message"]))
    return events


def rfc3339(moment: datetime | None = None) -> str:
    """Format ``moment`` (default: now) as RFC 3339 in UTC with second precision."""
    moment = datetime.now(UTC) if moment is None else moment
    if moment.tzinfo is None:
        # A naive datetime is a programming error waiting to happen; treat it as UTC.
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: datetime | None = None,
) -> list[Condition]:
    """Return a new condition list with condition ``type`` set to the given values.

    - ``lastTransitionTime`` is ``now`` when the condition is new or its status flips, and
      is kept from the old entry otherwise (a new reason or message is not a transition).
    - ``observedGeneration`` is always set to ``generation``.
    - Order is stable: an existing condition keeps its position, a new one is appended.
    - Other entries are copied unchanged: what this call was not asked to change is
      written back exactly as it was read.

    Raises ValueError for a status outside True/False/Unknown, a reason that is not
    CamelCase, or a condition type that is not a valid name: those are programming errors
    that the API server would otherwise refuse with a less helpful message.
    """
    if status not in _STATUSES:
        raise ValueError(f"condition status must be one of True, False, Unknown, not {status!r}")
    if not _TYPE.match(type) or len(type) > 316:
        raise ValueError(f"condition type {type!r} is not a CamelCase name like 'Ready'")
    if not _REASON.match(reason) or len(reason) > 1024:
        raise ValueError(f"condition reason {reason!r} is not a CamelCase word like 'Complete'")
    if generation < 0:
        raise ValueError(f"generation must be >= 0, not {generation}")

    result: list[Condition] = []
    found = False
    for entry in conditions or ():
        if entry.get("type") != type:
            result.append(cast(Condition, dict(entry)))
            continue
        current = _normalise(entry)
        if found:
            # Duplicate entries of one type cannot be written back (the API server keys the
            # list by type); keep the first, which is the one updated.
            continue
        found = True
        flipped = current["status"] != status or not current["lastTransitionTime"]
        result.append(
            {
                "type": type,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": rfc3339(now) if flipped else current["lastTransitionTime"],
                "observedGeneration": generation,
            }
        )
    if not found:
        result.append(
            {
                "type": type,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": rfc3339(now),
                "observedGeneration": generation,
            }
        )
    return result


def get_condition(conditions: Iterable[Mapping[str, Any]] | None, type: str) -> Condition | None:
    """Return the condition of ``type`` (normalised), or None when there is none."""
    for entry in conditions or ():
        if entry.get("type") == type:
            return _normalise(entry)
    return None


def is_true(conditions: Iterable[Mapping[str, Any]] | None, type: str) -> bool:
    """True when condition ``type`` exists and its status is "True"."""
    condition = get_condition(conditions, type)
    return condition is not None and condition["status"] == TRUE


def is_false(conditions: Iterable[Mapping[str, Any]] | None, type: str) -> bool:
    """True when condition ``type`` exists and its status is "False" (not merely absent)."""
    condition = get_condition(conditions, type)
    return condition is not None and condition["status"] == FALSE


def phase(conditions: Iterable[Mapping[str, Any]] | None) -> str:
    """Summarise conditions as the short ``status.phase`` printed by ``kubectl get``.

    Terminal states win over progress: Failed, then Succeeded, then Running; a kind without
    those reports Ready or NotReady from its Ready condition, and Pending while Ready is
    absent or Unknown.
    """
    items = list(conditions or ())
    if is_true(items, COND_FAILED):
        return PHASE_FAILED
    if is_true(items, COND_SUCCEEDED):
        return PHASE_SUCCEEDED
    if is_true(items, COND_RUNNING):
        return PHASE_RUNNING
    if is_true(items, COND_READY):
        return PHASE_READY
    if is_false(items, COND_READY):
        return PHASE_NOT_READY
    return PHASE_PENDING


def _normalise(entry: Mapping[str, Any]) -> Condition:
    """Copy an entry read from the API into the full :class:`Condition` shape.

    Objects edited by hand or written by older versions may lack fields or carry odd
    values; missing text becomes "", an unknown status "Unknown", a missing generation 0.
    """
    status = entry.get("status")
    generation = entry.get("observedGeneration")
    return {
        "type": str(entry.get("type", "")),
        "status": cast(ConditionStatus, status) if status in _STATUSES else UNKNOWN,
        "reason": str(entry.get("reason") or ""),
        "message": str(entry.get("message") or ""),
        "lastTransitionTime": str(entry.get("lastTransitionTime") or ""),
        "observedGeneration": generation if isinstance(generation, int) else 0,
    }
