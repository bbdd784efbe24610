"""Specification of the command line: ingest and publish end to end, results, exit codes.

Archives are served by a real HTTP server on loopback; the realistic data set is
scikit-learn's digits written out as PNG class folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from conftest import FileServer, Route
from datagen import (
    DIGITS_CLASSES,
    DIGITS_SAMPLES,
    image_bytes,
    manifest_lines,
    noisy_jpeg,
    tar_of,
    tar_tree,
    write_digits,
    zip_of,
)
from kubearts_dataset.cli import main
from kubearts_dataset.errors import EXIT_CODES, Reason
from kubearts_dataset.result import compact

PNG = image_bytes()


def run(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """Run the CLI; returns the exit code, the result event and the progress events."""
    code = main(list(args))
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["event"] == "result"
    return code, events[-1], events[:-1]


def ingest(
    capsys: pytest.CaptureFixture[str], source: str, target: Path, *extra: str
) -> tuple[int, dict[str, Any]]:
    result_file = target.parent / f"{target.name}.result.json"
    code, result, _ = run(
        capsys,
        "ingest",
        "--source",
        source,
        "--target",
        str(target),
        "--result",
        str(result_file),
        "--retries",
        "2",
        "--backoff",
        "0.01",
        *extra,
    )
    assert result_file.read_text() == compact({k: v for k, v in result.items() if k != "event"})
    return code, result


def publish(
    capsys: pytest.CaptureFixture[str], dataset: Path | str, *extra: str
) -> tuple[int, dict[str, Any]]:
    code, result, _ = run(capsys, "publish", "--dataset", str(dataset), *extra)
    return code, result


def data_folder(target: Path) -> Path:
    """The data folder the dataset directory's report names."""
    report = json.loads((target / ".kubearts/ingest.json").read_text())
    return target / report["dataFolder"]


