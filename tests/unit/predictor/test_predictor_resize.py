"""The predictor resizes exactly as the trainer does, so a served model sees the pixels it
was trained and evaluated on: ``tf.image.resize`` (bilinear), rounded to uint8."""

from __future__ import annotations

import numpy as np
import pytest

from kubearts_predictor.preprocess import resize_bilinear


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((8, 8), (32, 32)),
        ((8, 8), (224, 224)),
        ((300, 417), (224, 224)),
        ((50, 37), (32, 32)),
        ((7, 13), (29, 31)),
        ((1, 1), (4, 4)),
    ],
    ids=str,
)
def test_resize_matches_the_trainers_pipeline_to_the_pixel(
    source: tuple[int, int], target: tuple[int, int]
) -> None:
    import tensorflow as tf

    pixels = np.random.default_rng(sum(source)).integers(0, 256, (*source, 3), dtype=np.uint8)
    expected = tf.cast(
        tf.clip_by_value(tf.round(tf.image.resize(pixels, target)), 0, 255), tf.uint8
    )
    np.testing.assert_array_equal(resize_bilinear(pixels, target), expected.numpy())
