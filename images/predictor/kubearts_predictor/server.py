"""The HTTP side around KServe's server: the predict page, image upload, V2 binary tensors,
request limits, response headers and metrics.

KServe's ``ModelServer`` serves V1, V2 REST and gRPC, health and ``/metrics`` from its FastAPI
application (``kserve.model_server.app``). Routes added to that application before the server
starts are matched first, so this module adds

* ``GET /``: the predict page (KServe's ``GET /`` liveness answer moves to
  ``/v2/health/live``, which is unchanged);
* ``POST /``: image upload, multipart field ``images``;
* ``POST /v2/models/{name}/infer``: the same V2 REST protocol as KServe's route, but binary
  tensors (the ``inference-header-content-length`` extension) are read with ``np.frombuffer``
  where KServe 0.21 turns them into Python lists;

and one ASGI middleware that refuses bodies over ``--max_body_bytes`` with 413 before they are
read, adds ``X-KubeArts-Provider`` and ``X-KubeArts-Fallback`` to every predict response and
counts requests (:mod:`kubearts_predictor.metrics`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, ORJSONResponse, Response
from kserve.errors import InvalidInput
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubearts_predictor import metrics, page, preprocess
from kubearts_predictor.client import BINARY_HEADER
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


def install(app: FastAPI, model: ImageClassifier, dataplane: DataPlane) -> None:
    """Add the routes and the middleware to KServe's application before it starts."""

    async def predict_page() -> HTMLResponse:
        return HTMLResponse(page.render(model.name))

    async def upload(request: Request) -> Response:
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
        except _BodyTooLargeError:
            raise  # answered 413 by the middleware
        except Exception as exc:  # starlette raises HTTPException or MultiPartException
            return error(
                f"cannot read the form: {getattr(exc, 'detail', exc)}", 400, "content_type"
            )
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

    async def v2_infer(model_name: str, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        infer_request = parse_v2(body, headers.get(BINARY_HEADER), model_name)
        response, response_headers = await dataplane.infer(model_name, infer_request, headers)
        encoded, encoded_headers = dataplane.encode(model_name, response, headers, {})
        response_headers.update(encoded_headers)
        response_headers.pop("content-length", None)
        response_headers.pop("content-type", None)
        if isinstance(encoded, bytes):
            return Response(
                encoded, headers=response_headers, media_type="application/octet-stream"
            )
        return ORJSONResponse(encoded, headers=response_headers)

    app.add_api_route("/", predict_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/", upload, methods=["POST"])
    app.add_api_route("/v2/models/{model_name}/infer", v2_infer, methods=["POST"])
    # Routes are matched in order: move ours before any KServe registers later.
    ours = app.router.routes[-3:]
    del app.router.routes[-3:]
    app.router.routes[0:0] = ours
    app.add_middleware(Guard, model=model)


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


class _BodyTooLargeError(Exception):
    pass


class Guard:
    """Body limit (413), provider headers and request metrics for predict requests."""

    def __init__(self, app: ASGIApp, model: ImageClassifier) -> None:
        self.app = app
        self.model = model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = metrics.endpoint_of(scope["method"], scope["path"])
        limit = self.model.settings.max_body_bytes
        started = time.perf_counter()
        status = 500
        response_started = False
        backend = self.model.backend
        extra = (
            [
                (b"x-kubearts-provider", backend.provider.encode()),
                (b"x-kubearts-fallback", b"true" if backend.fallback else b"false"),
            ]
            if backend is not None and endpoint is not None
            else []
        )

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError
            return message

        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                raise _BodyTooLargeError
            await self.app(scope, receive_limited, send_with_headers)
        except _BodyTooLargeError:
            if response_started:
                raise
            metrics.ERRORS.labels("body_too_large").inc()
            response = json_response(
                {"error": f"the request body is larger than {limit} bytes"}, 413
            )
            await response(scope, receive, send_with_headers)
        finally:
            if endpoint is not None:
                metrics.REQUESTS.labels(endpoint, str(status)).inc()
                metrics.LATENCY.labels(endpoint).observe(time.perf_counter() - started)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
