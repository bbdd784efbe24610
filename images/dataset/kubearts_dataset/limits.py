"""Size and count limits applied while downloading and unpacking a data set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kubearts_dataset.errors import DatasetError

DEFAULT_MAX_BYTES: Final = 20 * 1024**3
"""20 GiB: several times the usual image-classification data set, well below a full PVC."""
DEFAULT_MAX_FILES: Final = 1_000_000
"""Entries (files and folders) an archive or prefix may hold."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds for one ingest; exceeding either is a ``LimitExceeded`` failure."""

    max_bytes: int = DEFAULT_MAX_BYTES
    """Bytes downloaded, and separately bytes unpacked (the archive bomb guard)."""
    max_files: int = DEFAULT_MAX_FILES
    """Archive entries or downloaded objects."""

    def check_bytes(self, total: int, what: str) -> None:
        """Fail when ``total`` bytes of ``what`` exceed the byte limit."""
        if total > self.max_bytes:
            raise DatasetError(
                "LimitExceeded",
                f"{what} exceeds the size limit of {self.max_bytes} bytes "
                f"(at least {total} bytes); raise --max-bytes if the data set is this large",
            )

    def check_files(self, count: int, what: str) -> None:
        """Fail when ``count`` entries of ``what`` exceed the entry limit."""
        if count > self.max_files:
            raise DatasetError(
                "LimitExceeded",
                f"{what} has more than {self.max_files} entries (at least {count}); "
                "raise --max-files if the data set is this large",
            )
