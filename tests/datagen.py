"""Real data for the tests: scikit-learn's digits as image folders, archives, manifests.

``write_digits`` writes scikit-learn's digits (1797 real 8x8 images of 10 classes, shipped
with the package) as PNG class folders: the realistic fixture of the dataset tests.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import struct
import tarfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

DIGITS_SAMPLES = 1797
DIGITS_CLASSES = 10


def write_digits(root: Path, *, every: int = 1) -> dict[str, int]:
    """Write every ``every``-th digit as ``root/<digit>/<index>.png``; counts per class."""
    digits = load_digits()
    counts: dict[str, int] = {}
    for index in range(0, len(digits.images), every):
        label = str(int(digits.target[index]))
        pixels = (digits.images[index] * (255 / 16)).astype(np.uint8)
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(folder / f"{index:04d}.png")
        counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items()))


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (16, 16), color: int = 128) -> bytes:
    """A small valid image."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (color, 255 - color, 64)).save(buffer, fmt)
    return buffer.getvalue()


def noisy_jpeg(size: tuple[int, int] = (64, 64), seed: int = 0) -> bytes:
    """A JPEG with enough entropy that cutting it in half damages pixel data."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _open_tar(path: Path, mode: str) -> tarfile.TarFile:
    # typeshed types ``mode`` as one literal per compression; tests pass it as a parameter.
    return tarfile.open(path, cast(Any, mode))


def tar_of(path: Path, files: Mapping[str, bytes], *, mode: str = "w:gz", prefix: str = "") -> Path:
    """A tar archive holding ``files`` (name → content) below ``prefix``."""
    with _open_tar(path, mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def tar_of_members(path: Path, members: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A tar.gz archive of hand-made members (links, devices, odd names)."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tar_tree(path: Path, folder: Path, arcname: str = "", mode: str = "w:gz") -> Path:
    """A tar archive of ``folder``'s contents, below ``arcname`` if given."""
    with _open_tar(path, mode) as tar:
        for child in sorted(folder.iterdir()):
            tar.add(child, arcname=f"{arcname}/{child.name}" if arcname else child.name)
    return path


def zip_of(path: Path, files: Mapping[str, bytes]) -> Path:
    """A zip archive holding ``files`` (name → content)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def zip_without_utf8_flag(path: Path, files: Mapping[str, bytes]) -> Path:
    """A zip whose non-ASCII names are UTF-8 bytes *without* the UTF-8 flag.

    Many archivers write such zips; Python's zipfile always sets the flag, so the names are
    written as same-length ASCII placeholders and patched to the UTF-8 bytes afterwards.
    """
    placeholders: dict[bytes, bytes] = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for number, (name, data) in enumerate(files.items()):
            raw = name.encode("utf-8")
            placeholder = bytes([ord("A") + number]) * len(raw)
            assert len(placeholder) == len(raw)
            placeholders[placeholder] = raw
            zf.writestr(placeholder.decode("ascii"), data)
    blob = path.read_bytes()
    for placeholder, raw in placeholders.items():
        assert blob.count(placeholder) == 2  # local header and central directory
        blob = blob.replace(placeholder, raw)
    path.write_bytes(blob)
    return path


def manifest_lines(entries: Iterable[Mapping[str, object]]) -> bytes:
    """JSON lines for a manifest file."""
    return "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries).encode()


# -- hostile archives -------------------------------------------------------------------------

_BLOCK = 512


def _compressed_writer(path: Path, compression: str) -> IO[bytes]:
    """A file writing ``compression`` ("tar" for none, "gz", "bz2", "xz"); close it."""
    if compression == "gz":
        return gzip.open(path, "wb", compresslevel=1)
    if compression == "bz2":
        return bz2.open(path, "wb", compresslevel=1)
    if compression == "xz":
        return lzma.open(path, "wb", preset=0)
    return path.open("wb")


def _padded(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def _pax_record(length: int) -> Iterator[bytes]:
    """One pax record of exactly ``length`` bytes (``"<length> comment=aaa…\\n"``), in pieces."""
    head = f"{length} comment=".encode()
    yield head
    filler = length - len(head) - 1
    while filler > 0:
        piece = min(filler, 1024**2)
        yield b"a" * piece
        filler -= piece
    yield b"\n"


def _long_name(length: int) -> Iterator[bytes]:
    """A GNU long name of ``length`` bytes, the terminating NUL included."""
    yield b"roses/"
    filler = length - len(b"roses/") - 1
    while filler > 0:
        piece = min(filler, 1024**2)
        yield b"a" * piece
        filler -= piece
    yield b"\0"


def tar_with_metadata_header(
    path: Path, claimed: int, *, kind: bytes = tarfile.XHDTYPE, compression: str = "gz"
) -> Path:
    """A tar whose first header is a pax (``x``/``g``) or GNU long-name (``L``/``K``) header
    of ``claimed`` bytes, backed by that many real bytes, followed by one small image.

    Written in a stream, so the bytes a reader would hold in memory never exist at once here.
    """
    meta = tarfile.TarInfo("././@PaxHeader" if kind in (b"x", b"g") else "././@LongLink")
    meta.type = kind
    meta.size = claimed
    image = image_bytes()
    member = tarfile.TarInfo("roses/1.png")
    member.size = len(image)
    body = _pax_record(claimed) if kind in (b"x", b"g") else _long_name(claimed)
    with _compressed_writer(path, compression) as out:
        out.write(meta.tobuf(tarfile.USTAR_FORMAT))
        for piece in body:
            out.write(piece)
        out.write(_padded(claimed))
        out.write(member.tobuf(tarfile.USTAR_FORMAT) + image + _padded(len(image)))
        out.write(b"\0" * 2 * _BLOCK)
    return path


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, produced as read."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self._left)
        buffer[:count] = b"\0" * count
        self._left -= count
        return count


def tar_of_zeros(path: Path, size: int, *, mode: str = "w:bz2", name: str = "roses/z.png") -> Path:
    """A compressed tar holding one member of ``size`` zero bytes (a compression bomb)."""
    with _open_tar(path, mode) as tar:
        info = tarfile.TarInfo(name)
        info.size = size
        tar.addfile(info, io.BufferedReader(_Zeros(size), 1024**2))
    return path


def zip_member_with_declared_size(
    path: Path, name: str, data: bytes, *, method: int, declared: int
) -> Path:
    """A one-member zip whose local and central headers claim ``declared`` bytes unpacked."""
    with zipfile.ZipFile(path, "w", method) as zf:
        zf.writestr(name, data)
    blob = bytearray(path.read_bytes())
    local, central = blob.index(b"PK\x03\x04"), blob.index(b"PK\x01\x02")
    struct.pack_into("<I", blob, local + 22, declared)
    struct.pack_into("<I", blob, central + 24, declared)
    path.write_bytes(bytes(blob))
    return path
