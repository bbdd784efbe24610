"""``ingest``: fetch a source, unpack it safely, verify every image, install the data set.

The dataset directory (the target) ends up as::

    <target>/
      data/<key>/<the data as unpacked>   e.g. data/3f9c…/flower_photos/roses/1.jpg
      .kubearts/
        ingest.json                   the full report (IngestResult, invalid files bounded)
        samples.jsonl                 the catalogue: one verified image per line, its path
                                      relative to the target (data/<key>/…)
        versions/<name>/...           written by ``publish``
        staging/<id>/...              one per running ingest

Everything is first unpacked into the ingest's own staging folder
``<target>/.kubearts/staging/<id>/`` (``--staging-id``, the operator passes the Job's name)
and verified there. A successful ingest renames the whole folder into
``data/<key>/`` (:mod:`kubearts_dataset.datadirs`: the key is a digest of the verified
files, so identical data reuses the folder that holds it), then writes the catalogue and,
last, the report. Data folders that neither the new data nor a published version lists are
removed afterwards; those of published versions stay, so a version's files survive any
later ingest. A failed ingest leaves the previous data and its report untouched, and the
staging folder is removed either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kubearts_dataset.archive import remove_tree
from kubearts_dataset.datadirs import data_folder, folders_in_use, prune_local, stale_keys
from kubearts_dataset.download import RetryPolicy, normalise_sha256
from kubearts_dataset.errors import DatasetError
from kubearts_dataset.formats import Candidate, Format, Layout, scan
from kubearts_dataset.limits import Limits
from kubearts_dataset.locations import DEFAULT_PVC_ROOT, Location, parse_location
from kubearts_dataset.paths import METADATA_DIR
from kubearts_dataset.progress import Progress
from kubearts_dataset.redact import redact_url
from kubearts_dataset.result import IngestResult, InvalidFile, write_json_atomic
from kubearts_dataset.s3 import check_target_prefix, delete_keys, make_client, upload_tree
from kubearts_dataset.sources import Fetched, fetch
from kubearts_dataset.store import LocalStore, S3Store
from kubearts_dataset.verify import DEFAULT_MAX_PIXELS, FileCheck, check_files

log = logging.getLogger(__name__)

REPORT: Final = f"{METADATA_DIR}/ingest.json"
CATALOGUE: Final = f"{METADATA_DIR}/samples.jsonl"
STAGING: Final = f"{METADATA_DIR}/staging"
_STAGING_ID: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class IngestOptions:
    """Everything ``ingest`` needs; the CLI flags map one to one."""

    source: str
    target: str
    format: Format = "ImageFolder"
    sha256: str | None = None
    manifest: str | None = None
    limits: Limits = field(default_factory=Limits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pvc_root: Path = DEFAULT_PVC_ROOT
    work_dir: Path | None = None
    workers: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_listed_invalid: int = 100
    staging_id: str | None = None
    """The name of this ingest's staging folder (default: a random one)."""


def content_digest(entries: list[tuple[str, str, str]]) -> str:
    """``sha256:`` over the sorted ``(key, label, file sha256)`` triples, one JSON array a line.

    ``key`` is the path relative to the data root, so the digest depends on the files and
    their labels, not on how the archive was packed (compression, wrapper folder, order).
    """
    hasher = hashlib.sha256()
    for entry in sorted(entries):
        hasher.update((json.dumps(list(entry), ensure_ascii=False) + "\n").encode("utf-8"))
    return f"sha256:{hasher.hexdigest()}"


