"""The ``convert`` command: locate the source artifact, check the options against its graph,
convert (tf2onnx or ATC), verify an ONNX result against TensorFlow, write the outputs.

Outputs under ``--output``: ``model.onnx`` (or ATC's ``model.om``), ``labels.txt`` when the
source has one, and ``model.json``, the source's model card updated for the converted model.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from kubearts_converter import atc, graphs, onnx_export, onnx_info, samples, verify
from kubearts_converter.digest import file_sha256
from kubearts_converter.errors import ConverterError
from kubearts_converter.options import (
    ATC_TEMPLATE,
    Options,
    OutputNode,
    Tensor,
    check,
    resolved_inputs,
)
from kubearts_converter.progress import Events, finite
from kubearts_converter.result import write_json

WORKER: Final = ["python", "-m", "kubearts_converter"]


@dataclass(frozen=True)
class Job:
    template: str
    source: Path
    output: Path
    options: Options
    verify_samples: int = 8
    verify_tolerance: float = 1e-4
    verify_manifest: Path | None = None
    verify_root: Path | None = None
    argv: list[str] = field(default_factory=list)
    events: Events = field(default_factory=Events)


def run(job: Job) -> dict[str, Any]:
    """Convert; returns the result document, raises ConverterError for expected failures."""
    kind = "saved-model" if job.template == "TF-SavedModel-To-ONNX" else "frozen-graph"
    source = graphs.locate(job.source, kind)
    job.events.progress("inspect", artifact=str(source.artifact))
    graph_def: Any = None
    function: Any = None
    if kind == "frozen-graph":
        graph_def = graphs.load_graph_def(source.artifact)
        graph = graphs.frozen_interface(graph_def)
    else:
        function = graphs.load_saved_model(source.artifact)
        graph = graphs.saved_model_interface(function)
    declared = graphs.default_outputs(graph, source.card)
    graph = graphs.with_candidates(graph, declared)
    outputs = list(job.options.output_nodes) or declared
    check(job.options, graph, job.template, outputs)
    inputs = resolved_inputs(job.options, graph)
    if job.template == ATC_TEMPLATE:
        return _ascend(job, source, inputs, outputs)
    return _onnx(job, source, graph_def, function, inputs, outputs)


def _ascend(
    job: Job, source: graphs.Source, inputs: list[Tensor], outputs: list[OutputNode]
) -> dict[str, Any]:
    command = atc.atc_command(
        job.options,
        str(source.artifact),
        str(job.output / "model"),
        inputs=inputs,
        outputs=outputs,
    )
    job.events.progress("convert", converter="atc", command=command)
    om = atc.run(command, job.output)
    _copy_labels(source, job.output)
    return {
        "status": "Succeeded",
        "reason": "Converted",
        "message": f"ATC converted {source.artifact.name} to {om.name} for "
        f"{job.options.soc_version}; not verified: an om model needs Ascend hardware to run",
        "output": _output(om, "om"),
        "verification": {
            "skipped": True,
            "samples": 0,
            "message": "skipped: an om model needs Ascend hardware (AscendCL) to run",
        },
        "command": command,
    }


def _onnx(
    job: Job,
    source: graphs.Source,
    graph_def: Any,
    function: Any,
    inputs: list[Tensor],
    outputs: list[OutputNode],
) -> dict[str, Any]:
    job.output.mkdir(parents=True, exist_ok=True)
    target = job.output / onnx_export.MODEL_NAME
    job.events.progress("convert", converter="tf2onnx", opset=job.options.opset)
    started = time.monotonic()
    if graph_def is not None:
        model = onnx_export.from_frozen_graph(graph_def, inputs, outputs, job.options)
    else:
        model = onnx_export.from_saved_model(source.artifact, outputs, job.options)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=job.output) as work:
        optimized = Path(work) / onnx_export.MODEL_NAME
        onnx_export.optimize(model, Path(work) / "tf2onnx.onnx", optimized)
        optimized.replace(target)
    seconds = time.monotonic() - started
    job.events.progress("verify", samples=job.verify_samples)
    if graph_def is not None:
        reference: Any = graphs.FrozenRunner(
            graph_def, [t.name for t in inputs], [n.tensor for n in outputs]
        )
    else:
        reference = graphs.SavedModelRunner(
            function, [t.name for t in inputs], [n.name for n in outputs]
        )
    names = [onnx_export.output_name(n) if graph_def is not None else n.name for n in outputs]
    converted = onnx_export.OnnxRunner(target, names)
    comparison, origin = _verify(job, source, inputs, reference, converted)
    verification = comparison.document(origin)
    verification["maxAbsDiff"] = finite(comparison.maxAbsDiff)
    verification["meanAbsDiff"] = finite(comparison.meanAbsDiff)
    tools = onnx_export.versions()
    onnx_inputs, onnx_outputs = onnx_info.interface(target)
    labels = _copy_labels(source, job.output)
    conversion = {
        "template": job.template,
        "source": str(source.artifact),
        "opset": job.options.opset,
        "inputFormat": job.options.input_format,
        "optimization": "ORT_ENABLE_BASIC",
        "seconds": round(seconds, 3),
        "verification": verification,
        "tools": tools,
    }
    write_json(
        job.output / graphs.MODEL_CARD,
        _card(source, job.options, onnx_inputs, onnx_outputs, labels, conversion),
    )
    output = _output(target, "onnx")
    document: dict[str, Any] = {
        "output": output,
        "verification": verification,
        "tools": tools,
        "opset": job.options.opset,
        "command": [*WORKER, *job.argv],
        "conversionSeconds": round(seconds, 3),
    }
    if not comparison.passed:
        raise ConverterError(
            "VerificationFailed",
            f"the ONNX model does not reproduce the source: {comparison.message} "
            f"({'evaluation images' if origin == 'eval-split' else 'random inputs'}); "
            f"{target.name} is kept in {job.output} for inspection. Raise spec.verify.tolerance "
            "(--verify-tolerance) only if this difference is acceptable.",
            **document,
        )
    return {
        "status": "Succeeded",
        "reason": "Converted",
        "message": f"converted {source.artifact.name} to {target.name} (opset "
        f"{job.options.opset}) in {seconds:.1f} s; verified on {comparison.samples} "
        f"{'evaluation images' if origin == 'eval-split' else 'random inputs'}: "
        f"{comparison.message}",
        **document,
    }


def _verify(
    job: Job,
    source: graphs.Source,
    inputs: list[Tensor],
    reference: Any,
    converted: onnx_export.OnnxRunner,
) -> tuple[verify.Comparison, str]:
    """Run both models on the same inputs and compare."""
    count = job.verify_samples
    feeds: list[npt.NDArray[np.float32]] = []
    origin = "random"
    for i, tensor in enumerate(inputs):
        dims = tensor.shape
        if dims is not None and len(dims) == 4:
            height, width = samples.image_size(dims, source.card)
            channels = dims[3] if dims[3] > 0 else 3
            if i == 0 and job.verify_manifest is not None and job.verify_root is not None:
                files = samples.manifest_sources(job.verify_manifest, job.verify_root, count)
                feeds.append(samples.load_images(files, height, width))
                origin = "eval-split"
                continue
            shape: tuple[int, ...] = (count, height, width, channels)
        else:
            rest = tuple(d if d > 0 else 1 for d in (dims or (1, 1))[1:])
            shape = (count, *rest)
        feeds.append(samples.random_inputs(shape, samples.SEED + i))
    total = len(feeds[0])
    first = inputs[0].shape
    batch = first[0] if first and first[0] > 0 else total
    ref_out: list[list[npt.NDArray[Any]]] = []
    conv_out: list[list[npt.NDArray[Any]]] = []
    for start in range(0, total, batch):
        chunk = [_padded(f[start : start + batch], batch) for f in feeds]
        valid = min(batch, total - start)
        ref = reference(chunk)
        if job.options.input_format == "NCHW":
            chunk = [c.transpose(0, 3, 1, 2) if c.ndim == 4 else c for c in chunk]
        conv = converted(chunk)
        ref_out.append([r[:valid] for r in ref])
        conv_out.append([c[:valid] for c in conv])
    reference_all = [np.concatenate([r[k] for r in ref_out]) for k in range(len(ref_out[0]))]
    converted_all = [np.concatenate([c[k] for c in conv_out]) for k in range(len(conv_out[0]))]
    return verify.compare(reference_all, converted_all, job.verify_tolerance), origin


def _padded(chunk: npt.NDArray[np.float32], batch: int) -> npt.NDArray[np.float32]:
    """A last, short chunk repeated up to a fixed batch size (the extra rows are dropped)."""
    if len(chunk) == batch:
        return chunk
    repeats = -(-batch // len(chunk))
    return np.concatenate([chunk] * repeats)[:batch]


def _copy_labels(source: graphs.Source, output: Path) -> list[str] | None:
    output.mkdir(parents=True, exist_ok=True)
    if source.labels_file is not None:
        shutil.copyfile(source.labels_file, output / graphs.LABELS)
    elif source.labels:
        (output / graphs.LABELS).write_text(
            "".join(f"{label}\n" for label in source.labels), encoding="utf-8"
        )
    return source.labels


def _output(path: Path, kind: str) -> dict[str, Any]:
    return {
        "file": path.name,
        "format": kind,
        "sizeBytes": path.stat().st_size,
        "digest": f"sha256:{file_sha256(path)}",
    }


def _card(
    source: graphs.Source,
    options: Options,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    labels: list[str] | None,
    conversion: dict[str, Any],
) -> dict[str, Any]:
    """The source's model card for the ONNX model: its own inputs and outputs (with the
    source's image attributes kept), the labels and how it was made."""
    card: dict[str, Any] = dict(source.card or {"schemaVersion": 1})
    before = {str(t.get("name")): t for t in card.get("inputs") or [] if isinstance(t, dict)}
    merged = []
    for tensor in inputs:
        attributes = {k: v for k, v in before.get(tensor["name"], {}).items() if k != "graphTensor"}
        if options.input_format == "NCHW":
            attributes["layout"] = "NCHW"
        merged.append({**attributes, **tensor})
    kinds = {str(t.get("name")): t for t in card.get("outputs") or [] if isinstance(t, dict)}
    card.update(
        format="onnx",
        framework=f"ONNX-opset{options.opset}",
        inputs=merged,
        outputs=[
            {**{k: v for k, v in kinds.get(t["name"], {}).items() if k != "graphTensor"}, **t}
            for t in outputs
        ],
        artifacts={"model": onnx_export.MODEL_NAME},
        conversion=conversion,
    )
    if labels is not None:
        card.update(labels=labels, labelsFile=graphs.LABELS)
    return card
