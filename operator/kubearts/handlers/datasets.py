"""Dataset handlers. A Dataset is downloaded, verified and split into versions.

Reconciliation of this kind is not implemented yet: every event reports it honestly on
the object (Ready=False, reason NotImplemented) with the observed generation, so users
and tests see that the operator saw the object and did nothing with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from kubearts import metrics
from kubearts.constants import DATASET, GROUP, VERSION
from kubearts.handlers import common


@kopf.on.create(GROUP, VERSION, DATASET.plural)
@metrics.instrumented(DATASET.kind)
def datasets_create(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """A new Dataset: reconcile it."""
    reconcile(body, patch, logger)


@kopf.on.update(GROUP, VERSION, DATASET.plural)
@metrics.instrumented(DATASET.kind)
def datasets_update(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """The spec of a Dataset changed: reconcile it again."""
    reconcile(body, patch, logger)


@kopf.on.resume(GROUP, VERSION, DATASET.plural)
@metrics.instrumented(DATASET.kind)
def datasets_resume(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """The operator (re)started and found an existing Dataset: reconcile it."""
    reconcile(body, patch, logger)


def reconcile(body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger) -> None:
    """Bring the cluster in line with the Dataset's spec (not implemented yet)."""
    common.not_implemented(DATASET, body, patch, logger)
