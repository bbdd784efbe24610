"""What a Dataset's Jobs mean for its status (pure): decisions and status from what was read.

The handler (``kubearts.handlers.datasets``) reads the Dataset's Jobs, their pods and logs,
the gallery and the Secrets through ``kubearts.k8s``, and hands them to the functions here.
They answer with what to do next and with an :class:`Outcome` (conditions, status fields,
phase) to write. Nothing here talks to the API server or to kopf, so every rule about the
worker's results — which stage a failure belongs to, how a version is recorded, when a
published version would change — can be tested with plain dictionaries.

The worker's contract (result documents, progress lines, exit codes) is described in
``images/dataset/README.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

from kubearts.builders.datasets import (
    STEP_INGEST,
    STEP_PUBLISH,
    DatasetPlan,
    Format,
    ResolvedSource,
    VersionPlan,
)
from kubearts.conditions import ConditionUpdate, rfc3339
from kubearts.constants import (
    COND_DOWNLOADED,
    COND_READY,
    COND_VERIFIED,
    COND_VERSIONS_VALID,
    DATA_KEY_LABEL,
    FALSE,
    GALLERY_LABEL,
    PHASE_DOWNLOADING,
    PHASE_FAILED,
    PHASE_PENDING,
    PHASE_PUBLISHING,
    PHASE_READY,
    PHASE_VERIFYING,
    REASON_CHECKSUM_MISMATCH,
    REASON_DATA_IMMUTABLE,
    REASON_DOWNLOAD_FAILED,
    REASON_DOWNLOADED,
    REASON_DOWNLOADING,
    REASON_INGESTED,
    REASON_INVALID_FORMAT,
    REASON_INVALID_SOURCE,
    REASON_LIMIT_EXCEEDED,
    REASON_NO_IMAGES_FOUND,
    REASON_NOT_FOUND,
    REASON_NOT_VERIFIED,
    REASON_PUBLISHED,
    REASON_PUBLISHING,
    REASON_UNSAFE_ARCHIVE,
    REASON_VERIFIED,
    REASON_VERIFYING,
    REASON_VERSION_IMMUTABLE,
    REASON_VERSIONS_VALID,
    REASON_WAITING_FOR_DEPENDENCY,
    STEP_LABEL,
    TRUE,
    UNKNOWN,
)
from kubearts.gallery import load_gallery
from kubearts.storage import HTTP_AUTHORIZATION_KEY, S3_SECRET_KEYS

__all__ = [
    "ACTIVE_PHASES",
    "EXIT_REASONS",
    "FinishedPublish",
    "Ingested",
    "Outcome",
    "Rerun",
    "SecretNeed",
    "WaitingError",
    "claims_to_check",
    "cleanup_blockers",
    "data_change_refusal",
    "failure_updates",
    "gallery_source",
    "ingest_fields",
    "ingest_job_for",
    "ingest_running",
    "ingest_started",
    "job_failure",
    "job_state",
    "judge_ingest",
    "latest_pod",
    "missing_claim",
    "needs_full_result",
    "object_name",
    "progress_from_log",
    "ready",
    "ready_change",
    "result_from_log",
    "secret_needs",
    "secret_problem",
    "stale_ingest_jobs",
    "terminated_state",
    "unpublished_versions",
    "version_conflicts",
    "version_entry",
    "versions_outcome",
    "waiting_outcome",
    "worker_result",
]

#: Phases in which a Job works for the Dataset and the timer follows it.
ACTIVE_PHASES: Final = frozenset({PHASE_DOWNLOADING, PHASE_VERIFYING, PHASE_PUBLISHING})
#: ``status.invalidFiles`` holds at most this many entries (the CRD's maxItems).
MAX_LISTED_INVALID: Final = 100
MAX_WARNINGS: Final = 100

#: The worker's exit codes (images/dataset README), for a pod that left no result.
EXIT_REASONS: Final[Mapping[int, str]] = {
    1: "InternalError",
    2: "InvalidArgument",
    10: REASON_DOWNLOAD_FAILED,
    11: REASON_CHECKSUM_MISMATCH,
    12: REASON_UNSAFE_ARCHIVE,
    13: REASON_NO_IMAGES_FOUND,
    14: REASON_LIMIT_EXCEEDED,
    15: REASON_INVALID_SOURCE,
    16: REASON_INVALID_FORMAT,
    17: "InvalidTarget",
    18: "UploadFailed",
    20: REASON_VERSION_IMMUTABLE,
    21: "NotIngested",
    30: "RemoveFailed",
}
#: Failures of getting the data (Downloaded=False); the others happen once it is here
#: (Downloaded=True, Verified=False). LimitExceeded counts as not downloaded: the limits
#: apply to the download as well as to the unpacked data, and either way nothing was kept.
_DOWNLOAD_REASONS: Final = frozenset(
    {REASON_DOWNLOAD_FAILED, REASON_CHECKSUM_MISMATCH, REASON_INVALID_SOURCE, REASON_LIMIT_EXCEEDED}
)
_VERIFY_REASONS: Final = frozenset(
    {REASON_UNSAFE_ARCHIVE, REASON_NO_IMAGES_FOUND, REASON_INVALID_FORMAT}
)
#: Worker progress phase → Dataset phase.
_PROGRESS_PHASES: Final[Mapping[str, str]] = {
    "download": PHASE_DOWNLOADING,
    "unpack": PHASE_VERIFYING,
    "verify": PHASE_VERIFYING,
    "upload": PHASE_VERIFYING,
}

JobState = Literal["Running", "Complete", "Failed"]


# --- what a step answers ---------------------------------------------------------------------


@dataclass
class Outcome:
    """What one step observed: conditions to set, status fields, the phase."""

    phase: str
    updates: list[ConditionUpdate] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)


class WaitingError(Exception):
    """Another object is missing; ``message`` says which and how to provide it.

    Raised rather than returned because it can happen at any point of a step (resolving
    the gallery, before the ingest Job, before a publish Job) and ends the step there.
    """

    def __init__(self, message: str, reason: str = REASON_WAITING_FOR_DEPENDENCY) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Ingested:
    """A successful ingest: the status fields and Downloaded/Verified conditions it gives."""

    fields: dict[str, Any]
    updates: list[ConditionUpdate]


@dataclass(frozen=True)
class Rerun:
    """The ingest completed but neither its pod nor the status kept the result: delete the
    Job so that it runs again, and report ``outcome`` meanwhile."""

    outcome: Outcome


@dataclass(frozen=True)
class FinishedPublish:
    """A publish Job that stopped, with the worker's result (None when the pod is gone)."""

    version: VersionPlan
    job: Mapping[str, Any]
    result: Mapping[str, Any] | None


