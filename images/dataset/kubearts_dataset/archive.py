"""Recognising and safely unpacking tar (plain, gz, bz2, xz) and zip archives.

Every entry is checked before anything is written for it: absolute names, ``..``
components, the reserved ``.kubearts/`` folder, device files and FIFOs are refused, and so
are symbolic and hard links whose target lies outside the archive. Links that stay inside
are materialised as copies once everything else is unpacked, so no link ever exists on disk
that a later entry could write through. Files are created without their archived
permissions or owners.

Hostile archives must not exhaust memory, disk or time, so:

- decompression is done here, in bounded steps (:mod:`kubearts_dataset.inflate`), not by
  ``tarfile`` or ``ZipFile.open``, which inflate a whole input block (bzip2, xz) at once;
- entry count and unpacked bytes are limited, and the byte limit counts bytes actually
  written, so a member lying about its size cannot slip through; a zip member that inflates
  past its declared size is refused outright;
- the compression ratio is limited per zip member and over the whole archive, while the
  bytes are produced;
- tar metadata headers (pax ``x``/``g``, GNU long names ``L``/``K``), which ``tarfile`` reads
  into memory whole at whatever size they claim, are refused above
  :data:`~kubearts_dataset.limits.MAX_TAR_HEADER_BYTES` before they are read.

Zip archives are checked completely before the first byte is written (the central directory
lists every entry). Tar archives are read as a stream, in one pass, and an unsafe entry
stops the unpacking; the caller unpacks into a staging folder that it deletes on failure.
"""

from __future__ import annotations

import binascii
import errno
import logging
import os
import shutil
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Final, Literal

from kubearts_dataset.errors import DatasetError
from kubearts_dataset.inflate import Check, Inflating, Slice, stream_decompressor, zip_decompressor
from kubearts_dataset.limits import MAX_TAR_HEADER_BYTES, Limits
from kubearts_dataset.paths import UnsafeNameError, resolve_link, safe_relative
from kubearts_dataset.progress import Progress
from kubearts_dataset.result import InvalidFile

log = logging.getLogger(__name__)

ArchiveKind = Literal["tar", "zip"]

CHUNK: Final = 1024 * 1024
_UTF8_FLAG: Final = 0x800
_UNICODE_PATH_EXTRA: Final = 0x7075
_MAX_LINK_TARGET: Final = 4096
_LOCAL_HEADER: Final = struct.Struct("<4s22xHH")
"""A zip local file header: signature, then the name and extra field lengths at 26."""
_TAR_METADATA: Final = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)
_MAX_TAR_METADATA_CHAIN: Final = 8
"""Metadata headers in a row before one member; tarfile reads each chain recursively."""


def detect(path: Path) -> ArchiveKind | None:
    """The archive kind of ``path`` judged by its content, not its name; ``None`` if neither."""
    with path.open("rb") as handle:
        head = handle.read(512)
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
        return "tar"
    if head[257:262] == b"ustar":
        return "tar"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if zipfile.is_zipfile(path):
        return "zip"
    if _is_tar_header(head):
        return "tar"
    return None


def _is_tar_header(block: bytes) -> bool:
    """Whether ``block`` is a tar header with a valid checksum (old tars have no magic).

    Unlike ``tarfile.is_tarfile`` this reads no further: that function processes the first
    member, and with it any oversized metadata header.
    """
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


@dataclass
class UnpackReport:
    """What an unpacking wrote."""

    files: int = 0
    bytes: int = 0
    entries: int = 0
    skipped: list[InvalidFile] = field(default_factory=list)
    """Entries not unpacked (links to folders or to missing members), with the reason."""


@dataclass(frozen=True)
class _Link:
    name: PurePosixPath
    target: PurePosixPath
    kind: Literal["symbolic", "hard"]


def unpack(
    archive: Path, kind: ArchiveKind, dest: Path, *, limits: Limits, progress: Progress
) -> UnpackReport:
    """Unpack ``archive`` into the existing folder ``dest`` under the rules of this module."""
    unpacker = _Unpacker(dest, limits.for_volume(dest), progress)
    try:
        if kind == "zip":
            unpacker.zip(archive)
        else:
            unpacker.tar(archive)
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DatasetError(
            "InvalidSource", f"the archive is damaged or truncated ({exc}); check the source"
        ) from None
    unpacker.materialise_links()
    progress.update(
        "unpack", bytes_done=unpacker.report.bytes, files=unpacker.report.files, final=True
    )
    return unpacker.report


