"""Specification of image verification: what counts as a usable image."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from datagen import image_bytes, noisy_jpeg
from kubearts_dataset.verify import check_file, check_files


def _png_with_broken_data_crc() -> bytes:
    # Pixel data still inflates, so only the CRC check of verify() notices.
    data = bytearray(image_bytes("PNG"))
    data[-13] ^= 0xFF  # last byte of the IDAT chunk's CRC (IEND is the final 12 bytes)
    return bytes(data)


def _png_with_broken_header_crc() -> bytes:
    data = bytearray(image_bytes("PNG"))
    data[30] ^= 0xFF  # inside the IHDR chunk's CRC
    return bytes(data)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(noisy_jpeg()[: len(noisy_jpeg()) // 2], "truncated", id="truncated-jpeg"),
        pytest.param(image_bytes("PNG")[:-30], "corrupt image", id="truncated-png"),
        pytest.param(_png_with_broken_data_crc(), "corrupt image", id="png-data-crc-broken"),
        pytest.param(_png_with_broken_header_crc(), "corrupt image", id="png-header-crc-broken"),
        pytest.param(b"just some text\n", "not an image", id="text-file"),
        pytest.param(b"", "empty file", id="empty-file"),
        pytest.param(image_bytes("TIFF"), "unsupported image format TIFF", id="tiff"),
    ],
)
def test_unusable_files_are_rejected_with_a_reason(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "sample"
    path.write_bytes(content)
    check = check_file(path)
    assert check.error is not None
    assert fragment in check.error
    assert check.sha256 == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP"])
def test_supported_images_pass(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"ok.{fmt.lower()}"
    path.write_bytes(image_bytes(fmt))
    check = check_file(path)
    assert (check.error, check.format) == (None, fmt)
    assert check.size == path.stat().st_size


@pytest.mark.parametrize(
    "count", [pytest.param(40, id="in-process"), pytest.param(600, id="worker-processes")]
)
def test_check_files_keeps_the_input_order(tmp_path: Path, count: int) -> None:
    paths = []
    for index in range(count):
        path = tmp_path / f"{index}.png"
        path.write_bytes(image_bytes(color=index % 256) if index % 3 else b"broken")
        paths.append(path)
    results = check_files(paths, workers=2)
    assert [r.error is None for r in results] == [bool(i % 3) for i in range(count)]
