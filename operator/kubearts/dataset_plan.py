"""What a Dataset's Jobs mean for its status (pure): decisions and status from what was read.

The handler (``kubearts.handlers.datasets``) reads the Dataset's Jobs (followed the way
:mod:`kubearts.workloads` follows every worker Job), the claims and Secrets they need, and
asks :func:`decide` once per step. The answer, a :class:`Step`, says which Jobs to start
or delete and carries the :class:`Outcome` (conditions, status fields, phase) to write.
Nothing here talks to the API server or to kopf, so every rule about the worker's
results — which stage a failure belongs to, how a version is recorded, when a published
version would change — can be tested with plain dictionaries.

The worker's contract (result documents, progress lines, exit codes) is described in
``images/dataset/README.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from kubearts.conditions import ConditionUpdate, rfc3339
from kubearts.constants import (
    COND_DOWNLOADED,
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
    REASON_DATA_IMMUTABLE,
    REASON_DOWNLOADED,
    REASON_DOWNLOADING,
    REASON_INGESTED,
    REASON_NOT_FOUND,
    REASON_PUBLISHED,
    REASON_PUBLISHING,
    REASON_STORAGE_IN_USE,
    REASON_VERIFIED,
    REASON_VERIFYING,
    REASON_VERSION_IMMUTABLE,
    REASON_VERSIONS_VALID,
    REASON_WAITING_FOR_DEPENDENCY,
    STEP_LABEL,
    TRUE,
    UNKNOWN,
)
from kubearts.dataset_spec import (
    STEP_CLEANUP,
    STEP_INGEST,
    STEP_PUBLISH,
    DatasetPlan,
    Format,
    ResolvedSource,
    VersionPlan,
)
from kubearts.dataset_status import (
    EXIT_REASONS,
    failure_updates,
    ingest_fields,
    progress_fields,
    published_versions,
    ready,
    result_from_fields,
    result_from_status,
    verified_message,
    version_conflicts,
    version_entry,
)
from kubearts.dataset_storage import StorageUse, storage_conflict, storage_use
from kubearts.gallery import load_gallery
from kubearts.storage import HTTP_AUTHORIZATION_KEY, S3_SECRET_KEYS
from kubearts.workloads import JobView, job_failure, job_state, object_name

__all__ = [
    "ACTIVE_PHASES",
    "EXIT_REASONS",
    "Ingested",
    "Observed",
    "Outcome",
    "SecretNeed",
    "Step",
    "WaitingError",
    "claims_to_check",
    "cleanup_blockers",
    "data_change_refusal",
    "decide",
    "dependency_problem",
    "gallery_source",
    "ingest_job_for",
    "ingest_running",
    "ingest_started",
    "judge_ingest",
    "missing_claim",
    "recorded_ingest",
    "secret_needs",
    "secret_wait",
    "stale_ingest_jobs",
    "unpublished_versions",
    "versions_outcome",
    "waiting",
]

#: Phases in which a Job works for the Dataset and the timer follows it.
ACTIVE_PHASES: Final = frozenset({PHASE_DOWNLOADING, PHASE_VERIFYING, PHASE_PUBLISHING})
#: Worker progress phase → Dataset phase.
_PROGRESS_PHASES: Final[Mapping[str, str]] = {
    "download": PHASE_DOWNLOADING,
    "unpack": PHASE_VERIFYING,
    "verify": PHASE_VERIFYING,
    "upload": PHASE_VERIFYING,
}


# --- what a step reads and answers -------------------------------------------------------------


@dataclass
class Outcome:
    """What one step observed: conditions to set, status fields, the phase."""

    phase: str
    updates: list[ConditionUpdate] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)


class WaitingError(Exception):
    """Another object is missing; ``message`` says which and how to provide it."""

    def __init__(self, message: str, reason: str = REASON_WAITING_FOR_DEPENDENCY) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Observed:
    """Everything one step read about a Dataset.

    ``jobs`` are the Dataset's Jobs as :func:`kubearts.workloads.observe_job` saw them;
    ``claims`` the claims of :func:`claims_to_check` that exist; ``storage`` the uses of
    storage folders in the Dataset's scope (:func:`kubearts.dataset_storage.storage_scope`)
    by every Dataset the operator knows; ``created`` the Dataset's creation timestamp.
    """

    plan: DatasetPlan
    status: Mapping[str, Any]
    jobs: Sequence[JobView] = ()
    claims: frozenset[str] = frozenset()
    storage: Sequence[StorageUse] = ()
    created: str = ""


@dataclass(frozen=True)
class Ingested:
    """A successful ingest: the status fields and Downloaded/Verified conditions it gives."""

    fields: dict[str, Any]
    updates: list[ConditionUpdate]


@dataclass(frozen=True)
class Step:
    """The decision of one step: the status to write and what to do first.

    The handler deletes ``delete_jobs``, then (the workspace claim made sure of) starts the
    ingest Job when ``start_ingest`` and a publish Job per ``publish`` version, writes
    ``outcome``, and, when ``wait`` is set, asks kopf to run the step again later.
    """

    outcome: Outcome
    start_ingest: bool = False
    publish: tuple[VersionPlan, ...] = ()
    delete_jobs: tuple[str, ...] = ()
    wait: WaitingError | None = None

    @property
    def starts_jobs(self) -> bool:
        return self.start_ingest or bool(self.publish)


def waiting(status: Mapping[str, Any], wait: WaitingError) -> Step:
    """The step while waiting for another object.

    Before any Job, waiting is Pending; later (a publish Job needs a Secret that went away)
    the phase stays, so the timer keeps looking.
    """
    phase = status.get("phase")
    phase = phase if phase in ACTIVE_PHASES else PHASE_PENDING
    return Step(Outcome(str(phase), [ready(FALSE, wait.reason, wait.message)]), wait=wait)


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


def claims_to_check(plan: DatasetPlan) -> list[str]:
    """Claims the worker mounts that must exist already (the workspace is created)."""
    return [
        claim for claim in plan.claims if not (plan.uses_workspace and claim == plan.target.claim)
    ]


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


def secret_wait(plan: DatasetPlan, message: str) -> WaitingError | None:
    """The wait a pod stuck on a Secret means, naming the spec field and the keys to add.

    The operator does not read Secrets (it may not, outside what a pod of the namespace
    can use): a missing Secret or key shows as the pod's ``CreateContainerConfigError``,
    whose message (``secret "token" not found``, ``couldn't find key Authorization in
    Secret ml/token``) names it. The pod starts by itself once the Secret is there.
    """
    for need in secret_needs(plan):
        if f'"{need.name}"' in message or f"/{need.name}" in message:
            return WaitingError(
                f"{need.field}: Secret {need.name!r} in namespace {plan.namespace} cannot be "
                f"used ({message}); create it with {' and '.join(need.keys)} (the Dataset "
                "continues when it is there)"
            )
    return None


# --- Jobs and their pods ---------------------------------------------------------------------


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


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


def cleanup_blockers(jobs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Running Jobs to stop before the files are removed: nothing may write meanwhile."""
    return [
        object_name(j)
        for j in jobs
        if _labels(j).get(STEP_LABEL) != STEP_CLEANUP and job_state(j) == "Running"
    ]


