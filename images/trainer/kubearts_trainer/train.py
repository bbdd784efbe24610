"""One training run, from manifests to artifacts: the ``train`` command's body.

Read, build, fit, recalibrate, evaluate, export — each failure mapped to a reason:
missing data ``DataUnavailable``, weights ``WeightsUnavailable``, a non-finite loss or an
exhausted resource ``TrainingFailed``, an artifact that cannot be written ``ExportFailed``.
"""

from __future__ import annotations

import logging
import math
import platform
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import keras
import numpy as np
import tensorflow as tf

from kubearts_trainer import __version__, data, devices, evaluate, export, models, weights
from kubearts_trainer.errors import TrainerError
from kubearts_trainer.hyperparameters import Scalar
from kubearts_trainer.progress import Events, finite
from kubearts_trainer.resources import memory_limit, usable_cpus
from kubearts_trainer.result import write_json

log = logging.getLogger("kubearts_trainer")

#: Images used to recompute BatchNorm statistics after training (rounded up to batches).
RECALIBRATION_IMAGES: Final = 2048


@dataclass(frozen=True)
class Run:
    """Everything one run needs, parsed and validated by the command line."""

    model: str
    train_manifest: Path
    eval_manifest: Path
    dataset_root: Path
    output: Path
    hyperparameters: dict[str, Scalar]
    seed: int = 0
    pvc_root: Path = Path("/mnt/pvc")
    progress_interval: float = 5.0
    events: Events = field(default_factory=Events)


def configure_threads() -> int:
    """Size TensorFlow's thread pools to the container's CPU quota; before any TF op."""
    threads = usable_cpus()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # The runtime is already up (a second run in one process): keep its pools.
        log.debug("TensorFlow threads already configured")
    return threads


class ProgressLog(keras.callbacks.Callback):
    """Writes ``progress`` lines (throttled) and one ``epoch`` line per finished epoch.

    Declared ``async_safe``: Keras then converts the step's logs in a worker thread instead
    of waiting for every step, as a plain ``fit`` does; a lock keeps lines whole and in order.
    """

    async_safe = True

    def __init__(
        self, events: Events, *, epochs: int, steps: int, batch_size: int, interval: float
    ) -> None:
        super().__init__()
        self.events = events
        self.epochs = epochs
        self.steps = steps
        self.batch_size = batch_size
        self.interval = interval
        self.history: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._epoch = 0
        self._last_step = 0
        self._last_emit = 0.0
        self._train_start = 0.0
        self._epoch_start = 0.0
        self._train_seconds: float | None = None

    def on_train_begin(self, logs: Any = None) -> None:
        self._train_start = self._last_emit = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        with self._lock:
            self._epoch = epoch
            self._last_step = 0
            self._train_seconds = None
            self._epoch_start = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        now = time.monotonic()
        with self._lock:
            step = batch + 1
            if step <= self._last_step or step >= self.steps:
                return
            self._last_step = step
            if now - self._last_emit < self.interval:
                return
            self._last_emit = now
            self._progress(step, now, logs or {})

    def on_test_begin(self, logs: Any = None) -> None:
        # Validation follows the epoch's training steps: their time ends here.
        with self._lock:
            if self._train_seconds is None:
                self._train_seconds = time.monotonic() - self._epoch_start

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = logs or {}
        now = time.monotonic()
        with self._lock:
            train_seconds = self._train_seconds or (now - self._epoch_start)
            self._last_step = self.steps
            self._last_emit = now
            self._progress(self.steps, now, logs, train_seconds)
            record = {
                "event": "epoch",
                "epoch": epoch + 1,
                "epochs": self.epochs,
                "loss": finite(logs.get("loss")),
                "accuracy": finite(logs.get("accuracy")),
                "evalLoss": finite(logs.get("val_loss")),
                "evalAccuracy": finite(logs.get("val_accuracy")),
                "imagesPerSecond": round(self.steps * self.batch_size / train_seconds, 2),
                "seconds": round(now - self._epoch_start, 3),
            }
            self.history.append(record)
            self.events.emit(record)

    def _progress(
        self, step: int, now: float, logs: Any, train_seconds: float | None = None
    ) -> None:
        done = self._epoch * self.steps + step
        total = self.epochs * self.steps
        elapsed = now - self._train_start
        seconds = train_seconds if train_seconds is not None else now - self._epoch_start
        self.events.emit(
            {
                "event": "progress",
                "epoch": self._epoch + 1,
                "epochs": self.epochs,
                "step": step,
                "steps": self.steps,
                "percent": round(100.0 * done / total, 1),
                "etaSeconds": round(elapsed / done * (total - done), 1),
                "loss": finite(logs.get("loss")),
                "accuracy": finite(logs.get("accuracy")),
                "imagesPerSecond": round(step * self.batch_size / max(seconds, 1e-9), 2),
            }
        )


