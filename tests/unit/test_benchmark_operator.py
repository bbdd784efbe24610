"""The pure parts of ``benchmarks/operator_overhead.py``: percentiles, the demo flow's time split
(``benchmarks/_demo_split.py``) on a synthetic flow with known answers, and the table."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load_benchmark() -> tuple[ModuleType, ModuleType, ModuleType]:
    """benchmarks/operator_overhead.py with its two helper modules; benchmarks/ is on
    sys.path only meanwhile (its trainer.py and predictor.py must not shadow anything)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(
            "benchmark_operator", BENCHMARKS / "operator_overhead.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module, sys.modules["_demo_split"], sys.modules["_operator_process"]


bench, split_mod, process_mod = _load_benchmark()
percentile = process_mod.percentile

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- percentiles -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        pytest.param(list(range(1, 21)), 0.99, 20, id="p99-of-20-is-the-largest"),
        pytest.param(list(range(1, 101)), 0.99, 99, id="p99-of-100-is-not-the-largest"),
        pytest.param(list(range(1, 21)), 0.5, 10, id="p50-nearest-rank"),
        pytest.param([5.0, 1.0, 3.0], 0.5, 3.0, id="unsorted-input"),
        pytest.param(list(range(1, 101)), 0.07, 7, id="float-product-above-the-rank"),
        pytest.param([4.0, 2.0], 0.0, 2.0, id="p0-is-the-smallest"),
        pytest.param([4.0, 2.0], 1.0, 4.0, id="p100-is-the-largest"),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float) -> None:
    assert percentile(values, fraction) == expected


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


# --- the demo split: a synthetic offline flow ------------------------------------------------


def meta(name: str, uid: str, created: float, owner: str | None = None, **labels: str) -> dict:
    data: dict[str, Any] = {"name": name, "uid": uid, "creationTimestamp": at(created)}
    if owner:
        data["ownerReferences"] = [{"uid": owner}]
    if labels:
        data["labels"] = labels
    return data


def cond(kind: str, when: float, status: str = "True") -> dict[str, str]:
    return {"type": kind, "status": status, "lastTransitionTime": at(when)}


def resource(name: str, uid: str, spec: dict, conditions: list, **status: Any) -> dict:
    return {
        "metadata": meta(name, uid, 0),
        "spec": spec,
        "status": {"conditions": conditions, **status},
    }


def job(name: str, owner: str, created: float, completed: float, **labels: str) -> dict:
    return {  # as a list's item: no kind
        "metadata": meta(name, f"uid-{name}", created, owner, **labels),
        "status": {"completionTime": at(completed), "succeeded": 1},
    }


def job_pod(job_name: str, started: float, finished: float) -> dict:
    state = {"terminated": {"startedAt": at(started), "finishedAt": at(finished)}}
    return {
        "metadata": meta(f"{job_name}-pod", f"uid-{job_name}-pod", started, f"uid-{job_name}"),
        "status": {"containerStatuses": [{"state": state}]},
    }


