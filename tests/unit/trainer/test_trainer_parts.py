"""The trainer's pure parts: manifests and class order, cgroup limits, result compaction,
BatchNorm momentum, evaluation figures, and loading pretrained weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from trainer_helpers import write_manifest

from kubearts_trainer import data, evaluate, models, resources, weights
from kubearts_trainer.errors import TrainerError
from kubearts_trainer.result import compact


def _image(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)


def test_classes_are_sorted_training_names_and_unknown_eval_classes_are_left_out(
    tmp_path: Path,
) -> None:
    names = ["zebra", "Äpfel", "apple", "日本", "Zebra"]
    for name in [*names, "unseen"]:
        _image(tmp_path / name / "1.png")
    write_manifest(tmp_path / "train.jsonl", [(f"{n}/1.png", n) for n in names], "TRAIN")
    write_manifest(
        tmp_path / "eval.jsonl", [("apple/1.png", "apple"), ("unseen/1.png", "unseen")], "EVAL"
    )
    loaded = data.load(tmp_path / "train.jsonl", tmp_path / "eval.jsonl", tmp_path)
    assert loaded.classes == sorted(names, key=lambda n: n.encode("utf-8"))
    assert loaded.classes == ["Zebra", "apple", "zebra", "Äpfel", "日本"]
    assert loaded.eval_labels == [1]
    assert "unseen (1)" in loaded.warnings[0]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        pytest.param("not json", "not a manifest line", id="not-json"),
        pytest.param(
            '{"source": "a.png", "annotation": []}', "exactly one annotation", id="no-annotation"
        ),
        pytest.param(
            '{"source": "a.png", "annotation": '
            '[{"type": "modelarts/object_detection", "name": "a"}]}',
            "object_detection",
            id="wrong-type",
        ),
        pytest.param(
            '{"source": "../a.png", "annotation": [{"name": "a"}]}',
            "inside the dataset",
            id="escape",
        ),
        pytest.param(
            '{"source": "/etc/passwd", "annotation": [{"name": "a"}]}',
            "inside the dataset",
            id="absolute",
        ),
    ],
)
def test_bad_manifest_lines_are_data_unavailable(tmp_path: Path, line: str, reason: str) -> None:
    (tmp_path / "train.jsonl").write_text(line + "\n")
    (tmp_path / "eval.jsonl").write_text("")
    with pytest.raises(TrainerError, match=reason) as caught:
        data.load(tmp_path / "train.jsonl", tmp_path / "eval.jsonl", tmp_path)
    assert caught.value.reason == "DataUnavailable"


def test_missing_manifest_is_data_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="cannot read the manifest") as caught:
        data.load(tmp_path / "train.jsonl", tmp_path / "eval.jsonl", tmp_path)
    assert caught.value.reason == "DataUnavailable"


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        pytest.param({"cpu.max": "150000 100000"}, 2, id="v2-quota"),
        pytest.param({"cpu.max": "max 100000"}, None, id="v2-unlimited"),
        pytest.param(
            {"cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000"}, 3, id="v1-quota"
        ),
        pytest.param(
            {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"},
            None,
            id="v1-unlimited",
        ),
        pytest.param({}, None, id="no-cgroup"),
    ],
)
def test_cpu_quota(tmp_path: Path, files: dict[str, str], cpus: int | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    quota = resources.cpu_quota(tmp_path)
    assert (None if quota is None else int(-(-quota // 1))) == cpus
    assert 1 <= resources.usable_cpus(tmp_path) <= (cpus or 4096)


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        pytest.param({"memory.max": "2147483648"}, 2147483648, id="v2"),
        pytest.param({"memory/memory.limit_in_bytes": "1073741824"}, 1073741824, id="v1"),
        pytest.param(
            {"memory/memory.limit_in_bytes": "9223372036854771712"}, None, id="v1-unlimited"
        ),
        pytest.param({"memory.max": "max"}, None, id="v2-unlimited"),
    ],
)
def test_memory_limit(tmp_path: Path, files: dict[str, str], limit: int | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    found = resources.memory_limit(tmp_path)
    assert found == limit if limit else found > 0


def test_cache_decision_follows_the_memory_limit() -> None:
    # 1000 images of 224 px are 150 MB decoded.
    assert data.should_cache(1000, 224, memory_limit=1 << 30)
    assert not data.should_cache(1000, 224, memory_limit=256 << 20)


def test_batchnorm_momentum_follows_the_run_length() -> None:
    assert models.batchnorm_momentum(44 * 5) == pytest.approx(1 - 20 / 220)
    assert models.batchnorm_momentum(10) == 0.9
    assert models.batchnorm_momentum(100_000) == 0.99


def test_compact_result_fits_the_termination_log() -> None:
    classes = {
        f"class-{i:04d}-ünïcode": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 9}
        for i in range(1000)
    }
    epochs = list(range(1, 501))
    document = {
        "status": "Succeeded",
        "message": "x" * 100,
        "device": "CPU",
        "fallback": False,
        "metrics": {"epoch": epochs, "loss": [0.123456] * 500, "accuracy": [0.5] * 500},
        "evaluation": {"accuracy": 0.9, "loss": 0.3, "top5": 0.99, "perClass": classes},
        "outputs": {"savedModel": "saved_model"},
    }
    text = compact(document)
    assert len(text.encode()) <= 4096
    small = json.loads(text)
    assert small["truncated"] is True
    assert "perClass" not in small["evaluation"]
    assert small["evaluation"]["accuracy"] == 0.9
    assert small["metrics"]["epoch"][-1] == 500
    assert len(small["metrics"]["epoch"]) == len(small["metrics"]["loss"]) < 500
    assert compact({"status": "Succeeded"}) == '{"status":"Succeeded"}'


def test_evaluation_figures() -> None:
    logits = np.array([[3, 1, 0], [0, 2, 1], [0, 3, 1], [1, 0, 2]], np.float32)
    labels = np.array([0, 1, 2, 2])
    figures = evaluate.figures(logits, labels, ["a", "b", "c"], loss=0.5)
    assert figures["accuracy"] == 0.75
    assert "top5" not in figures
    assert figures["confusionMatrix"]["matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert figures["perClass"]["b"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert figures["perClass"]["c"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}


def test_pretrained_weights_load_into_the_backbone(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(1)
    _, source = models.build("mobilenet_v1", 3)
    source.save_weights(tmp_path / "mobilenet notop.weights.h5")
    keras.utils.set_random_seed(2)
    _, target = models.build("mobilenet_v1", 3)
    location = f"file://{tmp_path}/mobilenet notop.weights.h5"
    path = weights.fetch(location, tmp_path / "work", pvc_root=tmp_path)
    weights.load_into(target, path, location)
    for a, b in zip(source.get_weights(), target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # Weights of another architecture do not fit.
    _, resnet = models.build("resnet_v1_50", 3)
    with pytest.raises(TrainerError, match="cannot be loaded") as caught:
        weights.load_into(resnet, path, location)
    assert caught.value.reason == "WeightsUnavailable"


def test_pvc_weights_resolve_below_the_pvc_root(tmp_path: Path) -> None:
    file = tmp_path / "claim" / "w" / "notop.h5"
    file.parent.mkdir(parents=True)
    file.write_bytes(b"x")
    assert weights.fetch("pvc://claim/w/notop.h5", tmp_path / "work", pvc_root=tmp_path) == file


@pytest.mark.parametrize("location", ["ftp://host/w.h5", "/mnt/pvc/w.ckpt", "pvc://claim/../w.h5"])
def test_unusable_weights_locations_are_invalid_hyperparameters(
    tmp_path: Path, location: str
) -> None:
    with pytest.raises(TrainerError) as caught:
        weights.fetch(location, tmp_path, pvc_root=tmp_path)
    assert caught.value.reason == "InvalidHyperparameter"
    assert "--pretrained_weights" in caught.value.message
