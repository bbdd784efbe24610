"""The HTTP side around KServe's server: the predict routes, the predict page, image upload,
request limits, response headers and metrics.

KServe's ``ModelServer`` serves V1, V2 REST and gRPC, health and ``/metrics`` from its FastAPI
application (``kserve.model_server.app``). This module adds ``GET /``, the predict page, matched
before KServe's own ``GET /`` liveness answer (which stays at ``/v2/health/live``), and wraps
the whole application in :class:`Guard`, its outermost layer, which

* refuses bodies over ``--max_body_bytes`` with 413 before they are read, for every route;
* serves the predict routes itself: ``POST /`` (image upload, multipart field ``images``),
  ``POST /v2/models/{name}/infer`` (V2 REST; binary tensors, the
  ``inference-header-content-length`` extension, are read with ``np.frombuffer`` where KServe
  0.21 turns them into Python lists) and ``POST /v1/models/{name}:predict``. FastAPI's
  routing, dependency solving and middleware, and KServe's data plane, cost about two
  milliseconds a request on a small CPU, more than a small model does; these requests reach
  the same :class:`ImageClassifier` with the same answers and error statuses without them;
* adds ``X-KubeArts-Provider`` and ``X-KubeArts-Fallback`` to every predict response and
  counts requests (:mod:`kubearts_predictor.metrics`).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse, RequestedOutput
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubearts_predictor import metrics, page, preprocess
from kubearts_predictor.client import BINARY_HEADER
from kubearts_predictor.errors import PredictorError
from kubearts_predictor.model import ImageClassifier

#: Most files one upload may carry.
MAX_UPLOAD_FILES = 64


def json_response(document: Any, status: int = 200) -> Response:
    """UTF-8 JSON with labels as they are (``ensure_ascii=False``)."""
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json; charset=utf-8")


def error(message: str, status: int, reason: str | None = None) -> Response:
    if reason:
        metrics.ERRORS.labels(reason).inc()
    return json_response({"error": message}, status)


def install(app: FastAPI, model: ImageClassifier) -> None:
    """Add the routes and the guard to KServe's application before it starts."""

    async def predict_page() -> HTMLResponse:
        return HTMLResponse(page.render(model.name))

    app.add_api_route("/", predict_page, methods=["GET"], include_in_schema=False)
    # Routes are matched in order: ours before KServe's `GET /`, registered later.
    app.router.routes.insert(0, app.router.routes.pop())
    # Outside FastAPI's own layers, which the application builds at its first request.
    build = app.build_middleware_stack

    def guarded() -> ASGIApp:
        return Guard(build(), model)

    app.build_middleware_stack = guarded  # type: ignore[method-assign]


