"""Specification of hyperparameter checks (kubearts.hyperparameters).

A TrainingJob's spec.hyperparameters is checked against the schema pinned by its
Subscription; every problem is reported at once, naming the parameter and what it accepts.
"""

from __future__ import annotations

import math

import pytest

from kubearts.hyperparameters import (
    Hyperparameter,
    InvalidHyperparametersError,
    Problem,
    apply_defaults,
    boot_arguments,
    describe_allowed,
    format_problems,
    parse_schema,
    validate_hyperparameters,
)

SCHEMA: list[Hyperparameter] = [
    {
        "name": "learning_rate",
        "type": "float",
        "description": "",
        "required": False,
        "default": 0.01,
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
    },
    {
        "name": "batch_size",
        "type": "int",
        "description": "",
        "required": False,
        "default": 32,
        "minimum": 1,
        "maximum": 1024,
    },
    {
        "name": "momentum",
        "type": "float",
        "description": "",
        "required": False,
        "minimum": 0,
        "maximum": 1,
        "exclusiveMaximum": True,
    },
    {
        "name": "optimizer",
        "type": "enum",
        "description": "",
        "required": False,
        "default": "momentum",
        "choices": ["sgd", "momentum", "adam", "rmsprop"],
    },
    {
        "name": "image_size",
        "type": "enum",
        "description": "",
        "required": False,
        "default": 224,
        "choices": [128, 160, 224],
    },
    {"name": "pretrained", "type": "bool", "description": "", "required": False, "default": False},
    {"name": "run_name", "type": "string", "description": "", "required": False},
    {"name": "num_classes", "type": "int", "description": "", "required": True, "minimum": 2},
]

VALID = {"num_classes": 5}


def only_problem(values: dict[str, object]) -> Problem:
    problems = validate_hyperparameters({**VALID, **values}, SCHEMA)
    assert len(problems) == 1, problems
    return problems[0]


# --- accepted values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="only-required"),
        pytest.param({"learning_rate": 1}, id="int-for-float-at-inclusive-maximum"),
        pytest.param({"learning_rate": 1e-5}, id="tiny-float-above-exclusive-minimum"),
        pytest.param({"batch_size": 64.0}, id="integral-float-for-int"),
        pytest.param({"momentum": 0}, id="inclusive-minimum"),
        pytest.param({"optimizer": "adam"}, id="enum-string"),
        pytest.param({"image_size": 160}, id="enum-number"),
        pytest.param({"pretrained": True}, id="bool"),
        pytest.param({"run_name": "first try"}, id="string"),
    ],
)
def test_acceptable_values_have_no_problems(values: dict[str, object]) -> None:
    assert validate_hyperparameters({**VALID, **values}, SCHEMA) == []


# --- wrong type ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        pytest.param(
            "batch_size",
            True,
            "expected an integer from 1 to 1024, got the boolean true",
            id="bool-is-not-an-int",
        ),
        pytest.param("learning_rate", False, "got the boolean false", id="bool-is-not-a-float"),
        pytest.param(
            "learning_rate",
            "0.01",
            'got the string "0.01"; write 0.01 without quotes',
            id="quoted-float-rejected-with-hint",
        ),
        pytest.param(
            "batch_size", "32", "write 32 without quotes", id="quoted-int-rejected-with-hint"
        ),
        pytest.param("batch_size", 32.5, "got the fraction 32.5", id="fraction-for-int"),
        pytest.param(
            "pretrained",
            "true",
            'expected true or false, got the string "true"; write true',
            id="quoted-bool",
        ),
        pytest.param(
            "pretrained", 1, "expected true or false, got the number 1", id="int-for-bool"
        ),
        pytest.param(
            "run_name", 42, "expected a string, got the number 42; quote it", id="number-for-string"
        ),
        pytest.param("batch_size", [32], "got the list [32]", id="list-for-int"),
    ],
)
def test_wrong_type_names_the_expected_type(name: str, value: object, expected: str) -> None:
    problem = only_problem({name: value})
    assert problem.parameter == name
    assert problem.code == "WrongType"
    assert expected in problem.message


def test_null_is_not_a_value() -> None:
    problem = only_problem({"batch_size": None})
    assert problem.code == "NullValue"
    assert "remove the key" in problem.message


# --- out of range ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        pytest.param("batch_size", 0, "an integer from 1 to 1024", id="below-minimum"),
        pytest.param("batch_size", 1025, "an integer from 1 to 1024", id="above-maximum"),
        pytest.param(
            "learning_rate", 0, "a number greater than 0 and at most 1", id="at-exclusive-minimum"
        ),
        pytest.param(
            "momentum", 1.0, "a number at least 0 and less than 1", id="at-exclusive-maximum"
        ),
        pytest.param("num_classes", 1, "an integer at least 2", id="only-minimum"),
        pytest.param("learning_rate", math.nan, "a number greater than 0 and at most 1", id="nan"),
        pytest.param(
            "learning_rate", math.inf, "a number greater than 0 and at most 1", id="infinity"
        ),
    ],
)
def test_out_of_range_states_the_range(name: str, value: object, allowed: str) -> None:
    problem = only_problem({name: value})
    assert problem.code == "OutOfRange"
    assert problem.allowed == allowed
    assert f"expected {allowed}" in problem.message


