"""A ModelConversion's plan, its Job and how its run is followed, without a cluster."""

from __future__ import annotations

from typing import Any

import pytest

from kubearts.builders.conversion_jobs import (
    ConversionRun,
    conversion_job,
    converter_args,
)
from kubearts.builders.jobs import JobLimits
from kubearts.builders.placement import build_placement
from kubearts.conditions import SpecError
from kubearts.config import DEFAULT_POOLS
from kubearts.conversion_plan import (
    ConversionPlan,
    Wait,
    follow_conversion,
    plan_conversion,
)
from kubearts.storage import StorageLocation, parse_storage_uri
from kubearts.workloads import JobView

WS = "pvc://kubearts-workspace"
DATA = f"{WS}/datasets/digits"
EVAL = f"{DATA}/.kubearts/versions/v1/eval.jsonl"
NOW = "2026-12-01T00:00:00Z"
OWNER = {"metadata": {"name": "conv", "namespace": "ml", "uid": "u-1"}}
#: The seeds' options for the Ascend template.
SEED_OPTIONS = {
    "inputShape": "images:1,224,224,3",
    "inputFormat": "NHWC",
    "outputNodes": "logits:0",
    "precision": "FP32",
    "socVersion": "Ascend310",
    "opset": 13,
}


def training_job(condition: str = "Succeeded", reason: str = "Complete") -> dict[str, Any]:
    return {
        "metadata": {"name": "tj"},
        "spec": {"algorithm": {"subscription": "resnet"}},
        "status": {
            "conditions": [{"type": condition, "status": "True", "reason": reason, "message": "m"}],
            "algorithmVersion": "1.1.0",
            "outputs": {"uri": f"{WS}/trainingjobs/tj"},
            "inputs": [
                {"dataset": "digits", "version": "v1", "location": DATA, "evalManifest": EVAL}
            ],
        },
    }


def spec(template: str = "TF-FrozenGraph-To-ONNX", **source: Any) -> dict[str, Any]:
    return {"template": template, "source": source or {"trainingJob": "tj"}}


def test_a_training_job_source_converts_its_output_and_verifies_on_its_eval_split() -> None:
    plan = plan_conversion(spec(), training_job(), None, None)
    assert isinstance(plan, ConversionPlan)
    assert plan.source.uri == f"{WS}/trainingjobs/tj"
    assert plan.verify is not None
    assert (plan.verify.location.uri, plan.verify.eval_manifest) == (DATA, EVAL)
    assert plan.lineage == {
        "trainingJob": "tj",
        "subscription": "resnet",
        "algorithmVersion": "1.1.0",
        "dataset": "digits",
        "datasetVersion": "v1",
    }


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        pytest.param(None, "does not exist yet", id="missing"),
        pytest.param(training_job("Running", "JobRunning"), "has not finished", id="running"),
    ],
)
def test_a_training_job_that_has_not_succeeded_yet_is_waited_for(
    job: dict[str, Any] | None, expected: str
) -> None:
    plan = plan_conversion(spec(), job, None, None)
    assert isinstance(plan, Wait)
    assert expected in plan.message


def test_a_failed_training_job_ends_the_conversion_naming_the_field() -> None:
    plan = plan_conversion(spec(), training_job("Failed", "OOMKilled"), None, None)
    assert isinstance(plan, SpecError)
    assert (plan.field, plan.reason) == ("spec.source.trainingJob", "DependencyFailed")
    assert "OOMKilled" in plan.message


def test_a_model_version_of_the_wrong_format_is_refused() -> None:
    model = {"status": {"versions": [{"version": "1.0.0", "format": "onnx", "location": WS}]}}
    source = {"model": {"name": "m", "version": "1.0.0"}}
    plan = plan_conversion(spec("TF-SavedModel-To-ONNX", **source), None, model, None)
    assert isinstance(plan, SpecError)
    assert plan.field == "spec.source.model.version"
    assert "'saved-model'" in plan.message


def test_a_frozen_graph_uri_mounts_its_folder_and_names_the_file() -> None:
    plan = plan_conversion(spec(uri=f"{WS}/imports/resnet.pb"), None, None, None)
    assert isinstance(plan, ConversionPlan)
    assert (plan.source.uri, plan.source_file) == (f"{WS}/imports", "resnet.pb")
    assert plan.verify is None


def test_a_uri_the_converter_cannot_mount_is_refused_with_the_fix() -> None:
    plan = plan_conversion(spec(uri="https://models.example/resnet.pb"), None, None, None)
    assert isinstance(plan, SpecError)
    assert plan.field == "spec.source.uri"
    assert "pvc://" in plan.message


def test_an_unsplit_verify_dataset_is_refused() -> None:
    wanted = {**spec(uri=f"{WS}/m"), "verify": {"dataset": {"name": "d", "version": "all"}}}
    dataset = {"status": {"location": DATA, "versions": [{"name": "all", "manifests": {}}]}}
    plan = plan_conversion(wanted, None, None, dataset)
    assert isinstance(plan, SpecError)
    assert plan.field == "spec.verify.dataset.version"


