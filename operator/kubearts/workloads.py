"""Following a worker Job (pure): its state, its pod's reasons, progress and result.

Every kind that runs work — data set ingest and publish, training, conversion, batch
inference — starts a batch/v1 Job whose single container is a KubeArts worker. Workers
share one contract:

- progress is a JSON line on stdout, ``{"event": "progress", ...}``; the last one counts;
- the result is a JSON document ``{"status": "Succeeded"|"Failed", "reason", "message",
  ...}`` written to the termination message path (compacted to fit Kubernetes' 4096
  bytes, with ``"truncated": true``) and, whole, as a ``{"event": "result", ...}`` log line;
- exit codes name a failure when the worker died before writing its result (each kind
  passes its own table).

The handler reads the Job, its pods and, when needed, the log through ``kubearts.k8s``
and builds a :class:`JobView` with :func:`observe_job`, which takes the log reader as an
argument so that nothing here does I/O. What the view means — running, waiting (and
why), succeeded with a result, failed with a reason and the log's tail — is decided here,
once, for every kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

__all__ = [
    "JobState",
    "JobView",
    "annotations_of",
    "job_failure",
    "job_state",
    "labels_of",
    "last_event",
    "latest_pod",
    "log_tail",
    "needs_full_result",
    "object_name",
    "observe_job",
    "parse_result",
    "pod_waiting",
    "progress_event",
    "result_from_log",
    "terminated_state",
    "worker_result",
]

JobState = Literal["Running", "Complete", "Failed"]

#: Lines of the log kept in a failure message: enough to see a traceback's last frames.
LOG_TAIL_LINES: Final = 20
#: Characters of the log tail kept in a failure message (status fields stay small).
LOG_TAIL_CHARS: Final = 1500

REASON_RESULT_MISSING: Final = "ResultMissing"
REASON_DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
REASON_OOM_KILLED: Final = "OOMKilled"
REASON_UNSCHEDULABLE: Final = "Unschedulable"
REASON_JOB_FAILED: Final = "JobFailed"

#: Waiting reasons that say the pod cannot start as specified (the image, its config),
#: as opposed to the normal ``ContainerCreating``/``PodInitializing`` of every start.
_STUCK_REASONS: Final = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
        "RunContainerError",
    }
)


def object_name(obj: Mapping[str, Any]) -> str:
    """``metadata.name`` of an object."""
    return str((obj.get("metadata") or {}).get("name"))


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    """``metadata.annotations`` of an object."""
    return (obj.get("metadata") or {}).get("annotations") or {}


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    """``metadata.labels`` of an object."""
    return (obj.get("metadata") or {}).get("labels") or {}


def job_state(job: Mapping[str, Any]) -> JobState:
    """Whether a Job still runs, or how it ended (its Complete/Failed condition)."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "Complete"
        if condition.get("type") == "Failed":
            return "Failed"
    return "Running"


def job_failure(job: Mapping[str, Any]) -> dict[str, Any]:
    """A failure result for a Job whose pod left nothing to read (deleted, deadline).

    ``activeDeadlineSeconds`` running out is reported as ``DeadlineExceeded`` with the
    deadline, so the fix (raise it, or make the work smaller) is in the message.
    """
    name = object_name(job)
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            reason = str(condition.get("reason") or REASON_JOB_FAILED)
            message = f"Job {name}: {condition.get('message') or 'failed'}"
            if reason == REASON_DEADLINE_EXCEEDED:
                deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
                message = f"Job {name} ran longer than its deadline of {deadline} s and was stopped"
            return {"status": "Failed", "reason": reason, "message": message}
    return {"status": "Failed", "reason": REASON_JOB_FAILED, "message": f"Job {name} failed"}


