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

from kubearts import datasets, k8s, metrics
from kubearts.builders.datasets import (
    DatasetPlan,
    ResolvedSource,
    SpecError,
    cleanup_job,
    gallery_reference,
    ingest_job,
    plan_dataset,
    publish_job,
    workspace_claim,
)
from kubearts.builders.placement import Placement, build_placement
from kubearts.conditions import get_condition
from kubearts.config import Config
from kubearts.constants import (
    COND_READY,
    DATASET,
    DATASET_LABEL,
    FALSE,
    GALLERY_LABEL,
    GROUP,
    PHASE_FAILED,
    POOL_CPU,
    VERSION,
)
from kubearts.datasets import Outcome, WaitingError
from kubearts.handlers import common

__all__ = [
    "cleanup",
    "datasets_create",
    "datasets_delete",
    "datasets_poll",
    "datasets_resume",
    "datasets_update",
    "reconcile",
]

#: Seconds between two looks at a running Job (progress and completion).
POLL_SECONDS: Final = 3.0
#: Delay before a handler waiting for a claim, a Secret or a gallery entry runs again.
WAIT_SECONDS: Final = 10.0
#: Delay between two looks at a running cleanup Job.
CLEANUP_POLL_SECONDS: Final = 2.0
#: Log lines read to find the latest progress or result line.
LOG_TAIL_LINES: Final = 20


# --- registrations ---------------------------------------------------------------------------


def _in_progress(status: kopf.Status, **_: Any) -> bool:
    """Timer filter: a Job works for the Dataset."""
    return status.get("phase") in datasets.ACTIVE_PHASES


def _deletes_data(spec: kopf.Spec, **_: Any) -> bool:
    """Delete-handler filter: only Datasets whose files go with them need a finalizer."""
    return (spec.get("storage") or {}).get("deletePolicy") == "Delete"


@kopf.on.create(GROUP, VERSION, DATASET.plural)
@metrics.instrumented(DATASET.kind)
def datasets_create(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, memo: kopf.Memo, **_: Any
) -> None:
    """A new Dataset: plan it and start the ingest Job."""
    reconcile(body, patch, logger, common.operator_config(memo))


@kopf.on.update(GROUP, VERSION, DATASET.plural)
@metrics.instrumented(DATASET.kind)
def datasets_update(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, memo: kopf.Memo, **_: Any
) -> None:
    """The spec changed: publish new versions, refuse edits of published ones."""
    reconcile(body, patch, logger, common.operator_config(memo))


@kopf.on.resume(GROUP, VERSION, DATASET.plural)
@metrics.instrumented(DATASET.kind)
def datasets_resume(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, memo: kopf.Memo, **_: Any
) -> None:
    """The operator (re)started: pick up where the Dataset's Jobs are."""
    reconcile(body, patch, logger, common.operator_config(memo))


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


# --- the step --------------------------------------------------------------------------------


def reconcile(
    body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger, config: Config
) -> None:
    """Move the Dataset on by one stage and write what was observed into ``patch.status``.

    Raises ``kopf.PermanentError`` for an invalid spec and ``kopf.TemporaryError`` while
    waiting for another object before any Job could start.
    """
    status: Mapping[str, Any] = body.get("status") or {}
    previous_ready = get_condition(status.get("conditions"), COND_READY)
    try:
        plan, placement = _plan(body, patch, config)
        outcome = _step(plan, body, status, placement, config)
    except WaitingError as wait:
        _write(patch, body, datasets.waiting_outcome(status, wait))
        raise kopf.TemporaryError(wait.message, delay=WAIT_SECONDS) from None
    _write(patch, body, outcome)
    _log_transition(logger, previous_ready, outcome)


def _plan(
    body: Mapping[str, Any], patch: kopf.Patch, config: Config
) -> tuple[DatasetPlan, Placement]:
    """The checked spec and where its pods go; an invalid one fails the Dataset for good
    (``kopf.PermanentError``, with the status written)."""
    metadata = body.get("metadata") or {}
    name, namespace = str(metadata.get("name")), str(metadata.get("namespace"))
    spec: Mapping[str, Any] = body.get("spec") or {}
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
        update = datasets.ready(FALSE, "InvalidConfiguration", message)
        _write(patch, body, Outcome(PHASE_FAILED, [update]))
        raise kopf.PermanentError(message) from None
    return plan, placement


def _write(patch: kopf.Patch, body: Mapping[str, Any], outcome: Outcome) -> None:
    common.write_status(
        patch, body, DATASET, outcome.updates, fields={**outcome.fields, "phase": outcome.phase}
    )


def _log_transition(
    logger: kopf.Logger, previous: Mapping[str, Any] | None, outcome: Outcome
) -> None:
    """Log (and so post as an Event) only when Ready changes, not on every poll."""
    ready = datasets.ready_change(previous, outcome)
    if ready is None:
        return
    if ready.status == FALSE and outcome.phase == PHASE_FAILED:
        logger.warning("Dataset failed (%s): %s", ready.reason, ready.message)
    else:
        logger.info("Dataset %s: %s", ready.reason, ready.message)


def _resolve_gallery(spec: Mapping[str, Any], config: Config) -> ResolvedSource | None:
    """The gallery entry a ``gallery://`` source names (None for other sources)."""
    reference = gallery_reference(str((spec.get("source") or {}).get("uri") or ""))
    if reference is None:
        return None
    gallery_name, entry_name = reference
    configmaps = k8s.list_objects(
        "v1", "ConfigMap", config.namespace, {GALLERY_LABEL: gallery_name}
    )
    return datasets.gallery_source(configmaps, gallery_name, entry_name, config.namespace)


