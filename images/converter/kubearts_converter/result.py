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

    In order, until it fits: the signature's labels are cut (``signature.classes`` keeps the
    count) and then its inputs and outputs; ``warnings`` are cut; the command line is
    shortened; the message is shortened; at last only the essentials are kept.
    """
    text = _dumps(document)
    if _fits(text, limit):
        return text
    data = copy.deepcopy(document)
    data["truncated"] = True
    signature = data.get("signature")
    if isinstance(signature, dict):
        labels = signature.get("labels")
        if isinstance(labels, list):
            signature.setdefault("classes", len(labels))
            while labels and not _fits(_dumps(data), limit):
                del labels[len(labels) // 2 if len(labels) > 8 else len(labels) - 1 :]
        for key in ("inputs", "outputs"):
            tensors = signature.get(key)
            while isinstance(tensors, list) and len(tensors) > 1 and not _fits(_dumps(data), limit):
                tensors.pop()
    warnings = data.get("warnings")
    while isinstance(warnings, list) and warnings and not _fits(_dumps(data), limit):
        warnings.pop()
    command = data.get("command")
    if isinstance(command, list) and not _fits(_dumps(data), limit):
        data["command"] = [str(part)[:200] for part in command[:16]]
    text = _dumps(data)
    if not _fits(text, limit) and isinstance(data.get("message"), str):
        overflow = len(text.encode()) - limit
        message = str(data["message"])
        data["message"] = message[: max(0, len(message) - overflow - 16)] + "…"
        text = _dumps(data)
    if not _fits(text, limit):
        # Only the essentials; the whole document is on standard output.
        keep = ("status", "reason", "output", "verification", "digest", "format", "truncated")
        text = _dumps({k: data[k] for k in keep if k in data})
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
