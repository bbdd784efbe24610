"""Conversion of ResNet v1 50 at 224 px to ONNX: time, sizes, verification, and ONNX Runtime's
latency next to TensorFlow's for the same model.

1. The trainer's ResNet v1 50 (``kubearts_trainer.models.build``, random weights, no
   download) exported as the trainer exports it (``frozen_graph.pb``), converted by the
   converter's ``convert`` command in this process (TF-FrozenGraph-To-ONNX, opset 13, ONNX
   Runtime basic optimisation) and verified on ``--samples`` seeded random images.
2. Latency of the frozen graph in TensorFlow and of ``model.onnx`` in ONNX Runtime (CPU), at
   batch 1 and 8, the same input, the same thread count (``--threads``: intra-op threads for
   both, one inter-op thread), after warm-up; median of ``--runs`` runs taken alternately
   (TF, ORT, TF, ORT, ...) so load changes on the machine hit both alike. Target: ORT/TF
   ≤ 0.6 at batch 1.

``python benchmarks/conversion.py [--runs 20] [--threads N] [--samples 8] [--classes 10]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()

    import tensorflow as tf

    # Before TensorFlow's runtime starts: the same threads as ONNX Runtime gets.
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    import numpy as np
    import onnxruntime as ort

    from kubearts_converter import graphs
    from kubearts_converter.cli import main as convert_main
    from kubearts_converter.progress import Events
    from kubearts_trainer import export, models

    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "trainer-output"
        source.mkdir()
        tf.keras.utils.set_random_seed(0)
        model, _ = models.build("resnet_v1_50", args.classes)
        started = time.monotonic()
        nodes = export.save_frozen_graph(model, source / export.FROZEN_GRAPH)
        export_seconds = time.monotonic() - started
        del model
        output = Path(work) / "converted"
        stream = io.StringIO()
        started = time.monotonic()
        code = convert_main(
            [
                "convert",
                "--template",
                "TF-FrozenGraph-To-ONNX",
                "--source",
                str(source),
                "--output",
                str(output),
                "--input-shape",
                f"images:-1,{args.image_size},{args.image_size},3",
                "--verify-samples",
                str(args.samples),
            ],
            Events(stream),
        )
        command_seconds = time.monotonic() - started
        result: dict[str, Any] = json.loads(stream.getvalue().splitlines()[-1])
        if code not in (0, 21):
            raise SystemExit(f"conversion failed ({code}): {result.get('message')}")
        verification = result["verification"]
        frozen_bytes = (source / export.FROZEN_GRAPH).stat().st_size
        onnx_bytes = (output / "model.onnx").stat().st_size

        graph_def = graphs.load_graph_def(source / export.FROZEN_GRAPH)
        reference = graphs.FrozenRunner(graph_def, ["images"], ["logits:0"])
        settings = ort.SessionOptions()
        settings.intra_op_num_threads = args.threads
        settings.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(output / "model.onnx"), settings, providers=["CPUExecutionProvider"]
        )
        latency: dict[int, tuple[float, float]] = {}
        rng = np.random.default_rng(1)
        for batch in (1, 8):
            images = rng.integers(0, 256, size=(batch, args.image_size, args.image_size, 3)).astype(
                np.float32
            )
            for _ in range(3):
                reference([images])
                session.run(["logits"], {"images": images})
            tf_times: list[float] = []
            ort_times: list[float] = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                reference([images])
                t1 = time.perf_counter()
                session.run(["logits"], {"images": images})
                t2 = time.perf_counter()
                tf_times.append(t1 - t0)
                ort_times.append(t2 - t1)
            latency[batch] = (statistics.median(tf_times), statistics.median(ort_times))

    print(
        f"ResNet v1 50, {args.image_size} px, {args.classes} classes, random weights; "
        f"threads {args.threads}, median of {args.runs} interleaved runs"
    )
    rows = [
        ("export frozen graph (s)", f"{export_seconds:.1f} ({nodes} nodes)"),
        ("convert: tf2onnx + ORT basic (s)", f"{result['conversionSeconds']:.1f}"),
        ("convert command incl. verification (s)", f"{command_seconds:.1f}"),
        ("frozen_graph.pb (MB)", f"{frozen_bytes / 1e6:.1f}"),
        ("model.onnx (MB)", f"{onnx_bytes / 1e6:.1f}"),
        (
            "verification",
            f"{'passed' if verification['passed'] else 'FAILED'} on {verification['samples']} "
            f"{verification['inputs']} inputs, tolerance {verification['tolerance']:g}",
        ),
        ("  max |Δlogit|", f"{verification['maxAbsDiff']:.3g}"),
        ("  mean |Δlogit|", f"{verification['meanAbsDiff']:.3g}"),
        ("  top-1 agreement", f"{verification['top1Agreement']:.3f}"),
    ]
    for batch, (tf_s, ort_s) in latency.items():
        rows.append(
            (
                f"latency batch {batch}: TF / ORT (ms)",
                f"{tf_s * 1e3:.1f} / {ort_s * 1e3:.1f}   ORT/TF {ort_s / tf_s:.2f}",
            )
        )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    ratio = latency[1][1] / latency[1][0]
    print(f"target ORT/TF ≤ 0.6 at batch 1: {'met' if ratio <= 0.6 else 'NOT met'} ({ratio:.2f})")


if __name__ == "__main__":
    main()
