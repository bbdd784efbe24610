"""A Dataset's storage (kubearts.dataset_storage and its use in kubearts.dataset_plan): one
folder per Dataset, published data judged by what the status recorded rather than by Jobs
that may be gone, and a deletion that always ends."""

from __future__ import annotations

from typing import Any

import pytest

from kubearts.dataset_plan import Observed, decide
from kubearts.dataset_spec import DatasetPlan, plan_dataset
from kubearts.dataset_storage import (
    ATTEMPT_GRACE_SECONDS,
    CLEANUP_ATTEMPTS,
    StorageUse,
    cleanup_step,
    cleanup_time_limit,
    holders,
    overlaps,
    storage_conflict,
    storage_scope,
    storage_use,
)
from kubearts.workloads import JobView, job_state

WORKSPACE = "kubearts-workspace"


def plan(name: str = "digits", namespace: str = "ml", **spec: Any) -> DatasetPlan:
    full = {"source": {"uri": "https://x/digits.tgz"}, **spec}
    return plan_dataset(name, namespace, full, workspace_pvc=WORKSPACE)


def use(p: DatasetPlan, created: str, location: str | None = None) -> StorageUse:
    return storage_use(p, {"location": location} if location else {}, created)


def ready(step: Any) -> Any:
    return next(u for u in step.outcome.updates if u.type == "Ready")


# --- one folder, one Dataset -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other", "expected"),
    [
        pytest.param("datasets/a", "datasets/a", True, id="same"),
        pytest.param("datasets/a", "datasets/a/b", True, id="inside"),
        pytest.param("datasets/a/b", "datasets/a", True, id="around"),
        pytest.param("datasets/a", "datasets/ab", False, id="sibling-prefix"),
        pytest.param("datasets/a", "models/a", False, id="elsewhere"),
    ],
)
def test_folders_overlap_when_one_holds_the_other(one: str, other: str, expected: bool) -> None:
    assert overlaps(one, other) is expected


def test_claims_are_scoped_by_namespace_and_buckets_are_not() -> None:
    assert storage_scope(plan()) == ("ml", f"pvc://{WORKSPACE}")
    s3 = plan(storage={"uri": "s3://bucket/datasets/digits"})
    assert storage_scope(s3) == ("", "s3://bucket")
    assert use(s3, "t").path == "datasets/digits"


def test_a_later_dataset_in_the_same_folder_is_refused_naming_the_first() -> None:
    first = plan("digits", storage={"uri": f"pvc://{WORKSPACE}/datasets/shared"})
    second = plan("mnist", storage={"uri": f"pvc://{WORKSPACE}/datasets/shared"})
    uses = [use(first, "2026-01-01T00:00:00Z"), use(second, "2026-01-02T00:00:00Z")]
    message = storage_conflict(uses[1], uses)
    assert message is not None
    assert message.startswith("spec.storage.uri: ")
    assert "Dataset ml/digits" in message
    assert "a folder of its own" in message
    assert storage_conflict(uses[0], uses) is None


def test_a_dataset_whose_default_folder_another_names_keeps_it() -> None:
    workspace_default = plan("digits")  # datasets/digits on the workspace claim
    named = plan("copy", storage={"uri": f"pvc://{WORKSPACE}/datasets"})  # holds datasets/digits
    uses = [use(workspace_default, "2026-01-02T00:00:00Z"), use(named, "2026-01-01T00:00:00Z")]
    # The older Dataset wins, and the folder it names overlaps the other's.
    assert storage_conflict(uses[0], uses) is not None
    assert storage_conflict(uses[1], uses) is None


def test_a_dataset_that_stored_its_data_there_comes_first_whatever_its_age() -> None:
    """An older Dataset edited onto a newer one's folder does not take it over."""
    newer = plan("newer", storage={"uri": f"pvc://{WORKSPACE}/datasets/x"})
    older = plan("older", storage={"uri": f"pvc://{WORKSPACE}/datasets/x"})
    holding = use(newer, "2026-01-02T00:00:00Z", location=newer.target.uri)
    moved = use(older, "2026-01-01T00:00:00Z")
    assert storage_conflict(moved, [holding, moved]) is not None
    assert storage_conflict(holding, [holding, moved]) is None


def test_datasets_in_other_folders_do_not_conflict() -> None:
    uses = [use(plan("a"), "2026-01-01T00:00:00Z"), use(plan("b"), "2026-01-02T00:00:00Z")]
    assert storage_conflict(uses[1], uses) is None


def test_a_refused_dataset_waits_with_storage_in_use_and_starts_nothing() -> None:
    first = plan("digits", storage={"uri": f"pvc://{WORKSPACE}/datasets/shared"})
    second = plan("mnist", storage={"uri": f"pvc://{WORKSPACE}/datasets/shared"})
    uses = (use(first, "2026-01-01T00:00:00Z"), use(second, "2026-01-02T00:00:00Z"))
    step = decide(Observed(second, {}, storage=uses, created="2026-01-02T00:00:00Z"))
    assert not step.starts_jobs
    assert step.wait is not None
    assert (ready(step).status, ready(step).reason) == ("False", "StorageInUse")
    assert "ml/digits" in ready(step).message
    claims = frozenset({WORKSPACE})
    created = "2026-01-01T00:00:00Z"
    assert decide(Observed(first, {}, claims=claims, storage=uses, created=created)).start_ingest


def test_removing_a_folder_another_dataset_stores_in_is_not_done() -> None:
    mine = plan("a", storage={"uri": f"pvc://{WORKSPACE}/datasets/x"})
    theirs = plan("b", storage={"uri": f"pvc://{WORKSPACE}/datasets/x/inner"})
    me = use(mine, "t1", location=mine.target.uri)
    assert holders(me, [me, use(theirs, "t2", location=theirs.target.uri)]) == ["ml/b"]
    assert holders(me, [me, use(theirs, "t2")]) == []  # it never stored anything there