# --- unknown parameter -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        pytest.param("lr", "learning_rate", id="abbreviation-by-initials"),
        pytest.param("dropout", None, id="nothing-close"),
        pytest.param("batchsize", "batch_size", id="typo"),
        pytest.param("Optimizer", "optimizer", id="wrong-case"),
        pytest.param("pretrain", "pretrained", id="prefix"),
    ],
)
def test_unknown_parameter_suggests_and_lists_known_names(
    name: str, suggestion: str | None
) -> None:
    problem = only_problem({name: 1})
    assert problem.code == "UnknownParameter"
    assert problem.parameter == name
    if suggestion:
        assert f"did you mean {suggestion!r}?" in problem.message
    else:
        assert "did you mean" not in problem.message
    assert "batch_size, image_size, learning_rate, momentum" in problem.message


# --- missing required ------------------------------------------------------------------------


def test_missing_required_parameter_says_what_to_set() -> None:
    problems = validate_hyperparameters({}, SCHEMA)
    assert [(p.parameter, p.code) for p in problems] == [("num_classes", "MissingRequired")]
    assert problems[0].message == "required parameter is missing; set it to an integer at least 2"


# --- enum violations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        pytest.param(
            "optimizer",
            "Adam",
            'expected one of "sgd", "momentum", "adam", "rmsprop", got "Adam"; '
            'did you mean "adam"?',
            id="wrong-case-suggests",
        ),
        pytest.param(
            "optimizer",
            "lbfgs",
            'expected one of "sgd", "momentum", "adam", "rmsprop", got "lbfgs"',
            id="unknown-choice-lists-choices",
        ),
        pytest.param(
            "image_size", 256, "expected one of 128, 160, 224, got 256", id="number-not-a-choice"
        ),
        pytest.param(
            "image_size", "224", 'got "224"; write 224 without quotes', id="quoted-number-choice"
        ),
        pytest.param("image_size", True, "got true", id="bool-is-not-a-number-choice"),
    ],
)
def test_enum_violation_lists_the_choices(name: str, value: object, expected: str) -> None:
    problem = only_problem({name: value})
    assert problem.code == "NotAChoice"
    assert expected in problem.message


# --- all at once, formatting -----------------------------------------------------------------


def test_every_problem_is_reported_sorted_by_name() -> None:
    problems = validate_hyperparameters(
        {"lr": 0.1, "batch_size": 0, "optimizer": "nadam", "pretrained": "no"}, SCHEMA
    )
    assert [(p.parameter, p.code) for p in problems] == [
        ("batch_size", "OutOfRange"),
        ("lr", "UnknownParameter"),
        ("num_classes", "MissingRequired"),
        ("optimizer", "NotAChoice"),
        ("pretrained", "WrongType"),
    ]


def test_format_problems_names_each_field_under_spec_hyperparameters() -> None:
    problems = validate_hyperparameters({"batch_size": 0, "num_classes": 5, "lr": 1}, SCHEMA)
    assert format_problems(problems) == (
        "spec.hyperparameters.batch_size: expected an integer from 1 to 1024, got 0; "
        "spec.hyperparameters.lr: unknown parameter; did you mean 'learning_rate'? "
        "the algorithm accepts: batch_size, image_size, learning_rate, momentum, num_classes, "
        "optimizer, pretrained, run_name"
    )


def test_format_problems_takes_another_prefix() -> None:
    problems = validate_hyperparameters({"batch_size": 0, "num_classes": 5}, SCHEMA)
    assert format_problems(problems, "hyperparameters").startswith("hyperparameters.batch_size: ")


# --- effective values ------------------------------------------------------------------------


def test_apply_defaults_fills_defaults_and_normalizes_in_schema_order() -> None:
    effective = apply_defaults({"num_classes": 5, "learning_rate": 1, "batch_size": 64.0}, SCHEMA)
    assert effective == {
        "learning_rate": 1.0,
        "batch_size": 64,
        "optimizer": "momentum",
        "image_size": 224,
        "pretrained": False,
        "num_classes": 5,
    }
    assert list(effective) == [
        "learning_rate",
        "batch_size",
        "optimizer",
        "image_size",
        "pretrained",
        "num_classes",
    ]
    assert isinstance(effective["learning_rate"], float)
    assert type(effective["batch_size"]) is int


def test_apply_defaults_leaves_out_optional_parameters_without_default() -> None:
    effective = apply_defaults(VALID, SCHEMA)
    assert "momentum" not in effective
    assert "run_name" not in effective


