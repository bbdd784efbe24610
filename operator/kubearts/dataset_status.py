"""What the dataset worker's results mean for a Dataset's status (pure).

The worker (``images/dataset``) reports its results as documents; the functions here turn
them into status fields and conditions: an ingest into counts, classes, digest and the
files it excluded; a publish into a ``status.versions`` entry; a failure into the stage it
belongs to (Downloaded or Verified). :mod:`kubearts.dataset_plan` decides when each is
used. The worker's contract (result documents, progress lines, exit codes) is described in
``images/dataset/README.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

from kubearts.conditions import ConditionUpdate, rfc3339
from kubearts.constants import (
    COND_DOWNLOADED,
    COND_READY,
    COND_VERIFIED,
    FALSE,
    REASON_CHECKSUM_MISMATCH,
    REASON_DOWNLOAD_FAILED,
    REASON_DOWNLOADED,
    REASON_INVALID_FORMAT,
    REASON_INVALID_SOURCE,
    REASON_LIMIT_EXCEEDED,
    REASON_NO_IMAGES_FOUND,
    REASON_NOT_VERIFIED,
    REASON_UNSAFE_ARCHIVE,
    REASON_VERSION_IMMUTABLE,
    TRUE,
)
from kubearts.dataset_spec import DatasetPlan, VersionPlan
from kubearts.workloads import progress_event

__all__ = [
    "EXIT_REASONS",
    "failure_updates",
    "ingest_fields",
    "progress_fields",
    "progress_from_log",
    "published_versions",
    "ready",
    "result_from_fields",
    "result_from_status",
    "verified_message",
    "version_conflicts",
    "version_entry",
]

#: ``status.invalidFiles`` holds at most this many entries (the CRD's maxItems).
MAX_LISTED_INVALID: Final = 100
MAX_WARNINGS: Final = 100

#: The worker's exit codes (images/dataset README), for a pod that left no result.
EXIT_REASONS: Final[Mapping[int, str]] = {
    1: "InternalError",
    2: "InvalidArgument",
    10: REASON_DOWNLOAD_FAILED,
    11: REASON_CHECKSUM_MISMATCH,
    12: REASON_UNSAFE_ARCHIVE,
    13: REASON_NO_IMAGES_FOUND,
    14: REASON_LIMIT_EXCEEDED,
    15: REASON_INVALID_SOURCE,
    16: REASON_INVALID_FORMAT,
    17: "InvalidTarget",
    18: "UploadFailed",
    20: REASON_VERSION_IMMUTABLE,
    21: "NotIngested",
    30: "RemoveFailed",
}
#: Failures of getting the data (Downloaded=False); the others happen once it is here
#: (Downloaded=True, Verified=False). LimitExceeded counts as not downloaded: the limits
#: apply to the download as well as to the unpacked data, and either way nothing was kept.
_DOWNLOAD_REASONS: Final = frozenset(
    {REASON_DOWNLOAD_FAILED, REASON_CHECKSUM_MISMATCH, REASON_INVALID_SOURCE, REASON_LIMIT_EXCEEDED}
)
_VERIFY_REASONS: Final = frozenset(
    {REASON_UNSAFE_ARCHIVE, REASON_NO_IMAGES_FOUND, REASON_INVALID_FORMAT}
)


def ready(
    status: Literal["True", "False", "Unknown"], reason: str, message: str
) -> ConditionUpdate:
    """The Ready condition to set."""
    return ConditionUpdate(COND_READY, status, reason, message)


# --- the worker's results ----------------------------------------------------------------------


def progress_from_log(log: str) -> dict[str, Any] | None:
    """The last ``progress`` line of the dataset worker's log, in ``status.progress``'s shape."""
    event = progress_event(log)
    return None if event is None else progress_fields(event)


def progress_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "phase": event.get("phase"),
        "bytes": _count(event.get("bytes")),
        "totalBytes": _count(event.get("totalBytes")),
        "files": _count(event.get("files")),
        "totalFiles": _count(event.get("totalFiles")),
    }


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


# --- results into status ---------------------------------------------------------------------


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def ingest_fields(result: Mapping[str, Any], plan: DatasetPlan) -> dict[str, Any]:
    """Status fields from a successful ingest result (the worker's ``IngestResult``)."""
    fields: dict[str, Any] = {
        "location": plan.target.uri,
        # What defines the data (source, checksum, format, storage): the spec it was read for.
        "dataKey": plan.data_key,
        "sampleCount": int(result.get("sampleCount") or 0),
        "classCount": int(result.get("classCount") or 0),
        "sizeBytes": int(result.get("sizeBytes") or 0),
        "digest": str(result.get("digest") or ""),
        "invalidFileCount": int(result.get("invalidCount") or 0),
        "invalidFiles": [
            {"path": str(item.get("path", "")), "reason": str(item.get("reason", ""))}
            for item in (result.get("invalidFiles") or [])[:MAX_LISTED_INVALID]
            if isinstance(item, Mapping)
        ],
    }
    classes = result.get("classes")
    if isinstance(classes, Mapping | list):
        # name → count from the worker; a list of names when rebuilt from the status.
        fields["classes"] = sorted(str(name) for name in classes)
    archive_bytes = result.get("archiveBytes")
    if isinstance(archive_bytes, int):
        files = fields["sampleCount"] + fields["invalidFileCount"]
        fields["progress"] = {"bytes": archive_bytes, "files": files, "totalFiles": files}
    return fields


def verified_message(result: Mapping[str, Any]) -> str:
    message = (
        f"{result.get('sampleCount', 0)} images of {result.get('classCount', 0)} classes, "
        f"{result.get('sizeBytes', 0)} bytes"
    )
    invalid = int(result.get("invalidCount") or 0)
    if invalid:
        message += f"; {invalid} files excluded (see status.invalidFiles)"
    return message


def result_from_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "sampleCount": fields.get("sampleCount", 0),
        "classCount": fields.get("classCount", 0),
        "sizeBytes": fields.get("sizeBytes", 0),
        "invalidCount": fields.get("invalidFileCount", 0),
    }


