"""Specification of credentials in source URLs: they authenticate, and are never shown.

A real HTTP server on loopback requires basic authentication; every place the worker writes
to (standard output and error, the result file, the report in the dataset directory) is
searched for the secret.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import FileServer, Route
from datagen import image_bytes, tar_of
from kubearts_dataset.cli import main
from kubearts_dataset.download import split_credentials
from kubearts_dataset.redact import redact_text, redact_url

USER = "reader"
PASSWORD = "pa55%2Fw0rd"  # as written in the URL; the server sees "pa55/w0rd"
SECRETS = (PASSWORD, "pa55/w0rd", base64.b64encode(b"reader:pa55/w0rd").decode())
SIGNATURE = "0123456789abcdefsig"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("https://example.com/a.tgz", "https://example.com/a.tgz", id="plain"),
        pytest.param(
            "http://user:secret@host:8080/x.tar.gz",
            "http://user:***@host:8080/x.tar.gz",
            id="user-and-password",
        ),
        pytest.param(
            "https://ghp_token@github.com/a.tgz", "https://***@github.com/a.tgz", id="lone-user"
        ),
        pytest.param(
            "https://b.s3.amazonaws.com/k.tgz?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIA%2F20260101&X-Amz-Expires=300&X-Amz-Signature=abc"
            "&X-Amz-Security-Token=tok",
            "https://b.s3.amazonaws.com/k.tgz?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=***&X-Amz-Expires=300&X-Amz-Signature=***"
            "&X-Amz-Security-Token=***",
            id="aws-presigned",
        ),
        pytest.param(
            "https://acct.blob.core.windows.net/c/a.zip?sv=2024&se=2026&sp=r&sig=abc%3D",
            "https://acct.blob.core.windows.net/c/a.zip?sv=2024&se=2026&sp=r&sig=***",
            id="azure-sas",
        ),
        pytest.param(
            "https://obs.example.com/a.zip?AccessKeyId=AK&Expires=1&Signature=abc",
            "https://obs.example.com/a.zip?AccessKeyId=AK&Expires=1&Signature=***",
            id="obs-signature",
        ),
        pytest.param(
            "https://h/a.zip?token=t&access_token=u&api_key=k&page=2",
            "https://h/a.zip?token=***&access_token=***&api_key=***&page=2",
            id="tokens",
        ),
        pytest.param("s3://bucket/key/a.tgz", "s3://bucket/key/a.tgz", id="s3"),
        pytest.param("/data/a.tgz", "/data/a.tgz", id="path"),
        pytest.param("http://u:p@[::1/x", "http://***", id="unparseable"),
    ],
)
def test_urls_are_shown_without_their_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_every_url_in_a_text_is_redacted() -> None:
    text = "failed: <urlopen http://u:secret@h/x?sig=abc> then 'https://h/y?token=t'."
    assert redact_text(text) == (
        "failed: <urlopen http://u:***@h/x?sig=***> then 'https://h/y?token=***'."
    )


def test_credentials_in_a_url_become_basic_authentication() -> None:
    plain, header = split_credentials(f"http://{USER}:{PASSWORD}@127.0.0.1:8080/x.tgz")
    assert plain == "http://127.0.0.1:8080/x.tgz"
    assert header == "Basic " + base64.b64encode(b"reader:pa55/w0rd").decode()
    assert split_credentials("http://127.0.0.1/x.tgz") == ("http://127.0.0.1/x.tgz", None)


# -- end to end -------------------------------------------------------------------------------


@pytest.fixture
def private_url(http_server: FileServer, tmp_path: Path) -> str:
    """A URL with user and password for an archive served only with basic authentication."""
    archive = tar_of(
        tmp_path / "a.tar.gz", {"roses/1.png": image_bytes(), "tulips/1.png": image_bytes()}
    )
    header = "Basic " + base64.b64encode(b"reader:pa55/w0rd").decode()
    url = http_server.add("/private/a.tar.gz", Route(archive.read_bytes(), authorization=header))
    return url.replace("http://", f"http://{USER}:{PASSWORD}@")


def _ingest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *source: str
) -> tuple[int, dict[str, Any], str]:
    """Run ingest; returns the exit code, the result and everything the worker wrote."""
    target, result_file = tmp_path / "target", tmp_path / "result.json"
    arguments = ["ingest", *source, "--target", str(target), "--result", str(result_file)]
    code = main([*arguments, "--retries", "2", "--backoff", "0.01", "--log-level", "DEBUG"])
    out, err = capsys.readouterr()
    written = [out, err, result_file.read_text()]
    report = target / ".kubearts" / "ingest.json"
    if report.exists():
        written.append(report.read_text())
    return code, json.loads(out.splitlines()[-1]), "\n".join(written)


def _assert_no_secret(written: str) -> None:
    for secret in (*SECRETS, SIGNATURE):
        assert secret not in written


def test_a_url_with_credentials_authenticates_and_is_never_shown(
    capsys: pytest.CaptureFixture[str], private_url: str, tmp_path: Path
) -> None:
    code, result, written = _ingest(capsys, tmp_path, "--source", private_url)
    assert (code, result["sampleCount"]) == (0, 2)
    assert result["source"] == private_url.replace(PASSWORD, "***")
    _assert_no_secret(written)


def test_refused_credentials_are_not_shown_either(
    capsys: pytest.CaptureFixture[str], private_url: str, tmp_path: Path
) -> None:
    wrong = private_url.replace(PASSWORD, "wrong-pa55%2Fw0rd")
    code, result, written = _ingest(capsys, tmp_path, "--source", wrong)
    assert (code, result["reason"]) == (10, "DownloadFailed")
    assert "HTTP 401" in result["message"]
    assert "wrong-pa55" not in written
    _assert_no_secret(written)


@pytest.mark.parametrize("how", ["source-env", "default-variable"])
def test_the_source_can_come_from_the_environment(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    private_url: str,
    tmp_path: Path,
    how: str,
) -> None:
    if how == "source-env":
        monkeypatch.setenv("DATA_URL", private_url)
        source = ["--source-env", "DATA_URL"]
    else:
        monkeypatch.setenv("KUBEARTS_SOURCE_URL", private_url)
        source = []
    code, result, written = _ingest(capsys, tmp_path, *source)
    assert (code, result["sampleCount"]) == (0, 2)
    _assert_no_secret(written)


def test_a_missing_source_variable_is_an_invalid_argument(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBEARTS_SOURCE_URL", raising=False)
    code, result, _ = _ingest(capsys, tmp_path, "--source-env", "NOT_SET_ANYWHERE")
    assert (code, result["reason"]) == (2, "InvalidArgument")
    assert "NOT_SET_ANYWHERE" in result["message"]


@pytest.mark.parametrize("served", [True, False], ids=["served", "not-found"])
def test_presigned_query_strings_are_redacted(
    capsys: pytest.CaptureFixture[str], http_server: FileServer, tmp_path: Path, served: bool
) -> None:
    archive = tar_of(tmp_path / "a.tar.gz", {"roses/1.png": image_bytes()})
    path = f"/bucket/a.tar.gz?X-Amz-Expires=300&X-Amz-Signature={SIGNATURE}"
    if served:
        http_server.add(path, Route(archive.read_bytes()))
    code, result, written = _ingest(capsys, tmp_path, "--source", http_server.base + path)
    assert code == (0 if served else 10)
    if served:
        assert result["source"].endswith("?X-Amz-Expires=300&X-Amz-Signature=***")
    _assert_no_secret(written)
