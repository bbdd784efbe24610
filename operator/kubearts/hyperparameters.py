"""Typed hyperparameters: the schema an algorithm version declares, and checks of user values.

A gallery algorithm version declares its hyperparameters as a list of :class:`Hyperparameter`
items (the same shape is pinned into ``Subscription.status.hyperparameters``). A TrainingJob's
``spec.hyperparameters`` is checked against that schema with
:func:`validate_hyperparameters`, which returns *every* problem at once, each naming the
parameter and what it accepts; :func:`apply_defaults` then gives the effective values the
trainer receives, and :func:`format_problems` turns problems into one condition message.

Value rules (decided here once, so every caller behaves the same):

* ``int`` accepts integers; a float with an integral value (``32.0``) counts as ``32``
  because JSON, and hence the API server, does not tell them apart. Booleans are never
  numbers, although Python's ``bool`` is a subclass of ``int``.
* ``float`` accepts integers and floats (``1`` means ``1.0``) but not NaN or infinity.
* Quoted numbers and booleans (``"0.01"``, ``"true"``) are rejected for ``int``, ``float``,
  ``bool`` and numeric ``enum`` choices. In a manifest, quotes are a deliberate choice, and
  accepting them would make ``"32x"`` and ``"32"`` behave differently for the same typo
  class; the message says to drop the quotes. Likewise a ``string`` parameter does not
  accept numbers or booleans: quote them.
* ``enum`` values must equal one of ``choices`` (case-sensitive, type-sensitive:
  ``true`` is not the choice ``1``); a close string match is suggested.
* ``null`` is never a value: remove the key to get the default.
* A ``required`` parameter has no default; an optional one without a default is simply not
  passed to the trainer, which then uses its own built-in value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, NotRequired, TypedDict, TypeGuard, cast, get_args

from kubearts.messages import closest, show

__all__ = [
    "HYPERPARAMETER_TYPES",
    "Hyperparameter",
    "HyperparameterType",
    "InvalidHyperparametersError",
    "Problem",
    "ProblemCode",
    "Scalar",
    "SchemaProblem",
    "apply_defaults",
    "boot_arguments",
    "describe_allowed",
    "format_problems",
    "parse_schema",
    "validate_hyperparameters",
]

HyperparameterType = Literal["int", "float", "string", "bool", "enum"]
HYPERPARAMETER_TYPES: Final[tuple[HyperparameterType, ...]] = get_args(HyperparameterType)

#: A hyperparameter value: what YAML/JSON scalars become in Python.
Scalar = int | float | str | bool

#: Field path prefix used when problems are reported against a TrainingJob.
DEFAULT_PREFIX: Final = "spec.hyperparameters"

# Names become command-line flags and environment variables of the trainer, so they are
# restricted to identifiers.
_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Hyperparameter(TypedDict):
    """One hyperparameter of an algorithm version (gallery entry and pinned status shape).

    ``minimum``/``maximum`` apply to ``int`` and ``float``; ``exclusiveMinimum`` and
    ``exclusiveMaximum`` (OpenAPI v3.0 style booleans) make a bound strict, e.g. a learning
    rate in (0, 1]. ``choices`` applies to ``enum`` only.
    """

    name: str
    type: HyperparameterType
    description: str
    required: bool
    default: NotRequired[Scalar]
    minimum: NotRequired[int | float]
    maximum: NotRequired[int | float]
    exclusiveMinimum: NotRequired[bool]
    exclusiveMaximum: NotRequired[bool]
    choices: NotRequired[list[Scalar]]


ProblemCode = Literal[
    "UnknownParameter", "WrongType", "OutOfRange", "NotAChoice", "MissingRequired", "NullValue"
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one hyperparameter value."""

    parameter: str
    """The parameter's name as the user wrote it (or as the schema names it, if missing)."""
    code: ProblemCode
    message: str
    """A sentence for people, without the field path (see :meth:`render`)."""
    allowed: str
    """What the parameter accepts, e.g. ``an integer from 1 to 1024``; for an unknown
    parameter, the names the algorithm accepts."""

    def field(self, prefix: str = DEFAULT_PREFIX) -> str:
        """The field path, e.g. ``spec.hyperparameters.batch_size``."""
        return f"{prefix}.{self.parameter}" if prefix else self.parameter

    def render(self, prefix: str = DEFAULT_PREFIX) -> str:
        """``<field>: <message>``."""
        return f"{self.field(prefix)}: {self.message}"

    def __str__(self) -> str:
        return self.render()


class InvalidHyperparametersError(ValueError):
    """Raised by :func:`apply_defaults` when the values do not satisfy the schema."""

    def __init__(self, problems: Sequence[Problem], prefix: str = DEFAULT_PREFIX) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(format_problems(self.problems, prefix))


