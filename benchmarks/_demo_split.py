"""Where the time of a finished flow went (pure): worker pods, Kubernetes, the operator.

Input is what ``kubectl get -o json`` shows in a namespace where the flow ran: the
KubeArts objects by plural, their Jobs and Deployments (owned by them), ReplicaSets and
Pods. Three sums of intervals come out:

- **worker**: a container's run, ``startedAt`` → ``finishedAt`` of a Job's pods; for a
  serving pod, container start → the pod's ``Ready`` condition (loading the model);
- **Kubernetes**: Job created → its first container started, and its last container
  finished → the Job's ``completionTime`` (scheduling, pod set-up, the Job controller);
- **operator**: the operator's reaction — the later of an object's creation and its
  dependencies becoming ready/succeeded (or, for an object's second Job, the first one
  completing) → its Job's (or Deployment's) creation; the Job's completion (or the serving
  pod's readiness) → the object's ``Succeeded``/``Ready`` (or ``Failed``) condition; and a
  Subscription's creation → its ``Ready`` condition (a sync is the operator's work alone).

Timestamps in Kubernetes objects have a resolution of one second, so each interval is
accurate to about a second; negative ones (clock rounding) count as 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Obj = Mapping[str, Any]

#: Which bucket an interval is in.
WORKER, KUBERNETES, OPERATOR = "worker", "kubernetes", "operator"
#: Label the operator puts on a Model's Jobs: the version (``1.0.0`` → ``1-0-0``).
VERSION_LABEL = "kubearts.io/version"


@dataclass(frozen=True)
class Interval:
    bucket: str
    subject: str  # e.g. "trainingjobs/digits-mobilenet"
    what: str  # e.g. "dependencies ready → Job created"
    seconds: float


@dataclass
class Split:
    intervals: list[Interval] = field(default_factory=list)

    def total(self, bucket: str) -> float:
        return sum(i.seconds for i in self.intervals if i.bucket == bucket)

    @property
    def operator_share(self) -> float:
        """The operator's part of all accounted time, 0..1 (0 when nothing was counted)."""
        everything = sum(i.seconds for i in self.intervals)
        return self.total(OPERATOR) / everything if everything else 0.0

    def largest(self, bucket: str) -> Interval | None:
        chosen = [i for i in self.intervals if i.bucket == bucket]
        return max(chosen, key=lambda i: i.seconds) if chosen else None

    def add(self, bucket: str, subject: str, what: str, start: datetime | None, end: Any) -> None:
        """Count ``start`` → ``end`` when both are known (negative spans count as 0)."""
        if start is None or end is None:
            return
        seconds = max(0.0, (end - start).total_seconds())
        self.intervals.append(Interval(bucket, subject, what, seconds))


def timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (None for a missing value)."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def created(obj: Obj) -> datetime | None:
    return timestamp(obj.get("metadata", {}).get("creationTimestamp"))


def condition_time(obj: Obj, *types: str) -> datetime | None:
    """``lastTransitionTime`` of the first of ``types`` that is True."""
    conditions = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
    for kind in types:
        cond = conditions.get(kind)
        if cond and cond.get("status") == "True":
            return timestamp(cond.get("lastTransitionTime"))
    return None


def done_at(obj: Obj, version: str | None = None) -> datetime | None:
    """When an object became usable: a Model version's ``registrationTime``, else its
    ``Succeeded`` condition, else its ``Ready`` condition."""
    if version is not None:
        for entry in (obj.get("status") or {}).get("versions") or []:
            if entry.get("version") == version:
                return timestamp(entry.get("registrationTime"))
        return None
    return condition_time(obj, "Succeeded", "Ready")


def finished_at(obj: Obj, version: str | None = None) -> datetime | None:
    """When the operator reported an object's own work done: as :func:`done_at`, or
    its ``Failed`` condition (a failed run is reported too, though nothing waits on it)."""
    return done_at(obj, version) or (None if version else condition_time(obj, "Failed"))


