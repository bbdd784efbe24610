"""TrainingJob handlers. A TrainingJob runs a subscribed algorithm on data set versions.

Reconciliation of this kind is not implemented yet: every event reports it honestly on
the object (Ready=False, reason NotImplemented) with the observed generation, so users
and tests see that the operator saw the object and did nothing with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from kubearts import metrics
from kubearts.constants import GROUP, TRAINING_JOB, VERSION
from kubearts.handlers import common


@kopf.on.create(GROUP, VERSION, TRAINING_JOB.plural)
@metrics.instrumented(TRAINING_JOB.kind)
def trainingjobs_create(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """A new TrainingJob: reconcile it."""
    reconcile(body, patch, logger)


@kopf.on.update(GROUP, VERSION, TRAINING_JOB.plural)
@metrics.instrumented(TRAINING_JOB.kind)
def trainingjobs_update(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """The spec of a TrainingJob changed: reconcile it again."""
    reconcile(body, patch, logger)


@kopf.on.resume(GROUP, VERSION, TRAINING_JOB.plural)
@metrics.instrumented(TRAINING_JOB.kind)
def trainingjobs_resume(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """The operator (re)started and found an existing TrainingJob: reconcile it."""
    reconcile(body, patch, logger)


def reconcile(body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger) -> None:
    """Bring the cluster in line with the TrainingJob's spec (not implemented yet)."""
    common.not_implemented(TRAINING_JOB, body, patch, logger)
