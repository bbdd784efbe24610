"""Dataset handlers: bring a data set into cluster storage, verify it, publish versions.

One level-based step, :func:`reconcile`, looks at the spec, the status and the Dataset's
Jobs and moves on by one stage: resolve ``gallery://``, make sure the storage exists, run
the ingest Job, then one publish Job per version not yet published, and write what it sees
into the status. Nothing waits inside the step:

- the create, update and resume handlers run the step once; while it waits for another
  object (a claim, a Secret, a gallery entry) they raise ``kopf.TemporaryError`` and kopf
  runs them again later;
- while a Job works (phase Downloading, Verifying or Publishing), the ``datasets_poll``
  timer runs the same step every few seconds: it copies the worker's progress from the
  pod's log and, once the Job has finished, its result into the status and starts the
  next Job. A kopf timer holds a finalizer while it runs, so a Dataset carries one only
  during that work (the ``when`` filter stops the timer in every other phase, and kopf then
  removes the finalizer);
- with ``spec.storage.deletePolicy: Delete``, ``datasets_delete`` runs a cleanup Job
  before the Dataset goes. Its ``when`` filter means Retain Datasets get no finalizer.

Published versions are immutable. Editing a published version's split is refused with
``VersionsValid=False`` (reason ``VersionImmutable``) while ``Ready`` keeps describing the
published data; so is changing the data's definition once versions exist
(``DataImmutable``). A new version is published on its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

import kopf

from kubearts import k8s, metrics
from kubearts.builders.datasets import STEP_INGEST as _STEP_INGEST
from kubearts.builders.datasets import STEP_PUBLISH as _STEP_PUBLISH
from kubearts.builders.datasets import (
    DatasetPlan,
    Format,
    ResolvedSource,
    SpecError,
    VersionPlan,
    cleanup_job,
    gallery_reference,
    ingest_job,
    plan_dataset,
    publish_job,
    workspace_claim,
)
from kubearts.builders.placement import Placement, build_placement
from kubearts.conditions import get_condition, rfc3339
from kubearts.config import Config
from kubearts.constants import (
    COND_DOWNLOADED,
    COND_READY,
    COND_VERIFIED,
    COND_VERSIONS_VALID,
    DATA_KEY_LABEL,
    DATASET,
    DATASET_LABEL,
    FALSE,
    GALLERY_LABEL,
    GROUP,
    PHASE_DOWNLOADING,
    PHASE_FAILED,
    PHASE_PENDING,
    PHASE_PUBLISHING,
    PHASE_READY,
    PHASE_VERIFYING,
    POOL_CPU,
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
    VERSION,
)
from kubearts.gallery import load_gallery
from kubearts.handlers import common
from kubearts.handlers.common import ConditionUpdate
from kubearts.storage import S3_SECRET_KEYS

__all__ = [
    "EXIT_REASONS",
    "datasets_create",
    "datasets_delete",
    "datasets_poll",
    "datasets_resume",
    "datasets_update",
    "failure_updates",
    "ingest_fields",
    "progress_from_log",
    "reconcile",
    "result_from_log",
    "version_conflicts",
    "version_entry",
]

#: Seconds between two looks at a running Job (progress and completion).
POLL_SECONDS: Final = 3.0
#: Delay before a handler waiting for a claim, a Secret or a gallery entry runs again.
WAIT_SECONDS: Final = 10.0
#: Delay between two looks at a running cleanup Job.
CLEANUP_POLL_SECONDS: Final = 2.0
#: Phases in which a Job works for the Dataset and the timer follows it.
ACTIVE_PHASES: Final = frozenset({PHASE_DOWNLOADING, PHASE_VERIFYING, PHASE_PUBLISHING})
#: ``status.invalidFiles`` holds at most this many entries (the CRD's maxItems).
MAX_LISTED_INVALID: Final = 100
MAX_WARNINGS: Final = 100
#: Log lines read to find the latest progress or result line.
LOG_TAIL_LINES: Final = 20

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


# --- registrations ---------------------------------------------------------------------------


def _in_progress(status: kopf.Status, **_: Any) -> bool:
    """Timer filter: a Job works for the Dataset."""
    return status.get("phase") in ACTIVE_PHASES


def _deletes_data(spec: kopf.Spec, **_: Any) -> bool:
    """Delete-handler filter: only Datasets whose files go with them need a finalizer."""
    return (spec.get("storage") or {}).get("deletePolicy") == "Delete"


@kopf.on.create(GROUP, VERSION, DATASET.plural)
@metrics.instrumented(DATASET.kind)
def datasets_create(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, memo: kopf.Memo, **_: Any
) -> None:
    """A new Dataset: plan it and start the ingest Job."""
    _handle(body, patch, logger, memo)


@kopf.on.update(GROUP, VERSION, DATASET.plural)
@metrics.instrumented(DATASET.kind)
def datasets_update(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, memo: kopf.Memo, **_: Any
) -> None:
    """The spec changed: publish new versions, refuse edits of published ones."""
    _handle(body, patch, logger, memo)


@kopf.on.resume(GROUP, VERSION, DATASET.plural)
@metrics.instrumented(DATASET.kind)
def datasets_resume(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, memo: kopf.Memo, **_: Any
) -> None:
    """The operator (re)started: pick up where the Dataset's Jobs are."""
    _handle(body, patch, logger, memo)


