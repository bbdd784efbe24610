"""Failure reasons, their exit codes, and the one exception type that carries them.

A failure at start-up (the model folder cannot be loaded, the pool's accelerator is not
there) ends the process with a result document whose ``reason`` the operator copies into the
InferenceService's Ready condition; the exit code alone tells the class of failure when the
termination message could not be read. Bad requests never end the process: they are
answered with 4xx statuses (see :mod:`kubearts_predictor.limits`).
"""

from __future__ import annotations

from typing import Final, Literal

Reason = Literal[
    "InternalError",
    "InvalidArgument",
    "ModelLoadFailed",
    "InputUnavailable",
    "AcceleratorUnavailable",
    "PredictionFailed",
]

#: Exit code per failure reason. 0 is success; 1 an unexpected error; 2 a usage error (as
#: argparse uses it); 10-19 missing or unusable inputs and devices; 20-29 failures while
#: predicting (batch mode).
EXIT_CODES: Final[dict[Reason, int]] = {
    "InternalError": 1,
    "InvalidArgument": 2,
    "ModelLoadFailed": 10,
    "InputUnavailable": 11,
    "AcceleratorUnavailable": 12,
    "PredictionFailed": 20,
}


class PredictorError(Exception):
    """An expected failure with a machine-readable reason and a message for people."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message

    @property
    def exit_code(self) -> int:
        """The process exit code for this failure's reason."""
        return EXIT_CODES[self.reason]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"
