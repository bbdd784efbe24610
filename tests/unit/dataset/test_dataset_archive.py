"""Specification of safe unpacking: what is refused, and what valid archives produce."""

from __future__ import annotations

import binascii
import gzip
import io
import shutil
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
    tar_of_zeros,
    tar_with_metadata_header,
    zip_member_with_declared_size,
    zip_of,
    zip_without_utf8_flag,
)
from kubearts_dataset.archive import detect, unpack, zip_name
from kubearts_dataset.errors import DatasetError
from kubearts_dataset.limits import MAX_TAR_HEADER_BYTES, Limits
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


# -- hostile archives: memory, disk and ratio bounds ------------------------------------------

MiB = 1024**2


@pytest.mark.parametrize(
    ("kind", "compression"),
    [
        pytest.param(tarfile.XHDTYPE, "gz", id="pax-x-gz"),
        pytest.param(tarfile.XGLTYPE, "bz2", id="pax-g-bz2"),
        pytest.param(tarfile.GNUTYPE_LONGNAME, "xz", id="gnu-L-xz"),
        pytest.param(tarfile.GNUTYPE_LONGLINK, "tar", id="gnu-K-plain"),
    ],
)
def test_oversized_tar_metadata_headers_are_refused_before_they_are_read(
    tmp_path: Path, kind: bytes, compression: str
) -> None:
    archive = tar_with_metadata_header(
        tmp_path / "a.tar", MAX_TAR_HEADER_BYTES + 1, kind=kind, compression=compression
    )
    with pytest.raises(DatasetError, match="header claims") as caught:
        _unpack(archive, tmp_path / "out")
    assert (caught.value.reason, caught.value.detail) == ("LimitExceeded", "HeaderTooLarge")


def test_tar_metadata_headers_of_ordinary_size_are_read(tmp_path: Path) -> None:
    archive = tar_with_metadata_header(tmp_path / "a.tar.gz", 4096)
    _unpack(archive, tmp_path / "out")
    assert (tmp_path / "out" / "roses" / "1.png").read_bytes() == PNG


def test_a_chain_of_tar_metadata_headers_is_refused(tmp_path: Path) -> None:
    blocks = b""
    for _ in range(20):
        meta = tarfile.TarInfo("././@PaxHeader")
        meta.type = tarfile.XHDTYPE
        record = b"20 comment=aaaaaaaa\n"
        meta.size = len(record)
        blocks += meta.tobuf(tarfile.USTAR_FORMAT) + record + b"\0" * (512 - len(record))
    archive = tmp_path / "a.tar"
    archive.write_bytes(blocks + b"\0" * 1024)
    with pytest.raises(DatasetError, match="in a row") as caught:
        _unpack(archive, tmp_path / "out")
    assert caught.value.detail == "HeaderTooLarge"


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz"])
def test_a_compressed_tar_that_inflates_beyond_the_ratio_is_refused(
    tmp_path: Path, mode: str
) -> None:
    archive = tar_of_zeros(tmp_path / "bomb.tar", 64 * MiB, mode=mode)
    with pytest.raises(DatasetError, match="inflates") as caught:
        _unpack(archive, tmp_path / "out")
    assert (caught.value.reason, caught.value.detail) == ("LimitExceeded", "RatioExceeded")


def test_the_ratio_limit_can_be_raised(tmp_path: Path) -> None:
    archive = tar_of_zeros(tmp_path / "bomb.tar", 16 * MiB, mode="w:gz")
    _unpack(archive, tmp_path / "out", Limits(max_ratio=10_000))
    assert (tmp_path / "out" / "roses" / "z.png").stat().st_size == 16 * MiB


def test_concatenated_gzip_streams_are_one_tar(tmp_path: Path) -> None:
    whole = tar_of(tmp_path / "a.tar", {"roses/1.png": PNG}, mode="w").read_bytes()
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(gzip.compress(whole[:1024]) + gzip.compress(whole[1024:]))
    _unpack(archive, tmp_path / "out")
    assert (tmp_path / "out" / "roses" / "1.png").read_bytes() == PNG


@pytest.mark.parametrize(
    "method",
    [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
    ids=["stored", "deflate", "bzip2", "lzma"],
)
def test_zip_members_of_every_method_are_unpacked(tmp_path: Path, method: int) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", method) as zf:
        zf.writestr("roses/1.png", PNG)
        zf.writestr("roses/big.bin", bytes(range(256)) * 8192)
    _unpack(archive, tmp_path / "out")
    assert (tmp_path / "out" / "roses" / "1.png").read_bytes() == PNG
    assert (tmp_path / "out" / "roses" / "big.bin").read_bytes() == bytes(range(256)) * 8192


@pytest.mark.parametrize(
    "method",
    [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
    ids=["stored", "deflate", "bzip2", "lzma"],
)
def test_a_zip_member_inflating_past_its_declared_size_is_refused(
    tmp_path: Path, method: int
) -> None:
    archive = zip_member_with_declared_size(
        tmp_path / "a.zip", "roses/1.png", bytes(2 * MiB), method=method, declared=1000
    )
    with pytest.raises(DatasetError, match="past its declared size") as caught:
        _unpack(archive, tmp_path / "out")
    assert (caught.value.reason, caught.value.detail) == ("UnsafeArchive", "SizeMismatch")


def test_a_zip_member_shorter_than_declared_is_damaged(tmp_path: Path) -> None:
    archive = zip_member_with_declared_size(
        tmp_path / "a.zip", "roses/1.png", PNG, method=zipfile.ZIP_BZIP2, declared=len(PNG) + 1
    )
    with pytest.raises(DatasetError, match="damaged") as caught:
        _unpack(archive, tmp_path / "out")
    assert caught.value.reason == "InvalidSource"


def test_a_zip_member_beyond_the_ratio_is_refused_before_writing(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_BZIP2) as zf:
        zf.writestr("roses/1.png", PNG)
        zf.writestr("roses/bomb.png", bytes(16 * MiB))
    with pytest.raises(DatasetError, match="more than 100 times") as caught:
        _unpack(archive, tmp_path / "out")
    assert caught.value.detail == "RatioExceeded"
    assert not (tmp_path / "out").exists()


def test_zip_members_under_the_floor_count_towards_the_archive_ratio(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for number in range(12):
            zf.writestr(f"roses/{number}.png", bytes(MiB))
    with pytest.raises(DatasetError, match="the archive inflates") as caught:
        _unpack(archive, tmp_path / "out")
    assert caught.value.detail == "RatioExceeded"


def test_without_max_bytes_the_limit_is_a_share_of_the_free_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        "kubearts_dataset.limits.shutil.disk_usage",
        lambda _: usage._replace(free=10_000),
    )
    archive = tar_of(tmp_path / "a.tar.gz", {"roses/1.bin": bytes(range(256)) * 36})
    with pytest.raises(DatasetError, match="80% of the 10000 bytes free") as caught:
        _unpack(archive, tmp_path / "out")
    assert (caught.value.reason, caught.value.detail) == ("LimitExceeded", "TooLarge")
    _unpack(archive, tmp_path / "out2", Limits(space_fraction=1.0))
