"""Reading gallery data: ConfigMap-like documents in, a :class:`Gallery` out (pure).

Every problem is collected as a :class:`GalleryProblem` naming the source, the key and the
field; a broken entry or version is left out without hiding the others. Unknown fields are
warnings (the entry is kept), everything else is an error (the entry or version is dropped).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, cast

import yaml

from kubearts.constants import DATASET_FORMATS, GALLERY_LABEL, INFERENCE_POOLS, TRAINING_POOLS
from kubearts.gallery.entries import (
    OUTPUT_FORMATS,
    TENSOR_DTYPES,
    TENSOR_LAYOUTS,
    AlgorithmEntry,
    AlgorithmVersion,
    ConfigMapLike,
    DatasetEntry,
    DatasetSource,
    Entrypoint,
    Gallery,
    GalleryProblem,
    InputContract,
    OutputArtifact,
    TensorSpec,
)
from kubearts.gallery.versions import parse_version, sort_versions
from kubearts.hyperparameters import parse_schema
from kubearts.messages import closest, show

__all__ = ["REMOTE_INDEX_KIND", "gallery_selector", "index_urls", "parse_gallery"]

#: ``kind`` of a fetched remote index document handed to :func:`parse_gallery`.
REMOTE_INDEX_KIND: Final = "RemoteIndex"

_ENTRY_KEY_RE: Final = re.compile(
    r"^(?P<kind>algorithm|dataset)\.(?P<name>[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?)"
    r"(?:\.(?:yaml|yml|json))?$"
)
_INDEX_KEY_RE: Final = re.compile(r"^index\.(?P<name>[A-Za-z0-9](?:[A-Za-z0-9_-]*))\.url$")
_SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")

# --- reporting and typed reads ---------------------------------------------------------------


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
            close = closest(key, known_keys)
            hint = f"; did you mean {close!r}?" if close else ""
            self.report.warning(_join(self.at, key), f"unknown field, ignored{hint}", self.version)

    def string(self, key: str, *, default: str | None = None, choices: Sequence[str] = ()) -> str:
        value = self.raw.get(key, default)
        if value is None:
            self._error(key, "is required")
            return ""
        if not isinstance(value, str) or (default is None and not value.strip()):
            self._error(key, f"must be a non-empty string, got {show(value)}")
            return ""
        if choices and value not in choices:
            self._error(key, f"must be one of {', '.join(choices)}, got {show(value)}")
            return ""
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            self._error(key, f"must be true or false, got {show(value)}")
            return default
        return value

    def integer(self, key: str) -> int | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self._error(key, f"must be a non-negative integer, got {show(value)}")
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
            self._error(key, f"must be a list of non-empty strings, got {show(value)}")
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
            self._error(key, f"lists an item twice: {show(items)}")
        return list(items)

    def mapping(self, key: str, *, required: bool = True) -> Mapping[str, object] | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                self._error(key, "is required")
            return None
        if not isinstance(value, Mapping):
            self._error(key, f"must be a mapping, got {show(value)}")
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
            self._error(key, f"must be a non-empty list, got {show(value)}")
            return []
        result = []
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                result.append((f"{_join(self.at, key)}[{index}]", cast(Mapping[str, object], item)))
            else:
                self._error(f"{key}[{index}]", f"must be a mapping, got {show(item)}")
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
        f._error("shape", f"must be a list of sizes (-1 for a dynamic size), got {show(shape)}")
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
        f._error("version", f"must be a semantic version string like 1.0.0, got {show(number)}")
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
        f._error("image", f"must be an image reference without spaces, got {show(image)}")

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
        "trainingDevices": f.strings("trainingDevices", choices=TRAINING_POOLS),
        "inferenceDevices": f.strings("inferenceDevices", choices=INFERENCE_POOLS),
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
            "name", f"must match the key's name {name!r} (or be left out), got {show(raw['name'])}"
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
            "name", f"must match the key's name {name!r} (or be left out), got {show(raw['name'])}"
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
                f"needs a scheme http(s)://, s3://, pvc:// or file://, got {show(source['uri'])}",
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


@dataclass
class _Collected:
    """What :func:`parse_gallery` gathers while walking the sources in order."""

    algorithms: dict[str, AlgorithmEntry] = field(default_factory=dict)
    datasets: dict[str, DatasetEntry] = field(default_factory=dict)
    origin: dict[tuple[str, str], str] = field(default_factory=dict)
    """Where each (kind, name) was first defined: the first definition wins."""
    problems: list[GalleryProblem] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)


def _sources(
    documents: Iterable[ConfigMapLike], name: str | None
) -> tuple[str | None, list[tuple[str, ConfigMapLike]]]:
    """The gallery's name and its sources in reading order: ConfigMaps by name, then remote
    indexes in the order given."""
    local: list[tuple[str, ConfigMapLike]] = []
    remote: list[tuple[str, ConfigMapLike]] = []
    gallery_name = name
    for doc in documents:
        kind, doc_name, labels = _metadata(doc)
        if kind == REMOTE_INDEX_KIND:
            remote.append((f"index {doc_name}", doc))
            continue
        label = labels.get(GALLERY_LABEL)
        if name is not None and label != name:
            continue
        if gallery_name is None and isinstance(label, str):
            gallery_name = label
        local.append((f"ConfigMap {doc_name}", doc))
    local.sort(key=lambda item: item[0])
    return gallery_name, [*local, *remote]


def _index_key(source: str, key: str, value: object, into: _Collected) -> None:
    """An ``index.<name>.url`` key: remember the URL, or report why it cannot be used."""
    if source.startswith("index "):
        into.problems.append(
            GalleryProblem(source, key, "", "remote indexes cannot declare further indexes")
        )
    elif not isinstance(value, str) or urllib.parse.urlparse(value.strip()).scheme not in (
        "http",
        "https",
    ):
        into.problems.append(
            GalleryProblem(source, key, "", f"must be an http(s) URL, got {show(value)}")
        )
    else:
        into.indexes.append(value.strip())


def _entry_key(
    source: str, key: str, kind: str, entry_name: str, value: object, into: _Collected
) -> None:
    """An ``algorithm.<name>`` or ``dataset.<name>`` key: parse the entry unless an earlier
    source defined it already."""
    report = _Reporter(source, key, kind, entry_name)
    previous = into.origin.get((kind, entry_name))
    if previous is not None:
        report.warning(
            "", f"{kind} {entry_name!r} is already defined in {previous}; this copy is ignored"
        )
        into.problems.extend(report.problems)
        return
    document = _load_text(value, report)
    if not report.problems and not isinstance(document, Mapping):
        report.error("", f"must be a YAML mapping describing the {kind}, got {show(document)}")
    if isinstance(document, Mapping):
        raw = cast(Mapping[str, object], document)
        if kind == "algorithm":
            parsed_algorithm = _algorithm(entry_name, raw, report)
            if parsed_algorithm is not None:
                into.algorithms[entry_name] = parsed_algorithm
        else:
            parsed_dataset = _dataset(entry_name, raw, report)
            if parsed_dataset is not None:
                into.datasets[entry_name] = parsed_dataset
    # An entry that failed still claims its name: a broken ConfigMap entry must not let a
    # remote index's copy take over silently.
    into.origin[(kind, entry_name)] = f"{source}, key {key}"
    into.problems.extend(report.problems)


def _read_source(source: str, doc: ConfigMapLike, into: _Collected) -> None:
    data = doc.get("data")
    if data is None:
        return
    if not isinstance(data, Mapping):
        into.problems.append(
            GalleryProblem(source, "", "data", f"must be a mapping, got {show(data)}")
        )
        return
    entries = cast(Mapping[str, object], data)
    for key in sorted(entries):
        value = entries[key]
        if _INDEX_KEY_RE.match(key) is not None:
            _index_key(source, key, value, into)
            continue
        match = _ENTRY_KEY_RE.match(key)
        if match is None:
            into.problems.append(
                GalleryProblem(
                    source,
                    key,
                    "",
                    "unknown key: entries are algorithm.<name>.yaml or dataset.<name>.yaml "
                    "(lower-case name), remote indexes index.<name>.url",
                )
            )
            continue
        _entry_key(source, key, match.group("kind"), match.group("name"), value, into)


def parse_gallery(configmaps: Iterable[ConfigMapLike], *, name: str | None = None) -> Gallery:
    """Parse gallery ConfigMaps (and fetched remote indexes) into a :class:`Gallery`.

    ``name``: only ConfigMaps labelled ``kubearts.io/gallery=<name>`` are read (others are
    skipped, so callers may pass a whole namespace's list). Without it, every ConfigMap given
    is read and the gallery takes its name from the first label found.

    Documents with ``kind: RemoteIndex`` (see :mod:`kubearts.gallery.remote`) are read after
    the ConfigMaps and need no label.
    """
    gallery_name, sources = _sources(configmaps, name)
    collected = _Collected()
    for source, doc in sources:
        _read_source(source, doc, collected)
    return Gallery(
        name=gallery_name or "",
        algorithms=dict(sorted(collected.algorithms.items())),
        datasets=dict(sorted(collected.datasets.items())),
        problems=tuple(collected.problems),
        sources=tuple(source for source, _ in sources),
        remote_indexes=tuple(collected.indexes),
    )


def index_urls(configmaps: Iterable[ConfigMapLike]) -> list[str]:
    """The remote index URLs the ``index.<name>.url`` keys of ``configmaps`` declare, valid
    ones only, de-duplicated, in the order :func:`parse_gallery` reads them."""
    urls: list[str] = []
    for source, doc in _sources(configmaps, None)[1]:
        data = doc.get("data")
        if not isinstance(data, Mapping) or source.startswith("index "):
            continue
        entries = cast(Mapping[str, object], data)
        for key in sorted(entries):
            value = entries[key]
            if _INDEX_KEY_RE.match(key) is None or not isinstance(value, str):
                continue
            url = value.strip()
            if urllib.parse.urlparse(url).scheme in ("http", "https") and url not in urls:
                urls.append(url)
    return urls


def gallery_selector(name: str) -> str:
    """The label selector listing the ConfigMaps of gallery ``name``."""
    return f"{GALLERY_LABEL}={name}"