@kopf.timer(GROUP, VERSION, DATASET.plural, interval=POLL_SECONDS, when=_in_progress)
@metrics.instrumented(DATASET.kind)
def datasets_poll(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, memo: kopf.Memo, **_: Any
) -> None:
    """While a Job works: copy its progress, and its result once it has finished."""
    try:
        reconcile(body, patch, logger, common.operator_config(memo))
    except (kopf.PermanentError, kopf.TemporaryError) as exc:
        # The status says it all; the timer runs again while the phase is active, and
        # handlers take over in the other phases.
        logger.debug("Dataset step stopped: %s", exc)


@kopf.on.delete(GROUP, VERSION, DATASET.plural, when=_deletes_data)
@metrics.instrumented(DATASET.kind)
def datasets_delete(body: kopf.Body, logger: kopf.Logger, memo: kopf.Memo, **_: Any) -> None:
    """deletePolicy Delete: remove the stored files before the Dataset goes."""
    cleanup(body, logger, common.operator_config(memo))


def _handle(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, memo: kopf.Memo) -> None:
    reconcile(body, patch, logger, common.operator_config(memo))


# --- the step --------------------------------------------------------------------------------


class _WaitingError(Exception):
    """Another object is missing; ``message`` says which and how to provide it."""

    def __init__(self, message: str, reason: str = REASON_WAITING_FOR_DEPENDENCY) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass
class _Outcome:
    """What one step observed: conditions to set, status fields, the phase."""

    phase: str
    updates: list[ConditionUpdate] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)


def reconcile(
    body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger, config: Config
) -> None:
    """Move the Dataset on by one stage and write what was observed into ``patch.status``.

    Raises ``kopf.PermanentError`` for an invalid spec and ``kopf.TemporaryError`` while
    waiting for another object before any Job could start.
    """
    metadata = body.get("metadata") or {}
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace"))
    spec: Mapping[str, Any] = body.get("spec") or {}
    status: Mapping[str, Any] = body.get("status") or {}
    previous_ready = get_condition(status.get("conditions"), COND_READY)
    try:
        source = _resolve_gallery(spec, config)
        plan = plan_dataset(
            name, namespace, spec, workspace_pvc=config.workspace_pvc, source=source
        )
        placement = build_placement(POOL_CPU, 0, config.pools, field="KUBEARTS_POOLS")
    except SpecError as exc:
        common.write_status(patch, body, DATASET, [], fields={"phase": PHASE_FAILED})
        raise common.invalid_spec(DATASET, body, patch, exc.field, exc.problem, exc.fix) from None
    except ValueError as exc:
        # The operator's pools have no cpu pool: a configuration problem, not the user's.
        message = f"the operator cannot place dataset pods: {exc}; add a cpu pool"
        _write(
            patch, body, _Outcome(PHASE_FAILED, [_ready(FALSE, "InvalidConfiguration", message)])
        )
        raise kopf.PermanentError(message) from None
    except _WaitingError as wait:
        raise _wait(patch, body, status, wait) from None

    try:
        outcome = _step(plan, body, status, placement, config)
    except _WaitingError as wait:
        raise _wait(patch, body, status, wait) from None
    _write(patch, body, outcome)
    _log_transition(logger, previous_ready, outcome)