# --- the step, stage by stage ------------------------------------------------------------------


def data_change_refusal(
    plan: DatasetPlan, jobs: Iterable[Mapping[str, Any]], status: Mapping[str, Any]
) -> Outcome | None:
    """With no ingest Job for the spec: refuse when versions were published from data the
    spec no longer describes. Ready keeps describing the published data.

    The data the versions came from is the one ``status.dataKey`` records, whatever Jobs
    remain; a status written before that field existed is judged by the completed ingest
    Jobs still there.
    """
    published = published_versions(status)
    recorded = status.get("dataKey")
    if recorded:
        other_data = recorded != plan.data_key
    else:
        other_data = any(
            job_state(j) == "Complete" and _labels(j).get(DATA_KEY_LABEL) != plan.data_key
            for j in _jobs_of_step(jobs, STEP_INGEST)
        )
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
            ready(FALSE, REASON_DOWNLOADING, f"downloading {plan.source.shown}"),
        ],
        {"location": plan.target.uri},
    )


def ingest_running(plan: DatasetPlan, status: Mapping[str, Any], view: JobView) -> Outcome:
    """The outcome while the ingest Job runs: its pod's progress, or why it waits.

    ``status.progress`` is written only when the numbers moved, so an idle poll writes
    nothing.
    """
    progress = None if view.progress is None else progress_fields(view.progress)
    fields: dict[str, Any] = {"location": plan.target.uri}
    phase = PHASE_DOWNLOADING
    message = f"downloading {plan.source.shown}"
    if view.waiting is not None:
        reason, detail = view.waiting
        message = f"{message}: the pod is waiting ({reason}: {detail})".replace(": )", ")")
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
            plan.source.shown if verifying else message,
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


