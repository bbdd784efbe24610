"""Which device serves, reported honestly.

The operator sets ``--device`` (or ``KUBEARTS_DEVICE``) from the InferenceService's pool —
``cpu``, ``gpu`` or ``ascend310`` — and ``--allow-cpu-fallback`` (or
``KUBEARTS_ALLOW_CPU_FALLBACK=true``) from its configuration. Each pool asks ONNX Runtime for
one execution provider; when that provider is not there (a CPU-only build, no driver, no
device), loading fails with ``AcceleratorUnavailable`` unless fallback is allowed, and then
the CPU serves and the ``loaded`` line says ``"fallback": true`` with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from kubearts_predictor.errors import PredictorError

DEVICES: Final = ("cpu", "gpu", "ascend310")

#: ONNX Runtime's execution provider per pool device.
PROVIDERS: Final[dict[str, str]] = {
    "cpu": "CPUExecutionProvider",
    "gpu": "CUDAExecutionProvider",
    "ascend310": "CANNExecutionProvider",
}
CPU_PROVIDER: Final = PROVIDERS["cpu"]


@dataclass(frozen=True)
class Placement:
    """The device asked for and whether falling back to the CPU is allowed."""

    device: str
    allow_cpu_fallback: bool


def flag(name: str, default: bool = False) -> bool:
    """A true/false environment variable; anything else is a usage error."""
    value = os.environ.get(name, "").strip().lower()
    if value == "":
        return default
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise PredictorError("InvalidArgument", f"{name}={value!r}: expected true or false")
    return value in ("true", "1", "yes")


def from_environment(device: str | None, allow_cpu_fallback: bool | None) -> Placement:
    """Flags win over ``KUBEARTS_DEVICE`` and ``KUBEARTS_ALLOW_CPU_FALLBACK``."""
    chosen = (device or os.environ.get("KUBEARTS_DEVICE", "") or "cpu").strip().lower()
    if chosen not in DEVICES:
        raise PredictorError(
            "InvalidArgument", f"device {chosen!r}: expected one of {', '.join(DEVICES)}"
        )
    fallback = (
        allow_cpu_fallback
        if allow_cpu_fallback is not None
        else flag("KUBEARTS_ALLOW_CPU_FALLBACK")
    )
    return Placement(chosen, fallback)


def unavailable(placement: Placement, why: str) -> str:
    """The fallback message, or raise ``AcceleratorUnavailable`` when fallback is not allowed."""
    if not placement.allow_cpu_fallback:
        raise PredictorError(
            "AcceleratorUnavailable",
            f"the pool's device is {placement.device} but {why}; schedule on a node with the "
            "device, or allow CPU fallback (--allow-cpu-fallback or "
            "KUBEARTS_ALLOW_CPU_FALLBACK=true)",
        )
    return f"serving on the CPU instead of {placement.device}: {why}; CPU fallback is allowed"
