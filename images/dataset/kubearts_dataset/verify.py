"""Decoding every image with Pillow and hashing every file.

``Image.verify()`` alone checks structure (and PNG checksums) but does not decode pixel
data, so a truncated JPEG passes it; each image is therefore verified and then fully loaded.
Large sets are checked on worker processes (see :func:`check_files`), as many as the pod's
CPU quota allows (:func:`cpu_budget`): a node's CPU count says nothing about a pod's share,
and each decoding process holds up to one image of ``max_pixels`` in memory.

An image with more than ``max_pixels`` pixels is never decoded: Pillow reads the size from
the header and refuses it (``DecompressionBombWarning``/``Error``) before allocating
anything, and the file is listed as invalid.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
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
DEFAULT_MAX_PIXELS: Final = 64_000_000
"""64 megapixels: ten times a large training photo; 256 MB decoded as RGBA."""
CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
PROC_CGROUP: Final = Path("/proc/self/cgroup")
_V1_CPU_MOUNTS: Final = ("cpu,cpuacct", "cpu", "cpuacct,cpu")
"""Where cgroup v1 mounts the cpu controller below the root, depending on the distribution."""

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


def check_file(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> FileCheck:
    """Hash ``path`` and decode it as an image of at most ``max_pixels`` pixels."""
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        return FileCheck(_hash_stream(path), size, f"larger than {MAX_IMAGE_BYTES} bytes")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    return FileCheck(digest, size, *_decode(data, max_pixels))


def _decode(data: bytes, max_pixels: int) -> tuple[str | None, str | None]:
    if not data:
        return "empty file", None
    # Pillow's limit is a process global; set here so that it holds in any process that
    # decodes, worker processes included (one process only ever uses one limit).
    Image.MAX_IMAGE_PIXELS = max_pixels
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


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity), or the machine's CPU count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_budget(
    *,
    cgroup_root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_CGROUP,
    cpus: int | None = None,
) -> int:
    """Processes worth running at once: the CPU quota of this process's cgroup, rounded up,
    and never more than the usable CPUs (``cpus``, by default :func:`usable_cpus`).

    A pod with ``limits.cpu: 2`` on a 64-core node sees 64 CPUs but gets the time of 2;
    64 decoding processes would only be throttled, each holding an image in memory.
    """
    available = usable_cpus() if cpus is None else cpus
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    if quota is None:
        return available
    return max(1, min(available, math.ceil(quota)))


def cgroup_cpu_quota(cgroup_root: Path, proc_cgroup: Path) -> float | None:
    """CPUs' worth of time the cgroup may use (``cpu.max`` in v2, ``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us`` in v1); ``None`` when unlimited or unknown.

    The process's own cgroup (from ``proc_cgroup``) is looked at first, then the mount's
    root, which is what a container with its own cgroup namespace sees.
    """
    for folder in _cgroup_folders(cgroup_root, proc_cgroup):
        v2 = folder / "cpu.max"
        if v2.is_file():
            quota, _, period = v2.read_text().partition(" ")
            return None if quota == "max" else _ratio(quota, period)
        v1 = folder / "cpu.cfs_quota_us"
        if v1.is_file():
            quota = v1.read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text()
            return None if quota.startswith("-") else _ratio(quota, period)
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _cgroup_folders(cgroup_root: Path, proc_cgroup: Path) -> Iterator[Path]:
    """Folders that may hold this process's CPU limits, the most specific first."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.strip("/")
        if hierarchy == "0" and not controllers:
            yield cgroup_root / relative
        elif "cpu" in controllers.split(","):
            for mount in _V1_CPU_MOUNTS:
                yield cgroup_root / mount / relative
    yield cgroup_root
    for mount in _V1_CPU_MOUNTS:
        yield cgroup_root / mount


def check_files(
    paths: Sequence[Path],
    *,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_done: Callable[[int, FileCheck], None] | None = None,
) -> list[FileCheck]:
    """Check ``paths``, on several processes when there are many; results keep their order.

    Decoding many small images is bound by Python code, not by I/O, so threads do not help;
    worker processes do. They are started by a fork server (safe in a process with
    threads). Small sets are checked in this process, where start-up would cost more.
    """
    count = workers or cpu_budget()
    check = functools.partial(check_file, max_pixels=max_pixels)
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
                for result in pool.map(check, paths, chunksize=chunk):
                    record(result)
        except (OSError, BrokenProcessPool) as exc:
            # E.g. no writable temporary folder for the fork server's socket: slower, not
            # wrong, to carry on in this process from where the pool stopped.
            log.warning("image checks continue in one process: %s", exc)
    for path in paths[len(results) :]:
        record(check(path))
    return results
