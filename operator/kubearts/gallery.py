"""The algorithm and data set gallery, and how a Subscription pins an algorithm version.

Pure functions only: ConfigMaps come in as plain dicts (as in a kopf event body, or
``ApiClient().sanitize_for_serialization(...)``), and remote indexes are read through an
injected fetcher, so everything here is testable without a cluster.

Gallery format
==============

A gallery named ``<g>`` is every ConfigMap in the operator namespace labelled
``kubearts.io/gallery: "<g>"`` (the chart ships ``default``). Each ConfigMap's ``data`` holds
one key per entry, so entries are edited, added and removed independently:

``algorithm.<name>.yaml``
    One algorithm: ``displayName``, ``description``, ``task``, ``framework`` and a list of
    ``versions`` (see :class:`AlgorithmVersion`). ``<name>`` is the name Subscriptions use
    (lower case, digits, ``_`` and ``-``); an optional ``name`` field must repeat it.
``dataset.<name>.yaml``
    One public data set (see :class:`DatasetEntry`).
``index.<name>.url``
    The URL of a remote index to merge into this gallery (see below).

The ``.yaml`` suffix may also be ``.yml``, ``.json`` or absent. The value is YAML (or JSON)
text. YAML anchors work within one entry, e.g. to share a hyperparameter list between
versions. Versions are semantic versions (``MAJOR.MINOR.PATCH[-pre][+build]``) written as
strings and ordered by semver precedence (``1.10.0`` > ``1.9.0``). A published version is
meant to be immutable: publish a new version rather than editing one (a Subscription pinned
to an edited version reports ``Synced=False`` with reason ``VersionChanged``).

A remote index is an http(s) URL serving one YAML or JSON mapping with the same keys as a
ConfigMap's ``data``, whose values are either entry text or the entry itself as a nested
mapping. Remote indexes cannot declare further indexes. When the same entry is defined
twice, ConfigMaps (in name order) win over remote indexes (in key order); the loser is
reported as a warning.

Problems
========

Parsing never stops at the first mistake: every problem is collected as a
:class:`GalleryProblem` naming the source (ConfigMap or URL), the key and the field, and a
broken entry or version is left out without hiding the others. Unknown fields are warnings
(the entry is kept), everything else is an error (the entry or version is dropped).

Subscriptions
=============

:func:`subscription_status` turns a gallery, a Subscription's spec and its previous status
into the new status. The rules:

* Nothing pinned yet, or the user edited ``spec.gallery``, ``spec.algorithm`` or
  ``spec.version`` (compared with ``status.gallery``/``algorithm``/``requestedVersion``):
  resolve and pin. ``latest`` means the highest version without a pre-release tag (or the
  highest pre-release if there is nothing else). Editing ``spec.version`` to ``latest``
  again is an edit like any other: it re-pins to the newest version at that moment.
* Otherwise the pin stays exactly as it is, whatever the gallery now says. Newer versions
  are listed in ``status.availableVersions`` and raise ``UpdateAvailable=True``; the user
  moves by editing ``spec.version``.
* If the pinned algorithm or version disappears from the gallery, or the gallery cannot be
  read, the pinned data stays: ``Synced=False`` (``AlgorithmRemoved``, ``VersionRemoved``,
  ``VersionChanged``, ``GalleryUnavailable``) while ``Ready`` stays ``True`` with reason
  ``Pinned``, because training can still use the pinned image and schema.
* If a (re-)resolution fails, pinned fields are never erased: a pin from before the edit
  stays visible, but ``Ready=False`` since the spec as written cannot be satisfied.

A Subscription handler therefore reads the gallery ConfigMaps (label selector
:func:`gallery_selector`), calls :func:`load_gallery` (None on an API error), then
:func:`subscription_status` with the spec, the current status and ``metadata.generation``,
and writes the returned status whole. It retries after a delay when Ready is False with a
reason in :data:`RETRYABLE_REASONS`, and re-syncs on gallery ConfigMap changes or a timer
so that ``UpdateAvailable`` appears without any edit to the Subscription.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Final, Literal, NotRequired, TypedDict, cast

import yaml

from kubearts.conditions import Condition, phase, set_condition
from kubearts.hyperparameters import Hyperparameter, parse_schema

# --- names -----------------------------------------------------------------------------------

#: Label on gallery ConfigMaps; its value is the gallery name (same as constants.GALLERY_LABEL,
#: repeated so this module stands alone).
GALLERY_LABEL: Final = "kubearts.io/gallery"
DEFAULT_GALLERY: Final = "default"
LATEST: Final = "latest"

TRAINING_DEVICES: Final[tuple[str, ...]] = ("cpu", "gpu", "ascend910")
INFERENCE_DEVICES: Final[tuple[str, ...]] = ("cpu", "gpu", "ascend310")
DATASET_FORMATS: Final[tuple[str, ...]] = ("ImageFolder", "Manifest")
OUTPUT_FORMATS: Final[tuple[str, ...]] = ("saved_model", "frozen_graph", "onnx")
TENSOR_DTYPES: Final[tuple[str, ...]] = (
    "float32",
    "float16",
    "int8",
    "uint8",
    "int32",
    "int64",
    "string",
    "bool",
)
TENSOR_LAYOUTS: Final[tuple[str, ...]] = ("NHWC", "NCHW")

# Condition types and reasons a Subscription reports.
COND_READY: Final = "Ready"
COND_SYNCED: Final = "Synced"
COND_UPDATE_AVAILABLE: Final = "UpdateAvailable"

REASON_RESOLVED: Final = "Resolved"
"""Synced/Ready: the pin matches the gallery."""
REASON_PINNED: Final = "Pinned"
"""Ready: usable from the pinned data although the gallery no longer matches it."""
REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_GALLERY_UNAVAILABLE: Final = "GalleryUnavailable"
REASON_ALGORITHM_NOT_FOUND: Final = "AlgorithmNotFound"
REASON_ALGORITHM_INVALID: Final = "AlgorithmInvalid"
REASON_VERSION_NOT_FOUND: Final = "VersionNotFound"
REASON_VERSION_INVALID: Final = "VersionInvalid"
REASON_ALGORITHM_REMOVED: Final = "AlgorithmRemoved"
REASON_VERSION_REMOVED: Final = "VersionRemoved"
REASON_VERSION_CHANGED: Final = "VersionChanged"
REASON_UPDATE_AVAILABLE: Final = "UpdateAvailable"
REASON_UP_TO_DATE: Final = "UpToDate"
REASON_NOT_RESOLVED: Final = "NotResolved"

#: Reasons worth retrying soon by themselves (the others wait for a gallery or spec edit).
RETRYABLE_REASONS: Final = frozenset({REASON_GALLERY_UNAVAILABLE})

_ENTRY_KEY_RE: Final = re.compile(
    r"^(?P<kind>algorithm|dataset)\.(?P<name>[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?)"
    r"(?:\.(?:yaml|yml|json))?$"
)
_INDEX_KEY_RE: Final = re.compile(r"^index\.(?P<name>[A-Za-z0-9](?:[A-Za-z0-9_-]*))\.url$")
_SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_SEMVER_RE: Final = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)

# --- semantic versions -----------------------------------------------------------------------


@dataclass(frozen=True)
class SemVer:
    """A parsed semantic version; compare with :attr:`key` (build metadata is ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()
    build: str = ""

    @property
    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        """Sort key implementing semver precedence.

        A release sorts after its pre-releases; pre-release identifiers compare numerically
        when numeric, lexically otherwise, numeric before alphanumeric; a longer list of
        equal leading identifiers sorts later.
        """
        pre = tuple(
            (0, part, "") if isinstance(part, int) else (1, 0, part) for part in self.prerelease
        )
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)