def recorded_ingest(plan: DatasetPlan, status: Mapping[str, Any]) -> Ingested | None:
    """The data the status records as ingested for the spec's data key, with no Job left
    to read (Jobs are deleted by people and TTL controllers): the data is in already;
    reading it again would download it for nothing, or — a source whose content changed —
    put other data under the versions' Dataset than they were split from."""
    if status.get("dataKey") != plan.data_key or not status.get("digest"):
        return None
    result = result_from_status(status)
    gallery = f" (gallery entry {plan.source.gallery_entry})" if plan.source.gallery_entry else ""
    return Ingested(
        ingest_fields(result, plan),
        [
            ConditionUpdate(
                COND_DOWNLOADED, TRUE, REASON_DOWNLOADED, f"{plan.source.shown}{gallery}"
            ),
            ConditionUpdate(COND_VERIFIED, TRUE, REASON_VERIFIED, verified_message(result)),
        ],
    )


def judge_ingest(plan: DatasetPlan, view: JobView, status: Mapping[str, Any]) -> Ingested | Step:
    """What a stopped ingest Job means: the data is in (:class:`Ingested`), it failed, or
    its result is lost and the Job must run again (a :class:`Step` saying so).

    A result recorded in the status before is kept when the pod is gone, rather than
    downloading everything again.
    """
    result = view.result
    if not view.succeeded:
        if view.state == "Complete" and result is None and status.get("digest"):
            result = result_from_status(status)
        elif view.state == "Complete" and result is None:
            again = ready(FALSE, REASON_DOWNLOADING, "re-reading the data")
            return Step(Outcome(PHASE_PENDING, [again]), delete_jobs=(view.name,))
        else:
            failure = result or job_failure(view.job)
            return Step(Outcome(PHASE_FAILED, failure_updates(failure)))
    assert result is not None
    gallery = f" (gallery entry {plan.source.gallery_entry})" if plan.source.gallery_entry else ""
    downloaded = f"{plan.source.shown}: {result.get('archiveBytes', 0)} bytes{gallery}"
    return Ingested(
        ingest_fields(result, plan),
        [
            ConditionUpdate(COND_DOWNLOADED, TRUE, REASON_DOWNLOADED, downloaded),
            ConditionUpdate(COND_VERIFIED, TRUE, REASON_VERIFIED, verified_message(result)),
        ],
    )