def make_optimizer(hp: dict[str, Scalar], total_steps: int) -> keras.optimizers.Optimizer:
    """The optimizer named by ``optimizer``; ``learning_rate`` is reached by a linear warm-up
    over the first tenth of the steps (from-scratch ResNets diverge without it at 0.01 with
    momentum) and then decays to 0 along a cosine."""
    warmup = total_steps // 10
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else float(hp["learning_rate"]),
        max(1, total_steps - warmup),
        warmup_target=float(hp["learning_rate"]) if warmup else None,
        warmup_steps=warmup,
    )
    momentum = float(hp["momentum"])
    name = hp["optimizer"]
    if name == "sgd":
        return keras.optimizers.SGD(schedule)
    if name == "momentum":
        return keras.optimizers.SGD(schedule, momentum=momentum)
    if name == "adam":
        return keras.optimizers.Adam(schedule)
    return keras.optimizers.RMSprop(schedule, momentum=momentum)


def _predict(model: keras.Model, batches: Any) -> tuple[np.ndarray, np.ndarray]:
    @tf.function
    def infer(images: Any) -> Any:
        return tf.cast(model(images, training=False), tf.float32)

    logits, labels = [], []
    for images, onehot in batches:
        logits.append(infer(images).numpy())
        labels.append(onehot.numpy().argmax(axis=1))
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(logits), np.concatenate(labels)


