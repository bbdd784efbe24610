"""``publish``: write an immutable, reproducible train/eval version of an ingested data set.

A version lives in ``<dataset>/.kubearts/versions/<name>/``:

- ``train.jsonl``, ``eval.jsonl`` (always, possibly empty) and ``test.jsonl`` (only when
  the manifest marked samples TEST) — ModelArts-style lines, sorted by source::

      {"source": "flower_photos/roses/1.jpg", "usage": "TRAIN",
       "annotation": [{"type": "modelarts/image_classification", "name": "roses"}]}

  ``source`` is relative to the dataset directory;
- ``version.json`` — the :class:`~kubearts_dataset.result.VersionRecord`.

Publishing a name again with the same parameters over the same data is a no-op that
returns the stored record. Different parameters, or data whose digest changed since, are
refused with ``VersionImmutable``: a published version never changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Final

from kubearts_dataset.errors import DatasetError
from kubearts_dataset.formats import CLASSIFICATION_TYPE
from kubearts_dataset.ingest import CATALOGUE, REPORT
from kubearts_dataset.result import VersionRecord
from kubearts_dataset.split import Sample, UsagePolicy, parse_ratio, split_samples
from kubearts_dataset.store import VERSION_FILE, VERSIONS, DatasetStore

log = logging.getLogger(__name__)

_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9._]{0,61}[a-z0-9])?$")
#: Parameters that define a version; a republish must match all of them.
_IDENTITY: Final = ("trainRatio", "seed", "stratified", "usagePolicy", "datasetDigest")


def publish(
    store: DatasetStore,
    *,
    name: str,
    train_ratio: str,
    seed: int,
    stratified: bool = True,
    usage_policy: UsagePolicy = "honour",
) -> tuple[VersionRecord, bool]:
    """Publish version ``name``; returns the record and whether it was written now."""
    if not _NAME.match(name):
        raise DatasetError(
            "InvalidArgument",
            f"--version {name!r} is not a valid version name; use lower-case letters, digits, "
            "'-', '.' or '_' (at most 63 characters), e.g. v1",
        )
    try:
        ratio = parse_ratio(train_ratio)
    except ValueError as exc:
        raise DatasetError("InvalidArgument", f"--train-ratio: {exc}") from None
    if seed < 0:
        raise DatasetError("InvalidArgument", f"--seed {seed} is negative; use 0 or more")
    report_bytes = store.read(REPORT)
    if report_bytes is None:
        raise DatasetError(
            "NotIngested", f"{store.uri} has no {REPORT}; ingest the data set before publishing"
        )
    dataset_digest = str(json.loads(report_bytes)["digest"])
    wanted = {
        "trainRatio": float(ratio),
        "seed": seed,
        "stratified": stratified,
        "usagePolicy": usage_policy,
        "datasetDigest": dataset_digest,
    }
    version_path = f"{VERSIONS}/{name}/{VERSION_FILE}"
    existing = store.read(version_path)
    if existing is not None:
        return _same_or_refuse(name, json.loads(existing), wanted), False

    catalogue = store.read(CATALOGUE)
    if catalogue is None:
        raise DatasetError("NotIngested", f"{store.uri} has no {CATALOGUE}; ingest it again")
    samples = [
        Sample(path=str(item["path"]), label=str(item["label"]), usage=str(item.get("usage", "")))
        for item in map(json.loads, catalogue.decode("utf-8").splitlines())
    ]
    split = split_samples(
        samples, train_ratio=ratio, seed=seed, stratified=stratified, usage_policy=usage_policy
    )
    files: list[tuple[str, bytes]] = [
        ("train.jsonl", _manifest(split.train, "TRAIN")),
        ("eval.jsonl", _manifest(split.eval, "EVAL")),
    ]
    if split.test:
        files.append(("test.jsonl", _manifest(split.test, "TEST")))
    record: VersionRecord = {
        "name": name,
        "trainRatio": float(ratio),
        "seed": seed,
        "stratified": stratified,
        "split": ratio < 1,
        "usagePolicy": usage_policy,
        "datasetDigest": dataset_digest,
        "trainCount": len(split.train),
        "evalCount": len(split.eval),
        "testCount": len(split.test),
        "excludedCount": len(split.excluded),
        "classes": split.per_class(),
        "warnings": split.warnings,
        "manifests": {
            filename.removesuffix(".jsonl"): f"{VERSIONS}/{name}/{filename}"
            for filename, _ in files
        },
        "manifestDigest": "sha256:"
        + hashlib.sha256(b"".join(data for _, data in files)).hexdigest(),
    }
    body = json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if not store.write_version(name, [*files, (VERSION_FILE, body.encode("utf-8"))]):
        # Published concurrently by someone else: judge against what they wrote.
        stored = store.read(version_path)
        assert stored is not None
        return _same_or_refuse(name, json.loads(stored), wanted), False
    log.info(
        "published version %s: %d train, %d eval", name, record["trainCount"], record["evalCount"]
    )
    return record, True


def _same_or_refuse(
    name: str, stored: VersionRecord, wanted: Mapping[str, object]
) -> VersionRecord:
    differences = [
        f"{key} {stored.get(key)!r} → {wanted[key]!r}"
        for key in _IDENTITY
        if stored.get(key) != wanted[key]
    ]
    if differences:
        raise DatasetError(
            "VersionImmutable",
            f"version {name} is already published and cannot change ({'; '.join(differences)}); "
            "publish a new version name instead",
        )
    return stored


def _manifest(samples: list[Sample], usage: str) -> bytes:
    lines = (
        json.dumps(
            {
                "source": sample.path,
                "usage": usage,
                "annotation": [{"type": CLASSIFICATION_TYPE, "name": sample.label}],
            },
            ensure_ascii=False,
        )
        + "\n"
        for sample in samples
    )
    return "".join(lines).encode("utf-8")