@dataclass(frozen=True)
class SchemaProblem:
    """Something wrong in a declared schema (a gallery authoring error)."""

    field: str
    """Path relative to the schema list, e.g. ``[2].default``."""
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


# --- showing values --------------------------------------------------------------------------


def _number(value: int | float) -> str:
    # 1.0 prints as "1" so ranges read naturally ("from 1 to 1024"), 0.01 stays "0.01".
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _range_text(param: Hyperparameter) -> str:
    low = param.get("minimum")
    high = param.get("maximum")
    low_x = param.get("exclusiveMinimum", False)
    high_x = param.get("exclusiveMaximum", False)
    if low is not None and high is not None and not low_x and not high_x:
        return f" from {_number(low)} to {_number(high)}"
    parts = []
    if low is not None:
        parts.append(f"greater than {_number(low)}" if low_x else f"at least {_number(low)}")
    if high is not None:
        parts.append(f"less than {_number(high)}" if high_x else f"at most {_number(high)}")
    return (" " + " and ".join(parts)) if parts else ""


def describe_allowed(param: Hyperparameter) -> str:
    """What a parameter accepts, in words: ``a number greater than 0 and at most 1``."""
    kind = param["type"]
    if kind == "int":
        return "an integer" + _range_text(param)
    if kind == "float":
        return "a number" + _range_text(param)
    if kind == "bool":
        return "true or false"
    if kind == "enum":
        return "one of " + ", ".join(show(c) for c in param.get("choices", []))
    return "a string"


# --- checking one value ----------------------------------------------------------------------


def _in_range(param: Hyperparameter, value: int | float) -> bool:
    low = param.get("minimum")
    high = param.get("maximum")
    if low is not None and (value <= low if param.get("exclusiveMinimum") else value < low):
        return False
    return not (
        high is not None and (value >= high if param.get("exclusiveMaximum") else value > high)
    )


def _quoted_hint(value: str, kind: str) -> str:
    """A hint when a string looks like the intended scalar written in quotes."""
    text = value.strip()
    if kind in ("int", "float", "enum"):
        try:
            float(text)
        except ValueError:
            return ""
        return f"; write {text} without quotes"
    if kind == "bool" and text.lower() in ("true", "false", "yes", "no", "on", "off"):
        wanted = "true" if text.lower() in ("true", "yes", "on") else "false"
        return f"; write {wanted} without quotes"
    return ""


def _check_value(param: Hyperparameter, value: object) -> tuple[ProblemCode, str] | None:
    """Check one present value; return ``(code, message)`` or None when it is fine."""
    kind = param["type"]
    allowed = describe_allowed(param)
    if value is None:
        return "NullValue", f"null is not a value; expected {allowed}, or remove the key"
    if kind in ("int", "float"):
        if not _is_number(value):
            hint = _quoted_hint(value, kind) if isinstance(value, str) else ""
            return "WrongType", f"expected {allowed}, got {_type_name(value)} {show(value)}{hint}"
        if isinstance(value, float) and not math.isfinite(value):
            return "OutOfRange", f"expected {allowed}, got {show(value)} (not a finite number)"
        if kind == "int" and isinstance(value, float) and not value.is_integer():
            return "WrongType", f"expected {allowed}, got the fraction {show(value)}"
        if not _in_range(param, value):
            return "OutOfRange", f"expected {allowed}, got {_number(value)}"
        return None
    if kind == "bool":
        if not isinstance(value, bool):
            hint = _quoted_hint(value, kind) if isinstance(value, str) else ""
            return "WrongType", f"expected {allowed}, got {_type_name(value)} {show(value)}{hint}"
        return None
    if kind == "enum":
        if _choice_index(param, value) is not None:
            return None
        hint = ""
        if isinstance(value, str):
            hint = _quoted_hint(value, kind) if _numeric_choices(param) else ""
            if not hint:
                names = [c for c in param.get("choices", []) if isinstance(c, str)]
                close = closest(value, names)
                hint = f"; did you mean {show(close)}?" if close else ""
        return "NotAChoice", f"expected {allowed}, got {show(value)}{hint}"
    # string
    if not isinstance(value, str):
        return "WrongType", f"expected a string, got {_type_name(value)} {show(value)}; quote it"
    return None


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "the boolean"
    if isinstance(value, int | float):
        return "the number"
    if isinstance(value, str):
        return "the string"
    if isinstance(value, Mapping):
        return "the mapping"
    if isinstance(value, list | tuple):
        return "the list"
    return f"a {type(value).__name__}"


def _same_kind(a: object, b: object) -> bool:
    # Booleans only match booleans, numbers only numbers (1 == 1.0), strings only strings.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if _is_number(a) and _is_number(b):
        return True
    return type(a) is type(b)


def _choice_index(param: Hyperparameter, value: object) -> int | None:
    for i, choice in enumerate(param.get("choices", [])):
        if _same_kind(choice, value) and choice == value:
            return i
    return None


