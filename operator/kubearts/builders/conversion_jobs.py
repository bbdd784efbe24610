"""The Job of a ModelConversion (pure): the converter image on the source model.

A ModelConversion runs one Job, ``<conversion>-convert``:

- the source folder mounted **read-only** at ``/mnt/source`` (``--source``, with the file
  inside it for a frozen graph named by ``uri``);
- the evaluation split to verify on, read-only at ``/mnt/data`` (``--verify-root`` and
  ``--verify-manifest``), when there is one;
- the output folder **writable** at ``/mnt/output`` (``--output``), the log beside it;
- ``spec.options`` as flags, one documented table (:data:`OPTION_FLAGS`): the ONNX
  templates get ``--opset`` and the input layout, the Ascend template ATC's options
  (``--soc-version``, ``--precision``); both get the input shape and output nodes when set;
- ``spec.verify`` as ``--verify-samples`` and ``--verify-tolerance``.

The Ascend template runs in the CANN converter image the chart names, on the pool the
operator's configuration gives it (ATC needs the toolkit, not a chip); the ONNX templates
in the converter image on the cpu pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kubearts.builders.jobs import RESULT_PATH, SPEC_DIGEST_ANNOTATION, JobLimits, worker_job
from kubearts.builders.meta import child_labels, child_name
from kubearts.builders.placement import Placement
from kubearts.constants import MODEL_CONVERSION, STEP_LABEL
from kubearts.storage import (
    StorageLocation,
    folder_mounts,
    output_folder,
)

__all__ = [
    "LOG_FILE",
    "OPTION_FLAGS",
    "ConversionRun",
    "conversion_job",
    "conversion_job_name",
    "converter_args",
    "output_location",
]

STEP_CONVERT: Final = "convert"
SOURCE_PATH: Final = "/mnt/source"
DATA_PATH: Final = "/mnt/data"
OUTPUT_PATH: Final = "/mnt/output"
#: Folder of the workspace claim holding conversions, one sub-folder per ModelConversion.
WORKSPACE_CONVERSION_DIR: Final = "modelconversions"
#: The converter's log, kept next to the output (``status.logs.uri``).
LOG_FILE: Final = "logs/convert.log"
SCRATCH_SIZE: Final = "4Gi"

#: ``spec.options`` key → converter flag, and the templates it applies to ("onnx", "om").
OPTION_FLAGS: Final[Mapping[str, tuple[str, frozenset[str]]]] = {
    "inputShape": ("--input-shape", frozenset({"onnx", "om"})),
    "inputFormat": ("--input-format", frozenset({"onnx", "om"})),
    "outputNodes": ("--output-nodes", frozenset({"onnx", "om"})),
    "precision": ("--precision", frozenset({"om"})),
    "socVersion": ("--soc-version", frozenset({"om"})),
    "opset": ("--opset", frozenset({"onnx"})),
}


@dataclass(frozen=True)
class ConversionRun:
    """Everything the Job is made of, resolved by the plan and the configuration."""

    name: str
    image: str
    template: str
    output_format: str
    options: Mapping[str, Any]
    verify: Mapping[str, Any]
    source: StorageLocation
    source_file: str
    output: StorageLocation
    limits: JobLimits
    spec_digest: str
    verify_data: StorageLocation | None = None
    verify_manifest: str = ""
    """URI of the eval list, inside ``verify_data``."""


def conversion_job_name(name: str) -> str:
    """The one Job of ModelConversion ``name``."""
    return child_name(name, STEP_CONVERT)


def output_location(name: str, uri: str | None, workspace_claim: str) -> StorageLocation:
    """``spec.output.uri`` (a ``pvc://`` folder), by default
    ``pvc://<workspace>/modelconversions/<name>``. Raises StorageUriError."""
    return output_folder(uri, workspace_claim, WORKSPACE_CONVERSION_DIR, name)


def converter_args(run: ConversionRun) -> list[str]:
    """``convert`` and its flags (images/converter README)."""
    source = f"{SOURCE_PATH}/{run.source_file}" if run.source_file else SOURCE_PATH
    args = ["convert", "--template", run.template, "--source", source, "--output", OUTPUT_PATH]
    for key, (flag, formats) in OPTION_FLAGS.items():
        value = run.options.get(key)
        if value is not None and value != "" and run.output_format in formats:
            args += [flag, str(value)]
    if run.output_format == "onnx":
        args += [
            "--verify-samples",
            str(run.verify.get("samples", 8)),
            "--verify-tolerance",
            repr(float(run.verify.get("tolerance", 1e-4))),
        ]
        if run.verify_data is not None:
            manifest = f"{DATA_PATH}/{run.verify_data.relative_path(run.verify_manifest)}"
            args += ["--verify-root", DATA_PATH, "--verify-manifest", manifest]
    return [*args, "--result", RESULT_PATH, "--log-file", f"{OUTPUT_PATH}/{LOG_FILE}"]


def conversion_job(
    run: ConversionRun, owner: Mapping[str, Any], *, placement: Placement
) -> dict[str, Any]:
    """The batch/v1 Job that converts: see the module docstring."""
    folders = [(run.source, SOURCE_PATH, True), (run.output, OUTPUT_PATH, False)]
    if run.verify_data is not None:
        folders.append((run.verify_data, DATA_PATH, True))
    volumes, mounts = folder_mounts(folders)
    container = {
        "name": STEP_CONVERT,
        "image": run.image,
        "args": converter_args(run),
        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}, {"name": "HOME", "value": "/tmp"}],
        "workingDir": "/tmp",
    }
    job = worker_job(
        MODEL_CONVERSION,
        owner,
        name=conversion_job_name(run.name),
        labels=child_labels(MODEL_CONVERSION, run.name, **{STEP_LABEL: STEP_CONVERT}),
        container=container,
        placement=placement,
        limits=run.limits,
        volumes=volumes,
        mounts=mounts,
    )
    job["metadata"]["annotations"] = {SPEC_DIGEST_ANNOTATION: run.spec_digest}
    return job
