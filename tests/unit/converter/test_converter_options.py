"""Option syntax (as the CRD writes it), the check against a graph, and the ATC table."""

from __future__ import annotations

import pytest

from kubearts_converter.atc import atc_command
from kubearts_converter.errors import ConverterError
from kubearts_converter.options import (
    GraphInterface,
    InputShape,
    OutputNode,
    Tensor,
    check,
    parse,
    parse_input_shape,
    parse_output_nodes,
)

GRAPH = GraphInterface(
    "frozen graph",
    inputs=(Tensor("images", "float32", (-1, -1, -1, 3)),),
    outputs=(Tensor("Identity:0", "float32", (-1, 4)),),
    tensors=frozenset({"images:0", "logits:0", "Identity:0"}),
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("images:1,224,224,3", (InputShape("images", (1, 224, 224, 3)),)),
        ("images:-1,224,224,3", (InputShape("images", (-1, 224, 224, 3)),)),
        ("images:0:1,32,32,3", (InputShape("images:0", (1, 32, 32, 3)),)),
        ("a:1,2;b/c:3", (InputShape("a", (1, 2)), InputShape("b/c", (3,)))),
    ],
    ids=["seed", "dynamic-batch", "tensor-name", "several"],
)
def test_input_shape_syntax(text: str, expected: tuple[InputShape, ...]) -> None:
    assert parse_input_shape(text) == expected


@pytest.mark.parametrize(
    "text",
    ["images", "images:1,x,3", "images:1,0,3", "images:-2", ":1,2", "a:1;a:0:2"],
    ids=["no-dims", "not-integer", "zero", "below-minus-one", "no-name", "twice"],
)
def test_bad_input_shape_names_the_option(text: str) -> None:
    with pytest.raises(ConverterError) as caught:
        parse_input_shape(text)
    assert caught.value.reason == "InvalidOptions"
    assert "spec.options.inputShape (--input-shape)" in caught.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("logits:0", (OutputNode("logits", 0),)),
        ("logits", (OutputNode("logits", 0),)),
        ("a/b:1;c:0", (OutputNode("a/b", 1), OutputNode("c", 0))),
    ],
    ids=["seed", "index-defaults-to-0", "several"],
)
def test_output_nodes_syntax(text: str, expected: tuple[OutputNode, ...]) -> None:
    assert parse_output_nodes(text) == expected


@pytest.mark.parametrize(
    "text", ["logits:x", "logits:0;logits", ";"], ids=["index", "twice", "empty"]
)
def test_bad_output_nodes(text: str) -> None:
    with pytest.raises(ConverterError, match=r"--output-nodes"):
        parse_output_nodes(text)


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"input_format": "NCWH"}, "--input-format"),
        ({"precision": "INT8"}, "--precision"),
        ({"soc_version": "Tesla"}, "--soc-version"),
        ({"opset": 30}, "--opset"),
    ],
    ids=["format", "precision", "soc", "opset"],
)
def test_bad_scalar_options(kwargs: dict[str, object], flag: str) -> None:
    with pytest.raises(ConverterError, match=flag):
        parse(**kwargs)  # type: ignore[arg-type]


def test_seed_options_fit_the_graph() -> None:
    options = parse(input_shape="images:1,224,224,3", output_nodes="logits:0")
    check(options, GRAPH, "TF-FrozenGraph-To-Ascend-C32", options.output_nodes)


def test_problems_are_listed_together_with_the_graph() -> None:
    options = parse(input_shape="images:1,224,224", output_nodes="probs:0")
    with pytest.raises(ConverterError) as caught:
        check(options, GRAPH, "TF-FrozenGraph-To-ONNX", options.output_nodes)
    message = caught.value.message
    assert "rank 3" in message
    assert "no output probs:0" in message
    assert "inputs: images float32[-1,-1,-1,3]" in message
    assert "Identity:0" in message
    assert caught.value.details["graph"]["inputs"] == ["images float32[-1,-1,-1,3]"]


@pytest.mark.parametrize(
    ("shape", "problem"),
    [
        ("pixels:1,32,32,3", "no input 'pixels'"),
        ("images:1,32,32,4", "dimension 3 is 4, the graph fixes 3"),
    ],
    ids=["unknown-input", "fixed-dimension"],
)
def test_input_shape_against_the_graph(shape: str, problem: str) -> None:
    options = parse(input_shape=shape)
    with pytest.raises(ConverterError, match=problem):
        check(options, GRAPH, "TF-FrozenGraph-To-ONNX", [OutputNode("logits")])


def test_atc_needs_static_shapes() -> None:
    with pytest.raises(ConverterError, match="ATC needs every input dimension fixed"):
        check(parse(), GRAPH, "TF-FrozenGraph-To-Ascend-C32", [OutputNode("logits")])


def test_onnx_templates_refuse_fp16() -> None:
    with pytest.raises(ConverterError, match="FP32 only"):
        check(parse(precision="FP16"), GRAPH, "TF-FrozenGraph-To-ONNX", [OutputNode("logits")])


def test_atc_command_for_the_seed_options() -> None:
    options = parse(
        input_shape="images:1,224,224,3",
        input_format="NHWC",
        output_nodes="logits:0",
        precision="FP32",
        soc_version="Ascend310",
    )
    assert atc_command(options, "/in/frozen_graph.pb", "/out/model") == [
        "atc",
        "--framework=3",
        "--model=/in/frozen_graph.pb",
        "--output=/out/model",
        "--soc_version=Ascend310",
        "--input_shape=images:1,224,224,3",
        "--input_format=NHWC",
        "--out_nodes=logits:0",
        "--output_type=FP32",
        "--precision_mode=allow_fp32_to_fp16",
    ]


def test_atc_command_fp16_and_tensor_names() -> None:
    options = parse(
        input_shape="images:0:8,224,224,3",
        input_format="NCHW",
        output_nodes="logits:0;feat:1",
        precision="FP16",
        soc_version="Ascend310P3",
    )
    command = atc_command(options, "g.pb", "o/model")
    assert "--input_shape=images:8,224,224,3" in command
    assert "--out_nodes=logits:0;feat:1" in command
    assert command[-2:] == ["--output_type=FP16", "--precision_mode=force_fp16"]
    assert "--soc_version=Ascend310P3" in command
    assert "--input_format=NCHW" in command
