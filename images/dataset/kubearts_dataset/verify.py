"""Decoding every image with Pillow and hashing every file.

``Image.verify()`` alone checks structure (and PNG checksums) but does not decode pixel
data, so a truncated JPEG passes it; each image is therefore verified and then fully loaded.
Large sets are checked on worker processes (see :func:`check_files`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image, ImageFile, UnidentifiedImageError

SUPPORTED_FORMATS: Final = frozenset({"JPEG", "PNG", "BMP", "GIF", "WEBP"})
"""Formats training images may have: those the trainer's decoders read."""
PARALLEL_THRESHOLD: Final = 500
"""Below this many files, checking in-process beats starting worker processes."""
MAX_IMAGE_BYTES: Final = 256 * 1024**2
"""Files larger than this are not decoded (and not taken as images)."""

_IMAGE_SIGNATURES: Final = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF")

log = logging.getLogger(__name__)

# A truncated image must fail, not be padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class FileCheck:
    """The outcome of checking one file."""

    sha256: str
    size: int
    error: str | None
    """Why the file is not a usable image, or ``None`` when it is."""
    format: str | None = None


def check_file(path: Path) -> FileCheck:
    """Hash ``path`` and decode it as an image."""
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        return FileCheck(_hash_stream(path), size, f"larger than {MAX_IMAGE_BYTES} bytes")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    return FileCheck(digest, size, *_decode(data))


def _decode(data: bytes) -> tuple[str | None, str | None]:
    if not data:
        return "empty file", None
    try:
        with warnings.catch_warnings():
            # Pillow warns before it refuses; treat the warning level as refusal too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format
                image.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except UnidentifiedImageError:
        if data.startswith(_IMAGE_SIGNATURES):
            return "corrupt image: the header of a known format is damaged", None
        return "not an image (no known image format)", None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"too many pixels to decode safely ({exc})", None
    except Exception as exc:  # Pillow decoders raise many types for bad data
        return f"corrupt image: {exc or type(exc).__name__}", None
    if fmt not in SUPPORTED_FORMATS:
        return (
            f"unsupported image format {fmt}; use one of {', '.join(sorted(SUPPORTED_FORMATS))}",
            fmt,
        )
    return None, fmt


def _hash_stream(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            hasher.update(chunk)
    return hasher.hexdigest()


def default_workers() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_files(
    paths: Sequence[Path],
    *,
    workers: int | None = None,
    on_done: Callable[[int, FileCheck], None] | None = None,
) -> list[FileCheck]:
    """Check ``paths``, on several processes when there are many; results keep their order.

    Decoding many small images is bound by Python code, not by I/O, so threads do not help;
    worker processes do. They are started by a fork server (safe in a process with
    threads). Small sets are checked in this process, where start-up would cost more.
    """
    count = workers or default_workers()
    results: list[FileCheck] = []

    def record(check: FileCheck) -> None:
        results.append(check)
        if on_done is not None:
            on_done(len(results) - 1, check)

    if count > 1 and len(paths) >= PARALLEL_THRESHOLD:
        chunk = max(8, min(256, len(paths) // (count * 8)))
        try:
            context = multiprocessing.get_context("forkserver")
            with ProcessPoolExecutor(count, mp_context=context) as pool:
                for check in pool.map(check_file, paths, chunksize=chunk):
                    record(check)
        except (OSError, BrokenProcessPool) as exc:
            # E.g. no writable temporary folder for the fork server's socket: slower, not
            # wrong, to carry on in this process from where the pool stopped.
            log.warning("image checks continue in one process: %s", exc)
    for path in paths[len(results) :]:
        record(check_file(path))
    return results
