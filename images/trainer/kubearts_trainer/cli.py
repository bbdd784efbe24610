"""Command line: ``python -m kubearts_trainer train --model NAME ... [--<name>=<value> ...]``.

Standard output carries JSON lines only (``progress`` and ``epoch`` events, then one
``result`` event); logs for people go to standard error. The exit code is 0 on success and
otherwise the code of the failure reason (:data:`kubearts_trainer.errors.EXIT_CODES`). The
compact result is also written to ``--result`` (``/dev/termination-log`` in a pod).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from kubearts_trainer import __version__, hyperparameters
from kubearts_trainer.errors import TrainerError
from kubearts_trainer.progress import Events
from kubearts_trainer.result import write_result

log = logging.getLogger("kubearts_trainer")

MODELS = ("resnet_v1_50", "resnet_v1_101", "mobilenet_v1")


class _Parser(argparse.ArgumentParser):
    """Reports usage errors as an ``InvalidArgument`` failure (exit 2) with a result."""

    def error(self, message: str) -> NoReturn:
        raise TrainerError("InvalidArgument", f"{self.prog}: {message}")


def _interval(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; hyperparameters are the arguments it does not know."""
    parser = _Parser(
        prog="python -m kubearts_trainer",
        description="Train an image classifier and export it.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser(
        "train",
        allow_abbrev=False,
        help="train, evaluate and export; hyperparameters follow as --<name>=<value>",
    )
    train.add_argument("--model", required=True, choices=MODELS)
    train.add_argument("--train-manifest", required=True, type=Path, metavar="PATH")
    train.add_argument("--eval-manifest", required=True, type=Path, metavar="PATH")
    train.add_argument(
        "--dataset-root",
        required=True,
        type=Path,
        metavar="DIR",
        help="the dataset directory the manifests' sources are relative to",
    )
    train.add_argument("--output", required=True, type=Path, metavar="DIR")
    train.add_argument(
        "--result",
        metavar="PATH",
        help="write the compact JSON result here (at most 4096 bytes), e.g. /dev/termination-log",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument(
        "--pvc-root",
        type=Path,
        default=Path(os.environ.get("KUBEARTS_PVC_ROOT", "/mnt/pvc")),
        help="where claims named in pvc://<claim>/<path> are mounted (default "
        "$KUBEARTS_PVC_ROOT or /mnt/pvc)",
    )
    train.add_argument(
        "--progress-interval",
        type=_interval,
        default=5.0,
        metavar="S",
        help="seconds between progress lines within an epoch (default 5)",
    )
    train.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    train.add_argument(
        "--log-file",
        type=Path,
        metavar="PATH",
        help="also write the log and the JSON lines here (kept next to the outputs)",
    )
    return parser


def _archive_log(path: Path | None, events: Events) -> None:
    """Copy the log for people and the JSON lines to ``path``: the run's archived log."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = path.open("a", encoding="utf-8")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    events.copy_to(stream)


def main(argv: Sequence[str] | None = None, events: Events | None = None) -> int:
    """Run the command line; returns the exit code."""
    events = events or Events()
    started = time.monotonic()
    result_path: str | None = None
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        parsed, extra = build_parser().parse_known_args(arguments)
        result_path = parsed.result
        logging.basicConfig(
            level=parsed.log_level,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(message)s",
        )
        log.setLevel(parsed.log_level)  # also when logging was configured before main()
        _archive_log(parsed.log_file, events)
        values = hyperparameters.decode(extra)
        # TensorFlow is imported only now, so usage errors answer at once.
        from kubearts_trainer import train

        document: dict[str, Any] = train.run(
            train.Run(
                model=parsed.model,
                train_manifest=parsed.train_manifest,
                eval_manifest=parsed.eval_manifest,
                dataset_root=parsed.dataset_root,
                output=parsed.output,
                hyperparameters=values,
                seed=parsed.seed,
                pvc_root=parsed.pvc_root,
                progress_interval=parsed.progress_interval,
                events=events,
            )
        )
        code = 0
    except TrainerError as exc:
        if result_path is None:
            result_path = _result_flag(arguments)
        document = {"status": "Failed", "reason": exc.reason, "message": exc.message}
        code = exc.exit_code
        log.error("%s", exc)
    except Exception as exc:
        if result_path is None:
            result_path = _result_flag(arguments)
        log.error("%s", traceback.format_exc())
        document = {
            "status": "Failed",
            "reason": "InternalError",
            "message": f"{type(exc).__name__}: {exc}",
        }
        code = 1
    if document["status"] == "Failed":
        document["durationSeconds"] = round(time.monotonic() - started, 3)
    events.emit({"event": "result", **document})
    write_result(result_path, document)
    return code


def _result_flag(arguments: list[str]) -> str | None:
    """``--result`` even when parsing failed, so a usage error still reaches the operator."""
    for index, item in enumerate(arguments):
        if item == "--result" and index + 1 < len(arguments):
            return arguments[index + 1]
        if item.startswith("--result="):
            return item.partition("=")[2]
    return None
