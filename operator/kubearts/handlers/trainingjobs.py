"""TrainingJob handlers. A TrainingJob runs a subscribed algorithm on data set versions.

What is reconciled today is everything before the run: the Subscription must be Ready,
the pool one the algorithm trains on, the hyperparameters valid against the pinned
schema, and every input a published, *split* version of a Ready Dataset. A spec that
cannot work ends in Failed=True with the field and the fix; missing dependencies are
waited for. Once the inputs resolve, the status shows what the run would use, and Ready
stays False with reason NotImplemented: launching the training run is not implemented yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from kubearts import k8s, metrics
from kubearts.conditions import ConditionUpdate, SpecError
from kubearts.constants import (
    COND_FAILED,
    COND_READY,
    DATASET,
    FALSE,
    GROUP,
    REASON_NOT_IMPLEMENTED,
    SUBSCRIPTION,
    TRAINING_JOB,
    TRUE,
    VERSION,
)
from kubearts.handlers import common
from kubearts.training_plan import TrainingPlan, Wait, plan_training


@kopf.on.create(GROUP, VERSION, TRAINING_JOB.plural)
@metrics.instrumented(TRAINING_JOB.kind)
def trainingjobs_create(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """A new TrainingJob: check its inputs."""
    reconcile(body, patch, logger)


@kopf.on.update(GROUP, VERSION, TRAINING_JOB.plural)
@metrics.instrumented(TRAINING_JOB.kind)
def trainingjobs_update(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """The spec of a TrainingJob changed: check its inputs again."""
    reconcile(body, patch, logger)


@kopf.on.resume(GROUP, VERSION, TRAINING_JOB.plural)
@metrics.instrumented(TRAINING_JOB.kind)
def trainingjobs_resume(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """The operator (re)started and found an existing TrainingJob: check its inputs."""
    reconcile(body, patch, logger)


def reconcile(body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger) -> None:
    namespace = body["metadata"]["namespace"]
    spec = body.get("spec") or {}
    subscription = k8s.get_custom_object(
        SUBSCRIPTION.plural, namespace, (spec.get("algorithm") or {}).get("subscription", "")
    )
    datasets = {
        name: k8s.get_custom_object(DATASET.plural, namespace, name)
        for name in {i["dataset"] for i in spec.get("inputs") or []}
    }
    result = plan_training(spec, subscription, datasets)
    if isinstance(result, Wait):
        raise common.waiting_for(TRAINING_JOB, body, patch, result.message)
    if isinstance(result, SpecError):
        failed = ConditionUpdate(COND_FAILED, TRUE, result.reason, result.message)
        raise common.invalid_spec(TRAINING_JOB, body, patch, result, updates=[failed])
    _report_plan(body, patch, logger, result)


def _report_plan(
    body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger, plan: TrainingPlan
) -> None:
    message = (
        f"inputs are valid: {plan.image} ({plan.algorithm_version}) on "
        + ", ".join(f"{i['dataset']}:{i['version']}" for i in plan.inputs)
        + "; launching the training run is not implemented yet"
    )
    common.write_status(
        patch,
        body,
        TRAINING_JOB,
        [
            ConditionUpdate(COND_FAILED, FALSE, "InputsValid", "the inputs are valid"),
            ConditionUpdate(COND_READY, FALSE, REASON_NOT_IMPLEMENTED, message),
        ],
        fields={
            "image": plan.image,
            "algorithmVersion": plan.algorithm_version,
            "hyperparameters": dict(plan.hyperparameters),
            "inputs": [dict(i) for i in plan.inputs],
        },
    )
    logger.info("%s", message)