def _conflict(name: str) -> DatasetError:
    return DatasetError(
        "InvalidSource", f"archive entry {name!r} is a folder and a file at once; re-create it"
    )


def _unsafe(name: str, why: str) -> DatasetError:
    return DatasetError("UnsafeArchive", f"archive entry {name!r} {why}; nothing was kept")


def _header_too_large(message: str) -> DatasetError:
    return DatasetError("LimitExceeded", message, detail="HeaderTooLarge")


class _BoundedTarInfo(tarfile.TarInfo):
    """A ``TarInfo`` that refuses oversized metadata headers before ``tarfile`` reads them.

    ``TarInfo._proc_member`` is where ``tarfile`` dispatches on the header type, and the
    pax and GNU long-name handlers behind it read the header's whole claimed size at once;
    checking the size here, first, bounds that read. It also bounds the chain of metadata
    headers before one member, which ``tarfile`` follows recursively.
    """

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type not in _TAR_METADATA:
            return super()._proc_member(archive)  # type: ignore[misc, no-any-return]
        assert isinstance(archive, _BoundedTarFile)
        _check_metadata_header(self, archive)
        archive.metadata_chain += 1
        try:
            return super()._proc_member(archive)  # type: ignore[misc, no-any-return]
        finally:
            archive.metadata_chain -= 1


class _BoundedTarFile(tarfile.TarFile):
    """A ``TarFile`` reading :class:`_BoundedTarInfo` headers and keeping their tallies."""

    tarinfo = _BoundedTarInfo
    metadata_chain = 0
    """Metadata headers being processed in a row (the recursion depth)."""
    global_header_bytes = 0
    """Bytes of global pax headers so far; ``tarfile`` keeps them all."""


def _check_metadata_header(info: tarfile.TarInfo, tar: _BoundedTarFile) -> None:
    long_name = info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
    kind = "GNU long name" if long_name else "pax"
    if info.size > MAX_TAR_HEADER_BYTES:
        raise _header_too_large(
            f"a tar {kind} header claims {info.size} bytes, more than the "
            f"{MAX_TAR_HEADER_BYTES} any real one needs; re-create the archive"
        )
    if tar.metadata_chain >= _MAX_TAR_METADATA_CHAIN:
        raise _header_too_large(
            f"more than {_MAX_TAR_METADATA_CHAIN} tar metadata headers in a row; "
            "re-create the archive"
        )
    if info.type == tarfile.XGLTYPE:
        tar.global_header_bytes += info.size
        if tar.global_header_bytes > MAX_TAR_HEADER_BYTES:
            raise _header_too_large(
                f"the tar's global pax headers exceed {MAX_TAR_HEADER_BYTES} bytes in all; "
                "re-create the archive"
            )


@contextmanager
def _tar_stream(handle: IO[bytes], check: Check) -> Iterator[IO[bytes]]:
    """The uncompressed tar bytes of ``handle``, inflated in bounded steps when compressed."""
    head = handle.read(8)
    handle.seek(0)
    found = stream_decompressor(head)
    if found is None:
        yield handle
        return
    magic, new = found
    with Inflating(handle, new, check=check, magic=magic, concatenated=True) as stream:
        yield stream  # type: ignore[misc]  # RawIOBase is a binary file


