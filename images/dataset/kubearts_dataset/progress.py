"""Progress lines on standard output: one JSON object per line, throttled.

Standard output carries only JSON lines (``progress`` events while working, one ``result``
event at the end) so that the operator can parse a pod's log line by line; human-readable
logs go to standard error. A progress line looks like::

    {"event": "progress", "phase": "download", "bytes": 1048576, "totalBytes": 228813984,
     "files": 0, "totalFiles": null}

``phase`` is one of ``download``, ``unpack``, ``verify``, ``upload``; ``files`` counts files
handled so far in the phase; ``totalBytes`` and ``totalFiles`` are null when not known in
advance (a streamed tar.gz, an http body without Content-Length).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

Phase = Literal["download", "unpack", "verify", "upload"]


class Progress:
    """Reports progress of the current phase at most once per ``interval`` seconds.

    The first and the final update of each phase are always written, so even a fast phase
    leaves a trace and the last line of a phase carries its totals.
    """

    def __init__(
        self,
        interval: float = 2.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._stream = stream
        self._clock = clock
        self._last: dict[str, float] = {}

    def update(
        self,
        phase: Phase,
        *,
        bytes_done: int = 0,
        total_bytes: int | None = None,
        files: int = 0,
        total_files: int | None = None,
        final: bool = False,
    ) -> None:
        """Record the current totals of ``phase``; written when due or when ``final``."""
        now = self._clock()
        last = self._last.get(phase)
        if not final and last is not None and now - last < self._interval:
            return
        self._last[phase] = now
        self.emit(
            {
                "event": "progress",
                "phase": phase,
                "bytes": bytes_done,
                "totalBytes": total_bytes,
                "files": files,
                "totalFiles": total_files,
            }
        )

    def emit(self, event: dict[str, Any]) -> None:
        """Write one JSON line and flush, so a log follower sees it immediately."""
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        stream.flush()


class NullProgress(Progress):
    """Discards updates; for library use and tests that do not look at progress."""

    def emit(self, event: dict[str, Any]) -> None:
        """Drop the event."""