def run(job: Run) -> dict[str, Any]:
    """Train, evaluate and export; returns the result document (``status: Succeeded``)."""
    started = time.monotonic()
    threads = configure_threads()
    placement = devices.select()
    hp = job.hyperparameters
    image_size = int(hp["image_size"])
    batch_size = int(hp["batch_size"])
    epochs = int(hp["epochs"])
    freeze = bool(hp["freeze_backbone"])

    dataset = data.load(job.train_manifest, job.eval_manifest, job.dataset_root)
    classes = dataset.classes
    limit = memory_limit()
    cache = data.should_cache(len(dataset.train_files) + len(dataset.eval_files), image_size, limit)
    log.info(
        "%d training and %d evaluation images, %d classes, %d threads, device %s, cache %s",
        len(dataset.train_files),
        len(dataset.eval_files),
        len(classes),
        threads,
        placement.device,
        cache,
    )
    weights_location = str(hp.get("pretrained_weights") or "")
    with tempfile.TemporaryDirectory(prefix="kubearts-weights-") as scratch:
        weights_file = (
            weights.fetch(weights_location, Path(scratch), pvc_root=job.pvc_root)
            if weights_location
            else None
        )
        keras.utils.set_random_seed(job.seed)
        keras.mixed_precision.set_global_policy("mixed_float16" if placement.gpu else "float32")
        model, backbone = models.build(job.model, len(classes), freeze_backbone=freeze)
        if weights_file is not None:
            weights.load_into(backbone, weights_file, weights_location)
        else:
            models.zero_init_residuals(backbone)

    steps = data.steps_per_epoch(len(dataset.train_files), batch_size)
    momentum = models.batchnorm_momentum(steps * epochs)
    bn_layers = models.set_batchnorm_momentum(model, momentum)
    common: dict[str, Any] = {
        "classes": len(classes),
        "image_size": image_size,
        "batch_size": batch_size,
        "seed": job.seed,
        "cache": cache,
        "threads": threads,
    }
    train_batches = data.pipeline(
        dataset.train_files, dataset.train_labels, training=True, **common
    )
    eval_batches = (
        data.pipeline(dataset.eval_files, dataset.eval_labels, training=False, **common)
        if dataset.eval_files
        else None
    )
    loss = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=float(hp["label_smoothing"])
    )
    model.compile(
        optimizer=make_optimizer(hp, steps * epochs),
        loss=loss,
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=placement.gpu,
    )
    progress = ProgressLog(
        job.events,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        interval=job.progress_interval,
    )
    fit_started = time.monotonic()
    try:
        model.fit(
            train_batches,
            epochs=epochs,
            validation_data=eval_batches,
            callbacks=[progress, keras.callbacks.TerminateOnNaN()],
            shuffle=False,  # the pipeline shuffles, with the seed
            verbose=0,
        )
    except tf.errors.ResourceExhaustedError as exc:
        raise TrainerError(
            "TrainingFailed",
            f"out of memory while training ({exc.message.splitlines()[0]}); "
            "lower batch_size or image_size, or raise the memory limit",
        ) from exc
    except tf.errors.InvalidArgumentError as exc:
        raise TrainerError(
            "TrainingFailed", f"TensorFlow refused a step: {exc.message.splitlines()[0]}"
        ) from exc
    fit_seconds = time.monotonic() - fit_started
    if (
        not progress.history
        or progress.history[-1]["loss"] is None
        or len(progress.history) < epochs
    ):
        raise TrainerError(
            "TrainingFailed",
            "the loss became NaN or infinite; lower learning_rate or change the optimizer",
        )

    recalibration_batches = models.recalibrate_batchnorm(
        model, train_batches, max(1, min(steps, math.ceil(RECALIBRATION_IMAGES / batch_size)))
    )
    evaluation: dict[str, Any] | None = None
    if eval_batches is not None:
        logits, labels = _predict(model, eval_batches)
        eval_loss = float(loss(tf.one_hot(labels, len(classes)), logits))
        evaluation = evaluate.figures(logits, labels, classes, eval_loss)

    batchnorm = {
        "layers": bn_layers,
        "momentum": round(momentum, 6),
        "momentumRule": "clip(1 - 20 / (stepsPerEpoch * epochs), 0.9, 0.99)",
        "recalibration": {
            "batches": recalibration_batches,
            "images": recalibration_batches * batch_size,
            "method": "moving mean/variance replaced by the exact average over training "
            "batches after training (precise BN)",
        }
        if recalibration_batches
        else None,
        "treatment": "momentum from the run length"
        + (" and recalibration after training" if recalibration_batches else ""),
    }
    training = {
        "device": placement.device,
        "requestedDevice": placement.requested,
        "fallback": placement.fallback,
        "mixedPrecision": placement.gpu,
        "xla": placement.gpu,
        "threads": threads,
        "cached": cache,
        "seed": job.seed,
        "stepsPerEpoch": steps,
        "epochs": epochs,
        "fitSeconds": round(fit_seconds, 3),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "trainer": __version__,
    }
    outputs = _export(
        job, model, classes, hp, evaluation, progress.history, batchnorm, training, dataset
    )
    metrics = {
        key: [record[source] for record in progress.history]
        for key, source in (
            ("epoch", "epoch"),
            ("loss", "loss"),
            ("accuracy", "accuracy"),
            ("evalLoss", "evalLoss"),
            ("evalAccuracy", "evalAccuracy"),
            ("imagesPerSecond", "imagesPerSecond"),
        )
    }
    summary = (
        {k: v for k, v in evaluation.items() if k != "confusionMatrix"} if evaluation else None
    )
    message = (
        f"trained {job.model} for {epochs} epoch{'s' if epochs != 1 else ''} on {placement.device}"
        + (
            f": evaluation accuracy {evaluation['accuracy']}"
            if evaluation
            else " (no evaluation split)"
        )
    )
    if placement.message:
        message += f"; {placement.message}"
    result: dict[str, Any] = {
        "status": "Succeeded",
        "reason": "Trained",
        "message": message,
        "device": placement.device,
        "fallback": placement.fallback,
        "metrics": metrics,
        "evaluation": summary,
        "outputs": outputs,
        "durationSeconds": round(time.monotonic() - started, 3),
    }
    if dataset.warnings:
        result["warnings"] = dataset.warnings
    return result


