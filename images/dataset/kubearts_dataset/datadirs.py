"""Content-addressed data folders of a dataset directory, and which of them versions use.

An ingest installs its verified data under ``data/<key>/``, where ``<key>`` is a digest of
the files it lists (path, label and SHA-256 of every verified image), so the same data
always lands in the same folder and different data never in one that exists. A folder is
renamed into place whole and never written again; a version's manifests name files inside
it (``data/<key>/flowers/roses/1.jpg``, relative to the dataset directory). A later ingest
of other data therefore leaves every published version's files where they are; the folders
that neither the current data nor any published version lists are removed after it.

Dataset directories written before data folders existed hold their data at the top
(``flowers/roses/1.jpg``); such a top-level entry counts as one folder, kept while a
version lists a file in it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from kubearts_dataset.archive import remove_tree
from kubearts_dataset.paths import METADATA_DIR
from kubearts_dataset.store import VERSION_FILE, VERSIONS, DatasetStore

DATA_DIR: Final = "data"
"""The folder of a dataset directory holding one sub-folder per ingested content."""
KEY_LENGTH: Final = 16
"""Hex digits of a data folder's key (64 bits: collisions need ~2^32 different data sets)."""
_KEY: Final = re.compile(rf"^[0-9a-f]{{{KEY_LENGTH}}}$")


def data_folder(files: Iterable[tuple[str, str, str]]) -> str:
    """``data/<key>`` for the verified files ``(path, label, sha256)``.

    Unlike the data set's digest, which ignores how the data was packed, the key covers
    the paths too: a folder must hold exactly the paths its catalogue names.
    """
    hasher = hashlib.sha256()
    for entry in sorted(files):
        hasher.update((json.dumps(list(entry), ensure_ascii=False) + "\n").encode("utf-8"))
    return f"{DATA_DIR}/{hasher.hexdigest()[:KEY_LENGTH]}"


def is_data_key(name: str) -> bool:
    """Whether ``name`` is a data folder's key (what ``data/`` holds)."""
    return bool(_KEY.match(name))


def folder_of(relative: str) -> str:
    """The folder a path relative to the dataset directory lies in: ``data/<key>`` for a
    data folder, else its first component (data written before data folders existed)."""
    parts = [part for part in relative.split("/") if part]
    if len(parts) > 2 and parts[0] == DATA_DIR:
        return f"{DATA_DIR}/{parts[1]}"
    return parts[0] if parts else ""


def in_use(relative: str, folders: set[str]) -> bool:
    """Whether the file or folder ``relative`` must stay: metadata, or inside ``folders``."""
    parts = [part for part in relative.split("/") if part]
    if not parts or parts[0] == METADATA_DIR or parts[0] in folders:
        return True
    return len(parts) > 1 and parts[0] == DATA_DIR and f"{DATA_DIR}/{parts[1]}" in folders


def folders_in_use(store: DatasetStore) -> set[str]:
    """The folders whose files a published version of ``store`` lists in its manifests."""
    used: set[str] = set()
    for name in store.version_names():
        record = store.read(f"{VERSIONS}/{name}/{VERSION_FILE}")
        if record is None:
            continue
        for relative in (json.loads(record).get("manifests") or {}).values():
            for line in (store.read(str(relative)) or b"").decode("utf-8").splitlines():
                if line.strip():
                    used.add(folder_of(str(json.loads(line).get("source") or "")))
    used.discard("")
    return used


def prune_local(root: Path, keep: set[str]) -> list[str]:
    """Remove the data folders below ``root`` that are not in ``keep``; what was removed."""
    removed: list[str] = []
    for entry in sorted(root.iterdir()):
        if entry.name == DATA_DIR and entry.is_dir() and not entry.is_symlink():
            if DATA_DIR in keep:  # data written at the top before data folders existed
                continue
            for folder in sorted(entry.iterdir()):
                relative = f"{DATA_DIR}/{folder.name}"
                if not in_use(relative, keep):
                    remove_tree(folder)
                    removed.append(relative)
        elif not in_use(entry.name, keep):
            remove_tree(entry)
            removed.append(entry.name)
    return removed


def stale_keys(keys: Iterable[str], prefix: str, keep: set[str]) -> list[str]:
    """The object keys below ``prefix`` outside the metadata and the ``keep`` folders."""
    return [key for key in keys if not in_use(key[len(prefix) :], keep)]


def only_ours(relatives: Iterable[str]) -> bool:
    """Whether every path lies in the metadata folder or a data folder: what an ingest
    stopped before writing its report leaves behind."""
    for relative in relatives:
        parts = [part for part in relative.split("/") if part]
        ours = parts[:1] == [METADATA_DIR] or (
            len(parts) > 1 and parts[0] == DATA_DIR and is_data_key(parts[1])
        )
        if not ours:
            return False
    return True