def ready(
    status: Literal["True", "False", "Unknown"], reason: str, message: str
) -> ConditionUpdate:
    """The Ready condition to set."""
    return ConditionUpdate(COND_READY, status, reason, message)


def waiting_outcome(status: Mapping[str, Any], wait: WaitingError) -> Outcome:
    """The outcome while waiting for another object.

    Before any Job, waiting is Pending; later (a publish Job needs a Secret that went away)
    the phase stays, so the timer keeps looking.
    """
    phase = status.get("phase")
    phase = phase if phase in ACTIVE_PHASES else PHASE_PENDING
    return Outcome(str(phase), [ready(FALSE, wait.reason, wait.message)])


def ready_change(previous: Mapping[str, Any] | None, outcome: Outcome) -> ConditionUpdate | None:
    """The Ready update of ``outcome`` when it differs from ``previous`` (else None).

    Only a change is worth a log line (and so an Event); the timer steps every few seconds.
    """
    update = next((u for u in outcome.updates if u.type == COND_READY), None)
    if update is None or (
        previous is not None
        and previous.get("status") == update.status
        and previous.get("reason") == update.reason
    ):
        return None
    return update


# --- dependencies: gallery entries, claims, Secrets --------------------------------------------


def gallery_source(
    configmaps: Sequence[Mapping[str, Any]], gallery_name: str, entry_name: str, namespace: str
) -> ResolvedSource:
    """The data set ``entry_name`` of the gallery held by ``configmaps``.

    Raises :class:`WaitingError` (reason NotFound) when the gallery does not offer it:
    galleries are edited independently of Datasets, so the entry may still come.
    """
    gallery = load_gallery(configmaps, name=gallery_name)
    entry = gallery.datasets.get(entry_name)
    if entry is None:
        available = ", ".join(sorted(gallery.datasets)) or "none"
        where = (
            f"gallery {gallery_name!r} (ConfigMaps labelled {GALLERY_LABEL}={gallery_name} in "
            f"namespace {namespace})"
        )
        raise WaitingError(
            f"spec.source.uri: {where} has no data set {entry_name!r} (available: {available}); "
            "fix the name or add the entry to the gallery",
            reason=REASON_NOT_FOUND,
        )
    entry_format = entry.get("format", "ImageFolder")
    return ResolvedSource(
        uri=entry["source"]["uri"],
        sha256=entry["source"].get("sha256"),
        format=cast(
            Format, entry_format if entry_format in ("ImageFolder", "Manifest") else "ImageFolder"
        ),
        gallery_entry=f"{gallery_name}/{entry_name}",
    )