def _wait(
    patch: kopf.Patch, body: Mapping[str, Any], status: Mapping[str, Any], wait: _WaitingError
) -> kopf.TemporaryError:
    # Before any Job, waiting is Pending; later (a publish Job needs a Secret that went
    # away) the phase stays, so the timer keeps looking.
    phase = status.get("phase")
    phase = phase if phase in ACTIVE_PHASES else PHASE_PENDING
    _write(patch, body, _Outcome(phase, [_ready(FALSE, wait.reason, wait.message)]))
    return kopf.TemporaryError(wait.message, delay=WAIT_SECONDS)


def _write(patch: kopf.Patch, body: Mapping[str, Any], outcome: _Outcome) -> None:
    common.write_status(
        patch, body, DATASET, outcome.updates, fields={**outcome.fields, "phase": outcome.phase}
    )


def _log_transition(
    logger: kopf.Logger, previous: Mapping[str, Any] | None, outcome: _Outcome
) -> None:
    """Log (and so post as an Event) only when Ready changes, not on every poll."""
    ready = next((u for u in outcome.updates if u.type == COND_READY), None)
    if ready is None or (
        previous is not None
        and previous.get("status") == ready.status
        and previous.get("reason") == ready.reason
    ):
        return
    if ready.status == FALSE and outcome.phase == PHASE_FAILED:
        logger.warning("Dataset failed (%s): %s", ready.reason, ready.message)
    else:
        logger.info("Dataset %s: %s", ready.reason, ready.message)


def _ready(
    status: Literal["True", "False", "Unknown"], reason: str, message: str
) -> ConditionUpdate:
    return ConditionUpdate(COND_READY, status, reason, message)