def ingest(options: IngestOptions, progress: Progress) -> IngestResult:
    """Run an ingest; raises :class:`DatasetError` on any expected failure."""
    started = time.monotonic()
    expected = normalise_sha256(options.sha256) if options.sha256 else None
    source = parse_location(
        options.source,
        pvc_root=options.pvc_root,
        flag="--source",
        reason="InvalidSource",
        allow_http=True,
    )
    target = parse_location(
        options.target, pvc_root=options.pvc_root, flag="--target", reason="InvalidTarget"
    )
    client: Any = None
    if "s3" in (source.kind, target.kind):
        client = make_client(options.retry)
    staging_id = _staging_id(options.staging_id)
    with ExitStack() as cleanup:
        existing: list[str] = []
        prefix = ""
        if target.kind == "s3":
            prefix = target.key if not target.key or target.key.endswith("/") else target.key + "/"
            existing = check_target_prefix(client, target.bucket, prefix, target.uri)
            local = Path(tempfile.mkdtemp(prefix="kubearts-dataset-", dir=options.work_dir))
            cleanup.callback(remove_tree, local)
        else:
            assert target.path is not None
            local = target.path.absolute()
        _prepare_target(local, target)
        staging = local / STAGING / staging_id
        remove_tree(staging)  # what a previous run of this very ingest left
        content = staging / "content"
        content.mkdir(parents=True)
        cleanup.callback(_remove_staging, staging)

        fetched = fetch(
            source,
            staging=staging,
            content=content,
            target=local,
            expected_sha256=expected,
            limits=options.limits,
            retry=options.retry,
            progress=progress,
            s3_client=client,
        )
        layout = scan(content, options.format, options.manifest)
        checks = _verify(content, layout.candidates, options, progress)

        invalid: list[InvalidFile] = [*fetched.skipped, *layout.invalid]
        valid: list[tuple[Candidate, FileCheck]] = []
        for candidate, check in zip(layout.candidates, checks, strict=True):
            if check.error is None:
                valid.append((candidate, check))
            else:
                invalid.append({"path": candidate.path.as_posix(), "reason": check.error})
        if not valid:
            raise DatasetError("NoImagesFound", _no_images_message(len(layout.candidates), invalid))

        folder = data_folder(
            (candidate.path.as_posix(), candidate.label, check.sha256) for candidate, check in valid
        )
        result = _result(options, fetched, layout, valid, invalid, folder)
        reused = _install(content, local / folder)
        _write_catalogue(local / CATALOGUE, folder, valid)
        result["durationSeconds"] = round(time.monotonic() - started, 3)
        write_json_atomic(local / REPORT, result)
        _remove_staging(staging)
        if target.kind == "s3":
            upload_tree(client, local, target.bucket, prefix, existing=existing, progress=progress)
            store = S3Store(client, target.bucket, prefix, target.uri)
            keep = folders_in_use(store) | {folder}
            delete_keys(client, target.bucket, stale_keys(existing, prefix, keep), target.uri)
        else:
            _prune(local, target, folder)
    log.info(
        "ingested %s into %s%s: %s",
        result["source"],
        folder,
        " (already there)" if reused else "",
        result["message"],
    )
    return result


def _staging_id(wanted: str | None) -> str:
    """The name of this ingest's staging folder: ``--staging-id``, checked, or a new one."""
    if wanted is None:
        return f"ingest-{uuid.uuid4().hex[:12]}"
    if not _STAGING_ID.match(wanted):
        raise DatasetError(
            "InvalidArgument",
            f"--staging-id {wanted!r} is not a folder name; use lower-case letters, digits, "
            "'-' and '.' (at most 63 characters), e.g. the Job's name",
        )
    return wanted


def _remove_staging(staging: Path) -> None:
    """Remove this ingest's staging folder, and the staging area when no other uses it."""
    remove_tree(staging)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()


def _result(
    options: IngestOptions,
    fetched: Fetched,
    layout: Layout,
    valid: list[tuple[Candidate, FileCheck]],
    invalid: list[InvalidFile],
    folder: str,
) -> IngestResult:
    """The report of a successful ingest. ``dataRoot``, ``manifest`` and the invalid files
    are paths in the data as unpacked (inside ``dataFolder``); the catalogue's are relative
    to the target."""
    classes = Counter(candidate.label for candidate, _ in valid)
    digest = content_digest(
        [(candidate.key, candidate.label, check.sha256) for candidate, check in valid]
    )
    return {
        "status": "Succeeded",
        "reason": "Ingested",
        "message": f"{len(valid)} images in {len(classes)} classes"
        + (f", {len(invalid)} files excluded" if invalid else ""),
        "source": redact_url(options.source),
        "target": options.target,
        "format": options.format,
        "sampleCount": len(valid),
        "classCount": len(classes),
        "classes": dict(sorted(classes.items())),
        "sizeBytes": sum(check.size for _, check in valid),
        "digest": digest,
        "archiveBytes": fetched.archive_bytes,
        "archiveSha256": fetched.archive_sha256,
        "invalidCount": len(invalid),
        "invalidFiles": invalid[: options.max_listed_invalid],
        "unreferencedCount": layout.unreferenced,
        "dataFolder": folder,
        "dataRoot": layout.data_root.as_posix(),
        "manifest": layout.manifest.as_posix() if layout.manifest else None,
        "report": REPORT,
        "catalogue": CATALOGUE,
        "durationSeconds": 0.0,
    }


