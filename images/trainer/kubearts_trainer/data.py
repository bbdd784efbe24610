"""Training data: the dataset worker's manifests, the class order, and the tf.data pipelines.

A published dataset version holds ``train.jsonl`` and ``eval.jsonl``, one JSON object per line::

    {"source": "digits/3/0042.png", "usage": "TRAIN",
     "annotation": [{"type": "modelarts/image_classification", "name": "3"}]}

``source`` is relative to the dataset directory (``--dataset-root``). The classes are the
sorted names of the training split (Python string order, which is the order of their UTF-8
bytes); logit *i* is class *i*. Evaluation samples of a class the training split lacks cannot
be scored and are left out with a warning.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

from kubearts_trainer.errors import TrainerError

#: Share of the container's memory limit the decoded images may take to be cached in memory.
CACHE_FRACTION: Final = 0.4
ANNOTATION_TYPE: Final = "modelarts/image_classification"


@dataclass(frozen=True)
class Manifest:
    """One manifest file: where it is, its digest, and its samples."""

    path: Path
    sha256: str
    sources: list[str]
    labels: list[str]


@dataclass(frozen=True)
class Data:
    """Both splits resolved to files and class indices."""

    classes: list[str]
    train_files: list[str]
    train_labels: list[int]
    eval_files: list[str]
    eval_labels: list[int]
    manifests: dict[str, Manifest]
    warnings: list[str] = field(default_factory=list)


def read_manifest(path: Path) -> Manifest:
    """Parse a manifest; a missing file or a bad line is ``DataUnavailable``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrainerError(
            "DataUnavailable", f"cannot read the manifest {path}: {exc.strerror or exc}"
        ) from exc
    sources: list[str] = []
    labels: list[str] = []
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            source, label = _sample(record)
        except (ValueError, TypeError, KeyError) as exc:
            raise TrainerError(
                "DataUnavailable", f"{path}:{number} is not a manifest line: {exc}"
            ) from exc
        sources.append(source)
        labels.append(label)
    return Manifest(path, hashlib.sha256(raw).hexdigest(), sources, labels)


def _sample(record: Any) -> tuple[str, str]:
    if not isinstance(record, dict) or not isinstance(record.get("source"), str):
        raise ValueError("expected an object with a string 'source'")
    annotations = record.get("annotation")
    if not isinstance(annotations, list) or len(annotations) != 1:
        raise ValueError("expected exactly one annotation")
    annotation = annotations[0]
    if not isinstance(annotation, dict) or not isinstance(annotation.get("name"), str):
        raise ValueError("the annotation needs a string 'name'")
    if annotation.get("type", ANNOTATION_TYPE) != ANNOTATION_TYPE:
        raise ValueError(f"annotation type {annotation.get('type')!r} is not {ANNOTATION_TYPE}")
    return record["source"], annotation["name"]


def resolve(root: Path, source: str, manifest: Path) -> str:
    """The file of ``source`` below ``root``; paths leaving the dataset are refused."""
    relative = PurePosixPath(source)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise TrainerError(
            "DataUnavailable",
            f"{manifest}: source {source!r} must be a path inside the dataset directory",
        )
    return str(root.joinpath(*relative.parts))


def load(train_manifest: Path, eval_manifest: Path, dataset_root: Path) -> Data:
    """Read both manifests, fix the class order and check every image file exists."""
    if not dataset_root.is_dir():
        raise TrainerError(
            "DataUnavailable", f"the dataset directory {dataset_root} does not exist"
        )
    train = read_manifest(train_manifest)
    evaluation = read_manifest(eval_manifest)
    if not train.sources:
        raise TrainerError("DataUnavailable", f"the training manifest {train_manifest} is empty")
    classes = sorted(set(train.labels))
    index = {name: i for i, name in enumerate(classes)}
    warnings: list[str] = []
    train_files = [resolve(dataset_root, s, train_manifest) for s in train.sources]
    eval_files: list[str] = []
    eval_labels: list[int] = []
    unknown: dict[str, int] = {}
    for source, label in zip(evaluation.sources, evaluation.labels, strict=True):
        if label not in index:
            unknown[label] = unknown.get(label, 0) + 1
            continue
        eval_files.append(resolve(dataset_root, source, eval_manifest))
        eval_labels.append(index[label])
    if unknown:
        names = ", ".join(f"{name} ({count})" for name, count in sorted(unknown.items()))
        warnings.append(f"evaluation samples of classes without training samples left out: {names}")
    if not eval_files:
        warnings.append("the evaluation split is empty: no evaluation figures")
    missing = [f for f in (*train_files, *eval_files) if not Path(f).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise TrainerError(
            "DataUnavailable",
            f"{len(missing)} image files named in the manifests do not exist below "
            f"{dataset_root}: {shown}; check --dataset-root",
        )
    return Data(
        classes=classes,
        train_files=train_files,
        train_labels=[index[label] for label in train.labels],
        eval_files=eval_files,
        eval_labels=eval_labels,
        manifests={"train": train, "eval": evaluation},
        warnings=warnings,
    )


def decoded_bytes(count: int, image_size: int) -> int:
    """Memory the resized images of ``count`` samples take as uint8 RGB."""
    return count * image_size * image_size * 3


def should_cache(count: int, image_size: int, memory_limit: int) -> bool:
    """Whether the decoded images fit the cache share of the container's memory."""
    return decoded_bytes(count, image_size) <= CACHE_FRACTION * memory_limit


def pipeline(
    files: list[str],
    labels: list[int],
    *,
    classes: int,
    image_size: int,
    batch_size: int,
    training: bool,
    seed: int,
    cache: bool,
    threads: int,
) -> Any:
    """A ``tf.data.Dataset`` of ``(float32 NHWC 0-255 images, one-hot labels)`` batches.

    Files are decoded in parallel (JPEG, PNG, BMP, GIF's first frame; grey and RGBA become
    RGB), resized bilinearly to ``image_size`` and rounded to uint8 — what a client sending
    real pixels gives the served model. Decoded images are cached in memory when ``cache``;
    otherwise the file list is shuffled before decoding so no big buffer is needed. Training
    batches are full (the remainder is dropped when there is more than one batch).
    """
    import tensorflow as tf

    size = [image_size, image_size]

    def decode(path: Any, label: Any) -> tuple[Any, Any]:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(image, size)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        image.set_shape([image_size, image_size, 3])
        return image, label

    def to_model(images: Any, labels: Any) -> tuple[Any, Any]:
        return tf.cast(images, tf.float32), tf.one_hot(labels, classes)

    dataset = tf.data.Dataset.from_tensor_slices((files, labels))
    if training and not cache:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(decode, num_parallel_calls=threads, deterministic=not training)
    if cache:
        dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    drop = training and len(files) > batch_size
    dataset = dataset.batch(batch_size, drop_remainder=drop, num_parallel_calls=threads)
    dataset = dataset.map(to_model, num_parallel_calls=threads)
    dataset = dataset.prefetch(2)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.deterministic = not training
    return dataset.with_options(options)


def steps_per_epoch(count: int, batch_size: int) -> int:
    """Training steps per epoch for :func:`pipeline` with ``training=True``."""
    return max(1, count // batch_size) if count > batch_size else 1
