"""Result documents and how they are written.

A run ends with one JSON document, in up to three places: the ``--result`` file (the
operator passes ``/dev/termination-log``, which Kubernetes truncates at 4096 bytes, so this
copy is compacted to fit), a ``result`` event on standard output (the whole document), and
for a successful ingest the full report in ``<dataset>/.kubearts/ingest.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final, Literal, NotRequired, TypedDict

from kubearts_dataset.errors import Detail, Reason

TERMINATION_LOG_LIMIT: Final = 4096
#: Fields that may be shortened (lists) or dropped (mappings) to fit the limit, in order.
_SHRINKABLE: Final = ("invalidFiles", "warnings", "classes")


class InvalidFile(TypedDict):
    """A file (or manifest line, as ``manifest:line``) that was excluded, and why."""

    path: str
    reason: str


class IngestResult(TypedDict):
    """The result of a successful ``ingest``."""

    status: Literal["Succeeded"]
    reason: Literal["Ingested"]
    message: str
    source: str
    target: str
    format: Literal["ImageFolder", "Manifest"]
    sampleCount: int
    classCount: int
    classes: dict[str, int]
    sizeBytes: int
    digest: str
    archiveBytes: int
    archiveSha256: str | None
    invalidCount: int
    invalidFiles: list[InvalidFile]
    unreferencedCount: int
    dataFolder: str
    """``data/<key>``: where the data lies, relative to the dataset directory; ``dataRoot``,
    ``manifest`` and the invalid files' paths are inside it."""
    dataRoot: str
    manifest: str | None
    report: str
    catalogue: str
    durationSeconds: float


class ClassSplit(TypedDict):
    """Samples of one class per usage in a published version."""

    train: int
    eval: int
    test: int


class VersionRecord(TypedDict):
    """``version.json`` of a published version; also the body of a ``publish`` result."""

    name: str
    trainRatio: float
    seed: int
    stratified: bool
    split: bool
    usagePolicy: Literal["honour", "ignore"]
    datasetDigest: str
    trainCount: int
    evalCount: int
    testCount: int
    excludedCount: int
    classes: dict[str, ClassSplit]
    warnings: list[str]
    manifests: dict[str, str]
    manifestDigest: str


class FailureResult(TypedDict):
    """The result of any failed run."""

    status: Literal["Failed"]
    reason: Reason
    message: str
    detail: NotRequired[Detail]
    """The specific cause within ``reason``, where one is named (e.g. ``RatioExceeded``)."""


def compact(document: dict[str, Any], limit: int = TERMINATION_LOG_LIMIT) -> str:
    """Serialise ``document`` in at most ``limit`` UTF-8 bytes.

    Long lists are cut and big mappings dropped (their names go to ``truncated``; the full
    data is in the report file), and as a last resort the message is shortened.
    """
    data = dict(document)
    text = _dumps(data)
    truncated: list[str] = []
    for key in _SHRINKABLE:
        value = data.get(key)
        if _fits(text, limit) or value is None:
            continue
        if key not in truncated:
            truncated.append(key)
        data["truncated"] = truncated
        if isinstance(value, list):
            items = list(value)
            while items and not _fits(_dumps(data), limit):
                items = items[: len(items) // 2]
                data[key] = items
        if not _fits(_dumps(data), limit):
            data.pop(key)
        text = _dumps(data)
    if not _fits(text, limit) and isinstance(data.get("message"), str):
        overflow = len(text.encode()) - limit
        message = str(data["message"])
        data["message"] = message[: max(0, len(message) - overflow - 16)] + "…"
        text = _dumps(data)
    return text


def write_result(path: str | None, document: dict[str, Any]) -> None:
    """Write the compact document to ``path`` (if given); never raises for a bad path."""
    if not path:
        return
    try:
        Path(path).write_text(compact(document), encoding="utf-8")
    except OSError as exc:
        # The result is also on standard output; failing here would hide the real outcome.
        os.write(2, f"cannot write the result to {path}: {exc}\n".encode())


def write_json_atomic(path: Path, document: Any) -> None:
    """Write ``document`` as indented JSON via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(
        json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    temporary.replace(path)


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _fits(text: str, limit: int) -> bool:
    return len(text.encode("utf-8")) <= limit