def data_files(target: Path) -> set[str]:
    """Everything in the current data of a dataset directory, relative to its data folder."""
    folder = data_folder(target)
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def sources(target: Path, version: str) -> list[str]:
    """The ``source`` of every line of a published version's manifests."""
    folder = target / ".kubearts/versions" / version
    return [
        json.loads(line)["source"]
        for name in ("train.jsonl", "eval.jsonl")
        for line in (folder / name).read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def digits_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits-src")
    write_digits(root / "digits")
    return tar_tree(root.parent / "digits.tar.gz", root)


@pytest.fixture
def digits_url(http_server: FileServer, digits_archive: Path) -> str:
    return http_server.add("/digits.tar.gz", Route(digits_archive.read_bytes()))


# -- ingest ---------------------------------------------------------------------------------


def test_digits_over_http_are_ingested_with_every_image_counted(
    capsys: pytest.CaptureFixture[str], digits_url: str, tmp_path: Path
) -> None:
    target = tmp_path / "ds"
    code, result, progress = run(capsys, "ingest", "--source", digits_url, "--target", str(target))
    assert code == 0
    assert (result["sampleCount"], result["classCount"]) == (DIGITS_SAMPLES, DIGITS_CLASSES)
    assert result["classes"] == write_digits(tmp_path / "expected")
    assert result["invalidCount"] == 0
    assert re.fullmatch(r"data/[0-9a-f]{16}", result["dataFolder"])
    assert result["dataRoot"] == "digits"
    assert result["digest"].startswith("sha256:")
    assert {event["phase"] for event in progress} == {"download", "unpack", "verify"}
    assert progress[-1] == {
        "event": "progress",
        "phase": "verify",
        "bytes": result["sizeBytes"],
        "totalBytes": result["sizeBytes"],
        "files": DIGITS_SAMPLES,
        "totalFiles": DIGITS_SAMPLES,
    }
    report = json.loads((target / ".kubearts/ingest.json").read_text())
    assert report["digest"] == result["digest"]
    assert len((target / ".kubearts/samples.jsonl").read_text().splitlines()) == DIGITS_SAMPLES
    assert sorted(p.name for p in (target / ".kubearts").iterdir()) == [
        "ingest.json",
        "samples.jsonl",
    ]


def test_the_right_sha256_is_accepted(
    capsys: pytest.CaptureFixture[str], digits_url: str, digits_archive: Path, tmp_path: Path
) -> None:
    digest = hashlib.sha256(digits_archive.read_bytes()).hexdigest()
    code, result = ingest(
        capsys, digits_url, tmp_path / "ds", "--sha256", f"sha256:{digest.upper()}"
    )
    assert code == 0
    assert result["archiveSha256"] == digest


def _served(http_server: FileServer, tmp_path: Path, name: str, blob: bytes) -> str:
    return http_server.add(f"/{name}", Route(blob))


FAILURES = [
    pytest.param(
        lambda p: tar_of(p, {"digits/0/1.png": PNG}),
        ["--sha256", "0" * 64],
        "ChecksumMismatch",
        id="wrong-sha256",
    ),
    pytest.param(
        lambda p: zip_of(p, {"roses/1.png": PNG, "../../../escaped.png": PNG}),
        [],
        "UnsafeArchive",
        id="zip-slip",
    ),
    pytest.param(
        lambda p: tar_of(p, {"roses/1.png": PNG, "roses/2.png": PNG}),
        ["--max-files", "1"],
        "LimitExceeded",
        id="too-many-entries",
    ),
    pytest.param(
        lambda p: tar_of(p, {"roses/big.png": bytes(50_000)}, mode="w"),
        ["--max-bytes", "40Ki"],
        "LimitExceeded",
        id="over-size-limit",
    ),
    pytest.param(
        lambda p: tar_of(p, {"roses/readme.txt": b"no images here", "tulips/x.jpg": b"nope"}),
        [],
        "NoImagesFound",
        id="no-images",
    ),
    pytest.param(
        lambda p: (p.write_bytes(b"<html>login page</html>"), p)[1],
        [],
        "InvalidSource",
        id="not-an-archive",
    ),
]


@pytest.mark.parametrize(("build", "flags", "reason"), FAILURES)
def test_failures_have_their_reason_and_exit_code_and_write_nothing(
    capsys: pytest.CaptureFixture[str],
    http_server: FileServer,
    tmp_path: Path,
    build: Any,
    flags: list[str],
    reason: Reason,
) -> None:
    archive = build(tmp_path / "src.bin")
    url = http_server.add("/src.bin", Route(archive.read_bytes()))
    target = tmp_path / "ds"
    code, result = ingest(capsys, url, target, *flags)
    assert (code, result["reason"], result["status"]) == (EXIT_CODES[reason], reason, "Failed")
    assert result["message"]
    assert os.listdir(target) == [".kubearts"]
    assert os.listdir(target / ".kubearts") == []
    assert sorted(os.listdir(tmp_path)) == ["ds", "ds.result.json", "src.bin"]


def test_an_unreachable_url_is_retried_and_reported(
    capsys: pytest.CaptureFixture[str], http_server: FileServer, tmp_path: Path
) -> None:
    url = http_server.add("/gone.tgz", Route(b"", fail_first=[503] * 5))
    code, result = ingest(capsys, url, tmp_path / "ds")
    assert (code, result["reason"]) == (10, "DownloadFailed")
    assert "after 2 attempts: HTTP 503" in result["message"]
    assert len(http_server.requests) == 2


def test_corrupt_and_non_image_files_are_listed_and_excluded(
    capsys: pytest.CaptureFixture[str], http_server: FileServer, tmp_path: Path
) -> None:
    files = {f"flowers/roses/{i}.png": image_bytes(color=i) for i in range(5)}
    files["flowers/tulips/ok.jpg"] = noisy_jpeg()
    files["flowers/tulips/truncated.jpg"] = noisy_jpeg(seed=1)[:2000]
    files["flowers/tulips/notes.txt"] = b"shot on a sunny day"
    url = http_server.add("/f.tgz", Route(tar_of(tmp_path / "f.tgz", files).read_bytes()))
    code, result = ingest(capsys, url, tmp_path / "ds")
    assert code == 0
    assert result["classes"] == {"roses": 5, "tulips": 1}
    assert result["invalidCount"] == 2
    assert sorted((i["path"], i["reason"].split(":")[0]) for i in result["invalidFiles"]) == [
        ("flowers/tulips/notes.txt", "not an image (no known image format)"),
        ("flowers/tulips/truncated.jpg", "corrupt image"),
    ]
    catalogue = (tmp_path / "ds/.kubearts/samples.jsonl").read_text()
    assert "truncated.jpg" not in catalogue
    assert "notes.txt" not in catalogue


def test_the_content_digest_does_not_depend_on_packaging(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = {
        f"{label}/{i}.png": image_bytes(color=i * 9 + len(label))
        for label in ("a", "玫瑰")
        for i in range(4)
    }
    wrapped = tar_of(tmp_path / "w.tar.xz", files, mode="w:xz", prefix="wrapper/")
    flat = zip_of(tmp_path / "f.zip", dict(reversed(list(files.items()))))
    _, first = ingest(capsys, str(wrapped), tmp_path / "one")
    _, second = ingest(capsys, f"file://{flat}", tmp_path / "two")
    assert first["digest"] == second["digest"]
    assert first["archiveSha256"] != second["archiveSha256"]


def test_a_folder_that_is_not_a_dataset_directory_is_never_used_as_target(
    capsys: pytest.CaptureFixture[str], digits_archive: Path, tmp_path: Path
) -> None:
    target = tmp_path / "home"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    code, result = ingest(capsys, str(digits_archive), target)
    assert (code, result["reason"]) == (17, "InvalidTarget")
    assert os.listdir(target) == ["thesis.tex"]


def test_reingesting_keeps_every_file_a_published_version_lists(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = tar_of(tmp_path / "1.tgz", {"old/1.png": PNG, "old/2.png": image_bytes(color=3)})
    second = tar_of(tmp_path / "2.tgz", {"new/1.png": PNG, "new/2.png": image_bytes(color=3)})
    target = tmp_path / "ds"
    assert ingest(capsys, str(first), target)[0] == 0
    assert publish(capsys, target, "--version", "v1", "--train-ratio", "0.5")[0] == 0
    before = {source: (target / source).read_bytes() for source in sources(target, "v1")}
    assert ingest(capsys, str(second), target)[0] == 0
    assert data_files(target) == {"new", "new/1.png", "new/2.png"}
    assert {source: (target / source).read_bytes() for source in sources(target, "v1")} == before
    assert publish(capsys, target, "--version", "v2", "--train-ratio", "0.5")[0] == 0
    assert all("/new/" in source for source in sources(target, "v2"))
    assert len(os.listdir(target / "data")) == 2


def test_data_no_version_lists_is_removed_after_a_reingest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "ds"
    for name in ("old", "new"):
        archive = tar_of(tmp_path / f"{name}.tgz", {f"{name}/1.png": PNG})
        assert ingest(capsys, str(archive), target)[0] == 0
    assert os.listdir(target / "data") == [data_folder(target).name]
    assert data_files(target) == {"new", "new/1.png"}


def test_identical_data_reuses_its_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    archive = tar_of(tmp_path / "a.tgz", {"a/1.png": PNG, "b/1.png": image_bytes(color=5)})
    target = tmp_path / "ds"
    _, first = ingest(capsys, str(archive), target)
    inode = data_folder(target).stat().st_ino
    _, second = ingest(capsys, f"file://{archive}", target)
    assert second["dataFolder"] == first["dataFolder"]
    assert data_folder(target).stat().st_ino == inode
    assert sorted(os.listdir(target / ".kubearts")) == ["ingest.json", "samples.jsonl"]


def test_an_ingest_stages_in_its_own_folder_and_leaves_the_others(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "ds"
    other = target / ".kubearts/staging/ds-ingest-other/content/a"
    other.mkdir(parents=True)
    (other / "1.png").write_bytes(PNG)
    archive = tar_of(tmp_path / "a.tgz", {"a/1.png": image_bytes(color=9)})
    code, result = ingest(capsys, str(archive), target, "--staging-id", "ds-ingest-mine")
    assert code == 0, result
    assert os.listdir(target / ".kubearts/staging") == ["ds-ingest-other"]
    assert (other / "1.png").read_bytes() == PNG


def test_a_staging_id_that_is_not_a_folder_name_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    archive = tar_of(tmp_path / "a.tgz", {"a/1.png": PNG})
    code, result = ingest(capsys, str(archive), tmp_path / "ds", "--staging-id", "../escape")
    assert (code, result["reason"]) == (2, "InvalidArgument")
    assert "--staging-id" in result["message"]
    assert not (tmp_path / "ds/.kubearts/staging").exists()


def test_data_of_versions_from_before_data_folders_is_kept_until_unused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A directory written before data folders existed: data at the top, a version listing
    some of it. A new ingest keeps what the version lists and removes the rest."""
    target = tmp_path / "ds"
    for path in ("roses/1.png", "tulips/1.png"):
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_bytes(PNG)
    version = target / ".kubearts/versions/v1"
    version.mkdir(parents=True)
    line = {"source": "roses/1.png", "usage": "TRAIN", "annotation": []}
    (version / "train.jsonl").write_text(json.dumps(line) + "\n")
    (version / "eval.jsonl").write_text("")
    manifests = {"train": ".kubearts/versions/v1/train.jsonl"}
    (version / "version.json").write_text(json.dumps({"name": "v1", "manifests": manifests}))
    archive = tar_of(tmp_path / "new.tgz", {"new/1.png": PNG})
    assert ingest(capsys, str(archive), target)[0] == 0
    assert sorted(os.listdir(target)) == [".kubearts", "data", "roses"]
    assert (target / "roses/1.png").read_bytes() == PNG


def test_a_failed_reingest_leaves_the_previous_data_untouched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = tar_of(tmp_path / "good.tgz", {"a/1.png": PNG})
    target = tmp_path / "ds"
    _, before = ingest(capsys, str(good), target)
    evil = zip_of(tmp_path / "evil.zip", {"a/1.png": PNG, "/etc/cron.d/x": b"* * * * * root sh"})
    assert ingest(capsys, str(evil), target)[0] == 12
    assert data_files(target) == {"a", "a/1.png"}
    assert json.loads((target / ".kubearts/ingest.json").read_text())["digest"] == before["digest"]


def test_pvc_sources_resolve_below_the_pvc_root(
    capsys: pytest.CaptureFixture[str], digits_folder: Path, tmp_path: Path
) -> None:
    pvc_root = tmp_path / "mnt"
    (pvc_root / "shared-data").mkdir(parents=True)
    (pvc_root / "shared-data/digits").symlink_to(digits_folder / "digits")
    code, result = ingest(
        capsys, "pvc://shared-data/digits", tmp_path / "ds", "--pvc-root", str(pvc_root)
    )
    assert code == 0, result
    assert result["sampleCount"] == DIGITS_SAMPLES


def test_a_source_folder_with_a_link_leading_out_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "src"
    (source / "roses").mkdir(parents=True)
    (source / "roses/1.png").write_bytes(PNG)
    (source / "roses/secret.png").symlink_to("/etc/passwd")
    code, result = ingest(capsys, str(source), tmp_path / "ds")
    assert (code, result["reason"]) == (12, "UnsafeArchive")


def test_a_manifest_data_set_is_ingested_and_its_usage_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = {f"images/{i}.png": image_bytes(color=i) for i in range(6)}
    files["export.manifest"] = (
        manifest_lines(
            [
                {
                    "source": f"s3://bucket/ds/images/{i}.png",
                    "usage": "TRAIN" if i < 4 else "EVAL",
                    "annotation": [
                        {
                            "type": "modelarts/image_classification",
                            "name": "向日葵" if i % 2 else "玫瑰",
                        }
                    ],
                }
                for i in range(6)
            ]
            + [{"source": "images/missing.png", "annotation": [{"name": "玫瑰"}]}]
        )
        + b"{broken\n"
    )
    archive = tar_of(tmp_path / "m.tgz", files)
    code, result = ingest(capsys, str(archive), tmp_path / "ds", "--format", "Manifest")
    assert code == 0, result
    assert result["classes"] == {"向日葵": 3, "玫瑰": 3}
    assert result["manifest"] == "export.manifest"
    assert [i["path"] for i in result["invalidFiles"]] == ["export.manifest:8", "export.manifest:7"]
    _, version = publish(capsys, tmp_path / "ds", "--version", "v1", "--train-ratio", "0.5")
    assert (version["trainCount"], version["evalCount"]) == (4, 2)


# -- publish --------------------------------------------------------------------------------


@pytest.fixture
def digits_dataset(
    capsys: pytest.CaptureFixture[str], digits_archive: Path, tmp_path: Path
) -> Path:
    target = tmp_path / "digits-ds"
    assert ingest(capsys, str(digits_archive), target)[0] == 0
    return target


def test_publish_writes_a_stratified_version(
    capsys: pytest.CaptureFixture[str], digits_dataset: Path
) -> None:
    code, result = publish(
        capsys, digits_dataset, "--version", "v1", "--train-ratio", "0.8", "--seed", "42"
    )
    assert code == 0
    counts = json.loads((digits_dataset / ".kubearts/ingest.json").read_text())["classes"]
    assert result["classes"] == {
        label: {"train": int(n * 0.8 + 0.5), "eval": n - int(n * 0.8 + 0.5), "test": 0}
        for label, n in counts.items()
    }
    assert (result["trainCount"], result["evalCount"]) == (1438, 359)
    assert result["split"] is True
    assert result["warnings"] == []
    folder = digits_dataset / ".kubearts/versions/v1"
    assert sorted(os.listdir(folder)) == ["eval.jsonl", "train.jsonl", "version.json"]
    lines = [json.loads(text) for text in (folder / "train.jsonl").read_text().splitlines()]
    assert len(lines) == 1438
    assert [line["source"] for line in lines] == sorted(line["source"] for line in lines)
    for line in lines:
        assert line == {
            "source": line["source"],
            "usage": "TRAIN",
            "annotation": [
                {"type": "modelarts/image_classification", "name": line["source"].split("/")[3]}
            ],
        }
        assert (digits_dataset / line["source"]).is_file()
    assert (
        json.loads((folder / "version.json").read_text())["manifestDigest"]
        == result["manifestDigest"]
    )


def test_the_same_seed_and_data_give_the_same_manifests_anywhere(
    capsys: pytest.CaptureFixture[str], digits_dataset: Path, digits_folder: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    assert ingest(capsys, str(digits_folder), other)[0] == 0  # a folder, not the archive
    for dataset in (digits_dataset, other):
        assert (
            publish(capsys, dataset, "--version", "v1", "--train-ratio", "0.8", "--seed", "7")[0]
            == 0
        )
    for name in ("train.jsonl", "eval.jsonl"):
        assert (digits_dataset / ".kubearts/versions/v1" / name).read_bytes() == (
            other / ".kubearts/versions/v1" / name
        ).read_bytes()


def test_republishing_the_same_parameters_is_a_no_op(
    capsys: pytest.CaptureFixture[str], digits_dataset: Path
) -> None:
    args = ("--version", "v1", "--train-ratio", "0.8", "--seed", "3")
    _, first = publish(capsys, digits_dataset, *args)
    code, second = publish(capsys, digits_dataset, *args)
    assert code == 0
    assert (first["created"], second["created"]) == (True, False)
    assert {k: v for k, v in first.items() if k not in ("created", "message")} == {
        k: v for k, v in second.items() if k not in ("created", "message")
    }


@pytest.mark.parametrize(
    ("changed", "fragment"),
    [
        pytest.param(("--train-ratio", "0.7", "--seed", "3"), "trainRatio 0.8 → 0.7", id="ratio"),
        pytest.param(("--train-ratio", "0.8", "--seed", "4"), "seed 3 → 4", id="seed"),
        pytest.param(
            ("--train-ratio", "0.8", "--seed", "3", "--no-stratified"), "stratified", id="strata"
        ),
    ],
)
def test_a_published_version_cannot_change(
    capsys: pytest.CaptureFixture[str],
    digits_dataset: Path,
    changed: tuple[str, ...],
    fragment: str,
) -> None:
    publish(capsys, digits_dataset, "--version", "v1", "--train-ratio", "0.8", "--seed", "3")
    before = (digits_dataset / ".kubearts/versions/v1/train.jsonl").read_bytes()
    code, result = publish(capsys, digits_dataset, "--version", "v1", *changed)
    assert (code, result["reason"]) == (20, "VersionImmutable")
    assert fragment in result["message"]
    assert (digits_dataset / ".kubearts/versions/v1/train.jsonl").read_bytes() == before


def test_a_version_of_changed_data_cannot_be_republished(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "ds"
    ingest(capsys, str(tar_of(tmp_path / "1.tgz", {"a/1.png": PNG})), target)
    publish(capsys, target, "--version", "v1", "--train-ratio", "1")
    ingest(capsys, str(tar_of(tmp_path / "2.tgz", {"a/2.png": image_bytes(color=1)})), target)
    code, result = publish(capsys, target, "--version", "v1", "--train-ratio", "1")
    assert (code, result["reason"]) == (20, "VersionImmutable")
    assert "datasetDigest" in result["message"]


def test_ratio_one_publishes_an_unsplit_version(
    capsys: pytest.CaptureFixture[str], digits_dataset: Path
) -> None:
    code, result = publish(capsys, digits_dataset, "--version", "all", "--train-ratio", "1")
    assert code == 0
    assert (result["split"], result["trainCount"], result["evalCount"]) == (
        False,
        DIGITS_SAMPLES,
        0,
    )
    assert (digits_dataset / ".kubearts/versions/all/eval.jsonl").read_bytes() == b""


def test_publishing_before_ingest_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, result = publish(capsys, tmp_path, "--version", "v1", "--train-ratio", "0.8")
    assert (code, result["reason"]) == (21, "NotIngested")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(
            ("--version", "V1!", "--train-ratio", "0.8"), "not a valid version name", id="name"
        ),
        pytest.param(("--version", "v1", "--train-ratio", "1.5"), "outside (0, 1]", id="ratio"),
        pytest.param(("--version", "v1"), "--train-ratio", id="missing-flag"),
    ],
)
def test_bad_arguments_exit_2_with_a_result(
    capsys: pytest.CaptureFixture[str],
    digits_dataset: Path,
    tmp_path: Path,
    args: tuple[str, ...],
    fragment: str,
) -> None:
    result_file = tmp_path / "termination-log"
    code, result = publish(capsys, digits_dataset, *args, "--result", str(result_file))
    assert (code, result["reason"]) == (2, "InvalidArgument")
    assert fragment in result["message"]
    assert json.loads(result_file.read_text())["reason"] == "InvalidArgument"


def test_the_result_file_fits_a_termination_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = {
        f"class-{i:03d}-with-a-long-name/{j}.png": image_bytes(color=i)
        for i in range(150)
        for j in range(2)
    }
    files.update({f"class-000-with-a-long-name/broken-{j:03d}.png": b"x" for j in range(200)})
    archive = tar_of(tmp_path / "many.tgz", files)
    code, _ = ingest(capsys, str(archive), tmp_path / "ds")
    assert code == 0
    written = (tmp_path / "ds.result.json").read_bytes()
    assert len(written) <= 4096
    document = json.loads(written)
    assert (document["sampleCount"], document["invalidCount"]) == (300, 200)
    assert "invalidFiles" in document["truncated"]
    report = json.loads((tmp_path / "ds/.kubearts/ingest.json").read_text())
    assert (len(report["invalidFiles"]), len(report["classes"])) == (100, 150)
