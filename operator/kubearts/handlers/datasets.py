"""Dataset handlers: bring a data set into cluster storage, verify it, publish versions.

One level-based step, :func:`reconcile`, looks at the spec, the status and the Dataset's
Jobs and moves on by one stage: resolve ``gallery://``, make sure the storage exists, run
the ingest Job, then one publish Job per version not yet published, and write what it sees
into the status. This module reads and writes through ``kubearts.k8s``; what the objects it
read mean — which stage comes next, what goes into the status — is decided by the pure
functions of :mod:`kubearts.datasets`. Nothing waits inside the step:

- the create, update and resume handlers run the step once; while it waits for another
  object (a claim, a Secret, a gallery entry) they raise ``kopf.TemporaryError`` and kopf
  runs them again later;
- while a Job works (phase Downloading, Verifying or Publishing), the ``datasets_poll``
  timer runs the same step every few seconds: it copies the worker's progress from the
  pod's log and, once the Job has finished, its result into the status and starts the
  next Job. A kopf timer holds a finalizer while it runs, so a Dataset carries one only
  during that work (the ``when`` filter stops the timer in every other phase, and kopf then
  removes the finalizer);
- with ``spec.storage.deletePolicy: Delete``, ``datasets_delete`` runs cleanup Jobs
  before the Dataset goes. Its ``when`` filter means Retain Datasets get no finalizer. The
  cleanup is bounded (:mod:`kubearts.dataset_storage`): Jobs of a short deadline, a few
  attempts, a time limit; then the Dataset is released with a Warning event
  (``CleanupFailed``) naming the folder left behind.

Every Dataset's storage folder is held in a kopf index (``datasets_by_storage``); a Dataset
whose folder another one already uses, or one overlapping it, waits with ``Ready=False``
(reason ``StorageInUse``) rather than replacing that Dataset's data.

Published versions are immutable. Editing a published version's split is refused with
``VersionsValid=False`` (reason ``VersionImmutable``) while ``Ready`` keeps describing the
published data; so is changing the data's definition once versions exist
(``DataImmutable``, judged by the ``status.dataKey`` the ingest recorded). A new version is
published on its own. The worker keeps every published version's files: each ingest installs
its data in a content-addressed folder of its own.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Final

import kopf

from kubearts import dataset_plan, dataset_storage, k8s, metrics
from kubearts.builders.dataset_jobs import (
    cleanup_job,
    ingest_job,
    publish_job,
    source_url_secret,
)
from kubearts.builders.placement import Placement
from kubearts.conditions import SpecError
from kubearts.config import WORKER_DATASET, Config
from kubearts.constants import (
    DATASET,
    DATASET_LABEL,
    GALLERY_LABEL,
    GROUP,
    PHASE_FAILED,
    REASON_CLEANUP_FAILED,
    STEP_LABEL,
    VERSION,
)
from kubearts.dataset_plan import Observed, Step, WaitingError
from kubearts.dataset_spec import (
    STEP_CLEANUP,
    DatasetPlan,
    ResolvedSource,
    gallery_reference,
    plan_dataset,
)
from kubearts.dataset_storage import StorageUse
from kubearts.handlers import common

__all__ = [
    "STORAGE_INDEX",
    "cleanup",
    "datasets_by_storage",
    "datasets_delete",
    "reconcile",
]

#: The kopf index of every Dataset's storage folder, by its scope.
STORAGE_INDEX: Final = "datasets_by_storage"
StorageIndex = kopf.Index[tuple[str, str], StorageUse]

#: Seconds between two looks at a running Job (progress and completion).
POLL_SECONDS: Final = 3.0
#: Delay before a handler waiting for a claim, a Secret or a gallery entry runs again.
WAIT_SECONDS: Final = 10.0
#: Delay between two looks at a running cleanup Job.
CLEANUP_POLL_SECONDS: Final = 2.0


# --- registrations ---------------------------------------------------------------------------


def _in_progress(status: kopf.Status, **_: Any) -> bool:
    """Timer filter: a Job works for the Dataset."""
    return status.get("phase") in dataset_plan.ACTIVE_PHASES


def _deletes_data(spec: kopf.Spec, **_: Any) -> bool:
    """Delete-handler filter: only Datasets whose files go with them need a finalizer."""
    return (spec.get("storage") or {}).get("deletePolicy") == "Delete"


@kopf.index(GROUP, VERSION, DATASET.plural, id=STORAGE_INDEX)
def datasets_by_storage(
    body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[tuple[str, str], StorageUse] | None:
    """Every Dataset's storage folder under its scope (a namespace's claim, a bucket)."""
    plan = _stored_plan(body, common.operator_config(memo))
    if plan is None:
        return None
    status = body.get("status") or {}
    created = str(body["metadata"].get("creationTimestamp") or "")
    return {dataset_storage.storage_scope(plan): dataset_storage.storage_use(plan, status, created)}


@kopf.on.delete(GROUP, VERSION, DATASET.plural, when=_deletes_data)
@metrics.instrumented(DATASET.kind)
def datasets_delete(
    body: kopf.Body,
    logger: kopf.Logger,
    memo: kopf.Memo,
    runtime: datetime.timedelta,
    datasets_by_storage: StorageIndex | None = None,
    **_: Any,
) -> None:
    """deletePolicy Delete: remove the stored files before the Dataset goes."""
    config = common.operator_config(memo)
    cleanup(body, logger, config, elapsed=runtime.total_seconds(), storage=datasets_by_storage)


# --- the step --------------------------------------------------------------------------------


def reconcile(
    body: Mapping[str, Any],
    patch: kopf.Patch,
    logger: kopf.Logger,
    config: Config,
    datasets_by_storage: StorageIndex | None = None,
) -> None:
    """Move the Dataset on by one stage: read, decide once, carry out, write the status once.

    Raises ``kopf.PermanentError`` for an invalid spec and ``kopf.TemporaryError`` while
    waiting for another object (or for a storage folder another Dataset uses).
    """
    status: Mapping[str, Any] = body.get("status") or {}
    plan: DatasetPlan | None = None
    try:
        plan = _plan(body, config)
        placement = _placement(config)
    except SpecError as error:
        fields = {"phase": PHASE_FAILED}
        raise common.invalid_spec(DATASET, body, patch, error, fields=fields) from None
    except WaitingError as wait:
        step = dataset_plan.waiting(status, wait)
    else:
        step = dataset_plan.decide(_observe(plan, body, config, datasets_by_storage))
        if step.delete_jobs or step.starts_jobs:
            _carry_out(step, plan, body, placement, config)
    outcome = step.outcome
    fields = {**outcome.fields, "phase": outcome.phase}
    if plan is not None:
        fields["source"] = plan.source.shown  # the printed SOURCE column: never a password
    common.write_status(patch, body, DATASET, outcome.updates, fields=fields)
    if step.wait is not None:
        raise kopf.TemporaryError(step.wait.message, delay=WAIT_SECONDS)
    logger.debug("Dataset step done: phase %s", outcome.phase)


def _plan(body: Mapping[str, Any], config: Config) -> DatasetPlan:
    """The checked spec, its ``gallery://`` source resolved.

    Raises :class:`SpecError` for an invalid spec and :class:`WaitingError` while the
    gallery does not offer the entry.
    """
    metadata = body.get("metadata") or {}
    spec: Mapping[str, Any] = body.get("spec") or {}
    return plan_dataset(
        str(metadata.get("name")),
        str(metadata.get("namespace")),
        spec,
        workspace_pvc=config.workspace_pvc,
        source=_resolve_gallery(spec, config),
    )


def _placement(config: Config) -> Placement:
    """Where data set pods go: the cpu pool, at the dataset worker's size."""
    return common.worker_placement(config, WORKER_DATASET)


