"""Content digests of model files and trees, stable across copies.

A tree's digest is ``sha256:<hex>`` of the lines ``<path>\\0<size>\\0<sha256 of the file>\\n``
for each file, sorted by relative POSIX path. Modification times, permissions, owners and
the tree's own location do not enter it: the same files in two places have the same digest,
and any renamed, added, removed or changed file gives another. Directories count only
through the files in them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One file of a tree: relative POSIX path, size in bytes, hex sha256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class TreeDigest:
    digest: str
    size_bytes: int
    files: int


def tree_digest(entries: Iterable[Entry]) -> TreeDigest:
    """The digest of a tree given its entries (in any order). Pure."""
    ordered = sorted(entries, key=lambda e: e.path)
    paths = [e.path for e in ordered]
    if len(set(paths)) != len(paths):
        raise ValueError("a path appears twice in the tree")
    hasher = hashlib.sha256()
    for entry in ordered:
        hasher.update(f"{entry.path}\0{entry.size}\0{entry.sha256}\n".encode())
    return TreeDigest(f"sha256:{hasher.hexdigest()}", sum(e.size for e in ordered), len(ordered))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    hasher = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def entry(path: Path, relative: str) -> Entry:
    return Entry(relative, path.stat().st_size, file_sha256(path))


def files_of(root: Path, exclude: frozenset[str] = frozenset()) -> dict[str, Path]:
    """Every regular file below ``root`` by relative POSIX path (``root`` itself when it is a
    file, under its name); ``exclude`` names top-level entries to leave out."""
    if root.is_file():
        return {root.name: root}
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        relative = PurePosixPath(path.relative_to(root).as_posix())
        if relative.parts[0] in exclude or not path.is_file():
            continue
        found[str(relative)] = path
    return found


def digest_files(files: dict[str, Path]) -> TreeDigest:
    """The digest of the files named by their relative paths in the tree."""
    return tree_digest(entry(path, relative) for relative, path in files.items())


def digest_tree(root: Path, exclude: frozenset[str] = frozenset()) -> TreeDigest:
    """The digest of the tree below ``root`` (see :func:`files_of`)."""
    return digest_files(files_of(root, exclude))
