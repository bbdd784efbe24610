"""Each kind reads a worker's exit code with the worker image's own table: a code the image
can exit with always has the image's reason in the operator, never a generic JobFailed."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from kubearts import conversion_plan, dataset_status, inference_plan, model_plan, training_plan
from kubearts_converter import errors as converter
from kubearts_dataset import errors as dataset
from kubearts_predictor import errors as predictor
from kubearts_trainer import errors as trainer


@pytest.mark.parametrize(
    ("operator_table", "image_codes"),
    [
        pytest.param(dataset_status.EXIT_REASONS, dataset.EXIT_CODES, id="dataset"),
        pytest.param(training_plan.EXIT_REASONS, trainer.EXIT_CODES, id="training"),
        pytest.param(conversion_plan.EXIT_REASONS, converter.EXIT_CODES, id="conversion"),
        pytest.param(model_plan.EXIT_REASONS, converter.EXIT_CODES, id="model-registration"),
        pytest.param(inference_plan.EXIT_REASONS, predictor.EXIT_CODES, id="predictor"),
    ],
)
def test_the_operator_knows_every_exit_code_of_the_image(
    operator_table: Mapping[int, str], image_codes: Mapping[str, int]
) -> None:
    assert dict(operator_table) == {code: reason for reason, code in image_codes.items()}
