"""The ``register`` command: copy one model version into its immutable registry location.

What each format takes from ``--source`` (a trainer output directory, a converter output
directory, any directory, or the artifact itself, which is then registered alone):

==============  ==========================================  ================================
format          required                                    copied when present
==============  ==========================================  ================================
saved-model     ``saved_model/`` (with ``saved_model.pb``)  ``labels.txt``, ``model.json``
frozen-graph    ``frozen_graph.pb`` (or the one ``*.pb``)   ``labels.txt``, ``model.json``
onnx            ``model.onnx`` (or the one ``*.onnx``)      ``labels.txt``, ``model.json``
om              the one ``*.om`` and ``config.json``        ``labels.txt``
==============  ==========================================  ================================

The files are copied into a temporary sibling of ``--output``, their digest is checked
against the source's, ``registration.json`` (the whole signature) is added, and the
directory is renamed into place in one step. A version is never overwritten: an existing
``--output`` with the same digest is success (nothing changes), with another digest it is
``RegistryConflict``. The digest covers the model files (every file but
``registration.json``), see :mod:`kubearts_converter.digest`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kubearts_converter.digest import Entry, TreeDigest, digest_files, digest_tree, entry, files_of
from kubearts_converter.errors import ConverterError
from kubearts_converter.progress import Events, finite
from kubearts_converter.result import write_json

LABELS: Final = "labels.txt"
MODEL_CARD: Final = "model.json"
CONFIG: Final = "config.json"
REGISTRATION: Final = "registration.json"
SAVED_MODEL: Final = "saved_model"


@dataclass(frozen=True)
class Job:
    source: Path
    format: str
    output: Path
    template: str = "image-classification"
    events: Events = field(default_factory=Events)


def _listing(path: Path) -> str:
    if not path.exists():
        return f"{path} does not exist"
    if path.is_file():
        return f"{path} is a file"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    return f"{path} holds: {shown or 'nothing'}"


def _missing(job: Job, what: str) -> ConverterError:
    return ConverterError(
        "SourceUnavailable",
        f"--source {job.source}: --format {job.format} needs {what}, but {_listing(job.source)}",
    )


def _single(folder: Path, suffix: str) -> Path | None:
    found = sorted(p for p in folder.glob(f"*{suffix}") if p.is_file()) if folder.is_dir() else []
    return found[0] if len(found) == 1 else None


def select(job: Job) -> dict[str, Path]:
    """The files to register by their path in the registry; SourceUnavailable names what is
    missing and what was found."""
    source = job.source
    selection: dict[str, Path] = {}
    home: Path | None = source if source.is_dir() else None
    if job.format == "saved-model":
        if (source / SAVED_MODEL / "saved_model.pb").is_file():
            model_dir = source / SAVED_MODEL
        elif (source / "saved_model.pb").is_file():
            model_dir, home = source, None
        else:
            raise _missing(job, f"a SavedModel ({SAVED_MODEL}/ with saved_model.pb)")
        for relative, path in files_of(model_dir).items():
            selection[f"{SAVED_MODEL}/{relative}"] = path
    elif job.format in ("frozen-graph", "onnx"):
        name, suffix = (
            ("frozen_graph.pb", ".pb") if job.format == "frozen-graph" else ("model.onnx", ".onnx")
        )
        if source.is_file() and source.suffix == suffix:
            artifact: Path | None = source
        elif (source / name).is_file():
            artifact = source / name
        else:
            artifact = _single(source, suffix)
        if artifact is None:
            raise _missing(job, f"{name} (or exactly one *{suffix} file)")
        selection[name] = artifact
    else:
        om = source if source.is_file() and source.suffix == ".om" else _single(source, ".om")
        folder = source.parent if source.is_file() else source
        problems = []
        if om is None:
            problems.append("exactly one *.om file")
        if not (folder / CONFIG).is_file():
            problems.append(f"{CONFIG} (the ARM-Ascend template's model description)")
        if problems:
            raise _missing(job, " and ".join(problems))
        assert om is not None
        selection[om.name] = om
        selection[CONFIG] = folder / CONFIG
        home = folder
    optional = (LABELS,) if job.format == "om" else (LABELS, MODEL_CARD)
    for name in optional:
        if home is not None and (home / name).is_file():
            selection[name] = home / name
    return selection


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConverterError(
            "SourceUnavailable", f"{what} {path} is not readable JSON: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise ConverterError("SourceUnavailable", f"{what} {path} is not a JSON object")
    return data


def _tensors(items: Any) -> list[dict[str, Any]]:
    tensors = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name"):
            tensors.append(
                {
                    "name": str(item["name"]),
                    "dtype": str(item.get("dtype") or item.get("data_type") or ""),
                    "shape": item.get("shape"),
                }
            )
    return tensors


def config_signature(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """What an ARM-Ascend ``config.json`` declares: ``model_algorithm`` and ``model_type``
    (required strings), optional ``labels`` (class names in output order), optional
    ``inputs``/``outputs`` (``[{name, dtype or data_type, shape}]``), optional ``metrics``."""
    missing = [
        key for key in ("model_algorithm", "model_type") if not isinstance(config.get(key), str)
    ]
    if missing:
        raise ConverterError(
            "SourceUnavailable",
            f"{path} lacks {' and '.join(missing)} (strings, as in ModelArts' config.json, "
            'e.g. "model_algorithm": "image_classification", "model_type": "Ascend")',
        )
    labels = config.get("labels")
    return {
        "modelAlgorithm": config["model_algorithm"],
        "modelType": config["model_type"],
        "inputs": _tensors(config.get("inputs")),
        "outputs": _tensors(config.get("outputs")),
        "labels": [str(x) for x in labels] if isinstance(labels, list) else None,
    }


def signature(job: Job, selection: dict[str, Path]) -> dict[str, Any]:
    """Inputs, outputs and labels: from ``model.json`` when present, else the model itself
    (SavedModel signature, frozen graph, ONNX graph) or the om's ``config.json``."""
    result: dict[str, Any]
    if MODEL_CARD in selection:
        card = _read_json(selection[MODEL_CARD], "the model card")
        result = {
            "inputs": _tensors(card.get("inputs")),
            "outputs": _tensors(card.get("outputs")),
            "labels": [str(x) for x in card["labels"]]
            if isinstance(card.get("labels"), list)
            else None,
        }
    elif job.format == "om":
        result = config_signature(_read_json(selection[CONFIG], "the config"), selection[CONFIG])
    elif job.format == "onnx":
        from kubearts_converter.onnx_info import interface

        inputs, outputs = interface(selection["model.onnx"])
        result = {"inputs": inputs, "outputs": outputs, "labels": None}
    else:
        result = _tensorflow_signature(job, selection)
    if LABELS in selection:
        result["labels"] = [
            line
            for line in selection[LABELS].read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    labels = result.get("labels")
    result["classes"] = len(labels) if isinstance(labels, list) else None
    if result.get("labels") is None:
        result.pop("labels")
    return result


def _tensorflow_signature(job: Job, selection: dict[str, Path]) -> dict[str, Any]:
    from kubearts_converter import graphs

    if job.format == "saved-model":
        pb = selection[f"{SAVED_MODEL}/saved_model.pb"]
        interface = graphs.saved_model_interface(graphs.load_saved_model(pb.parent))
        output_tensors = list(interface.outputs)
    else:
        graph_def = graphs.load_graph_def(selection["frozen_graph.pb"])
        interface = graphs.frozen_interface(graph_def)
        nodes = graphs.default_outputs(interface, None)
        output_tensors = graphs.tensors_of(graph_def, [n.tensor for n in nodes])

    def described(tensors: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": t.name.removesuffix(":0"),
                "dtype": t.dtype,
                "shape": list(t.shape) if t.shape is not None else None,
            }
            for t in tensors
        ]

    return {
        "inputs": described(interface.inputs),
        "outputs": described(output_tensors),
        "labels": None,
    }


