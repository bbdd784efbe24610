"""After SIGTERM the predictor keeps answering for ``--drain_seconds`` (while Services stop
routing to the pod), then exits on its own."""

from __future__ import annotations

import signal
import time
import urllib.request
from pathlib import Path

from predictor_helpers import launch_server, wait_ready


def test_sigterm_drains_then_stops(model_dirs: dict[str, Path]) -> None:
    server = wait_ready(launch_server(model_dirs["onnx"], "--drain_seconds", "3"))
    try:
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(1)
        with urllib.request.urlopen(f"{server.url}/v2/health/live", timeout=2) as response:
            assert response.status == 200
        assert server.process.wait(timeout=30) == 0
        assert time.monotonic() - signalled >= 3
    finally:
        server.stop()
