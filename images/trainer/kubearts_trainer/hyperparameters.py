"""Hyperparameters on the command line: the schema the trainer implements and its encoding.

The encoding is ModelArts' boot-file style, one argv element per hyperparameter::

    --learning_rate=0.01 --batch_size=32 --optimizer=momentum --freeze_backbone=false
    --pretrained_weights=/mnt/pvc/weights/resnet50 notop.h5

* the element is ``--<name>=<value>``; the name is everything up to the first ``=``, the
  value everything after it (it may contain ``=``, spaces, any Unicode, or be empty);
* ``bool``: ``true`` or ``false`` (lower case);
* ``int``: decimal digits with an optional sign (``32``, ``-1``);
* ``float``: Python's ``repr`` of the float (``0.01``, ``1e-05``, ``0.9``); any decimal or
  integer literal is accepted, NaN and infinities are not;
* ``string`` and ``enum``: the raw text, no quoting or escaping (a process argument is one
  element, so nothing needs protecting).

:func:`encode` and :func:`decode` are inverse for every value the schema accepts. A value
not given takes the schema's default; a parameter without a default (``pretrained_weights``)
is then absent. Every problem is reported at once, each naming ``--<name>``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, NotRequired, TypedDict

from kubearts_trainer.errors import TrainerError

Scalar = int | float | str | bool
ParamType = Literal["int", "float", "string", "bool", "enum"]


class Param(TypedDict):
    """One hyperparameter, in the gallery's shape (``algorithm.<name>.yaml`` versions)."""

    name: str
    type: ParamType
    description: str
    default: NotRequired[Scalar]
    minimum: NotRequired[int | float]
    maximum: NotRequired[int | float]
    exclusiveMinimum: NotRequired[bool]
    exclusiveMaximum: NotRequired[bool]
    choices: NotRequired[list[Scalar]]


#: What this trainer implements: the latest gallery version of every algorithm declares
#: exactly these (checked by tests/unit/trainer/test_trainer_hyperparameters.py); earlier
#: versions declare a subset, and the missing ones take these defaults.
SCHEMA: Final[list[Param]] = [
    {
        "name": "learning_rate",
        "type": "float",
        "description": "Initial learning rate of the optimizer (cosine decay to 0 over the run).",
        "default": 0.01,
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
    },
    {
        "name": "batch_size",
        "type": "int",
        "description": "Images per training step.",
        "default": 32,
        "minimum": 1,
        "maximum": 1024,
    },
    {
        "name": "epochs",
        "type": "int",
        "description": "Passes over the training split.",
        "default": 10,
        "minimum": 1,
        "maximum": 1000,
    },
    {
        "name": "optimizer",
        "type": "enum",
        "description": "Optimization algorithm.",
        "choices": ["sgd", "momentum", "adam", "rmsprop"],
        "default": "momentum",
    },
    {
        "name": "momentum",
        "type": "float",
        "description": "Momentum of the momentum and rmsprop optimizers.",
        "default": 0.9,
        "minimum": 0,
        "maximum": 1,
        "exclusiveMaximum": True,
    },
    {
        "name": "image_size",
        "type": "int",
        "description": "Images are resized to image_size x image_size pixels.",
        "default": 224,
        "minimum": 32,
        "maximum": 512,
    },
    {
        "name": "pretrained_weights",
        "type": "string",
        "description": "Backbone weights to start from instead of random ones: a path in a "
        "mounted volume, pvc://claim/path, http(s):// or s3:// URL of a Keras .h5 or "
        ".weights.h5 file (include_top=False). Never downloaded implicitly.",
    },
    {
        "name": "label_smoothing",
        "type": "float",
        "description": "Label smoothing factor of the cross-entropy loss (0 turns it off).",
        "default": 0.0,
        "minimum": 0,
        "maximum": 1,
        "exclusiveMaximum": True,
    },
    {
        "name": "freeze_backbone",
        "type": "bool",
        "description": "Train only the classifier head; useful with pretrained weights.",
        "default": False,
    },
]

_INT: Final = re.compile(r"^[+-]?[0-9]+$")
_FLOAT: Final = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")


def encode_value(value: Scalar, kind: ParamType) -> str:
    """One value as its argv text (see the module docstring)."""
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"expected a bool, got {value!r}")
        return "true" if value else "false"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an int, got {value!r}")
        return str(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a float, got {value!r}")
        return repr(float(value))
    return str(value)


def encode(values: Mapping[str, Scalar], schema: Sequence[Param] = SCHEMA) -> list[str]:
    """``{"batch_size": 32}`` → ``["--batch_size=32"]``, in schema order."""
    kinds = {p["name"]: p["type"] for p in schema}
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise KeyError(f"not in the schema: {', '.join(unknown)}")
    return [
        f"--{p['name']}={encode_value(values[p['name']], p['type'])}"
        for p in schema
        if p["name"] in values
    ]


def decode(argv_items: Iterable[str], schema: Sequence[Param] = SCHEMA) -> dict[str, Scalar]:
    """Parse ``--name=value`` elements against ``schema`` and apply its defaults.

    Raises :class:`TrainerError` (``InvalidHyperparameter``) listing every problem.
    """
    params = {p["name"]: p for p in schema}
    values: dict[str, Scalar] = {}
    problems: list[str] = []
    seen: set[str] = set()
    for item in argv_items:
        if not item.startswith("--") or "=" not in item:
            problems.append(
                f"{item!r} is not a hyperparameter: write --<name>=<value> as one argument"
            )
            continue
        name, _, text = item[2:].partition("=")
        param = params.get(name)
        if param is None:
            close = difflib.get_close_matches(name, params, n=1)
            hint = f"; did you mean --{close[0]}?" if close else ""
            problems.append(
                f"--{name} is not a hyperparameter of this algorithm{hint} "
                f"(accepted: {', '.join(params)})"
            )
            continue
        if name in seen:
            problems.append(f"--{name} is given more than once")
            continue
        seen.add(name)
        try:
            values[name] = _parse(text, param)
        except ValueError as exc:
            problems.append(f"--{name}={text}: {exc}")
    if problems:
        raise TrainerError("InvalidHyperparameter", "; ".join(problems))
    for param in schema:
        if param["name"] not in values and "default" in param:
            values[param["name"]] = param["default"]
    return values


def _parse(text: str, param: Param) -> Scalar:
    kind = param["type"]
    value: Scalar
    if kind == "bool":
        if text not in ("true", "false"):
            raise ValueError("expected true or false")
        return text == "true"
    if kind == "int":
        if not _INT.match(text):
            raise ValueError("expected an integer")
        value = int(text)
    elif kind == "float":
        if not _FLOAT.match(text):
            raise ValueError("expected a decimal number such as 0.01 or 1e-05")
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
    elif kind == "enum":
        choices = [str(c) for c in param.get("choices", [])]
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text
    else:
        return text
    _check_range(value, param)
    return value


def _check_range(value: float, param: Param) -> None:
    low, high = param.get("minimum"), param.get("maximum")
    if low is not None and (value <= low if param.get("exclusiveMinimum") else value < low):
        raise ValueError(
            f"must be {'above' if param.get('exclusiveMinimum') else 'at least'} {low}"
        )
    if high is not None and (value >= high if param.get("exclusiveMaximum") else value > high):
        raise ValueError(
            f"must be {'below' if param.get('exclusiveMaximum') else 'at most'} {high}"
        )


def describe(schema: Sequence[Param] = SCHEMA) -> list[dict[str, Any]]:
    """The schema as plain dicts, for ``model.json``."""
    return [dict(p) for p in schema]