def parse_version(text: str) -> SemVer:
    """Parse ``MAJOR.MINOR.PATCH[-pre][+build]``; raise ValueError naming the expected form."""
    match = _SEMVER_RE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a semantic version like 1.2.0 or 1.2.0-rc.1")
    pre = match.group(4)
    parts: tuple[int | str, ...] = ()
    if pre:
        parts = tuple(int(p) if p.isdigit() else p for p in pre.split("."))
    return SemVer(
        int(match.group(1)), int(match.group(2)), int(match.group(3)), parts, match.group(5) or ""
    )


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Version strings in ascending semver precedence (all must be valid)."""
    return sorted(versions, key=lambda v: parse_version(v).key)


# --- entry shapes ----------------------------------------------------------------------------


class Entrypoint(TypedDict):
    """How the image is started: container ``command`` and fixed ``args``."""

    command: list[str]
    args: list[str]


class TensorSpec(TypedDict):
    """One input or output tensor of an exported model; ``-1`` in a shape is dynamic."""

    name: str
    dtype: str
    shape: list[int]
    layout: NotRequired[str]
    description: NotRequired[str]


class OutputArtifact(TypedDict):
    """A model format a training run writes, ``path`` relative to the run's output."""

    format: str
    path: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


class InputContract(TypedDict):
    """What the algorithm needs from its input data set."""

    requiresSplitVersion: bool
    """True: the input must be a Dataset version with a train/eval split."""
    formats: list[str]
    """Dataset formats it reads (``ImageFolder``, ``Manifest``)."""


class AlgorithmVersion(TypedDict):
    """One published version of an algorithm."""

    version: str
    description: str
    image: str
    entrypoint: Entrypoint
    hyperparameters: list[Hyperparameter]
    trainingDevices: list[str]
    inferenceDevices: list[str]
    contract: InputContract
    outputs: list[OutputArtifact]


class AlgorithmEntry(TypedDict):
    """An algorithm in the gallery, its usable versions in ascending order."""

    name: str
    displayName: str
    description: str
    task: str
    framework: str
    versions: list[AlgorithmVersion]


class DatasetSource(TypedDict):
    uri: str
    sha256: NotRequired[str]


class DatasetEntry(TypedDict):
    """A public data set offered by the gallery."""

    name: str
    displayName: str
    description: str
    task: str
    format: str
    source: DatasetSource
    classes: list[str]
    samples: NotRequired[int]
    sizeBytes: NotRequired[int]
    license: NotRequired[str]
    homepage: NotRequired[str]


# --- problems and the gallery ----------------------------------------------------------------

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class GalleryProblem:
    """A mistake in gallery data, located precisely enough to fix it."""

    source: str
    """``ConfigMap <name>`` or ``index <url>``."""
    key: str
    """The data key, e.g. ``algorithm.resnet_v1_50.yaml`` ("" for the source as a whole)."""
    field: str
    """Path inside the entry, e.g. ``versions[1].hyperparameters[0].default``."""
    message: str
    severity: Severity = "error"
    kind: str = ""
    """``algorithm`` or ``dataset`` when the key names an entry."""
    entry: str = ""
    """The entry's name when the key names one."""
    version: str = ""
    """The version, for problems inside one version."""

    def __str__(self) -> str:
        where = self.source
        if self.key:
            where += f", key {self.key}"
        if self.field:
            where += f", field {self.field}"
        return f"{where}: {self.message}" + (" (warning)" if self.severity == "warning" else "")