def flow() -> dict[str, Any]:
    """The offline flow applied at once at t=0, with each reaction known (seconds):

    operator: subscription 2; dataset 1 + 1 + 2; training 2 + 1; conversion 1 + 2;
    model 2 + 1 (1.0.0) and 1 + 2 (1.1.0); service 1 + 1 → 20.
    worker: 20 + 10 + 100 + 20 + 4 + 4 + 10 = 168. Kubernetes: 9 + 6 + 3 + 5 + 1 = 24.
    """
    model_spec = {
        "versions": [
            {"version": "1.0.0", "source": {"trainingJob": "train"}},
            {"version": "1.1.0", "source": {"conversion": "onnx"}},
        ]
    }
    objects = {
        "subscriptions": [resource("algo", "s", {}, [cond("Ready", 2)])],
        "datasets": [resource("data", "d", {}, [cond("Ready", 43)])],
        "trainingjobs": [
            resource(
                "train",
                "t",
                {"algorithm": {"subscription": "algo"}, "inputs": [{"dataset": "data"}]},
                [cond("Ready", 152), cond("Succeeded", 152)],
            )
        ],
        "modelconversions": [
            resource("onnx", "c", {"source": {"trainingJob": "train"}}, [cond("Succeeded", 178)])
        ],
        "models": [
            resource(
                "m",
                "m",
                model_spec,
                [cond("Ready", 162)],
                versions=[
                    {"version": "1.0.0", "registrationTime": at(162)},
                    {"version": "1.1.0", "registrationTime": at(187)},
                ],
            )
        ],
        "inferenceservices": [
            resource("svc", "i", {"model": {"name": "m", "version": "1.1.0"}}, [cond("Ready", 201)])
        ],
    }
    version = split_mod.VERSION_LABEL
    jobs = [
        job("ingest", "d", 1, 27),
        job("publish", "d", 28, 41, **{version: "v1"}),  # a Dataset's Jobs run in turn
        job("train-train", "t", 45, 151),
        job("onnx-convert", "c", 153, 176),
        job("m-1-0-0", "m", 154, 161, **{version: "1-0-0"}),
        job("m-1-1-0", "m", 179, 185, **{version: "1-1-0"}),
    ]
    pods = [
        job_pod("ingest", 5, 25),
        job_pod("publish", 30, 40),
        job_pod("train-train", 50, 150),
        job_pod("onnx-convert", 155, 175),
        job_pod("m-1-0-0", 156, 160),
        job_pod("m-1-1-0", 180, 184),
    ]
    serving = {
        "metadata": meta("svc-pod", "uid-svc-pod", 189, "uid-rs"),
        "status": {
            "conditions": [cond("Ready", 200)],
            "containerStatuses": [{"state": {"running": {"startedAt": at(190)}}}],
        },
    }
    deployment = {"metadata": meta("svc", "uid-deploy", 188, "i")}
    replicaset = {"metadata": meta("svc-rs", "uid-rs", 188, "uid-deploy")}
    return {
        "objects": objects,
        "jobs": jobs,
        "pods": [*pods, serving],
        "deployments": [deployment],
        "replicasets": [replicaset],
    }


def compute(data: dict[str, Any]) -> split_mod.Split:
    return split_mod.compute(
        data["objects"], data["jobs"], data["pods"], data["deployments"], data["replicasets"]
    )


def test_the_flow_splits_into_worker_kubernetes_and_operator_time() -> None:
    split = compute(flow())
    assert split.total(split_mod.WORKER) == 168
    assert split.total(split_mod.KUBERNETES) == 24
    assert split.total(split_mod.OPERATOR) == 20
    assert split.operator_share == pytest.approx(20 / 212)


