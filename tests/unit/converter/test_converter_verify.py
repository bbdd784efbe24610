"""Verification maths: absolute differences, top-1 agreement with ties, pass/fail."""

from __future__ import annotations

import numpy as np
import pytest

from kubearts_converter.verify import compare, top1_agreement


def test_identical_outputs_pass() -> None:
    logits = np.array([[1.0, 2.0, 0.5], [3.0, -1.0, 0.0]], dtype=np.float32)
    result = compare([logits], [logits.copy()], 1e-4)
    assert result.passed
    assert result.maxAbsDiff == 0.0
    assert result.top1Agreement == 1.0
    assert result.samples == 2


def test_difference_above_the_tolerance_fails_with_figures() -> None:
    ref = np.array([[1.0, 2.0], [3.0, 1.0]])
    conv = ref + np.array([[0.0, 2e-4], [1e-5, 0.0]])
    result = compare([ref], [conv], 1e-4)
    assert not result.passed
    assert result.maxAbsDiff == pytest.approx(2e-4)
    assert result.meanAbsDiff == pytest.approx(2.1e-4 / 4)
    assert "exceeds the tolerance" in result.message


def test_near_zero_logits_are_compared_absolutely() -> None:
    # A relative measure would call this a 100 % error; absolutely it is 1e-9.
    ref = np.array([[1e-9, 5.0, -2.0]])
    conv = np.array([[2e-9, 5.0, -2.0]])
    result = compare([ref], [conv], 1e-6)
    assert result.passed
    assert result.maxAbsDiff == pytest.approx(1e-9)


def test_a_changed_top_class_fails_even_within_the_tolerance() -> None:
    ref = np.array([[1.0, 1.00005]])
    conv = np.array([[1.00005, 1.0]])
    # The converted pick (class 0) scores 1.0 in the source, 5e-5 below its best: a tie
    # within the tolerance 1e-4 ...
    assert top1_agreement(ref, conv, 1e-4) == 1.0
    assert compare([ref], [conv], 1e-4).passed
    # ... but not within 1e-5.
    assert top1_agreement(ref, conv, 1e-5) == 0.0


def test_exact_ties_agree() -> None:
    ref = np.array([[2.0, 2.0, 1.0], [0.0, 0.0, 0.0]])
    assert top1_agreement(ref, ref.copy(), 1e-7) == 1.0


def test_disagreement_share() -> None:
    ref = np.array([[0.0, 9.0], [9.0, 0.0], [9.0, 0.0], [0.0, 9.0]])
    conv = np.array([[0.0, 9.0], [0.0, 9.0], [9.0, 0.0], [0.0, 9.0]])
    result = compare([ref], [conv], 1e-4)
    assert result.top1Agreement == 0.75
    assert not result.passed
    assert "top-1 agreement is 0.750" in result.message


def test_non_finite_outputs_fail() -> None:
    ref = np.array([[1.0, 2.0]])
    conv = np.array([[np.nan, 2.0]])
    result = compare([ref], [conv], 1e-4)
    assert not result.passed
    assert result.maxAbsDiff is None
    assert "NaN" in result.message


def test_shape_mismatch_fails() -> None:
    result = compare([np.zeros((2, 3))], [np.zeros((2, 4))], 1e-4)
    assert not result.passed
    assert "shape" in result.message


def test_document_names_the_inputs() -> None:
    logits = np.eye(3)
    document = compare([logits], [logits], 1e-4).document("eval-split")
    assert document["inputs"] == "eval-split"
    assert set(document) >= {
        "passed",
        "samples",
        "tolerance",
        "maxAbsDiff",
        "meanAbsDiff",
        "top1Agreement",
        "message",
    }