@dataclass(frozen=True)
class Gallery:
    """A parsed gallery: usable entries, and every problem met on the way."""

    name: str
    algorithms: Mapping[str, AlgorithmEntry] = field(default_factory=dict)
    datasets: Mapping[str, DatasetEntry] = field(default_factory=dict)
    problems: tuple[GalleryProblem, ...] = ()
    sources: tuple[str, ...] = ()
    """What was read: ``ConfigMap <name>`` and ``index <url>``."""
    remote_indexes: tuple[str, ...] = ()
    """URLs declared by ``index.<name>.url`` keys (in key order)."""
    unreachable: tuple[str, ...] = ()
    """Remote index URLs that could not be fetched or parsed."""

    @property
    def available(self) -> bool:
        """False when nothing at all was found for this gallery name."""
        return bool(self.sources)

    @property
    def errors(self) -> tuple[GalleryProblem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    def problems_for(
        self, kind: str, name: str, version: str | None = None
    ) -> list[GalleryProblem]:
        """Problems about one entry (and, if given, one of its versions)."""
        return [
            p
            for p in self.problems
            if p.kind == kind and p.entry == name and (version is None or p.version == version)
        ]


# --- parsing helpers -------------------------------------------------------------------------


def _show(value: object) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


class _Reporter:
    """Collects problems for one data key, with the entry's identity filled in."""

    def __init__(self, source: str, key: str, kind: str = "", entry: str = "") -> None:
        self.source = source
        self.key = key
        self.kind = kind
        self.entry = entry
        self.problems: list[GalleryProblem] = []

    def error(self, at: str, message: str, version: str = "") -> None:
        self.problems.append(
            GalleryProblem(
                self.source, self.key, at, message, "error", self.kind, self.entry, version
            )
        )

    def warning(self, at: str, message: str, version: str = "") -> None:
        self.problems.append(
            GalleryProblem(
                self.source, self.key, at, message, "warning", self.kind, self.entry, version
            )
        )

    def count(self, version: str | None = None) -> int:
        """Errors so far (for one version, if given)."""
        return sum(
            1
            for p in self.problems
            if p.severity == "error" and (version is None or p.version == version)
        )


def _join(at: str, name: str) -> str:
    return f"{at}.{name}" if at else name


class _Fields:
    """Typed reads from one mapping, reporting each bad field once, at its path."""

    def __init__(
        self, raw: Mapping[str, object], at: str, report: _Reporter, version: str = ""
    ) -> None:
        self.raw = raw
        self.at = at
        self.report = report
        self.version = version

    def _error(self, key: str, message: str) -> None:
        self.report.error(_join(self.at, key), message, self.version)

    def unknown(self, known: Iterable[str]) -> None:
        known_keys = sorted(known)
        for key in sorted(set(self.raw) - set(known_keys)):
            close = _closest(key, known_keys)
            hint = f"; did you mean {close!r}?" if close else ""
            self.report.warning(_join(self.at, key), f"unknown field, ignored{hint}", self.version)

    def string(self, key: str, *, default: str | None = None, choices: Sequence[str] = ()) -> str:
        value = self.raw.get(key, default)
        if value is None:
            self._error(key, "is required")
            return ""
        if not isinstance(value, str) or (default is None and not value.strip()):
            self._error(key, f"must be a non-empty string, got {_show(value)}")
            return ""
        if choices and value not in choices:
            self._error(key, f"must be one of {', '.join(choices)}, got {_show(value)}")
            return ""
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            self._error(key, f"must be true or false, got {_show(value)}")
            return default
        return value

    def integer(self, key: str) -> int | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self._error(key, f"must be a non-negative integer, got {_show(value)}")
            return None
        return value

    def strings(
        self,
        key: str,
        *,
        required: bool = True,
        choices: Sequence[str] = (),
    ) -> list[str]:
        value = self.raw.get(key)
        if value is None:
            if required:
                self._error(
                    key, "is required" + (f" (any of {', '.join(choices)})" if choices else "")
                )
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self._error(key, f"must be a list of non-empty strings, got {_show(value)}")
            return []
        items = cast(list[str], value)
        if required and not items:
            self._error(key, "must not be empty")
        if choices:
            bad = [v for v in items if v not in choices]
            if bad:
                self._error(key, f"unknown {', '.join(bad)}; allowed: {', '.join(choices)}")
                return []
        if len(set(items)) != len(items):
            self._error(key, f"lists an item twice: {_show(items)}")
        return list(items)

    def mapping(self, key: str, *, required: bool = True) -> Mapping[str, object] | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                self._error(key, "is required")
            return None
        if not isinstance(value, Mapping):
            self._error(key, f"must be a mapping, got {_show(value)}")
            return None
        return cast(Mapping[str, object], value)

    def items(self, key: str, *, required: bool = True) -> list[tuple[str, Mapping[str, object]]]:
        """A list of mappings, each with its path ``key[i]``."""
        value = self.raw.get(key)
        if value is None:
            if required:
                self._error(key, "is required")
            return []
        if not isinstance(value, list) or (required and not value):
            self._error(key, f"must be a non-empty list, got {_show(value)}")
            return []
        result = []
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                result.append((f"{_join(self.at, key)}[{index}]", cast(Mapping[str, object], item)))
            else:
                self._error(f"{key}[{index}]", f"must be a mapping, got {_show(item)}")
        return result


# --- entry parsers ---------------------------------------------------------------------------


def _tensor(at: str, raw: Mapping[str, object], report: _Reporter, version: str) -> TensorSpec:
    f = _Fields(raw, at, report, version)
    f.unknown(TensorSpec.__annotations__)
    tensor: TensorSpec = {
        "name": f.string("name"),
        "dtype": f.string("dtype", choices=TENSOR_DTYPES),
        "shape": [],
    }
    shape = raw.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape)
    ):
        f._error("shape", f"must be a list of sizes (-1 for a dynamic size), got {_show(shape)}")
    else:
        tensor["shape"] = cast(list[int], shape)
    if "layout" in raw:
        tensor["layout"] = f.string("layout", choices=TENSOR_LAYOUTS)
    if "description" in raw:
        tensor["description"] = f.string("description", default="")
    return tensor


