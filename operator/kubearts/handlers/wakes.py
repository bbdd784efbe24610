"""A dependency that changes wakes the objects waiting for it, at once.

An object that waits for another (a TrainingJob for its Dataset and Subscription, a
ModelConversion for its TrainingJob, Model or Dataset, a Model version for its TrainingJob or
ModelConversion) says so in its Ready condition and ends its handler
(:func:`kubearts.handlers.common.wait`); its kind's timer looks again a few seconds later.
To react sooner, one kopf index per kind holds the waiting objects by what they wait for,
and each event of a dependency whose readiness changed annotates them (``WAKE_ANNOTATION``,
outside kopf's own ``kubearts.io/`` prefix), which runs their update handler.

InferenceServices are woken by their Model in :mod:`kubearts.handlers.inferenceservices`,
which also rolls out a served version's changes.

A worker Job that starts, finishes or fails wakes its owner the same way
(``JOB_WAKE_ANNOTATION``), so a run's end reaches the owner's status at once rather than
at its kind's next timer tick.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import kopf

from kubearts import k8s
from kubearts.constants import (
    COND_READY,
    DATASET,
    GROUP,
    INFERENCE_SERVICE,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    MODEL,
    MODEL_CONVERSION,
    SUBSCRIPTION,
    TRAINING_JOB,
    VERSION,
    KindNames,
)
from kubearts.handlers import common

WAKE_ANNOTATION: Final = f"wake.{GROUP}/dependencies"
JOB_WAKE_ANNOTATION: Final = f"wake.{GROUP}/job"
#: Owners a Job wakes. A Dataset's steps follow their Jobs with short retries of their own.
_JOB_OWNERS: Final = {
    kind.kind: kind for kind in (TRAINING_JOB, MODEL_CONVERSION, MODEL, INFERENCE_SERVICE)
}

#: (dependency plural, name) pairs an object's spec refers to.
References = Callable[[Mapping[str, Any]], Iterator[tuple[str, str]]]


def training_job_references(spec: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    yield SUBSCRIPTION.plural, str((spec.get("algorithm") or {}).get("subscription") or "")
    for item in spec.get("inputs") or []:
        yield DATASET.plural, str(item.get("dataset") or "")


def conversion_references(spec: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    source = spec.get("source") or {}
    yield TRAINING_JOB.plural, str(source.get("trainingJob") or "")
    yield MODEL.plural, str((source.get("model") or {}).get("name") or "")
    yield DATASET.plural, str((spec.get("verify") or {}).get("dataset") or "")


def model_references(spec: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for entry in spec.get("versions") or []:
        source = entry.get("source") or {}
        yield TRAINING_JOB.plural, str(source.get("trainingJob") or "")
        yield MODEL_CONVERSION.plural, str(source.get("conversion") or "")


DEPENDENTS: Final[Mapping[KindNames, References]] = {
    TRAINING_JOB: training_job_references,
    MODEL_CONVERSION: conversion_references,
    MODEL: model_references,
}
DEPENDENCIES: Final = (DATASET, SUBSCRIPTION, TRAINING_JOB, MODEL_CONVERSION, MODEL)


def waiting_index(
    references: References,
) -> Callable[..., dict[tuple[str, str, str], str] | None]:
    """A kopf index function: a waiting object under every (namespace, plural, name) it
    refers to; nothing for an object that does not wait."""

    def index(
        namespace: str, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any
    ) -> dict[tuple[str, str, str], str] | None:
        if not common.waiting(status):
            return None
        return {(namespace, plural, ref): name for plural, ref in references(spec) if ref}

    return index


def readiness(body: Mapping[str, Any]) -> str:
    """What about a dependency can end a wait: its Ready condition, its phase and which of
    its versions are ready or published. Its progress and timestamps are left out."""
    status = body.get("status") or {}
    ready: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == COND_READY), {}
    )
    versions = sorted(
        str(v.get("version") or v.get("name"))
        for v in status.get("versions") or []
        if v.get("ready") or v.get("published")
    )
    summary = [ready.get("status"), ready.get("reason"), status.get("phase"), versions]
    return hashlib.sha256(json.dumps(summary).encode()).hexdigest()[:16]


def _register() -> None:
    for dependent, references in DEPENDENTS.items():
        kopf.index(GROUP, VERSION, dependent.plural, id=f"waiting_{dependent.plural}")(
            waiting_index(references)
        )
    for dependency in DEPENDENCIES:
        kopf.on.event(GROUP, VERSION, dependency.plural, id=f"wake_for_{dependency.plural}")(
            _waker(dependency)
        )


def _waker(dependency: KindNames) -> Callable[..., None]:
    def wake(event: Mapping[str, Any], body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
        """Annotate the objects waiting for this one when its readiness changed."""
        if event.get("type") not in ("ADDED", "MODIFIED"):
            return
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        mark = f"{dependency.plural}/{name}={readiness(body)}"
        for dependent in DEPENDENTS:
            index: kopf.Index[tuple[str, str, str], str] = kwargs[f"waiting_{dependent.plural}"]
            for waiter in set(index.get((namespace, dependency.plural, name), ())):
                change = {"metadata": {"annotations": {WAKE_ANNOTATION: mark}}}
                k8s.patch_custom_object(dependent.plural, namespace, waiter, change)
                logger.debug("woke %s %s/%s", dependent.kind, namespace, waiter)

    return wake


def job_state(job: Mapping[str, Any]) -> str:
    """What about a worker Job its owner follows: how many pods are active, succeeded or
    failed, and its finishing conditions."""
    status = job.get("status") or {}
    ended = sorted(
        str(c.get("type")) for c in status.get("conditions") or [] if c.get("status") == "True"
    )
    counts = (status.get(key) or 0 for key in ("active", "succeeded", "failed"))
    return "/".join([*map(str, counts), *ended])


@kopf.on.event("batch", "v1", "jobs", labels={MANAGED_BY_LABEL: MANAGED_BY_VALUE})
def wake_for_jobs(event: Mapping[str, Any], body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Annotate the KubeArts object that owns a worker Job when the Job's state changed."""
    if event.get("type") not in ("ADDED", "MODIFIED"):
        return
    metadata = body.get("metadata") or {}
    for owner in metadata.get("ownerReferences") or []:
        kind = _JOB_OWNERS.get(str(owner.get("kind")))
        if kind is None or not str(owner.get("apiVersion", "")).startswith(f"{GROUP}/"):
            continue
        mark = f"{metadata.get('name')}={job_state(body)}"
        change = {"metadata": {"annotations": {JOB_WAKE_ANNOTATION: mark}}}
        k8s.patch_custom_object(kind.plural, str(metadata.get("namespace")), owner["name"], change)
        logger.debug("woke %s %s: Job %s", kind.kind, owner["name"], mark)


_register()
