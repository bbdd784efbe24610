"""Batch mode: every image under a folder, one JSON line each, failures counted."""

from __future__ import annotations

import io
import json
from pathlib import Path

from predictor_helpers import LABELS, png

from kubearts_predictor import cli
from kubearts_predictor.result import Events


def test_batch_mode_predicts_every_image(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "b" / "deeper").mkdir(parents=True)
    (images / "a.png").write_bytes(png((10, 20, 30)))
    (images / "b" / "c.png").write_bytes(png((200, 20, 30), (50, 40)))
    (images / "b" / "deeper" / "d.png").write_bytes(png((0, 200, 30)))
    (images / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    (images / "ü.png").write_bytes(png((90, 90, 90)))
    output = tmp_path / "out" / "predictions.jsonl"
    result = tmp_path / "termination-log"
    stream = io.StringIO()
    code = cli.main(
        [
            "batch",
            "--model_dir",
            str(model_dirs["onnx"]),
            "--input",
            str(images),
            "--output",
            str(output),
            "--batch-size",
            "2",
            "--progress-interval",
            "0",
            "--result",
            str(result),
        ],
        Events(stream),
    )
    assert code == 0
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [line["file"] for line in lines] == [
        "a.png",
        "b/broken.jpg",
        "b/c.png",
        "b/deeper/d.png",
        "ü.png",
    ]
    broken = lines[1]
    assert set(broken) == {"file", "error"}
    for line in lines[:1] + lines[2:]:
        assert line["label"] in LABELS
        assert len(line["scores"]) == 5
        assert line["scores"][0][0] == line["label"]
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1] == {"event": "progress", "done": 5, "total": 5}
    assert len(progress) >= 3
    document = json.loads(result.read_text())
    assert document["status"] == "Succeeded"
    assert document["reason"] == "Completed"
    assert document["images"] == 5
    assert document["failures"] == 1
    assert document["imagesPerSecond"] > 0
    assert document["output"] == str(output)
    assert events[-1] == {"event": "result", **document}


def test_batch_mode_without_input_folder(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    stream = io.StringIO()
    code = cli.main(
        [
            "batch",
            "--model_dir",
            str(model_dirs["onnx"]),
            "--input",
            str(tmp_path / "missing"),
            "--output",
            str(tmp_path / "out.jsonl"),
        ],
        Events(stream),
    )
    assert code == 11
    assert json.loads(stream.getvalue().splitlines()[-1])["reason"] == "InputUnavailable"
