"""Failure reasons, their exit codes, and the one exception type that carries them.

Every expected failure is a :class:`DatasetError` with a CamelCase ``reason`` that the
operator copies into a condition, and a message for people that names the cause and the fix.
Each reason has its own exit code so that a Job's exit status alone tells the class of failure
even when the result file could not be read. A few failures also carry a ``detail`` naming the
specific cause (:data:`Detail`).
"""

from __future__ import annotations

from typing import Final, Literal

Reason = Literal[
    "InvalidArgument",
    "DownloadFailed",
    "ChecksumMismatch",
    "UnsafeArchive",
    "NoImagesFound",
    "LimitExceeded",
    "InvalidSource",
    "InvalidFormat",
    "InvalidTarget",
    "UploadFailed",
    "VersionImmutable",
    "NotIngested",
    "RemoveFailed",
    "InternalError",
]

#: Exit code per failure reason. 0 is success; 1 is an unexpected error; 2 is a usage error
#: (as argparse uses it). Codes 10-19 are ingest failures, 20-29 publish failures, 30-39
#: remove failures.
EXIT_CODES: Final[dict[Reason, int]] = {
    "InternalError": 1,
    "InvalidArgument": 2,
    "DownloadFailed": 10,
    "ChecksumMismatch": 11,
    "UnsafeArchive": 12,
    "NoImagesFound": 13,
    "LimitExceeded": 14,
    "InvalidSource": 15,
    "InvalidFormat": 16,
    "InvalidTarget": 17,
    "UploadFailed": 18,
    "VersionImmutable": 20,
    "NotIngested": 21,
    "RemoveFailed": 30,
}


Detail = Literal[
    "HeaderTooLarge",
    "RatioExceeded",
    "TooLarge",
    "TooManyFiles",
    "SizeMismatch",
    "DownloadTimeout",
]
"""Specific causes, each within one reason: ``DownloadTimeout`` within ``DownloadFailed``,
``SizeMismatch`` (a zip member inflating past its declared size) within ``UnsafeArchive``,
the others within ``LimitExceeded``."""


class DatasetError(Exception):
    """An expected failure with a machine-readable reason and a message for people.

    ``detail`` optionally names the specific cause within the reason's class (for example
    ``RatioExceeded`` within ``LimitExceeded``) for people and tools that want to tell them
    apart; the reason stays one of the few classes the operator and the exit codes know.
    """

    def __init__(self, reason: Reason, message: str, *, detail: Detail | None = None) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message
        self.detail = detail

    @property
    def exit_code(self) -> int:
        """The process exit code for this failure's reason."""
        return EXIT_CODES[self.reason]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"
