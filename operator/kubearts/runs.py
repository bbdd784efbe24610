"""The conditions of a run (pure): one worker Job that a kind starts once and follows.

A TrainingJob and a ModelConversion each start one Job and then only watch it. Both speak
of it the same way, with the conditions of Kubeflow's training jobs:

- ``Created`` when the Job exists; ``Running`` while its pod runs (Unknown while it starts,
  False with the pod's reason while it cannot start);
- ``Succeeded`` or ``Failed`` when it ends, ``Failed`` with the reason the worker gave (or
  the one lifted from the pod: OOMKilled, DeadlineExceeded, an exit code with the log);
- ``Ready`` mirrors the outcome for ``kubectl wait --for=condition=Ready``;
- a Job deleted before it finished fails the run (``JobMissing``): a new run is a new
  object, never a silent restart.

What a kind adds — its progress fields while running, its result fields at the end — it
passes in as functions; :func:`follow` decides which of them applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kubearts.conditions import ConditionUpdate, SpecError, Wait, describe, is_true
from kubearts.constants import (
    COND_CREATED,
    COND_FAILED,
    COND_READY,
    COND_RUNNING,
    COND_SUCCEEDED,
    FALSE,
    REASON_DEPENDENCY_FAILED,
    REASON_JOB_CREATED,
    REASON_JOB_FAILED,
    REASON_JOB_PENDING,
    TRUE,
    UNKNOWN,
    ConditionStatus,
)
from kubearts.workloads import JobView, job_failure

__all__ = [
    "COND_SPEC_VALID",
    "REASON_JOB_MISSING",
    "REASON_SPEC_IMMUTABLE",
    "RunStatus",
    "finished",
    "follow",
    "must_have_succeeded",
    "run_created",
    "run_failed",
    "spec_check",
]

REASON_JOB_MISSING: Final = "JobMissing"
REASON_SPEC_IMMUTABLE: Final = "SpecImmutable"
COND_SPEC_VALID: Final = "SpecValid"


@dataclass
class RunStatus:
    """What one look at the run gives: conditions to set and status fields."""

    updates: list[ConditionUpdate] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    def set(self, type: str, status: ConditionStatus, reason: str, message: str) -> None:
        self.updates.append(ConditionUpdate(type, status, reason, message))


def finished(status: Mapping[str, Any]) -> bool:
    """Whether the run has ended, either way."""
    conditions = status.get("conditions")
    return is_true(conditions, COND_SUCCEEDED) or is_true(conditions, COND_FAILED)


def spec_check(current_digest: str, job_digest: str | None, kind: str) -> ConditionUpdate:
    """SpecValid: the spec is still the one the run started with, or an edit is refused."""
    if job_digest is None or job_digest == current_digest:
        return ConditionUpdate(COND_SPEC_VALID, TRUE, "RunSpec", "the spec the run started with")
    return ConditionUpdate(
        COND_SPEC_VALID,
        FALSE,
        REASON_SPEC_IMMUTABLE,
        "the spec changed after the run started; the running job keeps its spec: restore the "
        f"previous spec, or create a new {kind} for the new run",
    )


def must_have_succeeded(
    kind: str, name: str, obj: Mapping[str, Any] | None, where: str
) -> SpecError | Wait | None:
    """None when the run ``obj`` (a ``kind`` named at spec field ``where``) has succeeded;
    :class:`Wait` while it is missing or still running; a SpecError once it failed, since
    a run never starts again."""
    if obj is None:
        return Wait(f"{kind} {name!r} ({where}) does not exist yet")
    conditions = (obj.get("status") or {}).get("conditions")
    if is_true(conditions, COND_FAILED):
        return SpecError(
            where,
            f"{kind} {name!r} failed ({describe(obj, COND_FAILED)})",
            f"point {where} at a succeeded {kind}",
            REASON_DEPENDENCY_FAILED,
        )
    if not is_true(conditions, COND_SUCCEEDED):
        return Wait(f"{kind} {name!r} has not finished yet")
    return None


def run_created(job_name: str, started: str, what: str) -> RunStatus:
    """The status right after the Job was created; ``what`` names the work ("training")."""
    run = RunStatus(fields={"jobName": job_name, "startTime": started})
    run.set(COND_CREATED, TRUE, REASON_JOB_CREATED, f"Job {job_name} created")
    run.set(COND_FAILED, FALSE, REASON_JOB_CREATED, "the inputs are valid")
    run.set(COND_RUNNING, UNKNOWN, REASON_JOB_PENDING, f"waiting for the {what} pod to start")
    run.set(COND_READY, FALSE, REASON_JOB_PENDING, f"the {what} run starts")
    return run


def run_failed(run: RunStatus, failure: Mapping[str, Any], job_name: str, now: str) -> None:
    """The run ended in failure: the worker's reason and message (or the Job's)."""
    reason = str(failure.get("reason") or REASON_JOB_FAILED)
    message = str(failure.get("message") or f"Job {job_name} failed")
    run.fields["completionTime"] = now
    run.set(COND_RUNNING, FALSE, reason, message)
    run.set(COND_FAILED, TRUE, reason, message)
    run.set(COND_READY, FALSE, reason, message)


Running = Callable[[RunStatus, Mapping[str, Any], Mapping[str, Any], str], None]
"""``(run, status, progress, now)``: a kind's status while its worker reports progress."""
Succeeded = Callable[[RunStatus, Mapping[str, Any], JobView, str], None]
"""``(run, result, view, now)``: a kind's status from its worker's successful result."""


def follow(
    status: Mapping[str, Any],
    view: JobView | None,
    now: str,
    *,
    kind: str,
    what: str,
    running: Running,
    succeeded: Succeeded,
) -> RunStatus:
    """The status a look at the run's Job gives (``view`` None: the Job is gone); ``kind``
    names the object ("TrainingJob") and ``what`` the work ("training") in messages."""
    run = RunStatus()
    if view is None:
        if not finished(status):
            message = f"the {what} Job was deleted before it finished; create a new {kind}"
            run.set(COND_RUNNING, FALSE, REASON_JOB_MISSING, message)
            run.set(COND_FAILED, TRUE, REASON_JOB_MISSING, message)
            run.set(COND_READY, FALSE, REASON_JOB_MISSING, message)
        return run
    if view.state == "Running":
        if view.waiting is not None:
            reason, detail = view.waiting
            run.set(COND_RUNNING, FALSE, reason, detail)
            run.set(COND_READY, FALSE, reason, f"the {what} pod cannot start: {detail}")
        elif view.progress is None:
            run.set(COND_RUNNING, UNKNOWN, REASON_JOB_PENDING, f"the {what} pod starts")
            run.set(COND_READY, FALSE, REASON_JOB_PENDING, f"the {what} run starts")
        else:
            running(run, status, view.progress, now)
    elif view.succeeded and view.result is not None:
        succeeded(run, view.result, view, now)
    else:
        run_failed(run, view.result or job_failure(view.job), view.name, now)
    return run
