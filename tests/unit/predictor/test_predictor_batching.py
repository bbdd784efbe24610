"""Dynamic batching: concurrent requests share model executions, and each still gets its own
answer."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import requests
from predictor_helpers import IMAGE_SIZE, Server

from kubearts_predictor.client import v2_binary_outputs, v2_binary_request


def _batch_histogram(server: Server) -> tuple[float, float]:
    """(executions of one row, all executions) so far."""
    text = requests.get(f"{server.url}/metrics").text
    ones = float(re.search(r'kubearts_predictor_batch_size_bucket\{le="1.0"\} (\S+)', text)[1])
    count = float(re.search(r"kubearts_predictor_batch_size_count (\S+)", text)[1])
    return ones, count


def _infer(server: Server, row: np.ndarray) -> np.ndarray:
    body, headers = v2_binary_request(row, binary_output=False)
    response = requests.post(f"{server.url}/v2/models/tiny/infer", data=body, headers=headers)
    assert response.status_code == 200, response.text
    (logits,) = v2_binary_outputs(response.content, response.headers).values()
    return logits.ravel()


def test_concurrent_requests_are_batched(server: Server, reference: Any) -> None:
    rng = np.random.default_rng(5)
    rows = (rng.random((32, 1, IMAGE_SIZE, IMAGE_SIZE, 3)) * 255).astype(np.float32)
    ones_before, count_before = _batch_histogram(server)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda row: _infer(server, row), rows))
    ones_after, count_after = _batch_histogram(server)
    executions = count_after - count_before
    batched = executions - (ones_after - ones_before)
    assert 0 < executions < 32, "32 concurrent requests should need fewer than 32 executions"
    assert batched >= 1, "some execution should have run more than one row"
    for row, answer in zip(rows, answers, strict=True):
        np.testing.assert_allclose(answer, reference(row)[0], atol=1e-5)
