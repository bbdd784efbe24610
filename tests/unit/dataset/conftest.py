"""Fixtures for the dataset worker's tests: real HTTP and S3 servers on loopback, real data."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

import boto3
import pytest
from moto.server import ThreadedMotoServer

from datagen import write_digits


@dataclass
class Route:
    """What the test server answers for one path."""

    body: bytes
    fail_first: list[int] = field(default_factory=list)
    """Status codes answered (in order) before the body is served."""
    cut_first: int = 0
    """Answers that announce the whole body but close the connection halfway."""
    ranges: bool = True
    """Whether ``Range: bytes=N-`` requests are honoured with 206."""
    authorization: str | None = None
    """The ``Authorization`` header value required; other requests are answered 401."""
    redirect: str | None = None
    """A URL to redirect to (302) instead of serving the body."""
    trickle: float = 0.0
    """Seconds between single bytes of the body: a server too slow for a deadline but never
    silent long enough for a read timeout."""


@dataclass
class FileServer:
    """A threaded HTTP server on 127.0.0.1 serving :class:`Route` objects."""

    base: str
    routes: dict[str, Route]
    requests: list[tuple[str, str | None]]
    """``(path, Range header)`` of every request, in order."""
    authorizations: list[tuple[str, str | None]] = field(default_factory=list)
    """``(path, Authorization header)`` of every request, in order."""

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.base + path


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server.requests.append((self.path, self.headers.get("Range")))
            server.authorizations.append((self.path, self.headers.get("Authorization")))
            route = server.routes.get(self.path)
            if route is None:
                self.send_error(404, "Not Found")
                return
            if route.authorization and self.headers.get("Authorization") != route.authorization:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer realm="data"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route.redirect:
                self.send_response(302)
                self.send_header("Location", route.redirect)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route.fail_first:
                self.send_error(route.fail_first.pop(0))
                return
            body = route.body
            start = 0
            requested = self.headers.get("Range")
            if requested and route.ranges:
                start = int(requested.removeprefix("bytes=").rstrip("-"))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if route.trickle:
                _trickle(self.wfile, body[start:], route.trickle)
                return
            if route.cut_first:
                route.cut_first -= 1
                self.wfile.write(body[start : start + (len(body) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body[start:])

    return Handler


def _trickle(out: BinaryIO, body: bytes, interval: float) -> None:
    try:
        for index in range(len(body)):
            out.write(body[index : index + 1])
            out.flush()
            time.sleep(interval)
    except OSError:
        pass  # the client gave up


@pytest.fixture
def http_server() -> Iterator[FileServer]:
    """A real HTTP server on a random loopback port."""
    state = FileServer(base="", routes={}, requests=[])
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 API in server mode on a random loopback port (real HTTP, not mocks)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials and endpoint as the operator sets them; returns the endpoint."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("KUBEARTS_S3_ENDPOINT", moto_endpoint)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return moto_endpoint


@pytest.fixture
def s3_bucket(s3_env: str, request: pytest.FixtureRequest) -> tuple[object, str]:
    """A fresh bucket (named after the test) and a client for it."""
    client = boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")
    name = "t-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:50]
    client.create_bucket(Bucket=name)
    return client, name


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's digits as ``digits/<class>/<n>.png`` below the returned folder."""
    root = tmp_path_factory.mktemp("digits")
    write_digits(root / "digits")
    return root