def _check_dependencies(plan: DatasetPlan, config: Config) -> None:
    """Make sure the claims and Secrets the worker needs exist (creating the workspace).

    Raises :class:`WaitingError` naming the first one missing.
    """
    if plan.uses_workspace:
        # Created from the default StorageClass and never deleted: no owner reference.
        k8s.create_or_get(
            workspace_claim(plan.namespace, config.workspace_pvc, config.workspace_size)
        )
    for claim in datasets.claims_to_check(plan, config.workspace_pvc):
        if k8s.get("v1", "PersistentVolumeClaim", plan.namespace, claim) is None:
            raise datasets.missing_claim(plan, claim)
    for need in datasets.secret_needs(plan):
        secret = k8s.get("v1", "Secret", plan.namespace, need.name)
        problem = datasets.secret_problem(plan, need, secret)
        if problem is not None:
            raise problem


def _step(
    plan: DatasetPlan,
    body: Mapping[str, Any],
    status: Mapping[str, Any],
    placement: Placement,
    config: Config,
) -> Outcome:
    """Follow the ingest Job (starting it when there is none for the spec), then the
    versions once the data is in."""
    jobs = k8s.list_objects("batch/v1", "Job", plan.namespace, {DATASET_LABEL: plan.name})
    ingest = datasets.ingest_job_for(plan, jobs)
    if ingest is None:
        refusal = datasets.data_change_refusal(plan, jobs, status)
        if refusal is not None:
            return refusal
        _check_dependencies(plan, config)
        for stale in datasets.stale_ingest_jobs(jobs):
            k8s.delete("batch/v1", "Job", plan.namespace, stale)
        k8s.create_or_get(ingest_job(plan, body, image=config.image_dataset, placement=placement))
        return datasets.ingest_started(plan)

    if datasets.job_state(ingest) == "Running":
        pod = _job_pod(plan.namespace, ingest)
        log = None if pod is None else _pod_log(plan.namespace, pod)
        return datasets.ingest_running(plan, status, pod, log)

    verdict = datasets.judge_ingest(plan, ingest, _job_result(plan.namespace, ingest), status)
    if isinstance(verdict, datasets.Rerun):
        k8s.delete("batch/v1", "Job", plan.namespace, datasets.object_name(ingest))
        return verdict.outcome
    if isinstance(verdict, Outcome):
        return verdict
    return _publish_versions(plan, body, status, jobs, verdict, placement, config)


def _publish_versions(
    plan: DatasetPlan,
    body: Mapping[str, Any],
    status: Mapping[str, Any],
    jobs: list[dict[str, Any]],
    ingested: datasets.Ingested,
    placement: Placement,
    config: Config,
) -> Outcome:
    """Start a publish Job for each version that has none, and collect the stopped ones."""
    pending: list[str] = []
    finished: list[datasets.FinishedPublish] = []
    for version, job in datasets.unpublished_versions(plan, jobs, status):
        if job is None:
            _check_dependencies(plan, config)
            k8s.create_or_get(
                publish_job(plan, version, body, image=config.image_dataset, placement=placement)
            )
            pending.append(version.name)
        elif datasets.job_state(job) == "Running":
            pending.append(version.name)
        else:
            result = _job_result(plan.namespace, job)
            finished.append(datasets.FinishedPublish(version, job, result))
    return datasets.versions_outcome(plan, status, ingested, pending, finished)


# --- reading Jobs' pods ----------------------------------------------------------------------


def _job_pod(namespace: str, job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    pods = k8s.list_pods(namespace, {"job-name": datasets.object_name(job)})
    return datasets.latest_pod(pods)


def _pod_log(namespace: str, pod: Mapping[str, Any]) -> str:
    log = k8s.read_pod_log(namespace, datasets.object_name(pod), tail_lines=LOG_TAIL_LINES)
    return log or ""


def _job_result(namespace: str, job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The worker's result, None while nothing can be read (no pod, not stopped).

    The log is read only when the termination message does not hold the whole result.
    """
    pod = _job_pod(namespace, job)
    terminated = None if pod is None else datasets.terminated_state(pod)
    if pod is None or terminated is None:
        return None
    log = _pod_log(namespace, pod) if datasets.needs_full_result(terminated) else None
    return datasets.worker_result(terminated, log)


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
        placement = build_placement(POOL_CPU, 0, config.pools, field="KUBEARTS_POOLS")
    except ValueError as exc:
        logger.error("cannot remove the stored files of the Dataset: %s", exc)
        return
    jobs = k8s.list_objects("batch/v1", "Job", namespace, {DATASET_LABEL: name})
    for running in datasets.cleanup_blockers(plan, jobs):
        k8s.delete("batch/v1", "Job", namespace, running)
    job = k8s.get("batch/v1", "Job", namespace, plan.cleanup_job_name)
    if job is None:
        k8s.create_or_get(cleanup_job(plan, body, image=config.image_dataset, placement=placement))
        raise kopf.TemporaryError(f"removing {plan.target.uri}", delay=CLEANUP_POLL_SECONDS)
    state = datasets.job_state(job)
    if state == "Running":
        raise kopf.TemporaryError(f"removing {plan.target.uri}", delay=CLEANUP_POLL_SECONDS)
    result = _job_result(namespace, job)
    if state == "Failed":
        failure = result or datasets.job_failure(job)
        logger.error(
            "could not remove %s (%s); the files stay: remove them by hand",
            plan.target.uri,
            failure.get("message"),
        )
        return
    logger.info(
        "removed the stored files at %s: %s",
        plan.target.uri,
        (result or {}).get("message", "the cleanup Job completed"),
    )
