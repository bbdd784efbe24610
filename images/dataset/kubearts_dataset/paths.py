"""Turning untrusted names (archive entries, object keys, manifest sources) into safe paths.

A name is safe when, after normalisation, it is relative, has no ``..`` component and does not
touch the reserved metadata folder. Only safe names are ever joined to a directory, so nothing
can be written or read outside the dataset directory through a crafted name.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Final

METADATA_DIR: Final = ".kubearts"
"""The folder inside a dataset directory that holds reports, the catalogue and versions."""

_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeNameError(ValueError):
    """A name that would leave its root or clash with the metadata folder."""


def safe_relative(name: str) -> PurePosixPath:
    """Normalise ``name`` to a relative POSIX path or raise :class:`UnsafeNameError` saying why.

    Backslashes count as separators (archives made on Windows use them) so that
    ``..\\..\\x`` is recognised as an escape; empty and ``.`` components are dropped.
    """
    if "\x00" in name:
        raise UnsafeNameError("contains a NUL character")
    text = name.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise UnsafeNameError("is an absolute path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if not parts:
        raise UnsafeNameError("is empty")
    if ".." in parts:
        raise UnsafeNameError("contains a '..' component")
    if parts[0] == METADATA_DIR:
        raise UnsafeNameError(f"uses the reserved folder {METADATA_DIR}/")
    return PurePosixPath(*parts)


def resolve_link(member: PurePosixPath, link: str, *, hard: bool) -> PurePosixPath:
    """Where a link entry points, relative to the archive root, or :class:`UnsafeNameError`.

    A symbolic link's target is relative to the folder holding the link; a hard link's target
    is an archive member name, relative to the archive root.
    """
    text = link.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise UnsafeNameError(f"leads to the absolute path {link!r}")
    base: list[str] = [] if hard else list(member.parent.parts)
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not base:
                raise UnsafeNameError(f"leads outside the data set ({link!r})")
            base.pop()
        else:
            base.append(part)
    if not base:
        raise UnsafeNameError(f"leads to the data set's root ({link!r})")
    return PurePosixPath(*base)


def inside(root: Path, relative: PurePosixPath) -> Path:
    """Join a safe relative path to ``root`` and check the result stays below ``root``.

    Resolving catches a symbolic link already on disk that would redirect the path; the
    unpacker never creates links, so this is defence in depth.
    """
    candidate = root.joinpath(*relative.parts)
    resolved_root = root.resolve()
    resolved = candidate.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise UnsafeNameError(f"resolves outside {root}")
    return candidate
