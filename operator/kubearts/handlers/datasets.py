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
- with ``spec.storage.deletePolicy: Delete``, ``datasets_delete`` runs a cleanup Job
  before the Dataset goes. Its ``when`` filter means Retain Datasets get no finalizer.

Published versions are immutable. Editing a published version's split is refused with
``VersionsValid=False`` (reason ``VersionImmutable``) while ``Ready`` keeps describing the
published data; so is changing the data's definition once versions exist
(``DataImmutable``). A new version is published on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import kopf

from kubearts import dataset_plan, k8s, metrics, workloads
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
    VERSION,
)
from kubearts.dataset_plan import Observed, Step, WaitingError
from kubearts.dataset_spec import DatasetPlan, ResolvedSource, gallery_reference, plan_dataset
from kubearts.handlers import common

__all__ = [
    "cleanup",
    "datasets_delete",
    "reconcile",
]

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


@kopf.on.delete(GROUP, VERSION, DATASET.plural, when=_deletes_data)
@metrics.instrumented(DATASET.kind)
def datasets_delete(body: kopf.Body, logger: kopf.Logger, memo: kopf.Memo, **_: Any) -> None:
    """deletePolicy Delete: remove the stored files before the Dataset goes."""
    cleanup(body, logger, common.operator_config(memo))


# --- the step --------------------------------------------------------------------------------


def reconcile(
    body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger, config: Config
) -> None:
    """Move the Dataset on by one stage: read, decide once, carry out, write the status once.

    Raises ``kopf.PermanentError`` for an invalid spec and ``kopf.TemporaryError`` while
    waiting for another object.
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
        step = dataset_plan.decide(_observe(plan, status, config))
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


def _observe(plan: DatasetPlan, status: Mapping[str, Any], config: Config) -> Observed:
    """Read what the decision needs: the Dataset's Jobs and their pods (one list each, the
    log only where a Job's state needs it) and the claims. Secrets are not read: a pod
    that cannot use one says so, and the decision turns that into a wait."""
    namespace = plan.namespace
    jobs = k8s.list_objects("batch/v1", "Job", namespace, {DATASET_LABEL: plan.name})
    pods = k8s.list_pods(namespace, {DATASET_LABEL: plan.name})
    views = [common.job_view(namespace, job, dataset_plan.EXIT_REASONS, pods) for job in jobs]
    claims = frozenset(
        claim
        for claim in dataset_plan.claims_to_check(plan)
        if k8s.get("v1", "PersistentVolumeClaim", namespace, claim) is not None
    )
    return Observed(plan, status, views, claims)


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


def cleanup(body: Mapping[str, Any], logger: kopf.Logger, config: Config) -> None:
    """Remove the Dataset's stored files with a cleanup Job, then let the Dataset go.

    Raises ``kopf.TemporaryError`` while the Job runs. A failed cleanup is reported and
    does not keep the Dataset forever: the files stay, and the message says where.
    """
    metadata = body.get("metadata") or {}
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace"))
    if not (body.get("status") or {}).get("location"):
        logger.info("Dataset stored nothing; nothing to remove")
        return
    try:
        plan = plan_dataset(
            name, namespace, body.get("spec") or {}, workspace_pvc=config.workspace_pvc
        )
        placement = _placement(config)
    except SpecError as exc:
        logger.error("cannot remove the stored files of the Dataset: %s", exc)
        return
    jobs = k8s.list_objects("batch/v1", "Job", namespace, {DATASET_LABEL: name})
    for running in dataset_plan.cleanup_blockers(plan, jobs):
        k8s.delete("batch/v1", "Job", namespace, running)
    job = k8s.get("batch/v1", "Job", namespace, plan.cleanup_job_name)
    if job is None:
        k8s.create_or_get(
            cleanup_job(
                plan,
                body,
                image=config.image_dataset,
                placement=placement,
                deadline_seconds=config.dataset_job_deadline_seconds,
            )
        )
        raise kopf.TemporaryError(f"removing {plan.target.uri}", delay=CLEANUP_POLL_SECONDS)
    view = common.job_view(namespace, job, dataset_plan.EXIT_REASONS)
    if view.state == "Running":
        raise kopf.TemporaryError(f"removing {plan.target.uri}", delay=CLEANUP_POLL_SECONDS)
    if not view.succeeded:
        failure = view.result or workloads.job_failure(job)
        logger.error(
            "could not remove %s (%s); the files stay: remove them by hand",
            plan.target.uri,
            failure.get("message"),
        )
        return
    logger.info(
        "removed the stored files at %s: %s",
        plan.target.uri,
        (view.result or {}).get("message", "the cleanup Job completed"),
    )


# The create, update and resume handlers and the poll timer each run one step.
common.register_step(DATASET, reconcile, poll_seconds=POLL_SECONDS, when=_in_progress)
