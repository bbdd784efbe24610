"""Decompression with bounded memory: never more output at once than the reader asked for.

The standard library's streaming readers are not bounded this way: ``tarfile``'s stream mode
decompresses each input block whole, and ``ZipFile.open`` does the same for bzip2 and xz
members, so a few KiB of a bomb can turn into gigabytes in memory before any limit sees a
byte. Here every decompressor call passes ``max_length``, and a ``check`` callback sees the
running totals (output and compressed input) after every chunk, so limits on size and
compression ratio act while the bytes are produced.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

INPUT_CHUNK: Final = 64 * 1024
"""Compressed bytes read at a time."""

GZIP_MAGIC: Final = b"\x1f\x8b"
BZIP2_MAGIC: Final = b"BZh"
XZ_MAGIC: Final = b"\xfd7zXZ\x00"
LZMA_ALONE_MAGIC: Final = b"\x5d\x00\x00"

Check = Callable[[int, int], None]
"""Called with (bytes produced, compressed bytes consumed) after each output chunk; raises to
stop."""


class Source(Protocol):
    """Compressed bytes: an open file or a :class:`Slice` of one."""

    def read(self, size: int = -1, /) -> bytes | None: ...


class Decompressor(Protocol):
    """The interface of :class:`bz2.BZ2Decompressor` and :class:`lzma.LZMADecompressor`."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    @property
    def needs_input(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _Zlib:
    """zlib behind the bz2/lzma interface: zlib hands unconsumed input back, they keep it."""

    def __init__(self, wbits: int) -> None:
        self._inflater = zlib.decompressobj(wbits)
        self._tail = b""

    @property
    def eof(self) -> bool:
        return self._inflater.eof

    @property
    def unused_data(self) -> bytes:
        return self._inflater.unused_data

    @property
    def needs_input(self) -> bool:
        return not self._tail and not self._inflater.eof

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        # zlib reads a max_length of 0 as "unlimited": the one value never to pass on.
        if max_length == 0:
            self._tail += data
            return b""
        out = self._inflater.decompress(self._tail + data, max(max_length, 0))
        self._tail = self._inflater.unconsumed_tail
        return out


class _Stored:
    """A zip member stored without compression, behind the same interface."""

    def __init__(self) -> None:
        self._pending = b""
        self.eof = False
        self.unused_data = b""

    @property
    def needs_input(self) -> bool:
        return not self._pending

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        self._pending += data
        size = len(self._pending) if max_length < 0 else max_length
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


class _ZipLzma:
    """LZMA as zip stores it: a 4-byte header and the 5-byte properties, then raw LZMA1 data.

    The properties are decoded here (as the zip specification, section 5.8, describes) so
    that the public ``lzma`` API can read the raw stream.
    """

    def __init__(self) -> None:
        self._header = b""
        self._inner: lzma.LZMADecompressor | None = None

    @property
    def eof(self) -> bool:
        return self._inner is not None and self._inner.eof

    @property
    def unused_data(self) -> bytes:
        return b"" if self._inner is None else self._inner.unused_data

    @property
    def needs_input(self) -> bool:
        return self._inner is None or self._inner.needs_input

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if self._inner is None:
            self._header += data
            if len(self._header) < 4:
                return b""
            (props_size,) = struct.unpack_from("<H", self._header, 2)
            if len(self._header) < 4 + props_size:
                return b""
            props, data = self._header[4 : 4 + props_size], self._header[4 + props_size :]
            self._inner = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[_lzma1_filter(props)])
        return self._inner.decompress(data, max_length)


def _lzma1_filter(props: bytes) -> dict[str, int]:
    if len(props) != 5:
        raise zipfile.BadZipFile(f"LZMA properties of {len(props)} bytes; expected 5")
    packed, dict_size = props[0], int.from_bytes(props[1:5], "little")
    if packed >= 9 * 5 * 5:
        raise zipfile.BadZipFile("invalid LZMA properties")
    return {
        "id": lzma.FILTER_LZMA1,
        "lc": packed % 9,
        "lp": packed // 9 % 5,
        "pb": packed // 45,
        "dict_size": dict_size,
    }