def claims_to_check(plan: DatasetPlan, workspace_pvc: str) -> list[str]:
    """Claims the worker mounts that must exist already (the workspace is created)."""
    return [claim for claim in plan.claims if not (plan.uses_workspace and claim == workspace_pvc)]


def missing_claim(plan: DatasetPlan, claim: str) -> WaitingError:
    """Waiting for a claim the worker mounts, naming the spec field that names it."""
    field = "spec.storage.uri" if claim == plan.target.claim else "spec.source.uri"
    return WaitingError(
        f"{field}: PersistentVolumeClaim {claim!r} does not exist in namespace "
        f"{plan.namespace}; create it (the Dataset continues when it appears)"
    )


@dataclass(frozen=True)
class SecretNeed:
    """A Secret the worker reads, the spec field naming it, and the keys it must hold."""

    name: str
    field: str
    keys: tuple[str, ...]


def secret_needs(plan: DatasetPlan) -> list[SecretNeed]:
    """The Secrets the ingest Job reads: S3 credentials, an http Authorization header."""
    needs: list[SecretNeed] = []
    required_s3 = tuple(key for key, required in S3_SECRET_KEYS.items() if required)
    if plan.s3_secret:
        from_source = plan.s3_secret == plan.source_secret
        field = "spec.source.secretRef" if from_source else "spec.storage.secretRef"
        needs.append(SecretNeed(plan.s3_secret, field, required_s3))
    if plan.authorization_secret:
        needs.append(
            SecretNeed(
                plan.authorization_secret, "spec.source.secretRef", (HTTP_AUTHORIZATION_KEY,)
            )
        )
    return needs


def secret_problem(
    plan: DatasetPlan, need: SecretNeed, secret: Mapping[str, Any] | None
) -> WaitingError | None:
    """What is wrong with ``secret`` (None when it does not exist) for ``need``, if anything.

    Checked before a Job starts: a missing Secret or key would otherwise keep the pod in
    CreateContainerConfigError, which says less about the fix.
    """
    if secret is None:
        return WaitingError(
            f"{need.field}: Secret {need.name!r} does not exist in namespace {plan.namespace}; "
            f"create it with {' and '.join(need.keys)}"
        )
    keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
    missing = [key for key in need.keys if key not in keys]
    if missing:
        return WaitingError(
            f"{need.field}: Secret {need.name!r} has no {' or '.join(missing)}; add the key"
        )
    return None


