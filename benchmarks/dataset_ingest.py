"""Ingest throughput next to ``tar -x`` of the same archive, measured in the same run.

Builds two tar.gz archives — scikit-learn's digits (1797 8x8 PNGs in 10 class folders) and a
generated set of 10,000 small images (64x64, half PNG, half JPEG, 10 classes) — then times,
for each, ``python -m kubearts_dataset ingest`` (download from a local file, unpack with all
checks, decode every image, hash, write the catalogue) and ``tar -xzf`` into a fresh folder.
Each measurement is the median of ``--repeat`` runs.

Needs numpy and scikit-learn besides the image's own dependencies (the development
environment has them): ``python benchmarks/dataset_ingest.py``.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def build_digits(path: Path) -> int:
    """Digits as ``digits/<class>/<n>.png`` in a tar.gz; returns the image count."""
    data = load_digits()
    with tarfile.open(path, "w:gz") as tar:
        for index, (pixels, label) in enumerate(zip(data.images, data.target, strict=True)):
            image = Image.fromarray((pixels * (255 / 16)).astype(np.uint8), mode="L")
            _add(tar, f"digits/{label}/{index:04d}.png", image, "PNG")
    return len(data.images)


def build_generated(path: Path, count: int) -> int:
    """``count`` 64x64 images (smooth colour fields with noise) in 10 classes in a tar.gz."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:64, 0:64]
    with tarfile.open(path, "w:gz") as tar:
        for index in range(count):
            label = index % 10
            base = np.stack(
                [(xs * (label + 1) + ys * 3) % 256, (ys * (label + 2)) % 256, (xs + ys) % 256],
                axis=-1,
            )
            noise = rng.integers(0, 40, base.shape)
            image = Image.fromarray(((base + noise) % 256).astype(np.uint8), "RGB")
            fmt = "JPEG" if index % 2 else "PNG"
            ext = "jpg" if fmt == "JPEG" else "png"
            _add(tar, f"generated/class-{label}/{index:05d}.{ext}", image, fmt)
    return count


def _add(tar: tarfile.TarFile, name: str, image: Image.Image, fmt: str) -> None:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    info = tarfile.TarInfo(name)
    info.size = buffer.tell()
    buffer.seek(0)
    tar.addfile(info, buffer)


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(archive: Path, images: int, scratch: Path, repeat: int) -> dict[str, float]:
    """Median seconds of ingest and of tar -x over ``repeat`` runs, plus sizes."""
    ingest_times: list[float] = []
    inner_times: list[float] = []
    tar_times: list[float] = []
    data_bytes = 0
    for run in range(repeat):
        target = scratch / f"ingest-{run}"
        ingest_times.append(
            _timed(
                [
                    sys.executable,
                    "-m",
                    "kubearts_dataset",
                    "ingest",
                    "--source",
                    str(archive),
                    "--target",
                    str(target),
                    "--progress-interval",
                    "3600",
                    "--log-level",
                    "WARNING",
                ]
            )
        )
        report = json.loads((target / ".kubearts/ingest.json").read_text())
        assert report["sampleCount"] == images, report
        inner_times.append(float(report["durationSeconds"]))
        data_bytes = int(report["sizeBytes"])
        shutil.rmtree(target)
        untar = scratch / f"tar-{run}"
        untar.mkdir()
        tar_times.append(_timed(["tar", "-xzf", str(archive), "-C", str(untar)]))
        shutil.rmtree(untar)
    return {
        "ingest": statistics.median(ingest_times),
        "ingest_in_process": statistics.median(inner_times),
        "tar": statistics.median(tar_times),
        "archive_bytes": archive.stat().st_size,
        "data_bytes": data_bytes,
    }


def main() -> None:
    """Build the archives, measure, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="generated images")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kubearts-bench-"))
    try:
        cases = []
        builders: list[tuple[str, Callable[[Path], int]]] = [
            ("digits", build_digits),
            (f"generated-{args.images}", functools.partial(build_generated, count=args.images)),
        ]
        for name, build in builders:
            archive = scratch / f"{name}.tar.gz"
            images = build(archive)
            cases.append((name, images, measure(archive, images, scratch, args.repeat)))
        print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}, median of {args.repeat}")
        header = (
            f"{'archive':<18}{'images':>7}{'archive MB':>11}{'data MB':>9}"
            f"{'ingest s':>10}{'(in-proc)':>10}{'img/s':>8}{'MB/s':>7}"
            f"{'tar -x s':>10}{'img/s':>9}{'MB/s':>7}{'ratio':>7}"
        )
        print(header)
        for name, images, m in cases:
            data_mb = m["data_bytes"] / 1e6
            print(
                f"{name:<18}{images:>7}{m['archive_bytes'] / 1e6:>11.2f}{data_mb:>9.2f}"
                f"{m['ingest']:>10.2f}{m['ingest_in_process']:>10.2f}"
                f"{images / m['ingest']:>8.0f}{data_mb / m['ingest']:>7.2f}"
                f"{m['tar']:>10.3f}{images / m['tar']:>9.0f}{data_mb / m['tar']:>7.2f}"
                f"{m['ingest'] / m['tar']:>7.1f}"
            )
        print("ratio = ingest time / tar -x time; MB/s counts unpacked image bytes")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
