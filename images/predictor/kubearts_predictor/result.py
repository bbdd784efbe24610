"""JSON lines on standard output and the result document in the termination message.

Standard output carries JSON lines for the operator: ``{"event": "loaded", ...}`` once the
server's model is loaded, ``{"event": "progress", ...}`` in batch mode and
``{"event": "result", ...}`` when a run ends or start-up fails. The same result is written to
``--result`` (``/dev/termination-log`` in a pod, which Kubernetes cuts at 4096 bytes), there
compacted to fit.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Final, TextIO

TERMINATION_LOG_LIMIT: Final = 4096


def dumps(document: Any) -> str:
    """Compact UTF-8 JSON, no NaN."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Events:
    """Writes one JSON object per line and flushes; safe to call from several threads."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        with self._lock:
            stream.write(dumps(event) + "\n")
            stream.flush()


def compact(document: dict[str, Any], limit: int = TERMINATION_LOG_LIMIT) -> str:
    """``document`` in at most ``limit`` UTF-8 bytes: the message is shortened if needed."""
    text = dumps(document)
    if len(text.encode()) <= limit:
        return text
    data = {**document, "truncated": True}
    message = str(data.get("message", ""))
    overflow = len(dumps(data).encode()) - limit
    # Cut by characters until the bytes fit (multi-byte characters count more than one).
    while overflow > 0 and message:
        message = message[: max(0, len(message) - max(overflow, 16))]
        data["message"] = message + "…"
        overflow = len(dumps(data).encode()) - limit
    text = dumps(data)
    if len(text.encode()) > limit:
        text = dumps({k: data[k] for k in ("status", "reason", "truncated") if k in data})
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