def _resolve_gallery(spec: Mapping[str, Any], config: Config) -> ResolvedSource | None:
    """The gallery entry a ``gallery://`` source names (None for other sources)."""
    reference = gallery_reference(str((spec.get("source") or {}).get("uri") or ""))
    if reference is None:
        return None
    gallery_name, entry_name = reference
    configmaps = k8s.list_objects(
        "v1", "ConfigMap", config.namespace, {GALLERY_LABEL: gallery_name}
    )
    return dataset_plan.gallery_source(configmaps, gallery_name, entry_name, config.namespace)


def _observe(
    plan: DatasetPlan,
    body: Mapping[str, Any],
    config: Config,
    storage: StorageIndex | None,
) -> Observed:
    """Read what the decision needs: the Dataset's Jobs and their pods (one list each, the
    log only where a Job's state needs it), the claims, and from the index the Datasets
    storing in the same scope. Secrets are not read: a pod that cannot use one says so,
    and the decision turns that into a wait."""
    namespace = plan.namespace
    status: Mapping[str, Any] = body.get("status") or {}
    created = str((body.get("metadata") or {}).get("creationTimestamp") or "")
    uses = tuple(storage.get(dataset_storage.storage_scope(plan), ())) if storage else ()
    jobs = k8s.list_objects("batch/v1", "Job", namespace, {DATASET_LABEL: plan.name})
    pods = k8s.list_pods(namespace, {DATASET_LABEL: plan.name})
    views = [common.job_view(namespace, job, dataset_plan.EXIT_REASONS, pods) for job in jobs]
    claims = frozenset(
        claim
        for claim in dataset_plan.claims_to_check(plan)
        if k8s.get("v1", "PersistentVolumeClaim", namespace, claim) is not None
    )
    return Observed(plan, status, views, claims, storage=uses, created=created)


