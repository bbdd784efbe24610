"""Specification of safe unpacking: what is refused, and what valid archives produce."""

from __future__ import annotations

import binascii
import io
import stat
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from datagen import (
    image_bytes,
    tar_of,
    tar_of_members,
    zip_of,
    zip_without_utf8_flag,
)
from kubearts_dataset.archive import detect, unpack, zip_name
from kubearts_dataset.errors import DatasetError
from kubearts_dataset.limits import Limits
from kubearts_dataset.progress import NullProgress

PNG = image_bytes()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def _unpack(archive: Path, dest: Path, limits: Limits | None = None) -> None:
    kind = detect(archive)
    assert kind is not None
    unpack(archive, kind, dest, limits=limits or Limits(), progress=NullProgress())


def _everything_below(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


Builder = Callable[[Path], Path]

UNSAFE: list[tuple[str, Builder, str]] = [
    (
        "absolute-path",
        lambda p: tar_of_members(p, [(_member(str(p.parent / "evil.png")), PNG)]),
        "absolute path",
    ),
    (
        "dot-dot",
        lambda p: tar_of_members(p, [(_member("roses/../../evil.png"), PNG)]),
        "'..'",
    ),
    (
        "zip-slip",
        lambda p: zip_of(p, {"../../evil.png": PNG}),
        "'..'",
    ),
    (
        "zip-backslash-slip",
        lambda p: zip_of(p, {"..\\..\\evil.png": PNG}),
        "'..'",
    ),
    (
        "symlink-escape",
        lambda p: tar_of_members(p, [(_member("roses/link", tarfile.SYMTYPE, "../../etc"), None)]),
        "symbolic link that leads outside",
    ),
    (
        "symlink-absolute",
        lambda p: tar_of_members(
            p, [(_member("roses/link", tarfile.SYMTYPE, "/etc/passwd"), None)]
        ),
        "absolute path",
    ),
    (
        "hardlink-escape",
        lambda p: tar_of_members(
            p, [(_member("roses/x.png", tarfile.LNKTYPE, "../outside"), None)]
        ),
        "hard link that leads outside",
    ),
    (
        "character-device",
        lambda p: tar_of_members(p, [(_member("roses/null", tarfile.CHRTYPE), None)]),
        "device file",
    ),
    (
        "block-device",
        lambda p: tar_of_members(p, [(_member("roses/sda", tarfile.BLKTYPE), None)]),
        "device file",
    ),
    (
        "fifo",
        lambda p: tar_of_members(p, [(_member("roses/pipe", tarfile.FIFOTYPE), None)]),
        "FIFO",
    ),
    (
        "reserved-metadata-folder",
        lambda p: tar_of(p, {".kubearts/ingest.json": b"{}"}),
        "reserved folder",
    ),
]


@pytest.mark.parametrize(("builder", "fragment"), [pytest.param(b, f, id=i) for i, b, f in UNSAFE])
def test_unsafe_entries_are_refused_and_nothing_lands_outside(
    tmp_path: Path, builder: Builder, fragment: str
) -> None:
    dest = tmp_path / "target" / "staging"
    dest.mkdir(parents=True)
    archive = builder(tmp_path / "archive.bin")
    with pytest.raises(DatasetError, match=fragment) as caught:
        _unpack(archive, dest)
    assert caught.value.reason == "UnsafeArchive"
    outside_staging = {
        p for p in _everything_below(tmp_path) if not p.startswith("target/staging/")
    }
    assert outside_staging == {"archive.bin", "target", "target/staging"}


def test_zip_symlink_entries_that_escape_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("roses/passwd")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "../../../etc/passwd")
    with pytest.raises(DatasetError, match="symbolic link that leads outside") as caught:
        _unpack(archive, tmp_path / "out")
    assert caught.value.reason == "UnsafeArchive"


@pytest.mark.parametrize(
    ("builder", "limits", "fragment"),
    [
        pytest.param(
            lambda p: tar_of(p, {f"c/{i}.png": PNG for i in range(11)}),
            Limits(max_files=10),
            "more than 10 entries",
            id="tar-too-many-entries",
        ),
        pytest.param(
            lambda p: zip_of(p, {f"c/{i}.png": PNG for i in range(11)}),
            Limits(max_files=10),
            "more than 10 entries",
            id="zip-too-many-entries",
        ),
        pytest.param(
            lambda p: tar_of(p, {"c/big.bin": bytes(5000)}),
            Limits(max_bytes=4096),
            "size limit of 4096 bytes",
            id="tar-too-big",
        ),
        pytest.param(
            lambda p: zip_of(p, {"c/big.bin": bytes(5000)}),
            Limits(max_bytes=4096),
            "size limit of 4096 bytes",
            id="zip-too-big",
        ),
    ],
)
def test_archives_over_the_limits_are_refused(
    tmp_path: Path, builder: Builder, limits: Limits, fragment: str
) -> None:
    with pytest.raises(DatasetError, match=fragment) as caught:
        _unpack(builder(tmp_path / "archive.bin"), tmp_path / "out", limits)
    assert caught.value.reason == "LimitExceeded"


