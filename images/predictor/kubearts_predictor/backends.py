"""The runtimes that execute a model: ONNX Runtime, TensorFlow, AscendCL.

Each backend is one loaded session with a thread-safe :meth:`Backend.run` taking a float32
batch in the model's layout and returning the logits. Loading decides the device (see
:mod:`kubearts_predictor.devices`) and describes what was loaded for the ``loaded`` line.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kubearts_predictor import devices, resources
from kubearts_predictor.errors import PredictorError
from kubearts_predictor.modeldir import ONNX, SAVED_MODEL, ModelDir

log = logging.getLogger("kubearts_predictor")


@dataclass
class Backend:
    """A loaded model and where it runs."""

    runtime: str
    provider: str
    """ONNX Runtime's execution provider in use, or ``TensorFlow:CPU`` / ``AscendCL:<n>``."""
    device: str
    """The device asked for: cpu, gpu or ascend310."""
    fallback: bool
    fallback_message: str | None
    input_name: str
    output_name: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    threads: int = 1
    _run: Any = None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 batch in the model's layout → float32 logits [N, classes]."""
        return np.asarray(self._run(batch), dtype=np.float32)


def load(model: ModelDir, placement: devices.Placement, threads: int | None = None) -> Backend:
    """Load the folder's model with its runtime on the device asked for."""
    threads = threads or resources.usable_cpus()
    if model.runtime == "onnxruntime":
        return _onnxruntime(model.path / ONNX, placement, threads)
    if model.runtime == "tensorflow":
        return _tensorflow(model.path / SAVED_MODEL, placement, threads)
    if model.runtime == "ascend":
        return _ascend(model, placement)
    raise PredictorError("InvalidArgument", f"unknown runtime {model.runtime!r}")


def _shape(dims: Any) -> list[int]:
    return [d if isinstance(d, int) and d > 0 else -1 for d in dims]


def _onnxruntime(path: Path, placement: devices.Placement, threads: int) -> Backend:
    import onnxruntime as ort

    if not path.is_file():
        raise PredictorError("ModelLoadFailed", f"{path} does not exist")
    wanted = devices.PROVIDERS[placement.device]
    available = ort.get_available_providers()
    message = None
    provider = wanted
    if wanted not in available:
        message = devices.unavailable(
            placement,
            f"ONNX Runtime has no {wanted} (available: {', '.join(available)})",
        )
        provider = devices.CPU_PROVIDER
    if provider == devices.PROVIDERS["gpu"]:
        # The CUDA image has CUDA and cuDNN as NVIDIA's pip wheels, which are not on the
        # loader's path: ONNX Runtime's CUDA provider finds them only once preloaded.
        ort.preload_dlls()
    options = session_options(threads)
    providers = [provider] if provider == devices.CPU_PROVIDER else [provider, devices.CPU_PROVIDER]
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:
        raise PredictorError("ModelLoadFailed", f"ONNX Runtime cannot load {path}: {exc}") from exc
    in_use = session.get_providers()[0]
    if in_use != provider:
        # The provider is built in but could not start (no driver or device): ORT fell back.
        message = devices.unavailable(placement, f"{provider} could not start ({in_use} in use)")
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    if len(inputs) != 1:
        raise PredictorError(
            "ModelLoadFailed", f"{path} has {len(inputs)} inputs; an image classifier has one"
        )
    input_name = inputs[0].name
    output_name = outputs[0].name

    def run(batch: np.ndarray) -> Any:
        return session.run([output_name], {input_name: batch})[0]

    return Backend(
        runtime="onnxruntime",
        provider=in_use,
        device=placement.device,
        fallback=message is not None,
        fallback_message=message,
        input_name=input_name,
        output_name=output_name,
        inputs=[
            {"name": i.name, "datatype": _datatype(i.type), "shape": _shape(i.shape)}
            for i in inputs
        ],
        outputs=[
            {"name": o.name, "datatype": _datatype(o.type), "shape": _shape(o.shape)}
            for o in outputs
        ],
        threads=threads,
        _run=run,
    )


