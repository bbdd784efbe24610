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
    MODEL,
    MODEL_CONVERSION,
    SUBSCRIPTION,
    TRAINING_JOB,
    VERSION,
    KindNames,
)
from kubearts.handlers import common

WAKE_ANNOTATION: Final = f"wake.{GROUP}/dependencies"

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


_register()
