"""Specification of ``remove``: a dataset directory goes, local or on s3; anything else stays.

Dataset directories are made by a real ``ingest``; the s3 cases run against moto's S3 server
on loopback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from datagen import image_bytes
from kubearts_dataset.cli import main
from kubearts_dataset.errors import EXIT_CODES
from kubearts_dataset.result import compact

PNG = image_bytes()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """Run the CLI; the exit code and the result event."""
    code = main([*args, "--retries", "2", "--backoff", "0.01"])
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result.pop("event") == "result"
    return code, result


def remove(
    capsys: pytest.CaptureFixture[str], dataset: str, *extra: str
) -> tuple[int, dict[str, Any]]:
    return run(capsys, "remove", "--dataset", dataset, *extra)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Two classes of one image each."""
    for label in ("roses", "tulips"):
        (tmp_path / "src" / label).mkdir(parents=True)
        (tmp_path / "src" / label / "1.png").write_bytes(PNG)
    return tmp_path / "src"


def ingested(capsys: pytest.CaptureFixture[str], source: Path, target: str, *extra: str) -> None:
    """Ingest ``source`` into ``target`` and publish a version, so that read-only version
    files are part of what goes."""
    code, result = run(capsys, "ingest", "--source", str(source), "--target", target, *extra)
    assert code == 0, result
    code, result = run(
        capsys, "publish", "--dataset", target, "--version", "v1", "--train-ratio", "0.5", *extra
    )
    assert code == 0, result


def _keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


# --- local directories -----------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "pvc"], ids=["path", "pvc-uri"])
def test_a_dataset_directory_is_removed_with_everything_in_it(
    capsys: pytest.CaptureFixture[str], source: Path, tmp_path: Path, form: str
) -> None:
    target = tmp_path / "claims" / "work" / "datasets" / "flowers"
    ingested(capsys, source, str(target))
    files = sum(1 for p in target.rglob("*") if p.is_file())
    name = str(target) if form == "path" else "pvc://work/datasets/flowers"
    result_file = tmp_path / "result.json"
    code, result = remove(
        capsys, name, "--pvc-root", str(tmp_path / "claims"), "--result", str(result_file)
    )
    assert (code, result["status"], result["reason"]) == (0, "Succeeded", "Removed")
    assert (result["target"], result["removedFiles"]) == (name, files)
    assert result_file.read_text() == compact(result)
    assert not target.exists()
    assert (tmp_path / "claims" / "work" / "datasets").is_dir()  # only the directory goes
    assert source.is_dir()