def _prepare_target(local: Path, target: Location) -> None:
    """Create the target; refuse a non-empty folder that is not a dataset directory.

    Ingesting replaces the data in the target, so a folder holding anything but a previous
    ingest (recognised by its ``.kubearts`` folder) is refused rather than emptied.
    """
    try:
        if local.exists() and not local.is_dir():
            raise DatasetError("InvalidTarget", f"--target {target.uri}: {local} is not a folder")
        local.mkdir(parents=True, exist_ok=True)
        others = [entry.name for entry in local.iterdir() if entry.name != METADATA_DIR]
    except OSError as exc:
        raise DatasetError("InvalidTarget", f"--target {target.uri}: {exc}") from None
    if others and not (local / METADATA_DIR).is_dir():
        raise DatasetError(
            "InvalidTarget",
            f"--target {target.uri}: {local} already holds {len(others)} entries and is not a "
            "KubeArts dataset directory; choose an empty folder",
        )


def _verify(
    content: Path, candidates: list[Candidate], options: IngestOptions, progress: Progress
) -> list[FileCheck]:
    paths = [content.joinpath(*candidate.path.parts) for candidate in candidates]
    total_bytes = sum(path.stat().st_size for path in paths)
    done = {"bytes": 0}

    def on_done(index: int, check: FileCheck) -> None:
        done["bytes"] += check.size
        progress.update(
            "verify",
            bytes_done=done["bytes"],
            total_bytes=total_bytes,
            files=index + 1,
            total_files=len(paths),
            final=index + 1 == len(paths),
        )

    return check_files(
        paths, workers=options.workers, max_pixels=options.max_pixels, on_done=on_done
    )


def _no_images_message(candidates: int, invalid: list[InvalidFile]) -> str:
    if not candidates:
        return "no image files found in the data set" + (
            f" ({len(invalid)} other files were excluded)" if invalid else ""
        )
    first = "; ".join(f"{item['path']}: {item['reason']}" for item in invalid[:3])
    return f"none of the {candidates} files is a usable image (first: {first})"


def _install(content: Path, final: Path) -> bool:
    """Rename the staged data into its data folder in one step; True when a folder of that
    key was there already (the same data: it stays, and the staged copy goes)."""
    if final.is_dir():
        return True
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Same file system (both below the target): the folder appears whole or not at all.
        os.rename(content, final)
    except OSError:
        if final.is_dir():  # an ingest of the same data renamed it first
            return True
        raise
    return False


def _prune(local: Path, target: Location, folder: str) -> None:
    """Remove data folders that neither ``folder`` nor a published version lists.

    The data is in and reported by now: a failure here is logged, not an ingest failure.
    """
    try:
        keep = folders_in_use(LocalStore(local, target.uri)) | {folder}
        removed = prune_local(local, keep)
    except (OSError, ValueError, DatasetError) as exc:
        log.warning("could not remove earlier data from %s: %s", target.uri, exc)
        return
    if removed:
        log.info("removed data no version uses: %s", ", ".join(removed))


def _write_catalogue(path: Path, folder: str, valid: list[tuple[Candidate, FileCheck]]) -> None:
    """One JSON line per verified image: path (relative to the target, inside ``folder``),
    label, usage, sha256, size; sorted by path."""
    lines = [
        json.dumps(
            {
                "path": f"{folder}/{candidate.path.as_posix()}",
                "label": candidate.label,
                "usage": candidate.usage,
                "sha256": check.sha256,
                "size": check.size,
            },
            ensure_ascii=False,
        )
        for candidate, check in sorted(valid, key=lambda item: item[0].path)
    ]
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    temporary.replace(path)
