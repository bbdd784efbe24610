"""Helpers of the trainer's tests and benchmark: scikit-learn's digits as PNG files with
manifests as the dataset worker writes them, and the command line run in this process."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datagen import write_digits

ANNOTATION = "modelarts/image_classification"


@dataclass(frozen=True)
class Digits:
    """A dataset directory with ``train.jsonl`` and ``eval.jsonl`` as the dataset worker writes."""

    root: Path
    train: Path
    eval: Path
    train_count: int
    eval_count: int


def write_manifest(path: Path, samples: list[tuple[str, str]], usage: str) -> None:
    with path.open("w", encoding="utf-8") as out:
        for source, label in samples:
            record = {
                "source": source,
                "usage": usage,
                "annotation": [{"type": ANNOTATION, "name": label}],
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def make_digits(root: Path, *, every: int, train_ratio: float = 0.8, seed: int = 0) -> Digits:
    """Every ``every``-th digit, split per class like ``publish --train-ratio``."""
    write_digits(root / "digits", every=every)
    train: list[tuple[str, str]] = []
    evaluation: list[tuple[str, str]] = []
    for folder in sorted((root / "digits").iterdir()):
        files = sorted(f.relative_to(root).as_posix() for f in folder.glob("*.png"))
        random.Random(f"{seed}:{folder.name}").shuffle(files)
        cut = max(1, min(len(files) - 1, int(len(files) * train_ratio + 0.5)))
        train += [(f, folder.name) for f in files[:cut]]
        evaluation += [(f, folder.name) for f in files[cut:]]
    versions = root / ".kubearts" / "versions" / "v1"
    versions.mkdir(parents=True)
    write_manifest(versions / "train.jsonl", sorted(train), "TRAIN")
    write_manifest(versions / "eval.jsonl", sorted(evaluation), "EVAL")
    return Digits(
        root, versions / "train.jsonl", versions / "eval.jsonl", len(train), len(evaluation)
    )


def train_args(
    digits: Digits, output: Path, *hyperparameters: str, model: str = "mobilenet_v1"
) -> list[str]:
    return [
        "train",
        "--model",
        model,
        "--train-manifest",
        str(digits.train),
        "--eval-manifest",
        str(digits.eval),
        "--dataset-root",
        str(digits.root),
        "--output",
        str(output),
        "--result",
        str(output.parent / f"{output.name}-result.json"),
        *hyperparameters,
    ]


@dataclass(frozen=True)
class Outcome:
    """What one ``main()`` call left: exit code, stdout events, result file, output folder."""

    code: int
    events: list[dict[str, Any]]
    result_file: Path
    output: Path

    @property
    def result(self) -> dict[str, Any]:
        return self.events[-1]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]


def run_main(args: list[str]) -> Outcome:
    """Run the command line in this process, collecting its standard output lines."""
    from kubearts_trainer.cli import main
    from kubearts_trainer.progress import Events

    stream = io.StringIO()
    code = main(args, events=Events(stream))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    output = Path(args[args.index("--output") + 1])
    return Outcome(code, events, Path(args[args.index("--result") + 1]), output)