def _version(at: str, raw: Mapping[str, object], report: _Reporter) -> AlgorithmVersion | None:
    number = raw.get("version")
    label = number if isinstance(number, str) else ""
    f = _Fields(raw, at, report, label)
    f.unknown(AlgorithmVersion.__annotations__)
    if isinstance(number, int | float) and not isinstance(number, bool):
        f._error("version", f"must be a quoted string (YAML read {number!r}); write '{number}.0'")
    elif not isinstance(number, str):
        f._error("version", f"must be a semantic version string like 1.0.0, got {_show(number)}")
    else:
        try:
            parse_version(number)
        except ValueError as exc:
            f._error("version", str(exc))

    entrypoint: Entrypoint = {"command": [], "args": []}
    raw_entry = f.mapping("entrypoint")
    if raw_entry is not None:
        e = _Fields(raw_entry, _join(at, "entrypoint"), report, label)
        e.unknown(Entrypoint.__annotations__)
        entrypoint = {"command": e.strings("command"), "args": e.strings("args", required=False)}

    image = f.string("image")
    if image and any(c.isspace() for c in image):
        f._error("image", f"must be an image reference without spaces, got {_show(image)}")

    params, schema_problems = parse_schema(raw.get("hyperparameters"))
    for problem in schema_problems:
        report.error(f"{_join(at, 'hyperparameters')}{problem.field}", problem.message, label)

    contract: InputContract = {"requiresSplitVersion": True, "formats": []}
    raw_contract = f.mapping("contract")
    if raw_contract is not None:
        c = _Fields(raw_contract, _join(at, "contract"), report, label)
        c.unknown(InputContract.__annotations__)
        contract = {
            "requiresSplitVersion": c.boolean("requiresSplitVersion", True),
            "formats": c.strings("formats", choices=DATASET_FORMATS),
        }

    outputs: list[OutputArtifact] = []
    for out_at, raw_out in f.items("outputs"):
        o = _Fields(raw_out, out_at, report, label)
        o.unknown(OutputArtifact.__annotations__)
        outputs.append(
            {
                "format": o.string("format", choices=OUTPUT_FORMATS),
                "path": o.string("path"),
                "inputs": [_tensor(a, t, report, label) for a, t in o.items("inputs")],
                "outputs": [_tensor(a, t, report, label) for a, t in o.items("outputs")],
            }
        )

    version: AlgorithmVersion = {
        "version": label,
        "description": f.string("description", default=""),
        "image": image,
        "entrypoint": entrypoint,
        "hyperparameters": params,
        "trainingDevices": f.strings("trainingDevices", choices=TRAINING_DEVICES),
        "inferenceDevices": f.strings("inferenceDevices", choices=INFERENCE_DEVICES),
        "contract": contract,
        "outputs": outputs,
    }
    # A version with any error is left out whole: half a schema or a missing device list
    # would let a TrainingJob start with wrong assumptions.
    if not label or report.count(label):
        return None
    return version


def _algorithm(name: str, raw: Mapping[str, object], report: _Reporter) -> AlgorithmEntry | None:
    f = _Fields(raw, "", report)
    f.unknown(AlgorithmEntry.__annotations__)
    if "name" in raw and raw["name"] != name:
        f._error(
            "name", f"must match the key's name {name!r} (or be left out), got {_show(raw['name'])}"
        )
    task = f.string("task")
    framework = f.string("framework")
    display = f.string("displayName", default=name)
    description = f.string("description", default="")
    metadata_errors = report.count()

    versions: dict[str, AlgorithmVersion] = {}
    for at, raw_version in f.items("versions"):
        parsed = _version(at, raw_version, report)
        if parsed is None:
            continue
        number = parsed["version"]
        clash = next(
            (v for v in versions if parse_version(v).key == parse_version(number).key), None
        )
        if clash is not None:
            report.error(
                _join(at, "version"), f"{number} is listed twice (also as {clash})", number
            )
            continue
        versions[number] = parsed
    if metadata_errors or ("versions" in raw and not isinstance(raw["versions"], list)):
        return None
    if "versions" not in raw:
        return None
    return {
        "name": name,
        "displayName": display,
        "description": description,
        "task": task,
        "framework": framework,
        "versions": [versions[v] for v in sort_versions(versions)],
    }


def _dataset(name: str, raw: Mapping[str, object], report: _Reporter) -> DatasetEntry | None:
    f = _Fields(raw, "", report)
    f.unknown(DatasetEntry.__annotations__)
    if "name" in raw and raw["name"] != name:
        f._error(
            "name", f"must match the key's name {name!r} (or be left out), got {_show(raw['name'])}"
        )
    source: DatasetSource = {"uri": ""}
    raw_source = f.mapping("source")
    if raw_source is not None:
        s = _Fields(raw_source, "source", report)
        s.unknown(DatasetSource.__annotations__)
        source = {"uri": s.string("uri")}
        if source["uri"] and urllib.parse.urlparse(source["uri"]).scheme not in (
            "http",
            "https",
            "s3",
            "pvc",
            "file",
        ):
            s._error(
                "uri",
                f"needs a scheme http(s)://, s3://, pvc:// or file://, got {_show(source['uri'])}",
            )
        if "sha256" in raw_source:
            digest = s.string("sha256")
            if digest and not _SHA256_RE.match(digest):
                s._error("sha256", "must be 64 lower-case hex digits")
            else:
                source["sha256"] = digest
    entry: DatasetEntry = {
        "name": name,
        "displayName": f.string("displayName", default=name),
        "description": f.string("description", default=""),
        "task": f.string("task"),
        "format": f.string("format", choices=DATASET_FORMATS),
        "source": source,
        "classes": f.strings("classes", required=False),
    }
    for key in ("samples", "sizeBytes"):
        number = f.integer(key)
        if number is not None:
            entry[key] = number
    if "license" in raw:
        entry["license"] = f.string("license")
    if "homepage" in raw:
        entry["homepage"] = f.string("homepage")
    return None if report.count() else entry


# --- parsing whole galleries -----------------------------------------------------------------

ConfigMapLike = Mapping[str, object]


def _metadata(doc: ConfigMapLike) -> tuple[str, str, Mapping[str, object]]:
    """(kind, name, labels) of a ConfigMap-like dict."""
    meta = doc.get("metadata")
    meta = cast(Mapping[str, object], meta) if isinstance(meta, Mapping) else {}
    labels = meta.get("labels")
    labels = cast(Mapping[str, object], labels) if isinstance(labels, Mapping) else {}
    kind = doc.get("kind")
    return (kind if isinstance(kind, str) else "ConfigMap"), str(meta.get("name", "")), labels


def _load_text(value: object, report: _Reporter) -> object:
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        report.error("", f"is not valid YAML{where}: {problem}")
        return None


