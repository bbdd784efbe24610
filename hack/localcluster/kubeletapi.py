"""The part of the kubelet's HTTPS API that ``kubectl logs`` uses: ``/containerLogs``
(with ``previous``, ``tailLines``, ``limitBytes`` and ``follow``) and ``/healthz``.

The apiserver connects with its kubelet client certificate; any client certificate from
the cluster CA is accepted, none is refused.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("localcluster.kubeletapi")
FOLLOW_POLL = 0.2


class LogSource(Protocol):
    """Where the API finds container logs: the node agent's running pods."""

    def log_file(self, ns: str, name: str, container: str, previous: bool) -> Path | None:
        """The log of the container's current (or previous) run, None when unknown."""
        ...

    def container_running(self, ns: str, name: str, container: str) -> bool:
        """Whether the container may still write to its log (``follow`` keeps reading)."""
        ...


def _select(data: bytes, query: dict[str, list[str]]) -> bytes:
    """Apply ``tailLines`` and ``limitBytes`` as the kubelet does."""
    if "tailLines" in query:
        lines = data.splitlines(keepends=True)
        n = int(query["tailLines"][0])
        data = b"".join(lines[-n:]) if n > 0 else b""
    if "limitBytes" in query:
        data = data[: int(query["limitBytes"][0])]
    return data


def _handler(node: str, source: LogSource) -> type[http.server.BaseHTTPRequestHandler]:
    """A request handler class serving ``source``'s logs for ``node``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("kubelet api %s: " + fmt, node, *args)

        def _reply(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
            if parts == ["healthz"]:
                self._reply(200, b"ok")
                return
            if len(parts) != 4 or parts[0] != "containerLogs":
                self._reply(404, b"not found: only /containerLogs and /healthz are served")
                return
            _, ns, name, container = parts
            previous = query.get("previous", ["false"])[0] == "true"
            path = source.log_file(ns, name, container, previous)
            if path is None or not path.exists():
                what = "previous terminated container" if previous else "container"
                self._reply(
                    400 if previous else 404,
                    f'{what} "{container}" in pod "{name}" has no logs'.encode(),
                )
                return
            data = _select(path.read_bytes(), query)
            if query.get("follow", ["false"])[0] != "true":
                self._reply(200, data)
                return
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._follow(path, data, lambda: source.container_running(ns, name, container))

        def _follow(self, path: Path, data: bytes, running: Callable[[], bool]) -> None:
            """Stream the log in chunks while the container runs."""
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            offset = path.stat().st_size

            def chunk(b: bytes) -> None:
                self.wfile.write(f"{len(b):x}\r\n".encode() + b + b"\r\n")
                self.wfile.flush()

            if data:
                chunk(data)
            while True:
                with open(path, "rb") as f:
                    f.seek(offset)
                    more = f.read()
                if more:
                    offset += len(more)
                    chunk(more)
                if not running():
                    break
                time.sleep(FOLLOW_POLL)
            self.wfile.write(b"0\r\n\r\n")

    return Handler


def serve(
    node: str, address: str, port: int, pki: Path, source: LogSource
) -> http.server.ThreadingHTTPServer:
    """Serve the API for ``node`` on ``address:port`` over TLS, in a daemon thread."""
    server = http.server.ThreadingHTTPServer((address, port), _handler(node, source))
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki / "node-agent.crt"), str(pki / "node-agent.key"))
    ctx.load_verify_locations(str(pki / "ca.crt"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name=f"kubelet-api-{node}", daemon=True).start()
    return server
