"""Specification of S3 sources and targets, against moto's S3 server on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import FileServer, Route
from datagen import DIGITS_CLASSES, DIGITS_SAMPLES, image_bytes, tar_tree
from kubearts_dataset.cli import main
from kubearts_dataset.download import RetryPolicy
from kubearts_dataset.errors import DatasetError
from kubearts_dataset.limits import Limits
from kubearts_dataset.progress import NullProgress
from kubearts_dataset.s3 import download_object, make_client

PNG = image_bytes()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main([*args, "--retries", "2", "--backoff", "0.01"])
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    return code, result


def _keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_an_archive_object_is_ingested(
    capsys: pytest.CaptureFixture[str],
    s3_bucket: tuple[Any, str],
    digits_folder: Path,
    tmp_path: Path,
) -> None:
    client, bucket = s3_bucket
    archive = tar_tree(tmp_path / "digits.tgz", digits_folder)
    client.upload_file(str(archive), bucket, "archives/digits.tgz")
    code, result = run(
        capsys,
        "ingest",
        "--source",
        f"s3://{bucket}/archives/digits.tgz",
        "--target",
        str(tmp_path / "ds"),
    )
    assert code == 0, result
    assert (result["sampleCount"], result["classCount"]) == (DIGITS_SAMPLES, DIGITS_CLASSES)


def test_a_prefix_of_files_is_ingested(
    capsys: pytest.CaptureFixture[str], s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    for label in ("玫瑰", "tulips"):
        for index in range(3):
            client.put_object(
                Bucket=bucket, Key=f"flowers/{label}/{index}.png", Body=image_bytes(color=index)
            )
    client.put_object(Bucket=bucket, Key="flowers/tulips/", Body=b"")  # a folder marker
    client.put_object(Bucket=bucket, Key="flowers-other/x.png", Body=PNG)  # not below the prefix
    code, result = run(
        capsys, "ingest", "--source", f"s3://{bucket}/flowers", "--target", str(tmp_path / "ds")
    )
    assert code == 0, result
    assert result["classes"] == {"tulips": 3, "玫瑰": 3}
    assert not (tmp_path / "ds/x.png").exists()


def test_a_missing_object_or_prefix_is_a_download_failure(
    capsys: pytest.CaptureFixture[str], s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    _, bucket = s3_bucket
    code, result = run(
        capsys, "ingest", "--source", f"s3://{bucket}/nothing.tgz", "--target", str(tmp_path / "ds")
    )
    assert (code, result["reason"]) == (10, "DownloadFailed")
    assert "no object with this key and no object below this prefix" in result["message"]


def test_a_missing_bucket_is_a_download_failure(
    capsys: pytest.CaptureFixture[str], s3_env: str, tmp_path: Path
) -> None:
    code, result = run(
        capsys, "ingest", "--source", "s3://no-such-bucket/x/", "--target", str(tmp_path / "ds")
    )
    assert (code, result["reason"]) == (10, "DownloadFailed")
    assert "NoSuchBucket" in result["message"]


def test_a_prefix_over_the_file_limit_is_refused_before_downloading(
    capsys: pytest.CaptureFixture[str], s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    for index in range(4):
        client.put_object(Bucket=bucket, Key=f"d/c/{index}.png", Body=PNG)
    code, result = run(
        capsys,
        "ingest",
        "--source",
        f"s3://{bucket}/d/",
        "--target",
        str(tmp_path / "ds"),
        "--max-files",
        "3",
    )
    assert (code, result["reason"]) == (14, "LimitExceeded")
    assert list((tmp_path / "ds").rglob("*.png")) == []


def test_an_s3_target_receives_the_data_and_can_be_published(
    capsys: pytest.CaptureFixture[str],
    s3_bucket: tuple[Any, str],
    digits_folder: Path,
    tmp_path: Path,
) -> None:
    client, bucket = s3_bucket
    target = f"s3://{bucket}/datasets/digits"
    code, result = run(
        capsys,
        "ingest",
        "--source",
        str(digits_folder),
        "--target",
        target,
        "--work-dir",
        str(tmp_path),
    )
    assert code == 0, result
    keys = _keys(client, bucket, "datasets/digits/")
    assert len([k for k in keys if k.endswith(".png")]) == DIGITS_SAMPLES
    assert "datasets/digits/.kubearts/ingest.json" in keys
    assert list(tmp_path.iterdir()) == []  # the scratch copy is gone

    code, version = run(
        capsys, "publish", "--dataset", target, "--version", "v1", "--train-ratio", "0.8"
    )
    assert code == 0, version
    assert (version["trainCount"], version["evalCount"]) == (1438, 359)
    stored = client.get_object(
        Bucket=bucket, Key="datasets/digits/.kubearts/versions/v1/version.json"
    )
    assert json.loads(stored["Body"].read())["manifestDigest"] == version["manifestDigest"]
    code, again = run(
        capsys, "publish", "--dataset", target, "--version", "v1", "--train-ratio", "0.9"
    )
    assert (code, again["reason"]) == (20, "VersionImmutable")


def _ingest_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, target: str
) -> dict[str, Any]:
    (tmp_path / name / "c").mkdir(parents=True)
    (tmp_path / name / "c" / f"{name}.png").write_bytes(image_bytes(color=len(name)))
    code, result = run(capsys, "ingest", "--source", str(tmp_path / name), "--target", target)
    assert code == 0, result
    return result


def test_reingesting_into_s3_removes_stale_objects(
    capsys: pytest.CaptureFixture[str], s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    _ingest_folder(capsys, tmp_path, "one", f"s3://{bucket}/ds")
    client.put_object(Bucket=bucket, Key="ds/old-layout/1.png", Body=PNG)  # no version lists it
    result = _ingest_folder(capsys, tmp_path, "two", f"s3://{bucket}/ds")
    assert _keys(client, bucket) == [
        "ds/.kubearts/ingest.json",
        "ds/.kubearts/samples.jsonl",
        f"ds/{result['dataFolder']}/c/two.png",
    ]


def test_reingesting_into_s3_keeps_the_objects_of_published_versions(
    capsys: pytest.CaptureFixture[str], s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    target = f"s3://{bucket}/ds"
    first = _ingest_folder(capsys, tmp_path, "one", target)
    code, version = run(
        capsys, "publish", "--dataset", target, "--version", "v1", "--train-ratio", "1"
    )
    assert code == 0, version
    second = _ingest_folder(capsys, tmp_path, "two", target)
    keys = _keys(client, bucket)
    assert f"ds/{first['dataFolder']}/c/one.png" in keys
    assert f"ds/{second['dataFolder']}/c/two.png" in keys
    assert "ds/.kubearts/versions/v1/train.jsonl" in keys
    again = _ingest_folder(capsys, tmp_path / "again", "two", target)
    assert again["dataFolder"] == second["dataFolder"]
    assert _keys(client, bucket) == keys


def test_an_s3_target_holding_foreign_objects_is_refused(
    capsys: pytest.CaptureFixture[str], s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="backups/db.sql", Body=b"precious")
    (tmp_path / "src/c").mkdir(parents=True)
    (tmp_path / "src/c/1.png").write_bytes(PNG)
    code, result = run(
        capsys, "ingest", "--source", str(tmp_path / "src"), "--target", f"s3://{bucket}/backups"
    )
    assert (code, result["reason"]) == (17, "InvalidTarget")
    assert _keys(client, bucket) == ["backups/db.sql"]


def test_an_object_served_too_slowly_is_stopped_by_the_deadline(
    http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store that trickles the body: one byte every 50 ms, never a 5 s pause.
    http_server.add("/bucket/slow.tgz", Route(bytes(200), trickle=0.05))
    monkeypatch.setenv("KUBEARTS_S3_ENDPOINT", http_server.base)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    retry = RetryPolicy(attempts=2, backoff=0.01, timeout=5, deadline=1)
    started = time.monotonic()
    with pytest.raises(DatasetError, match="deadline") as caught:
        download_object(
            make_client(retry),
            "bucket",
            "slow.tgz",
            tmp_path / "a",
            limits=Limits(),
            retry=retry,
            progress=NullProgress(),
        )
    assert time.monotonic() - started < 3
    assert (caught.value.reason, caught.value.detail) == ("DownloadFailed", "DownloadTimeout")
