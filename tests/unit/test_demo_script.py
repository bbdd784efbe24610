"""The pure pieces of ``hack/demo.py`` (``make demo``): placeholders filled into the offline
flow's manifests (which must satisfy the CRD schemas), the progress lines it prints, and
the upload body it sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

import crdkit
import demo  # hack/demo.py; tests/clusterkit.py puts hack/ on sys.path

FLOW = Path(__file__).resolve().parents[2] / "examples" / "offline"
URL = "http://10.201.0.1:18080/digits.tar.gz"


def test_fill_replaces_placeholders_in_nested_strings_only() -> None:
    manifest: dict[str, Any] = {
        "spec": {"source": {"uri": "${DIGITS_URL}"}, "versions": [{"name": "v-${TAG}", "n": 1}]}
    }
    filled = demo.fill(manifest, {"DIGITS_URL": URL, "TAG": "1"})
    assert filled == {"spec": {"source": {"uri": URL}, "versions": [{"name": "v-1", "n": 1}]}}
    assert manifest["spec"]["source"]["uri"] == "${DIGITS_URL}"  # the input is left alone


def test_fill_names_a_placeholder_without_a_value() -> None:
    with pytest.raises(demo.MissingValueError, match=r"\$\{DIGITS_URL\}"):
        demo.fill({"uri": "${DIGITS_URL}"}, {})


@pytest.mark.parametrize(
    "text", [pytest.param("$DIGITS_URL", id="no-braces"), pytest.param("${lower}", id="lower")]
)
def test_fill_leaves_other_dollar_text_alone(text: str) -> None:
    assert demo.fill(text, {}) == text


def test_the_offline_flow_is_one_object_per_file_in_pipeline_order() -> None:
    manifests = demo.load_flow(FLOW, {"DIGITS_URL": URL})
    assert [m["kind"] for m in manifests] == [
        "Dataset",
        "Subscription",
        "TrainingJob",
        "ModelConversion",
        "Model",
        "InferenceService",
        "InferenceService",
    ]
    assert len(manifests) == len(list(FLOW.glob("*.yaml")))
    assert manifests[0]["spec"]["source"]["uri"] == URL
    assert all("namespace" not in m["metadata"] for m in manifests)


def test_the_offline_flow_needs_only_the_data_url() -> None:
    with pytest.raises(demo.MissingValueError, match="DIGITS_URL"):
        demo.load_flow(FLOW, {})


def test_the_offline_flow_serves_the_onnx_version_on_cpu_and_ascend310() -> None:
    manifests = demo.load_flow(FLOW, {"DIGITS_URL": URL})
    model = next(m for m in manifests if m["kind"] == "Model")
    formats = {v["version"]: v["format"] for v in model["spec"]["versions"]}
    assert formats == {"1.0.0": "saved-model", "1.1.0": "onnx"}
    services = [m["spec"] for m in manifests if m["kind"] == "InferenceService"]
    assert [(s["model"]["version"], s["resources"]["pool"]) for s in services] == [
        ("1.1.0", "cpu"),
        ("1.1.0", "ascend310"),
    ]


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(doc, id=f"{doc['kind']}/{doc['metadata']['name']}")
        for doc in demo.load_flow(FLOW, {"DIGITS_URL": URL})
    ],
)
def test_each_manifest_of_the_offline_flow_satisfies_its_schema(doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "kubearts.io/v1alpha1"
    crd = crdkit.load_crds()[doc["kind"]]
    jsonschema.Draft4Validator(crdkit.schema_of(crd)).validate(doc)


def _obj(kind: str, *conditions: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": "digits"},
        "status": {"conditions": list(conditions), **status},
    }


def test_ready_line_shows_status_reason_and_message() -> None:
    ready = {"type": "Ready", "status": "False", "reason": "Downloading", "message": "at 10%"}
    line = demo.ready_line(_obj("Dataset", ready))
    assert line.startswith("Dataset/digits")
    assert line.endswith("Ready=False Downloading: at 10%")


def test_ready_line_before_any_status() -> None:
    assert "no status yet" in demo.ready_line({"kind": "Model", "metadata": {"name": "m"}})


def _training(percent: int, message: str = "training") -> dict[str, Any]:
    ready = {"type": "Ready", "status": "False", "reason": "JobRunning", "message": message}
    return _obj(
        "TrainingJob",
        ready,
        progress={"epoch": 2, "totalEpochs": 5, "percent": percent, "etaSeconds": 90},
        metrics={"loss": 0.51234, "accuracy": 0.875},
    )


def test_training_line_shows_epoch_accuracy_and_time_left() -> None:
    line = demo.training_line(_training(30))
    assert line == "  epoch 2/5  loss 0.5123  accuracy 0.8750  (90s left)"
    assert demo.training_line(_obj("TrainingJob")) is None


def test_training_line_shows_no_time_left_from_the_first_steps() -> None:
    line = demo.training_line(_training(0))
    assert line == "  epoch 2/5  loss 0.5123  accuracy 0.8750"


def test_a_training_run_is_reported_once_per_tenth() -> None:
    key, text = demo.report(_training(31, "epoch 2/5, 31%"))
    assert text.splitlines()[1].startswith("  epoch 2/5")
    assert demo.report(_training(38, "epoch 2/5, 38%"))[0] == key
    assert demo.report(_training(41, "epoch 2/5, 41%"))[0] != key


def test_other_objects_are_reported_when_their_ready_line_changes() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "Registered", "message": "2 versions"}
    key, text = demo.report(_obj("Model", ready))
    assert key == text == demo.ready_line(_obj("Model", ready))


def test_history_lines_end_with_the_eval_accuracy() -> None:
    row = {"epoch": 1, "loss": 1.0, "accuracy": 0.5, "evalLoss": 0.9, "evalAccuracy": 0.6}
    lines = demo.history_lines(_obj("TrainingJob", history=[row], evaluation={"accuracy": 0.6}))
    assert len(lines) == 3
    assert lines[1].split() == ["1", "1.000", "0.5000", "0.900", "0.6000"]
    assert lines[-1] == "  accuracy on the eval split: 0.6000"


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        pytest.param([], None, id="no-conditions"),
        pytest.param([{"type": "Failed", "status": "False"}], None, id="not-failed"),
        pytest.param(
            [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "x",
                }
            ],
            "BackoffLimitExceeded: x",
            id="failed",
        ),
    ],
)
def test_failure(conditions: list[dict[str, Any]], expected: str | None) -> None:
    assert demo.failure(_obj("TrainingJob", *conditions)) == expected


def test_multipart_sends_each_file_as_field_images() -> None:
    body = demo.multipart([("a.png", b"AAA"), ("b.png", b"BBB")], "XYZ")
    parts = body.split(b"--XYZ")
    assert len(parts) == 4
    assert parts[-1] == b"--\r\n"
    assert b'name="images"; filename="a.png"' in parts[1]
    assert parts[1].endswith(b"\r\n\r\nAAA\r\n")
    assert parts[2].endswith(b"\r\n\r\nBBB\r\n")
