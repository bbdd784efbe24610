"""A Dataset's storage folder (pure): who uses it, and how removing it ends.

**One folder, one Dataset.** Two Datasets whose storage folders are the same (or one lies
inside the other) would replace and remove each other's data. The operator holds every
Dataset's :class:`StorageUse` in a kopf index, keyed by :func:`storage_scope` — a claim
within a namespace (claims are namespaced), or an s3 bucket — and
:func:`storage_conflict` refuses the later one with ``StorageInUse``, naming the other
Dataset and the fix. "Later": a Dataset that has stored data there (its
``status.location`` is the folder) comes first; between equals, the older one.

**Deletion that ends.** With ``deletePolicy: Delete`` the files go with the Dataset, by
cleanup Jobs of a short deadline of their own. :func:`cleanup_step` decides from those Jobs
and the time the deletion has taken: start attempt *n*, wait, done — or give up after
:data:`CLEANUP_ATTEMPTS` failed attempts or when the time is up, saying what was left
behind, so the Dataset's finalizer is always released.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kubearts.dataset_spec import DatasetPlan
from kubearts.workloads import JobView, job_failure

__all__ = [
    "CLEANUP_ATTEMPTS",
    "CleanupStep",
    "StorageUse",
    "cleanup_step",
    "cleanup_time_limit",
    "holders",
    "overlaps",
    "storage_conflict",
    "storage_scope",
    "storage_use",
]

#: Cleanup Jobs started before the files are given up on.
CLEANUP_ATTEMPTS: Final = 3
#: Time a cleanup may take beyond its Jobs' deadlines: pods to stop, Jobs to be created.
CLEANUP_SLACK_SECONDS: Final = 120
#: Time an attempt may run beyond its Job's deadline before it counts as failed. The Job
#: controller enforces the deadline only once the Job has a start time, which Kubernetes
#: 1.20 never records for a Job none of whose pods could be created (a quota, a namespace
#: being deleted): the operator's own clock bounds every attempt.
ATTEMPT_GRACE_SECONDS: Final = 15


@dataclass(frozen=True, order=True)
class StorageUse:
    """Where one Dataset stores its data, as the index holds it."""

    holds: bool
    """Whether the Dataset stored (or stores) its data there: its ``status.location``."""
    created: str
    """``metadata.creationTimestamp`` (RFC 3339 sorts by time)."""
    namespace: str
    name: str
    uri: str
    """The storage URI (``pvc://claim/path`` or ``s3://bucket/prefix``)."""
    path: str
    """The folder within its scope, without leading or trailing ``/``."""

    @property
    def who(self) -> str:
        return f"{self.namespace}/{self.name}"


def storage_scope(plan: DatasetPlan) -> tuple[str, str]:
    """The index key of a Dataset's storage: (namespace, ``pvc://claim``) for a claim,
    ("", ``s3://bucket``) for a bucket, which Datasets of every namespace can name."""
    if plan.target.scheme == "pvc":
        return plan.namespace, f"pvc://{plan.target.claim}"
    return "", f"s3://{plan.target.bucket}"


def storage_use(
    plan: DatasetPlan, status: Mapping[str, Any], created: str | None, uri: str | None = None
) -> StorageUse:
    """The use of ``uri`` (default: the spec's target) by the Dataset of ``plan``."""
    target = uri or plan.target.uri
    scheme_and_scope = storage_scope(plan)[1]
    path = target[len(scheme_and_scope) :].strip("/")
    return StorageUse(
        holds=status.get("location") == target,
        created=str(created or ""),
        namespace=plan.namespace,
        name=plan.name,
        uri=target,
        path=path,
    )


def overlaps(one: str, other: str) -> bool:
    """Whether two folders of one scope are the same or one lies inside the other."""
    return (
        one == other
        or not one
        or not other
        or (one + "/").startswith(other + "/")
        or (other + "/").startswith(one + "/")
    )


def _first(use: StorageUse) -> tuple[bool, str, str, str]:
    return (not use.holds, use.created, use.namespace, use.name)


def storage_conflict(me: StorageUse, others: Iterable[StorageUse]) -> str | None:
    """Why ``me`` may not use its folder (for ``StorageInUse``): a Dataset that comes
    first uses an overlapping one; None when there is none."""
    for other in sorted(others, key=_first):
        if other.who == me.who or not overlaps(me.path, other.path):
            continue
        if _first(other) < _first(me):
            where = "the same folder" if other.path == me.path else f"{other.uri}, which overlaps"
            return (
                f"spec.storage.uri: {me.uri} is already used by Dataset {other.who} "
                f"({where}); two Datasets in one folder would replace and remove each other's "
                f"data: give this Dataset a folder of its own (e.g. "
                f"{_suggestion(me)}), or delete Dataset {other.who} first"
            )
    return None


def _suggestion(me: StorageUse) -> str:
    scope = me.uri[: len(me.uri) - len(me.path)].rstrip("/")
    parent = me.path.rpartition("/")[0]
    return f"{scope}/{parent + '/' if parent else ''}{me.name}-{me.namespace}"


def holders(me: StorageUse, others: Iterable[StorageUse]) -> list[str]:
    """Other Datasets storing data in a folder overlapping ``me``'s: removing ``me``'s
    folder would remove theirs."""
    return sorted(
        other.who
        for other in others
        if other.who != me.who and other.holds and overlaps(me.path, other.path)
    )


# --- deletion ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanupStep:
    """One look at a deletion: exactly one of the fields is set."""

    start: int | None = None
    """The attempt whose cleanup Job to create (1, 2, …)."""
    wait: str | None = None
    """Why to look again shortly."""
    done: str | None = None
    """The files are removed: what the cleanup reported."""
    gave_up: str | None = None
    """The files stay: what was left behind and why (a Warning event)."""


def cleanup_time_limit(deadline_seconds: int) -> float:
    """How long a deletion may take in all: every attempt's deadline, plus slack."""
    return float(CLEANUP_ATTEMPTS * deadline_seconds + CLEANUP_SLACK_SECONDS)


def cleanup_step(
    location: str,
    jobs: Sequence[tuple[JobView, float]],
    *,
    blockers: Sequence[str],
    elapsed: float,
    deadline_seconds: int,
) -> CleanupStep:
    """The next step of removing ``location``, from the cleanup Jobs so far (``jobs``, each
    with its age in seconds), the pods of other Jobs still stopping (``blockers``) and the
    seconds since the deletion began. Every attempt has ``deadline_seconds`` (plus
    :data:`ATTEMPT_GRACE_SECONDS`); the whole cleanup :func:`cleanup_time_limit`."""
    done = next((view for view, _ in jobs if view.succeeded), None)
    if done is not None:
        return CleanupStep(done=str((done.result or {}).get("message") or "removed"))
    overdue = deadline_seconds + ATTEMPT_GRACE_SECONDS
    failed = [view for view, age in jobs if view.state != "Running" or age > overdue]
    running = [view for view, age in jobs if view.state == "Running" and age <= overdue]
    time_limit = cleanup_time_limit(deadline_seconds)
    if len(failed) >= CLEANUP_ATTEMPTS:
        return CleanupStep(gave_up=_left_behind(location, f"{len(failed)} attempts", failed[-1]))
    if elapsed > time_limit:
        last = failed[-1] if failed else None
        return CleanupStep(gave_up=_left_behind(location, f"{time_limit:.0f} seconds", last))
    if running:
        waiting = running[0].waiting
        detail = f" (its pod waits: {waiting[0]}: {waiting[1]})" if waiting else ""
        return CleanupStep(wait=f"removing {location}: Job {running[0].name} runs{detail}")
    if blockers:
        return CleanupStep(wait=f"waiting for pods {', '.join(blockers)} to stop")
    return CleanupStep(start=len(failed) + 1)


def _left_behind(location: str, spent: str, last: JobView | None) -> str:
    cause = ""
    if last is not None and last.state == "Running":
        waiting = f" (its pod waits: {last.waiting[0]})" if last.waiting else ""
        cause = f"; last attempt: Job {last.name} did not finish in time{waiting}"
    elif last is not None:
        failure = last.result or job_failure(last.job)
        cause = f"; last attempt: {failure.get('reason')}: {failure.get('message')}"
    return (
        f"the files at {location} could not be removed within {spent}{cause}; the Dataset is "
        "released and its files stay: remove the folder by hand"
    )
