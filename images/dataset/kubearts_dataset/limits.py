"""Size, count and compression-ratio limits applied while downloading and unpacking.

The byte limit defaults to a share of the free space on the volume the bytes are written
to, measured when writing starts: a fixed figure is either too small for a big volume or
larger than a small one, and filling the volume would fail the ingest anyway, later and
less clearly. The compression-ratio limit stops archive bombs long before they reach the
byte limit: real image data sets barely compress (JPEG and PNG are compressed already),
while a bomb inflates thousands of times.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from kubearts_dataset.errors import DatasetError

DEFAULT_MAX_FILES: Final = 1_000_000
"""Entries (files and folders) an archive or prefix may hold."""
DEFAULT_SPACE_FRACTION: Final = 0.8
"""Share of the target volume's free space that a download, or an unpacked archive, may use."""
DEFAULT_MAX_RATIO: Final = 100.0
"""Unpacked bytes per compressed byte, per zip member and over a whole archive."""
RATIO_FLOOR: Final = 8 * 1024**2
"""Output below which the ratio is not judged: small files of text or blank pixels compress
far better than 100:1 and are harmless."""
MAX_TAR_HEADER_BYTES: Final = 1024**2
"""Size of one tar pax (``x``/``g``) or GNU long-name/long-link (``L``/``K``) header; real
ones hold a path and a few attributes, a few KiB at most."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds for one ingest; exceeding any is a ``LimitExceeded`` failure."""

    max_bytes: int | None = None
    """Bytes downloaded, and separately bytes unpacked (the archive bomb guard); ``None``:
    ``space_fraction`` of the free space where the bytes go (see :meth:`for_volume`)."""
    max_files: int = DEFAULT_MAX_FILES
    """Archive entries or downloaded objects."""
    max_ratio: float = DEFAULT_MAX_RATIO
    """Unpacked bytes per compressed byte, judged beyond :data:`RATIO_FLOOR` of output."""
    space_fraction: float = DEFAULT_SPACE_FRACTION
    """Share of the free space used when ``max_bytes`` is ``None``."""
    basis: str = ""
    """Where a derived ``max_bytes`` came from, for the failure message."""

    def for_volume(self, folder: Path) -> Limits:
        """These limits with ``max_bytes`` fixed for writing below ``folder``.

        An explicit ``max_bytes`` is kept; otherwise it becomes ``space_fraction`` of the
        free space of ``folder``'s volume now.
        """
        if self.max_bytes is not None:
            return self
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # not created yet: its volume is its nearest ancestor's
        free = shutil.disk_usage(folder).free
        return replace(
            self,
            max_bytes=int(free * self.space_fraction),
            basis=f"{self.space_fraction:.0%} of the {free} bytes free on {folder}",
        )

    def check_bytes(self, total: int, what: str) -> None:
        """Fail when ``total`` bytes of ``what`` exceed the byte limit."""
        if self.max_bytes is None:
            raise AssertionError("Limits.check_bytes before for_volume()")  # a bug, not input
        if total > self.max_bytes:
            basis = f" ({self.basis})" if self.basis else ""
            raise DatasetError(
                "LimitExceeded",
                f"{what} exceeds the size limit of {self.max_bytes} bytes{basis} "
                f"(at least {total} bytes); set --max-bytes, or give the volume more space, "
                "if the data set is this large",
                detail="TooLarge",
            )

    def check_files(self, count: int, what: str) -> None:
        """Fail when ``count`` entries of ``what`` exceed the entry limit."""
        if count > self.max_files:
            raise DatasetError(
                "LimitExceeded",
                f"{what} has more than {self.max_files} entries (at least {count}); "
                "raise --max-files if the data set is this large",
                detail="TooManyFiles",
            )

    def check_ratio(self, unpacked: int, packed: int, what: str) -> None:
        """Fail when ``unpacked`` bytes from ``packed`` compressed ones exceed the ratio.

        Output up to :data:`RATIO_FLOOR` always passes, so that judging a stream as it is
        read does not refuse the highly compressible start of an ordinary archive.
        """
        if unpacked > RATIO_FLOOR and unpacked > self.max_ratio * max(packed, 1):
            raise DatasetError(
                "LimitExceeded",
                f"{what} inflates {packed} compressed bytes to at least {unpacked} bytes, more "
                f"than {self.max_ratio:g} times; this is how archive bombs look (raise "
                "--max-ratio if the data really compresses this well)",
                detail="RatioExceeded",
            )
