"""Client side of the V2 REST binary tensor extension, for callers of a predictor.

A binary request is a JSON head followed by the raw tensor bytes; the
``inference-header-content-length`` header says where the head ends. The answer comes back
the same way when ``binary_data_output`` is asked for. Transport is the caller's (requests,
urllib, an async client): these functions only build and read bodies.

    body, headers = v2_binary_request(batch)
    response = requests.post(f"{url}/v2/models/{name}/infer", data=body, headers=headers)
    logits = v2_binary_outputs(response.content, response.headers)["logits"]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["BINARY_HEADER", "v2_binary_outputs", "v2_binary_request"]

BINARY_HEADER = "inference-header-content-length"
#: V2 datatypes of the numpy dtypes a client sends or reads.
_DATATYPES: dict[np.dtype[Any], str] = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
}
_DTYPES: dict[str, np.dtype[Any]] = {name: dtype for dtype, name in _DATATYPES.items()}


def v2_binary_request(
    tensor: np.ndarray, name: str = "images", *, binary_output: bool = True
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a V2 inference request carrying ``tensor`` as raw bytes
    (C order); with ``binary_output`` the outputs come back as raw bytes too."""
    array = np.ascontiguousarray(tensor)
    if array.dtype not in _DATATYPES:
        allowed = ", ".join(sorted(str(dtype) for dtype in _DATATYPES))
        raise ValueError(f"tensor {name!r} is {array.dtype}; send one of {allowed}")
    head: dict[str, object] = {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": _DATATYPES[array.dtype],
                "parameters": {"binary_data_size": array.nbytes},
            }
        ]
    }
    if binary_output:
        head["parameters"] = {"binary_data_output": True}
    encoded = json.dumps(head, separators=(",", ":")).encode()
    headers = {BINARY_HEADER: str(len(encoded)), "content-type": "application/octet-stream"}
    return encoded + array.tobytes(), headers


def v2_binary_outputs(body: bytes, headers: Mapping[str, str]) -> dict[str, np.ndarray]:
    """The outputs of a V2 answer by name, read in place from binary data where the answer
    has it (``np.frombuffer``), else from its JSON ``data``."""
    lowered = {key.lower(): value for key, value in headers.items()}
    length = int(lowered.get(BINARY_HEADER, len(body)))
    head = json.loads(body[:length])
    outputs: dict[str, np.ndarray] = {}
    start = length
    for output in head["outputs"]:
        dtype = _DTYPES.get(output["datatype"], np.dtype(np.float32))
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            array = np.asarray(output["data"], dtype=dtype)
        else:
            array = np.frombuffer(
                body, dtype=dtype, count=int(size) // dtype.itemsize, offset=start
            )
            start += int(size)
        outputs[output["name"]] = array.reshape(output["shape"])
    return outputs
