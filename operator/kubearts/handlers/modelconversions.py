"""ModelConversion handlers. A ModelConversion turns a model into ONNX or Ascend OM.

Reconciliation of this kind is not implemented yet: every event reports it honestly on
the object (Ready=False, reason NotImplemented) with the observed generation, so users
and tests see that the operator saw the object and did nothing with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from kubearts import metrics
from kubearts.constants import GROUP, MODEL_CONVERSION, VERSION
from kubearts.handlers import common


@kopf.on.create(GROUP, VERSION, MODEL_CONVERSION.plural)
@metrics.instrumented(MODEL_CONVERSION.kind)
def modelconversions_create(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any
) -> None:
    """A new ModelConversion: reconcile it."""
    reconcile(body, patch, logger)


@kopf.on.update(GROUP, VERSION, MODEL_CONVERSION.plural)
@metrics.instrumented(MODEL_CONVERSION.kind)
def modelconversions_update(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any
) -> None:
    """The spec of a ModelConversion changed: reconcile it again."""
    reconcile(body, patch, logger)


@kopf.on.resume(GROUP, VERSION, MODEL_CONVERSION.plural)
@metrics.instrumented(MODEL_CONVERSION.kind)
def modelconversions_resume(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any
) -> None:
    """The operator (re)started and found an existing ModelConversion: reconcile it."""
    reconcile(body, patch, logger)


def reconcile(body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger) -> None:
    """Bring the cluster in line with the ModelConversion's spec (not implemented yet)."""
    common.not_implemented(MODEL_CONVERSION, body, patch, logger)