_ZIP_METHODS: Final[dict[int, Callable[[], Decompressor]]] = {
    zipfile.ZIP_STORED: _Stored,
    zipfile.ZIP_DEFLATED: lambda: _Zlib(-zlib.MAX_WBITS),
    zipfile.ZIP_BZIP2: bz2.BZ2Decompressor,
    zipfile.ZIP_LZMA: _ZipLzma,
}


def zip_decompressor(method: int) -> Callable[[], Decompressor]:
    """A factory for zip compression ``method``; ``NotImplementedError`` when unsupported."""
    try:
        return _ZIP_METHODS[method]
    except KeyError:
        raise NotImplementedError(f"compression method {method} is not supported") from None


def stream_decompressor(head: bytes) -> tuple[bytes, Callable[[], Decompressor]] | None:
    """``(magic, factory)`` for a gzip, bzip2, xz or lzma stream starting with ``head``."""
    if head.startswith(GZIP_MAGIC):
        return GZIP_MAGIC, lambda: _Zlib(16 + zlib.MAX_WBITS)
    if head.startswith(BZIP2_MAGIC):
        return BZIP2_MAGIC, bz2.BZ2Decompressor
    if head.startswith(XZ_MAGIC):
        return XZ_MAGIC, lzma.LZMADecompressor
    if head.startswith(LZMA_ALONE_MAGIC):
        return LZMA_ALONE_MAGIC, lzma.LZMADecompressor
    return None


class Slice(io.RawIOBase):
    """``length`` bytes of an open file from ``offset`` on (positional reads, no seeking)."""

    def __init__(self, handle: IO[bytes], offset: int, length: int) -> None:
        self._fd = handle.fileno()
        self._offset = offset
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = os.pread(self._fd, min(len(view), self._left), self._offset)
        view[: len(data)] = data
        self._offset += len(data)
        self._left -= len(data)
        return len(data)


class Inflating(io.RawIOBase):
    """The decompressed bytes of ``source``, produced at most as many at a time as read.

    ``concatenated``: after one compressed stream ends, another one starting with ``magic``
    may follow (``pigz``, ``pbzip2`` and ``cat a.gz b.gz`` write such files); anything else
    after the end is ignored, as ``gzip -d`` does. ``crc`` is the CRC-32 of the output so far.
    """

    def __init__(
        self,
        source: Source,
        new: Callable[[], Decompressor],
        *,
        check: Check,
        magic: bytes = b"",
        concatenated: bool = False,
    ) -> None:
        self._source = source
        self._new = new
        self._inner = new()
        self._check = check
        self._magic = magic
        self._concatenated = concatenated
        self._done = False
        self._carry = b""
        """Input read past the end of one stream, the start of the next."""
        self.consumed = 0
        self.produced = 0
        self.crc = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        out = self._next(len(view))
        view[: len(out)] = out
        return len(out)

    def _read_source(self) -> bytes:
        data = self._source.read(INPUT_CHUNK) or b""
        self.consumed += len(data)
        return data

    def _next(self, size: int) -> bytes:
        while not self._done and size > 0:
            if self._inner.eof and not self._next_stream():
                self._done = True
                break
            data, self._carry = self._carry, b""
            if not data and self._inner.needs_input:
                data = self._read_source()
                if not data:
                    self._done = True  # input ends; a truncated stream shows as short output
                    break
            out = self._inner.decompress(data, size)
            if out:
                self.produced += len(out)
                self.crc = zlib.crc32(out, self.crc)
                self._check(self.produced, self.consumed)
                return out
        return b""

    def _next_stream(self) -> bool:
        """After the end of one stream: start the next if one follows."""
        if not self._concatenated:
            return False
        rest = self._inner.unused_data
        while len(rest) < max(len(self._magic), 1) and (more := self._read_source()):
            rest += more
        if not rest or not rest.startswith(self._magic):
            return False
        self._inner = self._new()
        self._carry = rest
        return True
