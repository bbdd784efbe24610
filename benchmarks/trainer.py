"""Trainer throughput next to a bare Keras ``fit``, input pipeline cost, and accuracy per
algorithm, all measured in one run on the same cores.

1. **Throughput**: the trainer (``kubearts_trainer.train.run``: real tf.data pipeline from PNG
   files, progress callback, per-epoch evaluation excluded from the timing) against a bare
   ``model.fit`` of the same model, batch size and optimizer on in-memory numpy tensors.
   Images/s per epoch, median over the epochs after the first (which traces). Target ≥ 0.95.
2. **Input pipeline**: the trainer's step time against ``fit`` on one synthetic batch repeated
   (``tf.data.Dataset.from_tensors(...).repeat()``): what reading, decoding and batching
   cost. Target ≤ 1.05.

   The three runs of 1 and 2 alternate for ``--rounds`` rounds, in an order that rotates
   every round, and each ratio is the median of the per-round ratios: a change of load on the
   machine hits all three alike instead of whichever ran at that moment.
3. **Algorithms**: evaluation accuracy and wall time of each algorithm on the digits
   (``--every``-th image, split 0.8 per class) for ``--algorithm-epochs`` epochs.

Needs scikit-learn besides the image's dependencies (the development environment has it):
``python benchmarks/trainer.py [--model mobilenet_v1] [--epochs 4] [--image-size 32]
[--rounds 3]``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "unit" / "trainer"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from trainer_helpers import Digits, make_digits  # noqa: E402


def trainer_run(
    digits: Digits, model: str, output: Path, hyperparameters: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    """One in-process trainer run: the result, its epoch events and the wall time."""
    from kubearts_trainer import hyperparameters as hp
    from kubearts_trainer import train
    from kubearts_trainer.progress import Events

    stream = io.StringIO()
    started = time.monotonic()
    result = train.run(
        train.Run(
            model=model,
            train_manifest=digits.train,
            eval_manifest=digits.eval,
            dataset_root=digits.root,
            output=output,
            hyperparameters=hp.decode(hp.encode(hyperparameters)),
            progress_interval=3600,
            events=Events(stream),
        )
    )
    seconds = time.monotonic() - started
    epochs = [json.loads(x) for x in stream.getvalue().splitlines()]
    return result, [e for e in epochs if e["event"] == "epoch"], seconds


def load_arrays(digits: Digits, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The training split as float32 NHWC 0-255 and one-hot labels, decoded with Pillow."""
    lines = [json.loads(x) for x in digits.train.read_text().splitlines()]
    classes = sorted({x["annotation"][0]["name"] for x in lines})
    images = np.stack(
        [
            np.asarray(
                Image.open(digits.root / x["source"])
                .convert("RGB")
                .resize((size, size), Image.BILINEAR),
                np.float32,
            )
            for x in lines
        ]
    )
    labels = np.eye(len(classes), dtype=np.float32)[
        [classes.index(x["annotation"][0]["name"]) for x in lines]
    ]
    return images, labels


class EpochTimer:
    """Seconds of each epoch of a plain ``fit`` (no validation)."""

    def __init__(self) -> None:
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.seconds: list[float] = []
                self._start = 0.0

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self._start = time.monotonic()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                self.seconds.append(time.monotonic() - self._start)

        self.callback = Timer()


