"""How a Subscription pins an algorithm version of a gallery (pure).

:func:`subscription_sync` compares a gallery with a Subscription's spec and current status
and answers a :class:`Sync`: the status fields to write and the conditions to set. The
handler (``kubearts.handlers.subscriptions``) writes both at once with
``common.write_status``, which also sets ``observedGeneration`` and ``phase``; nothing here
talks to the API server or to kopf.

The rules:

* Nothing pinned yet, or the user edited ``spec.gallery``, ``spec.algorithm`` or
  ``spec.version`` (compared with ``status.gallery``/``algorithm``/``requestedVersion``):
  resolve and pin. ``latest`` means the highest version without a pre-release tag (or the
  highest pre-release if there is nothing else). Editing ``spec.version`` to ``latest``
  again is an edit like any other: it re-pins to the newest version at that moment.
* Otherwise the pin stays exactly as it is, whatever the gallery now says. Newer versions
  are listed in ``status.availableVersions`` and raise ``UpdateAvailable=True``; the user
  moves by editing ``spec.version``.
* If the pinned algorithm or version disappears from the gallery, or the gallery cannot be
  read, the pinned data stays: ``Synced=False`` (``AlgorithmRemoved``, ``VersionRemoved``,
  ``VersionChanged``, ``GalleryUnavailable``) while ``Ready`` stays ``True`` with reason
  ``Pinned``, because training can still use the pinned image and schema.
* If a (re-)resolution fails, pinned fields are never erased: a pin from before the edit
  stays visible, but ``Ready=False`` since the spec as written cannot be satisfied.

No verdict asks for a retry by itself: every ``Ready=False`` changes only when the gallery
or the spec does, and the operator re-evaluates a gallery's Subscriptions when it changes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict, cast

from kubearts.conditions import Condition, ConditionUpdate
from kubearts.constants import (
    COND_READY,
    COND_SYNCED,
    COND_UPDATE_AVAILABLE,
    DEFAULT_GALLERY,
    FALSE,
    LATEST_VERSION,
    REASON_ALGORITHM_REMOVED,
    REASON_GALLERY_UNAVAILABLE,
    REASON_INVALID_SPEC,
    REASON_NOT_RESOLVED,
    REASON_PINNED,
    REASON_RESOLVED,
    REASON_UP_TO_DATE,
    REASON_UPDATE_AVAILABLE,
    REASON_VERSION_CHANGED,
    REASON_VERSION_REMOVED,
    TRUE,
    UNKNOWN,
)
from kubearts.gallery import (
    AlgorithmEntry,
    AlgorithmNotFoundError,
    AlgorithmVersion,
    Entrypoint,
    Gallery,
    GalleryLookupError,
    GalleryUnavailableError,
    InputContract,
    OutputArtifact,
    VersionInvalidError,
    VersionNotFoundError,
    find_algorithm,
    latest_version,
    newer_versions,
    resolve_version,
    version_digest,
)
from kubearts.gallery.lookup import first_problems
from kubearts.hyperparameters import Hyperparameter

__all__ = [
    "PIN_FIELDS",
    "STATUS_FIELDS",
    "SubscriptionSpec",
    "SubscriptionStatus",
    "Sync",
    "subscription_gallery",
    "subscription_sync",
]


class SubscriptionSpec(TypedDict, total=False):
    gallery: str
    algorithm: str
    version: str


class SubscriptionStatus(TypedDict, total=False):
    """``Subscription.status``: the fields a Subscription's status may hold."""

    # The pin: written together on a successful resolution, never erased, never changed
    # otherwise.
    gallery: str
    algorithm: str
    displayName: str
    description: str
    task: str
    framework: str
    requestedVersion: str
    """spec.version at the time of pinning; a different spec.version means the user edited it."""
    resolvedVersion: str
    """The pinned, resolved version (``latest`` resolved to a number)."""
    versionDigest: str
    image: str
    entrypoint: Entrypoint
    hyperparameters: list[Hyperparameter]
    trainingDevices: list[str]
    inferenceDevices: list[str]
    contract: InputContract
    outputs: list[OutputArtifact]
    # Recomputed on every sync from the gallery.
    availableVersions: list[str]
    """Versions newer than the pin (all versions when nothing is pinned), ascending."""
    latestVersion: str
    """What ``latest`` would resolve to now."""
    # Written by common.write_status from the Sync's condition updates.
    conditions: list[Condition]
    observedGeneration: int
    phase: str


