"""The served model: a ``kserve.Model`` that classifies images.

One process, one session: :meth:`ImageClassifier.load` opens the model folder with its
runtime and sets ``ready``. Every protocol ends in :meth:`ImageClassifier.infer`, which hands
the rows to the dynamic batcher:

* V1 (``{"instances": [...]}``): each instance is an image tensor in the model's layout
  ([H, W, 3] for NHWC) or ``{"b64": "<base64 image file>"}``; the answer is
  ``{"predictions": [[logit, ...], ...]}``;
* V2 / Open Inference Protocol, REST and gRPC: one FP32 input of shape [N, H, W, 3] (NHWC)
  or [N, 3, H, W] (NCHW); binary tensors are read with ``np.frombuffer`` (no Python lists);
  the answer is the logits output [N, classes], binary when the request asks for it;
* image upload (``POST /``, see :mod:`kubearts_predictor.server`): files are decoded and
  resized (:mod:`kubearts_predictor.preprocess`) and answered in ModelArts' shape,
  ``{"predicted_label": ..., "scores": [[label, probability], ...]}`` (top 5).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from kubearts_predictor import backends, devices, metrics, preprocess
from kubearts_predictor.batching import Batcher
from kubearts_predictor.errors import PredictorError
from kubearts_predictor.modeldir import ModelDir

log = logging.getLogger("kubearts_predictor")

TOP_K = 5


@dataclass(frozen=True)
class Settings:
    """How requests are served; see the command line for each one's meaning."""

    max_batch_size: int = 8
    max_batch_wait_ms: float = 5.0
    max_body_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 40_000_000
    threads: int | None = None


