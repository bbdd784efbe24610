"""Subscription handlers: resolve an algorithm of a gallery, pin it in status, keep watching.

A Subscription names ``spec.gallery``, ``spec.algorithm`` and ``spec.version`` (exact or
``latest``). The rules (what to pin, when a pin moves, which conditions to report) are the
pure :func:`kubearts.gallery.subscription_status`; this module only gathers its inputs —
the Subscription and the gallery ConfigMaps labelled ``kubearts.io/gallery=<spec.gallery>``
in the operator namespace — and writes its output through the common status helpers: the
whole status, of which only the fields that changed go into the patch (so re-syncing an
unchanged Subscription writes nothing, and ``lastTransitionTime`` moves only on flips).

Three paths lead to the same sync, so that gallery edits show up without any edit to the
Subscription (a newer version as ``status.availableVersions`` and ``UpdateAvailable``, a
removed entry as ``Synced=False`` with the pin kept):

* ``subscriptions_create``/``_update``/``_resume``: the Subscription's spec changed, or the
  operator (re)started. A gallery that cannot be read is retried with
  ``kopf.TemporaryError``; an unknown algorithm or version is reported (``Ready=False``)
  and re-checked by the other two paths when the gallery changes.
* ``galleries_changed``: a gallery ConfigMap in the operator namespace was added, edited or
  deleted; every Subscription of that gallery (found through the ``subscriptions_by_gallery``
  index) is re-synced at once.
* ``subscriptions_resync``: a timer every ``KUBEARTS_GALLERY_RESYNC_SECONDS`` per
  Subscription, the safety net for missed events and the only way remote indexes
  (``index.<name>.url`` keys) are re-read. kopf puts our finalizer on every Subscription
  for its timer, so that the timer is stopped before the object goes; deleting a
  Subscription therefore needs the operator running, as for the other kinds.

The paths may race (a timer tick while the update handler runs). Each computes the status
from the object it was given and the same gallery, so the worst case is one stale write
that the next sync corrects: a pin whose ``requestedVersion`` no longer matches the spec is
resolved again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import kopf
import urllib3.exceptions

from kubearts import gallery, k8s, metrics
from kubearts.conditions import get_condition
from kubearts.config import Config, load_config
from kubearts.constants import (
    COND_READY,
    FALSE,
    GALLERY_LABEL,
    GROUP,
    SUBSCRIPTION,
    SUBSCRIPTIONS,
    TRUE,
    VERSION,
)
from kubearts.handlers import common

__all__ = [
    "galleries_changed",
    "read_gallery",
    "status_fields",
    "subscriptions_by_gallery",
    "subscriptions_create",
    "subscriptions_resume",
    "subscriptions_resync",
    "subscriptions_update",
    "subscriptions_watch_galleries_only",
    "sync_status",
]

#: Delay before a handler tries again to read a gallery that could not be read.
GALLERY_RETRY_DELAY_SECONDS: Final = common.WAIT_DELAY_SECONDS
#: At most this many problems of one gallery ConfigMap are logged per change.
MAX_LOGGED_PROBLEMS: Final = 10

#: Errors that mean "the gallery cannot be read right now" rather than a bug.
_READ_ERRORS: Final = (
    k8s.ApiException,
    kopf.TemporaryError,
    kopf.PermanentError,
    urllib3.exceptions.HTTPError,
    OSError,
)


def _resync_interval() -> float:
    """The timer's interval. kopf takes it when the handler is registered (at import), before
    the startup handler loads the configuration; a bad value there stops the operator with
    the variable's name, so here it only falls back to the default."""
    try:
        return load_config().gallery_resync_seconds
    except ValueError:
        return Config().gallery_resync_seconds


RESYNC_INTERVAL_SECONDS: Final = _resync_interval()


# --- pure pieces -----------------------------------------------------------------------------


def status_fields(
    current: Mapping[str, Any] | None, new: gallery.SubscriptionStatus
) -> dict[str, Any]:
    """The status fields to hand to the common status helpers: ``new`` whole, plus ``None``
    for each Subscription status field ``current`` has and ``new`` dropped (a merge patch
    deletes a key whose value is null)."""
    previous = current or {}
    dropped: dict[str, Any] = {
        key: None for key in sorted(gallery.STATUS_FIELDS) if key in previous and key not in new
    }
    return {**dropped, **new}