def parse_gallery(configmaps: Iterable[ConfigMapLike], *, name: str | None = None) -> Gallery:
    """Parse gallery ConfigMaps (and fetched remote indexes) into a :class:`Gallery`.

    ``name``: only ConfigMaps labelled ``kubearts.io/gallery=<name>`` are read (others are
    skipped, so callers may pass a whole namespace's list). Without it, every ConfigMap given
    is read and the gallery takes its name from the first label found.

    Documents with ``kind: RemoteIndex`` (from :func:`fetch_remote_index`) are read after
    the ConfigMaps and need no label.
    """
    local: list[tuple[str, ConfigMapLike]] = []
    remote: list[tuple[str, ConfigMapLike]] = []
    gallery_name = name
    for doc in configmaps:
        kind, doc_name, labels = _metadata(doc)
        if kind == "RemoteIndex":
            remote.append((f"index {doc_name}", doc))
            continue
        label = labels.get(GALLERY_LABEL)
        if name is not None and label != name:
            continue
        if gallery_name is None and isinstance(label, str):
            gallery_name = label
        local.append((f"ConfigMap {doc_name}", doc))
    local.sort(key=lambda item: item[0])

    algorithms: dict[str, AlgorithmEntry] = {}
    datasets: dict[str, DatasetEntry] = {}
    origin: dict[tuple[str, str], str] = {}
    problems: list[GalleryProblem] = []
    indexes: list[str] = []

    for source, doc in [*local, *remote]:
        data = doc.get("data")
        if data is None:
            continue
        if not isinstance(data, Mapping):
            problems.append(
                GalleryProblem(source, "", "data", f"must be a mapping, got {_show(data)}")
            )
            continue
        for key in sorted(cast(Mapping[str, object], data)):
            value = cast(Mapping[str, object], data)[key]
            index_match = _INDEX_KEY_RE.match(key)
            if index_match is not None:
                if source.startswith("index "):
                    problems.append(
                        GalleryProblem(
                            source, key, "", "remote indexes cannot declare further indexes"
                        )
                    )
                elif not isinstance(value, str) or urllib.parse.urlparse(
                    value.strip()
                ).scheme not in (
                    "http",
                    "https",
                ):
                    problems.append(
                        GalleryProblem(
                            source, key, "", f"must be an http(s) URL, got {_show(value)}"
                        )
                    )
                else:
                    indexes.append(value.strip())
                continue
            match = _ENTRY_KEY_RE.match(key)
            if match is None:
                problems.append(
                    GalleryProblem(
                        source,
                        key,
                        "",
                        "unknown key: entries are algorithm.<name>.yaml or dataset.<name>.yaml "
                        "(lower-case name), remote indexes index.<name>.url",
                    )
                )
                continue
            kind, entry_name = match.group("kind"), match.group("name")
            report = _Reporter(source, key, kind, entry_name)
            previous = origin.get((kind, entry_name))
            if previous is not None:
                report.warning(
                    "",
                    f"{kind} {entry_name!r} is already defined in {previous}; this copy is ignored",
                )
                problems.extend(report.problems)
                continue
            document = _load_text(value, report)
            if not report.problems and not isinstance(document, Mapping):
                report.error(
                    "", f"must be a YAML mapping describing the {kind}, got {_show(document)}"
                )
            if isinstance(document, Mapping):
                raw = cast(Mapping[str, object], document)
                if kind == "algorithm":
                    parsed_algorithm = _algorithm(entry_name, raw, report)
                    if parsed_algorithm is not None:
                        algorithms[entry_name] = parsed_algorithm
                else:
                    parsed_dataset = _dataset(entry_name, raw, report)
                    if parsed_dataset is not None:
                        datasets[entry_name] = parsed_dataset
            # An entry that failed still claims its name: a broken ConfigMap entry must not
            # let a remote index's copy take over silently.
            origin[(kind, entry_name)] = f"{source}, key {key}"
            problems.extend(report.problems)

    return Gallery(
        name=gallery_name or "",
        algorithms=dict(sorted(algorithms.items())),
        datasets=dict(sorted(datasets.items())),
        problems=tuple(problems),
        sources=tuple(source for source, _ in [*local, *remote]),
        remote_indexes=tuple(indexes),
    )


def gallery_selector(name: str) -> str:
    """The label selector listing the ConfigMaps of gallery ``name``."""
    return f"{GALLERY_LABEL}={name}"


# --- remote indexes --------------------------------------------------------------------------

#: ``fetch(url, timeout_seconds) -> body``; raises on any failure.
Fetcher = Callable[[str, float], bytes]

#: Upper bound on a remote index body; a gallery is text, megabytes mean a wrong URL.
MAX_INDEX_BYTES: Final = 4 * 1024 * 1024


