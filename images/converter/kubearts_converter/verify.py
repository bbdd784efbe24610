"""Verification maths: the converted model's outputs against the source's. Pure (numpy).

Outputs are compared in absolute terms: ``max |Δ|`` and ``mean |Δ|`` over every element of
every output. A relative measure would blow up on logits near zero, where a difference of
1e-7 is 100 % of a logit of 1e-7 and means nothing.

Top-1 agreement: a sample agrees when the converted model's top class is the source's, or
when the source scores the converted model's pick within ``tolerance`` of its own maximum —
a tie, within the tolerance the user accepts, that float rounding may break either way.

Verification passes iff every figure is finite, ``max |Δ| <= tolerance`` and the top-1
agreement is 1.0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Comparison:
    passed: bool
    samples: int
    tolerance: float
    maxAbsDiff: float | None  # noqa: N815 - the result document's field names (None: not finite)
    meanAbsDiff: float | None  # noqa: N815
    top1Agreement: float  # noqa: N815
    message: str

    def document(self, inputs: str) -> dict[str, Any]:
        """The result's ``verification`` object; ``inputs`` is "eval-split" or "random"."""
        return {**asdict(self), "inputs": inputs}


def top1_agreement(
    reference: npt.NDArray[Any], converted: npt.NDArray[Any], tolerance: float
) -> float:
    """Share of samples (rows) whose top class agrees, ties within ``tolerance`` counting."""
    ref = reference.reshape(reference.shape[0], -1).astype(np.float64)
    conv = converted.reshape(converted.shape[0], -1).astype(np.float64)
    if ref.shape[0] == 0:
        return 1.0
    picks = conv.argmax(axis=1)
    best = ref.max(axis=1)
    scored = ref[np.arange(ref.shape[0]), picks]
    agree = (picks == ref.argmax(axis=1)) | (scored >= best - tolerance)
    return float(agree.mean())


def compare(
    reference: list[npt.NDArray[Any]],
    converted: list[npt.NDArray[Any]],
    tolerance: float,
) -> Comparison:
    """Compare the outputs (one array per output, samples on axis 0); the first output is
    the one whose top-1 is compared (the logits)."""
    if len(reference) != len(converted) or not reference:
        return _failed(0, tolerance, f"{len(converted)} outputs against {len(reference)}")
    samples = int(reference[0].shape[0]) if reference[0].ndim else 1
    for i, (ref, conv) in enumerate(zip(reference, converted, strict=True)):
        if ref.shape != conv.shape:
            return _failed(
                samples, tolerance, f"output {i} has shape {conv.shape}, the source {ref.shape}"
            )
    diffs = [
        np.abs(ref.astype(np.float64) - conv.astype(np.float64)).ravel()
        for ref, conv in zip(reference, converted, strict=True)
    ]
    flat = np.concatenate(diffs) if diffs else np.zeros(0)
    if flat.size == 0:
        return _failed(samples, tolerance, "the outputs are empty")
    finite = bool(np.isfinite(flat).all())
    max_diff = float(flat.max()) if finite else float("inf")
    mean_diff = float(flat.mean()) if finite else float("inf")
    first_ref, first_conv = reference[0], converted[0]
    agreement = (
        top1_agreement(first_ref, first_conv, tolerance)
        if first_ref.ndim >= 2 and finite
        else (1.0 if finite else 0.0)
    )
    passed = finite and max_diff <= tolerance and agreement == 1.0
    if not finite:
        message = "the outputs hold NaN or infinite values"
    elif passed:
        message = (
            f"{samples} samples: max |Δ| {max_diff:.3g} ≤ tolerance {tolerance:g}, "
            "top-1 agreement 1.0"
        )
    else:
        reasons = []
        if max_diff > tolerance:
            reasons.append(f"max |Δ| {max_diff:.3g} exceeds the tolerance {tolerance:g}")
        if agreement < 1.0:
            reasons.append(f"top-1 agreement is {agreement:.3f}, not 1.0")
        message = f"{samples} samples: " + " and ".join(reasons)
    return Comparison(
        passed=passed,
        samples=samples,
        tolerance=tolerance,
        maxAbsDiff=max_diff if finite else None,
        meanAbsDiff=mean_diff if finite else None,
        top1Agreement=agreement,
        message=message,
    )


def _failed(samples: int, tolerance: float, why: str) -> Comparison:
    return Comparison(False, samples, tolerance, None, None, 0.0, f"cannot compare: {why}")
