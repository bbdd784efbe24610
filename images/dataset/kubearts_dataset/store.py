"""Reading and writing a dataset directory's metadata, on a local path or below an s3 prefix.

``publish`` needs only two operations: read a metadata file, and write a version's files
once. Writing is all-or-nothing where the storage allows it: locally the files are written
to a temporary folder that is renamed into place; on s3, ``version.json`` is written last,
and its presence is what marks a version as published.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Protocol

import botocore.exceptions

from kubearts_dataset.archive import remove_tree
from kubearts_dataset.errors import DatasetError
from kubearts_dataset.locations import Location
from kubearts_dataset.paths import METADATA_DIR
from kubearts_dataset.s3 import list_prefix

VERSIONS = f"{METADATA_DIR}/versions"
VERSION_FILE = "version.json"


class DatasetStore(Protocol):
    """Metadata access for one dataset directory."""

    uri: str

    def read(self, relative: str) -> bytes | None:
        """The bytes of ``relative`` (a path below the dataset directory), or ``None``."""
        ...

    def version_names(self) -> list[str]:
        """The names of the published versions, sorted."""
        ...

    def write_version(self, name: str, files: list[tuple[str, bytes]]) -> bool:
        """Write ``files`` as version ``name``; ``False`` when the version already exists.

        ``files`` must end with ``version.json``.
        """
        ...


class LocalStore:
    """A dataset directory on a mounted file system."""

    def __init__(self, root: Path, uri: str) -> None:
        self.root = root
        self.uri = uri

    def read(self, relative: str) -> bytes | None:
        """See :class:`DatasetStore`."""
        path = self.root / relative
        return path.read_bytes() if path.is_file() else None

    def version_names(self) -> list[str]:
        """See :class:`DatasetStore`; folders being written (``.tmp-…``) are not versions."""
        versions = self.root / VERSIONS
        if not versions.is_dir():
            return []
        return sorted(
            entry.name
            for entry in versions.iterdir()
            if not entry.name.startswith(".") and (entry / VERSION_FILE).is_file()
        )

    def write_version(self, name: str, files: list[tuple[str, bytes]]) -> bool:
        """See :class:`DatasetStore`; published files are made read-only."""
        versions = self.root / VERSIONS
        final = versions / name
        if final.exists():
            return False
        temporary = versions / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        temporary.mkdir(parents=True)
        try:
            for filename, data in files:
                path = temporary / filename
                path.write_bytes(data)
                path.chmod(0o444)
            try:
                # A rename onto an existing non-empty folder fails: a concurrent publish
                # of the same name wins, and this one reports the existing version.
                os.rename(temporary, final)
            except OSError:
                if final.exists():
                    return False
                raise
        finally:
            if temporary.exists():
                for path in temporary.iterdir():
                    path.chmod(0o644)
                remove_tree(temporary)
        return True


class S3Store:
    """A dataset directory below an s3 prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str, uri: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.uri = uri

    def read(self, relative: str) -> bytes | None:
        """See :class:`DatasetStore`."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + relative)
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                return None
            raise DatasetError(
                "NotIngested", f"{self.uri}: cannot read {relative}: {exc}"
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise DatasetError("NotIngested", f"{self.uri}: unreachable ({exc})") from None
        return bytes(answer["Body"].read())

    def version_names(self) -> list[str]:
        """See :class:`DatasetStore`: a version is published once its ``version.json`` is."""
        base = f"{self.prefix}{VERSIONS}/"
        names = set()
        for key, _ in list_prefix(self.client, self.bucket, base, self.uri):
            name, _, rest = key[len(base) :].partition("/")
            if rest == VERSION_FILE:
                names.add(name)
        return sorted(names)

    def write_version(self, name: str, files: list[tuple[str, bytes]]) -> bool:
        """See :class:`DatasetStore`."""
        base = f"{VERSIONS}/{name}/"
        if self.read(base + VERSION_FILE) is not None:
            return False
        for filename, data in files:
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=self.prefix + base + filename, Body=data
                )
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                raise DatasetError(
                    "UploadFailed", f"{self.uri}: cannot write {filename}: {exc}"
                ) from None
        return True


def open_store(location: Location, client: Any) -> DatasetStore:
    """The store for a parsed ``--dataset`` location."""
    if location.kind == "s3":
        key = location.key
        prefix = key if not key or key.endswith("/") else key + "/"
        return S3Store(client, location.bucket, prefix, location.uri)
    assert location.path is not None
    return LocalStore(location.path.absolute(), location.uri)