class GalleryFetchError(Exception):
    """A remote index could not be fetched or is not a gallery index."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.message = message
        super().__init__(f"remote index {url}: {message}")


def urllib_fetch(url: str, timeout: float) -> bytes:
    """Fetch ``url`` over http(s) with ``timeout`` seconds for connecting and each read."""
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        # Never file:// or ftp://: a URL from a ConfigMap must not read the operator's files.
        raise GalleryFetchError(url, "only http:// and https:// URLs are supported")
    request = urllib.request.Request(
        url, headers={"Accept": "application/yaml, application/json;q=0.9, text/plain;q=0.5"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = cast(bytes, response.read(MAX_INDEX_BYTES + 1))
    except urllib.error.HTTPError as exc:
        raise GalleryFetchError(url, f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise GalleryFetchError(url, f"cannot connect: {exc.reason}") from exc
    except (TimeoutError, OSError) as exc:
        raise GalleryFetchError(url, f"failed: {exc}") from exc
    if len(body) > MAX_INDEX_BYTES:
        raise GalleryFetchError(url, f"larger than {MAX_INDEX_BYTES} bytes")
    return body


def fetch_remote_index(
    url: str, *, fetch: Fetcher = urllib_fetch, timeout: float = 10.0
) -> dict[str, object]:
    """Fetch one remote index and return it as a ConfigMap-like ``RemoteIndex`` document.

    The result goes to :func:`parse_gallery` together with the ConfigMaps. Raises
    :class:`GalleryFetchError` when the URL cannot be read or is not a YAML/JSON mapping.
    """
    try:
        body = fetch(url, timeout)
    except GalleryFetchError:
        raise
    except Exception as exc:  # an injected fetcher may raise anything; report it uniformly
        raise GalleryFetchError(url, f"failed: {exc}") from exc
    try:
        document = yaml.safe_load(body.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise GalleryFetchError(url, f"is not UTF-8 YAML or JSON: {exc}") from exc
    if not isinstance(document, Mapping):
        raise GalleryFetchError(
            url, f"must be a mapping of gallery keys to entries, got {type(document).__name__}"
        )
    return {"kind": "RemoteIndex", "metadata": {"name": url}, "data": dict(document)}


def load_gallery(
    configmaps: Iterable[ConfigMapLike],
    *,
    name: str | None = None,
    fetch: Fetcher | None = urllib_fetch,
    timeout: float = 10.0,
) -> Gallery:
    """Parse ConfigMaps, fetch the remote indexes they declare, and parse everything together.

    ``fetch=None`` skips remote indexes (they are then listed as unreachable). A failed fetch
    is a problem on the index URL and in :attr:`Gallery.unreachable`; the rest of the
    gallery stays usable.
    """
    docs = list(configmaps)
    first = parse_gallery(docs, name=name)
    fetched: list[dict[str, object]] = []
    problems: list[GalleryProblem] = []
    unreachable: list[str] = []
    for url in dict.fromkeys(first.remote_indexes):  # de-duplicated, order kept
        if fetch is None:
            unreachable.append(url)
            problems.append(GalleryProblem(f"index {url}", "", "", "remote indexes are disabled"))
            continue
        try:
            fetched.append(fetch_remote_index(url, fetch=fetch, timeout=timeout))
        except GalleryFetchError as exc:
            unreachable.append(url)
            problems.append(GalleryProblem(f"index {url}", "", "", exc.message))
    if not first.remote_indexes:
        return first
    merged = parse_gallery([*docs, *fetched], name=name)
    return Gallery(
        name=merged.name,
        algorithms=merged.algorithms,
        datasets=merged.datasets,
        problems=merged.problems + tuple(problems),
        sources=merged.sources,
        remote_indexes=merged.remote_indexes,
        unreachable=tuple(unreachable),
    )


# --- resolving -------------------------------------------------------------------------------


class GalleryLookupError(LookupError):
    """A Subscription cannot be resolved; ``reason`` is the condition reason."""

    reason: ClassVar[str] = REASON_NOT_RESOLVED

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class GalleryUnavailableError(GalleryLookupError):
    reason = REASON_GALLERY_UNAVAILABLE


class AlgorithmNotFoundError(GalleryLookupError):
    reason = REASON_ALGORITHM_NOT_FOUND


class AlgorithmInvalidError(GalleryLookupError):
    reason = REASON_ALGORITHM_INVALID


class VersionNotFoundError(GalleryLookupError):
    reason = REASON_VERSION_NOT_FOUND


class VersionInvalidError(GalleryLookupError):
    reason = REASON_VERSION_INVALID


def _first_problems(problems: Sequence[GalleryProblem], limit: int = 3) -> str:
    shown = "; ".join(str(p) for p in problems[:limit])
    more = len(problems) - limit
    return shown + (f"; and {more} more" if more > 0 else "")


def find_algorithm(gallery: Gallery, name: str) -> AlgorithmEntry:
    """The gallery's entry ``name``, or the error explaining why there is none."""
    if not gallery.available:
        raise GalleryUnavailableError(
            f"gallery {gallery.name!r} has no ConfigMap labelled {GALLERY_LABEL}={gallery.name} "
            "in the operator namespace"
        )
    entry = gallery.algorithms.get(name)
    if entry is not None:
        return entry
    broken = [p for p in gallery.problems_for("algorithm", name) if p.severity == "error"]
    if broken:
        raise AlgorithmInvalidError(
            f"algorithm {name!r} in gallery {gallery.name!r} is invalid: {_first_problems(broken)}"
        )
    known = sorted(gallery.algorithms)
    close = _closest(name, known)
    hint = f"did you mean {close!r}? " if close else ""
    listing = ", ".join(known) if known else "none"
    message = f"algorithm {name!r} is not in gallery {gallery.name!r}; {hint}available: {listing}"
    if gallery.unreachable:
        # It may well be in the index we could not read: a transient failure, not a verdict.
        raise GalleryUnavailableError(
            f"{message} (remote index unreachable: {', '.join(gallery.unreachable)})"
        )
    raise AlgorithmNotFoundError(message)


def latest_version(entry: AlgorithmEntry) -> AlgorithmVersion | None:
    """Highest version without a pre-release tag; else the highest pre-release; else None."""
    ordered = sorted(entry["versions"], key=lambda v: parse_version(v["version"]).key)
    stable = [v for v in ordered if not parse_version(v["version"]).is_prerelease]
    if stable:
        return stable[-1]
    return ordered[-1] if ordered else None


def resolve_version(entry: AlgorithmEntry, requested: str) -> AlgorithmVersion:
    """The version ``requested`` (exact string, or ``latest``) of ``entry``.

    Raises :class:`VersionNotFoundError` whose message lists the versions that exist.
    """
    numbers = [v["version"] for v in entry["versions"]]
    listing = ", ".join(numbers) if numbers else "none"
    if requested == LATEST:
        found = latest_version(entry)
        if found is None:
            raise VersionNotFoundError(f"algorithm {entry['name']!r} has no usable versions")
        return found
    for version in entry["versions"]:
        if version["version"] == requested:
            return version
    raise VersionNotFoundError(
        f"version {requested!r} of algorithm {entry['name']!r} is not in the gallery; "
        f"available: {listing} (or {LATEST!r})"
    )


