"""The registration Job of a Model version (pure): copy, digest and sign into the registry.

Version ``<v>`` of Model ``<m>`` is registered by one Job, ``<m>-register-<v>``, running
the converter image's ``register`` command:

- the source folder (a training job's output, a conversion's output, an imported folder)
  mounted **read-only** at ``/mnt/source``;
- the model's registry folder, ``models/<m>`` in the workspace, **writable** at
  ``/mnt/registry``; the worker copies into a temporary sibling of ``<v>/`` and renames it,
  so a version folder is either complete or absent, and never overwritten.

A version removed from the spec and served by no InferenceService is deleted by
``<m>-remove-<v>`` (``unregister``), which refuses any folder that is not a registered
version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

from kubearts.builders.jobs import RESULT_PATH, JobLimits, worker_job
from kubearts.builders.meta import child_labels, child_name
from kubearts.builders.placement import Placement
from kubearts.constants import MODEL, STEP_LABEL, VERSION_LABEL
from kubearts.model_plan import Register
from kubearts.storage import StorageLocation, folder_mounts, workspace_location

__all__ = [
    "registration_job",
    "registration_job_name",
    "registry_location",
    "removal_job",
    "removal_job_name",
]

STEP_REGISTER: Final = "register"
STEP_REMOVE: Final = "remove"
SOURCE_PATH: Final = "/mnt/source"
REGISTRY_PATH: Final = "/mnt/registry"
#: Folder of the workspace claim holding the registry: ``models/<model>/<version>/``.
WORKSPACE_MODELS_DIR: Final = "models"
#: A SavedModel is copied through scratch space never; only the copy's folder grows.
SCRATCH_SIZE: Final = "256Mi"


def registry_location(workspace_claim: str, model: str) -> StorageLocation:
    """``pvc://<workspace>/models/<model>``: the folder of every version of ``model``."""
    return workspace_location(workspace_claim, WORKSPACE_MODELS_DIR, model)


def _slug(version: str) -> str:
    """A version as a name part: ``1.0.0-rc.1`` → ``1-0-0-rc-1`` (plus a short hash when
    lower-casing would merge two versions)."""
    slug = version.lower().replace(".", "-")
    if version != version.lower():
        slug += "-" + hashlib.sha256(version.encode()).hexdigest()[:6]
    return slug


def registration_job_name(model: str, version: str) -> str:
    """The Job that registers ``version`` of ``model``."""
    return child_name(model, f"{STEP_REGISTER}-{_slug(version)}")


def _registry_job(
    step: str,
    version: str,
    owner: Mapping[str, Any],
    *,
    image: str,
    args: list[str],
    folders: list[tuple[StorageLocation, str, bool]],
    placement: Placement,
    deadline_seconds: int,
) -> dict[str, Any]:
    """A converter-image Job of one version of the owner Model (``step``: register or
    remove), named ``<model>-<step>-<version>``."""
    model = str(owner["metadata"]["name"])
    volumes, mounts = folder_mounts(folders)
    container = {
        "name": step,
        "image": image,
        "args": [*args, "--result", RESULT_PATH],
        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}, {"name": "HOME", "value": "/tmp"}],
        "workingDir": "/tmp",
    }
    labels = child_labels(MODEL, model, **{STEP_LABEL: step, VERSION_LABEL: _slug(version)})
    return worker_job(
        MODEL,
        owner,
        name=child_name(model, f"{step}-{_slug(version)}"),
        labels=labels,
        container=container,
        placement=placement,
        limits=JobLimits(active_deadline_seconds=deadline_seconds, scratch_size=SCRATCH_SIZE),
        volumes=volumes,
        mounts=mounts,
    )


def registration_job(
    step: Register,
    owner: Mapping[str, Any],
    *,
    image: str,
    registry: StorageLocation,
    placement: Placement,
    deadline_seconds: int,
) -> dict[str, Any]:
    """The batch/v1 Job that registers one version: see the module docstring."""
    args = [
        "register",
        "--source",
        SOURCE_PATH,
        "--format",
        step.model_format,
        "--template",
        step.template,
        "--output",
        f"{REGISTRY_PATH}/{step.version}",
    ]
    return _registry_job(
        STEP_REGISTER,
        step.version,
        owner,
        image=image,
        args=args,
        folders=[(step.source, SOURCE_PATH, True), (registry, REGISTRY_PATH, False)],
        placement=placement,
        deadline_seconds=deadline_seconds,
    )


def removal_job_name(model: str, version: str) -> str:
    """The Job that deletes the files of ``version`` of ``model``."""
    return child_name(model, f"{STEP_REMOVE}-{_slug(version)}")


def removal_job(
    version: str,
    owner: Mapping[str, Any],
    *,
    image: str,
    registry: StorageLocation,
    placement: Placement,
    deadline_seconds: int,
) -> dict[str, Any]:
    """The batch/v1 Job that deletes one registered version's folder."""
    return _registry_job(
        STEP_REMOVE,
        version,
        owner,
        image=image,
        args=["unregister", "--target", f"{REGISTRY_PATH}/{version}"],
        folders=[(registry, REGISTRY_PATH, False)],
        placement=placement,
        deadline_seconds=deadline_seconds,
    )