def _resolve_gallery(spec: Mapping[str, Any], config: Config) -> ResolvedSource | None:
    """The gallery entry a ``gallery://`` source names (None for other sources)."""
    uri = str((spec.get("source") or {}).get("uri") or "")
    reference = gallery_reference(uri)
    if reference is None:
        return None
    gallery_name, entry_name = reference
    configmaps = k8s.list_objects(
        "v1", "ConfigMap", config.namespace, {GALLERY_LABEL: gallery_name}
    )
    gallery = load_gallery(configmaps, name=gallery_name)
    entry = gallery.datasets.get(entry_name)
    if entry is None:
        available = ", ".join(sorted(gallery.datasets)) or "none"
        where = (
            f"gallery {gallery_name!r} (ConfigMaps labelled {GALLERY_LABEL}={gallery_name} in "
            f"namespace {config.namespace})"
        )
        raise _WaitingError(
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


def _check_dependencies(plan: DatasetPlan, config: Config) -> None:
    """Make sure the claims and Secrets the worker needs exist (creating the workspace)."""
    namespace = plan.namespace
    if plan.uses_workspace:
        # Created from the default StorageClass and never deleted: no owner reference.
        k8s.create_or_get(workspace_claim(namespace, config.workspace_pvc, config.workspace_size))
    for claim in plan.claims:
        if plan.uses_workspace and claim == config.workspace_pvc:
            continue
        if k8s.get("v1", "PersistentVolumeClaim", namespace, claim) is None:
            field = "spec.storage.uri" if claim == plan.target.claim else "spec.source.uri"
            raise _WaitingError(
                f"{field}: PersistentVolumeClaim {claim!r} does not exist in namespace "
                f"{namespace}; create it (the Dataset continues when it appears)"
            )
    secret_name = plan.credentials_secret
    if secret_name:
        secret = k8s.get("v1", "Secret", namespace, secret_name)
        field = "spec.source.secretRef" if plan.source_secret else "spec.storage.secretRef"
        if secret is None:
            raise _WaitingError(
                f"{field}: Secret {secret_name!r} does not exist in namespace {namespace}; "
                "create it with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
        missing = [key for key, required in S3_SECRET_KEYS.items() if required and key not in keys]
        if missing:
            raise _WaitingError(
                f"{field}: Secret {secret_name!r} has no {' or '.join(missing)}; add the key"
            )


def _step(
    plan: DatasetPlan,
    body: Mapping[str, Any],
    status: Mapping[str, Any],
    placement: Placement,
    config: Config,
) -> _Outcome:
    jobs = k8s.list_objects("batch/v1", "Job", plan.namespace, {DATASET_LABEL: plan.name})
    ingest_jobs = [j for j in jobs if _labels(j).get(STEP_LABEL) == _STEP_INGEST]
    published = _published_versions(status)

    ingest = _ingest_job_for(plan, ingest_jobs)
    if ingest is None:
        other_data = [
            j
            for j in ingest_jobs
            if _job_state(j) == "Complete" and _labels(j).get(DATA_KEY_LABEL) != plan.data_key
        ]
        if published and other_data:
            return _refuse_data_change(plan, status, published)
        _check_dependencies(plan, config)
        for stale in ingest_jobs:
            # Failed attempts for another spec (a fixed sha256, a raised limit): the new
            # Job replaces them.
            k8s.delete("batch/v1", "Job", plan.namespace, _name(stale))
        k8s.create_or_get(ingest_job(plan, body, image=config.image_dataset, placement=placement))
        return _Outcome(
            PHASE_DOWNLOADING,
            [
                ConditionUpdate(
                    COND_DOWNLOADED, UNKNOWN, REASON_DOWNLOADING, "the ingest Job starts"
                ),
                ConditionUpdate(COND_VERIFIED, UNKNOWN, REASON_DOWNLOADING, "waiting for the data"),
                _ready(FALSE, REASON_DOWNLOADING, f"downloading {plan.source.uri}"),
            ],
            {"location": plan.target.uri},
        )

    state = _job_state(ingest)
    if state == "Running":
        return _ingest_running(plan, ingest, status)
    result = _job_result(plan.namespace, ingest)
    if state == "Failed" or result is None or result.get("status") != "Succeeded":
        if state == "Complete" and result is None and status.get("digest"):
            # The pod is gone but its result was recorded before: keep it.
            result = _result_from_status(status)
        elif state == "Complete" and result is None:
            # Neither the pod nor the status has the result: run the ingest again.
            k8s.delete("batch/v1", "Job", plan.namespace, _name(ingest))
            return _Outcome(
                PHASE_PENDING, [_ready(FALSE, REASON_DOWNLOADING, "re-reading the data")]
            )
        else:
            return _Outcome(PHASE_FAILED, failure_updates(result or _job_failure(ingest)))

    fields = ingest_fields(result, plan)
    updates = [
        ConditionUpdate(
            COND_DOWNLOADED,
            TRUE,
            REASON_DOWNLOADED,
            f"{plan.source.uri}: {result.get('archiveBytes', 0)} bytes"
            + (
                f" (gallery entry {plan.source.gallery_entry})" if plan.source.gallery_entry else ""
            ),
        ),
        ConditionUpdate(COND_VERIFIED, TRUE, REASON_VERIFIED, _verified_message(result)),
    ]
    return _versions_step(plan, body, status, placement, config, jobs, published, updates, fields)


def _versions_step(
    plan: DatasetPlan,
    body: Mapping[str, Any],
    status: Mapping[str, Any],
    placement: Placement,
    config: Config,
    jobs: list[dict[str, Any]],
    published: dict[str, dict[str, Any]],
    updates: list[ConditionUpdate],
    fields: dict[str, Any],
) -> _Outcome:
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

    publish_jobs = {_name(j): j for j in jobs if _labels(j).get(STEP_LABEL) == _STEP_PUBLISH}
    versions = dict(published)
    pending: list[str] = []
    failures: list[tuple[str, dict[str, Any]]] = []
    for version in plan.versions:
        if version.name in published:
            continue
        job_name = plan.publish_job_name(version)
        job = publish_jobs.get(job_name)
        if job is None:
            _check_dependencies(plan, config)
            k8s.create_or_get(
                publish_job(plan, version, body, image=config.image_dataset, placement=placement)
            )
            pending.append(version.name)
            continue
        state = _job_state(job)
        if state == "Running":
            pending.append(version.name)
            continue
        result = _job_result(plan.namespace, job)
        if state == "Complete" and result is not None and result.get("status") == "Succeeded":
            versions[version.name] = version_entry(result, plan, _completion_time(job))
        else:
            failures.append((version.field, result or _job_failure(job)))

    fields["versions"] = sorted(versions.values(), key=lambda v: str(v.get("name")))
    if failures:
        failure = failures[0][1]
        reason = str(failure.get("reason") or "JobFailed")
        message = "; ".join(f"{w}: {f.get('message', '')}" for w, f in failures)
        updates.append(_ready(FALSE, reason, message))
        return _Outcome(PHASE_FAILED, updates, fields)
    if pending:
        updates.append(
            _ready(FALSE, REASON_PUBLISHING, f"publishing version(s) {', '.join(pending)}")
        )
        return _Outcome(PHASE_PUBLISHING, updates, fields)
    summary = _verified_message(_result_from_fields(fields))
    if versions:
        names = ", ".join(sorted(versions))
        updates.append(_ready(TRUE, REASON_PUBLISHED, f"{summary}; versions {names} published"))
    else:
        updates.append(
            _ready(TRUE, REASON_INGESTED, f"{summary}; add spec.versions to publish a split")
        )
    return _Outcome(PHASE_READY, updates, fields)


def _refuse_data_change(
    plan: DatasetPlan, status: Mapping[str, Any], published: Mapping[str, Any]
) -> _Outcome:
    """The data's definition changed after versions were published: keep everything as it
    is and say so; Ready still describes the published data."""
    names = ", ".join(sorted(published))
    message = (
        f"spec.source, spec.format or spec.storage changed after versions {names} were "
        "published from the data as it was; published versions are immutable: restore the "
        "previous values, or create a new Dataset for the new data"
    )
    phase = str(status.get("phase") or PHASE_READY)
    return _Outcome(
        phase if phase not in ACTIVE_PHASES else PHASE_READY,
        [ConditionUpdate(COND_VERSIONS_VALID, FALSE, REASON_DATA_IMMUTABLE, message)],
    )


def _ingest_running(
    plan: DatasetPlan, job: Mapping[str, Any], status: Mapping[str, Any]
) -> _Outcome:
    pod = _job_pod(plan.namespace, job)
    progress: dict[str, Any] | None = None
    waiting = ""
    if pod is not None:
        waiting = _pod_waiting_message(pod)
        log = k8s.read_pod_log(plan.namespace, _name(pod), tail_lines=LOG_TAIL_LINES)
        progress = progress_from_log(log or "")
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
        _ready(FALSE, REASON_VERIFYING if verifying else REASON_DOWNLOADING, message),
    ]
    return _Outcome(phase, updates, fields)


def _progress_text(progress: Mapping[str, Any]) -> str:
    parts = [f"{progress.get('bytes', 0)} bytes"]
    if progress.get("totalBytes"):
        parts[0] += f" of {progress['totalBytes']}"
    files = f"{progress.get('files', 0)} files"
    if progress.get("totalFiles"):
        files += f" of {progress['totalFiles']}"
    return f"{parts[0]}, {files}"


# --- pure helpers: results into status -------------------------------------------------------


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
    return [downloaded, verified, _ready(FALSE, reason, message)]


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
    if not message:
        return None
    try:
        document = json.loads(message)
    except ValueError:
        return None
    if isinstance(document, dict) and document.get("status") in ("Succeeded", "Failed"):
        return document
    return None


# --- Jobs and their pods ---------------------------------------------------------------------


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name"))


def _job_state(job: Mapping[str, Any]) -> JobState:
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


def _ingest_job_for(plan: DatasetPlan, ingest_jobs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ingest Job for the spec: the one with the spec's run key, or else one that
    completed for the same data (only the limits differ: no need to read it again)."""
    current = next((j for j in ingest_jobs if _name(j) == plan.ingest_job_name), None)
    same_data = [
        j
        for j in ingest_jobs
        if _labels(j).get(DATA_KEY_LABEL) == plan.data_key and _job_state(j) == "Complete"
    ]
    if current is not None and (_job_state(current) != "Failed" or not same_data):
        return current
    if same_data:
        return max(same_data, key=lambda j: str(_completion_time(j) or ""))
    return current


def _published_versions(status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        str(v.get("name")): dict(v)
        for v in status.get("versions") or []
        if isinstance(v, Mapping) and v.get("published")
    }


def _job_pod(namespace: str, job: Mapping[str, Any]) -> dict[str, Any] | None:
    pods = k8s.list_pods(namespace, {"job-name": _name(job)})
    if not pods:
        return None
    return max(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", "")))


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            return cast(Mapping[str, Any], terminated)
    return None


def _pod_waiting_message(pod: Mapping[str, Any]) -> str:
    pod_status = pod.get("status") or {}
    for container in pod_status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating"):
            return f"{waiting.get('reason')}: {waiting.get('message', '')}".strip(": ")
    for condition in pod_status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"not scheduled: {condition.get('message', '')}"
    return ""


def _job_result(namespace: str, job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The worker's result: the pod's termination message, or the full result line of its
    log when the message was compacted (long class lists are cut to fit 4096 bytes)."""
    pod = _job_pod(namespace, job)
    if pod is None:
        return None
    terminated = _terminated(pod)
    if terminated is None:
        return None
    result = _parse_result(terminated.get("message"))
    if result is None or result.get("truncated"):
        log = k8s.read_pod_log(namespace, _name(pod), tail_lines=LOG_TAIL_LINES)
        full = result_from_log(log or "")
        if full is not None:
            return full
    if result is None:
        code = terminated.get("exitCode")
        reason = EXIT_REASONS.get(code, "JobFailed") if isinstance(code, int) else "JobFailed"
        detail = str(terminated.get("message") or terminated.get("reason") or "").strip()
        return {
            "status": "Failed" if code else "Succeeded",
            "reason": reason,
            "message": f"the worker exited with code {code}"
            + (f": {detail[-1000:]}" if detail else ""),
        }
    return result


def _job_failure(job: Mapping[str, Any]) -> dict[str, Any]:
    """A failure result for a Job whose pod left nothing to read (deleted, deadline)."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return {
                "status": "Failed",
                "reason": str(condition.get("reason") or "JobFailed"),
                "message": f"Job {_name(job)}: {condition.get('message') or 'failed'}",
            }
    return {"status": "Failed", "reason": "JobFailed", "message": f"Job {_name(job)} failed"}


# --- deletion --------------------------------------------------------------------------------


def cleanup(body: Mapping[str, Any], logger: kopf.Logger, config: Config) -> None:
    """Remove the Dataset's stored files with a cleanup Job, then let the Dataset go.

    Raises ``kopf.TemporaryError`` while the Job runs. A failed cleanup is reported and
    does not keep the Dataset forever: the files stay, and the message says where.
    """
    metadata = body.get("metadata") or {}
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace"))
    status = body.get("status") or {}
    if not status.get("location"):
        logger.info("Dataset stored nothing; nothing to remove")
        return
    try:
        plan = plan_dataset(
            name, namespace, body.get("spec") or {}, workspace_pvc=config.workspace_pvc
        )
        placement = build_placement(POOL_CPU, 0, config.pools, field="KUBEARTS_POOLS")
    except ValueError as exc:
        logger.error("cannot remove the stored files of the Dataset: %s", exc)
        return
    jobs = k8s.list_objects("batch/v1", "Job", namespace, {DATASET_LABEL: name})
    for other in jobs:
        # Nothing may write while the files are removed.
        if _name(other) != plan.cleanup_job_name and _job_state(other) == "Running":
            k8s.delete("batch/v1", "Job", namespace, _name(other))
    job = k8s.get("batch/v1", "Job", namespace, plan.cleanup_job_name)
    if job is None:
        k8s.create_or_get(cleanup_job(plan, body, image=config.image_dataset, placement=placement))
        raise kopf.TemporaryError(f"removing {plan.target.uri}", delay=CLEANUP_POLL_SECONDS)
    state = _job_state(job)
    if state == "Running":
        raise kopf.TemporaryError(f"removing {plan.target.uri}", delay=CLEANUP_POLL_SECONDS)
    if state == "Failed":
        failure = _job_result(namespace, job) or _job_failure(job)
        logger.error(
            "could not remove %s (%s); the files stay: remove them by hand",
            plan.target.uri,
            failure.get("message"),
        )
        return
    logger.info("removed the stored files at %s", plan.target.uri)