async def upload(model: ImageClassifier, request: Request) -> Response:
    """``POST /``: the image files of the form field ``images``, classified."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return error(
            f"expected multipart/form-data with image files in the field 'images', got "
            f"{content_type or 'no content type'!r}",
            400,
            "content_type",
        )
    try:
        form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=16)
    except Exception as exc:  # HTTPException, MultiPartException; ClientDisconnect past the
        # body limit, when the guard has answered 413 and drops this answer
        return error(f"cannot read the form: {getattr(exc, 'detail', exc)}", 400, "content_type")
    try:
        files = [item for item in form.getlist("images") if isinstance(item, UploadFile)]
        if not files:
            return error(
                "no files in the form field 'images' (multipart/form-data)", 400, "content_type"
            )
        data = [await item.read() for item in files]
    finally:
        await form.close()
    try:
        results = await model.classify(data)
    except preprocess.BadImageError as exc:
        return error(str(exc), 400)
    return json_response(results[0] if len(results) == 1 else results)


def settle(event_loop: str, log_level: str) -> None:
    """Process-wide settings for serving, just before KServe starts its event loop.

    * The start-up heap (the runtime, KServe, FastAPI, the model's Python objects) is moved out
      of the garbage collector's reach (``gc.freeze``): a V1 request of one 224 px image makes
      50,000 lists, enough to set off full collections, which would otherwise walk that heap
      each time (about 80 ms of a 110 ms no-op V1 request on a small CPU).
    * uvloop runs the event loop when KServe's ``--event_loop`` is ``auto`` or ``uvloop``:
      KServe passes the choice to uvicorn, which does not apply it when KServe runs the loop.
    * KServe's per-request timing lines (two log lines a request) appear only at DEBUG.
    """
    if event_loop in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if event_loop == "uvloop":
                raise
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            # KServe asks for the current loop before it runs its own.
            asyncio.set_event_loop(asyncio.new_event_loop())
    if log_level != "DEBUG":
        logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    gc.collect()
    gc.freeze()


def parse_v2(body: bytes, json_length: str | None, model_name: str) -> InferRequest:
    """A V2 REST request; binary tensors stay bytes until ``as_numpy`` (``np.frombuffer``)."""
    try:
        head_length = int(json_length) if json_length is not None else len(body)
    except ValueError as exc:
        raise InvalidInput(f"{BINARY_HEADER} is not a number: {json_length!r}") from exc
    if not 0 < head_length <= len(body):
        raise InvalidInput(f"{BINARY_HEADER}={head_length} does not fit the {len(body)}-byte body")
    try:
        head = orjson.loads(body[:head_length])
        inputs = head["inputs"]
        assert isinstance(inputs, list)
    except (orjson.JSONDecodeError, KeyError, TypeError, AssertionError) as exc:
        metrics.ERRORS.labels("bad_tensor").inc()
        raise InvalidInput(f'expected a V2 inference request {{"inputs": [...]}}: {exc}') from exc
    start = head_length
    tensors = []
    for item in inputs:
        try:
            tensor = InferInput(
                name=str(item["name"]),
                shape=[int(d) for d in item["shape"]],
                datatype=str(item["datatype"]),
                parameters=item.get("parameters"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            metrics.ERRORS.labels("bad_tensor").inc()
            raise InvalidInput(f"each input needs name, shape and datatype: {exc}") from exc
        parameters = item.get("parameters") or {}
        if "data" in item:
            tensor.data = item["data"]
        elif "binary_data_size" in parameters:
            end = start + int(parameters["binary_data_size"])
            if end > len(body):
                metrics.ERRORS.labels("bad_tensor").inc()
                raise InvalidInput(f"input {tensor.name!r}: binary_data_size runs past the body")
            # What KServe's gRPC decoding does too: as_numpy() reads these bytes in place.
            tensor._raw_data = body[start:end]
            start = end
        else:
            metrics.ERRORS.labels("bad_tensor").inc()
            raise InvalidInput(f"input {tensor.name!r} has neither data nor binary_data_size")
        tensors.append(tensor)
    outputs = head.get("outputs")
    requested = (
        [RequestedOutput(name=o["name"], parameters=o.get("parameters")) for o in outputs]
        if isinstance(outputs, list)
        else None
    )
    return InferRequest(
        model_name=model_name,
        request_id=head.get("id"),
        parameters=head.get("parameters"),
        infer_inputs=tensors,
        request_outputs=requested,
    )


class Guard:
    """The application's outermost layer: the body limit (413), provider headers and request
    metrics for every request, and the predict routes (upload, V1, V2 REST) themselves."""

    def __init__(self, app: ASGIApp, model: ImageClassifier) -> None:
        self.app = app
        self.model = model
        # Built at the first request, after the model loaded: the provider no longer changes.
        backend = model.backend
        self.provider_headers = (
            [
                (b"x-kubearts-provider", backend.provider.encode()),
                (b"x-kubearts-fallback", b"true" if backend.fallback else b"false"),
            ]
            if backend is not None
            else []
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = metrics.endpoint_of(scope["method"], scope["path"])
        started = time.perf_counter()
        headers = self.provider_headers if endpoint is not None else []
        state = _Exchange(self.model.settings.max_body_bytes, headers, send)
        try:
            declared = _content_length(scope)
            if declared is not None and declared > state.limit:
                await state.refuse()
                return
            serve = self._route(scope, endpoint) or self.app
            await serve(scope, state.receiver(receive), state.send)
        except Exception:
            if not state.refused:  # else: the application failing on the body it was denied
                raise
        finally:
            if endpoint is not None:
                metrics.REQUESTS.labels(endpoint, str(state.status)).inc()
                metrics.LATENCY.labels(endpoint).observe(time.perf_counter() - started)

    def _route(self, scope: Scope, endpoint: str | None) -> ASGIApp | None:
        """The predict route this guard serves the request with, None for KServe's routes."""
        if endpoint == "upload":
            return self._upload
        if endpoint is None or any(name.startswith(b"ce-") for name, _ in scope["headers"]):
            return None  # not a predict request, or binary CloudEvents: KServe decodes them
        path: str = scope["path"]
        if endpoint == "v2":
            name, protocol = path[len("/v2/models/") : -len("/infer")], self._v2
        else:
            name, protocol = path[len("/v1/models/") : -len(":predict")], self._v1
        if "/" in name:
            return None
        return functools.partial(self._predict, name=name, protocol=protocol)

    async def _predict(
        self, scope: Scope, receive: Receive, send: Send, *, name: str, protocol: _Protocol
    ) -> None:
        """Answer a predict request with ``protocol`` (the body → status, body, media type,
        headers), with KServe's statuses: 404 another model, 503 not loaded, 400 bad input."""
        if name != self.model.name:
            await _answer(send, 404, {"error": f"Model with name {name} does not exist."})
            return
        if await self._not_ready(send):
            return
        body = await _body(receive)
        if body is None:
            return
        try:
            answer = await protocol(scope, name, body)
        except InvalidInput as exc:
            await _answer(send, 400, {"error": str(exc)})
        except PredictorError as exc:
            await _answer(send, 500, {"error": str(exc)})
        else:
            await _send(send, *answer)

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self._not_ready(send):
            response = await upload(self.model, Request(scope, receive))
            await response(scope, receive, send)

    async def _not_ready(self, send: Send) -> bool:
        """Answers 503, as KServe does, while the model is not loaded."""
        if self.model.ready:
            return False
        await _answer(send, 503, {"error": f"Model with name {self.model.name} is not ready."})
        return True

    async def _v2(self, scope: Scope, name: str, body: bytes) -> _Answer:
        length = _header(scope, BINARY_HEADER.encode())
        response = await self.model.predict(parse_v2(body, length, name))
        assert isinstance(response, InferResponse)
        encoded, json_length = response.to_rest()
        if isinstance(encoded, bytes):
            headers = [(BINARY_HEADER.encode(), str(json_length).encode())]
            return 200, encoded, b"application/octet-stream", headers
        return (
            200,
            orjson.dumps(encoded, option=orjson.OPT_SERIALIZE_NUMPY),
            b"application/json",
            [],
        )

    async def _v1(self, scope: Scope, name: str, body: bytes) -> _Answer:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            metrics.ERRORS.labels("bad_tensor").inc()
            raise InvalidInput(f"Unrecognized request format: {exc}") from exc
        return 200, orjson.dumps(await self.model.predict(document)), b"application/json", []


#: status, body, media type, extra headers
_Answer = tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]
_Protocol = Callable[[Scope, str, bytes], Awaitable[_Answer]]


