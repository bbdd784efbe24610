"""``unregister``: delete a registered model version's folder from the registry.

Only a registered version is ever deleted: a folder that holds ``registration.json``,
which only a successful ``register`` writes. Any other folder is refused with
``InvalidArgument`` and nothing is touched; a folder that is already gone is removed, so
running ``unregister`` twice is harmless. ``registration.json`` goes last, so an
interrupted removal leaves a folder that is still recognised and the next run finishes it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kubearts_converter.errors import ConverterError
from kubearts_converter.register import REGISTRATION

log = logging.getLogger(__name__)


def run(target: Path) -> dict[str, Any]:
    """Delete ``target`` (a registered version folder); the result document."""
    if not target.exists():
        return _removed(target, 0, 0, "nothing to remove: the version is gone already")
    marker = target / REGISTRATION
    if not marker.is_file():
        raise ConverterError(
            "InvalidArgument",
            f"{target} holds no {REGISTRATION}: it is not a registered model version, and "
            "only those are removed",
        )
    files = size = 0
    for root, folders, names in os.walk(target, topdown=False):
        for name in names:
            path = Path(root) / name
            if path == marker:
                continue
            size += path.lstat().st_size
            path.unlink()
            files += 1
        for folder in folders:
            (Path(root) / folder).rmdir()
    marker.unlink()
    target.rmdir()
    log.info("removed %s: %d files, %d bytes", target, files + 1, size)
    return _removed(target, files + 1, size, f"removed {files + 1} files ({size} bytes)")


def _removed(target: Path, files: int, size: int, message: str) -> dict[str, Any]:
    return {
        "status": "Succeeded",
        "reason": "Removed",
        "message": message,
        "target": str(target),
        "files": files,
        "sizeBytes": size,
    }
