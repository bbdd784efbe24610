"""Figures on the evaluation split: accuracy, loss, top-5, per-class precision/recall/F1."""

from __future__ import annotations

from typing import Any

import numpy as np

from kubearts_trainer.progress import finite


def figures(
    logits: np.ndarray, labels: np.ndarray, classes: list[str], loss: float
) -> dict[str, Any]:
    """The full evaluation (``evaluation/metrics.json``) of ``logits`` against ``labels``.

    ``loss`` is the training objective on the split (cross-entropy with the run's label
    smoothing). ``top5`` is present when there are more than five classes. The confusion
    matrix has one row per true class and one column per predicted class, in logit order.
    """
    count = len(classes)
    predicted = logits.argmax(axis=1) if len(logits) else np.zeros(0, np.int64)
    matrix = np.zeros((count, count), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    true_positive = np.diag(matrix).astype(np.float64)
    predicted_count = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1)
    precision = np.divide(
        true_positive, predicted_count, out=np.zeros(count), where=predicted_count > 0
    )
    recall = np.divide(true_positive, support, out=np.zeros(count), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(count), where=denominator > 0)
    samples = len(labels)
    result: dict[str, Any] = {
        "samples": samples,
        "accuracy": finite(true_positive.sum() / samples if samples else 0.0),
        "loss": finite(loss),
    }
    if count > 5:
        top5 = np.argsort(-logits, axis=1)[:, :5]
        result["top5"] = finite((top5 == labels[:, None]).any(axis=1).mean() if samples else 0.0)
    present = support > 0
    result["macroF1"] = finite(f1[present].mean() if present.any() else 0.0)
    result["perClass"] = {
        name: {
            "precision": finite(precision[i], 4),
            "recall": finite(recall[i], 4),
            "f1": finite(f1[i], 4),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
    result["confusionMatrix"] = {"labels": classes, "matrix": matrix.tolist()}
    return result