def bare_fit(
    model_name: str,
    classes: int,
    data: Any,
    *,
    steps: int,
    batch: int,
    epochs: int,
    lr: float,
    **fit: Any,
) -> list[float]:
    """Images/s per epoch of a bare ``fit`` with the trainer's model, loss and optimizer."""
    import keras

    from kubearts_trainer import models, train

    keras.utils.set_random_seed(0)
    model, _ = models.build(model_name, classes)
    models.set_batchnorm_momentum(model, models.batchnorm_momentum(steps * epochs))
    model.compile(
        optimizer=train.make_optimizer(
            {"learning_rate": lr, "momentum": 0.9, "optimizer": "momentum"}, steps * epochs
        ),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    timer = EpochTimer().callback
    model.fit(data, epochs=epochs, callbacks=[timer], verbose=0, **fit)
    return [steps * batch / s for s in timer.seconds]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="mobilenet_v1")
    parser.add_argument(
        "--epochs", type=int, default=4, help="epochs of the throughput runs (default 4)"
    )
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--every", type=int, default=2, help="use every n-th digit (default 2: 899 images)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds of the throughput runs"
    )
    parser.add_argument("--algorithms", default="mobilenet_v1,resnet_v1_50,resnet_v1_101")
    parser.add_argument("--algorithm-epochs", type=int, default=3)
    args = parser.parse_args()

    import tensorflow as tf

    from kubearts_trainer import data as trainer_data
    from kubearts_trainer.resources import usable_cpus
    from kubearts_trainer.train import configure_threads

    threads = configure_threads()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="kubearts-bench-") as scratch:
        root = Path(scratch)
        digits = make_digits(root / "digits", every=args.every)
        hyper = {
            "epochs": args.epochs,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
        }
        steps = trainer_data.steps_per_epoch(digits.train_count, args.batch_size)
        print(
            f"digits: {digits.train_count} train / {digits.eval_count} eval images, "
            f"{steps} steps of {args.batch_size}, {threads} threads (CPU quota: {usable_cpus()})",
            flush=True,
        )

        # 1 and 2: the trainer, a bare fit on in-memory tensors and a bare fit on one
        # synthetic batch, alternating round by round.
        images, labels = load_arrays(digits, args.image_size)
        used = steps * args.batch_size
        synthetic_data = (
            tf.data.Dataset.from_tensors((images[: args.batch_size], labels[: args.batch_size]))
            .repeat(steps)
            .cache()
        )
        fit_args: dict[str, Any] = {
            "steps": steps,
            "batch": args.batch_size,
            "epochs": args.epochs,
            "lr": 0.01,
        }

        def trainer_round(round_: int) -> float:
            _, epochs, _ = trainer_run(digits, args.model, root / f"out-{round_}", hyper)
            return statistics.median(e["imagesPerSecond"] for e in epochs[1:])

        def bare_round(_: int) -> float:
            return statistics.median(
                bare_fit(
                    args.model,
                    labels.shape[1],
                    images[:used],
                    y=labels[:used],
                    batch_size=args.batch_size,
                    shuffle=True,
                    **fit_args,
                )[1:]
            )

        def synthetic_round(_: int) -> float:
            return statistics.median(
                bare_fit(args.model, labels.shape[1], synthetic_data, **fit_args)[1:]
            )

        runs = {"trainer": trainer_round, "bare": bare_round, "synthetic": synthetic_round}
        measured: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        for round_ in range(args.rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                measured[name].append(runs[name](round_))
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{name} {values[-1]:.1f} img/s" for name, values in measured.items()),
                flush=True,
            )
        trainer_ips = statistics.median(measured["trainer"])
        bare_ips = statistics.median(measured["bare"])
        synthetic_ips = statistics.median(measured["synthetic"])
        bare_ratio = statistics.median(
            t / b for t, b in zip(measured["trainer"], measured["bare"], strict=True)
        )
        pipeline_ratio = statistics.median(
            s / t for t, s in zip(measured["trainer"], measured["synthetic"], strict=True)
        )
        rows.append(
            (
                f"trainer images/s ({args.model}, {args.image_size} px, batch {args.batch_size})",
                f"{trainer_ips:.1f}",
                "",
            )
        )
        rows.append(("bare keras fit images/s (numpy tensors)", f"{bare_ips:.1f}", ""))
        rows.append(
            ("  ratio trainer / bare fit (median of rounds)", f"{bare_ratio:.3f}", "target >= 0.95")
        )
        trainer_step = args.batch_size / trainer_ips * 1000
        synthetic_step = args.batch_size / synthetic_ips * 1000
        rows.append(("step ms, real input pipeline (trainer)", f"{trainer_step:.1f}", ""))
        rows.append(("step ms, synthetic tensors", f"{synthetic_step:.1f}", ""))
        rows.append(
            (
                "  ratio real / synthetic (median of rounds)",
                f"{pipeline_ratio:.3f}",
                "target <= 1.05",
            )
        )

        # 3. accuracy and wall time per algorithm.
        for name in [a for a in args.algorithms.split(",") if a]:
            result, _, seconds = trainer_run(
                digits,
                name,
                root / f"out-{name}",
                {
                    "epochs": args.algorithm_epochs,
                    "image_size": args.image_size,
                    "batch_size": args.batch_size,
                },
            )
            rows.append(
                (
                    f"{name}: eval accuracy after {args.algorithm_epochs} epochs",
                    f"{result['evaluation']['accuracy']:.3f}",
                    f"wall {seconds:.0f} s",
                )
            )
            print(rows[-1], flush=True)

    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure'.ljust(width)}  {'value':>9}  note")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 14}")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>9}  {note}")


if __name__ == "__main__":
    main()