def _numeric_choices(param: Hyperparameter) -> bool:
    return any(_is_number(c) for c in param.get("choices", []))


# --- public checks ---------------------------------------------------------------------------


def validate_hyperparameters(
    values: Mapping[str, object], schema: Sequence[Hyperparameter]
) -> list[Problem]:
    """Every problem of ``values`` against ``schema``, sorted by parameter name.

    Checks: unknown names (with a "did you mean" suggestion), missing required parameters,
    wrong types, values out of range, values outside an enum's choices, nulls. An empty list
    means the values are acceptable.
    """
    by_name = {param["name"]: param for param in schema}
    problems: list[Problem] = []
    for name, value in values.items():
        param = by_name.get(name)
        if param is None:
            known = sorted(by_name)
            close = closest(name, known)
            suggestion = f"did you mean {close!r}? " if close else ""
            accepted = ", ".join(known) if known else "none"
            problems.append(
                Problem(
                    parameter=name,
                    code="UnknownParameter",
                    message=(f"unknown parameter; {suggestion}the algorithm accepts: {accepted}"),
                    allowed=accepted,
                )
            )
            continue
        found = _check_value(param, value)
        if found is not None:
            code, message = found
            problems.append(Problem(name, code, message, describe_allowed(param)))
    for param in schema:
        if param["required"] and param["name"] not in values:
            allowed = describe_allowed(param)
            problems.append(
                Problem(
                    param["name"],
                    "MissingRequired",
                    f"required parameter is missing; set it to {allowed}",
                    allowed,
                )
            )
    problems.sort(key=lambda p: p.parameter)
    return problems


def _normalized(param: Hyperparameter, value: Scalar) -> Scalar:
    kind = param["type"]
    if kind == "float":
        return float(value)
    if kind == "int" and isinstance(value, float):
        return int(value)
    if kind == "enum":
        index = _choice_index(param, value)
        if index is not None:
            return param.get("choices", [])[index]
    return value


def apply_defaults(
    values: Mapping[str, object], schema: Sequence[Hyperparameter]
) -> dict[str, Scalar]:
    """The effective hyperparameters: the user's values (normalized) plus schema defaults.

    Keys follow the schema's order. Floats are always floats (``1`` → ``1.0``), integral
    floats given for ``int`` become ints, enum values are the declared choice. Optional
    parameters without a default and not set are left out.

    Raises :class:`InvalidHyperparametersError` (with every problem) when ``values`` does not
    satisfy ``schema``, so effective values never come from invalid input.
    """
    problems = validate_hyperparameters(values, schema)
    if problems:
        raise InvalidHyperparametersError(problems)
    effective: dict[str, Scalar] = {}
    for param in schema:
        name = param["name"]
        if name in values:
            # Validated above: a present value is a Scalar of the right kind.
            effective[name] = _normalized(param, cast(Scalar, values[name]))
        elif "default" in param:
            effective[name] = _normalized(param, param["default"])
    return effective


def format_problems(problems: Sequence[Problem], prefix: str = DEFAULT_PREFIX) -> str:
    """One line for a condition message or an error: each problem as ``<field>: <message>``.

    >>> format_problems([Problem("epochs", "OutOfRange", "expected ...", "...")])
    'spec.hyperparameters.epochs: expected ...'
    """
    return "; ".join(problem.render(prefix) for problem in problems)


# --- parsing a declared schema ---------------------------------------------------------------

_KNOWN_KEYS: Final = frozenset(
    {
        "name",
        "type",
        "description",
        "required",
        "default",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "choices",
    }
)


def _parse_one(
    raw: Mapping[str, object], at: str
) -> tuple[Hyperparameter | None, list[SchemaProblem]]:
    problems: list[SchemaProblem] = []

    def problem(field: str, message: str) -> None:
        problems.append(SchemaProblem(f"{at}.{field}", message))

    for key in sorted(set(raw) - _KNOWN_KEYS):
        close = closest(key, sorted(_KNOWN_KEYS))
        problem(key, "unknown field" + (f"; did you mean {close!r}?" if close else ""))

    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        problem("name", f"must be an identifier (letters, digits, _), got {show(name)}")
        name = None
    kind = raw.get("type")
    if kind not in HYPERPARAMETER_TYPES:
        problem("type", f"must be one of {', '.join(HYPERPARAMETER_TYPES)}, got {show(kind)}")
        kind = None
    description = raw.get("description", "")
    if not isinstance(description, str):
        problem("description", f"must be a string, got {show(description)}")
        description = ""
    required = raw.get("required", False)
    if not isinstance(required, bool):
        problem("required", f"must be true or false, got {show(required)}")
        required = False
    if name is None or kind is None:
        return None, problems

    param: Hyperparameter = {
        "name": name,
        "type": kind,
        "description": description,
        "required": required,
    }
    _parse_bounds(raw, param, problem)
    _parse_choices(raw, param, problem)
    _parse_default(raw, param, problem)
    return param, problems