def _export(
    job: Run,
    model: keras.Model,
    classes: list[str],
    hp: dict[str, Scalar],
    evaluation: dict[str, Any] | None,
    history: list[dict[str, Any]],
    batchnorm: dict[str, Any],
    training: dict[str, Any],
    dataset: data.Data,
) -> dict[str, str]:
    out = job.output
    outputs = {
        "savedModel": export.SAVED_MODEL,
        "frozenGraph": export.FROZEN_GRAPH,
        "labels": export.LABELS,
        "modelCard": export.MODEL_CARD,
        "metrics": "evaluation/metrics.json",
        "confusionMatrix": "evaluation/confusion_matrix.json",
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        export.save_saved_model(model, out / export.SAVED_MODEL)
        nodes = export.save_frozen_graph(model, out / export.FROZEN_GRAPH)
        export.save_labels(classes, out / export.LABELS)
        if evaluation is not None:
            write_json(out / outputs["metrics"], evaluation)
            write_json(out / outputs["confusionMatrix"], evaluation["confusionMatrix"])
        else:
            del outputs["metrics"], outputs["confusionMatrix"]
        card = model_card(job, classes, hp, evaluation, history, batchnorm, training, dataset)
        card["artifacts"]["frozenGraphNodes"] = nodes
        write_json(out / export.MODEL_CARD, card)
    except OSError as exc:
        raise TrainerError(
            "ExportFailed", f"cannot write the artifacts to {out}: {exc.strerror or exc}"
        ) from exc
    except (RuntimeError, ValueError, tf.errors.OpError) as exc:
        raise TrainerError("ExportFailed", f"cannot export the model: {exc}") from exc
    return outputs


def model_card(
    job: Run,
    classes: list[str],
    hp: dict[str, Scalar],
    evaluation: dict[str, Any] | None,
    history: list[dict[str, Any]],
    batchnorm: dict[str, Any],
    training: dict[str, Any],
    dataset: data.Data,
) -> dict[str, Any]:
    """``model.json``: what the model is, how it was made, and from which data."""
    image_size = int(hp["image_size"])
    return {
        "schemaVersion": 1,
        "task": "image_classification",
        "algorithm": job.model,
        "model": models.ARCHITECTURES[job.model],
        "framework": f"TensorFlow-{tf.__version__}",
        "inputs": [
            {
                "name": export.INPUT,
                "dtype": "float32",
                "shape": [-1, -1, -1, 3],
                "layout": "NHWC",
                "colorOrder": "RGB",
                "range": [0, 255],
                "imageSize": [image_size, image_size],
                "graphTensor": f"{export.INPUT}:0",
            }
        ],
        "outputs": [
            {
                "name": export.OUTPUT,
                "dtype": "float32",
                "shape": [-1, len(classes)],
                "kind": "logits",
                "graphTensor": f"{export.OUTPUT}:0",
            }
        ],
        "preprocessing": {
            "client": f"decode to RGB, resize bilinearly to {image_size}x{image_size}, "
            "keep pixel values 0-255 as float32",
            "inModel": models.PREPROCESSING[job.model],
        },
        "labels": classes,
        "labelsFile": export.LABELS,
        "metrics": {
            "evaluation": {k: v for k, v in evaluation.items() if k not in ("confusionMatrix",)}
            if evaluation
            else None,
            "epochs": [{k: v for k, v in r.items() if k != "event"} for r in history],
        },
        "hyperparameters": hp,
        "batchNorm": batchnorm,
        "training": training,
        "data": {
            "datasetRoot": str(job.dataset_root),
            "classes": len(classes),
            "trainSamples": len(dataset.train_files),
            "evalSamples": len(dataset.eval_files),
            "manifests": {
                usage: {
                    "path": str(manifest.path),
                    "sha256": manifest.sha256,
                    "samples": len(manifest.sources),
                }
                for usage, manifest in dataset.manifests.items()
            },
        },
        "artifacts": {
            "savedModel": export.SAVED_MODEL,
            "signature": "serving_default",
            "frozenGraph": export.FROZEN_GRAPH,
            "graphInputs": [f"{export.INPUT}:0"],
            "graphOutputs": [f"{export.OUTPUT}:0"],
        },
    }