def run_of(template: str, output_format: str, **extra: Any) -> ConversionRun:
    return ConversionRun(
        name="conv",
        image="ghcr.io/kubearts/converter:0.1.0",
        template=template,
        output_format=output_format,
        options=SEED_OPTIONS,
        verify={"samples": 4, "tolerance": 0.001},
        source=parse_storage_uri(f"{WS}/trainingjobs/tj"),
        source_file="",
        output=parse_storage_uri(f"{WS}/modelconversions/conv"),
        limits=JobLimits(active_deadline_seconds=60),
        spec_digest="abc",
        **extra,
    )


def test_the_ascend_template_passes_the_atc_options_and_no_verification() -> None:
    args = converter_args(run_of("TF-FrozenGraph-To-Ascend-C32", "om"))
    assert args[:7] == [
        "convert",
        "--template",
        "TF-FrozenGraph-To-Ascend-C32",
        "--source",
        "/mnt/source",
        "--output",
        "/mnt/output",
    ]
    flags = dict(zip(args[7:-4:2], args[8:-4:2], strict=True))
    assert flags == {
        "--input-shape": "images:1,224,224,3",
        "--input-format": "NHWC",
        "--output-nodes": "logits:0",
        "--precision": "FP32",
        "--soc-version": "Ascend310",
    }
    assert args[-4:] == [
        "--result",
        "/dev/termination-log",
        "--log-file",
        "/mnt/output/logs/convert.log",
    ]


def test_an_onnx_template_verifies_on_the_mounted_eval_split() -> None:
    data = parse_storage_uri(DATA)
    run = run_of("TF-FrozenGraph-To-ONNX", "onnx", verify_data=data, verify_manifest=EVAL)
    args = converter_args(run)
    assert "--soc-version" not in args
    assert args[args.index("--opset") + 1] == "13"
    assert args[args.index("--verify-samples") + 1] == "4"
    assert args[args.index("--verify-manifest") + 1] == (
        "/mnt/data/.kubearts/versions/v1/eval.jsonl"
    )
    job = conversion_job(run, OWNER, placement=build_placement("cpu", 1, DEFAULT_POOLS))
    (container,) = job["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"]: (m.get("subPath"), m["readOnly"]) for m in container["volumeMounts"]}
    assert mounts["/mnt/source"] == ("trainingjobs/tj", True)
    assert mounts["/mnt/data"] == ("datasets/digits", True)
    assert mounts["/mnt/output"] == ("modelconversions/conv", False)
    assert job["metadata"]["name"] == "conv-convert"
    assert job["spec"]["activeDeadlineSeconds"] == 60


JOB = {"metadata": {"name": "conv-convert"}, "status": {"completionTime": NOW}}


def test_a_successful_conversion_records_output_figures_tools_and_command() -> None:
    result = {
        "status": "Succeeded",
        "reason": "Converted",
        "output": {"file": "model.onnx", "format": "onnx", "sizeBytes": 10, "digest": "sha256:a"},
        "verification": {
            "passed": True,
            "samples": 4,
            "tolerance": 0.001,
            "maxAbsDiff": 2e-5,
            "meanAbsDiff": 1e-6,
            "top1Agreement": 1.0,
            "inputs": "eval-split",
        },
        "tools": {"tf2onnx": "1.17.0"},
        "opset": 13,
        "command": ["python", "-m", "kubearts_converter", "convert"],
    }
    run = follow_conversion({}, JobView(JOB, "Complete", result=result), NOW, f"{WS}/out")
    assert run.fields["output"] == {
        "uri": f"{WS}/out/model.onnx",
        "format": "onnx",
        "sizeBytes": 10,
        "digest": "sha256:a",
    }
    assert run.fields["verification"]["maxAbsDiff"] == 2e-5
    assert (run.fields["opset"], run.fields["tools"]) == (13, {"tf2onnx": "1.17.0"})
    ready = next(u for u in run.updates if u.type == "Ready")
    assert ready.status == "True"
    assert "max |Δlogit| 2e-05" in ready.message
    assert "top-1 agreement 100%" in ready.message


def test_an_unavailable_converter_fails_with_its_reason_and_keeps_the_command_line() -> None:
    result = {
        "status": "Failed",
        "reason": "ConverterUnavailable",
        "message": "atc is not on PATH",
        "command": ["atc", "--framework=3"],
    }
    run = follow_conversion({}, JobView(JOB, "Failed", result=result), NOW, f"{WS}/out")
    failed = next(u for u in run.updates if u.type == "Failed")
    assert (failed.status, failed.reason) == ("True", "ConverterUnavailable")
    assert run.fields["command"] == ["atc", "--framework=3"]


def test_a_deleted_job_fails_the_conversion() -> None:
    run = follow_conversion({}, None, NOW, f"{WS}/out")
    failed = next(u for u in run.updates if u.type == "Failed")
    assert failed.reason == "JobMissing"
    assert "create a new ModelConversion" in failed.message


def test_storage_location_relative_path() -> None:
    location = StorageLocation("pvc", claim="c", path="a/b")
    assert location.relative_path("pvc://c/a/b/x/y.json") == "x/y.json"
    with pytest.raises(ValueError, match="not inside"):
        location.relative_path("pvc://c/a/bx/y.json")
