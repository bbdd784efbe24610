"""Subscription handlers: resolve an algorithm of a gallery and pin it in status.

A Subscription names ``spec.gallery``, ``spec.algorithm`` and ``spec.version`` (exact or
``latest``). Each handler is one level-based step — read, decide, write:

* read the gallery from memory (``kubearts.handlers.galleries``: an index of the gallery
  ConfigMaps and a cache of remote indexes; no API call);
* decide with the pure :func:`kubearts.subscription_plan.subscription_sync`, which answers
  status fields and condition updates;
* write them once with :func:`kubearts.handlers.common.write_status`, which also sets
  ``observedGeneration`` and ``phase`` and puts only what changed into kopf's patch (so an
  evaluation that finds nothing new writes nothing, and ``lastTransitionTime`` moves only on
  flips).

When they run: ``subscriptions_create`` and ``subscriptions_update`` when the Subscription
changes, ``subscriptions_resume`` when the operator (re)starts. A gallery change (an edited
ConfigMap, a remote index whose content changed) reaches exactly the Subscriptions of that
gallery: ``kubearts.handlers.galleries`` sets their ``gallery.kubearts.io/revision``
annotation, which kopf delivers as an update. There is no timer and no retry loop: a
Subscription that cannot be resolved (unknown algorithm, missing gallery, unreachable remote
index) says so in its conditions and is evaluated again when its gallery changes. Without a
timer or deletion handler, kopf needs no finalizer on Subscriptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from kubearts import metrics, subscription_plan
from kubearts.conditions import get_condition
from kubearts.constants import COND_READY, GROUP, SUBSCRIPTION, SUBSCRIPTIONS, TRUE, VERSION
from kubearts.handlers import common, galleries

__all__ = [
    "subscriptions_create",
    "subscriptions_resume",
    "subscriptions_update",
    "sync",
]


def _report(
    logger: kopf.Logger, previous: Mapping[str, Any], verdict: subscription_plan.Sync
) -> None:
    """Log what changed for people (INFO and WARNING become Kubernetes Events)."""
    old = get_condition(previous.get("conditions"), COND_READY)
    new = verdict.ready
    if old is None or (old["status"], old["message"]) != (new.status, new.message):
        if new.status == TRUE:
            logger.info("Ready (%s): %s", new.reason, new.message)
        else:
            logger.warning("Not ready (%s): %s", new.reason, new.message)
    available = verdict.fields.get("availableVersions") or []
    pinned = verdict.fields.get("resolvedVersion")
    if available and pinned and available != (previous.get("availableVersions") or []):
        logger.info(
            "Newer version(s) %s of %s available; pinned to %s",
            ", ".join(available),
            verdict.fields.get("algorithm"),
            pinned,
        )


def sync(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    configmaps: galleries.ConfigMapIndex,
) -> subscription_plan.Sync:
    """Evaluate the Subscription ``body`` against its gallery and put the changes into
    kopf's ``patch``; the verdict."""
    spec = body.get("spec") or {}
    _, found = galleries.read_gallery(
        subscription_plan.subscription_gallery(spec), configmaps, memo
    )
    current = body.get("status") or {}
    verdict = subscription_plan.subscription_sync(found, spec, current)
    common.write_status(patch, body, SUBSCRIPTION, verdict.updates, fields=verdict.fields)
    _report(logger, current, verdict)
    return verdict


@kopf.on.create(GROUP, VERSION, SUBSCRIPTIONS)
@metrics.instrumented(SUBSCRIPTION.kind)
def subscriptions_create(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """A new Subscription: resolve ``spec.version`` and pin it."""
    sync(body, patch, memo, logger, galleries.configmap_index(kwargs))


@kopf.on.update(GROUP, VERSION, SUBSCRIPTIONS)
@metrics.instrumented(SUBSCRIPTION.kind)
def subscriptions_update(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """The spec changed (a different gallery, algorithm or version is resolved and pinned),
    or the gallery did (its revision annotation moved): compare with the gallery again."""
    sync(body, patch, memo, logger, galleries.configmap_index(kwargs))


@kopf.on.resume(GROUP, VERSION, SUBSCRIPTIONS)
@metrics.instrumented(SUBSCRIPTION.kind)
def subscriptions_resume(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """The operator (re)started: compare the pin with the gallery as it is now."""
    sync(body, patch, memo, logger, galleries.configmap_index(kwargs))
