"""Serving on for a moment after SIGTERM, so a rollout drops no request.

When Kubernetes deletes a pod it sends SIGTERM while, at the same time, the endpoints
controller and every node's kube-proxy remove the pod from its Service. Until the last
proxy has caught up, new connections still arrive; a server that stops listening at once
refuses them. Kubernetes' usual answer is a ``preStop`` sleep; this does the same inside the
predictor, so it holds on any cluster: the HTTP server (uvicorn, which takes SIGTERM over
from KServe while it runs) keeps serving for ``seconds`` after SIGTERM and then shuts down
as it would have, gRPC after it. ``terminationGracePeriodSeconds`` must exceed ``seconds``.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


def delay_shutdown(seconds: float) -> None:
    """Make uvicorn servers in this process act on SIGTERM ``seconds`` later."""
    if seconds <= 0:
        return
    handle_exit = uvicorn.Server.handle_exit

    def later(server: Any, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or getattr(server, "_kubearts_draining", False):
            handle_exit(server, sig, frame)
            return
        server._kubearts_draining = True
        log.info("SIGTERM: serving %.1f s more while the Service stops sending here", seconds)
        timer = threading.Timer(seconds, handle_exit, args=(server, sig, None))
        timer.daemon = True
        timer.start()

    uvicorn.Server.handle_exit = later  # type: ignore[method-assign,assignment]