def slug(version: str) -> str:
    """A Model version as the operator writes it in names and labels (its lower-case
    form with dots as dashes; a hash suffix, when one was added, is ignored)."""
    return version.lower().replace(".", "-")


# A dependency: (plural, name, Model version or None).
Dependency = tuple[str, str, str | None]


def dependencies(plural: str, spec: Obj, version: str | None = None) -> list[Dependency]:
    """What an object (for a Model: one version of it) waits for before its first Job."""
    if plural == "trainingjobs":
        found: list[Dependency] = [
            ("subscriptions", (spec.get("algorithm") or {}).get("subscription", ""), None)
        ]
        return found + [("datasets", i.get("dataset", ""), None) for i in spec.get("inputs") or []]
    if plural == "modelconversions":
        return _source_dependencies(spec.get("source") or {})
    if plural == "models":
        entries = [v for v in spec.get("versions") or [] if slug(str(v.get("version"))) == version]
        return [d for v in entries for d in _source_dependencies(v.get("source") or {})]
    if plural == "inferenceservices":
        model = spec.get("model") or {}
        return [("models", model.get("name", ""), model.get("version"))]
    return []


def _source_dependencies(source: Obj) -> list[Dependency]:
    found: list[Dependency] = []
    if source.get("trainingJob"):
        found.append(("trainingjobs", source["trainingJob"], None))
    if source.get("conversion"):
        found.append(("modelconversions", source["conversion"], None))
    if source.get("model"):
        found.append(("models", source["model"], source.get("version")))
    return found


class _Flow:
    """Objects indexed by uid and by (plural, name), with the children of each."""

    def __init__(self, objects: Mapping[str, Sequence[Obj]], workloads: Iterable[Obj]) -> None:
        self.by_key = {(p, o["metadata"]["name"]): o for p, items in objects.items() for o in items}
        self.plural_of = {o["metadata"]["uid"]: p for (p, _), o in self.by_key.items()}
        self.children: dict[str, list[Obj]] = defaultdict(list)
        for child in workloads:
            for owner in owner_uids(child):
                self.children[owner].append(child)

    def ready(self, deps: Sequence[Dependency]) -> datetime | bool | None:
        """When the last dependency became ready; False when one never did."""
        times = []
        for plural, name, version in deps:
            obj = self.by_key.get((plural, name))
            when = done_at(obj, version) if obj is not None else None
            if when is None:
                return False
            times.append(when)
        return max(times) if times else None


def owner_uids(obj: Obj) -> list[str]:
    return [ref["uid"] for ref in obj.get("metadata", {}).get("ownerReferences") or []]


def compute(
    objects: Mapping[str, Sequence[Obj]],
    jobs: Sequence[Obj],
    pods: Sequence[Obj],
    deployments: Sequence[Obj] = (),
    replicasets: Sequence[Obj] = (),
) -> Split:
    """The split of a finished flow (see the module docstring)."""
    # Items of a list carry no kind: mark which children are which.
    workloads = [{**j, "kind": "Job"} for j in jobs]
    workloads += [{**d, "kind": "Deployment"} for d in deployments]
    flow = _Flow(objects, workloads)
    pods_of = _pods_by_workload(pods, replicasets)
    split = Split()
    for (plural, name), obj in sorted(flow.by_key.items()):
        subject = f"{plural}/{name}"
        if plural == "subscriptions":
            split.add(OPERATOR, subject, "created → Ready", created(obj), done_at(obj))
            continue
        children_of = flow.children.get(obj["metadata"]["uid"], [])
        for group, children in _groups(children_of, by_version=plural == "models"):
            deps = dependencies(plural, obj.get("spec") or {}, group)
            ready = flow.ready(deps)
            if ready is False:
                continue  # a dependency never became ready: nothing to attribute
            trigger = max(t for t in (created(obj), ready) if isinstance(t, datetime))
            finished = finished_at(obj, _version_of(obj, group) if group else None)
            _account(split, subject, trigger, children, pods_of, finished)
    return split


