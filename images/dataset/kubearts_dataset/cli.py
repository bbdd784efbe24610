"""Command line: ``python -m kubearts_dataset {ingest,publish,remove} ...``.

Standard output carries JSON lines only (progress events, then one ``result`` event);
logs for people go to standard error. The exit code is 0 on success and otherwise the code
of the failure reason (see :data:`kubearts_dataset.errors.EXIT_CODES`). The compact result
is also written to ``--result`` (``/dev/termination-log`` in a pod).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

from kubearts_dataset import __version__
from kubearts_dataset.download import DEFAULT_DEADLINE, RetryPolicy
from kubearts_dataset.errors import DatasetError
from kubearts_dataset.ingest import IngestOptions, ingest
from kubearts_dataset.limits import (
    DEFAULT_MAX_FILES,
    DEFAULT_MAX_RATIO,
    DEFAULT_SPACE_FRACTION,
    Limits,
)
from kubearts_dataset.locations import DEFAULT_PVC_ROOT, parse_location
from kubearts_dataset.progress import Progress
from kubearts_dataset.publish import publish
from kubearts_dataset.redact import redact_text
from kubearts_dataset.remove import remove
from kubearts_dataset.result import FailureResult, write_result
from kubearts_dataset.s3 import make_client
from kubearts_dataset.store import open_store
from kubearts_dataset.verify import DEFAULT_MAX_PIXELS

log = logging.getLogger("kubearts_dataset")

SOURCE_ENV: Final = "KUBEARTS_SOURCE_URL"
"""Where the source URI is read from when neither --source nor --source-env is given."""

_QUANTITY = re.compile(r"^\s*(\d+)\s*(Ki|Mi|Gi|Ti|K|M|G|T)?\s*$")
_FACTORS = {
    None: 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


class _Parser(argparse.ArgumentParser):
    """Reports usage errors as an ``InvalidArgument`` failure (exit 2) with a result."""

    def error(self, message: str) -> NoReturn:
        raise DatasetError("InvalidArgument", f"{self.prog}: {message}")


def byte_size(text: str) -> int:
    """``"20Gi"``, ``"500M"`` or ``"1048576"`` → bytes (Kubernetes quantity suffixes)."""
    match = _QUANTITY.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; use e.g. 1048576, 500Mi, 20Gi")
    return int(match.group(1)) * _FACTORS[match.group(2)]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0")
    return value


def _at_least_one(text: str) -> float:
    value = float(text)
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be in (0, 1]")
    return value


def _env(name: str, default: str | None = None) -> str | None:
    """The default of a flag from the environment, for settings the operator passes there.

    An empty value counts as unset; argparse converts a string default with the flag's type,
    so a bad value fails like a bad flag.
    """
    return os.environ.get(name) or default


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the subcommands."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--result",
        metavar="PATH",
        help="write the compact JSON result here (at most 4096 bytes), e.g. /dev/termination-log",
    )
    common.add_argument(
        "--pvc-root",
        type=Path,
        default=Path(os.environ.get("KUBEARTS_PVC_ROOT", DEFAULT_PVC_ROOT)),
        help="where claims named in pvc://<claim>/<path> are mounted, one folder per claim "
        "(default $KUBEARTS_PVC_ROOT or /mnt/pvc)",
    )
    common.add_argument(
        "--retries",
        type=_positive,
        default=5,
        help="attempts per transfer, the first included (default 5)",
    )
    common.add_argument(
        "--backoff",
        type=float,
        default=1.0,
        help="seconds before the second attempt, doubled each time, at most 30 (default 1)",
    )
    common.add_argument(
        "--timeout", type=float, default=30.0, help="network timeout in seconds (default 30)"
    )
    common.add_argument(
        "--download-deadline",
        type=_positive_float,
        default=_env("KUBEARTS_DOWNLOAD_DEADLINE", str(DEFAULT_DEADLINE)),
        help="seconds a whole download may take, all attempts included (default "
        f"$KUBEARTS_DOWNLOAD_DEADLINE or {DEFAULT_DEADLINE:g})",
    )
    common.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )

    parser = _Parser(
        prog="python -m kubearts_dataset",
        description="Ingest image-classification data sets and publish train/eval versions.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ing = commands.add_parser(
        "ingest", parents=[common], help="download, unpack, verify and install a data set"
    )
    source = ing.add_mutually_exclusive_group()
    source.add_argument(
        "--source",
        help="http(s)://…archive, s3://bucket/key, pvc://claim/path, file:///path or a path",
    )
    source.add_argument(
        "--source-env",
        metavar="VAR",
        help="read the source URI from the environment variable VAR, so that a URL with "
        f"credentials stays out of the pod's arguments (default: ${SOURCE_ENV})",
    )
    ing.add_argument(
        "--target",
        required=True,
        help="the dataset directory: a path, pvc://claim/path or s3://bucket/prefix",
    )
    ing.add_argument("--format", choices=["ImageFolder", "Manifest"], default="ImageFolder")
    ing.add_argument(
        "--manifest",
        metavar="PATH",
        help="the manifest's path inside the data (Manifest format; found automatically when "
        "there is exactly one *.manifest or *.jsonl)",
    )
    ing.add_argument("--sha256", help="expected SHA-256 of the archive (hex, optional 'sha256:')")
    ing.add_argument(
        "--max-bytes",
        type=byte_size,
        default=_env("KUBEARTS_MAX_BYTES"),
        help="limit for downloaded and for unpacked bytes (default $KUBEARTS_MAX_BYTES, else "
        "--space-fraction of the free space where they are written)",
    )
    ing.add_argument(
        "--space-fraction",
        type=_fraction,
        default=_env("KUBEARTS_SPACE_FRACTION", str(DEFAULT_SPACE_FRACTION)),
        help="share of the target volume's free space a download or an unpacked archive may "
        f"use without --max-bytes (default $KUBEARTS_SPACE_FRACTION or {DEFAULT_SPACE_FRACTION})",
    )
    ing.add_argument(
        "--max-ratio",
        type=_at_least_one,
        default=_env("KUBEARTS_MAX_RATIO", str(DEFAULT_MAX_RATIO)),
        help="compression ratio limit per zip member and per archive, judged beyond the first "
        f"8Mi of output (default $KUBEARTS_MAX_RATIO or {DEFAULT_MAX_RATIO:g})",
    )
    ing.add_argument(
        "--max-files",
        type=_positive,
        default=DEFAULT_MAX_FILES,
        help=f"limit for archive entries or objects (default {DEFAULT_MAX_FILES})",
    )
    ing.add_argument(
        "--work-dir",
        type=Path,
        help="scratch space for an s3 target (default: the system's temporary folder)",
    )
    ing.add_argument(
        "--workers",
        type=_positive,
        help="processes decoding images (default: the CPU quota of the pod, at most the "
        "usable CPUs)",
    )
    ing.add_argument(
        "--max-pixels",
        type=_positive,
        default=_env("KUBEARTS_MAX_PIXELS", str(DEFAULT_MAX_PIXELS)),
        help="images with more pixels are listed as invalid without being decoded (default "
        f"$KUBEARTS_MAX_PIXELS or {DEFAULT_MAX_PIXELS})",
    )
    ing.add_argument(
        "--max-listed-invalid",
        type=int,
        default=100,
        help="invalid files listed in the report; all are counted (default 100)",
    )
    ing.add_argument(
        "--staging-id",
        metavar="NAME",
        help="name of this ingest's staging folder below <target>/.kubearts/staging/ "
        "(default: a new random name); the operator passes the Job's name",
    )
    ing.add_argument(
        "--progress-interval",
        type=float,
        default=2.0,
        help="seconds between progress lines of one phase (default 2)",
    )

    pub = commands.add_parser(
        "publish", parents=[common], help="publish an immutable train/eval version"
    )
    pub.add_argument(
        "--dataset", required=True, help="the dataset directory (as given to ingest --target)"
    )
    pub.add_argument("--version", required=True, help="version name, e.g. v1")
    pub.add_argument(
        "--train-ratio", required=True, help="share of samples for training, in (0, 1]"
    )
    pub.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    pub.add_argument(
        "--stratified",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="split every class by the ratio (default) or the whole pool at once",
    )
    pub.add_argument(
        "--usage-policy",
        choices=["honour", "ignore"],
        default="honour",
        help="honour TRAIN/EVAL/TEST usage from a manifest (default) or split every sample",
    )

    rem = commands.add_parser(
        "remove",
        parents=[common],
        help="remove a dataset directory (refused unless it holds .kubearts/ingest.json)",
    )
    rem.add_argument(
        "--dataset", required=True, help="the dataset directory (as given to ingest --target)"
    )
    return parser


def _result_path(argv: Sequence[str]) -> str | None:
    """``--result`` from raw arguments, for reporting a failure to parse the others."""
    for index, arg in enumerate(argv):
        if arg.startswith("--result="):
            return arg.split("=", 1)[1]
        if arg == "--result" and index + 1 < len(argv):
            return argv[index + 1]
    return None


def source_uri(args: argparse.Namespace) -> str:
    """The ingest source: ``--source``, else the variable ``--source-env`` names, else
    ``$KUBEARTS_SOURCE_URL``."""
    if args.source:
        return str(args.source)
    variable = args.source_env or SOURCE_ENV
    value = os.environ.get(variable, "").strip()
    if not value:
        raise DatasetError(
            "InvalidArgument",
            f"no source: give --source, or --source-env naming a set environment variable "
            f"(${variable} is unset or empty)",
        )
    return value


def _run(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    retry = RetryPolicy(
        attempts=args.retries,
        backoff=args.backoff,
        timeout=args.timeout,
        deadline=args.download_deadline,
    )
    if args.command == "ingest":
        options = IngestOptions(
            source=source_uri(args),
            target=args.target,
            format=args.format,
            sha256=args.sha256,
            manifest=args.manifest,
            limits=Limits(
                max_bytes=args.max_bytes,
                max_files=args.max_files,
                max_ratio=args.max_ratio,
                space_fraction=args.space_fraction,
            ),
            retry=retry,
            pvc_root=args.pvc_root,
            work_dir=args.work_dir,
            workers=args.workers,
            max_pixels=args.max_pixels,
            max_listed_invalid=args.max_listed_invalid,
            staging_id=args.staging_id,
        )
        return dict(ingest(options, progress))
    if args.command == "remove":
        target = parse_location(
            args.dataset, pvc_root=args.pvc_root, flag="--dataset", reason="InvalidTarget"
        )
        return dict(remove(target, make_client(retry) if target.kind == "s3" else None))
    location = parse_location(
        args.dataset, pvc_root=args.pvc_root, flag="--dataset", reason="NotIngested"
    )
    client = make_client(retry) if location.kind == "s3" else None
    record, created = publish(
        open_store(location, client),
        name=args.version,
        train_ratio=args.train_ratio,
        seed=args.seed,
        stratified=args.stratified,
        usage_policy=args.usage_policy,
    )
    message = (
        f"version {record['name']}: {record['trainCount']} train, {record['evalCount']} eval"
        + ("" if created else " (already published)")
    )
    return {
        "status": "Succeeded",
        "reason": "Published",
        "message": message,
        "created": created,
        **record,
    }


class _RedactingFormatter(logging.Formatter):
    """Formats records with every URL redacted: a log line never shows credentials, even
    from a message or an exception that did not redact its URL itself."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is logged (it may be replaced)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _configure_logging(level: str) -> None:
    """Log this package's records to standard error, once per process."""
    log.setLevel(level)
    if not any(isinstance(handler, _StderrHandler) for handler in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    progress = Progress()
    try:
        args = build_parser().parse_args(arguments)
        _configure_logging(args.log_level)
        progress = Progress(interval=getattr(args, "progress_interval", 2.0))
        document = _run(args, progress)
        code = 0
    except DatasetError as exc:
        # redact_text: the last line of defence for a URL that a message did not redact.
        failure: FailureResult = {
            "status": "Failed",
            "reason": exc.reason,
            "message": redact_text(exc.message),
        }
        if exc.detail:
            failure["detail"] = exc.detail
        document = dict(failure)
        code = exc.exit_code
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
    except Exception as exc:  # the result must say something even for bugs
        print(redact_text(traceback.format_exc()), file=sys.stderr, end="")
        message = redact_text(repr(exc))
        document = {"status": "Failed", "reason": "InternalError", "message": message}
        code = 1
    progress.emit({"event": "result", **document})
    write_result(_result_path(arguments), document)
    return code