def _carry_out(
    step: Step, plan: DatasetPlan, body: Mapping[str, Any], placement: Placement, config: Config
) -> None:
    """Delete the Jobs the step replaces, then start the ones it asks for."""
    for name in step.delete_jobs:
        k8s.delete("batch/v1", "Job", plan.namespace, name)
    if not step.starts_jobs:
        return
    if plan.uses_workspace:
        # Created from the default StorageClass and never deleted: no owner reference.
        common.ensure_workspace(plan.namespace, config)
    deadline = config.dataset_job_deadline_seconds
    image = config.image_dataset
    if step.start_ingest:
        if plan.source.has_credentials:
            k8s.create_if_absent(source_url_secret(plan, body))
        job = ingest_job(
            plan,
            body,
            image=image,
            placement=placement,
            deadline_seconds=deadline,
            scratch_size=config.workspace_size,
        )
        k8s.create_or_get(job)
    for version in step.publish:
        k8s.create_or_get(
            publish_job(
                plan, version, body, image=image, placement=placement, deadline_seconds=deadline
            )
        )


# --- deletion --------------------------------------------------------------------------------


def _stored_plan(
    body: Mapping[str, Any], config: Config, location: str | None = None
) -> DatasetPlan | None:
    """The plan of a Dataset's spec with its storage at ``location`` (default: as the spec
    says), gallery sources unresolved; None for a spec that cannot be planned."""
    metadata = body.get("metadata") or {}
    spec: dict[str, Any] = dict(body.get("spec") or {})
    if location:
        spec["storage"] = {**(spec.get("storage") or {}), "uri": location}
    try:
        return plan_dataset(
            str(metadata.get("name")),
            str(metadata.get("namespace")),
            spec,
            workspace_pvc=config.workspace_pvc,
        )
    except SpecError:
        return None