def sync_status(
    body: Mapping[str, Any], found: gallery.Gallery | None
) -> tuple[gallery.SubscriptionStatus, dict[str, Any]]:
    """The new status of the Subscription ``body`` against the gallery ``found`` (None when
    it could not be read), and the status fields to write (empty when nothing changed)."""
    current = body.get("status") or {}
    generation = common.generation_of(body)
    status = gallery.subscription_status(
        found, body.get("spec") or {}, current, generation=generation
    )
    changes = common.status_changes(current, generation, [], fields=status_fields(current, status))
    return status, changes


def _retry_reason(status: gallery.SubscriptionStatus) -> str | None:
    """The Ready=False message when it is worth retrying by itself soon, else None."""
    ready = get_condition(status.get("conditions"), COND_READY)
    if (
        ready is not None
        and ready["status"] == FALSE
        and ready["reason"] in gallery.RETRYABLE_REASONS
    ):
        return ready["message"]
    return None


# --- talking to the cluster ------------------------------------------------------------------


def read_gallery(namespace: str, name: str, logger: kopf.Logger) -> gallery.Gallery | None:
    """The gallery ``name``: its ConfigMaps in ``namespace`` and the remote indexes they
    declare. None when the ConfigMaps cannot be listed (the status then says
    GalleryUnavailable); a gallery without any ConfigMap is an empty, unavailable Gallery."""
    try:
        configmaps = k8s.list_objects("v1", "ConfigMap", namespace, {GALLERY_LABEL: name})
    except _READ_ERRORS as exc:
        logger.warning("Cannot list the ConfigMaps of gallery %r in %s: %s", name, namespace, exc)
        return None
    return gallery.load_gallery(configmaps, name=name)


def _report(
    logger: kopf.Logger, previous: Mapping[str, Any], status: gallery.SubscriptionStatus
) -> None:
    """Log what changed for people (INFO and WARNING become Kubernetes Events)."""
    old = get_condition(previous.get("conditions"), COND_READY)
    new = get_condition(status.get("conditions"), COND_READY)
    seen = (old["status"], old["message"]) if old is not None else None
    if new is not None and seen != (new["status"], new["message"]):
        if new["status"] == TRUE:
            logger.info("Ready (%s): %s", new["reason"], new["message"])
        else:
            logger.warning("Not ready (%s): %s", new["reason"], new["message"])
    available = status.get("availableVersions") or []
    if (
        available
        and status.get("resolvedVersion")
        and available != (previous.get("availableVersions") or [])
    ):
        logger.info(
            "Newer version(s) %s of %s available; pinned to %s",
            ", ".join(available),
            status.get("algorithm"),
            status.get("resolvedVersion"),
        )


def _sync_in_handler(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, *, retry: bool
) -> None:
    """One sync from inside a kopf handler: the changes go into kopf's ``patch``."""
    config = common.operator_config(memo)
    spec = body.get("spec") or {}
    found = read_gallery(config.namespace, gallery.subscription_gallery(spec), logger)
    current = body.get("status") or {}
    status = gallery.subscription_status(
        found, spec, current, generation=common.generation_of(body)
    )
    common.write_status(patch, body, SUBSCRIPTION, [], fields=status_fields(current, status))
    _report(logger, current, status)
    message = _retry_reason(status)
    if retry and message is not None:
        raise kopf.TemporaryError(message, delay=GALLERY_RETRY_DELAY_SECONDS)


def _resync_one(
    namespace: str, name: str, found: gallery.Gallery | None, logger: kopf.Logger
) -> None:
    """Re-sync one Subscription from outside its own handlers (a gallery event)."""
    body = k8s.get_custom_object(SUBSCRIPTIONS, namespace, name)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return
    status, changes = sync_status(body, found)
    if not changes:
        return
    if k8s.patch_custom_status(SUBSCRIPTIONS, namespace, name, changes) is None:
        return  # deleted meanwhile
    metrics.record_conditions(SUBSCRIPTION.kind, namespace, name, status.get("conditions", []))
    logger.info(
        "Re-synced Subscription %s/%s with gallery %r: %s",
        namespace,
        name,
        found.name if found is not None else "?",
        ", ".join(sorted(changes)),
    )


