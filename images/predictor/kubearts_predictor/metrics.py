"""Prometheus metrics, served with KServe's own at ``GET /metrics``.

* ``kubearts_predictor_requests_total{endpoint, code}``: every HTTP request to a predict
  endpoint (``upload``, ``v1``, ``v2``) and every gRPC inference (``grpc``), by status code;
* ``kubearts_predictor_request_seconds{endpoint}``: their latency;
* ``kubearts_predictor_batch_size``: rows per model execution (above 1 when dynamic batching
  gathered concurrent requests);
* ``kubearts_predictor_errors_total{reason}``: refused or failed requests by reason
  (``body_too_large``, ``too_many_pixels``, ``undecodable``, ``content_type``,
  ``bad_tensor``, ``inference``).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

REQUESTS: Final = Counter(
    "kubearts_predictor_requests",
    "Predict requests by endpoint and status code.",
    ["endpoint", "code"],
)
LATENCY: Final = Histogram(
    "kubearts_predictor_request_seconds",
    "Predict request latency by endpoint, in seconds.",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE: Final = Histogram(
    "kubearts_predictor_batch_size",
    "Rows per model execution.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
ERRORS: Final = Counter(
    "kubearts_predictor_errors",
    "Refused or failed predict requests by reason.",
    ["reason"],
)


def endpoint_of(method: str, path: str) -> str | None:
    """The metrics label of a predict request's path, None for other requests."""
    if method != "POST":
        return None
    if path == "/":
        return "upload"
    if path.startswith("/v1/models/") and path.endswith(":predict"):
        return "v1"
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return "v2"
    return None
