"""kubearts_predictor.client: V2 binary request bodies and answers, read without copies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kubearts_predictor.client import BINARY_HEADER, v2_binary_outputs, v2_binary_request


def test_a_request_is_a_json_head_then_the_raw_tensor() -> None:
    tensor = np.arange(24, dtype=np.float32).reshape(1, 2, 4, 3)
    body, headers = v2_binary_request(tensor)
    length = int(headers[BINARY_HEADER])
    head = json.loads(body[:length])
    assert head == {
        "inputs": [
            {
                "name": "images",
                "shape": [1, 2, 4, 3],
                "datatype": "FP32",
                "parameters": {"binary_data_size": 96},
            }
        ],
        "parameters": {"binary_data_output": True},
    }
    assert body[length:] == tensor.tobytes()


def test_a_non_contiguous_tensor_is_sent_in_c_order() -> None:
    tensor = np.arange(12, dtype=np.uint8).reshape(3, 4).T
    body, headers = v2_binary_request(tensor, "x", binary_output=False)
    length = int(headers[BINARY_HEADER])
    assert json.loads(body[:length])["inputs"][0]["datatype"] == "UINT8"
    assert "parameters" not in json.loads(body[:length])
    assert body[length:] == np.ascontiguousarray(tensor).tobytes()


def _answer(outputs: list[tuple[str, np.ndarray, bool]]) -> tuple[bytes, dict[str, str]]:
    head, tail = [], b""
    for name, array, binary in outputs:
        entry: dict[str, object] = {"name": name, "shape": list(array.shape), "datatype": "FP32"}
        if binary:
            entry["parameters"] = {"binary_data_size": array.nbytes}
            tail += array.tobytes()
        else:
            entry["data"] = array.ravel().tolist()
        head.append(entry)
    encoded = json.dumps({"outputs": head}).encode()
    return encoded + tail, {"Inference-Header-Content-Length": str(len(encoded))}


def test_outputs_are_read_binary_or_json_in_order() -> None:
    logits = np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5)
    scores = np.ones((2, 1), dtype=np.float32)
    probs = np.full((2, 5), 0.2, dtype=np.float32)
    body, headers = _answer([("logits", logits, True), ("s", scores, False), ("p", probs, True)])
    outputs = v2_binary_outputs(body, headers)
    assert list(outputs) == ["logits", "s", "p"]
    np.testing.assert_array_equal(outputs["logits"], logits)
    np.testing.assert_array_equal(outputs["s"], scores)
    np.testing.assert_array_equal(outputs["p"], probs)


def test_a_plain_json_answer_needs_no_header() -> None:
    body = json.dumps(
        {"outputs": [{"name": "o", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}
    )
    outputs = v2_binary_outputs(body.encode(), {})
    np.testing.assert_array_equal(outputs["o"], [1.0, 2.0])


def test_an_unsupported_dtype_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match=r"tensor 'images' is complex64; send one of float32"):
        v2_binary_request(np.zeros(2, dtype=np.complex64))