def latest_pod(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest of a Job's pods (a Job with backoffLimit 0 has one, but be sure)."""
    if not pods:
        return None
    return max(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", "")))


def _container_statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


def terminated_state(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``terminated`` state of the pod's container, once it has stopped."""
    for container in _container_statuses(pod):
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            return cast(Mapping[str, Any], terminated)
    return None


def pod_waiting(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why a pod does not run yet, as ``(reason, message)``; None while it merely starts.

    Unschedulable pods name what is short (the scheduler's message says e.g. ``Insufficient
    nvidia.com/gpu``); image and configuration problems keep the kubelet's reason.
    """
    pod_status = pod.get("status") or {}
    for container in _container_statuses(pod):
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") in _STUCK_REASONS:
            return str(waiting["reason"]), str(waiting.get("message") or "")
    for condition in pod_status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return REASON_UNSCHEDULABLE, str(condition.get("message") or "not scheduled")
    return None


# --- the worker's progress and result ----------------------------------------------------------


def last_event(log: str, kind: str) -> dict[str, Any] | None:
    """The last JSON line ``{"event": kind, ...}`` of a worker's log, or None.

    Lines for people share the stream; anything that is not such a JSON object is skipped.
    """
    for line in reversed(log.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == kind:
            return event
    return None


def result_from_log(log: str) -> dict[str, Any] | None:
    """The whole ``result`` event of a worker's log (the termination message is compacted)."""
    event = last_event(log, "result")
    if event is None:
        return None
    return {k: v for k, v in event.items() if k != "event"}


def parse_result(message: str | None) -> dict[str, Any] | None:
    """The result document in a termination message, or None when it holds none (the
    worker died before writing it, and Kubernetes fell back to the log's tail)."""
    if not message:
        return None
    try:
        document = json.loads(message)
    except ValueError:
        return None
    if isinstance(document, dict) and document.get("status") in ("Succeeded", "Failed"):
        return document
    return None


def needs_full_result(terminated: Mapping[str, Any]) -> bool:
    """Whether the log must be read: the termination message holds no result, or one that
    was compacted to fit 4096 bytes (long class lists are cut)."""
    result = parse_result(terminated.get("message"))
    return result is None or bool(result.get("truncated"))


def log_tail(text: str, *, lines: int = LOG_TAIL_LINES, chars: int = LOG_TAIL_CHARS) -> str:
    """The last ``lines`` lines of ``text``, at most ``chars`` characters."""
    tail = "\n".join(text.strip().splitlines()[-lines:])
    return tail[-chars:]


def worker_result(
    terminated: Mapping[str, Any], log: str | None, exit_reasons: Mapping[int, str]
) -> dict[str, Any]:
    """The worker's result from its stopped container and, when needed, its log.

    Prefers the full ``result`` line of the log, then the termination message. A worker
    that left neither failed, whatever its exit code: killed for memory (``OOMKilled``),
    a known exit code (``exit_reasons``), or an exit 0 without a result, which is
    ``ResultMissing`` — never a success with nothing in it. The message ends with the
    log's tail.
    """
    result = parse_result(terminated.get("message"))
    if log is not None and (result is None or result.get("truncated")):
        full = result_from_log(log)
        if full is not None:
            return full
    if result is not None:
        return result
    code = terminated.get("exitCode")
    if terminated.get("reason") == REASON_OOM_KILLED:
        reason = REASON_OOM_KILLED
        message = "the worker ran out of memory (exit code 137); raise its memory limit"
    elif code == 0:
        reason = REASON_RESULT_MISSING
        message = "the worker exited with code 0 but wrote no result"
    else:
        reason = exit_reasons.get(code, REASON_JOB_FAILED) if isinstance(code, int) else ""
        reason = reason or REASON_JOB_FAILED
        message = f"the worker exited with code {code}"
    detail = log_tail(log if log else str(terminated.get("message") or ""))
    return {
        "status": "Failed",
        "reason": reason,
        "message": message + (f"; last output:\n{detail}" if detail else ""),
    }


def progress_event(log: str) -> dict[str, Any] | None:
    """The last ``progress`` event of a worker's log without its ``event`` key."""
    event = last_event(log, "progress")
    if event is None:
        return None
    return {k: v for k, v in event.items() if k != "event"}


# --- one look at a Job -------------------------------------------------------------------------


@dataclass(frozen=True)
class JobView:
    """A worker Job as one step saw it.

    ``state`` is the Job's; ``result`` is the worker's result once the Job has stopped
    (a failure document when the pod left none); ``progress`` the last progress event
    while it runs; ``waiting`` why its pod does not start, if it is stuck.
    """

    job: Mapping[str, Any]
    state: JobState
    result: Mapping[str, Any] | None = None
    progress: Mapping[str, Any] | None = None
    waiting: tuple[str, str] | None = None

    @property
    def name(self) -> str:
        return object_name(self.job)

    @property
    def succeeded(self) -> bool:
        return (
            self.state == "Complete"
            and self.result is not None
            and self.result.get("status") == "Succeeded"
        )


#: Reads a pod's log: ``(pod name, tail lines or None for all) -> text``.
LogReader = Callable[[str, int | None], str]


def observe_job(
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    read_log: LogReader,
    exit_reasons: Mapping[int, str],
    *,
    progress_lines: int = LOG_TAIL_LINES,
) -> JobView:
    """Look at ``job`` and its ``pods``, reading the log through ``read_log`` only when the
    answer needs it: the progress of a running worker, or a result the termination
    message does not hold whole.

    A stopped Job whose pod is gone has ``result`` None unless the Job failed, when the
    Job's own condition gives the reason (a deadline, a deleted pod).
    """
    state = job_state(job)
    pod = latest_pod(pods)
    pod_name = object_name(pod) if pod is not None else ""
    if state == "Running":
        # Also when the container has stopped and the Job controller has not caught up:
        # the next step reads the result from the Job's final state.
        if pod is None:
            return JobView(job, state)
        log = read_log(pod_name, progress_lines) or ""
        return JobView(job, state, progress=progress_event(log), waiting=pod_waiting(pod))
    terminated = None if pod is None else terminated_state(pod)
    if terminated is None:
        failed = job_failure(job) if state == "Failed" else None
        return JobView(job, state, result=failed)
    full_log = read_log(pod_name, None) if needs_full_result(terminated) else None
    result = worker_result(terminated, full_log, exit_reasons)
    if state == "Failed" and result.get("status") == "Succeeded":
        result = job_failure(job)  # stopped by the Job controller after the worker finished
    return JobView(job, state, result=result)
