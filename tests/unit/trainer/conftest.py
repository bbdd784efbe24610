"""Fixtures for the trainer's tests: the digits as a dataset directory, and one small
training run (MobileNet v1, 32 px, one epoch) shared by the tests that read its events,
result and artifacts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from trainer_helpers import Digits, Outcome, make_digits, run_main, train_args


@pytest.fixture(scope="session")
def small_digits(tmp_path_factory: pytest.TempPathFactory) -> Digits:
    """90 digits (72 train, 18 eval), all ten classes."""
    return make_digits(tmp_path_factory.mktemp("digits-small"), every=20)


@pytest.fixture(scope="session")
def trained(small_digits: Digits, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """MobileNet v1 at 32 px for one epoch, asked for a GPU with CPU fallback allowed (this
    machine has none), progress lines every step."""
    output = tmp_path_factory.mktemp("run") / "output"
    patch = pytest.MonkeyPatch()
    patch.setenv("KUBEARTS_DEVICE", "gpu")
    patch.setenv("KUBEARTS_ALLOW_CPU_FALLBACK", "true")
    try:
        yield run_main(
            train_args(
                small_digits,
                output,
                "--epochs=1",
                "--image_size=32",
                "--batch_size=16",
                "--optimizer=adam",
                "--learning_rate=0.001",
                "--progress-interval",
                "0",
                "--log-file",
                str(output / "logs" / "train.log"),
            )
        )
    finally:
        patch.undo()
