"""Command line: serve a model version folder, or predict a folder of images in batch.

``python -m kubearts_predictor --model_name NAME --model_dir DIR [...]`` starts KServe's
server (HTTP ``--http_port`` 8080, gRPC ``--grpc_port`` 8081) after loading the model, and
prints one ``{"event": "loaded", ...}`` line. ``python -m kubearts_predictor batch ...``
predicts every image under ``--input`` into a JSON-lines file. Standard output carries JSON
lines for the operator; logs for people go to standard error (KServe's access log aside).
A start-up or batch failure ends with a ``result`` line, the compact result in ``--result``
and the exit code of its reason (:data:`kubearts_predictor.errors.EXIT_CODES`).
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

from kubearts_predictor import __version__, devices, modeldir
from kubearts_predictor.errors import PredictorError
from kubearts_predictor.result import Events, write_result

log = logging.getLogger("kubearts_predictor")


class _Parser(argparse.ArgumentParser):
    """Reports usage errors as an ``InvalidArgument`` failure (exit 2) with a result."""

    def error(self, message: str) -> NoReturn:
        raise PredictorError("InvalidArgument", f"{self.prog}: {message}")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be 1 or more")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    """Arguments both commands take."""
    parser.add_argument("--model_dir", required=True, type=Path, metavar="DIR")
    parser.add_argument(
        "--runtime",
        choices=modeldir.RUNTIMES,
        help="default: from the folder's files (model.onnx, saved_model/, *.om)",
    )
    parser.add_argument(
        "--device",
        choices=devices.DEVICES,
        help="the pool's device (default $KUBEARTS_DEVICE, else cpu)",
    )
    parser.add_argument(
        "--allow-cpu-fallback",
        dest="allow_cpu_fallback",
        action="store_const",
        const=True,
        default=None,
        help="serve on the CPU when the device is missing (default "
        "$KUBEARTS_ALLOW_CPU_FALLBACK, else false)",
    )
    parser.add_argument(
        "--max_pixels",
        type=_positive,
        default=40_000_000,
        help="most pixels (width x height, from the header) an image may have (default 40000000)",
    )
    parser.add_argument(
        "--result",
        metavar="PATH",
        help="write the compact JSON result here (at most 4096 bytes), e.g. /dev/termination-log",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )


def serve_parser() -> argparse.ArgumentParser:
    """The server's arguments: ours, then KServe's own (``--http_port``, ``--grpc_port`` ...)."""
    from kserve.model_server import parser as kserve_parser

    parser = _Parser(
        prog="python -m kubearts_predictor",
        description="Serve an image classifier (V1, V2 REST and gRPC, image upload, predict page).",
        parents=[kserve_parser],
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common(parser)
    parser.add_argument(
        "--max_batch_size",
        type=_positive,
        default=8,
        help="most rows dynamic batching runs together (default 8; 1 = no batching)",
    )
    parser.add_argument(
        "--max_batch_wait_ms",
        type=_non_negative,
        default=5.0,
        help="longest a request waits for others to share its batch (default 5)",
    )
    parser.add_argument(
        "--drain_seconds",
        type=_non_negative,
        default=5.0,
        help="keep serving this long after SIGTERM, while the Service stops routing here "
        "(default 5; 0 = stop at once)",
    )
    parser.add_argument(
        "--max_body_bytes",
        type=_positive,
        default=32 * 1024 * 1024,
        help="largest request body; larger ones are refused with 413 (default 33554432)",
    )
    return parser


def batch_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m kubearts_predictor batch",
        description="Predict every image under --input into a JSON-lines file.",
        allow_abbrev=False,
    )
    _common(parser)
    parser.add_argument("--model_name", default="model")
    parser.add_argument("--input", required=True, type=Path, metavar="DIR")
    parser.add_argument("--output", required=True, type=Path, metavar="FILE.jsonl")
    parser.add_argument("--batch-size", dest="batch_size", type=_positive, default=32)
    parser.add_argument(
        "--progress-interval",
        dest="progress_interval",
        type=_non_negative,
        default=5.0,
        metavar="S",
        help="least seconds between progress lines (default 5; 0 = after every batch)",
    )
    return parser


def main(argv: Sequence[str] | None = None, events: Events | None = None) -> int:
    """Run the command line; returns the exit code."""
    events = events or Events()
    arguments = list(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    result_path: str | None = None
    try:
        if arguments[:1] == ["batch"]:
            parsed = batch_parser().parse_args(arguments[1:])
        else:
            parsed = serve_parser().parse_args(arguments)
        result_path = parsed.result
        logging.basicConfig(
            level=parsed.log_level,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(message)s",
        )
        log.setLevel(parsed.log_level)
        if arguments[:1] == ["batch"]:
            from kubearts_predictor import batch

            document: dict[str, Any] = batch.run(parsed, events)
        else:
            serve(parsed, events)
            return 0
        code = 0
    except PredictorError as exc:
        result_path = result_path or _result_flag(arguments)
        document = {"status": "Failed", "reason": exc.reason, "message": exc.message}
        code = exc.exit_code
        log.error("%s", exc)
    except Exception as exc:
        result_path = result_path or _result_flag(arguments)
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


def serve(parsed: argparse.Namespace, events: Events) -> None:
    """Load the model (failures raise), print the ``loaded`` line, serve until stopped."""
    if parsed.workers != 1:
        raise PredictorError(
            "InvalidArgument",
            f"--workers {parsed.workers}: the predictor is one process with one session; "
            "scale with replicas",
        )
    from kserve import ModelServer
    from kserve import model_server as kserve_server

    from kubearts_predictor import server
    from kubearts_predictor.model import ImageClassifier, Settings

    placement = devices.from_environment(parsed.device, parsed.allow_cpu_fallback)
    folder = modeldir.read(parsed.model_dir, parsed.runtime)
    model = ImageClassifier(
        parsed.model_name,
        folder,
        placement,
        Settings(
            max_batch_size=parsed.max_batch_size,
            max_batch_wait_ms=parsed.max_batch_wait_ms,
            max_body_bytes=parsed.max_body_bytes,
            max_pixels=parsed.max_pixels,
        ),
    )
    model.load()
    if model.backend is not None and model.backend.fallback_message:
        log.warning("%s", model.backend.fallback_message)
    events.emit(model.loaded_event())
    model_server = ModelServer(
        http_port=parsed.http_port,
        grpc_port=parsed.grpc_port,
        workers=1,
        max_threads=parsed.max_threads,
        max_asyncio_workers=parsed.max_asyncio_workers,
        enable_grpc=parsed.enable_grpc,
        enable_docs_url=parsed.enable_docs_url,
        enable_latency_logging=parsed.enable_latency_logging,
        access_log_format=parsed.access_log_format,
        event_loop=parsed.event_loop,
        timeout_keep_alive=parsed.timeout_keep_alive,
        ssl_certfile=parsed.ssl_certfile,
        ssl_keyfile=parsed.ssl_keyfile,
    )
    server.install(kserve_server.app, model)
    from kubearts_predictor.drain import delay_shutdown

    delay_shutdown(parsed.drain_seconds)
    server.settle(parsed.event_loop, parsed.log_level)
    model_server.start([model])


def _result_flag(arguments: list[str]) -> str | None:
    """``--result`` even when parsing failed, so a usage error still reaches the operator."""
    for index, item in enumerate(arguments):
        if item == "--result" and index + 1 < len(arguments):
            return arguments[index + 1]
        if item.startswith("--result="):
            return item.partition("=")[2]
    return None