def test_removing_what_is_already_gone_succeeds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, result = remove(capsys, str(tmp_path / "never-ingested"))
    assert (code, result["reason"], result["removedFiles"]) == (0, "Removed", 0)
    assert "nothing to remove" in result["message"]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d: (d / "thesis.tex").write_text("precious"), id="plain-folder"),
        pytest.param(
            lambda d: ((d / ".kubearts").mkdir(), (d / "thesis.tex").write_text("x")),
            id="metadata-folder-without-report",
        ),
        pytest.param(
            lambda d: ((d / ".kubearts").mkdir(), (d / "data/notes").mkdir(parents=True)),
            id="data-folder-not-ours",
        ),
    ],
)
def test_a_folder_that_is_not_a_dataset_directory_is_refused_and_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make: Any
) -> None:
    folder = tmp_path / "home"
    folder.mkdir()
    make(folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    code, result = remove(capsys, str(folder))
    assert (code, result["status"], result["reason"]) == (
        EXIT_CODES["InvalidTarget"],
        "Failed",
        "InvalidTarget",
    )
    assert "not a KubeArts dataset directory" in result["message"]
    assert "nothing was removed" in result["message"]
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_what_an_ingest_stopped_before_its_report_leaves_is_removed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A Dataset deleted during its first ingest: staging, maybe a data folder, no report."""
    target = tmp_path / "ds"
    for folder in (".kubearts/staging/ds-ingest-1/content/a", "data/0123456789abcdef/a"):
        (target / folder).mkdir(parents=True)
        (target / folder / "1.png").write_bytes(PNG)
    code, result = remove(capsys, str(target))
    assert (code, result["reason"], result["removedFiles"]) == (0, "Removed", 2)
    assert not target.exists()


def test_a_link_to_a_dataset_directory_is_refused_and_nothing_followed(
    capsys: pytest.CaptureFixture[str], source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "ds"
    ingested(capsys, source, str(target))
    (tmp_path / "link").symlink_to(target)
    code, result = remove(capsys, str(tmp_path / "link"))
    assert (code, result["reason"]) == (EXIT_CODES["InvalidTarget"], "InvalidTarget")
    assert (target / ".kubearts" / "ingest.json").is_file()


def test_links_inside_a_dataset_directory_are_removed_not_followed(
    capsys: pytest.CaptureFixture[str], source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "ds"
    ingested(capsys, source, str(target))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (target / "to-folder").symlink_to(outside)
    (target / "to-file").symlink_to(outside / "keep.txt")
    code, result = remove(capsys, str(target))
    assert code == 0, result
    assert not target.exists()
    assert (outside / "keep.txt").read_text() == "keep"


# --- s3 prefixes -----------------------------------------------------------------------------


def test_an_s3_dataset_prefix_is_removed_and_its_neighbours_kept(
    capsys: pytest.CaptureFixture[str], s3_bucket: tuple[Any, str], source: Path
) -> None:
    client, bucket = s3_bucket
    ingested(capsys, source, f"s3://{bucket}/datasets/flowers")
    client.put_object(Bucket=bucket, Key="datasets/flowers-old/x.png", Body=PNG)
    client.put_object(Bucket=bucket, Key="datasets/other.txt", Body=b"x")
    stored = [k for k in _keys(client, bucket) if k.startswith("datasets/flowers/")]
    code, result = remove(capsys, f"s3://{bucket}/datasets/flowers")
    assert (code, result["reason"], result["removedFiles"]) == (0, "Removed", len(stored))
    assert _keys(client, bucket) == ["datasets/flowers-old/x.png", "datasets/other.txt"]
    code, again = remove(capsys, f"s3://{bucket}/datasets/flowers")
    assert (code, again["removedFiles"]) == (0, 0)


def test_an_s3_prefix_without_a_data_set_is_refused_and_kept(
    capsys: pytest.CaptureFixture[str], s3_bucket: tuple[Any, str]
) -> None:
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="backups/db.sql", Body=b"precious")
    client.put_object(Bucket=bucket, Key="backups/.kubearts/notes", Body=b"not a report")
    code, result = remove(capsys, f"s3://{bucket}/backups")
    assert (code, result["reason"]) == (EXIT_CODES["InvalidTarget"], "InvalidTarget")
    assert "holds 2 objects" in result["message"]
    assert _keys(client, bucket) == ["backups/.kubearts/notes", "backups/db.sql"]


def test_an_s3_prefix_an_ingest_stopped_before_its_report_is_removed(
    capsys: pytest.CaptureFixture[str], s3_bucket: tuple[Any, str]
) -> None:
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="ds/data/0123456789abcdef/a/1.png", Body=PNG)
    client.put_object(Bucket=bucket, Key="ds/data/0123456789abcdef/a/2.png", Body=PNG)
    code, result = remove(capsys, f"s3://{bucket}/ds")
    assert (code, result["reason"], result["removedFiles"]) == (0, "Removed", 2)
    assert _keys(client, bucket) == []


def test_an_unreachable_store_is_a_remove_failure(
    capsys: pytest.CaptureFixture[str], s3_env: str
) -> None:
    code, result = remove(capsys, "s3://no-such-bucket-here/datasets/flowers")
    assert (code, result["reason"]) == (EXIT_CODES["RemoveFailed"], "RemoveFailed")
    assert "no-such-bucket-here" in result["message"]
