"""Bad requests are refused with the right status before any expensive work, and the server
stays healthy after each one."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import numpy as np
import pytest
import requests
from PIL import Image
from predictor_helpers import IMAGE_SIZE, Server, png


def _bomb() -> bytes:
    """A 2000x2000 PNG (4 Mpx, over the server's 250000-pixel limit) of a few kilobytes."""
    buffer = io.BytesIO()
    Image.new("L", (2000, 2000)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _upload(server: Server, data: bytes, name: str = "a.png") -> requests.Response:
    return requests.post(f"{server.url}/", files=[("images", (name, data, "image/png"))])


def _v2(server: Server, array: np.ndarray, datatype: str = "FP32") -> requests.Response:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "shape": list(array.shape),
                    "datatype": datatype,
                    "parameters": {"binary_data_size": array.nbytes},
                }
            ]
        }
    ).encode()
    return requests.post(
        f"{server.url}/v2/models/tiny/infer",
        data=head + array.tobytes(),
        headers={"inference-header-content-length": str(len(head))},
    )


def _v2_short(server: Server) -> requests.Response:
    """A binary tensor of 8 bytes that claims the shape [1, 32, 32, 3]."""
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "shape": [1, IMAGE_SIZE, IMAGE_SIZE, 3],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    ).encode()
    return requests.post(
        f"{server.url}/v2/models/tiny/infer",
        data=head + b"\0" * 8,
        headers={"inference-header-content-length": str(len(head))},
    )


EXPECTED = "[-1, 32, 32, 3]"

CASES: dict[str, tuple[Callable[[Server], requests.Response], int, str]] = {
    "body-too-large": (lambda s: _upload(s, b"\0" * 1_200_000), 413, "larger than 1000000"),
    "body-too-large-v2": (
        lambda s: _v2(s, np.zeros((100, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32)),
        413,
        "larger than",
    ),
    "body-too-large-chunked": (
        # No Content-Length: the bytes are counted while they are read.
        lambda s: requests.post(
            f"{s.url}/v2/models/tiny/infer",
            data=(b"\0" * 100_000 for _ in range(12)),
            headers={"inference-header-content-length": "10"},
        ),
        413,
        "larger than",
    ),
    "pixel-bomb": (lambda s: _upload(s, _bomb()), 400, "at most 250000"),
    "content-type": (
        lambda s: requests.post(f"{s.url}/", data=png(), headers={"content-type": "image/png"}),
        400,
        "multipart/form-data",
    ),
    "no-images-field": (
        lambda s: requests.post(f"{s.url}/", files=[("file", ("a.png", png(), "image/png"))]),
        400,
        "'images'",
    ),
    "undecodable": (lambda s: _upload(s, b"this is not an image"), 400, "not a decodable image"),
    "truncated-png": (lambda s: _upload(s, png((1, 2, 3), (64, 64))[:120]), 400, "decodable"),
    "v2-wrong-shape": (
        lambda s: _v2(s, np.zeros((1, 16, 16, 3), np.float32)),
        400,
        EXPECTED,
    ),
    "v2-wrong-dtype": (
        lambda s: _v2(s, np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.float64), "FP64"),
        400,
        EXPECTED,
    ),
    "v2-size-mismatch": (lambda s: _v2_short(s), 400, EXPECTED),
    "v1-wrong-shape": (
        lambda s: requests.post(
            f"{s.url}/v1/models/tiny:predict", json={"instances": [[[0.0, 1.0, 2.0]]]}
        ),
        400,
        EXPECTED,
    ),
    "v1-not-json": (
        lambda s: requests.post(
            f"{s.url}/v1/models/tiny:predict",
            data=b'{"instances": [',
            headers={"content-type": "application/json"},
        ),
        400,
        "Unrecognized request format",
    ),
    "v2-unknown-model": (
        lambda s: requests.post(f"{s.url}/v2/models/other/infer", data=b"{}"),
        404,
        "Model with name other does not exist",
    ),
    "v1-unknown-model": (
        lambda s: requests.post(f"{s.url}/v1/models/other:predict", json={"instances": []}),
        404,
        "Model with name other does not exist",
    ),
    "v1-ragged": (
        lambda s: requests.post(
            f"{s.url}/v1/models/tiny:predict", json={"instances": [[1.0], [1.0, 2.0]]}
        ),
        400,
        "[32, 32, 3]",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_request_is_refused_and_server_stays_healthy(
    server: Server, case: tuple[Callable[[Server], requests.Response], int, str]
) -> None:
    send, status, words = case
    response = send(server)
    assert response.status_code == status, response.text[:300]
    assert words in response.json()["error"]
    assert requests.get(f"{server.url}/v2/health/ready").json() == {"ready": True}
    # And it still answers.
    assert _upload(server, png()).status_code == 200


def test_refusals_are_counted_by_reason(server: Server) -> None:
    _upload(server, b"not an image")
    _upload(server, _bomb())
    text = requests.get(f"{server.url}/metrics").text
    assert 'kubearts_predictor_errors_total{reason="undecodable"}' in text
    assert 'kubearts_predictor_errors_total{reason="too_many_pixels"}' in text
    assert 'kubearts_predictor_requests_total{code="400",endpoint="upload"}' in text