def result_from_status(status: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": "Succeeded",
        **result_from_fields(status),
        "digest": status.get("digest"),
        "classes": list(status.get("classes") or []),
        "invalidFiles": list(status.get("invalidFiles") or []),
    }


def version_entry(
    result: Mapping[str, Any], plan: DatasetPlan, publish_time: str | None
) -> dict[str, Any]:
    """A ``status.versions`` entry from a successful publish result (``VersionRecord``).

    ``split: false`` (and ``trainRatio: 1``) marks an unsplit version, which has no eval
    list; training on it has nothing to evaluate with and is refused there.
    """
    split = bool(result.get("split", _float(result.get("trainRatio")) != 1.0))
    manifests: dict[str, str] = {}
    for usage, relative in (result.get("manifests") or {}).items():
        if usage == "eval" and not split:
            continue
        manifests[str(usage)] = plan.target.child_uri(str(relative))
    per_class: dict[str, dict[str, int]] = {}
    for name, counts in (result.get("classes") or {}).items():
        if isinstance(counts, Mapping):
            per_class[str(name)] = {
                key: int(counts.get(key) or 0)
                for key in ("train", "eval", "test")
                if key != "test" or counts.get("test")
            }
    entry: dict[str, Any] = {
        "name": str(result.get("name")),
        "trainRatio": _float(result.get("trainRatio")),
        "seed": int(result.get("seed") or 0),
        "stratified": bool(result.get("stratified", True)),
        "split": split,
        "trainCount": int(result.get("trainCount") or 0),
        "evalCount": int(result.get("evalCount") or 0),
        "perClass": per_class,
        "manifests": manifests,
        "manifestDigest": str(result.get("manifestDigest") or ""),
        "published": True,
        "publishTime": publish_time or rfc3339(),
        "warnings": [str(w) for w in (result.get("warnings") or [])][:MAX_WARNINGS],
    }
    if result.get("testCount"):
        entry["testCount"] = int(result["testCount"])
    if result.get("datasetDigest"):
        # The data the version was split from: its files stay as long as the version does.
        entry["datasetDigest"] = str(result["datasetDigest"])
    return entry


def failure_updates(result: Mapping[str, Any]) -> list[ConditionUpdate]:
    """Conditions for a failed ingest: which stage failed, with the worker's reason."""
    reason = str(result.get("reason") or "JobFailed")
    message = str(result.get("message") or "the ingest Job failed")
    if reason in _DOWNLOAD_REASONS:
        downloaded = ConditionUpdate(COND_DOWNLOADED, FALSE, reason, message)
        verified = ConditionUpdate(
            COND_VERIFIED, FALSE, REASON_NOT_VERIFIED, "the data was not downloaded"
        )
    elif reason in _VERIFY_REASONS:
        downloaded = ConditionUpdate(COND_DOWNLOADED, TRUE, REASON_DOWNLOADED, "the data was read")
        verified = ConditionUpdate(COND_VERIFIED, FALSE, reason, message)
    else:
        downloaded = ConditionUpdate(COND_DOWNLOADED, FALSE, reason, message)
        verified = ConditionUpdate(COND_VERIFIED, FALSE, REASON_NOT_VERIFIED, message)
    return [downloaded, verified, ready(FALSE, reason, message)]


def published_versions(status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        str(v.get("name")): dict(v)
        for v in status.get("versions") or []
        if isinstance(v, Mapping) and v.get("published")
    }


def version_conflicts(
    versions: Iterable[VersionPlan], published: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """One message per spec version that would change a published version's split."""
    problems: list[str] = []
    for version in versions:
        record = published.get(version.name)
        if record is None:
            continue
        changed = []
        if _float(record.get("trainRatio")) != version.train_ratio:
            changed.append(
                f"trainRatio {version.train_ratio:g} (published {record.get('trainRatio')})"
            )
        if record.get("seed", 0) != version.seed:
            changed.append(f"seed {version.seed} (published {record.get('seed')})")
        if record.get("stratified", True) != version.stratified:
            changed.append(
                f"stratified {str(version.stratified).lower()} "
                f"(published {str(record.get('stratified')).lower()})"
            )
        if changed:
            problems.append(
                f"{version.field} ({version.name}): {', '.join(changed)}; version "
                f"{version.name!r} is published and immutable: restore its values, or add the "
                "new split as a new version with another name"
            )
    return problems
