"""Inputs for verification: images of the evaluation split, or seeded random pixels.

Images are prepared exactly as the trainer's pipeline prepares them (and as a client sends
them): decoded to RGB (grey and RGBA become RGB, a GIF's first frame), resized bilinearly to
the model's image size, rounded to 0-255 and given as float32. The first ``samples`` lines of
the manifest are used, in order, so a verification is repeatable.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import tensorflow as tf

from kubearts_converter.errors import ConverterError

SEED: Final = 20240601
DEFAULT_SIZE: Final = 224


def manifest_sources(manifest: Path, root: Path, count: int) -> list[Path]:
    """The image files of the manifest's first ``count`` samples below ``root``."""
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConverterError(
            "SourceUnavailable",
            f"--verify-manifest {manifest} cannot be read: {exc.strerror or exc}",
        ) from exc
    files: list[Path] = []
    for number, line in enumerate(lines, 1):
        if len(files) == count:
            break
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            source = record["source"]
            if not isinstance(source, str):
                raise TypeError("source is not a string")
        except (ValueError, TypeError, KeyError) as exc:
            raise ConverterError(
                "SourceUnavailable",
                f"--verify-manifest {manifest}:{number} is not a manifest line: {exc}",
            ) from exc
        relative = PurePosixPath(source)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ConverterError(
                "SourceUnavailable",
                f"--verify-manifest {manifest}:{number}: source {source!r} must be a path "
                "inside --verify-root",
            )
        path = root.joinpath(*relative.parts)
        if not path.is_file():
            raise ConverterError(
                "SourceUnavailable",
                f"--verify-manifest {manifest}:{number}: {path} does not exist; "
                "check --verify-root",
            )
        files.append(path)
    if not files:
        raise ConverterError("SourceUnavailable", f"--verify-manifest {manifest} has no samples")
    return files


def load_images(files: list[Path], height: int, width: int) -> npt.NDArray[np.float32]:
    """The images as float32 [n, height, width, 3], RGB 0-255 (the trainer's pipeline)."""
    batch = []
    for path in files:
        try:
            image = tf.io.decode_image(
                tf.io.read_file(str(path)), channels=3, expand_animations=False
            )
        except tf.errors.OpError as exc:
            raise ConverterError(
                "SourceUnavailable", f"cannot decode the image {path}: {exc.message}"
            ) from exc
        image = tf.image.resize(image, (height, width))
        image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        batch.append(tf.cast(image, tf.float32).numpy())
    return np.stack(batch).astype(np.float32)


def random_inputs(shape: tuple[int, ...], seed: int = SEED) -> npt.NDArray[np.float32]:
    """Seeded random whole pixel values 0-255 as float32, of the given (static) shape."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=shape).astype(np.float32)


def image_size(dims: tuple[int, ...] | None, card: dict[str, Any] | None) -> tuple[int, int]:
    """The height and width to feed an NHWC image input: fixed by its shape, else the model
    card's ``inputs[0].imageSize``, else 224."""
    if dims is not None and len(dims) == 4 and dims[1] > 0 and dims[2] > 0:
        return dims[1], dims[2]
    try:
        size = card["inputs"][0]["imageSize"] if card else None
        if size:
            return int(size[0]), int(size[1])
    except (KeyError, IndexError, TypeError, ValueError):
        pass
    return DEFAULT_SIZE, DEFAULT_SIZE