def unpublished_versions(
    plan: DatasetPlan, jobs: Iterable[JobView], status: Mapping[str, Any]
) -> list[tuple[VersionPlan, JobView | None]]:
    """The spec's versions not yet published, each with its publish Job (None: none yet)."""
    publish_jobs = {v.name: v for v in jobs if _labels(v.job).get(STEP_LABEL) == STEP_PUBLISH}
    published = published_versions(status)
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
    finished: Iterable[tuple[VersionPlan, JobView]],
) -> Outcome:
    """The outcome once the data is in: versions published so far, those still publishing
    (``pending``) and the publish Jobs that stopped. A failed version fails the Dataset; a
    conflicting edit of a published one is reported without failing it."""
    published = published_versions(status)
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
    for version, view in finished:
        if view.succeeded and view.result is not None:
            versions[version.name] = version_entry(view.result, plan, _completion_time(view.job))
        else:
            failures.append((version.field, view.result or job_failure(view.job)))

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
    summary = verified_message(result_from_fields(fields))
    if versions:
        names = ", ".join(sorted(versions))
        updates.append(ready(TRUE, REASON_PUBLISHED, f"{summary}; versions {names} published"))
    else:
        updates.append(
            ready(TRUE, REASON_INGESTED, f"{summary}; add spec.versions to publish a split")
        )
    return Outcome(PHASE_READY, updates, fields)


# --- the decision ------------------------------------------------------------------------------


def dependency_problem(observed: Observed) -> WaitingError | None:
    """The first claim a new Job mounts that is missing, if any."""
    plan = observed.plan
    for claim in claims_to_check(plan):
        if claim not in observed.claims:
            return missing_claim(plan, claim)
    return None


def _stuck_on_secret(plan: DatasetPlan, views: Sequence[JobView]) -> WaitingError | None:
    for view in views:
        if view.state == "Running" and view.waiting is not None:
            reason, message = view.waiting
            if reason == "CreateContainerConfigError":
                return secret_wait(plan, message)
    return None


def _first_ingest(observed: Observed, jobs: Sequence[Mapping[str, Any]]) -> Step:
    """No ingest of the spec's data, neither as a Job nor in the status: start one, unless
    published versions would lose the data they describe, or a claim is missing."""
    plan, status = observed.plan, observed.status
    refusal = data_change_refusal(plan, jobs, status)
    if refusal is not None:
        return Step(refusal)
    problem = dependency_problem(observed)
    if problem is not None:
        return waiting(status, problem)
    stale = tuple(stale_ingest_jobs(jobs))
    return Step(ingest_started(plan), start_ingest=True, delete_jobs=stale)


def decide(observed: Observed) -> Step:
    """The one decision of a step: wait while another Dataset uses the storage folder;
    follow the ingest Job (starting it when there is none for the spec and the status
    records no ingest of its data), then the versions once the data is in."""
    plan, status = observed.plan, observed.status
    conflict = storage_conflict(storage_use(plan, status, observed.created), observed.storage)
    if conflict is not None:
        return waiting(status, WaitingError(conflict, reason=REASON_STORAGE_IN_USE))
    jobs = [view.job for view in observed.jobs]
    ingest_job = ingest_job_for(plan, jobs)
    verdict: Ingested | Step | None = None
    if ingest_job is None:
        verdict = recorded_ingest(plan, status)
        if verdict is None:
            return _first_ingest(observed, jobs)
    else:
        ingest = next(view for view in observed.jobs if view.job is ingest_job)
        stuck = _stuck_on_secret(plan, observed.jobs)
        if stuck is not None:
            return waiting(status, stuck)
        if ingest.state == "Running":
            return Step(ingest_running(plan, status, ingest))
        verdict = judge_ingest(plan, ingest, status)
    if isinstance(verdict, Step):
        return verdict

    to_start: list[VersionPlan] = []
    pending: list[str] = []
    finished: list[tuple[VersionPlan, JobView]] = []
    for version, view in unpublished_versions(plan, observed.jobs, status):
        if view is None:
            to_start.append(version)
            pending.append(version.name)
        elif view.state == "Running":
            pending.append(version.name)
        else:
            finished.append((version, view))
    if to_start:
        problem = dependency_problem(observed)
        if problem is not None:
            return waiting(status, problem)
    outcome = versions_outcome(plan, status, verdict, pending, finished)
    return Step(outcome, publish=tuple(to_start))
