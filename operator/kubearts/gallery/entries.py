"""What a gallery holds: entry shapes, the problems met while reading it, and the parsed
:class:`Gallery` (pure data, no behaviour beyond simple queries)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, NotRequired, TypedDict

from kubearts.hyperparameters import Hyperparameter

#: Model formats a training run may write.
OUTPUT_FORMATS: Final[tuple[str, ...]] = ("saved_model", "frozen_graph", "onnx")
#: Tensor element types a signature may declare.
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

#: A ConfigMap as a plain dict (a kopf body, or the client's sanitized object).
ConfigMapLike = Mapping[str, object]


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
