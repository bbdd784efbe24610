"""Pretrained weights, named by location: never an implicit download.

The ``pretrained_weights`` hyperparameter names a Keras weights file of the backbone (as
``keras.applications.<Model>(include_top=False)`` saves or ships it: ``.h5``/``.hdf5`` or
``.weights.h5``):

* a path in a volume mounted in the pod, ``file:///path``, or ``pvc://<claim>/<path>``
  (below ``--pvc-root``, default ``$KUBEARTS_PVC_ROOT`` or ``/mnt/pvc``);
* ``http://`` / ``https://`` (fetched with a timeout and a few retries);
* ``s3://bucket/key`` (endpoint ``KUBEARTS_S3_ENDPOINT`` or ``AWS_ENDPOINT_URL``,
  credentials ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, unsigned without them).

Anything that cannot be fetched or loaded is ``WeightsUnavailable`` naming the
hyperparameter; the trainer never falls back to random weights silently.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Final

from kubearts_trainer.errors import TrainerError

PARAMETER: Final = "pretrained_weights"
SUFFIXES: Final = (".weights.h5", ".h5", ".hdf5")


def _unavailable(location: str, why: str) -> TrainerError:
    return TrainerError("WeightsUnavailable", f"--{PARAMETER}={location}: {why}")


def _check_suffix(location: str, name: str) -> None:
    if not name.endswith(SUFFIXES):
        raise TrainerError(
            "InvalidHyperparameter",
            f"--{PARAMETER}={location}: name a Keras weights file ending in {', '.join(SUFFIXES)}",
        )


def fetch(
    location: str,
    work_dir: Path,
    *,
    pvc_root: Path,
    timeout: float = 30.0,
    attempts: int = 3,
) -> Path:
    """A local file holding the weights at ``location``."""
    parsed = urllib.parse.urlsplit(location)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file"):
        path = Path(urllib.parse.unquote(parsed.path) if scheme else location)
        return _local(location, path)
    if scheme == "pvc":
        relative = PurePosixPath(parsed.path.lstrip("/"))
        if not parsed.netloc or ".." in relative.parts:
            raise TrainerError(
                "InvalidHyperparameter", f"--{PARAMETER}={location}: write pvc://<claim>/<path>"
            )
        return _local(location, pvc_root / parsed.netloc / relative)
    name = PurePosixPath(urllib.parse.unquote(parsed.path)).name
    _check_suffix(location, name)
    target = work_dir / name
    work_dir.mkdir(parents=True, exist_ok=True)
    if scheme in ("http", "https"):
        _download(location, target, timeout, attempts)
    elif scheme == "s3":
        _s3(location, parsed.netloc, parsed.path.lstrip("/"), target)
    else:
        raise TrainerError(
            "InvalidHyperparameter",
            f"--{PARAMETER}={location}: use a path, pvc://, http(s):// or s3:// location",
        )
    return target


def _local(location: str, path: Path) -> Path:
    _check_suffix(location, path.name)
    if not path.is_file():
        raise _unavailable(location, f"{path} does not exist or is not a file in this pod")
    if not os.access(path, os.R_OK):
        raise _unavailable(location, f"{path} is not readable by this pod's user")
    return path


def _download(location: str, target: Path, timeout: float, attempts: int) -> None:
    last = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(2**attempt, 10))
        try:
            with (
                urllib.request.urlopen(location, timeout=timeout) as answer,
                target.open("wb") as out,
            ):
                shutil.copyfileobj(answer, out, 1 << 20)
            return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} {exc.reason}"
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                break
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            last = str(getattr(exc, "reason", exc))
    raise _unavailable(location, f"cannot download it ({last}); check the URL and the network")


def _s3(location: str, bucket: str, key: str, target: Path) -> None:
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as exc:  # pragma: no cover - boto3 is a dependency
        raise _unavailable(location, "boto3 is not installed") from exc
    signed = bool(os.environ.get("AWS_ACCESS_KEY_ID"))
    client = boto3.client(
        "s3",
        endpoint_url=os.environ.get("KUBEARTS_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL"),
        region_name=os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3},
            connect_timeout=30,
            read_timeout=30,
            **({} if signed else {"signature_version": UNSIGNED}),
        ),
    )
    try:
        client.download_file(bucket, key, str(target))
    except (BotoCoreError, ClientError) as exc:
        raise _unavailable(location, f"cannot download it ({exc})") from exc


def load_into(backbone: object, path: Path, location: str) -> None:
    """Load ``path`` into ``backbone``; a file that does not fit is ``WeightsUnavailable``."""
    try:
        backbone.load_weights(str(path))  # type: ignore[attr-defined]
    except Exception as exc:
        raise _unavailable(
            location,
            f"cannot be loaded into the backbone ({type(exc).__name__}: {exc}); it must be "
            "the include_top=False weights of the same architecture",
        ) from exc
