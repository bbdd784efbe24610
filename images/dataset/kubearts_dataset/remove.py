"""Removing a dataset directory, on a local path or below an s3 prefix.

Only a dataset directory is ever removed: one that holds ``.kubearts/ingest.json``, which
only a successful ingest writes, or one that holds nothing but what an ingest writes before
its report — the ``.kubearts/`` folder (staging) and content-addressed ``data/<key>/``
folders — which is what a Dataset deleted during its first ingest leaves. A mistyped
``--dataset`` naming someone else's folder or prefix is refused with ``InvalidTarget`` and
nothing is touched. A target that holds nothing at all is already removed, which makes
running ``remove`` twice harmless.

The marker goes last: everything else is deleted first, so a removal that is interrupted
leaves a directory that is still recognised as a data set, and the next run finishes it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Final, Literal, TypedDict

from kubearts_dataset.datadirs import DATA_DIR, only_ours
from kubearts_dataset.errors import DatasetError
from kubearts_dataset.locations import Location
from kubearts_dataset.paths import METADATA_DIR
from kubearts_dataset.s3 import delete_keys, head, list_prefix

log = logging.getLogger(__name__)

#: What marks a dataset directory: the report of a successful ingest.
MARKER: Final = f"{METADATA_DIR}/ingest.json"


class RemoveResult(TypedDict):
    """The result of a successful ``remove``."""

    status: Literal["Succeeded"]
    reason: Literal["Removed"]
    message: str
    target: str
    removedFiles: int


def remove(location: Location, client: Any) -> RemoveResult:
    """Remove the dataset directory at ``location`` (``client``: an S3 client for s3)."""
    if location.kind == "s3":
        removed = _remove_prefix(client, location)
    elif location.kind == "local" and location.path is not None:
        removed = _remove_local(location.path, location.uri)
    else:
        raise DatasetError("InvalidArgument", f"--dataset {location.uri}: cannot be removed")
    message = (
        f"removed {removed} files from {location.uri}"
        if removed is not None
        else f"nothing is stored at {location.uri}; nothing to remove"
    )
    log.info("%s", message)
    return {
        "status": "Succeeded",
        "reason": "Removed",
        "message": message,
        "target": location.uri,
        "removedFiles": removed or 0,
    }


def _refusal(uri: str, what: str) -> DatasetError:
    return DatasetError(
        "InvalidTarget",
        f"--dataset {uri} {what} and is not a KubeArts dataset directory (no {MARKER}); "
        "nothing was removed: check the location, and remove other data by hand",
    )


def _remove_local(root: Path, uri: str) -> int | None:
    """Remove ``root`` and everything below it; the number of files, None if it is absent."""
    if root.is_symlink():
        # A link could lead anywhere; the data set is the folder itself, never a link to it.
        raise _refusal(uri, "is a symbolic link")
    if not root.exists():
        return None
    if not root.is_dir():
        raise _refusal(uri, "is a file")
    marker = root / MARKER
    if not (marker.is_file() and not marker.is_symlink()) and not _only_ingest_leftovers(root):
        raise _refusal(uri, "holds files")
    try:
        removed = _remove_below(root, keep=marker)
        if marker.is_file():
            marker.unlink()
            removed += 1
        if (root / METADATA_DIR).is_dir():
            (root / METADATA_DIR).rmdir()
        root.rmdir()
    except OSError as exc:
        raise DatasetError(
            "RemoveFailed",
            f"--dataset {uri}: {exc.strerror or exc} at {exc.filename or root}; check that "
            "the claim is mounted writable",
        ) from None
    return removed


def _only_ingest_leftovers(root: Path) -> bool:
    """Whether ``root`` holds a real ``.kubearts/`` folder and otherwise only data folders:
    an ingest stopped before its report (see :func:`kubearts_dataset.datadirs.only_ours`)."""
    metadata = root / METADATA_DIR
    if not metadata.is_dir() or metadata.is_symlink():
        return False
    relatives: list[str] = []
    for entry in root.iterdir():
        if entry.name == DATA_DIR and entry.is_dir() and not entry.is_symlink():
            relatives.extend(f"{DATA_DIR}/{folder.name}/" for folder in entry.iterdir())
        else:
            relatives.append(entry.name)
    return only_ours(relatives)


def _remove_below(root: Path, *, keep: Path) -> int:
    """Delete everything below ``root`` except ``keep`` (and its folders); count files.

    Links are deleted, never followed; published files are read-only, which does not stop
    their deletion (that needs a writable folder).
    """
    removed = 0
    for folder, dirs, files in os.walk(root, topdown=False):
        here = Path(folder)
        for name in files:
            path = here / name
            if path != keep:
                path.unlink()
                removed += 1
        for name in dirs:
            path = here / name
            if path.is_symlink():
                path.unlink()
                removed += 1
            elif path not in keep.parents:
                path.rmdir()
    return removed


def _remove_prefix(client: Any, location: Location) -> int | None:
    """Delete every object below the prefix, the marker last; None if there is none."""
    key = location.key
    prefix = key if not key or key.endswith("/") else key + "/"
    uri = location.uri
    marker = prefix + MARKER
    try:
        has_marker = head(client, location.bucket, marker, uri) is not None
        keys = [k for k, _ in list_prefix(client, location.bucket, prefix, uri)]
    except DatasetError as exc:
        raise DatasetError("RemoveFailed", exc.message) from None
    if not keys:
        return None
    if not has_marker and not only_ours(key[len(prefix) :] for key in keys):
        raise _refusal(uri, f"holds {len(keys)} objects")
    # The marker goes last: a removal stopped halfway can still be run again.
    delete_keys(client, location.bucket, [k for k in keys if k != marker], uri, "RemoveFailed")
    if has_marker:
        delete_keys(client, location.bucket, [marker], uri, "RemoveFailed")
    return len(keys)
