"""Conversion of ResNet v1 50 at 224 px to ONNX: time, sizes, verification, and ONNX Runtime's
latency next to TensorFlow's for the same model.

1. The trainer's ResNet v1 50 (``kubearts_trainer.models.build``, random weights, no
   download) exported as the trainer exports it (``frozen_graph.pb``), converted by the
   converter's ``convert`` command in this process (TF-FrozenGraph-To-ONNX, opset 13, ONNX
   Runtime basic optimisation) and verified on ``--samples`` seeded random images.
2. Latency of the frozen graph in TensorFlow and of ``model.onnx`` in ONNX Runtime (CPU), at
   batch 1 and 8, the same input, the same thread count (``--threads``: intra-op threads for
   both, one inter-op thread), after warm-up; median of ``--runs`` rounds, each running every
   runtime once, in an order that reverses every round, so load changes on the machine hit
   all alike. ONNX Runtime runs as the predictor serves it (``backends.session_options``:
   threads spin-wait between the operators of a run and stop when it ends, the ratio
   reported) and, for comparison, with its threads sleeping whenever idle
   (``session.intra_op.allow_spinning=0``). Target: ORT/TF ≤ 0.6 at batch 1.

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


def _session(path: Path, threads: int, spin: bool) -> Any:
    """An ONNX Runtime CPU session as the predictor opens it; without ``spin``, idle intra-op
    threads sleep at once instead of spin-waiting between operators."""
    import onnxruntime as ort

    from kubearts_predictor import backends

    settings = backends.session_options(threads, spin)
    return ort.InferenceSession(str(path), settings, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()

    # Other work on the machine slows both runtimes unevenly: the load is printed with the table.
    load_before = os.getloadavg()[0]
    import tensorflow as tf

    # Before TensorFlow's runtime starts: the same threads as ONNX Runtime gets.
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    import numpy as np

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
        sessions = {
            name: _session(output / "model.onnx", args.threads, spin=name == "ort")
            for name in ("ort", "ort-sleep")
        }
        latency: dict[int, dict[str, float]] = {}
        rng = np.random.default_rng(1)
        for batch in (1, 8):
            images = rng.integers(0, 256, size=(batch, args.image_size, args.image_size, 3))
            feed = images.astype(np.float32)
            runners = ("tf", "ort", "ort-sleep")

            def once(name: str, feed: Any = feed) -> None:
                if name == "tf":
                    reference([feed])
                else:
                    sessions[name].run(["logits"], {"images": feed})

            for name in runners:
                for _ in range(3):
                    once(name)
            times: dict[str, list[float]] = {name: [] for name in runners}
            order = list(runners)
            for _ in range(args.runs):
                for name in order:
                    started = time.perf_counter()
                    once(name)
                    times[name].append(time.perf_counter() - started)
                order.reverse()  # no runtime always goes first
            latency[batch] = {name: statistics.median(values) for name, values in times.items()}

    print(
        f"ResNet v1 50, {args.image_size} px, {args.classes} classes, random weights; "
        f"threads {args.threads}, median of {args.runs} interleaved runs; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
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
    for batch, medians in latency.items():
        tf_s, ort_s, sleep_s = medians["tf"], medians["ort"], medians["ort-sleep"]
        rows.append(
            (
                f"latency batch {batch}: TF / ORT (ms)",
                f"{tf_s * 1e3:.1f} / {ort_s * 1e3:.1f}   ORT/TF {ort_s / tf_s:.2f}",
            )
        )
        rows.append(
            (
                "  ORT with threads sleeping when idle (ms)",
                f"{sleep_s * 1e3:.1f}   ORT/TF {sleep_s / tf_s:.2f}",
            )
        )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    ratio = latency[1]["ort"] / latency[1]["tf"]
    print(f"target ORT/TF ≤ 0.6 at batch 1: {'met' if ratio <= 0.6 else 'NOT met'} ({ratio:.2f})")


if __name__ == "__main__":
    main()
