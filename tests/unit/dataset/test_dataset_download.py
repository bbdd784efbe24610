"""Specification of HTTP downloads, against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path

import pytest

from conftest import FileServer, Route
from datagen import image_bytes, tar_of
from kubearts_dataset.cli import main
from kubearts_dataset.download import AUTHORIZATION_ENV, RetryPolicy, download_http
from kubearts_dataset.errors import DatasetError
from kubearts_dataset.limits import Limits
from kubearts_dataset.progress import NullProgress

BODY = bytes(range(256)) * 4096  # 1 MiB
TOKEN = "Bearer s3cr3t-t0ken"
RETRY = RetryPolicy(attempts=3, backoff=0.5, timeout=5)


def _download(
    url: str,
    dest: Path,
    delays: list[float],
    limits: Limits | None = None,
    authorization: str | None = None,
) -> str:
    got = download_http(
        url,
        dest,
        limits=limits or Limits(),
        retry=RETRY,
        progress=NullProgress(),
        sleep=delays.append,
        authorization=authorization,
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


# --- private servers: the Authorization header ------------------------------------------------


def test_a_private_server_gets_the_authorization_header(
    http_server: FileServer, tmp_path: Path
) -> None:
    url = http_server.add("/private.tgz", Route(BODY, authorization=TOKEN))
    assert _download(url, tmp_path / "a", [], authorization=TOKEN) == (
        hashlib.sha256(BODY).hexdigest()
    )
    assert http_server.authorizations == [("/private.tgz", TOKEN)]


@pytest.mark.parametrize(
    ("authorization", "fix"),
    [
        pytest.param(
            None,
            "the server wants credentials: set spec.source.secretRef to a Secret whose key "
            "Authorization holds the full header value",
            id="without-header",
        ),
        pytest.param(
            "Bearer wrong-t0ken",
            "the server refused the credentials: check the Authorization key of the Secret",
            id="wrong-header",
        ),
    ],
)
def test_a_refused_authorization_fails_at_once_and_says_what_to_set(
    http_server: FileServer, tmp_path: Path, authorization: str | None, fix: str
) -> None:
    url = http_server.add("/private.tgz", Route(BODY, authorization=TOKEN))
    with pytest.raises(DatasetError) as caught:
        _download(url, tmp_path / "a", [], authorization=authorization)
    assert caught.value.reason == "DownloadFailed"
    assert f"{url} answered HTTP 401" in caught.value.message
    assert fix in caught.value.message
    assert "t0ken" not in str(caught.value)  # the credentials are named, never shown
    assert len(http_server.requests) == 1


def test_the_authorization_header_is_not_sent_where_the_server_redirects(
    http_server: FileServer, tmp_path: Path
) -> None:
    cdn = http_server.add("/cdn/data.tgz", Route(BODY))
    url = http_server.add("/data.tgz", Route(b"", authorization=TOKEN, redirect=cdn))
    assert _download(url, tmp_path / "a", [], authorization=TOKEN) == (
        hashlib.sha256(BODY).hexdigest()
    )
    assert http_server.authorizations == [("/data.tgz", TOKEN), ("/cdn/data.tgz", None)]


@pytest.mark.parametrize(
    ("token", "code", "reason"),
    [
        pytest.param(TOKEN, 0, "Ingested", id="with-variable"),
        pytest.param(None, 10, "DownloadFailed", id="without-variable"),
    ],
)
def test_ingest_reads_the_header_from_the_environment_and_never_reports_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    http_server: FileServer,
    tmp_path: Path,
    token: str | None,
    code: int,
    reason: str,
) -> None:
    png = image_bytes()
    archive = tar_of(tmp_path / "src.tgz", {"roses/1.png": png, "tulips/1.png": png})
    url = http_server.add("/private.tgz", Route(archive.read_bytes(), authorization=TOKEN))
    if token is None:
        monkeypatch.delenv(AUTHORIZATION_ENV, raising=False)
    else:
        monkeypatch.setenv(AUTHORIZATION_ENV, token)
    result_file = tmp_path / "result.json"
    args = ["ingest", "--source", url, "--target", str(tmp_path / "ds")]
    assert main([*args, "--result", str(result_file), "--log-level", "DEBUG"]) == code
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[-1])["reason"] == reason
    for text in (out, err, result_file.read_text(), *_files_below(tmp_path / "ds")):
        assert "t0ken" not in text


def _files_below(folder: Path) -> list[str]:
    """The texts of a dataset directory's metadata (reports, catalogue)."""
    return [p.read_text() for p in (folder / ".kubearts").rglob("*") if p.is_file()]


# -- the overall deadline ---------------------------------------------------------------------


def test_a_trickling_server_is_stopped_by_the_deadline(
    http_server: FileServer, tmp_path: Path
) -> None:
    # One byte every 50 ms: no read ever waits the 5 s timeout, the whole body takes 10 s.
    url = http_server.add("/slow.tgz", Route(bytes(200), trickle=0.05))
    retry = RetryPolicy(attempts=2, backoff=0.01, timeout=5, deadline=1)
    started = time.monotonic()
    with pytest.raises(DatasetError, match="deadline of 1 seconds") as caught:
        download_http(url, tmp_path / "a", limits=Limits(), retry=retry, progress=NullProgress())
    assert time.monotonic() - started < 3
    assert (caught.value.reason, caught.value.detail) == ("DownloadFailed", "DownloadTimeout")


def test_the_deadline_covers_retries_and_their_waits(
    http_server: FileServer, tmp_path: Path
) -> None:
    url = http_server.add("/data.tgz", Route(BODY, fail_first=[503] * 10))
    retry = RetryPolicy(attempts=10, backoff=0.4, timeout=5, deadline=1)
    started = time.monotonic()
    with pytest.raises(DatasetError, match="download deadline") as caught:
        download_http(url, tmp_path / "a", limits=Limits(), retry=retry, progress=NullProgress())
    assert time.monotonic() - started < 3
    assert caught.value.detail == "DownloadTimeout"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_deadline_is_set_by_flag_or_environment(
    http_server: FileServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    url = http_server.add("/slow.tgz", Route(bytes(200), trickle=0.05))
    extra = ["--download-deadline", "1"] if how == "flag" else []
    if how == "env":
        monkeypatch.setenv("KUBEARTS_DOWNLOAD_DEADLINE", "1")
    code = main(["ingest", "--source", url, "--target", str(tmp_path / "t"), *extra])
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (code, result["reason"]) == (10, "DownloadFailed")
    assert result.get("detail") == "DownloadTimeout"
