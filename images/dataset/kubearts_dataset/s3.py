"""S3 and S3-compatible object stores: archive objects, whole prefixes, and uploads.

Credentials come from the standard ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
variables (the operator fills them from ``spec.source.secretRef``); without them, requests
are unsigned so that public buckets work. ``KUBEARTS_S3_ENDPOINT`` or ``AWS_ENDPOINT_URL``
selects an S3-compatible store (MinIO, Ceph, OBS…), addressed path-style.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

import boto3
import botocore.exceptions
from botocore import UNSIGNED
from botocore.config import Config

from kubearts_dataset.download import CHUNK, Deadline, Downloaded, RetryPolicy, Sink
from kubearts_dataset.errors import DatasetError, Reason
from kubearts_dataset.limits import Limits
from kubearts_dataset.paths import METADATA_DIR, UnsafeNameError, inside, safe_relative
from kubearts_dataset.progress import Progress

log = logging.getLogger(__name__)

TRANSFER_THREADS: Final = 8
"""Objects transferred at once when a prefix holds many small files."""

_NOT_FOUND: Final = frozenset({"404", "NoSuchKey", "NotFound"})


def make_client(retry: RetryPolicy) -> Any:
    """An S3 client configured from the environment (see the module docstring)."""
    endpoint = os.environ.get("KUBEARTS_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    options: dict[str, Any] = {
        "retries": {"max_attempts": retry.attempts, "mode": "standard"},
        "connect_timeout": retry.timeout,
        "read_timeout": retry.timeout,
        "max_pool_connections": TRANSFER_THREADS * 2,
    }
    if endpoint:
        # S3-compatible stores rarely support virtual-hosted buckets on arbitrary hosts.
        options["s3"] = {"addressing_style": "path"}
    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        options["signature_version"] = UNSIGNED
    return boto3.client(
        "s3", endpoint_url=endpoint or None, region_name=region, config=Config(**options)
    )


def describe_error(exc: Exception, uri: str, reason: Reason) -> DatasetError:
    """Turn a botocore exception into a ``DatasetError`` naming the cause and the fix."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "?"))
        text = str(error.get("Message", "")) or code
        hint = ""
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            hint = "; check the credentials in spec.source.secretRef"
        elif code in ("NoSuchBucket",) or code in _NOT_FOUND:
            hint = "; check the bucket and key"
        return DatasetError(reason, f"{uri}: {code} ({text}){hint}")
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return DatasetError(
            reason, f"{uri}: incomplete credentials ({exc}); set both keys in the secret"
        )
    return DatasetError(reason, f"{uri}: unreachable ({exc}); check the endpoint")


@dataclass(frozen=True)
class PrefixDownload:
    """Objects of a prefix written below a folder."""

    files: int
    size: int


def head(client: Any, bucket: str, key: str, uri: str) -> int | None:
    """Size of ``key``, or ``None`` when there is no such object."""
    try:
        answer = client.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND:
            return None
        raise describe_error(exc, uri, "DownloadFailed") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise describe_error(exc, uri, "DownloadFailed") from None
    return int(answer["ContentLength"])


def list_prefix(client: Any, bucket: str, prefix: str, uri: str) -> Iterator[tuple[str, int]]:
    """``(key, size)`` of every object below ``prefix``, in key order."""
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"]), int(item["Size"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise describe_error(exc, uri, "DownloadFailed") from None


def download_object(
    client: Any,
    bucket: str,
    key: str,
    dest: Path,
    *,
    limits: Limits,
    retry: RetryPolicy,
    progress: Progress,
    sleep: Callable[[float], None] = time.sleep,
) -> Downloaded:
    """Stream one object to ``dest``, resuming with a range request after a broken body,
    within ``retry.deadline`` seconds.

    botocore retries failed requests itself; this loop covers a body that breaks off after
    the request succeeded, which botocore does not retry.
    """
    uri = f"s3://{bucket}/{key}"
    deadline = Deadline(retry.deadline, f"the object {uri}")
    sink = Sink(dest, limits, progress, deadline.what, deadline)
    return deadline.run(lambda: _fill(client, bucket, key, sink, retry, sleep))


def _fill(
    client: Any,
    bucket: str,
    key: str,
    sink: Sink,
    retry: RetryPolicy,
    sleep: Callable[[float], None],
) -> Downloaded:
    """Write the object into ``sink``, retrying broken bodies (see :func:`download_object`)."""
    uri = f"s3://{bucket}/{key}"
    last_error = ""
    try:
        for attempt in range(1, retry.attempts + 1):
            extra = {"Range": f"bytes={sink.written}-"} if sink.written else {}
            try:
                answer = client.get_object(Bucket=bucket, Key=key, **extra)
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                raise describe_error(exc, uri, "DownloadFailed") from None
            if not extra:
                sink.restart()
            sink.expect(sink.written + int(answer["ContentLength"]))
            try:
                for chunk in answer["Body"].iter_chunks(CHUNK):
                    sink.write(chunk)
            except (OSError, botocore.exceptions.BotoCoreError) as exc:
                last_error = f"connection lost after {sink.written} bytes: {exc}"
            else:
                if sink.total is None or sink.written == sink.total:
                    return sink.close()
                last_error = f"body ended after {sink.written} of {sink.total} bytes"
            sink.check_deadline()
            if attempt < retry.attempts:
                log.warning("reading %s failed: %s; retrying", uri, last_error)
                sleep(retry.delay(attempt))
    except BaseException:
        sink.abort()
        raise
    sink.abort()
    raise DatasetError(
        "DownloadFailed", f"{uri} could not be read after {retry.attempts} attempts: {last_error}"
    )