def version_digest(version: AlgorithmVersion) -> str:
    """``sha256:<hex>`` of a version's content, to notice edits of a published version."""
    canonical = json.dumps(version, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def newer_versions(entry: AlgorithmEntry, pinned: str) -> list[str]:
    """Versions of ``entry`` with higher precedence than ``pinned``, ascending."""
    try:
        floor = parse_version(pinned).key
    except ValueError:
        return []
    return [v["version"] for v in entry["versions"] if parse_version(v["version"]).key > floor]


# --- subscription status ---------------------------------------------------------------------


class SubscriptionSpec(TypedDict, total=False):
    gallery: str
    algorithm: str
    version: str


class ConditionInput(TypedDict):
    """A condition before :func:`kubearts.conditions.set_condition` adds its timestamps."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str


class SubscriptionStatus(TypedDict, total=False):
    """``Subscription.status``: everything a Subscription handler writes back."""

    # The pin: written together on a successful resolution, never erased, never changed
    # otherwise.
    gallery: str
    algorithm: str
    displayName: str
    description: str
    task: str
    framework: str
    requestedVersion: str
    """spec.version at the time of pinning; a different spec.version means the user edited it."""
    resolvedVersion: str
    """The pinned, resolved version (``latest`` resolved to a number)."""
    versionDigest: str
    image: str
    entrypoint: Entrypoint
    hyperparameters: list[Hyperparameter]
    trainingDevices: list[str]
    inferenceDevices: list[str]
    contract: InputContract
    outputs: list[OutputArtifact]
    # Recomputed on every sync from the gallery.
    availableVersions: list[str]
    """Versions newer than the pin (all versions when nothing is pinned), ascending."""
    latestVersion: str
    """What ``latest`` would resolve to now."""
    conditions: list[Condition]
    """The previous list with Ready, Synced and UpdateAvailable set (other types kept)."""
    observedGeneration: int
    phase: str
    """Ready, NotReady or Pending, from the Ready condition (kubearts.conditions.phase)."""


#: Status fields that make up the pin (copied unchanged while the pin holds).
PIN_FIELDS: Final[tuple[str, ...]] = (
    "gallery",
    "algorithm",
    "displayName",
    "description",
    "task",
    "framework",
    "requestedVersion",
    "resolvedVersion",
    "versionDigest",
    "image",
    "entrypoint",
    "hyperparameters",
    "trainingDevices",
    "inferenceDevices",
    "contract",
    "outputs",
)


#: Every field of :class:`SubscriptionStatus`. A field the new status leaves out (e.g.
#: ``latestVersion`` once the algorithm left the gallery) must be deleted from the object,
#: which a merge patch does with ``null``.
STATUS_FIELDS: Final[frozenset[str]] = frozenset(SubscriptionStatus.__optional_keys__)


def _condition(
    type_: str, status: Literal["True", "False", "Unknown"], reason: str, message: str
) -> ConditionInput:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def _pin(
    gallery: str, entry: AlgorithmEntry, version: AlgorithmVersion, requested: str
) -> SubscriptionStatus:
    # Deep copies: the status must not share lists with the gallery cache.
    return {
        "gallery": gallery,
        "algorithm": entry["name"],
        "displayName": entry["displayName"],
        "description": entry["description"],
        "task": entry["task"],
        "framework": entry["framework"],
        "requestedVersion": requested,
        "resolvedVersion": version["version"],
        "versionDigest": version_digest(version),
        "image": version["image"],
        "entrypoint": copy.deepcopy(version["entrypoint"]),
        "hyperparameters": copy.deepcopy(version["hyperparameters"]),
        "trainingDevices": list(version["trainingDevices"]),
        "inferenceDevices": list(version["inferenceDevices"]),
        "contract": copy.deepcopy(version["contract"]),
        "outputs": copy.deepcopy(version["outputs"]),
    }


def _previous_pin(previous: Mapping[str, object] | None) -> SubscriptionStatus | None:
    if not previous:
        return None
    if not all(
        isinstance(previous.get(k), str) and previous.get(k)
        for k in ("algorithm", "resolvedVersion", "image")
    ):
        return None
    pin = {k: copy.deepcopy(previous[k]) for k in PIN_FIELDS if k in previous}
    return cast(SubscriptionStatus, pin)


def _spec_values(spec: Mapping[str, object]) -> tuple[str, str, str]:
    def text(key: str, default: str) -> str:
        value = spec.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else default

    return text("gallery", DEFAULT_GALLERY), text("algorithm", ""), text("version", LATEST)


def subscription_gallery(spec: Mapping[str, object]) -> str:
    """The gallery a Subscription spec names (``default`` when unset): the one to load and
    pass to :func:`subscription_status`."""
    return _spec_values(spec)[0]


def _update_condition(available: list[str], pinned: str) -> ConditionInput:
    if available:
        return _condition(
            COND_UPDATE_AVAILABLE,
            "True",
            REASON_UPDATE_AVAILABLE,
            f"newer version(s) {', '.join(available)} available; pinned to {pinned}. "
            "Set spec.version to move.",
        )
    return _condition(
        COND_UPDATE_AVAILABLE, "False", REASON_UP_TO_DATE, f"{pinned} is the newest version"
    )


def _describe_pin(pin: SubscriptionStatus) -> str:
    return (
        f"pinned {pin.get('algorithm')} {pin.get('resolvedVersion')} from gallery "
        f"{pin.get('gallery')!r} (image {pin.get('image')})"
    )


def subscription_status(
    gallery: Gallery | None,
    spec: Mapping[str, object],
    previous_status: Mapping[str, object] | None,
    *,
    generation: int,
    now: datetime | None = None,
) -> SubscriptionStatus:
    """The new status of a Subscription (see the module docstring for the pinning rules).

    ``gallery`` is the one named by ``spec.gallery`` (:func:`load_gallery`), or None when it
    could not be read at all (an API error). ``generation`` is ``metadata.generation``;
    ``now`` stamps conditions that change status (default: the current time).

    The result is the whole status to write: the pin fields (when anything is pinned),
    ``availableVersions``, ``latestVersion``, ``conditions`` (Ready, Synced, UpdateAvailable
    set on the previous list), ``observedGeneration`` and ``phase``. A Ready=False whose
    reason is in :data:`RETRYABLE_REASONS` is worth a retry after a delay; the others change
    only when the gallery or the spec is edited.
    """
    gallery_name, algorithm, requested = _spec_values(spec)
    previous = previous_status or {}
    pin = _previous_pin(previous)
    prev_available = previous.get("availableVersions")
    prev_latest = previous.get("latestVersion")

    edited = pin is None or (
        pin.get("gallery", gallery_name),
        pin.get("algorithm"),
        pin.get("requestedVersion", requested),
    ) != (gallery_name, algorithm, requested)

    status: SubscriptionStatus = copy.copy(pin) if pin is not None else {}
    if isinstance(prev_available, list):
        status["availableVersions"] = [str(v) for v in prev_available]
    if isinstance(prev_latest, str):
        status["latestVersion"] = prev_latest

    if gallery is not None and gallery.name and gallery.name != gallery_name:
        raise ValueError(f"gallery {gallery.name!r} passed for spec.gallery {gallery_name!r}")

    if edited:
        inputs = _resolve_into(status, gallery, gallery_name, algorithm, requested, pin)
    else:
        assert pin is not None  # not edited implies a pin
        inputs = _check_pin(status, gallery, pin)

    conditions = previous.get("conditions")
    merged: list[Condition] = [
        cast(Condition, dict(c))
        for c in (conditions if isinstance(conditions, list) else [])
        if isinstance(c, Mapping)
    ]
    for item in inputs:
        merged = set_condition(
            merged, item["type"], item["status"], item["reason"], item["message"], generation, now
        )
    status["conditions"] = merged
    status["observedGeneration"] = generation
    status["phase"] = phase(merged)
    return status


def _resolve_into(
    status: SubscriptionStatus,
    gallery: Gallery | None,
    gallery_name: str,
    algorithm: str,
    requested: str,
    pin: SubscriptionStatus | None,
) -> list[ConditionInput]:
    """(Re-)resolve after a spec edit or for the first time."""
    entry: AlgorithmEntry | None = None
    try:
        if not algorithm:
            raise _InvalidSpecError("spec.algorithm is empty; name an algorithm of the gallery")
        if gallery is None:
            raise GalleryUnavailableError(f"gallery {gallery_name!r} could not be read")
        entry = find_algorithm(gallery, algorithm)
        try:
            version = resolve_version(entry, requested)
        except VersionNotFoundError as exc:
            broken = [
                p
                for p in gallery.problems_for("algorithm", algorithm)
                if p.severity == "error" and (requested == LATEST or p.version == requested)
            ]
            if broken:
                raise VersionInvalidError(
                    f"{exc.message}; the gallery entry has problems: {_first_problems(broken)}"
                ) from exc
            raise
    except GalleryLookupError as exc:
        if entry is not None:
            status["availableVersions"] = (
                newer_versions(entry, pin["resolvedVersion"])
                if pin is not None and pin.get("algorithm") == entry["name"]
                else [v["version"] for v in entry["versions"]]
            )
            newest = latest_version(entry)
            if newest is not None:
                status["latestVersion"] = newest["version"]
        kept = f"; still {_describe_pin(pin)} from before the edit" if pin is not None else ""
        return [
            _condition(COND_READY, "False", exc.reason, exc.message + kept),
            _condition(COND_SYNCED, "False", exc.reason, exc.message),
            _condition(
                COND_UPDATE_AVAILABLE,
                "Unknown",
                REASON_NOT_RESOLVED,
                "spec.version is not resolved",
            ),
        ]

    new_pin = _pin(gallery_name, entry, version, requested)
    status.update(new_pin)
    available = newer_versions(entry, version["version"])
    status["availableVersions"] = available
    newest = latest_version(entry)
    status["latestVersion"] = newest["version"] if newest is not None else version["version"]
    message = _describe_pin(new_pin)
    return [
        _condition(COND_READY, "True", REASON_RESOLVED, message),
        # Word for word what _check_pin says while the pin matches, so that the first re-sync
        # finds nothing to write.
        _condition(COND_SYNCED, "True", REASON_RESOLVED, f"{message}; matches the gallery"),
        _update_condition(available, version["version"]),
    ]


class _InvalidSpecError(GalleryLookupError):
    reason = REASON_INVALID_SPEC


def _check_pin(
    status: SubscriptionStatus, gallery: Gallery | None, pin: SubscriptionStatus
) -> list[ConditionInput]:
    """Compare an unchanged pin with the gallery; the pin itself is never modified."""
    algorithm = pin.get("algorithm", "")
    pinned = pin.get("resolvedVersion", "")
    described = _describe_pin(pin)

    def keep(reason: str, message: str, update: ConditionInput) -> list[ConditionInput]:
        return [
            _condition(
                COND_READY,
                "True",
                REASON_PINNED,
                f"{described}; the pinned data is kept and usable",
            ),
            _condition(COND_SYNCED, "False", reason, message),
            update,
        ]

    unknown_update = _condition(
        COND_UPDATE_AVAILABLE, "Unknown", REASON_GALLERY_UNAVAILABLE, "the gallery cannot be read"
    )
    if gallery is None:
        return keep(REASON_GALLERY_UNAVAILABLE, "the gallery could not be read", unknown_update)
    try:
        entry = find_algorithm(gallery, algorithm)
    except AlgorithmNotFoundError:
        status["availableVersions"] = []
        status.pop("latestVersion", None)
        return keep(
            REASON_ALGORITHM_REMOVED,
            f"algorithm {algorithm!r} is no longer in gallery {gallery.name!r}",
            _condition(
                COND_UPDATE_AVAILABLE,
                "False",
                REASON_ALGORITHM_REMOVED,
                "the algorithm is no longer offered",
            ),
        )
    except GalleryLookupError as exc:
        update = _condition(COND_UPDATE_AVAILABLE, "Unknown", exc.reason, exc.message)
        return keep(exc.reason, exc.message, update)

    available = newer_versions(entry, pinned)
    status["availableVersions"] = available
    newest = latest_version(entry)
    if newest is not None:
        status["latestVersion"] = newest["version"]
    update = _update_condition(available, pinned)
    current = next((v for v in entry["versions"] if v["version"] == pinned), None)
    if current is None:
        return keep(
            REASON_VERSION_REMOVED,
            f"version {pinned} of {algorithm!r} is no longer in gallery {gallery.name!r}; "
            f"offered: {', '.join(v['version'] for v in entry['versions']) or 'none'}",
            update,
        )
    if "versionDigest" in pin and version_digest(current) != pin["versionDigest"]:
        return keep(
            REASON_VERSION_CHANGED,
            f"the gallery's {algorithm} {pinned} changed after it was pinned; the pinned copy is "
            "kept (publish changes as a new version)",
            update,
        )
    return [
        _condition(COND_READY, "True", REASON_RESOLVED, described),
        _condition(COND_SYNCED, "True", REASON_RESOLVED, f"{described}; matches the gallery"),
        update,
    ]
