"""Every protocol gives the model's own answer: image upload (ModelArts' shape), V1, V2 REST
(JSON and binary tensors), V2 gRPC — each compared with ONNX Runtime run directly."""

from __future__ import annotations

import base64
import json
from typing import Any

import grpc
import numpy as np
import pytest
import requests
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from predictor_helpers import IMAGE_SIZE, LABELS, Server, png

from kubearts_predictor import preprocess
from kubearts_predictor.client import v2_binary_outputs, v2_binary_request
from kubearts_predictor.model import softmax

TOLERANCE = 1e-5


def _batch(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((count, IMAGE_SIZE, IMAGE_SIZE, 3)) * 255).astype(np.float32)


def _expected_top(reference: Any, image: bytes) -> dict[str, Any]:
    pixels = preprocess.to_batch([preprocess.decode(image, (IMAGE_SIZE, IMAGE_SIZE), 10**7)])
    probabilities = softmax(reference(pixels)[0])
    order = np.argsort(-probabilities, kind="stable")[:5]
    return {
        "predicted_label": LABELS[order[0]],
        "scores": [[LABELS[i], float(probabilities[i])] for i in order],
    }


def _assert_same_top(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    assert answer["predicted_label"] == expected["predicted_label"]
    assert [label for label, _ in answer["scores"]] == [label for label, _ in expected["scores"]]
    got = [score for _, score in answer["scores"]]
    assert got == pytest.approx([score for _, score in expected["scores"]], abs=1e-5)


def test_upload_one_image_answers_in_modelarts_shape(server: Server, reference: Any) -> None:
    image = png((200, 30, 40))
    response = requests.post(f"{server.url}/", files=[("images", ("a.png", image, "image/png"))])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["X-KubeArts-Provider"] == "CPUExecutionProvider"
    assert response.headers["X-KubeArts-Fallback"] == "false"
    answer = response.json()
    assert set(answer) == {"predicted_label", "scores"}
    assert len(answer["scores"]) == 5
    assert all(isinstance(label, str) and isinstance(s, float) for label, s in answer["scores"])
    _assert_same_top(answer, _expected_top(reference, image))


def test_upload_labels_are_utf8_not_escaped(server: Server) -> None:
    response = requests.post(f"{server.url}/", files=[("images", ("a.png", png(), "image/png"))])
    text = response.content.decode("utf-8")
    labels = [label for label, _ in response.json()["scores"]]
    assert any(label in {"猫", "ñandú", "Ёж"} for label in labels)
    assert "\\u" not in text
    assert all(label in text for label in labels)


def test_upload_several_images_answers_a_list_in_order(server: Server, reference: Any) -> None:
    images = [png((200, 30, 40)), png((10, 250, 90), (64, 48)), png((0, 0, 255), (20, 20))]
    files = [("images", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    response = requests.post(f"{server.url}/", files=files)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert isinstance(answers, list)
    assert len(answers) == 3
    for answer, image in zip(answers, images, strict=True):
        _assert_same_top(answer, _expected_top(reference, image))


def test_v1_tensor_instances(server: Server, reference: Any) -> None:
    batch = _batch(2, seed=1)
    response = requests.post(
        f"{server.url}/v1/models/tiny:predict", json={"instances": batch.tolist()}
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-KubeArts-Provider"] == "CPUExecutionProvider"
    predictions = np.asarray(response.json()["predictions"], dtype=np.float32)
    np.testing.assert_allclose(predictions, reference(batch), atol=TOLERANCE)


def test_v1_b64_image_instances(server: Server, reference: Any) -> None:
    image = png((90, 90, 20))
    response = requests.post(
        f"{server.url}/v1/models/tiny:predict",
        json={"instances": [{"b64": base64.b64encode(image).decode()}]},
    )
    assert response.status_code == 200, response.text
    pixels = preprocess.to_batch([preprocess.decode(image, (IMAGE_SIZE, IMAGE_SIZE), 10**7)])
    np.testing.assert_allclose(response.json()["predictions"], reference(pixels), atol=TOLERANCE)


def test_v2_rest_json(server: Server, reference: Any) -> None:
    batch = _batch(3, seed=2)
    body = {
        "inputs": [
            {
                "name": "images",
                "shape": list(batch.shape),
                "datatype": "FP32",
                "data": batch.ravel().tolist(),
            }
        ]
    }
    response = requests.post(f"{server.url}/v2/models/tiny/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["X-KubeArts-Provider"] == "CPUExecutionProvider"
    output = response.json()["outputs"][0]
    assert output["shape"] == [3, len(LABELS)]
    assert output["datatype"] == "FP32"
    logits = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
    np.testing.assert_allclose(logits, reference(batch), atol=TOLERANCE)


def test_v2_rest_binary_tensors(server: Server, reference: Any) -> None:
    batch = _batch(2, seed=3)
    body, headers = v2_binary_request(batch)
    response = requests.post(f"{server.url}/v2/models/tiny/infer", data=body, headers=headers)
    assert response.status_code == 200, response.text
    json_length = int(response.headers["inference-header-content-length"])
    output = json.loads(response.content[:json_length])["outputs"][0]
    assert output["parameters"]["binary_data_size"] == 2 * len(LABELS) * 4
    (logits,) = v2_binary_outputs(response.content, response.headers).values()
    assert logits.shape == (2, len(LABELS))
    np.testing.assert_allclose(logits, reference(batch), atol=TOLERANCE)


def test_v2_grpc_raw_tensors(server: Server, reference: Any) -> None:
    batch = _batch(2, seed=4)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ModelReady(pb.ModelReadyRequest(name="tiny"), timeout=10).ready
        reply = stub.ModelInfer(
            pb.ModelInferRequest(
                model_name="tiny",
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="images", datatype="FP32", shape=list(batch.shape)
                    )
                ],
                raw_input_contents=[batch.tobytes()],
            ),
            timeout=30,
        )
    output = reply.outputs[0]
    logits = np.frombuffer(reply.raw_output_contents[0], dtype=np.float32).reshape(
        list(output.shape)
    )
    np.testing.assert_allclose(logits, reference(batch), atol=TOLERANCE)


def test_health_and_model_metadata(server: Server) -> None:
    assert requests.get(f"{server.url}/v2/health/live").status_code == 200
    assert requests.get(f"{server.url}/v2/health/ready").json() == {"ready": True}
    assert requests.get(f"{server.url}/v2/models/tiny/ready").status_code == 200
    assert requests.get(f"{server.url}/v1/models/tiny").json()["ready"] is True
    metadata = requests.get(f"{server.url}/v2/models/tiny").json()
    assert metadata["inputs"][0]["shape"] == [-1, IMAGE_SIZE, IMAGE_SIZE, 3]
    assert metadata["inputs"][0]["datatype"] == "FP32"
    assert metadata["outputs"][0]["shape"] == [-1, len(LABELS)]


def test_loaded_line_describes_the_model(server: Server) -> None:
    loaded = server.loaded
    assert loaded["event"] == "loaded"
    assert loaded["model"] == "tiny"
    assert loaded["runtime"] == "onnxruntime"
    assert loaded["provider"] == "CPUExecutionProvider"
    assert loaded["device"] == "cpu"
    assert loaded["fallback"] is False
    assert loaded["labels"] == len(LABELS)
    assert loaded["inputs"][0]["shape"] == [-1, IMAGE_SIZE, IMAGE_SIZE, 3]
    assert loaded["outputs"][0]["shape"] == [-1, len(LABELS)]


def test_metrics_are_exposed(server: Server) -> None:
    requests.post(f"{server.url}/", files=[("images", ("a.png", png(), "image/png"))])
    text = requests.get(f"{server.url}/metrics").text
    assert 'kubearts_predictor_requests_total{code="200",endpoint="upload"}' in text
    assert "kubearts_predictor_request_seconds_bucket" in text
    assert "kubearts_predictor_batch_size_bucket" in text
