"""InferenceService handlers. An InferenceService serves a Model online or in batches.

Reconciliation of this kind is not implemented yet: every event reports it honestly on
the object (Ready=False, reason NotImplemented) with the observed generation, so users
and tests see that the operator saw the object and did nothing with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from kubearts import metrics
from kubearts.constants import GROUP, INFERENCE_SERVICE, VERSION
from kubearts.handlers import common


@kopf.on.create(GROUP, VERSION, INFERENCE_SERVICE.plural)
@metrics.instrumented(INFERENCE_SERVICE.kind)
def inferenceservices_create(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any
) -> None:
    """A new InferenceService: reconcile it."""
    reconcile(body, patch, logger)


@kopf.on.update(GROUP, VERSION, INFERENCE_SERVICE.plural)
@metrics.instrumented(INFERENCE_SERVICE.kind)
def inferenceservices_update(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any
) -> None:
    """The spec of a InferenceService changed: reconcile it again."""
    reconcile(body, patch, logger)


@kopf.on.resume(GROUP, VERSION, INFERENCE_SERVICE.plural)
@metrics.instrumented(INFERENCE_SERVICE.kind)
def inferenceservices_resume(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any
) -> None:
    """The operator (re)started and found an existing InferenceService: reconcile it."""
    reconcile(body, patch, logger)


def reconcile(body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger) -> None:
    """Bring the cluster in line with the InferenceService's spec (not implemented yet)."""
    common.not_implemented(INFERENCE_SERVICE, body, patch, logger)