#: Status fields that make up the pin (copied unchanged while the pin holds).
PIN_FIELDS: Final[tuple[str, ...]] = (
    "gallery",
    "algorithm",
    "displayName",
    "description",
    "task",
    "framework",
    "requestedVersion",
    "resolvedVersion",
    "versionDigest",
    "image",
    "entrypoint",
    "hyperparameters",
    "trainingDevices",
    "inferenceDevices",
    "contract",
    "outputs",
)

#: Every field of :class:`SubscriptionStatus` (the CRD declares exactly these).
STATUS_FIELDS: Final[frozenset[str]] = frozenset(SubscriptionStatus.__optional_keys__)

#: The fields a :class:`Sync` decides; the rest belong to ``common.write_status``.
_SYNCED_FIELDS: Final[tuple[str, ...]] = (*PIN_FIELDS, "availableVersions", "latestVersion")


@dataclass(frozen=True)
class Sync:
    """What one evaluation decided: status fields and conditions to set.

    ``fields`` holds every field the verdict decides, ``None`` for one to delete (a merge
    patch deletes a key whose value is null, e.g. ``latestVersion`` once the algorithm left
    the gallery). ``updates`` sets Ready, Synced and UpdateAvailable.
    """

    fields: dict[str, Any] = field(default_factory=dict)
    updates: list[ConditionUpdate] = field(default_factory=list)

    @property
    def ready(self) -> ConditionUpdate:
        return next(u for u in self.updates if u.type == COND_READY)


def _spec_values(spec: Mapping[str, object]) -> tuple[str, str, str]:
    def text(key: str, default: str) -> str:
        value = spec.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else default

    return (
        text("gallery", DEFAULT_GALLERY),
        text("algorithm", ""),
        text("version", LATEST_VERSION),
    )


def subscription_gallery(spec: Mapping[str, object]) -> str:
    """The gallery a Subscription spec names (``default`` when unset): the one to load and
    pass to :func:`subscription_sync`."""
    return _spec_values(spec)[0]


def _pin(
    gallery: str, entry: AlgorithmEntry, version: AlgorithmVersion, requested: str
) -> SubscriptionStatus:
    # Deep copies: the status must not share lists with the gallery cache.
    return {
        "gallery": gallery,
        "algorithm": entry["name"],
        "displayName": entry["displayName"],
        "description": entry["description"],
        "task": entry["task"],
        "framework": entry["framework"],
        "requestedVersion": requested,
        "resolvedVersion": version["version"],
        "versionDigest": version_digest(version),
        "image": version["image"],
        "entrypoint": copy.deepcopy(version["entrypoint"]),
        "hyperparameters": copy.deepcopy(version["hyperparameters"]),
        "trainingDevices": list(version["trainingDevices"]),
        "inferenceDevices": list(version["inferenceDevices"]),
        "contract": copy.deepcopy(version["contract"]),
        "outputs": copy.deepcopy(version["outputs"]),
    }


def _previous_pin(previous: Mapping[str, object]) -> SubscriptionStatus | None:
    if not all(
        isinstance(previous.get(k), str) and previous.get(k)
        for k in ("algorithm", "resolvedVersion", "image")
    ):
        return None
    pin = {k: copy.deepcopy(previous[k]) for k in PIN_FIELDS if k in previous}
    return cast(SubscriptionStatus, pin)


def _describe_pin(pin: SubscriptionStatus) -> str:
    return (
        f"pinned {pin.get('algorithm')} {pin.get('resolvedVersion')} from gallery "
        f"{pin.get('gallery')!r} (image {pin.get('image')})"
    )


