"""Bringing a source into a staging folder: download, then unpack or copy.

Whatever the source, the outcome is the same: the data set's files below ``content`` (a
folder inside the target's staging area), plus what is known about the archive.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kubearts_dataset.archive import detect, remove_tree, unpack
from kubearts_dataset.download import (
    Downloaded,
    RetryPolicy,
    check_sha256,
    download_http,
    http_authorization,
)
from kubearts_dataset.errors import DatasetError
from kubearts_dataset.limits import Limits
from kubearts_dataset.locations import Location
from kubearts_dataset.paths import METADATA_DIR
from kubearts_dataset.progress import Progress
from kubearts_dataset.result import InvalidFile
from kubearts_dataset.s3 import download_object, download_prefix, head

log = logging.getLogger(__name__)


@dataclass
class Fetched:
    """What fetching a source produced, besides the files below ``content``."""

    archive_bytes: int = 0
    archive_sha256: str | None = None
    skipped: list[InvalidFile] = field(default_factory=list)


def fetch(
    source: Location,
    *,
    staging: Path,
    content: Path,
    target: Path,
    expected_sha256: str | None,
    limits: Limits,
    retry: RetryPolicy,
    progress: Progress,
    s3_client: Any = None,
) -> Fetched:
    """Place the files of ``source`` below ``content`` (see the module docstring)."""
    download = staging / "download" / "archive"
    if source.kind == "http":
        got = download_http(
            source.uri,
            download,
            limits=limits,
            retry=retry,
            progress=progress,
            authorization=http_authorization(),
        )
        return _from_archive(
            got, expected_sha256, source.shown, content, limits, progress, owned=True
        )
    if source.kind == "s3":
        key = source.key
        if (
            key
            and not key.endswith("/")
            and head(s3_client, source.bucket, key, source.uri) is not None
        ):
            got = download_object(
                s3_client,
                source.bucket,
                key,
                download,
                limits=limits,
                retry=retry,
                progress=progress,
            )
            return _from_archive(
                got, expected_sha256, source.shown, content, limits, progress, owned=True
            )
        prefix = key if not key or key.endswith("/") else key + "/"
        _no_checksum_for_folders(expected_sha256, source.shown)
        listing = download_prefix(
            s3_client,
            source.bucket,
            prefix,
            content,
            limits=limits,
            progress=progress,
            deadline=retry.deadline,
        )
        return Fetched(archive_bytes=listing.size)
    assert source.path is not None
    path = source.path.absolute()
    if not path.exists():
        raise DatasetError(
            "InvalidSource",
            f"{source.shown}: {path} does not exist; for pvc:// sources the claim must be mounted "
            "under --pvc-root",
        )
    if path.is_file():
        got = Downloaded(path=path, size=path.stat().st_size, sha256=_hash(path))
        limits.for_volume(content).check_bytes(got.size, f"the archive {source.shown}")
        return _from_archive(
            got, expected_sha256, source.shown, content, limits, progress, owned=False
        )
    _no_checksum_for_folders(expected_sha256, source.shown)
    resolved, target_resolved = path.resolve(), target.resolve()
    if (
        resolved == target_resolved
        or target_resolved in resolved.parents
        or (resolved in target_resolved.parents)
    ):
        raise DatasetError(
            "InvalidSource",
            f"{source.shown}: the source folder and the target {target} overlap; ingest into a "
            "separate folder",
        )
    return copy_tree(resolved, content, limits=limits, progress=progress)


def _no_checksum_for_folders(expected: str | None, uri: str) -> None:
    if expected is not None:
        raise DatasetError(
            "InvalidArgument",
            f"--sha256 was given but {uri} is a folder or prefix, not one archive; drop "
            "spec.source.sha256 or point at an archive",
        )


def _from_archive(
    got: Downloaded,
    expected: str | None,
    shown: str,
    content: Path,
    limits: Limits,
    progress: Progress,
    *,
    owned: bool,
) -> Fetched:
    check_sha256(got, expected, shown)
    kind = detect(got.path)
    if kind is None:
        raise DatasetError(
            "InvalidSource",
            f"{shown} is not a tar, tar.gz, tgz, tar.bz2, tar.xz or zip archive",
        )
    report = unpack(got.path, kind, content, limits=limits, progress=progress)
    if owned:
        # Our own downloaded copy: the space is needed more by the data than by the archive.
        remove_tree(got.path)
    return Fetched(archive_bytes=got.size, archive_sha256=got.sha256, skipped=report.skipped)


def _hash(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            hasher.update(chunk)
    return hasher.hexdigest()


def copy_tree(source: Path, content: Path, *, limits: Limits, progress: Progress) -> Fetched:
    """Copy a local folder into ``content`` under the same rules as unpacking an archive.

    Links that stay inside the folder are copied as the files they point to; links leading
    out, device files and FIFOs are refused. A ``.kubearts`` folder at the top (the source
    is itself a dataset directory) is metadata and is not copied.
    """
    fetched = Fetched()
    files = 0
    size = 0
    limits = limits.for_volume(content)
    for current, dirs, names in os.walk(source):
        here = Path(current)
        dirs.sort()
        if here == source and METADATA_DIR in dirs:
            dirs.remove(METADATA_DIR)
            log.info("not copying %s/%s: dataset metadata", source, METADATA_DIR)
        relative_dir = here.relative_to(source)
        for name in [*dirs, *sorted(names)]:
            path = here / name
            relative = PurePosixPath(relative_dir.as_posix(), name)
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise DatasetError(
                    "InvalidSource",
                    f"{path!r}: the name is not valid UTF-8; rename the file",
                ) from None
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                real = path.resolve()
                if real != source and source not in real.parents:
                    raise DatasetError(
                        "UnsafeArchive",
                        f"{relative} is a symbolic link that leads outside the source folder "
                        f"({os.readlink(path)}); nothing was kept",
                    )
                if not real.is_file():
                    fetched.skipped.append(
                        {"path": relative.as_posix(), "reason": "link to a folder is not followed"}
                    )
                    if name in dirs:
                        dirs.remove(name)
                    continue
            elif stat.S_ISDIR(mode):
                (content / relative).mkdir(parents=True, exist_ok=True)
                continue
            elif not stat.S_ISREG(mode):
                raise DatasetError(
                    "UnsafeArchive",
                    f"{relative} is a device file, FIFO or socket; nothing was kept",
                )
            files += 1
            size += path.stat().st_size
            limits.check_files(files, f"the folder {source}")
            limits.check_bytes(size, f"the folder {source}")
            destination = content / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            progress.update("download", bytes_done=size, files=files)
    progress.update("download", bytes_done=size, files=files, final=True)
    fetched.archive_bytes = size
    return fetched