# --- handlers --------------------------------------------------------------------------------


@kopf.on.startup()
def subscriptions_watch_galleries_only(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Ask the API server for gallery ConfigMaps only: without a label selector the watch of
    ``galleries_changed`` would stream every ConfigMap of the cluster to the operator."""
    settings.watching.label_selectors["v1", "configmaps"] = GALLERY_LABEL


@kopf.index(GROUP, VERSION, SUBSCRIPTIONS)
def subscriptions_by_gallery(
    namespace: str | None, name: str | None, spec: kopf.Spec, **_: Any
) -> dict[str, tuple[str, str]]:
    """Subscriptions by the gallery they name: ``{gallery: [(namespace, name), ...]}``."""
    return {gallery.subscription_gallery(spec): (str(namespace), str(name))}


@kopf.on.create(GROUP, VERSION, SUBSCRIPTIONS)
@metrics.instrumented(SUBSCRIPTION.kind)
def subscriptions_create(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """A new Subscription: resolve ``spec.version`` and pin it."""
    _sync_in_handler(body, patch, memo, logger, retry=True)


@kopf.on.update(GROUP, VERSION, SUBSCRIPTIONS)
@metrics.instrumented(SUBSCRIPTION.kind)
def subscriptions_update(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """The spec changed: a different gallery, algorithm or version is resolved and pinned."""
    _sync_in_handler(body, patch, memo, logger, retry=True)


@kopf.on.resume(GROUP, VERSION, SUBSCRIPTIONS)
@metrics.instrumented(SUBSCRIPTION.kind)
def subscriptions_resume(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """The operator (re)started: compare the pin with the gallery as it is now."""
    _sync_in_handler(body, patch, memo, logger, retry=True)


@kopf.timer(
    GROUP,
    VERSION,
    SUBSCRIPTIONS,
    interval=RESYNC_INTERVAL_SECONDS,
    initial_delay=RESYNC_INTERVAL_SECONDS,
)
@metrics.instrumented(SUBSCRIPTION.kind)
def subscriptions_resync(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Compare with the gallery again; the next tick is the retry, so nothing is raised."""
    _sync_in_handler(body, patch, memo, logger, retry=False)


@kopf.on.event("v1", "configmaps", labels={GALLERY_LABEL: kopf.PRESENT})
@metrics.instrumented(SUBSCRIPTION.kind)
def galleries_changed(
    type: str | None,
    name: str | None,
    namespace: str | None,
    labels: kopf.Labels,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """A gallery ConfigMap was added, edited or deleted: re-sync its Subscriptions now.

    The initial listing at start-up (``type`` None) is skipped: the resume handlers compare
    every Subscription with its gallery then anyway.
    """
    config = common.operator_config(memo)
    if type is None or namespace != config.namespace:
        return
    # kopf passes each index as a keyword named after its function.
    by_gallery: kopf.Index[str, tuple[str, str]] = kwargs["subscriptions_by_gallery"]
    gallery_name = str(labels.get(GALLERY_LABEL, ""))
    found = read_gallery(config.namespace, gallery_name, logger)
    if found is not None and type != "DELETED":
        source = f"ConfigMap {name}"
        problems = [p for p in found.problems if p.source == source]
        for problem in problems[:MAX_LOGGED_PROBLEMS]:
            logger.warning("Gallery %r: %s", gallery_name, problem)
        if len(problems) > MAX_LOGGED_PROBLEMS:
            logger.warning(
                "Gallery %r: %d more problems in %s",
                gallery_name,
                len(problems) - MAX_LOGGED_PROBLEMS,
                source,
            )
    for sub_namespace, sub_name in list(by_gallery.get(gallery_name, [])):
        try:
            _resync_one(sub_namespace, sub_name, found, logger)
        except (k8s.ApiException, kopf.TemporaryError, kopf.PermanentError) as exc:
            # Event handlers are not retried; the Subscription's timer catches up.
            logger.warning(
                "Cannot re-sync Subscription %s/%s with gallery %r: %s",
                sub_namespace,
                sub_name,
                gallery_name,
                exc,
            )