def per_subject(split: split_mod.Split, bucket: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for interval in split.intervals:
        if interval.bucket == bucket:
            found[interval.subject] = found.get(interval.subject, 0) + interval.seconds
    return found


def test_each_object_is_charged_its_own_reactions() -> None:
    assert per_subject(compute(flow()), split_mod.OPERATOR) == {
        "subscriptions/algo": 2,
        "datasets/data": 4,
        "trainingjobs/train": 3,  # counted from the Dataset's Ready (43), not from t=0
        "modelconversions/onnx": 3,
        "models/m": 6,  # each version from its own source's completion
        "inferenceservices/svc": 2,  # from version 1.1.0's registration, not the Model's Ready
    }


def test_an_object_created_after_its_dependencies_is_timed_from_its_creation() -> None:
    data = flow()
    (training,) = data["objects"]["trainingjobs"]
    training["metadata"]["creationTimestamp"] = at(44)
    charged = per_subject(compute(data), split_mod.OPERATOR)["trainingjobs/train"]
    assert charged == 1 + 1  # 44 → Job at 45, completion 151 → Succeeded 152


def test_a_failed_run_is_charged_its_report_of_the_failure() -> None:
    data = flow()
    data["objects"]["trainingjobs"][0]["status"]["conditions"] = [
        cond("Ready", 151, "False"),
        cond("Failed", 155),
    ]
    charged = per_subject(compute(data), split_mod.OPERATOR)["trainingjobs/train"]
    assert charged == 2 + 4  # Job at 45 for Ready 43; completion 151 → Failed 155


def test_the_serving_deployment_and_its_pod_are_counted() -> None:
    serving = [i for i in compute(flow()).intervals if i.subject == "inferenceservices/svc"]
    assert [(i.bucket, i.what, i.seconds) for i in serving] == [
        ("operator", "ready → Deployment created", 1),
        ("worker", "serving pod start → Ready", 10),
        ("kubernetes", "pod created → container start", 1),
        ("operator", "done → condition", 1),
    ]


def test_a_dependency_that_never_became_ready_charges_nothing() -> None:
    data = flow()
    data["objects"]["datasets"][0]["status"]["conditions"] = [cond("Ready", 43, "False")]
    assert "trainingjobs/train" not in per_subject(compute(data), split_mod.OPERATOR)


def test_clock_rounding_never_makes_a_negative_interval() -> None:
    data = flow()
    data["jobs"][2]["metadata"]["creationTimestamp"] = at(42)  # before the Dataset's Ready
    intervals = compute(data).intervals
    assert min(i.seconds for i in intervals) == 0


def test_the_largest_operator_interval_is_named() -> None:
    data = flow()
    data["objects"]["trainingjobs"][0]["status"]["conditions"][1] = cond("Succeeded", 170)
    largest = compute(data).largest(split_mod.OPERATOR)
    assert largest is not None
    assert (largest.subject, largest.what, largest.seconds) == (
        "trainingjobs/train",
        "done → condition",
        19,
    )


def test_nothing_counted_is_a_zero_share() -> None:
    assert split_mod.compute({}, [], []).operator_share == 0.0


# --- rows and the table ----------------------------------------------------------------------


def test_the_table_aligns_columns_under_a_header_and_says_pass_or_miss() -> None:
    rows = [
        bench.Row("short", "1 s", "≤ 2 s", True),
        bench.Row("a much longer figure", "3 s", "≤ 2 s", False),
        bench.Row("no target", "5 MiB"),
    ]
    lines = bench.format_table(rows).splitlines()
    assert lines[0].split() == ["figure", "measured", "target", "result"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].endswith("pass")
    assert lines[3].endswith("MISS")
    assert lines[4].endswith("5 MiB")  # no trailing blanks without a target
    column = lines[0].index("measured")
    assert [line[column : column + 3] for line in lines[2:]] == ["1 s", "3 s", "5 M"]


def test_the_demo_rows_give_the_split_and_judge_the_share() -> None:
    rows = bench.split_rows(compute(flow()), "kubearts-demo")
    assert rows[0].measured == "worker pods 168 s, Kubernetes 24 s, operator 20 s"
    assert rows[1].measured.startswith("9.4%")
    assert rows[1].passed is False


def test_a_namespace_without_a_flow_says_so_without_a_verdict() -> None:
    (row,) = bench.split_rows(split_mod.compute({}, [], []), "empty")
    assert row.measured == "nothing to count in empty"
    assert row.passed is None


def test_a_missing_demo_namespace_skips_the_row_saying_how_to_make_it() -> None:
    (row,) = bench.demo_rows(None, "kubearts-demo")
    assert "skipped" in row.measured
    assert "make demo" in row.measured
    assert row.passed is None


@pytest.mark.parametrize(
    ("operator_s", "plain_s", "passed"),
    [
        pytest.param(12.0, 10.0, True, id="at-the-target"),
        pytest.param(12.5, 10.0, False, id="over"),
    ],
)
def test_fanout_is_judged_by_the_ratio(operator_s: float, plain_s: float, passed: bool) -> None:
    (row,) = bench.fanout_rows([bench.Fanout(100, operator_s, plain_s, 2.5)], 8)
    assert row.passed is passed
    assert f"ratio {operator_s / plain_s:.2f}" in row.measured
    assert "operator CPU 25 ms per TrainingJob" in row.measured


def test_memory_rows_judge_rss_near_1000_and_the_slope() -> None:
    run = bench.MemoryRun(
        points=[(100, 100 * 1024), (1020, 140 * 1024), (5020, 300 * 1024)],
        empty_kib=90 * 1024,
        latencies=[],
        probed_at=1000,
    )
    rows = {row.figure: row for row in bench.memory_rows(run)}
    assert rows["RSS with 100 Subscriptions watched"].passed is None
    assert rows["RSS with 1020 Subscriptions watched"].passed is True
    slope = rows["RSS per extra object (100 → 5020)"]
    assert slope.measured == f"{200 * 1024 / 4920:.1f} KiB"
    assert slope.passed is True


def test_latency_rows_report_p50_and_p99_and_judge_p99() -> None:
    latencies = [0.05] * 19 + [1.5]
    (row,) = bench.latency_rows(latencies, 1000)
    assert row.measured == "p50 50 ms, p99 1500 ms"
    assert row.passed is False


@pytest.mark.parametrize(
    ("counts", "judged"),
    [
        pytest.param([100, 1020, 5020], 1020, id="near"),
        pytest.param([100, 200], None, id="none-near"),
        pytest.param([], None, id="empty"),
    ],
)
def test_the_rss_target_is_checked_only_near_1000(counts: list[int], judged: int | None) -> None:
    assert bench.judged_count(counts) == judged


def test_counts_parse_from_a_comma_list() -> None:
    assert bench.parse_counts("100, 500,") == [100, 500]
    assert bench.parse_counts("") == []
