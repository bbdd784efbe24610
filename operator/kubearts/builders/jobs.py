"""The worker Job every kind runs (pure): one restricted container, bounded in time and space.

A kind's builder supplies what is its own — the container (image, args, env, mounts,
resources) and the volumes of its data — and :func:`worker_job` wraps it the same way for
every kind:

- a restricted pod (non-root, no privilege escalation, all capabilities dropped,
  RuntimeDefault seccomp) with no service-account token and no service links: workers
  never talk to the API server;
- a scratch ``emptyDir`` at ``/tmp`` (the image's HOME) with a ``sizeLimit``, so a worker
  cannot fill the node's disk;
- the result protocol of :mod:`kubearts.workloads`: the termination message path, with the
  log's tail as a fallback when the worker dies before writing its result;
- ``activeDeadlineSeconds`` (a Job that runs longer fails with ``DeadlineExceeded``),
  ``backoffLimit`` (0 by default: workers retry transfers themselves, and a failed run
  has a reason another identical run would not change) and an optional
  ``ttlSecondsAfterFinished``;
- placement (resources, node selector, tolerations) from the pool builder, labels that
  list the Job's pods with their owner, and a controller owner reference.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kubearts.builders.meta import owner_reference
from kubearts.builders.placement import Placement, place_pod
from kubearts.builders.security import container_security_context, pod_security_context
from kubearts.constants import GROUP, KindNames
from kubearts.storage import Volume, VolumeMount

__all__ = [
    "RESULT_PATH",
    "SCRATCH_PATH",
    "SPEC_DIGEST_ANNOTATION",
    "JobLimits",
    "spec_digest",
    "worker_job",
]

#: Where the worker writes its compact result; Kubernetes turns it into the termination message.
RESULT_PATH: Final = "/dev/termination-log"
#: Scratch space of every worker pod: an emptyDir, the image's HOME and TMPDIR.
SCRATCH_PATH: Final = "/tmp"
SCRATCH_VOLUME: Final = "scratch"
#: The digest of the spec a run's Job was created for: an edit after the start is seen
#: (and refused) rather than silently starting another run.
SPEC_DIGEST_ANNOTATION: Final = f"{GROUP}/spec-digest"


def spec_digest(spec: Mapping[str, Any]) -> str:
    """A short digest of an object's spec, stable across key order."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class JobLimits:
    """How long and how often a worker Job may run, and how much scratch it may use."""

    active_deadline_seconds: int
    scratch_size: str = "1Gi"
    backoff_limit: int = 0
    ttl_seconds_after_finished: int | None = None


def worker_job(
    kind: KindNames,
    owner: Mapping[str, Any],
    *,
    name: str,
    labels: Mapping[str, str],
    container: Mapping[str, Any],
    placement: Placement,
    limits: JobLimits,
    volumes: Sequence[Volume] = (),
    mounts: Sequence[VolumeMount] = (),
) -> dict[str, Any]:
    """A batch/v1 Job named ``name`` in the owner's namespace running ``container``.

    ``container`` holds what is the kind's own (name, image, command or args, env);
    ``mounts`` are added after the scratch mount, ``volumes`` after the scratch volume.
    """
    namespace = str((owner.get("metadata") or {}).get("namespace"))
    worker: dict[str, Any] = {
        **container,
        "resources": placement["resources"],
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_PATH, "readOnly": False},
            *mounts,
        ],
        "terminationMessagePath": RESULT_PATH,
        # The worker always writes its result; if it dies before that, the log's tail
        # still explains why.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [worker],
        "volumes": [
            {"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": limits.scratch_size}},
            *volumes,
        ],
    }
    place_pod(pod_spec, placement)
    job_spec: dict[str, Any] = {
        "backoffLimit": limits.backoff_limit,
        "activeDeadlineSeconds": limits.active_deadline_seconds,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }
    if limits.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = limits.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "ownerReferences": [owner_reference(kind, owner)],
        },
        "spec": job_spec,
    }
