"""A whole run through the command line, read as the operator reads it: progress and epoch
lines, the result (stdout and termination message), the artifacts and the model card; and
the failures that stop a run before training (device, weights, data)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from trainer_helpers import Digits, Outcome, run_main, train_args

from kubearts_trainer.errors import EXIT_CODES

PROGRESS_KEYS = {
    "event",
    "epoch",
    "epochs",
    "step",
    "steps",
    "percent",
    "etaSeconds",
    "loss",
    "accuracy",
    "imagesPerSecond",
}
EPOCH_KEYS = {
    "event",
    "epoch",
    "epochs",
    "loss",
    "accuracy",
    "evalLoss",
    "evalAccuracy",
    "imagesPerSecond",
    "seconds",
}
RESULT_KEYS = {
    "event",
    "status",
    "reason",
    "message",
    "device",
    "fallback",
    "metrics",
    "evaluation",
    "outputs",
    "durationSeconds",
}


def test_run_succeeds_on_cpu_fallback(trained: Outcome) -> None:
    assert trained.code == 0, trained.result
    result = trained.result
    assert result["status"] == "Succeeded"
    assert (result["device"], result["fallback"]) == ("CPU", True)
    assert "instead of gpu" in result["message"]


def test_the_log_is_archived_next_to_the_outputs(trained: Outcome) -> None:
    archived = (trained.output / "logs" / "train.log").read_text(encoding="utf-8")
    lines = [json.loads(line) for line in archived.splitlines() if line.startswith("{")]
    assert lines[-1] == trained.result  # the JSON lines, ending with the result
    assert any(not line.startswith("{") for line in archived.splitlines())  # and the log


def test_progress_lines_have_the_documented_shape(trained: Outcome, small_digits: Digits) -> None:
    progress = trained.of("progress")
    steps = small_digits.train_count // 16
    assert progress, "no progress line"
    for line in progress:
        assert set(line) == PROGRESS_KEYS
        assert (line["epoch"], line["epochs"], line["steps"]) == (1, 1, steps)
        assert 0 < line["percent"] <= 100
        assert line["etaSeconds"] >= 0
    # With --progress-interval 0 every step is reported, the last at 100 %.
    assert [line["step"] for line in progress] == list(range(1, steps + 1))
    assert progress[-1]["percent"] == 100.0
    assert progress[-1]["etaSeconds"] == 0.0


def test_epoch_line_has_the_documented_shape(trained: Outcome) -> None:
    (epoch,) = trained.of("epoch")
    assert set(epoch) == EPOCH_KEYS
    assert epoch["epoch"] == 1
    for key in ("loss", "accuracy", "evalLoss", "evalAccuracy", "imagesPerSecond", "seconds"):
        assert isinstance(epoch[key], float), key


def test_stdout_is_json_lines_ending_with_the_result(trained: Outcome) -> None:
    assert [e["event"] for e in trained.events][-1] == "result"
    assert {e["event"] for e in trained.events} == {"progress", "epoch", "result"}


def test_result_has_the_documented_shape(trained: Outcome, small_digits: Digits) -> None:
    result = trained.result
    assert set(result) == RESULT_KEYS
    assert result["metrics"]["epoch"] == [1]
    assert set(result["metrics"]) == {
        "epoch",
        "loss",
        "accuracy",
        "evalLoss",
        "evalAccuracy",
        "imagesPerSecond",
    }
    evaluation = result["evaluation"]
    assert evaluation["samples"] == small_digits.eval_count
    for key in ("accuracy", "loss", "top5", "macroF1"):
        assert isinstance(evaluation[key], float), key
    assert set(evaluation["perClass"]) == {str(d) for d in range(10)}
    assert set(evaluation["perClass"]["3"]) == {"precision", "recall", "f1", "support"}
    assert result["outputs"] == {
        "savedModel": "saved_model",
        "frozenGraph": "frozen_graph.pb",
        "labels": "labels.txt",
        "modelCard": "model.json",
        "metrics": "evaluation/metrics.json",
        "confusionMatrix": "evaluation/confusion_matrix.json",
    }
    for path in result["outputs"].values():
        assert (trained.output / path).exists(), path


def test_termination_message_is_the_compact_result(trained: Outcome) -> None:
    text = trained.result_file.read_text(encoding="utf-8")
    assert len(text.encode()) <= 4096
    document = json.loads(text)
    assert document == {k: v for k, v in trained.result.items() if k != "event"}


def test_evaluation_files(trained: Outcome, small_digits: Digits) -> None:
    metrics = json.loads((trained.output / "evaluation" / "metrics.json").read_text())
    matrix = json.loads((trained.output / "evaluation" / "confusion_matrix.json").read_text())
    assert matrix["labels"] == [str(d) for d in range(10)]
    counts = np.array(matrix["matrix"])
    assert counts.shape == (10, 10)
    assert counts.sum() == small_digits.eval_count
    assert np.trace(counts) / counts.sum() == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert [metrics["perClass"][str(d)]["support"] for d in range(10)] == counts.sum(
        axis=1
    ).tolist()


def test_labels_are_the_sorted_training_classes(trained: Outcome) -> None:
    assert (trained.output / "labels.txt").read_text(encoding="utf-8") == "".join(
        f"{d}\n" for d in range(10)
    )


def test_model_card(trained: Outcome, small_digits: Digits) -> None:
    card = json.loads((trained.output / "model.json").read_text(encoding="utf-8"))
    assert card["task"] == "image_classification"
    assert card["algorithm"] == "mobilenet_v1"
    assert card["inputs"][0] | {"imageSize": None} == {
        "name": "images",
        "dtype": "float32",
        "shape": [-1, -1, -1, 3],
        "layout": "NHWC",
        "colorOrder": "RGB",
        "range": [0, 255],
        "imageSize": None,
        "graphTensor": "images:0",
    }
    assert card["inputs"][0]["imageSize"] == [32, 32]
    assert card["outputs"][0]["name"] == "logits"
    assert card["outputs"][0]["shape"] == [-1, 10]
    assert card["labels"] == [str(d) for d in range(10)]
    assert card["preprocessing"]["inModel"]["mode"] == "tf"
    assert card["hyperparameters"]["optimizer"] == "adam"
    assert card["hyperparameters"]["image_size"] == 32
    assert card["metrics"]["evaluation"]["accuracy"] == trained.result["evaluation"]["accuracy"]
    batchnorm = card["batchNorm"]
    assert batchnorm["layers"] == 27
    assert batchnorm["momentum"] == 0.9
    assert batchnorm["recalibration"]["batches"] == small_digits.train_count // 16
    assert "recalibration" in batchnorm["treatment"]
    assert (card["training"]["device"], card["training"]["fallback"]) == ("CPU", True)
    assert card["training"]["mixedPrecision"] is False
    manifests = card["data"]["manifests"]
    for usage, path in (("train", small_digits.train), ("eval", small_digits.eval)):
        assert manifests[usage]["path"] == str(path)
        assert manifests[usage]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def _frozen_logits(graph_path: Path, images: np.ndarray) -> np.ndarray:
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_path.read_bytes())
    wrapped = tf.compat.v1.wrap_function(
        lambda: tf.compat.v1.import_graph_def(graph_def, name=""), []
    )
    infer = wrapped.prune(
        wrapped.graph.get_tensor_by_name("images:0"), wrapped.graph.get_tensor_by_name("logits:0")
    )
    return infer(tf.constant(images)).numpy()


@pytest.fixture
def grappler_folding_off() -> Iterator[None]:
    """TensorFlow's graph optimizer folds constant sub-expressions of the frozen graph (e.g.
    BatchNorm's rsqrt(variance + epsilon) * gamma), which it cannot do while they are
    variables in the SavedModel: a different rounding order, ~1e-5 relative. With those two
    rewrites off both artifacts run the very same operations."""
    previous = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options(
        {"constant_folding": False, "arithmetic_optimization": False}
    )
    yield
    tf.config.optimizer.set_experimental_options(
        {"constant_folding": True, "arithmetic_optimization": True, **previous}
    )


SHAPES = [(3, 32, 32, 3), (2, 48, 40, 3)]


def _both(output: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    saved = tf.saved_model.load(str(output / "saved_model"))
    serve = saved.signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["images"]
    assert list(serve.structured_outputs) == ["logits"]
    expected = serve(images=tf.constant(images))["logits"].numpy()
    assert expected.shape == (shape[0], 10)
    return expected, _frozen_logits(output / "frozen_graph.pb", images)


@pytest.mark.usefixtures("grappler_folding_off")
@pytest.mark.parametrize("shape", SHAPES, ids=["32px", "48x40px"])
def test_frozen_graph_gives_the_saved_model_logits(
    trained: Outcome, shape: tuple[int, ...]
) -> None:
    expected, frozen = _both(trained.output, shape)
    assert np.max(np.abs(frozen - expected)) <= 1e-5


@pytest.mark.parametrize("shape", SHAPES, ids=["32px", "48x40px"])
def test_frozen_graph_agrees_under_default_graph_optimization(
    trained: Outcome, shape: tuple[int, ...]
) -> None:
    expected, frozen = _both(trained.output, shape)
    # float32 rounding of folded constants: a few 1e-5 relative to the largest logit.
    assert np.max(np.abs(frozen - expected)) <= 1e-4 * max(1.0, float(np.abs(expected).max()))


@pytest.mark.parametrize("device", ["gpu", "ascend910"])
def test_missing_accelerator_fails_without_fallback(
    device: str, small_digits: Digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEARTS_DEVICE", device)
    monkeypatch.setenv("KUBEARTS_ALLOW_CPU_FALLBACK", "false")
    outcome = run_main(train_args(small_digits, tmp_path / "out", "--image_size=32"))
    assert outcome.code == EXIT_CODES["AcceleratorUnavailable"] == 12
    assert outcome.result["reason"] == "AcceleratorUnavailable"
    assert device in outcome.result["message"]
    assert json.loads(outcome.result_file.read_text())["reason"] == "AcceleratorUnavailable"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("/nonexistent/resnet50_notop.h5", id="path"),
        pytest.param("pvc://weights/missing.weights.h5", id="pvc"),
        pytest.param("http://127.0.0.1:9/weights.h5", id="http-refused"),
    ],
)
def test_unreachable_weights_fail_with_weights_unavailable(
    location: str, small_digits: Digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEARTS_DEVICE", "cpu")
    outcome = run_main(
        train_args(
            small_digits, tmp_path / "out", "--image_size=32", f"--pretrained_weights={location}"
        )
    )
    assert outcome.code == EXIT_CODES["WeightsUnavailable"] == 11
    assert outcome.result["reason"] == "WeightsUnavailable"
    assert f"--pretrained_weights={location}" in outcome.result["message"]


def test_missing_image_fails_with_data_unavailable(
    small_digits: Digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEARTS_DEVICE", "cpu")
    train = tmp_path / "train.jsonl"
    train.write_text(
        small_digits.train.read_text()
        + json.dumps(
            {
                "source": "digits/3/missing.png",
                "usage": "TRAIN",
                "annotation": [{"type": "modelarts/image_classification", "name": "3"}],
            }
        )
        + "\n"
    )
    args = train_args(small_digits, tmp_path / "out")
    args[args.index("--train-manifest") + 1] = str(train)
    outcome = run_main(args)
    assert outcome.code == EXIT_CODES["DataUnavailable"] == 10
    assert "digits/3/missing.png" in outcome.result["message"]
