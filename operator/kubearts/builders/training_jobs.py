"""The Job of a TrainingJob (pure): the subscribed algorithm's image on its data set version.

A TrainingJob runs one Job, ``<trainingjob>-train``, whose container is what the
Subscription pinned — image and entrypoint — with the run's arguments appended:

- the input version, mounted **read-only**: the data set's folder at ``/mnt/data/<input>``
  (its claim with a ``subPath``), ``--dataset-root`` pointing there and
  ``--train-manifest``/``--eval-manifest`` at the version's lists inside it;
- the output location, mounted **writable** at ``/mnt/output`` (``--output``);
- the hyperparameters, validated and defaulted, as ``--<name>=<value>``
  (:func:`kubearts.hyperparameters.boot_arguments`);
- ``KUBEARTS_DEVICE`` (the pool's device: cpu, gpu, ascend910) and
  ``KUBEARTS_ALLOW_CPU_FALLBACK``, so the trainer can tell whether the device it finds is
  the one it was placed for.

Placement, the restricted pod, the scratch space and the result protocol come from
:func:`kubearts.builders.jobs.worker_job`; ``spec.runPolicy`` sets the Job's back-off,
deadline and TTL. The Job carries the digest of the spec it was made for, so an edit
after the start is recognised (and refused) rather than silently starting another run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kubearts.builders.jobs import (
    RESULT_PATH,
    SPEC_DIGEST_ANNOTATION,
    JobLimits,
    spec_digest,
    worker_job,
)
from kubearts.builders.meta import child_labels, child_name
from kubearts.builders.placement import Placement
from kubearts.constants import STEP_LABEL, TRAINING_JOB
from kubearts.hyperparameters import Scalar, boot_arguments
from kubearts.storage import (
    StorageLocation,
    Volume,
    VolumeMount,
    folder_mounts,
    output_folder,
)

__all__ = [
    "DATA_ROOT",
    "LOG_FILE",
    "OUTPUT_PATH",
    "SPEC_DIGEST_ANNOTATION",
    "STEP_TRAIN",
    "TrainingInput",
    "TrainingRun",
    "spec_digest",
    "training_job",
    "training_job_name",
]

STEP_TRAIN: Final = "train"
#: Where each input data set is mounted, one folder per input name.
DATA_ROOT: Final = "/mnt/data"
#: Where the output location is mounted.
OUTPUT_PATH: Final = "/mnt/output"
#: Folder of the workspace claim holding training outputs, one sub-folder per TrainingJob.
WORKSPACE_TRAINING_DIR: Final = "trainingjobs"
#: The trainer's log, kept next to the outputs (``status.logs.uri``).
LOG_FILE: Final = "logs/train.log"
#: Scratch space of a training pod (checkpoints before export, framework caches).
SCRATCH_SIZE: Final = "10Gi"


@dataclass(frozen=True)
class TrainingInput:
    """One input: a data set folder on a claim and the version's lists inside it."""

    name: str
    location: StorageLocation
    train_manifest: str
    eval_manifest: str


@dataclass(frozen=True)
class TrainingRun:
    """Everything the Job is made of, resolved by the plan."""

    name: str
    namespace: str
    image: str
    command: Sequence[str]
    args: Sequence[str]
    hyperparameters: Mapping[str, Scalar]
    inputs: Sequence[TrainingInput]
    output: StorageLocation
    device: str
    allow_cpu_fallback: bool
    limits: JobLimits
    spec_digest: str


def training_job_name(name: str) -> str:
    """The one Job of TrainingJob ``name``."""
    return child_name(name, STEP_TRAIN)


def output_location(name: str, uri: str | None, workspace_claim: str) -> StorageLocation:
    """Where a run writes: ``spec.output.uri`` (a ``pvc://`` folder), by default
    ``pvc://<workspace>/trainingjobs/<name>``. Raises StorageUriError."""
    return output_folder(uri, workspace_claim, WORKSPACE_TRAINING_DIR, name)


def _volumes(run: TrainingRun) -> tuple[list[Volume], list[VolumeMount]]:
    """The inputs' folders read-only, the output folder writable."""
    inputs = [(item.location, f"{DATA_ROOT}/{item.name}", True) for item in run.inputs]
    return folder_mounts([*inputs, (run.output, OUTPUT_PATH, False)])


def training_args(run: TrainingRun) -> list[str]:
    """The algorithm's own arguments, then the run's: data, output, result, hyperparameters."""
    (first,) = run.inputs  # image classification reads one data set (checked by the plan)
    root = f"{DATA_ROOT}/{first.name}"
    return [
        *run.args,
        "--dataset-root",
        root,
        "--train-manifest",
        f"{root}/{first.location.relative_path(first.train_manifest)}",
        "--eval-manifest",
        f"{root}/{first.location.relative_path(first.eval_manifest)}",
        "--output",
        OUTPUT_PATH,
        "--log-file",
        f"{OUTPUT_PATH}/{LOG_FILE}",
        "--result",
        RESULT_PATH,
        *boot_arguments(run.hyperparameters),
    ]


def training_job(
    run: TrainingRun, owner: Mapping[str, Any], *, placement: Placement
) -> dict[str, Any]:
    """The batch/v1 Job that trains: see the module docstring."""
    labels = child_labels(TRAINING_JOB, run.name, **{STEP_LABEL: STEP_TRAIN})
    volumes, mounts = _volumes(run)
    container: dict[str, Any] = {
        "name": STEP_TRAIN,
        "image": run.image,
        "args": training_args(run),
        "env": [
            {"name": "KUBEARTS_DEVICE", "value": run.device},
            {"name": "KUBEARTS_ALLOW_CPU_FALLBACK", "value": str(run.allow_cpu_fallback).lower()},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "HOME", "value": "/tmp"},
        ],
        "workingDir": "/tmp",
    }
    if run.command:
        container["command"] = list(run.command)
    job = worker_job(
        TRAINING_JOB,
        owner,
        name=training_job_name(run.name),
        labels=labels,
        container=container,
        placement=placement,
        limits=run.limits,
        volumes=volumes,
        mounts=mounts,
    )
    job["metadata"]["annotations"] = {SPEC_DIGEST_ANNOTATION: run.spec_digest}
    return job
