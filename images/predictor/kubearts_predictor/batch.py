"""Batch mode: predict every image under a folder into a JSON-lines file.

Files are found recursively and taken in sorted order of their relative paths. Each gives one
line in ``--output``: ``{"file": "<relative path>", "label": "<top-1>", "scores": [[label,
probability], ...]}`` (top 5), or ``{"file": ..., "error": "..."}`` for a file that is not a
decodable image (a failure, counted in the result). Progress lines
``{"event": "progress", "done": n, "total": N}`` go to standard output; the run ends with
``{"status": "Succeeded", "reason": "Completed", "images": N, "failures": M,
"imagesPerSecond": x, "output": path, ...}``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from kubearts_predictor import devices, modeldir, preprocess, resources
from kubearts_predictor.errors import PredictorError
from kubearts_predictor.model import ImageClassifier, Settings
from kubearts_predictor.result import Events


def files_under(root: Path) -> list[Path]:
    """Every regular file under ``root`` (hidden ones too), sorted by relative path."""
    if not root.is_dir():
        raise PredictorError("InputUnavailable", f"the input folder {root} does not exist")
    return sorted(
        (p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix()
    )


def run(parsed: argparse.Namespace, events: Events) -> dict[str, Any]:
    placement = devices.from_environment(parsed.device, parsed.allow_cpu_fallback)
    folder = modeldir.read(parsed.model_dir, parsed.runtime)
    model = ImageClassifier(
        parsed.model_name, folder, placement, Settings(max_pixels=parsed.max_pixels)
    )
    model.load()
    assert model.backend is not None
    assert model.batcher is not None
    events.emit(model.loaded_event())
    files = files_under(parsed.input)
    total = len(files)
    failures = 0
    done = 0
    started = time.monotonic()
    last_progress = started
    parsed.output.parent.mkdir(parents=True, exist_ok=True)
    threads = resources.usable_cpus()

    def decode(path: Path) -> np.ndarray | str:
        try:
            return preprocess.decode(path.read_bytes(), model.image_size, parsed.max_pixels)
        except preprocess.BadImageError as exc:
            return str(exc)
        except OSError as exc:
            return f"cannot read the file: {exc}"

    events.emit({"event": "progress", "done": 0, "total": total})
    with (
        parsed.output.open("w", encoding="utf-8") as out,
        concurrent.futures.ThreadPoolExecutor(threads) as pool,
    ):
        for start in range(0, total, parsed.batch_size):
            chunk = files[start : start + parsed.batch_size]
            decoded = list(pool.map(decode, chunk))
            good = [d for d in decoded if isinstance(d, np.ndarray)]
            tops = []
            if good:
                try:
                    logits = model.batcher.run_now(model.to_layout(preprocess.to_batch(good)))
                except Exception as exc:
                    raise PredictorError("PredictionFailed", f"inference failed: {exc}") from exc
                tops = [model.top(row) for row in logits]
            answers = iter(tops)
            for path, item in zip(chunk, decoded, strict=True):
                line: dict[str, Any] = {"file": path.relative_to(parsed.input).as_posix()}
                if isinstance(item, np.ndarray):
                    top = next(answers)
                    line.update(label=top["predicted_label"], scores=top["scores"])
                else:
                    line["error"] = item
                    failures += 1
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
            done += len(chunk)
            now = time.monotonic()
            if now - last_progress >= parsed.progress_interval or done == total:
                events.emit({"event": "progress", "done": done, "total": total})
                last_progress = now
    elapsed = time.monotonic() - started
    return {
        "status": "Succeeded",
        "reason": "Completed",
        "images": total,
        "failures": failures,
        "imagesPerSecond": round(total / elapsed, 3) if elapsed > 0 else None,
        "output": str(parsed.output),
        "runtime": model.backend.runtime,
        "provider": model.backend.provider,
        "device": model.backend.device,
        "fallback": model.backend.fallback,
    }