# --- published data, judged by the status --------------------------------------------------


INGESTED = {
    "location": f"pvc://{WORKSPACE}/datasets/digits",
    "digest": "sha256:abc",
    "sampleCount": 10,
    "classCount": 2,
    "classes": ["0", "1"],
}
PUBLISHED = [{"name": "v1", "published": True, "trainRatio": 0.8, "seed": 0, "stratified": True}]


def test_data_recorded_in_the_status_is_not_read_again_when_its_jobs_are_gone() -> None:
    p = plan(versions=[{"name": "v1", "trainRatio": 0.8}])
    status = {**INGESTED, "dataKey": p.data_key, "versions": PUBLISHED}
    step = decide(Observed(p, status))
    assert not step.starts_jobs
    assert step.outcome.phase == "Ready"
    assert (ready(step).status, ready(step).reason) == ("True", "Published")
    assert step.outcome.fields["dataKey"] == p.data_key


def test_changed_data_after_publishing_is_refused_even_without_jobs() -> None:
    before = plan()
    after = plan(
        source={"uri": "https://x/other.tgz"}, versions=[{"name": "v1", "trainRatio": 0.8}]
    )
    status = {**INGESTED, "dataKey": before.data_key, "versions": PUBLISHED, "phase": "Ready"}
    step = decide(Observed(after, status))
    assert not step.starts_jobs
    valid = next(u for u in step.outcome.updates if u.type == "VersionsValid")
    assert (valid.status, valid.reason) == ("False", "DataImmutable")


def test_changed_data_before_any_version_is_read_again() -> None:
    status = {**INGESTED, "dataKey": "another-key"}
    assert decide(Observed(plan(), status)).start_ingest


def test_a_published_version_records_the_data_it_was_split_from() -> None:
    p = plan(versions=[{"name": "v1", "trainRatio": 0.8}])
    publish = {
        "metadata": {
            "name": p.publish_job_name(p.versions[0]),
            "labels": {"kubearts.io/step": "publish", "kubearts.io/data-key": p.data_key},
        },
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }
    record = {
        "status": "Succeeded",
        "name": "v1",
        "trainRatio": 0.8,
        "datasetDigest": "sha256:abc",
        "manifests": {"train": ".kubearts/versions/v1/train.jsonl"},
    }
    status = {**INGESTED, "dataKey": p.data_key}
    view = JobView(publish, job_state(publish), result=record)
    step = decide(Observed(p, status, [view]))
    (entry,) = step.outcome.fields["versions"]
    assert entry["datasetDigest"] == "sha256:abc"


# --- deletion that ends ------------------------------------------------------------------------


LOCATION = f"pvc://{WORKSPACE}/datasets/digits"


def cleanup(n: int, *conditions: str, result: dict[str, Any] | None = None) -> JobView:
    job = {
        "metadata": {"name": f"digits-cleanup-{n}", "labels": {"kubearts.io/step": "cleanup"}},
        "spec": {"activeDeadlineSeconds": 60},
        "status": {
            "conditions": [
                {"type": c, "status": "True", "reason": "DeadlineExceeded"} for c in conditions
            ]
        },
    }
    return JobView(job, job_state(job), result=result)


DEADLINE = 60


def step(
    jobs: list[JobView],
    elapsed: float = 0.0,
    blockers: tuple[str, ...] = (),
    age: float = 1.0,
) -> Any:
    aged = [(job, age) for job in jobs]
    return cleanup_step(
        LOCATION, aged, blockers=blockers, elapsed=elapsed, deadline_seconds=DEADLINE
    )


def test_the_first_attempt_starts_once_the_other_pods_are_gone() -> None:
    assert step([], blockers=("digits-ingest-1-x",)).wait is not None
    assert step([]).start == 1


def test_a_failed_attempt_is_followed_by_the_next() -> None:
    assert step([cleanup(1, "Failed")]).start == 2


def test_a_running_attempt_is_waited_for() -> None:
    assert step([cleanup(1, "Failed"), cleanup(2)]).wait is not None


def test_a_successful_attempt_ends_the_cleanup() -> None:
    done = cleanup(1, "Complete", result={"status": "Succeeded", "message": "removed 3 files"})
    assert step([done]).done == "removed 3 files"


def test_after_the_last_failed_attempt_the_dataset_is_released_naming_the_folder() -> None:
    failed = [cleanup(n, "Failed") for n in range(1, CLEANUP_ATTEMPTS + 1)]
    result = step(failed)
    assert (result.start, result.wait) == (None, None)
    assert result.gave_up is not None
    assert LOCATION in result.gave_up
    assert "DeadlineExceeded" in result.gave_up
    assert "remove the folder by hand" in result.gave_up


def test_an_attempt_running_past_its_deadline_counts_as_failed() -> None:
    """Kubernetes 1.20 never fails a Job none of whose pods could be created: the
    operator's own clock ends the attempt."""
    assert step([cleanup(1)], age=DEADLINE + ATTEMPT_GRACE_SECONDS + 1).start == 2
    overdue = [cleanup(n) for n in range(1, CLEANUP_ATTEMPTS + 1)]
    result = step(overdue, age=DEADLINE + ATTEMPT_GRACE_SECONDS + 1)
    assert result.gave_up is not None
    assert "did not finish in time" in result.gave_up


def test_a_cleanup_past_its_time_limit_is_released_even_with_a_job_running() -> None:
    result = step([cleanup(1)], elapsed=cleanup_time_limit(DEADLINE) + 1)
    assert result.gave_up is not None
    assert LOCATION in result.gave_up
