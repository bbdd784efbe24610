"""Subscription handlers: an algorithm from a gallery, pinned to a version.

Reconciliation of this kind is not implemented yet: every event reports it honestly on
the object (Ready=False, reason NotImplemented) with the observed generation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from kubearts import metrics
from kubearts.constants import GROUP, SUBSCRIPTION, VERSION
from kubearts.handlers import common


@kopf.on.create(GROUP, VERSION, SUBSCRIPTION.plural)
@metrics.instrumented(SUBSCRIPTION.kind)
def subscriptions_create(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """A new Subscription: reconcile it."""
    reconcile(body, patch, logger)


@kopf.on.update(GROUP, VERSION, SUBSCRIPTION.plural)
@metrics.instrumented(SUBSCRIPTION.kind)
def subscriptions_update(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """The spec of a Subscription changed: reconcile it again."""
    reconcile(body, patch, logger)


@kopf.on.resume(GROUP, VERSION, SUBSCRIPTION.plural)
@metrics.instrumented(SUBSCRIPTION.kind)
def subscriptions_resume(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """The operator (re)started and found an existing Subscription: reconcile it."""
    reconcile(body, patch, logger)


def reconcile(body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger) -> None:
    """Bring the cluster in line with the Subscription's spec (not implemented yet)."""
    common.not_implemented(SUBSCRIPTION, body, patch, logger)
