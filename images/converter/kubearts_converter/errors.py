"""Failure reasons, their exit codes, and the one exception type that carries them.

Every expected failure is a :class:`ConverterError` with a CamelCase ``reason`` that the
operator copies into the ModelConversion's or Model's Failed condition, and a message for
people that names the cause and the fix. Each reason has its own exit code so that a Job's
exit status alone tells the class of failure even when the termination message could not be
read.
"""

from __future__ import annotations

from typing import Any, Final, Literal

Reason = Literal[
    "InternalError",
    "InvalidArgument",
    "InvalidOptions",
    "SourceUnavailable",
    "ConverterUnavailable",
    "ConversionFailed",
    "VerificationFailed",
    "RegistryConflict",
]

#: Exit code per failure reason. 0 is success; 1 an unexpected error; 2 a usage error (as
#: argparse uses it); 3 conversion options that do not fit the graph; 10-19 missing inputs or
#: tools; 20-29 failures while converting, verifying or registering.
EXIT_CODES: Final[dict[Reason, int]] = {
    "InternalError": 1,
    "InvalidArgument": 2,
    "InvalidOptions": 3,
    "SourceUnavailable": 10,
    "ConverterUnavailable": 11,
    "ConversionFailed": 20,
    "VerificationFailed": 21,
    "RegistryConflict": 22,
}


class ConverterError(Exception):
    """An expected failure with a machine-readable reason and a message for people.

    ``details`` are extra fields for the result document (e.g. the ATC command line that
    could not run, or the verification figures that failed).
    """

    def __init__(self, reason: Reason, message: str, **details: Any) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message
        self.details: dict[str, Any] = details

    @property
    def exit_code(self) -> int:
        """The process exit code for this failure's reason."""
        return EXIT_CODES[self.reason]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"
