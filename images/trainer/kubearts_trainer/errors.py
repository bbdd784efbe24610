"""Failure reasons, their exit codes, and the one exception type that carries them.

Every expected failure is a :class:`TrainerError` with a CamelCase ``reason`` that the
operator copies into the TrainingJob's Failed condition, and a message for people that names
the cause and the fix. Each reason has its own exit code so that a Job's exit status alone
tells the class of failure even when the termination message could not be read.
"""

from __future__ import annotations

from typing import Final, Literal

Reason = Literal[
    "InternalError",
    "InvalidArgument",
    "InvalidHyperparameter",
    "DataUnavailable",
    "WeightsUnavailable",
    "AcceleratorUnavailable",
    "TrainingFailed",
    "ExportFailed",
]

#: Exit code per failure reason. 0 is success; 1 an unexpected error; 2 a usage error (as
#: argparse uses it); 3 a hyperparameter the trainer refuses; 10-19 missing inputs or devices;
#: 20-29 failures while training or writing the artifacts.
EXIT_CODES: Final[dict[Reason, int]] = {
    "InternalError": 1,
    "InvalidArgument": 2,
    "InvalidHyperparameter": 3,
    "DataUnavailable": 10,
    "WeightsUnavailable": 11,
    "AcceleratorUnavailable": 12,
    "TrainingFailed": 20,
    "ExportFailed": 21,
}


class TrainerError(Exception):
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