def test_apply_defaults_refuses_invalid_values_with_every_problem() -> None:
    with pytest.raises(InvalidHyperparametersError) as caught:
        apply_defaults({"batch_size": 0, "lr": 1}, SCHEMA)
    assert [p.parameter for p in caught.value.problems] == ["batch_size", "lr", "num_classes"]
    assert "spec.hyperparameters.batch_size" in str(caught.value)


@pytest.mark.parametrize(
    ("index", "text"),
    [
        pytest.param(0, "a number greater than 0 and at most 1", id="float-exclusive-minimum"),
        pytest.param(1, "an integer from 1 to 1024", id="int-range"),
        pytest.param(3, 'one of "sgd", "momentum", "adam", "rmsprop"', id="enum"),
        pytest.param(5, "true or false", id="bool"),
        pytest.param(6, "a string", id="string"),
    ],
)
def test_describe_allowed(index: int, text: str) -> None:
    assert describe_allowed(SCHEMA[index]) == text


# --- declared schemas ------------------------------------------------------------------------


def test_parse_schema_accepts_a_full_declaration() -> None:
    params, problems = parse_schema(
        [
            {
                "name": "learning_rate",
                "type": "float",
                "default": 0.01,
                "minimum": 0,
                "exclusiveMinimum": True,
                "maximum": 1,
                "description": "step size",
            },
            {"name": "optimizer", "type": "enum", "choices": ["sgd", "adam"], "default": "sgd"},
            {"name": "classes", "type": "int", "required": True},
        ]
    )
    assert problems == []
    assert params[0] == {
        "name": "learning_rate",
        "type": "float",
        "description": "step size",
        "required": False,
        "default": 0.01,
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
    }
    assert params[1]["choices"] == ["sgd", "adam"]
    assert params[2]["required"] is True


@pytest.mark.parametrize(
    ("declaration", "field", "message"),
    [
        pytest.param(
            {"name": "x", "type": "double"},
            "[0].type",
            "must be one of int, float",
            id="unknown-type",
        ),
        pytest.param(
            {"name": "1x", "type": "int"}, "[0].name", "must be an identifier", id="bad-name"
        ),
        pytest.param(
            {"name": "x", "type": "int", "default": 0, "minimum": 1},
            "[0].default",
            "expected an integer at least 1, got 0",
            id="default-out-of-range",
        ),
        pytest.param(
            {"name": "x", "type": "float", "default": "0.1"},
            "[0].default",
            "write 0.1 without quotes",
            id="default-wrong-type",
        ),
        pytest.param(
            {"name": "x", "type": "int", "minimum": 5, "maximum": 1},
            "[0].maximum",
            "must not be below minimum",
            id="maximum-below-minimum",
        ),
        pytest.param(
            {"name": "x", "type": "string", "choices": ["a"]},
            "[0].choices",
            "applies only to enum parameters",
            id="choices-on-non-enum",
        ),
        pytest.param(
            {"name": "x", "type": "enum"},
            "[0].choices",
            "non-empty list",
            id="enum-without-choices",
        ),
        pytest.param(
            {"name": "x", "type": "enum", "choices": ["a", "a"]},
            "[0].choices",
            '"a" is listed twice',
            id="duplicate-choice",
        ),
        pytest.param(
            {"name": "x", "type": "int", "required": True, "default": 1},
            "[0].default",
            "a required parameter has no default",
            id="required-with-default",
        ),
        pytest.param(
            {"name": "x", "type": "int", "exclusiveMinimum": True},
            "[0].exclusiveMinimum",
            "needs minimum",
            id="exclusive-without-bound",
        ),
        pytest.param(
            {"name": "x", "type": "bool", "minimum": 0},
            "[0].minimum",
            "applies only to int and float",
            id="bound-on-bool",
        ),
        pytest.param(
            {"name": "x", "type": "int", "defualt": 3},
            "[0].defualt",
            "did you mean 'default'?",
            id="typo-field",
        ),
    ],
)
def test_parse_schema_reports_authoring_mistakes(
    declaration: dict[str, object], field: str, message: str
) -> None:
    _, problems = parse_schema([declaration])
    assert any(p.field == field and message in p.message for p in problems), problems


def test_parse_schema_rejects_duplicate_names() -> None:
    params, problems = parse_schema([{"name": "x", "type": "int"}, {"name": "x", "type": "bool"}])
    assert [p["type"] for p in params] == ["int"]
    assert [str(p) for p in problems] == ["[1].name: 'x' is declared twice"]


def test_parse_schema_rejects_a_non_list() -> None:
    _, problems = parse_schema({"learning_rate": 0.1})
    assert problems[0].message.startswith("must be a list of parameters")


def test_boot_arguments_are_one_argv_element_each_in_modelarts_form() -> None:
    values = {"lr": 1e-05, "epochs": 3, "pretrained": False, "note": "a b 'c' ü", "ratio": 0.5}
    assert boot_arguments(values) == [
        "--epochs=3",
        "--lr=1e-05",
        "--note=a b 'c' ü",
        "--pretrained=false",
        "--ratio=0.5",
    ]