# --- Jobs and their pods ---------------------------------------------------------------------


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def object_name(obj: Mapping[str, Any]) -> str:
    """``metadata.name`` of an object."""
    return str((obj.get("metadata") or {}).get("name"))


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


def _completion_time(job: Mapping[str, Any]) -> str | None:
    value = (job.get("status") or {}).get("completionTime")
    return str(value) if value else None


def _jobs_of_step(jobs: Iterable[Mapping[str, Any]], step: str) -> list[Mapping[str, Any]]:
    return [j for j in jobs if _labels(j).get(STEP_LABEL) == step]


def ingest_job_for(
    plan: DatasetPlan, jobs: Iterable[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The ingest Job for the spec: the one with the spec's run key, or else one that
    completed for the same data (only the limits differ: no need to read it again)."""
    ingest_jobs = _jobs_of_step(jobs, STEP_INGEST)
    current = next((j for j in ingest_jobs if object_name(j) == plan.ingest_job_name), None)
    same_data = [
        j
        for j in ingest_jobs
        if _labels(j).get(DATA_KEY_LABEL) == plan.data_key and job_state(j) == "Complete"
    ]
    if current is not None and (job_state(current) != "Failed" or not same_data):
        return current
    if same_data:
        return max(same_data, key=lambda j: str(_completion_time(j) or ""))
    return current


def stale_ingest_jobs(jobs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the ingest Jobs a new one replaces: attempts for another spec (a fixed
    sha256, a raised limit) when none fits the current one."""
    return [object_name(j) for j in _jobs_of_step(jobs, STEP_INGEST)]


def latest_pod(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest of a Job's pods (a Job with backoffLimit 0 has one, but be sure)."""
    if not pods:
        return None
    return max(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", "")))


def terminated_state(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``terminated`` state of the pod's container, once it has stopped."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            return cast(Mapping[str, Any], terminated)
    return None


def _pod_waiting_message(pod: Mapping[str, Any]) -> str:
    """Why a pod does not run yet (image, scheduling), or "" while it merely starts."""
    pod_status = pod.get("status") or {}
    for container in pod_status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating"):
            return f"{waiting.get('reason')}: {waiting.get('message', '')}".strip(": ")
    for condition in pod_status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"not scheduled: {condition.get('message', '')}"
    return ""


def cleanup_blockers(plan: DatasetPlan, jobs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Running Jobs to stop before the files are removed: nothing may write meanwhile."""
    return [
        object_name(j)
        for j in jobs
        if object_name(j) != plan.cleanup_job_name and job_state(j) == "Running"
    ]


# --- the worker's results ----------------------------------------------------------------------


def progress_from_log(log: str) -> dict[str, Any] | None:
    """The last ``progress`` line of a worker's log (JSON lines on stdout), or None."""
    event = _last_event(log, "progress")
    if event is None:
        return None
    return {
        "phase": event.get("phase"),
        "bytes": _count(event.get("bytes")),
        "totalBytes": _count(event.get("totalBytes")),
        "files": _count(event.get("files")),
        "totalFiles": _count(event.get("totalFiles")),
    }


def result_from_log(log: str) -> dict[str, Any] | None:
    """The whole ``result`` event of a worker's log (the termination message is compacted)."""
    event = _last_event(log, "result")
    if event is None:
        return None
    return {k: v for k, v in event.items() if k != "event"}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _last_event(log: str, kind: str) -> dict[str, Any] | None:
    for line in reversed(log.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue  # the worker's log lines for people share the stream
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == kind:
            return event
    return None


def _parse_result(message: str | None) -> dict[str, Any] | None:
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
    result = _parse_result(terminated.get("message"))
    return result is None or bool(result.get("truncated"))


def worker_result(terminated: Mapping[str, Any], log: str | None) -> dict[str, Any]:
    """The worker's result from its stopped container and, when needed, its log.

    Prefers the full ``result`` line of the log, then the termination message; a worker that
    left neither is described by its exit code (see :data:`EXIT_REASONS`).
    """
    result = _parse_result(terminated.get("message"))
    if log is not None and (result is None or result.get("truncated")):
        full = result_from_log(log)
        if full is not None:
            return full
    if result is not None:
        return result
    code = terminated.get("exitCode")
    reason = EXIT_REASONS.get(code, "JobFailed") if isinstance(code, int) else "JobFailed"
    detail = str(terminated.get("message") or terminated.get("reason") or "").strip()
    return {
        "status": "Failed" if code else "Succeeded",
        "reason": reason,
        "message": f"the worker exited with code {code}"
        + (f": {detail[-1000:]}" if detail else ""),
    }


def job_failure(job: Mapping[str, Any]) -> dict[str, Any]:
    """A failure result for a Job whose pod left nothing to read (deleted, deadline)."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return {
                "status": "Failed",
                "reason": str(condition.get("reason") or "JobFailed"),
                "message": f"Job {object_name(job)}: {condition.get('message') or 'failed'}",
            }
    return {"status": "Failed", "reason": "JobFailed", "message": f"Job {object_name(job)} failed"}


# --- results into status ---------------------------------------------------------------------


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def ingest_fields(result: Mapping[str, Any], plan: DatasetPlan) -> dict[str, Any]:
    """Status fields from a successful ingest result (the worker's ``IngestResult``)."""
    fields: dict[str, Any] = {
        "location": plan.target.uri,
        "sampleCount": int(result.get("sampleCount") or 0),
        "classCount": int(result.get("classCount") or 0),
        "sizeBytes": int(result.get("sizeBytes") or 0),
        "digest": str(result.get("digest") or ""),
        "invalidFileCount": int(result.get("invalidCount") or 0),
        "invalidFiles": [
            {"path": str(item.get("path", "")), "reason": str(item.get("reason", ""))}
            for item in (result.get("invalidFiles") or [])[:MAX_LISTED_INVALID]
            if isinstance(item, Mapping)
        ],
    }
    classes = result.get("classes")
    if isinstance(classes, Mapping | list):
        # name → count from the worker; a list of names when rebuilt from the status.
        fields["classes"] = sorted(str(name) for name in classes)
    archive_bytes = result.get("archiveBytes")
    if isinstance(archive_bytes, int):
        files = fields["sampleCount"] + fields["invalidFileCount"]
        fields["progress"] = {"bytes": archive_bytes, "files": files, "totalFiles": files}
    return fields


def _verified_message(result: Mapping[str, Any]) -> str:
    message = (
        f"{result.get('sampleCount', 0)} images of {result.get('classCount', 0)} classes, "
        f"{result.get('sizeBytes', 0)} bytes"
    )
    invalid = int(result.get("invalidCount") or 0)
    if invalid:
        message += f"; {invalid} files excluded (see status.invalidFiles)"
    return message


def _result_from_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "sampleCount": fields.get("sampleCount", 0),
        "classCount": fields.get("classCount", 0),
        "sizeBytes": fields.get("sizeBytes", 0),
        "invalidCount": fields.get("invalidFileCount", 0),
    }


def _result_from_status(status: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": "Succeeded",
        **_result_from_fields(status),
        "digest": status.get("digest"),
        "classes": list(status.get("classes") or []),
        "invalidFiles": list(status.get("invalidFiles") or []),
    }


def version_entry(
    result: Mapping[str, Any], plan: DatasetPlan, publish_time: str | None
) -> dict[str, Any]:
    """A ``status.versions`` entry from a successful publish result (``VersionRecord``).

    ``split: false`` (and ``trainRatio: 1``) marks an unsplit version, which has no eval
    list; training on it has nothing to evaluate with and is refused there.
    """
    split = bool(result.get("split", _float(result.get("trainRatio")) != 1.0))
    manifests: dict[str, str] = {}
    for usage, relative in (result.get("manifests") or {}).items():
        if usage == "eval" and not split:
            continue
        manifests[str(usage)] = plan.target.child_uri(str(relative))
    per_class: dict[str, dict[str, int]] = {}
    for name, counts in (result.get("classes") or {}).items():
        if isinstance(counts, Mapping):
            per_class[str(name)] = {
                key: int(counts.get(key) or 0)
                for key in ("train", "eval", "test")
                if key != "test" or counts.get("test")
            }
    entry: dict[str, Any] = {
        "name": str(result.get("name")),
        "trainRatio": _float(result.get("trainRatio")),
        "seed": int(result.get("seed") or 0),
        "stratified": bool(result.get("stratified", True)),
        "split": split,
        "trainCount": int(result.get("trainCount") or 0),
        "evalCount": int(result.get("evalCount") or 0),
        "perClass": per_class,
        "manifests": manifests,
        "manifestDigest": str(result.get("manifestDigest") or ""),
        "published": True,
        "publishTime": publish_time or rfc3339(),
        "warnings": [str(w) for w in (result.get("warnings") or [])][:MAX_WARNINGS],
    }
    if result.get("testCount"):
        entry["testCount"] = int(result["testCount"])
    return entry


def failure_updates(result: Mapping[str, Any]) -> list[ConditionUpdate]:
    """Conditions for a failed ingest: which stage failed, with the worker's reason."""
    reason = str(result.get("reason") or "JobFailed")
    message = str(result.get("message") or "the ingest Job failed")
    if reason in _DOWNLOAD_REASONS:
        downloaded = ConditionUpdate(COND_DOWNLOADED, FALSE, reason, message)
        verified = ConditionUpdate(
            COND_VERIFIED, FALSE, REASON_NOT_VERIFIED, "the data was not downloaded"
        )
    elif reason in _VERIFY_REASONS:
        downloaded = ConditionUpdate(COND_DOWNLOADED, TRUE, REASON_DOWNLOADED, "the data was read")
        verified = ConditionUpdate(COND_VERIFIED, FALSE, reason, message)
    else:
        downloaded = ConditionUpdate(COND_DOWNLOADED, FALSE, reason, message)
        verified = ConditionUpdate(COND_VERIFIED, FALSE, REASON_NOT_VERIFIED, message)
    return [downloaded, verified, ready(FALSE, reason, message)]


def _published_versions(status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        str(v.get("name")): dict(v)
        for v in status.get("versions") or []
        if isinstance(v, Mapping) and v.get("published")
    }


def version_conflicts(
    versions: Iterable[VersionPlan], published: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """One message per spec version that would change a published version's split."""
    problems: list[str] = []
    for version in versions:
        record = published.get(version.name)
        if record is None:
            continue
        changed = []
        if _float(record.get("trainRatio")) != version.train_ratio:
            changed.append(
                f"trainRatio {version.train_ratio:g} (published {record.get('trainRatio')})"
            )
        if record.get("seed", 0) != version.seed:
            changed.append(f"seed {version.seed} (published {record.get('seed')})")
        if record.get("stratified", True) != version.stratified:
            changed.append(
                f"stratified {str(version.stratified).lower()} "
                f"(published {str(record.get('stratified')).lower()})"
            )
        if changed:
            problems.append(
                f"{version.field} ({version.name}): {', '.join(changed)}; version "
                f"{version.name!r} is published and immutable: restore its values, or add the "
                "new split as a new version with another name"
            )
    return problems


# --- the step, stage by stage ------------------------------------------------------------------


def data_change_refusal(
    plan: DatasetPlan, jobs: Iterable[Mapping[str, Any]], status: Mapping[str, Any]
) -> Outcome | None:
    """With no ingest Job for the spec: refuse when versions were published from data the
    spec no longer describes (an ingest for other data completed). Ready keeps describing
    the published data."""
    published = _published_versions(status)
    other_data = [
        j
        for j in _jobs_of_step(jobs, STEP_INGEST)
        if job_state(j) == "Complete" and _labels(j).get(DATA_KEY_LABEL) != plan.data_key
    ]
    if not (published and other_data):
        return None
    names = ", ".join(sorted(published))
    message = (
        f"spec.source, spec.format or spec.storage changed after versions {names} were "
        "published from the data as it was; published versions are immutable: restore the "
        "previous values, or create a new Dataset for the new data"
    )
    phase = str(status.get("phase") or PHASE_READY)
    return Outcome(
        phase if phase not in ACTIVE_PHASES else PHASE_READY,
        [ConditionUpdate(COND_VERSIONS_VALID, FALSE, REASON_DATA_IMMUTABLE, message)],
    )


def ingest_started(plan: DatasetPlan) -> Outcome:
    """The outcome of creating the ingest Job."""
    return Outcome(
        PHASE_DOWNLOADING,
        [
            ConditionUpdate(COND_DOWNLOADED, UNKNOWN, REASON_DOWNLOADING, "the ingest Job starts"),
            ConditionUpdate(COND_VERIFIED, UNKNOWN, REASON_DOWNLOADING, "waiting for the data"),
            ready(FALSE, REASON_DOWNLOADING, f"downloading {plan.source.uri}"),
        ],
        {"location": plan.target.uri},
    )


def ingest_running(
    plan: DatasetPlan,
    status: Mapping[str, Any],
    pod: Mapping[str, Any] | None,
    log: str | None,
) -> Outcome:
    """The outcome while the ingest Job runs: its pod's progress, or why it waits.

    ``status.progress`` is written only when the numbers moved, so an idle poll writes
    nothing.
    """
    progress = progress_from_log(log or "")
    waiting = _pod_waiting_message(pod) if pod is not None else ""
    fields: dict[str, Any] = {"location": plan.target.uri}
    phase = PHASE_DOWNLOADING
    message = f"downloading {plan.source.uri}"
    if waiting:
        message = f"{message}: the pod is waiting ({waiting})"
    if progress is not None:
        phase = _PROGRESS_PHASES.get(str(progress.get("phase")), PHASE_DOWNLOADING)
        current = {k: v for k, v in (status.get("progress") or {}).items() if k != "lastUpdateTime"}
        values = {k: v for k, v in progress.items() if k != "phase" and v is not None}
        if current != values:
            fields["progress"] = {**values, "lastUpdateTime": rfc3339()}
        message = f"{progress.get('phase')}: {_progress_text(progress)}"
    verifying = phase == PHASE_VERIFYING
    updates = [
        ConditionUpdate(
            COND_DOWNLOADED,
            TRUE if verifying else UNKNOWN,
            REASON_DOWNLOADED if verifying else REASON_DOWNLOADING,
            plan.source.uri if verifying else message,
        ),
        ConditionUpdate(
            COND_VERIFIED,
            UNKNOWN,
            REASON_VERIFYING if verifying else REASON_DOWNLOADING,
            message if verifying else "waiting for the data",
        ),
        ready(FALSE, REASON_VERIFYING if verifying else REASON_DOWNLOADING, message),
    ]
    return Outcome(phase, updates, fields)


def _progress_text(progress: Mapping[str, Any]) -> str:
    amount = f"{progress.get('bytes', 0)} bytes"
    if progress.get("totalBytes"):
        amount += f" of {progress['totalBytes']}"
    files = f"{progress.get('files', 0)} files"
    if progress.get("totalFiles"):
        files += f" of {progress['totalFiles']}"
    return f"{amount}, {files}"


def judge_ingest(
    plan: DatasetPlan,
    job: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    status: Mapping[str, Any],
) -> Ingested | Outcome | Rerun:
    """What a stopped ingest Job means: the data is in (:class:`Ingested`), it failed (an
    :class:`Outcome` naming the stage), or its result is lost (:class:`Rerun`).

    ``result`` is None when the pod is gone; a result recorded in the status before is
    then kept rather than downloading everything again.
    """
    state = job_state(job)
    if state == "Failed" or result is None or result.get("status") != "Succeeded":
        if state == "Complete" and result is None and status.get("digest"):
            result = _result_from_status(status)
        elif state == "Complete" and result is None:
            return Rerun(
                Outcome(PHASE_PENDING, [ready(FALSE, REASON_DOWNLOADING, "re-reading the data")])
            )
        else:
            return Outcome(PHASE_FAILED, failure_updates(result or job_failure(job)))
    gallery = f" (gallery entry {plan.source.gallery_entry})" if plan.source.gallery_entry else ""
    downloaded = f"{plan.source.uri}: {result.get('archiveBytes', 0)} bytes{gallery}"
    return Ingested(
        ingest_fields(result, plan),
        [
            ConditionUpdate(COND_DOWNLOADED, TRUE, REASON_DOWNLOADED, downloaded),
            ConditionUpdate(COND_VERIFIED, TRUE, REASON_VERIFIED, _verified_message(result)),
        ],
    )


def unpublished_versions(
    plan: DatasetPlan, jobs: Iterable[Mapping[str, Any]], status: Mapping[str, Any]
) -> list[tuple[VersionPlan, Mapping[str, Any] | None]]:
    """The spec's versions not yet published, each with its publish Job (None: none yet)."""
    publish_jobs = {object_name(j): j for j in _jobs_of_step(jobs, STEP_PUBLISH)}
    published = _published_versions(status)
    return [
        (version, publish_jobs.get(plan.publish_job_name(version)))
        for version in plan.versions
        if version.name not in published
    ]


def versions_outcome(
    plan: DatasetPlan,
    status: Mapping[str, Any],
    ingested: Ingested,
    pending: Sequence[str],
    finished: Iterable[FinishedPublish],
) -> Outcome:
    """The outcome once the data is in: versions published so far, those still publishing
    (``pending``) and the publish Jobs that stopped. A failed version fails the Dataset; a
    conflicting edit of a published one is reported without failing it."""
    published = _published_versions(status)
    updates = list(ingested.updates)
    fields = dict(ingested.fields)
    conflicts = version_conflicts(plan.versions, published)
    if conflicts:
        updates.append(
            ConditionUpdate(
                COND_VERSIONS_VALID, FALSE, REASON_VERSION_IMMUTABLE, "; ".join(conflicts)
            )
        )
    else:
        updates.append(
            ConditionUpdate(
                COND_VERSIONS_VALID, TRUE, REASON_VERSIONS_VALID, "every version can be published"
            )
        )

    versions = dict(published)
    failures: list[tuple[str, Mapping[str, Any]]] = []
    for done in finished:
        result = done.result
        if (
            job_state(done.job) == "Complete"
            and result is not None
            and result.get("status") == "Succeeded"
        ):
            versions[done.version.name] = version_entry(result, plan, _completion_time(done.job))
        else:
            failures.append((done.version.field, result or job_failure(done.job)))

    fields["versions"] = sorted(versions.values(), key=lambda v: str(v.get("name")))
    if failures:
        reason = str(failures[0][1].get("reason") or "JobFailed")
        message = "; ".join(f"{w}: {f.get('message', '')}" for w, f in failures)
        updates.append(ready(FALSE, reason, message))
        return Outcome(PHASE_FAILED, updates, fields)
    if pending:
        updates.append(
            ready(FALSE, REASON_PUBLISHING, f"publishing version(s) {', '.join(pending)}")
        )
        return Outcome(PHASE_PUBLISHING, updates, fields)
    summary = _verified_message(_result_from_fields(fields))
    if versions:
        names = ", ".join(sorted(versions))
        updates.append(ready(TRUE, REASON_PUBLISHED, f"{summary}; versions {names} published"))
    else:
        updates.append(
            ready(TRUE, REASON_INGESTED, f"{summary}; add spec.versions to publish a split")
        )
    return Outcome(PHASE_READY, updates, fields)