def download_prefix(
    client: Any,
    bucket: str,
    prefix: str,
    dest: Path,
    *,
    limits: Limits,
    progress: Progress,
    deadline: float | None = None,
) -> PrefixDownload:
    """Download every object below ``prefix`` into ``dest``, keeping relative key paths.

    Keys are checked like archive entries (no absolute paths, no ``..``) and the limits are
    applied to the listing before anything is downloaded. Folder markers (keys ending in
    ``/``) are skipped. The ``deadline`` (seconds) is checked before each object: the
    transfer threads cannot be abandoned like one download's, so one object's transfer is
    bounded by botocore's timeouts only.
    """
    uri = f"s3://{bucket}/{prefix}"
    clock = Deadline(deadline if deadline is not None else float("inf"), f"the prefix {uri}")
    limits = limits.for_volume(dest)
    plan: list[tuple[str, PurePosixPath, int]] = []
    total = 0
    for key, size in list_prefix(client, bucket, prefix, uri):
        if key.endswith("/"):
            continue
        try:
            relative = safe_relative(key[len(prefix) :])
        except UnsafeNameError as exc:
            raise DatasetError("UnsafeArchive", f"object key {key!r} {exc}") from None
        plan.append((key, relative, size))
        total += size
        limits.check_files(len(plan), f"the prefix {uri}")
        limits.check_bytes(total, f"the prefix {uri}")
    if not plan:
        raise DatasetError(
            "DownloadFailed",
            f"{uri}: there is no object with this key and no object below this prefix",
        )
    done = {"bytes": 0, "files": 0}
    lock = threading.Lock()

    def fetch(item: tuple[str, PurePosixPath, int]) -> None:
        key, relative, size = item
        clock.check()
        try:
            target = inside(dest, relative)
        except UnsafeNameError as exc:
            raise DatasetError("UnsafeArchive", f"object key {key!r} {exc}") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            client.download_file(bucket, key, str(target))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise describe_error(exc, f"s3://{bucket}/{key}", "DownloadFailed") from None
        with lock:
            done["bytes"] += size
            done["files"] += 1
            progress.update(
                "download", bytes_done=done["bytes"], total_bytes=total, files=done["files"]
            )

    with ThreadPoolExecutor(TRANSFER_THREADS) as pool:
        # list() re-raises the first failure of any transfer.
        list(pool.map(fetch, plan))
    progress.update("download", bytes_done=total, total_bytes=total, files=len(plan), final=True)
    return PrefixDownload(files=len(plan), size=total)


def check_target_prefix(client: Any, bucket: str, prefix: str, uri: str) -> list[str]:
    """Keys already below a target prefix; fail unless the prefix is empty or ours.

    A prefix holding objects but no ``.kubearts/ingest.json`` belongs to something else, and
    ingesting would delete its objects.
    """
    try:
        keys = [key for key, _ in list_prefix(client, bucket, prefix, uri)]
    except DatasetError as exc:
        raise DatasetError("InvalidTarget", exc.message) from None
    marker = f"{prefix}{METADATA_DIR}/"
    if keys and not any(key.startswith(marker) for key in keys):
        raise DatasetError(
            "InvalidTarget",
            f"{uri} already holds {len(keys)} objects and is not a KubeArts dataset "
            f"(no {METADATA_DIR}/ folder); choose an empty prefix",
        )
    return keys


def upload_tree(
    client: Any, root: Path, bucket: str, prefix: str, *, existing: list[str], progress: Progress
) -> int:
    """Upload every file below ``root`` to ``prefix``; data files whose key is in
    ``existing`` are there already (data folders are content-addressed) and are skipped.

    Data goes first and the metadata folder last, ``ingest.json`` at the very end, so an
    interrupted upload never leaves a new report describing data that is not all there.
    Nothing is deleted here: see :func:`delete_keys`.
    """
    files = sorted(p for p in root.rglob("*") if p.is_file())
    metadata = root / METADATA_DIR
    present = set(existing)
    data = [
        p
        for p in files
        if metadata not in p.parents and prefix + p.relative_to(root).as_posix() not in present
    ]
    report = metadata / "ingest.json"
    meta = [p for p in files if metadata in p.parents and p != report]
    total = sum(p.stat().st_size for p in [*data, *meta, report] if p.exists())
    done = {"bytes": 0, "files": 0}
    lock = threading.Lock()

    def put(path: Path) -> str:
        key = prefix + path.relative_to(root).as_posix()
        try:
            client.upload_file(str(path), bucket, key)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise describe_error(exc, f"s3://{bucket}/{key}", "UploadFailed") from None
        except boto3.exceptions.S3UploadFailedError as exc:
            raise DatasetError("UploadFailed", f"s3://{bucket}/{key}: {exc}") from None
        with lock:
            done["bytes"] += path.stat().st_size
            done["files"] += 1
            progress.update(
                "upload", bytes_done=done["bytes"], total_bytes=total, files=done["files"]
            )
        return key

    uploaded: set[str] = set()
    with ThreadPoolExecutor(TRANSFER_THREADS) as pool:
        uploaded.update(pool.map(put, data))
        uploaded.update(pool.map(put, meta))
    if report.exists():
        uploaded.add(put(report))
    progress.update("upload", bytes_done=total, total_bytes=total, files=len(uploaded), final=True)
    return len(uploaded)


def delete_keys(
    client: Any, bucket: str, keys: list[str], uri: str, reason: str = "UploadFailed"
) -> None:
    """Delete ``keys`` from ``bucket``, a thousand per request (the API's maximum); a key
    the store refuses is a :class:`DatasetError` with ``reason``."""
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        try:
            answer = client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise describe_error(exc, uri, reason) from None
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise DatasetError(
                reason,
                f"{uri}: {len(errors)} objects could not be deleted, e.g. {first.get('Key')}: "
                f"{first.get('Code')} ({first.get('Message')}); check the credentials' rights",
            )
