"""Command line: ``python -m kubearts_converter {convert,register,unregister} ...``.

Standard output carries JSON lines only (``progress`` events, then one ``result`` event);
logs for people go to standard error. The exit code is 0 on success and otherwise the code
of the failure reason (:data:`kubearts_converter.errors.EXIT_CODES`). The compact result is
also written to ``--result`` (``/dev/termination-log`` in a pod).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from kubearts_converter import __version__
from kubearts_converter.errors import ConverterError
from kubearts_converter.options import FORMATS, PRECISIONS, TEMPLATES
from kubearts_converter.progress import Events
from kubearts_converter.result import write_result

log = logging.getLogger("kubearts_converter")

REGISTER_FORMATS = ("saved-model", "frozen-graph", "onnx", "om")
REGISTER_TEMPLATES = ("image-classification", "ARM-Ascend")


class _Parser(argparse.ArgumentParser):
    """Reports usage errors as an ``InvalidArgument`` failure (exit 2) with a result."""

    def error(self, message: str) -> NoReturn:
        raise ConverterError("InvalidArgument", f"{self.prog}: {message}")


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text} must be 1 to 1000")
    return value


def _tolerance(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--result",
        metavar="PATH",
        help="write the compact JSON result here (at most 4096 bytes), e.g. /dev/termination-log",
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        metavar="PATH",
        help="also write the log and the JSON lines here",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m kubearts_converter",
        description="Convert TensorFlow models to ONNX or Ascend om; register model versions.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    convert = commands.add_parser(
        "convert", allow_abbrev=False, help="convert a model with a template and verify it"
    )
    convert.add_argument("--template", required=True, choices=TEMPLATES)
    convert.add_argument(
        "--source",
        required=True,
        type=Path,
        metavar="PATH",
        help="a trainer output directory, a frozen .pb file or a SavedModel directory",
    )
    convert.add_argument("--output", required=True, type=Path, metavar="DIR")
    convert.add_argument("--input-shape", metavar="NAME:D1,D2,...[;...]")
    convert.add_argument("--input-format", default="NHWC", choices=FORMATS)
    convert.add_argument("--output-nodes", metavar="NAME:INDEX[;...]")
    convert.add_argument("--precision", default="FP32", choices=PRECISIONS)
    convert.add_argument("--soc-version", default="Ascend310", metavar="SOC")
    convert.add_argument("--opset", type=int, default=13)
    convert.add_argument("--verify-samples", type=_count, default=8, metavar="N")
    convert.add_argument("--verify-tolerance", type=_tolerance, default=1e-4, metavar="T")
    convert.add_argument(
        "--verify-manifest", type=Path, metavar="PATH", help="eval.jsonl of a dataset version"
    )
    convert.add_argument(
        "--verify-root", type=Path, metavar="DIR", help="the dataset directory of its sources"
    )
    _common(convert)
    register = commands.add_parser(
        "register", allow_abbrev=False, help="copy a model version into the registry"
    )
    register.add_argument("--source", required=True, type=Path, metavar="PATH")
    register.add_argument("--format", required=True, choices=REGISTER_FORMATS)
    register.add_argument("--output", required=True, type=Path, metavar="DIR")
    register.add_argument("--template", default="image-classification", choices=REGISTER_TEMPLATES)
    _common(register)
    unregister = commands.add_parser(
        "unregister", allow_abbrev=False, help="delete a registered model version's folder"
    )
    unregister.add_argument("--target", required=True, type=Path, metavar="DIR")
    _common(unregister)
    return parser


def _archive_log(path: Path | None, events: Events) -> None:
    """Copy the log for people and the JSON lines to ``path``."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = path.open("a", encoding="utf-8")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    events.copy_to(stream)


def _dispatch(parsed: argparse.Namespace, arguments: list[str], events: Events) -> dict[str, Any]:
    if parsed.command == "unregister":
        from kubearts_converter import unregister

        return unregister.run(parsed.target)
    if parsed.command == "register":
        from kubearts_converter import register

        return register.run(
            register.Job(
                source=parsed.source,
                format=parsed.format,
                output=parsed.output,
                template=parsed.template,
                events=events,
            )
        )
    if (parsed.verify_manifest is None) != (parsed.verify_root is None):
        raise ConverterError(
            "InvalidArgument",
            "--verify-manifest and --verify-root go together: the manifest's sources are "
            "relative to the dataset directory",
        )
    from kubearts_converter import options

    values = options.parse(
        input_shape=parsed.input_shape,
        input_format=parsed.input_format,
        output_nodes=parsed.output_nodes,
        precision=parsed.precision,
        soc_version=parsed.soc_version,
        opset=parsed.opset,
    )
    # TensorFlow is imported only now, so usage errors answer at once.
    from kubearts_converter import convert

    return convert.run(
        convert.Job(
            template=parsed.template,
            source=parsed.source,
            output=parsed.output,
            options=values,
            verify_samples=parsed.verify_samples,
            verify_tolerance=parsed.verify_tolerance,
            verify_manifest=parsed.verify_manifest,
            verify_root=parsed.verify_root,
            argv=arguments,
            events=events,
        )
    )


def main(argv: Sequence[str] | None = None, events: Events | None = None) -> int:
    """Run the command line; returns the exit code."""
    events = events or Events()
    started = time.monotonic()
    result_path: str | None = None
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        parsed = build_parser().parse_args(arguments)
        result_path = parsed.result
        logging.basicConfig(
            level=parsed.log_level,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(message)s",
        )
        log.setLevel(parsed.log_level)
        _archive_log(parsed.log_file, events)
        document = _dispatch(parsed, arguments, events)
        code = 0
    except ConverterError as exc:
        if result_path is None:
            result_path = _result_flag(arguments)
        document = {
            "status": "Failed",
            "reason": exc.reason,
            "message": exc.message,
            **exc.details,
        }
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