def _update_condition(available: list[str], pinned: str) -> ConditionUpdate:
    if available:
        return ConditionUpdate(
            COND_UPDATE_AVAILABLE,
            TRUE,
            REASON_UPDATE_AVAILABLE,
            f"newer version(s) {', '.join(available)} available; pinned to {pinned}. "
            "Set spec.version to move.",
        )
    return ConditionUpdate(
        COND_UPDATE_AVAILABLE, FALSE, REASON_UP_TO_DATE, f"{pinned} is the newest version"
    )


def subscription_sync(
    gallery: Gallery | None,
    spec: Mapping[str, object],
    previous_status: Mapping[str, object] | None,
) -> Sync:
    """What to write for a Subscription (see the module docstring for the pinning rules).

    ``gallery`` is the one named by ``spec.gallery``, or None when it could not be read at
    all. The answer's fields are the pin (when anything is pinned), ``availableVersions``
    and ``latestVersion``; its updates set Ready, Synced and UpdateAvailable.
    """
    gallery_name, algorithm, requested = _spec_values(spec)
    previous = previous_status or {}
    pin = _previous_pin(previous)
    if gallery is not None and gallery.name and gallery.name != gallery_name:
        raise ValueError(f"gallery {gallery.name!r} passed for spec.gallery {gallery_name!r}")

    edited = pin is None or (
        pin.get("gallery", gallery_name),
        pin.get("algorithm"),
        pin.get("requestedVersion", requested),
    ) != (gallery_name, algorithm, requested)

    status: SubscriptionStatus = copy.copy(pin) if pin is not None else {}
    prev_available = previous.get("availableVersions")
    if isinstance(prev_available, list):
        status["availableVersions"] = [str(v) for v in prev_available]
    prev_latest = previous.get("latestVersion")
    if isinstance(prev_latest, str):
        status["latestVersion"] = prev_latest

    if edited:
        updates = _resolve_into(status, gallery, gallery_name, algorithm, requested, pin)
    else:
        assert pin is not None  # not edited implies a pin
        updates = _check_pin(status, gallery, pin)
    written = cast(Mapping[str, Any], status)
    return Sync({key: written.get(key) for key in _SYNCED_FIELDS}, updates)


class _InvalidSpecError(GalleryLookupError):
    reason = REASON_INVALID_SPEC


def _resolve(gallery: Gallery, entry: AlgorithmEntry, requested: str) -> AlgorithmVersion:
    """The version ``requested`` of ``entry``; a version missing because the gallery entry
    is broken is reported as invalid, with the entry's problems."""
    try:
        return resolve_version(entry, requested)
    except VersionNotFoundError as exc:
        broken = [
            p
            for p in gallery.problems_for("algorithm", entry["name"])
            if p.severity == "error" and (requested == LATEST_VERSION or p.version == requested)
        ]
        if broken:
            raise VersionInvalidError(
                f"{exc.message}; the gallery entry has problems: {first_problems(broken)}"
            ) from exc
        raise


