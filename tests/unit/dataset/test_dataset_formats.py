"""Specification of the ImageFolder and ModelArts-manifest layouts."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from datagen import image_bytes, manifest_lines
from kubearts_dataset.errors import DatasetError
from kubearts_dataset.formats import ManifestEntry, parse_manifest, scan_image_folder, scan_manifest

PNG = image_bytes()


def _files(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(PNG)


LABELLED = {"type": "modelarts/image_classification", "name": "rose"}


def test_good_manifest_lines_are_parsed() -> None:
    lines = manifest_lines(
        [
            {"source": "s3://bucket/data/1.jpg", "usage": "TRAIN", "annotation": [LABELLED]},
            {"source": "2.jpg", "usage": "eval", "annotation": [{"name": "玫瑰"}]},
            {"source": "3.jpg", "annotation": [LABELLED, LABELLED]},
        ]
    ).splitlines(keepends=True)
    entries, invalid = parse_manifest(lines)
    assert invalid == []
    assert entries == [
        ManifestEntry(line=1, source="s3://bucket/data/1.jpg", label="rose", usage="TRAIN"),
        ManifestEntry(line=2, source="2.jpg", label="玫瑰", usage="EVAL"),
        ManifestEntry(line=3, source="3.jpg", label="rose", usage=""),
    ]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        pytest.param(b'{"source": "1.jpg", "annotation": [', "not valid JSON", id="bad-json"),
        pytest.param(b'["1.jpg"]', "expected a JSON object", id="not-an-object"),
        pytest.param(b'{"annotation": [{"name": "rose"}]}', "missing 'source'", id="no-source"),
        pytest.param(b'{"source": "1.jpg"}', "no 'annotation'", id="no-annotation"),
        pytest.param(
            b'{"source": "1.jpg", "annotation": []}', "no 'annotation'", id="empty-annotation"
        ),
        pytest.param(
            b'{"source": "1.jpg", "annotation": [{"type": "modelarts/image_classification"}]}',
            "has no 'name'",
            id="no-label-name",
        ),
        pytest.param(
            b'{"source": "1.jpg", "usage": "VALIDATE", "annotation": [{"name": "a"}]}',
            "unknown usage",
            id="unknown-usage",
        ),
        pytest.param(
            b'{"source": "1.jpg", "annotation": [{"name": "a"}, {"name": "b"}]}',
            "multi-label",
            id="multi-label",
        ),
        pytest.param(
            b'{"source": "1.jpg", "annotation": '
            b'[{"type": "modelarts/object_detection", "name": "a"}]}',
            "not modelarts/image_classification",
            id="detection-annotation",
        ),
        pytest.param(b'{"source": "\xff.jpg"}', "not valid UTF-8", id="bad-utf8"),
    ],
)
def test_bad_manifest_lines_are_reported_with_their_line_number(line: bytes, fragment: str) -> None:
    good = b'{"source": "ok.jpg", "annotation": [{"name": "a"}]}\n'
    entries, invalid = parse_manifest([good, b"\n", line + b"\n"], "train.manifest")
    assert [entry.source for entry in entries] == ["ok.jpg"]
    assert len(invalid) == 1
    assert invalid[0]["path"] == "train.manifest:3"
    assert fragment in invalid[0]["reason"]


def test_manifest_sources_are_resolved_inside_the_data_set(tmp_path: Path) -> None:
    _files(tmp_path, ["export/images/a.jpg", "export/images/b.jpg", "export/images/extra.jpg"])
    (tmp_path / "export/data.manifest").write_bytes(
        manifest_lines(
            [
                {"source": "images/a.jpg", "usage": "TRAIN", "annotation": [{"name": "rose"}]},
                {"source": "obs://old-bucket/x/images/b.jpg", "annotation": [{"name": "tulip"}]},
                {"source": "images/missing.jpg", "annotation": [{"name": "rose"}]},
                {"source": "../../etc/passwd", "annotation": [{"name": "rose"}]},
                {"source": "images/a.jpg", "annotation": [{"name": "rose"}]},
            ]
        )
    )
    layout = scan_manifest(tmp_path, None)
    assert layout.manifest == PurePosixPath("export/data.manifest")
    assert [(c.path.as_posix(), c.label, c.usage, c.key) for c in layout.candidates] == [
        ("export/images/a.jpg", "rose", "TRAIN", "images/a.jpg"),
        ("export/images/b.jpg", "tulip", "", "images/b.jpg"),
    ]
    assert layout.invalid == [
        {
            "path": "export/data.manifest:3",
            "reason": "source 'images/missing.jpg' is not in the data set",
        },
        {
            "path": "export/data.manifest:4",
            "reason": "source '../../etc/passwd' leads outside the data set ('../../etc/passwd')",
        },
        {"path": "export/data.manifest:5", "reason": "duplicate of line 1 (export/images/a.jpg)"},
    ]
    assert layout.unreferenced == 1


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        pytest.param(["images/a.jpg"], "found none", id="no-manifest"),
        pytest.param(["a.manifest", "b.jsonl"], "found a.manifest, b.jsonl", id="two-manifests"),
    ],
)
def test_the_manifest_must_be_unambiguous(tmp_path: Path, names: list[str], fragment: str) -> None:
    _files(tmp_path, names)
    with pytest.raises(DatasetError, match=fragment) as caught:
        scan_manifest(tmp_path, None)
    assert caught.value.reason == "InvalidFormat"


def test_image_folder_skips_a_single_wrapper_folder(tmp_path: Path) -> None:
    _files(
        tmp_path,
        [
            "flower_photos/LICENSE.txt",
            "flower_photos/roses/1.jpg",
            "flower_photos/roses/deep/2.jpg",
            "flower_photos/向日葵/3.jpg",
            "__MACOSX/flower_photos/._LICENSE.txt",
            "flower_photos/roses/.DS_Store",
        ],
    )
    layout = scan_image_folder(tmp_path)
    assert layout.data_root == PurePosixPath("flower_photos")
    assert [(c.path.as_posix(), c.label, c.key) for c in layout.candidates] == [
        ("flower_photos/roses/1.jpg", "roses", "roses/1.jpg"),
        ("flower_photos/roses/deep/2.jpg", "roses", "roses/deep/2.jpg"),
        ("flower_photos/向日葵/3.jpg", "向日葵", "向日葵/3.jpg"),
    ]
    assert sorted((i["path"], i["reason"].split(" ")[0]) for i in layout.invalid) == [
        ("__MACOSX/flower_photos/._LICENSE.txt", "operating-system"),
        ("flower_photos/LICENSE.txt", "outside"),
        ("flower_photos/roses/.DS_Store", "operating-system"),
    ]


def test_a_single_class_folder_is_a_class_not_a_wrapper(tmp_path: Path) -> None:
    _files(tmp_path, ["roses/1.jpg", "roses/2.jpg"])
    layout = scan_image_folder(tmp_path)
    assert {c.label for c in layout.candidates} == {"roses"}


def test_image_folder_without_class_folders_is_refused(tmp_path: Path) -> None:
    _files(tmp_path, ["1.jpg", "2.jpg"])
    with pytest.raises(DatasetError, match="one sub-folder per class") as caught:
        scan_image_folder(tmp_path)
    assert caught.value.reason == "NoImagesFound"
