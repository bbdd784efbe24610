"""Specification of S3 sources and targets, against moto's S3 server on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from datagen import DIGITS_CLASSES, DIGITS_SAMPLES, image_bytes, tar_tree
from kubearts_dataset.cli import main

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


def test_reingesting_into_s3_removes_stale_objects(
    capsys: pytest.CaptureFixture[str], s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    for name in ("one", "two"):
        (tmp_path / name / "c").mkdir(parents=True)
        (tmp_path / name / "c" / f"{name}.png").write_bytes(PNG)
        code, result = run(
            capsys, "ingest", "--source", str(tmp_path / name), "--target", f"s3://{bucket}/ds"
        )
        assert code == 0, result
    assert _keys(client, bucket) == [
        "ds/.kubearts/ingest.json",
        "ds/.kubearts/samples.jsonl",
        "ds/c/two.png",
    ]


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