def _groups(children: Sequence[Obj], *, by_version: bool) -> list[tuple[str | None, list[Obj]]]:
    """Children in creation order; a Model's grouped by version label (each version's Jobs
    wait for that version's source), any other's in one group (each Job waits for the
    previous one, as a Dataset's publish waits for its ingest)."""
    grouped: dict[str | None, list[Obj]] = defaultdict(list)
    for child in sorted(children, key=lambda c: created(c) or datetime.min.astimezone()):
        labels = child["metadata"].get("labels") or {}
        grouped[labels.get(VERSION_LABEL) if by_version else None].append(child)
    return list(grouped.items())


def _version_of(model: Obj, label: str) -> str | None:
    for entry in (model.get("spec") or {}).get("versions") or []:
        if slug(str(entry.get("version"))) == label:
            return str(entry.get("version"))
    return None


def _account(
    split: Split,
    subject: str,
    trigger: datetime,
    children: Sequence[Obj],
    pods_of: Mapping[str, Sequence[Obj]],
    finished: datetime | None,
) -> None:
    """One object's children in order: each waits for the previous one to finish."""
    previous_end: datetime | None = None
    for child in children:
        kind = child["kind"]
        start, after = trigger, "ready"
        if previous_end is not None:
            start, after = max(trigger, previous_end), "previous Job done"
        split.add(OPERATOR, subject, f"{after} → {kind} created", start, created(child))
        pods = pods_of.get(child["metadata"]["uid"], [])
        if kind == "Deployment":
            previous_end = _serving(split, subject, pods)
        else:
            previous_end = _job(split, subject, child, pods)
    split.add(OPERATOR, subject, "done → condition", previous_end, finished)


def _job(split: Split, subject: str, job: Obj, pods: Sequence[Obj]) -> datetime | None:
    """Worker and Kubernetes time of one Job; returns its completion time."""
    runs = [s for pod in pods for s in _terminated(pod)]
    status = job.get("status") or {}
    end = timestamp(status.get("completionTime")) or condition_time(job, "Failed", "Complete")
    for started, finished in runs:
        split.add(WORKER, subject, "container run", started, finished)
    if runs:
        split.add(KUBERNETES, subject, "Job → container start", created(job), min(runs)[0])
        split.add(KUBERNETES, subject, "container end → Job done", max(r[1] for r in runs), end)
    return end


def _serving(split: Split, subject: str, pods: Sequence[Obj]) -> datetime | None:
    """Worker time of serving pods (start → Ready); returns when the last became Ready."""
    ready_times = []
    for pod in pods:
        ready = condition_time(pod, "Ready")
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            started = timestamp(((status.get("state") or {}).get("running") or {}).get("startedAt"))
            split.add(WORKER, subject, "serving pod start → Ready", started, ready)
            split.add(KUBERNETES, subject, "pod created → container start", created(pod), started)
        if ready is not None:
            ready_times.append(ready)
    return max(ready_times) if ready_times else None


def _terminated(pod: Obj) -> list[tuple[datetime, datetime]]:
    runs = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = (status.get("state") or {}).get("terminated") or {}
        started, finished = timestamp(state.get("startedAt")), timestamp(state.get("finishedAt"))
        if started is not None and finished is not None:
            runs.append((started, finished))
    return runs


def _pods_by_workload(pods: Sequence[Obj], replicasets: Sequence[Obj]) -> dict[str, list[Obj]]:
    """Pods by the uid of their Job, or of the Deployment owning their ReplicaSet."""
    deployment_of = {rs["metadata"]["uid"]: owner_uids(rs) for rs in replicasets}
    found: dict[str, list[Obj]] = defaultdict(list)
    for pod in pods:
        for owner in owner_uids(pod):
            for uid in deployment_of.get(owner, [owner]):
                found[uid].append(pod)
    return found
