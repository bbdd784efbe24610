"""Finding things in a parsed gallery: an algorithm by name, a version by number or
``latest``, what is newer than a pin, and a digest that notices edits of a published
version (pure). Lookups fail with a :class:`GalleryLookupError` whose ``reason`` is the
condition reason to report and whose message lists what does exist."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import ClassVar

from kubearts.constants import (
    GALLERY_LABEL,
    LATEST_VERSION,
    REASON_ALGORITHM_INVALID,
    REASON_ALGORITHM_NOT_FOUND,
    REASON_GALLERY_UNAVAILABLE,
    REASON_NOT_RESOLVED,
    REASON_VERSION_INVALID,
    REASON_VERSION_NOT_FOUND,
)
from kubearts.gallery.entries import AlgorithmEntry, AlgorithmVersion, Gallery, GalleryProblem
from kubearts.gallery.versions import parse_version
from kubearts.messages import closest

__all__ = [
    "AlgorithmInvalidError",
    "AlgorithmNotFoundError",
    "GalleryLookupError",
    "GalleryUnavailableError",
    "VersionInvalidError",
    "VersionNotFoundError",
    "find_algorithm",
    "first_problems",
    "latest_version",
    "newer_versions",
    "resolve_version",
    "version_digest",
]


class GalleryLookupError(LookupError):
    """A Subscription cannot be resolved; ``reason`` is the condition reason."""

    reason: ClassVar[str] = REASON_NOT_RESOLVED

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class GalleryUnavailableError(GalleryLookupError):
    reason = REASON_GALLERY_UNAVAILABLE


class AlgorithmNotFoundError(GalleryLookupError):
    reason = REASON_ALGORITHM_NOT_FOUND


class AlgorithmInvalidError(GalleryLookupError):
    reason = REASON_ALGORITHM_INVALID


class VersionNotFoundError(GalleryLookupError):
    reason = REASON_VERSION_NOT_FOUND


class VersionInvalidError(GalleryLookupError):
    reason = REASON_VERSION_INVALID


def first_problems(problems: Sequence[GalleryProblem], limit: int = 3) -> str:
    shown = "; ".join(str(p) for p in problems[:limit])
    more = len(problems) - limit
    return shown + (f"; and {more} more" if more > 0 else "")


def find_algorithm(gallery: Gallery, name: str) -> AlgorithmEntry:
    """The gallery's entry ``name``, or the error explaining why there is none."""
    if not gallery.available:
        raise GalleryUnavailableError(
            f"gallery {gallery.name!r} has no ConfigMap labelled {GALLERY_LABEL}={gallery.name} "
            "in the operator namespace"
        )
    entry = gallery.algorithms.get(name)
    if entry is not None:
        return entry
    broken = [p for p in gallery.problems_for("algorithm", name) if p.severity == "error"]
    if broken:
        raise AlgorithmInvalidError(
            f"algorithm {name!r} in gallery {gallery.name!r} is invalid: {first_problems(broken)}"
        )
    known = sorted(gallery.algorithms)
    close = closest(name, known)
    hint = f"did you mean {close!r}? " if close else ""
    listing = ", ".join(known) if known else "none"
    message = f"algorithm {name!r} is not in gallery {gallery.name!r}; {hint}available: {listing}"
    if gallery.unreachable:
        # It may well be in the index we could not read: a transient failure, not a verdict.
        raise GalleryUnavailableError(
            f"{message} (remote index unreachable: {', '.join(gallery.unreachable)})"
        )
    raise AlgorithmNotFoundError(message)


def latest_version(entry: AlgorithmEntry) -> AlgorithmVersion | None:
    """Highest version without a pre-release tag; else the highest pre-release; else None."""
    ordered = sorted(entry["versions"], key=lambda v: parse_version(v["version"]).key)
    stable = [v for v in ordered if not parse_version(v["version"]).is_prerelease]
    if stable:
        return stable[-1]
    return ordered[-1] if ordered else None


def resolve_version(entry: AlgorithmEntry, requested: str) -> AlgorithmVersion:
    """The version ``requested`` (exact string, or ``latest``) of ``entry``.

    Raises :class:`VersionNotFoundError` whose message lists the versions that exist.
    """
    numbers = [v["version"] for v in entry["versions"]]
    listing = ", ".join(numbers) if numbers else "none"
    if requested == LATEST_VERSION:
        found = latest_version(entry)
        if found is None:
            raise VersionNotFoundError(f"algorithm {entry['name']!r} has no usable versions")
        return found
    for version in entry["versions"]:
        if version["version"] == requested:
            return version
    raise VersionNotFoundError(
        f"version {requested!r} of algorithm {entry['name']!r} is not in the gallery; "
        f"available: {listing} (or {LATEST_VERSION!r})"
    )


def version_digest(version: AlgorithmVersion) -> str:
    """``sha256:<hex>`` of a version's content, to notice edits of a published version."""
    canonical = json.dumps(version, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def newer_versions(entry: AlgorithmEntry, pinned: str) -> list[str]:
    """Versions of ``entry`` with higher precedence than ``pinned``, ascending."""
    try:
        floor = parse_version(pinned).key
    except ValueError:
        return []
    return [v["version"] for v in entry["versions"] if parse_version(v["version"]).key > floor]