class _Exchange:
    """One request as the guard sees it: the bytes received against the limit, the status
    sent, and the headers added to the answer."""

    def __init__(self, limit: int, headers: list[tuple[bytes, bytes]], send: Send) -> None:
        self.limit = limit
        self.headers = headers
        self._send = send
        self.status = 500
        self.started = False
        self.refused = False

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the application's answer to a body it was denied: 413 went out
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.started = True
            message = {**message, "headers": [*message.get("headers", []), *self.headers]}
        await self._send(message)

    async def refuse(self) -> None:
        """Answer 413 (unless an answer has started) and drop what the application sends."""
        if not self.started:
            metrics.ERRORS.labels("body_too_large").inc()
            await _answer(
                self.send, 413, {"error": f"the request body is larger than {self.limit} bytes"}
            )
        self.refused = True

    def receiver(self, receive: Receive) -> Receive:
        """``receive`` that counts body bytes; past the limit, the client has gone."""
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            if self.refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    await self.refuse()
                    return {"type": "http.disconnect"}
            return message

        return receive_limited


async def _body(receive: Receive) -> bytes | None:
    """The whole request body, None when the client went away (or the limit was reached)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _answer(send: Send, status: int, document: Any) -> None:
    """UTF-8 JSON, labels as they are."""
    await _send(
        send,
        status,
        orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY),
        b"application/json",
        [],
    )


async def _send(
    send: Send, status: int, body: bytes, media_type: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", media_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    declared = _header(scope, b"content-length")
    try:
        return int(declared) if declared is not None else None
    except ValueError:
        return None