class ImageClassifier(Model):  # type: ignore[misc]  # kserve ships no type information
    """An image classifier from a model version folder."""

    def __init__(
        self,
        name: str,
        model_dir: ModelDir,
        placement: devices.Placement,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.placement = placement
        self.settings = settings or Settings()
        self.backend: backends.Backend | None = None
        self.batcher: Batcher | None = None
        self.image_size: tuple[int, int] = (0, 0)
        self.labels: tuple[str, ...] = model_dir.labels

    # Loading -------------------------------------------------------------------------------

    def load(self) -> bool:
        """Open the session; raises :class:`PredictorError` with the reason when it cannot."""
        backend = backends.load(self.model_dir, self.placement, self.settings.threads)
        self.image_size = self._image_size(backend)
        classes = backend.outputs[0]["shape"][-1] if backend.outputs else -1
        if self.labels and classes > 0 and classes != len(self.labels):
            raise PredictorError(
                "ModelLoadFailed",
                f"the model has {classes} outputs but labels.txt names {len(self.labels)} classes",
            )
        self.backend = backend
        self.batcher = Batcher(
            backend.run, self.settings.max_batch_size, self.settings.max_batch_wait_ms / 1000
        )
        self.ready = True
        return True

    def _image_size(self, backend: backends.Backend) -> tuple[int, int]:
        if self.model_dir.image_size is not None:
            return self.model_dir.image_size
        shape = backend.inputs[0]["shape"]
        if len(shape) == 4:
            height, width = (shape[1], shape[2]) if self.layout == "NHWC" else (shape[2], shape[3])
            if height > 0 and width > 0:
                return (height, width)
        raise PredictorError(
            "ModelLoadFailed",
            f"the input size is not fixed by the model ({shape}) and model.json has no "
            "inputs[0].imageSize",
        )

    @property
    def layout(self) -> str:
        return self.model_dir.layout

    @property
    def expected_shape(self) -> list[int]:
        """The input shape requests must send, -1 for any batch size."""
        height, width = self.image_size
        return [-1, height, width, 3] if self.layout == "NHWC" else [-1, 3, height, width]

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 model metadata: the input requests must send."""
        if self.backend is None:
            return []
        return [{**self.backend.inputs[0], "shape": self.expected_shape}]

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 model metadata: the logits."""
        return list(self.backend.outputs) if self.backend is not None else []

    def loaded_event(self) -> dict[str, Any]:
        """The ``loaded`` line the operator reads from the pod's log."""
        assert self.backend is not None
        event: dict[str, Any] = {
            "event": "loaded",
            "model": self.name,
            "runtime": self.backend.runtime,
            "provider": self.backend.provider,
            "device": self.backend.device,
            "fallback": self.backend.fallback,
            "inputs": self.get_input_types(),
            "outputs": self.get_output_types(),
            "labels": len(self.labels),
            "imageSize": list(self.image_size),
            "layout": self.layout,
            "threads": self.backend.threads,
        }
        if self.backend.fallback_message:
            event["message"] = self.backend.fallback_message
        return event

    # Inference -----------------------------------------------------------------------------

    def check(self, array: np.ndarray, datatype: str = "FP32") -> np.ndarray:
        """The request's tensor, if it is what the model takes; else ``InvalidInput`` (400)."""
        expected = self.expected_shape
        if datatype != "FP32" or array.dtype != np.float32:
            metrics.ERRORS.labels("bad_tensor").inc()
            raise InvalidInput(
                f"expected datatype FP32 with shape {expected} ({self.layout}), got {datatype}"
            )
        if array.ndim != 4 or list(array.shape[1:]) != expected[1:] or array.shape[0] < 1:
            metrics.ERRORS.labels("bad_tensor").inc()
            raise InvalidInput(
                f"expected shape {expected} ({self.layout}, FP32), got {list(array.shape)}"
            )
        return array

    async def infer(self, rows: np.ndarray) -> np.ndarray:
        """Logits for a checked batch, through the dynamic batcher."""
        assert self.batcher is not None
        try:
            return await self.batcher.submit(rows)
        except Exception as exc:
            metrics.ERRORS.labels("inference").inc()
            log.exception("inference failed")
            raise PredictorError("PredictionFailed", f"inference failed: {exc}") from exc

    def to_layout(self, images: np.ndarray) -> np.ndarray:
        """float32 NHWC images → the model's layout."""
        if self.layout == "NCHW":
            return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        return images

    async def predict(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        if isinstance(payload, InferRequest):
            return await self._predict_v2(payload)
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
            metrics.ERRORS.labels("bad_tensor").inc()
            raise InvalidInput('expected a JSON object {"instances": [...]}')
        rows = await self._v1_rows(payload["instances"])
        logits = await self.infer(rows)
        return {"predictions": logits.tolist()}

    async def _v1_rows(self, instances: list[Any]) -> np.ndarray:
        if not instances:
            metrics.ERRORS.labels("bad_tensor").inc()
            raise InvalidInput("instances is empty")
        if all(isinstance(item, dict) and "b64" in item for item in instances):
            files = []
            for item in instances:
                try:
                    files.append(base64.b64decode(item["b64"], validate=True))
                except (binascii.Error, TypeError) as exc:
                    metrics.ERRORS.labels("undecodable").inc()
                    raise InvalidInput(f"b64 is not base64: {exc}") from exc
            return self.to_layout(await self.decode_files(files))
        try:
            array = np.asarray(instances, dtype=np.float32)
        except (ValueError, TypeError) as exc:
            metrics.ERRORS.labels("bad_tensor").inc()
            raise InvalidInput(
                f"instances must be image tensors of shape {self.expected_shape[1:]} or "
                f'{{"b64": ...}} image files: {exc}'
            ) from exc
        return self.check(array)

    async def _predict_v2(self, request: InferRequest) -> InferResponse:
        grpc = bool(request.from_grpc)
        try:
            if len(request.inputs) != 1:
                metrics.ERRORS.labels("bad_tensor").inc()
                raise InvalidInput(
                    f"expected one input, got {len(request.inputs)}; the model takes "
                    f"{self.expected_shape} FP32"
                )
            tensor = request.inputs[0]
            if tensor.datatype != "FP32":
                rows = self.check(np.empty((0,), np.float32), tensor.datatype)
            try:
                rows = tensor.as_numpy()
            except (ValueError, TypeError) as exc:
                metrics.ERRORS.labels("bad_tensor").inc()
                raise InvalidInput(
                    f"the data of input {tensor.name!r} does not fit its shape {tensor.shape}: "
                    f"{exc}; expected shape {self.expected_shape} FP32"
                ) from exc
            rows = self.check(rows)
            logits = await self.infer(rows)
        except Exception:
            if grpc:
                metrics.REQUESTS.labels("grpc", "error").inc()
            raise
        if grpc:
            metrics.REQUESTS.labels("grpc", "OK").inc()
        assert self.backend is not None
        output = InferOutput(
            name=self.backend.output_name, shape=list(logits.shape), datatype="FP32"
        )
        binary = bool(request.use_binary_outputs)
        output.set_data_from_numpy(logits, binary_data=binary)
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=[output],
            from_grpc=grpc,
            use_binary_outputs=binary,
            requested_outputs=request.request_outputs,
        )

    # Image upload --------------------------------------------------------------------------

    async def decode_files(self, files: list[bytes]) -> np.ndarray:
        """Image files → float32 NHWC at the model's size; ``BadImageError`` for a bad file."""

        def decode_all() -> np.ndarray:
            return preprocess.to_batch(
                [preprocess.decode(f, self.image_size, self.settings.max_pixels) for f in files]
            )

        try:
            return await asyncio.to_thread(decode_all)
        except preprocess.BadImageError as exc:
            metrics.ERRORS.labels(exc.reason).inc()
            raise

    async def classify(self, files: list[bytes]) -> list[dict[str, Any]]:
        """ModelArts' image classification answer for each file."""
        images = await self.decode_files(files)
        logits = await self.infer(self.to_layout(images))
        return [self.top(row) for row in logits]

    def label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else str(index)

    def top(self, logits: np.ndarray, k: int = TOP_K) -> dict[str, Any]:
        """``{"predicted_label": ..., "scores": [[label, probability], ...]}``, best first."""
        probabilities = softmax(logits)
        order = np.argsort(-probabilities, kind="stable")[:k]
        scores = [[self.label(int(i)), round(float(probabilities[i]), 6)] for i in order]
        return {"predicted_label": scores[0][0], "scores": scores}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted: np.ndarray = np.exp(logits.astype(np.float64) - np.max(logits))
    return shifted / shifted.sum()  # type: ignore[no-any-return]