#: Reports a problem of one schema field: ``(field, message)``.
_Report = Callable[[str, str], None]


def _parse_bounds(raw: Mapping[str, object], param: Hyperparameter, problem: _Report) -> None:
    """``minimum``/``maximum`` and their ``exclusive`` flags, for numeric parameters only."""
    kind = param["type"]
    numeric = kind in ("int", "float")
    for bound in ("minimum", "maximum"):
        if bound not in raw:
            continue
        value = raw[bound]
        if not numeric:
            problem(bound, f"applies only to int and float parameters, not {kind}")
        elif not _is_number(value) or not math.isfinite(value):
            problem(bound, f"must be a finite number, got {show(value)}")
        elif kind == "int" and isinstance(value, float) and not value.is_integer():
            problem(bound, f"must be an integer for an int parameter, got {show(value)}")
        else:
            param[bound] = value
    for flag in ("exclusiveMinimum", "exclusiveMaximum"):
        if flag not in raw:
            continue
        value = raw[flag]
        bound = "minimum" if flag == "exclusiveMinimum" else "maximum"
        if not isinstance(value, bool):
            problem(flag, f"must be true or false, got {show(value)}")
        elif bound not in raw:
            problem(flag, f"needs {bound} to be set")
        else:
            param[flag] = value
    low, high = param.get("minimum"), param.get("maximum")
    if low is not None and high is not None and low > high:
        problem("maximum", f"must not be below minimum ({_number(high)} < {_number(low)})")


def _parse_choices(raw: Mapping[str, object], param: Hyperparameter, problem: _Report) -> None:
    """The ``choices`` of an enum, each listed once; refused on other types."""
    kind = param["type"]
    if kind == "enum":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            problem("choices", "an enum needs a non-empty list of choices")
        elif not all(isinstance(c, str | int | float) for c in choices):
            problem("choices", "choices must be strings, numbers or booleans")
        else:
            unique: list[Scalar] = []
            for choice in cast(list[Scalar], choices):
                if any(_same_kind(choice, u) and choice == u for u in unique):
                    problem("choices", f"{show(choice)} is listed twice")
                else:
                    unique.append(choice)
            param["choices"] = unique
    elif "choices" in raw:
        problem("choices", f"applies only to enum parameters, not {kind}; use type: enum")


def _parse_default(raw: Mapping[str, object], param: Hyperparameter, problem: _Report) -> None:
    """The ``default``, checked against the parameter it belongs to."""
    kind, required = param["type"], param["required"]
    if "default" in raw:
        default = raw["default"]
        if required:
            problem(
                "default",
                "a required parameter has no default; drop the default or required: true",
            )
        elif kind == "enum" and "choices" not in param:
            pass  # already reported on choices
        else:
            found = _check_value(param, default)
            if found is not None:
                problem("default", found[1])
            else:
                param["default"] = _normalized(param, cast(Scalar, default))


def parse_schema(raw: object) -> tuple[list[Hyperparameter], list[SchemaProblem]]:
    """Parse a declared hyperparameter list, as written in a gallery entry.

    Returns the usable parameters and every problem (with paths like ``[2].default``).
    A parameter with a problem in a field that can be dropped (e.g. a bad bound) is still
    returned, so callers that need an all-or-nothing answer must check the problems.
    """
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [SchemaProblem("", f"must be a list of parameters, got {show(raw)}")]
    params: list[Hyperparameter] = []
    problems: list[SchemaProblem] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        at = f"[{index}]"
        if not isinstance(item, Mapping):
            problems.append(SchemaProblem(at, f"must be a mapping, got {show(item)}"))
            continue
        param, found = _parse_one(cast(Mapping[str, object], item), at)
        problems.extend(found)
        if param is None:
            continue
        if param["name"] in seen:
            problems.append(SchemaProblem(f"{at}.name", f"{param['name']!r} is declared twice"))
            continue
        seen.add(param["name"])
        params.append(param)
    return params, problems


def boot_arguments(values: Mapping[str, Scalar]) -> list[str]:
    """Hyperparameters as a ModelArts boot file receives them: one ``--<name>=<value>``
    argument each, sorted by name.

    Booleans are ``true``/``false``, integers decimal, floats Python's shortest round-trip
    ``repr`` (``0.001``, ``1e-05``), strings verbatim — each is one argv element, so spaces,
    quotes and unicode need no escaping. The trainer's ``hyperparameters.decode`` reads
    them back against the same schema.
    """
    return [f"--{name}={_boot_value(values[name])}" for name in sorted(values)]


def _boot_value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)
