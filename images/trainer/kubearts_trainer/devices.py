"""Which device trains, reported honestly.

The operator sets ``KUBEARTS_DEVICE`` from the TrainingJob's pool (``cpu``, ``gpu``,
``ascend910``) and ``KUBEARTS_ALLOW_CPU_FALLBACK`` (``true``/``false``) from its
configuration. When the pool's device is not visible to TensorFlow the run fails with
``AcceleratorUnavailable``, unless fallback is allowed: then it trains on the CPU and the
result says ``"device": "CPU", "fallback": true`` with a message. Mixed precision and XLA
are used only when a GPU is actually in use.

Ascend 910 training needs Huawei's CANN TensorFlow adapter (``npu_device``), which this image
does not contain, so an ``ascend910`` pool is never satisfied by it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from kubearts_trainer.errors import TrainerError

DEVICES: Final = ("cpu", "gpu", "ascend910")


@dataclass(frozen=True)
class Placement:
    """The device in use and how it relates to the one asked for."""

    requested: str
    device: str
    """``GPU:0`` or ``CPU``: what TensorFlow trains on."""
    fallback: bool
    message: str | None

    @property
    def gpu(self) -> bool:
        return self.device.startswith("GPU")


def _flag(name: str) -> bool:
    value = os.environ.get(name, "false").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", ""):
        raise TrainerError("InvalidArgument", f"{name}={value!r}: expected true or false")
    return value in ("true", "1", "yes")


def select() -> Placement:
    """Decide the device from the environment; call before TensorFlow starts its runtime."""
    import tensorflow as tf

    requested = os.environ.get("KUBEARTS_DEVICE", "cpu").strip().lower() or "cpu"
    if requested not in DEVICES:
        raise TrainerError(
            "InvalidArgument",
            f"KUBEARTS_DEVICE={requested!r}: expected one of {', '.join(DEVICES)}",
        )
    allow_fallback = _flag("KUBEARTS_ALLOW_CPU_FALLBACK")
    gpus = tf.config.list_physical_devices("GPU")
    if requested == "cpu":
        _show_gpus([])
        return Placement(requested, "CPU", False, None)
    if requested == "gpu" and gpus:
        _show_gpus(gpus[:1])
        return Placement(requested, "GPU:0", False, None)
    why = (
        "no GPU is visible to TensorFlow (no device, no driver, or a CPU-only TensorFlow build)"
        if requested == "gpu"
        else "this trainer image has no Ascend (CANN) TensorFlow adapter"
    )
    if not allow_fallback:
        raise TrainerError(
            "AcceleratorUnavailable",
            f"the pool's device is {requested} but {why}; schedule on a node with the device, "
            "or allow CPU fallback (KUBEARTS_ALLOW_CPU_FALLBACK=true)",
        )
    _show_gpus([])
    return Placement(
        requested,
        "CPU",
        True,
        f"trained on the CPU instead of {requested}: {why}; CPU fallback is allowed",
    )


def _show_gpus(gpus: list[object]) -> None:
    """Make exactly ``gpus`` visible (memory grown on demand) before the runtime starts."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return
    try:
        tf.config.set_visible_devices(gpus, "GPU")
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        # The runtime already started (a second run in one process): the first choice stays.
        if [d.name for d in tf.config.get_visible_devices("GPU")] != [g.name for g in gpus]:  # type: ignore[attr-defined]
            raise
