"""Specification of HTTP downloads, against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from conftest import FileServer, Route
from kubearts_dataset.download import RetryPolicy, download_http
from kubearts_dataset.errors import DatasetError
from kubearts_dataset.limits import Limits
from kubearts_dataset.progress import NullProgress

BODY = bytes(range(256)) * 4096  # 1 MiB
RETRY = RetryPolicy(attempts=3, backoff=0.5, timeout=5)


def _download(url: str, dest: Path, delays: list[float], limits: Limits | None = None) -> str:
    got = download_http(
        url,
        dest,
        limits=limits or Limits(),
        retry=RETRY,
        progress=NullProgress(),
        sleep=delays.append,
    )
    assert got.size == dest.stat().st_size
    return got.sha256


def test_a_body_is_streamed_to_disk_and_hashed(http_server: FileServer, tmp_path: Path) -> None:
    url = http_server.add("/data.tgz", Route(BODY))
    delays: list[float] = []
    assert _download(url, tmp_path / "a", delays) == hashlib.sha256(BODY).hexdigest()
    assert (tmp_path / "a").read_bytes() == BODY
    assert delays == []


@pytest.mark.parametrize("statuses", [[500], [503, 502], [429]], ids=["500", "503-502", "429"])
def test_server_errors_are_retried_with_exponential_backoff(
    http_server: FileServer, tmp_path: Path, statuses: list[int]
) -> None:
    url = http_server.add("/data.tgz", Route(BODY, fail_first=list(statuses)))
    delays: list[float] = []
    assert _download(url, tmp_path / "a", delays) == hashlib.sha256(BODY).hexdigest()
    assert len(http_server.requests) == len(statuses) + 1
    assert delays == [0.5, 1.0][: len(statuses)]


def test_persistent_server_errors_fail_after_the_last_attempt(
    http_server: FileServer, tmp_path: Path
) -> None:
    url = http_server.add("/data.tgz", Route(BODY, fail_first=[500] * 10))
    with pytest.raises(DatasetError, match="after 3 attempts: HTTP 500") as caught:
        _download(url, tmp_path / "a", [])
    assert caught.value.reason == "DownloadFailed"
    assert len(http_server.requests) == 3


@pytest.mark.parametrize("status", [404, 403, 410])
def test_client_errors_fail_at_once(http_server: FileServer, tmp_path: Path, status: int) -> None:
    url = http_server.add("/data.tgz", Route(BODY, fail_first=[status]))
    with pytest.raises(DatasetError, match=f"HTTP {status}") as caught:
        _download(url, tmp_path / "a", [])
    assert caught.value.reason == "DownloadFailed"
    assert len(http_server.requests) == 1


def test_an_unreachable_host_is_retried_then_reported(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    delays: list[float] = []
    with pytest.raises(DatasetError, match="unreachable") as caught:
        _download(f"http://127.0.0.1:{port}/data.tgz", tmp_path / "a", delays)
    assert caught.value.reason == "DownloadFailed"
    assert delays == [0.5, 1.0]


@pytest.mark.parametrize("ranges", [True, False], ids=["resumes-with-range", "starts-over"])
def test_a_body_cut_short_is_completed_on_retry(
    http_server: FileServer, tmp_path: Path, ranges: bool
) -> None:
    url = http_server.add("/data.tgz", Route(BODY, cut_first=1, ranges=ranges))
    assert _download(url, tmp_path / "a", []) == hashlib.sha256(BODY).hexdigest()
    assert (tmp_path / "a").read_bytes() == BODY
    assert http_server.requests[0][1] is None
    assert http_server.requests[1][1] == f"bytes={len(BODY) // 2}-"


def test_an_announced_size_over_the_limit_is_refused_before_reading(
    http_server: FileServer, tmp_path: Path
) -> None:
    url = http_server.add("/data.tgz", Route(BODY))
    with pytest.raises(DatasetError, match="size limit of 1000 bytes") as caught:
        _download(url, tmp_path / "a", [], Limits(max_bytes=1000))
    assert caught.value.reason == "LimitExceeded"
    assert len(http_server.requests) == 1
