"""Result documents and how they are written.

A run ends with one JSON document in two places: a ``{"event": "result", ...}`` line on
standard output (the whole document) and the ``--result`` file (the operator passes
``/dev/termination-log``, which Kubernetes cuts at 4096 bytes, so this copy is compacted to
fit and marked ``"truncated": true`` when anything was left out).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Final

TERMINATION_LOG_LIMIT: Final = 4096


def compact(document: dict[str, Any], limit: int = TERMINATION_LOG_LIMIT) -> str:
    """Serialise ``document`` in at most ``limit`` UTF-8 bytes.

    In order, until it fits: per-class figures are dropped from ``evaluation``; the
    per-epoch lists in ``metrics`` are thinned (evenly, always keeping the last epoch, with
    ``metrics.epoch`` naming the epochs kept); ``warnings`` are cut; the message is shortened.
    """
    text = _dumps(document)
    if _fits(text, limit):
        return text
    data = copy.deepcopy(document)
    data["truncated"] = True
    evaluation = data.get("evaluation")
    if isinstance(evaluation, dict):
        evaluation.pop("perClass", None)
        evaluation.pop("confusionMatrix", None)
    metrics = data.get("metrics")
    if isinstance(metrics, dict) and isinstance(metrics.get("epoch"), list):
        while not _fits(_dumps(data), limit) and len(metrics["epoch"]) > 2:
            _thin(metrics)
    warnings = data.get("warnings")
    while isinstance(warnings, list) and warnings and not _fits(_dumps(data), limit):
        warnings.pop()
    text = _dumps(data)
    if not _fits(text, limit) and isinstance(data.get("message"), str):
        overflow = len(text.encode()) - limit
        message = str(data["message"])
        data["message"] = message[: max(0, len(message) - overflow - 16)] + "…"
        text = _dumps(data)
    if not _fits(text, limit):
        # Only the essentials; the whole document is on standard output.
        keep = ("status", "reason", "device", "fallback", "evaluation", "outputs", "truncated")
        text = _dumps({k: data[k] for k in keep if k in data})
    return text


def _thin(metrics: dict[str, Any]) -> None:
    """Keep every second epoch (and the last) in each per-epoch list."""
    count = len(metrics["epoch"])
    keep = sorted({*range(0, count - 1, 2), count - 1})
    for key, values in metrics.items():
        if isinstance(values, list) and len(values) == count:
            metrics[key] = [values[i] for i in keep]


def write_result(path: str | None, document: dict[str, Any]) -> None:
    """Write the compact document to ``path`` (if given); never raises for a bad path."""
    if not path:
        return
    try:
        Path(path).write_text(compact(document), encoding="utf-8")
    except OSError as exc:
        # The result is also on standard output; failing here would hide the real outcome.
        os.write(2, f"cannot write the result to {path}: {exc}\n".encode())


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as indented UTF-8 JSON via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(
        json.dumps(document, ensure_ascii=False, indent=2, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    temporary.replace(path)


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _fits(text: str, limit: int) -> bool:
    return len(text.encode("utf-8")) <= limit
