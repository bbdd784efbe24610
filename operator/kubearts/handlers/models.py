"""Model handlers: register a Model's versions into the registry, and keep them as they are.

One level-based step, :func:`reconcile`: read the sources the versions name (and the
Datasets and Subscriptions behind them, for lineage), the registration Jobs and the
InferenceServices that serve this Model; ask :func:`kubearts.model_plan.decide`; start
the registrations it asks for (one Job per version, :mod:`kubearts.builders.model_jobs`);
write the status once. The ``models_poll`` timer runs the step while a version registers
or waits for its source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import kopf

from kubearts import k8s, model_plan
from kubearts.builders.model_jobs import (
    registration_job,
    registration_job_name,
    registry_location,
    removal_job,
    removal_job_name,
)
from kubearts.conditions import rfc3339
from kubearts.config import WORKER_MODEL, Config
from kubearts.constants import (
    DATASET,
    INFERENCE_SERVICE,
    MODEL,
    MODEL_CONVERSION,
    MODEL_LABEL,
    REASON_WAITING_FOR_DEPENDENCY,
    SUBSCRIPTION,
    TRAINING_JOB,
)
from kubearts.handlers import common
from kubearts.model_plan import REASON_IN_USE, REASON_REGISTERING, REASON_REMOVING, Reads
from kubearts.workloads import object_name

#: Seconds between two looks at a Model whose versions register or wait.
POLL_SECONDS: Final = 5.0
#: ``activeDeadlineSeconds`` of a registration Job (a copy and a digest).
REGISTRATION_DEADLINE_SECONDS: Final = 3600


def _pending(status: kopf.Status, **_: Any) -> bool:
    """Timer filter: a version registers, waits for its source, is being removed, or was
    removed from the spec while a service still uses it."""
    waiting = (REASON_REGISTERING, REASON_WAITING_FOR_DEPENDENCY, REASON_REMOVING, REASON_IN_USE)
    return any(v.get("reason") in waiting for v in status.get("versions") or [])


def _get_all(plural: str, namespace: str, names: Iterable[str]) -> dict[str, Any]:
    return {name: k8s.get_custom_object(plural, namespace, name) for name in set(names) if name}


def _read(body: Mapping[str, Any]) -> Reads:
    """Everything :func:`model_plan.decide` looks at, read once."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    versions = list((body.get("spec") or {}).get("versions") or [])
    sources = [v.get("source") or {} for v in versions]
    conversions = _get_all(
        MODEL_CONVERSION.plural, namespace, (s.get("conversion", "") for s in sources)
    )
    upstream = [((c or {}).get("status") or {}).get("lineage") or {} for c in conversions.values()]
    training_jobs = _get_all(
        TRAINING_JOB.plural,
        namespace,
        [s.get("trainingJob", "") for s in sources] + [u.get("trainingJob", "") for u in upstream],
    )
    jobs_status = [(j or {}).get("status") or {} for j in training_jobs.values()]
    jobs_spec = [(j or {}).get("spec") or {} for j in training_jobs.values()]
    datasets = _get_all(
        DATASET.plural,
        namespace,
        (str(i.get("dataset", "")) for s in jobs_status for i in s.get("inputs") or []),
    )
    subscriptions = _get_all(
        SUBSCRIPTION.plural,
        namespace,
        (str((s.get("algorithm") or {}).get("subscription", "")) for s in jobs_spec),
    )
    existing = {
        object_name(job): job
        for job in k8s.list_objects("batch/v1", "Job", namespace, {MODEL_LABEL: name})
    }
    known = {str(v["version"]) for v in versions} | {
        str(v.get("version")) for v in (body.get("status") or {}).get("versions") or []
    }
    jobs, removals = {}, {}
    for version in known:
        job = existing.get(registration_job_name(name, version))
        if job is not None:
            jobs[version] = common.job_view(namespace, job, model_plan.EXIT_REASONS)
        job = existing.get(removal_job_name(name, version))
        if job is not None:
            removals[version] = common.job_view(namespace, job, model_plan.EXIT_REASONS)
    services: dict[str, list[str]] = {}
    for service in k8s.list_custom_objects(INFERENCE_SERVICE.plural, namespace):
        served = (service.get("spec") or {}).get("model") or {}
        if served.get("name") == name:
            services.setdefault(str(served.get("version")), []).append(object_name(service))
    return Reads(training_jobs, conversions, datasets, subscriptions, jobs, services, removals)


def reconcile(
    body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger, config: Config
) -> None:
    """Read, decide, start registrations, write the status once."""
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    registry = registry_location(config.workspace_pvc, name)
    decision = model_plan.decide(
        name, body.get("spec") or {}, body.get("status") or {}, _read(body), rfc3339(), registry
    )
    placement = common.worker_placement(config, WORKER_MODEL)
    if decision.register:
        common.ensure_workspace(namespace, config)
    for unused in decision.unused:
        version = str(unused["version"])
        k8s.create_or_get(
            removal_job(
                version,
                body,
                image=config.image_converter,
                registry=registry,
                placement=placement,
                deadline_seconds=REGISTRATION_DEADLINE_SECONDS,
            )
        )
        logger.info("deleting the files of version %s of %s: no service uses it", version, name)
    for step in decision.register:
        job = registration_job(
            step,
            body,
            image=config.image_converter,
            registry=registry,
            placement=placement,
            deadline_seconds=REGISTRATION_DEADLINE_SECONDS,
        )
        k8s.create_or_get(job)
        for entry in decision.versions:
            if entry["version"] == step.version:
                entry["jobName"] = object_name(job)
        logger.info("registering version %s of %s from %s", step.version, name, step.source.uri)
    fields = {"versions": decision.versions, **decision.fields}
    common.write_status(patch, body, MODEL, decision.updates, fields=fields)


# The create, update and resume handlers and the poll timer each run one step.
common.register_step(MODEL, reconcile, poll_seconds=POLL_SECONDS, when=_pending)