class _Unpacker:
    def __init__(self, dest: Path, limits: Limits, progress: Progress) -> None:
        self.dest = dest
        self.limits = limits
        self.progress = progress
        self.report = UnpackReport()
        self.links: list[_Link] = []
        self.root = dest.resolve()
        #: Folders already created and checked to lie inside ``dest``.
        self.folders: set[Path] = {dest}

    # -- checks shared by both formats -------------------------------------------------------

    def count_entry(self) -> None:
        self.report.entries += 1
        self.limits.check_files(self.report.entries, "the archive")

    def relative(self, name: str) -> PurePosixPath:
        try:
            return safe_relative(name)
        except UnsafeNameError as exc:
            raise _unsafe(name, str(exc)) from None

    def link(self, name: str, relative: PurePosixPath, target: str, *, hard: bool) -> None:
        try:
            resolved = resolve_link(relative, target, hard=hard)
            safe_relative(resolved.as_posix())
        except UnsafeNameError as exc:
            kind = "hard link" if hard else "symbolic link"
            raise _unsafe(name, f"is a {kind} that {exc}") from None
        self.links.append(_Link(relative, resolved, "hard" if hard else "symbolic"))

    def path_for(self, name: str, relative: PurePosixPath) -> Path:
        """Where ``relative`` goes, after making sure its folder is a real folder in ``dest``.

        The name is already known to be relative without ``..``; resolving the parent folder
        (once per folder) is defence in depth against a link on disk redirecting the write.
        """
        path = self.dest.joinpath(*relative.parts)
        parent = path.parent
        if parent not in self.folders:
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise _conflict(name) from None
            real = Path(os.path.realpath(parent))
            if real != self.root and self.root not in real.parents:
                raise _unsafe(name, f"resolves outside the target ({real})")
            self.folders.add(parent)
        return path

    def directory(self, name: str, relative: PurePosixPath) -> None:
        path = self.path_for(name, relative)
        try:
            path.mkdir(exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise _conflict(name) from None
        if not path.is_dir() or path.is_symlink():
            raise _conflict(name)

    def regular(
        self, name: str, relative: PurePosixPath, size: int, data: IO[bytes] | Inflating
    ) -> None:
        self.limits.check_bytes(self.report.bytes + size, "the unpacked archive")
        path = self.path_for(name, relative)
        try:
            # O_NOFOLLOW: never write through a link, even one this code did not create.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        except IsADirectoryError:
            raise _conflict(name) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _unsafe(name, "would be written through a symbolic link") from None
            raise
        with os.fdopen(fd, "wb") as out:
            while chunk := data.read(CHUNK):
                self.report.bytes += len(chunk)
                self.limits.check_bytes(self.report.bytes, "the unpacked archive")
                out.write(chunk)
        self.report.files += 1
        self.progress.update("unpack", bytes_done=self.report.bytes, files=self.report.files)

    def materialise_links(self) -> None:
        """Copy each in-archive link's target to the link's place, in archive order."""
        for link in self.links:
            source = self.dest.joinpath(*link.target.parts)
            if source.is_dir():
                self.report.skipped.append(
                    {
                        "path": link.name.as_posix(),
                        "reason": f"{link.kind} link to a folder ({link.target}) is not followed",
                    }
                )
                continue
            if not source.is_file():
                self.report.skipped.append(
                    {
                        "path": link.name.as_posix(),
                        "reason": f"{link.kind} link to {link.target}, which is not in the archive",
                    }
                )
                continue
            with source.open("rb") as data:
                self.regular(link.name.as_posix(), link.name, source.stat().st_size, data)

    # -- tar ---------------------------------------------------------------------------------

    def tar(self, archive: Path) -> None:
        # "r|": one streaming pass over the bytes _tar_stream inflates; names decoded as
        # UTF-8 with surrogateescape so that undecodable bytes are detected, not guessed.
        def check(produced: int, consumed: int) -> None:
            self.limits.check_ratio(produced, consumed, "the archive")

        with (
            archive.open("rb") as handle,
            _tar_stream(handle, check) as stream,
            _BoundedTarFile.open(
                fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape"
            ) as tar,
        ):
            for member in tar:
                self.count_entry()
                name = member.name
                if _has_surrogates(name):
                    raise DatasetError(
                        "InvalidSource",
                        f"archive entry {name.encode('utf-8', 'surrogateescape')!r} is not "
                        "valid UTF-8; re-create the archive with UTF-8 names",
                    )
                if member.isdir() and not name.strip("./"):
                    continue  # "./", the archive root itself
                if member.ischr() or member.isblk():
                    raise _unsafe(name, "is a device file")
                if member.isfifo():
                    raise _unsafe(name, "is a FIFO")
                relative = self.relative(name)
                if member.isdir():
                    self.directory(name, relative)
                elif member.isreg():
                    data = tar.extractfile(member)
                    if data is None:  # pragma: no cover - isreg() members always have data
                        raise _unsafe(name, "has no data")
                    with data:
                        self.regular(name, relative, member.size, data)
                elif member.issym():
                    self.link(name, relative, member.linkname, hard=False)
                elif member.islnk():
                    self.link(name, relative, member.linkname, hard=True)
                else:
                    raise _unsafe(name, f"has the unsupported tar type {member.type!r}")

    # -- zip ---------------------------------------------------------------------------------

    def zip(self, archive: Path) -> None:
        packed = archive.stat().st_size
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            self.limits.check_files(len(infos), "the archive")
            declared = sum(i.file_size for i in infos)
            self.limits.check_bytes(declared, "the unpacked archive")
            self.limits.check_ratio(declared, packed, "the archive")
            plan: list[tuple[zipfile.ZipInfo, str, PurePosixPath, str]] = []
            for info in infos:
                name = zip_name(info)
                mode = info.external_attr >> 16
                if info.is_dir() and not name.strip("./"):
                    continue
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                    raise _unsafe(name, "is a device file")
                if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                    raise _unsafe(name, "is a FIFO or socket")
                if info.flag_bits & 0x1:
                    raise DatasetError(
                        "InvalidSource",
                        f"archive entry {name!r} is encrypted; encrypted zips are not supported",
                    )
                relative = self.relative(name)
                self.limits.check_ratio(info.file_size, info.compress_size, f"entry {name!r}")
                if stat.S_ISLNK(mode):
                    target = self.zip_link_target(zf, info, name)
                    self.link(name, relative, target, hard=False)
                    continue
                plan.append((info, name, relative, "dir" if info.is_dir() else "file"))
            # Every entry passed the checks: now write.
            for info, name, relative, what in plan:
                self.count_entry()
                if what == "dir":
                    self.directory(name, relative)
                    continue
                with self.zip_member(zf, info, name, packed) as data:
                    self.regular(name, relative, info.file_size, data)

    def zip_link_target(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> str:
        if info.file_size > _MAX_LINK_TARGET:
            raise _unsafe(name, "is a symbolic link with an oversized target")
        with self.zip_member(zf, info, name, info.compress_size) as data:
            return data.readall().decode("utf-8", "surrogateescape")

    @contextmanager
    def zip_member(
        self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, packed: int
    ) -> Iterator[Inflating]:
        """The member's bytes, inflated in bounded steps and checked as they come.

        Output past the declared size is refused at once (``SizeMismatch``); the ratio is
        judged for the member and, with ``packed`` the archive's size, for everything
        written so far. At the end, a short output or a wrong CRC means a damaged archive.
        """
        try:
            new = zip_decompressor(info.compress_type)
        except NotImplementedError as exc:
            raise DatasetError(
                "InvalidSource", f"archive entry {name!r}: {exc}; re-create the zip"
            ) from None
        before = self.report.bytes

        def check(produced: int, consumed: int) -> None:
            if produced > info.file_size:
                raise DatasetError(
                    "UnsafeArchive",
                    f"archive entry {name!r} inflates past its declared size of "
                    f"{info.file_size} bytes; nothing was kept",
                    detail="SizeMismatch",
                )
            self.limits.check_ratio(produced, info.compress_size, f"entry {name!r}")
            self.limits.check_ratio(before + produced, packed, "the archive")

        assert zf.fp is not None
        offset = _zip_data_offset(zf.fp, info)
        with Inflating(Slice(zf.fp, offset, info.compress_size), new, check=check) as data:
            yield data
        if data.produced != info.file_size:
            raise zipfile.BadZipFile(f"{name!r} ends after {data.produced} bytes")
        if data.crc != info.CRC:
            raise zipfile.BadZipFile(f"bad CRC-32 for {name!r}")


def _zip_data_offset(handle: IO[bytes], info: zipfile.ZipInfo) -> int:
    """Where the member's compressed bytes start: after its local header."""
    handle.seek(info.header_offset)
    header = handle.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local file header for {info.filename!r}")
    _, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    return int(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)


def zip_name(info: zipfile.ZipInfo) -> str:
    """The entry name as the archiver meant it.

    Names flagged UTF-8 are taken as they are. Otherwise an Info-ZIP Unicode Path field
    wins when its checksum matches; then the raw bytes are tried as UTF-8, which is what
    most archivers write even without setting the flag; only if that fails does the name
    stay code page 437, the encoding the zip specification prescribes.
    """
    if info.flag_bits & _UTF8_FLAG:
        return info.filename
    raw = info.orig_filename.encode("cp437")
    unicode_path = _unicode_path_field(info.extra, raw)
    if unicode_path is not None:
        return unicode_path
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return info.filename


def _unicode_path_field(extra: bytes, raw_name: bytes) -> str | None:
    offset = 0
    while offset + 4 <= len(extra):
        header_id, size = struct.unpack_from("<HH", extra, offset)
        body = extra[offset + 4 : offset + 4 + size]
        offset += 4 + size
        if header_id != _UNICODE_PATH_EXTRA or len(body) < 5 or body[0] != 1:
            continue
        (crc,) = struct.unpack_from("<I", body, 1)
        if crc != binascii.crc32(raw_name):
            continue  # the name was changed after the field was written: ignore it
        try:
            return body[5:].decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def remove_tree(path: Path) -> None:
    """Delete ``path`` and everything below it if it exists (links are removed, not followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
