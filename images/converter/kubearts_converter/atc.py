"""The Ascend template: options → the command line of ATC (Huawei's Ascend Tensor Compiler,
the ``atc`` command of the CANN toolkit), and running it where it is installed.

One table maps the options to ATC's flags (ATC reads TensorFlow models as frozen GraphDefs
only, and needs every input dimension fixed):

============================  =============================================================
option                        ATC flag
============================  =============================================================
(template)                    ``--framework=3`` (TensorFlow)
the source's frozen graph     ``--model=<frozen_graph.pb>``
``--output DIR``              ``--output=<DIR>/model`` (ATC appends ``.om``: ``model.om``)
``socVersion``                ``--soc_version=<socVersion>`` (e.g. ``Ascend310``)
``inputShape``                ``--input_shape=<name:d1,...;...>`` (node names, no ``:0``)
``inputFormat``               ``--input_format=<NHWC|NCHW>``
``outputNodes``               ``--out_nodes=<name:index;...>``
``precision`` FP32            ``--output_type=FP32 --precision_mode=allow_fp32_to_fp16``
``precision`` FP16            ``--output_type=FP16 --precision_mode=force_fp16``
============================  =============================================================

``--precision_mode=allow_fp32_to_fp16`` keeps float32 for every operator that has a float32
implementation and lowers to float16 only those that have none — ATC's "high-precision"
mode for inference. ``must_keep_origin_dtype`` would fail outright on Ascend 310, whose cube
unit (convolutions, matrix products) computes in float16 only; ``force_fp32`` is meant for
training products. ``force_fp16`` (ATC's default on inference products) is what FP16 asks for.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Final

from kubearts_converter.errors import ConverterError
from kubearts_converter.options import Options, OutputNode, Tensor, strip_index

ATC: Final = "atc"
#: ATC's name for TensorFlow in --framework.
FRAMEWORK_TENSORFLOW: Final = "3"
PRECISION_MODE: Final[dict[str, str]] = {"FP32": "allow_fp32_to_fp16", "FP16": "force_fp16"}
OM_NAME: Final = "model.om"


def atc_command(
    options: Options,
    model_path: str,
    output_prefix: str,
    *,
    inputs: list[Tensor] | None = None,
    outputs: list[OutputNode] | None = None,
) -> list[str]:
    """The ATC command line (argv, no shell quoting) for ``options``.

    ``inputs``/``outputs`` are the resolved inputs and output nodes when the options leave
    them to the graph; by default the options' own ``inputShape`` and ``outputNodes``.
    """
    if inputs is not None:
        shape = ";".join(
            f"{strip_index(t.name)}:{','.join(str(d) for d in (t.shape or ()))}" for t in inputs
        )
    else:
        shape = ";".join(
            f"{strip_index(s.name)}:{','.join(str(d) for d in s.dims)}"
            for s in options.input_shapes
        )
    nodes = outputs if outputs is not None else list(options.output_nodes)
    command = [
        ATC,
        f"--framework={FRAMEWORK_TENSORFLOW}",
        f"--model={model_path}",
        f"--output={output_prefix}",
        f"--soc_version={options.soc_version}",
    ]
    if shape:
        command.append(f"--input_shape={shape}")
    command.append(f"--input_format={options.input_format}")
    if nodes:
        command.append(f"--out_nodes={';'.join(n.tensor for n in nodes)}")
    command += [
        f"--output_type={options.precision}",
        f"--precision_mode={PRECISION_MODE[options.precision]}",
    ]
    return command


def run(command: list[str], output: Path, timeout: float = 3600.0) -> Path:
    """Run ATC; returns the om file. ConverterUnavailable when ``atc`` is not on PATH,
    ConversionFailed when it fails or writes no om. Never writes an om itself."""
    executable = shutil.which(command[0])
    if executable is None:
        raise unavailable(command)
    output.mkdir(parents=True, exist_ok=True)
    try:
        finished = subprocess.run(
            [executable, *command[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConverterError(
            "ConversionFailed", f"ATC did not finish within {timeout:.0f} s", command=command
        ) from None
    om = output / OM_NAME
    if finished.returncode != 0 or not om.is_file():
        tail = (finished.stdout + finished.stderr).strip()[-1500:]
        raise ConverterError(
            "ConversionFailed",
            f"ATC exited with {finished.returncode}"
            + ("" if om.is_file() else f" and wrote no {OM_NAME}")
            + f": {tail}",
            command=command,
        )
    return om


def unavailable(command: list[str]) -> ConverterError:
    """The failure for an image without ATC, with the command it would have run."""
    return ConverterError(
        "ConverterUnavailable",
        "ATC (the `atc` command of Huawei's CANN toolkit) is not on PATH in this image; the "
        "TF-FrozenGraph-To-Ascend-C32 template needs the CANN converter image (a converter "
        "built FROM a CANN image, named in the chart). No om was written; the command it "
        "would run is in the result's `command`.",
        command=command,
    )