def cleanup(
    body: Mapping[str, Any],
    logger: kopf.Logger,
    config: Config,
    *,
    elapsed: float = 0.0,
    storage: StorageIndex | None = None,
) -> None:
    """Remove the Dataset's stored files (``status.location``) with cleanup Jobs, then let
    the Dataset go; ``elapsed``: seconds since the deletion began.

    Raises ``kopf.TemporaryError`` while the work goes on. Whatever happens — a Job that
    fails, a pod that never starts, a namespace that refuses new Jobs — it ends within
    :func:`kubearts.dataset_storage.cleanup_time_limit`: the Dataset is released and a
    Warning event says which files were left behind.
    """
    metadata = body.get("metadata") or {}
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace"))
    location = str((body.get("status") or {}).get("location") or "")
    if not location:
        logger.info("Dataset stored nothing; nothing to remove")
        return
    plan = _stored_plan(body, config, location)
    if plan is None:
        _give_up(body, logger, f"the files at {location} stay: the spec cannot be read")
        return
    me = dataset_storage.storage_use(plan, body.get("status") or {}, None, location)
    others = storage.get(dataset_storage.storage_scope(plan), ()) if storage else ()
    sharing = dataset_storage.holders(me, others)
    if sharing:
        message = f"the files at {location} stay: Dataset(s) {', '.join(sharing)} store data there"
        _give_up(body, logger, message)
        return
    jobs = k8s.list_objects("batch/v1", "Job", namespace, {DATASET_LABEL: name})
    for running in dataset_plan.cleanup_blockers(jobs):
        k8s.delete("batch/v1", "Job", namespace, running)
    pods = k8s.list_pods(namespace, {DATASET_LABEL: name})
    now = datetime.datetime.now(datetime.UTC)
    step = dataset_storage.cleanup_step(
        location,
        [
            (common.job_view(namespace, job, dataset_plan.EXIT_REASONS, pods), _age(job, now))
            for job in jobs
            if (job["metadata"].get("labels") or {}).get(STEP_LABEL) == STEP_CLEANUP
        ],
        blockers=_stopping_pods(pods),
        elapsed=elapsed,
        deadline_seconds=config.dataset_cleanup_deadline_seconds,
    )
    if step.done is not None:
        logger.info("removed the stored files at %s: %s", location, step.done)
    elif step.gave_up is not None:
        _give_up(body, logger, step.gave_up)
    elif step.wait is not None:
        raise kopf.TemporaryError(step.wait, delay=CLEANUP_POLL_SECONDS)
    else:
        assert step.start is not None
        _start_cleanup(plan, body, logger, config, step.start)


def _age(job: Mapping[str, Any], now: datetime.datetime) -> float:
    """Seconds since ``job`` was created."""
    created = str((job.get("metadata") or {}).get("creationTimestamp") or "")
    try:
        return (
            now - datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
        ).total_seconds()
    except ValueError:
        return 0.0


def _stopping_pods(pods: list[dict[str, Any]]) -> list[str]:
    """Pods of the Dataset's other Jobs that still run: they may write until they stop."""
    return sorted(
        str(pod["metadata"]["name"])
        for pod in pods
        if (pod["metadata"].get("labels") or {}).get(STEP_LABEL) != STEP_CLEANUP
        and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    )


def _start_cleanup(
    plan: DatasetPlan, body: Mapping[str, Any], logger: kopf.Logger, config: Config, attempt: int
) -> None:
    """Create the cleanup Job of ``attempt``; an operator that cannot place it, or a
    namespace that refuses it (one being deleted refuses every new object), ends the
    cleanup at once."""
    try:
        job = cleanup_job(
            plan,
            body,
            image=config.image_dataset,
            placement=_placement(config),
            deadline_seconds=config.dataset_cleanup_deadline_seconds,
            attempt=attempt,
        )
        k8s.create_or_get(job)
    except (SpecError, kopf.PermanentError, k8s.ApiException) as exc:
        message = f"the files at {plan.target.uri} stay: the cleanup Job cannot be created ({exc})"
        _give_up(body, logger, message)
        return
    raise kopf.TemporaryError(
        f"removing {plan.target.uri} (attempt {attempt})", delay=CLEANUP_POLL_SECONDS
    )


def _give_up(body: Mapping[str, Any], logger: kopf.Logger, message: str) -> None:
    """Release the Dataset, leaving its files: say so in the log and a Warning event."""
    logger.error("%s", message)
    common.post_event(body, "Warning", REASON_CLEANUP_FAILED, message)


# The create, update and resume handlers and the poll timer each run one step.
common.register_step(
    DATASET, reconcile, poll_seconds=POLL_SECONDS, when=_in_progress, indexes=(STORAGE_INDEX,)
)