def session_options(threads: int, spin: bool = True) -> Any:
    """ONNX Runtime's settings for serving: full graph optimisation, one operator at a time
    on ``threads`` intra-op threads (``spin`` False: idle threads sleep at once, for
    comparison)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Intra-op threads spin-wait between the operators of a run (a quarter faster than
    # sleeping, on ResNet v1 50 at 2 threads) but not after it: left spinning, they burn about
    # half of two cores for a while after every request, taking CPU from the event loop that
    # answers it, from the container's quota and from whatever else shares the node.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


def _datatype(onnx_type: str) -> str:
    return {"tensor(float)": "FP32", "tensor(uint8)": "UINT8", "tensor(float16)": "FP16"}.get(
        onnx_type, onnx_type
    )


def _tensorflow(path: Path, placement: devices.Placement, threads: int) -> Backend:
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise PredictorError(
            "ModelLoadFailed",
            f"TensorFlow is not installed in this image ({exc}); use the tensorflow image",
        ) from exc
    message = None
    gpus = tf.config.list_physical_devices("GPU")
    if placement.device == "gpu" and gpus:
        provider = "TensorFlow:GPU:0"
    else:
        if placement.device != "cpu":
            why = (
                "no GPU is visible to TensorFlow"
                if placement.device == "gpu"
                else "TensorFlow cannot use Ascend devices (serve an om or ONNX model there)"
            )
            message = devices.unavailable(placement, why)
        provider = "TensorFlow:CPU"
        with contextlib.suppress(RuntimeError):  # the runtime already started in this process
            tf.config.set_visible_devices([], "GPU")
    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    try:
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures["serving_default"]
    except Exception as exc:
        raise PredictorError("ModelLoadFailed", f"TensorFlow cannot load {path}: {exc}") from exc
    specs = signature.structured_input_signature[1]
    if len(specs) != 1:
        raise PredictorError(
            "ModelLoadFailed", f"{path}: serving_default has {len(specs)} inputs; expected one"
        )
    input_name, spec = next(iter(specs.items()))
    output_specs = signature.structured_outputs
    output_name = "logits" if "logits" in output_specs else next(iter(output_specs))

    def run(batch: np.ndarray) -> Any:
        return signature(**{input_name: tf.constant(batch)})[output_name].numpy()

    def describe(name: str, tensor: Any) -> dict[str, Any]:
        return {"name": name, "datatype": "FP32", "shape": _shape(tensor.shape.as_list())}

    return Backend(
        runtime="tensorflow",
        provider=provider,
        device=placement.device,
        fallback=message is not None,
        fallback_message=message,
        input_name=input_name,
        output_name=output_name,
        inputs=[describe(input_name, spec)],
        outputs=[describe(name, tensor) for name, tensor in output_specs.items()],
        threads=threads,
        _run=run,
    )


def _ascend(model: ModelDir, placement: devices.Placement) -> Backend:
    """Ascend offline models need AscendCL (``acl``, from the CANN toolkit) and a 310."""
    oms = sorted(model.path.glob("*.om"))
    if not oms:
        raise PredictorError("ModelLoadFailed", f"{model.path} holds no .om file")
    if not (model.path / "config.json").is_file():
        raise PredictorError("ModelLoadFailed", f"{model.path} has an .om but no config.json")
    try:
        import acl  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as exc:
        raise PredictorError(
            "ModelLoadFailed",
            f"AscendCL not available ({exc}): an om model runs only in the CANN predictor "
            "image on an Ascend 310 node; serve the ONNX version of the model elsewhere",
        ) from exc
    if placement.device != "ascend310":
        raise PredictorError(
            "ModelLoadFailed",
            f"an om model runs only on ascend310, not on {placement.device}",
        )
    from kubearts_predictor.ascend import open_session

    session = open_session(oms[0])
    return Backend(
        runtime="ascend",
        provider=f"AscendCL:{session.device_id}",
        device=placement.device,
        fallback=False,
        fallback_message=None,
        input_name=session.input_name,
        output_name=session.output_name,
        inputs=[
            {
                "name": session.input_name,
                "datatype": "FP32",
                "shape": [-1, *session.input_shape[1:]],
            }
        ],
        outputs=[
            {
                "name": session.output_name,
                "datatype": "FP32",
                "shape": [-1, session.output_shape[-1]],
            }
        ],
        threads=1,
        _run=session.run,
    )