def _resolve_into(
    status: SubscriptionStatus,
    gallery: Gallery | None,
    gallery_name: str,
    algorithm: str,
    requested: str,
    pin: SubscriptionStatus | None,
) -> list[ConditionUpdate]:
    """(Re-)resolve after a spec edit or for the first time."""
    entry: AlgorithmEntry | None = None
    try:
        if not algorithm:
            raise _InvalidSpecError("spec.algorithm is empty; name an algorithm of the gallery")
        if gallery is None:
            raise GalleryUnavailableError(f"gallery {gallery_name!r} could not be read")
        entry = find_algorithm(gallery, algorithm)
        version = _resolve(gallery, entry, requested)
    except GalleryLookupError as exc:
        if entry is not None:
            status["availableVersions"] = (
                newer_versions(entry, pin["resolvedVersion"])
                if pin is not None and pin.get("algorithm") == entry["name"]
                else [v["version"] for v in entry["versions"]]
            )
            newest = latest_version(entry)
            if newest is not None:
                status["latestVersion"] = newest["version"]
        kept = f"; still {_describe_pin(pin)} from before the edit" if pin is not None else ""
        return [
            ConditionUpdate(COND_READY, FALSE, exc.reason, exc.message + kept),
            ConditionUpdate(COND_SYNCED, FALSE, exc.reason, exc.message),
            ConditionUpdate(
                COND_UPDATE_AVAILABLE, UNKNOWN, REASON_NOT_RESOLVED, "spec.version is not resolved"
            ),
        ]
    new_pin = _pin(gallery_name, entry, version, requested)
    status.update(new_pin)
    available = newer_versions(entry, version["version"])
    status["availableVersions"] = available
    newest = latest_version(entry)
    status["latestVersion"] = newest["version"] if newest is not None else version["version"]
    message = _describe_pin(new_pin)
    return [
        ConditionUpdate(COND_READY, TRUE, REASON_RESOLVED, message),
        # Word for word what _check_pin says while the pin matches, so that the next
        # evaluation finds nothing to write.
        ConditionUpdate(COND_SYNCED, TRUE, REASON_RESOLVED, f"{message}; matches the gallery"),
        _update_condition(available, version["version"]),
    ]


def _check_pin(
    status: SubscriptionStatus, gallery: Gallery | None, pin: SubscriptionStatus
) -> list[ConditionUpdate]:
    """Compare an unchanged pin with the gallery; the pin itself is never modified."""
    algorithm = pin.get("algorithm", "")
    pinned = pin.get("resolvedVersion", "")
    described = _describe_pin(pin)

    def keep(reason: str, message: str, update: ConditionUpdate) -> list[ConditionUpdate]:
        usable = f"{described}; the pinned data is kept and usable"
        return [
            ConditionUpdate(COND_READY, TRUE, REASON_PINNED, usable),
            ConditionUpdate(COND_SYNCED, FALSE, reason, message),
            update,
        ]

    if gallery is None:
        unknown = ConditionUpdate(
            COND_UPDATE_AVAILABLE, UNKNOWN, REASON_GALLERY_UNAVAILABLE, "the gallery cannot be read"
        )
        return keep(REASON_GALLERY_UNAVAILABLE, "the gallery could not be read", unknown)
    try:
        entry = find_algorithm(gallery, algorithm)
    except AlgorithmNotFoundError:
        status["availableVersions"] = []
        status.pop("latestVersion", None)
        return keep(
            REASON_ALGORITHM_REMOVED,
            f"algorithm {algorithm!r} is no longer in gallery {gallery.name!r}",
            ConditionUpdate(
                COND_UPDATE_AVAILABLE,
                FALSE,
                REASON_ALGORITHM_REMOVED,
                "the algorithm is no longer offered",
            ),
        )
    except GalleryLookupError as exc:
        update = ConditionUpdate(COND_UPDATE_AVAILABLE, UNKNOWN, exc.reason, exc.message)
        return keep(exc.reason, exc.message, update)

    available = newer_versions(entry, pinned)
    status["availableVersions"] = available
    newest = latest_version(entry)
    if newest is not None:
        status["latestVersion"] = newest["version"]
    update = _update_condition(available, pinned)
    current = next((v for v in entry["versions"] if v["version"] == pinned), None)
    if current is None:
        return keep(
            REASON_VERSION_REMOVED,
            f"version {pinned} of {algorithm!r} is no longer in gallery {gallery.name!r}; "
            f"offered: {', '.join(v['version'] for v in entry['versions']) or 'none'}",
            update,
        )
    if "versionDigest" in pin and version_digest(current) != pin["versionDigest"]:
        return keep(
            REASON_VERSION_CHANGED,
            f"the gallery's {algorithm} {pinned} changed after it was pinned; the pinned copy is "
            "kept (publish changes as a new version)",
            update,
        )
    return [
        ConditionUpdate(COND_READY, TRUE, REASON_RESOLVED, described),
        ConditionUpdate(COND_SYNCED, TRUE, REASON_RESOLVED, f"{described}; matches the gallery"),
        update,
    ]
