"""JSON lines on standard output: progress while converting or registering, then the result.

Standard output carries only JSON lines so that the operator can parse a pod's log line by
line; human-readable logs go to standard error. The line shapes are documented in README.md.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO


class Events:
    """Writes one JSON object per line and flushes; safe to call from several threads."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._copies: list[TextIO] = []

    def copy_to(self, stream: TextIO) -> None:
        """Also write every line to ``stream`` (the archived log of the run)."""
        self._copies.append(stream)

    def emit(self, event: dict[str, Any]) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        with self._lock:
            for target in (stream, *self._copies):
                target.write(line + "\n")
                target.flush()

    def progress(self, step: str, **fields: Any) -> None:
        """A ``{"event": "progress", "step": ...}`` line."""
        self.emit({"event": "progress", "step": step, **fields})


def finite(value: Any, digits: int = 9) -> float | None:
    """A figure rounded for JSON (significant digits); None for NaN, infinities, missing."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return float(f"{number:.{digits}g}")
