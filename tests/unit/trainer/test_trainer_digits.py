"""ResNet v1 50 learns the digits: the whole data set split 0.8 per class, 32 px, 5 epochs,
the gallery's defaults otherwise (momentum optimizer, learning rate 0.01, batch 32)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from trainer_helpers import make_digits, run_main, train_args


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_resnet_v1_50_reaches_085_on_digits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEARTS_DEVICE", "cpu")
    digits = make_digits(tmp_path / "digits", every=1)
    started = time.monotonic()
    outcome = run_main(
        train_args(digits, tmp_path / "out", "--epochs=5", "--image_size=32", model="resnet_v1_50")
    )
    seconds = time.monotonic() - started
    assert outcome.code == 0, outcome.result
    accuracy = outcome.result["evaluation"]["accuracy"]
    print(f"resnet_v1_50 digits: eval accuracy {accuracy} in {seconds:.0f} s")
    assert accuracy >= 0.85