def metrics(selection: dict[str, Path]) -> dict[str, Any] | None:
    """Accuracy and loss from the model card's evaluation, or the om config's ``metrics``."""
    found: Any = None
    if MODEL_CARD in selection:
        card = _read_json(selection[MODEL_CARD], "the model card")
        found = (
            (card.get("metrics") or {}).get("evaluation")
            if isinstance(card.get("metrics"), dict)
            else None
        )
    elif CONFIG in selection:
        found = _read_json(selection[CONFIG], "the config").get("metrics")
    if not isinstance(found, dict):
        return None
    figures = {key: finite(found.get(key), 6) for key in ("accuracy", "loss")}
    figures = {k: v for k, v in figures.items() if v is not None}
    return figures or None


def run(job: Job) -> dict[str, Any]:
    """Register; returns the result document, raises ConverterError for expected failures."""
    if (job.format == "om") != (job.template == "ARM-Ascend"):
        raise ConverterError(
            "InvalidArgument",
            f"--format {job.format} with --template {job.template}: om models use the "
            "ARM-Ascend template, the other formats image-classification",
        )
    selection = select(job)
    job.events.progress("select", files=len(selection))
    expected = digest_files(selection)
    sig = signature(job, selection)
    figures = metrics(selection)
    if job.output.exists():
        return _existing(job, expected, sig, figures)
    job.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = job.output.with_name(f".{job.output.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        for relative, path in selection.items():
            target = temporary.joinpath(*relative.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        copied = digest_tree(temporary)
        if copied != expected:
            raise ConverterError(
                "SourceUnavailable",
                f"the copy's digest {copied.digest} differs from the source's {expected.digest}: "
                f"--source {job.source} changed while it was copied; register it again",
            )
        write_json(temporary / REGISTRATION, _registration(job, expected, selection, sig, figures))
        job.events.progress("publish", digest=expected.digest)
        try:
            os.rename(temporary, job.output)
        except OSError:
            if job.output.exists():  # registered concurrently
                return _existing(job, expected, sig, figures)
            raise
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return _document(job, expected, sig, figures, f"registered {job.format} as {job.output}")


def _existing(
    job: Job, expected: TreeDigest, sig: dict[str, Any], figures: dict[str, Any] | None
) -> dict[str, Any]:
    present = digest_tree(job.output, exclude=frozenset({REGISTRATION}))
    if present.digest != expected.digest:
        raise ConverterError(
            "RegistryConflict",
            f"--output {job.output} already holds another model ({present.digest}, "
            f"{present.files} files) than --source {job.source} ({expected.digest}); a "
            "registered version never changes: register this one as a new version",
            digest=expected.digest,
            existingDigest=present.digest,
        )
    return _document(
        job,
        expected,
        sig,
        figures,
        f"{job.output} already holds this {job.format} model: unchanged",
    )


def _registration(
    job: Job,
    digest: TreeDigest,
    selection: dict[str, Path],
    sig: dict[str, Any],
    figures: dict[str, Any] | None,
) -> dict[str, Any]:
    entries: list[Entry] = [entry(path, relative) for relative, path in sorted(selection.items())]
    return {
        "digest": digest.digest,
        "sizeBytes": digest.size_bytes,
        "format": job.format,
        "template": job.template,
        "source": str(job.source),
        "files": [{"path": e.path, "sizeBytes": e.size, "sha256": e.sha256} for e in entries],
        "signature": sig,
        "metrics": figures,
    }


def _document(
    job: Job,
    digest: TreeDigest,
    sig: dict[str, Any],
    figures: dict[str, Any] | None,
    message: str,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "status": "Succeeded",
        "reason": "Registered",
        "message": f"{message} ({digest.files} files, {digest.size_bytes} bytes, {digest.digest})",
        "digest": digest.digest,
        "sizeBytes": digest.size_bytes,
        "files": digest.files,
        "format": job.format,
        "template": job.template,
        "signature": sig,
    }
    if figures:
        document["metrics"] = figures
    return document