def test_a_member_lying_about_its_size_is_still_counted_by_bytes_written(tmp_path: Path) -> None:
    # The header says 10 bytes; what is written is what counts.
    archive = tar_of(tmp_path / "a.tar", {"c/x.bin": bytes(3000), "c/y.bin": bytes(3000)}, mode="w")
    with pytest.raises(DatasetError) as caught:
        _unpack(archive, tmp_path / "out", Limits(max_bytes=5000))
    assert caught.value.reason == "LimitExceeded"


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("w", id="tar"),
        pytest.param("w:gz", id="tar.gz"),
        pytest.param("w:bz2", id="tar.bz2"),
        pytest.param("w:xz", id="tar.xz"),
    ],
)
def test_valid_nested_tar_archives_unpack_completely(tmp_path: Path, mode: str) -> None:
    archive = tar_of(
        tmp_path / "flowers.archive",
        {"roses/a.png": PNG, "roses/deeper/b.png": PNG, "tulips/c.png": PNG},
        mode=mode,
        prefix="flower_photos/",
    )
    _unpack(archive, tmp_path / "out")
    assert sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")
    ) == [
        "flower_photos/roses/a.png",
        "flower_photos/roses/deeper/b.png",
        "flower_photos/tulips/c.png",
    ]
    assert (tmp_path / "out/flower_photos/roses/a.png").read_bytes() == PNG


def test_links_inside_the_archive_become_copies(tmp_path: Path) -> None:
    archive = tar_of_members(
        tmp_path / "links.tgz",
        [
            (_member("roses/a.png"), PNG),
            (_member("roses/b.png", tarfile.SYMTYPE, "a.png"), None),
            (_member("tulips/c.png", tarfile.LNKTYPE, "roses/a.png"), None),
            (_member("tulips/all", tarfile.SYMTYPE, "../roses"), None),
        ],
    )
    out = tmp_path / "out"
    report = unpack(archive, "tar", out, limits=Limits(), progress=NullProgress())
    for name in ("roses/b.png", "tulips/c.png"):
        path = out / name
        assert not path.is_symlink()
        assert path.read_bytes() == PNG
    assert report.skipped == [
        {"path": "tulips/all", "reason": "symbolic link to a folder (roses) is not followed"}
    ]
    assert not any(p.is_symlink() for p in out.rglob("*"))


def test_archived_permissions_are_not_restored(tmp_path: Path) -> None:
    info = _member("roses/setuid.png")
    info.mode = 0o4777
    archive = tar_of_members(tmp_path / "modes.tgz", [(info, PNG)])
    _unpack(archive, tmp_path / "out")
    assert stat.S_IMODE((tmp_path / "out/roses/setuid.png").stat().st_mode) & 0o7022 == 0


UTF8_NAMES = {"玫瑰/1.png": PNG, "向日葵/2.png": PNG, "tulpe-ä/3.png": PNG}


@pytest.mark.parametrize(
    "builder",
    [
        pytest.param(lambda p: tar_of(p, UTF8_NAMES), id="tar-gz"),
        pytest.param(lambda p: tar_of(p, UTF8_NAMES, mode="w:"), id="tar-pax"),
        pytest.param(lambda p: zip_of(p, UTF8_NAMES), id="zip-utf8-flag"),
        pytest.param(lambda p: zip_without_utf8_flag(p, UTF8_NAMES), id="zip-utf8-no-flag"),
    ],
)
def test_utf8_class_names_survive(tmp_path: Path, builder: Builder) -> None:
    _unpack(builder(tmp_path / "archive.bin"), tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"玫瑰", "向日葵", "tulpe-ä"}


def test_zip_names_that_are_not_utf8_fall_back_to_cp437(tmp_path: Path) -> None:
    archive = zip_without_utf8_flag(tmp_path / "dos.zip", {"caf\u00e9/1.png": PNG})
    # Re-patch the UTF-8 bytes of "é" (c3 a9) to the cp437 byte for "é" (0x82) plus "_".
    blob = archive.read_bytes().replace("café".encode(), b"caf\x82_")
    archive.write_bytes(blob)
    with zipfile.ZipFile(archive) as zf:
        assert [zip_name(info) for info in zf.infolist()] == ["caf\u00e9_/1.png"]


def test_zip_unicode_path_extra_field_is_used(tmp_path: Path) -> None:
    archive = tmp_path / "extra.zip"
    raw = b"rose/1.png"
    unicode_name = "玫瑰/1.png".encode()
    body = b"\x01" + struct.pack("<I", binascii.crc32(raw)) + unicode_name
    info = zipfile.ZipInfo(raw.decode())
    info.extra = struct.pack("<HH", 0x7075, len(body)) + body
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, PNG)
    with zipfile.ZipFile(archive) as zf:
        assert zip_name(zf.infolist()[0]) == "玫瑰/1.png"


def test_tar_names_that_are_not_utf8_are_refused_with_a_fix(tmp_path: Path) -> None:
    archive = tmp_path / "gbk.tar"
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT, encoding="gbk") as tar:
        info = tarfile.TarInfo("玫瑰/1.png")
        info.size = len(PNG)
        tar.addfile(info, io.BytesIO(PNG))
    with pytest.raises(DatasetError, match="not valid UTF-8") as caught:
        _unpack(archive, tmp_path / "out")
    assert caught.value.reason == "InvalidSource"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"\x1f\x8b\x08rest", "tar", id="gzip-magic"),
        pytest.param(b"PK\x03\x04rest", "zip", id="zip-magic"),
        pytest.param(PNG, None, id="an-image-is-no-archive"),
        pytest.param(b"<html>not found</html>", None, id="html-error-page"),
    ],
)
def test_archives_are_recognised_by_content(
    tmp_path: Path, content: bytes, expected: str | None
) -> None:
    path = tmp_path / "download"
    path.write_bytes(content)
    assert detect(path) == expected


def test_a_truncated_archive_is_reported_as_damaged(tmp_path: Path) -> None:
    archive = tar_of(tmp_path / "t.tgz", {f"c/{i}.png": image_bytes(color=i) for i in range(50)})
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match="damaged or truncated") as caught:
        _unpack(archive, tmp_path / "out")
    assert caught.value.reason == "InvalidSource"
