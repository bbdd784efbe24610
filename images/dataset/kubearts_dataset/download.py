"""Streaming HTTP(S) downloads with bounded retries, resume, checksums and size limits.

Connection errors, timeouts, truncated bodies, 5xx, 408 and 429 answers are retried with
exponential backoff; a retry resumes with a ``Range`` request when the server supports it
and starts over otherwise. Other 4xx answers fail at once: asking again will not help.
The SHA-256 of the body is computed while it is written, so the archive is read only once.
A whole download, all attempts and waits included, must finish within a deadline
(:class:`Deadline`): per-read timeouts alone let a server that trickles a byte now and then
hold the worker forever.

A private server's credentials come as the full ``Authorization`` header value in
``KUBEARTS_HTTP_AUTHORIZATION`` (the operator fills it from the source's Secret), or as
``user:password@`` in the URL, sent as HTTP basic authentication (the header wins when both
are given). Credentials are sent to the source URL only — not to where it redirects, which
may be another host — and appear in no log line and no result: URLs are shown through
:func:`~kubearts_dataset.redact.redact_url`.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final, Generic, TypeVar

from kubearts_dataset import __version__
from kubearts_dataset.errors import DatasetError
from kubearts_dataset.limits import Limits
from kubearts_dataset.progress import Progress
from kubearts_dataset.redact import redact_url

log = logging.getLogger(__name__)

CHUNK: Final = 1024 * 1024
_RETRIABLE_STATUS: Final = frozenset({408, 429})
#: Variable holding the ``Authorization`` header value for http(s) sources.
AUTHORIZATION_ENV: Final = "KUBEARTS_HTTP_AUTHORIZATION"
_AUTH_STATUS: Final = frozenset({401, 403})
DEFAULT_DEADLINE: Final = 6 * 3600.0
"""Seconds a whole download may take: 6 hours is 20 GiB at under 1 MiB/s."""

T = TypeVar("T")


def http_authorization() -> str | None:
    """The ``Authorization`` header value from the environment, or None when unset or empty."""
    value = os.environ.get(AUTHORIZATION_ENV, "").strip()
    return value or None


def split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without its ``user:password@`` part, and the basic ``Authorization`` header
    value that part stands for (``None`` without one).

    urllib would take ``user:password@host`` for a host name; credentials in a URL mean
    basic authentication (RFC 3986 deprecates them, but tools and users still write them).
    """
    parts = urllib.parse.urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    header = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), header


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transfer is retried."""

    attempts: int = 5
    """Tries in all, the first included."""
    backoff: float = 1.0
    """Delay before the second try, in seconds; doubled before each further try."""
    max_backoff: float = 30.0
    """Upper bound of one delay, in seconds."""
    timeout: float = 30.0
    """Seconds to wait for a connection or for the next bytes of a body."""
    deadline: float = DEFAULT_DEADLINE
    """Seconds a whole download may take, all attempts and waits between them included."""

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after the ``failed_attempt``-th try (1-based)."""
        return float(min(self.max_backoff, self.backoff * 2 ** (failed_attempt - 1)))


@dataclass
class Deadline:
    """The moment by which a download must be done, and a way to hold it to that."""

    seconds: float
    what: str
    """What is downloaded, for the failure message (no credentials)."""
    started: float = field(default_factory=time.monotonic)

    def expired(self) -> bool:
        """Whether the time is up."""
        return time.monotonic() - self.started >= self.seconds

    def check(self) -> None:
        """Fail with ``DownloadFailed`` (detail ``DownloadTimeout``) when the time is up."""
        if self.expired():
            raise DatasetError(
                "DownloadFailed",
                f"{self.what} did not finish within the download deadline of "
                f"{self.seconds:g} seconds; raise --download-deadline for a large or slow "
                "source, or check the server",
                detail="DownloadTimeout",
            )

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` and return its result, or fail when the deadline passes first.

        ``work`` runs on a daemon thread because neither urllib nor botocore can interrupt
        a read that is waiting for a trickling server; on time-out the thread is left
        behind, stops at its next write (the :class:`Sink` checks this deadline) and does
        not keep the process from exiting.
        """
        outcome: _Outcome[T] = _Outcome()
        thread = threading.Thread(target=outcome.capture, args=(work,), daemon=True)
        thread.start()
        thread.join(max(0.0, self.seconds - (time.monotonic() - self.started)))
        if thread.is_alive():
            self.check()
            raise AssertionError("the deadline passed but did not expire")  # pragma: no cover
        return outcome.result()


class _Outcome(Generic[T]):
    """What a function run on another thread returned or raised."""

    def __init__(self) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None

    def capture(self, work: Callable[[], T]) -> None:
        try:
            self._value = work()
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            self._error = exc

    def result(self) -> T:
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when there is no error


@dataclass(frozen=True)
class Downloaded:
    """A body written to disk."""

    path: Path
    size: int
    sha256: str


class Sink:
    """Writes a body to a file, hashing, counting and enforcing the byte limit as it goes."""

    def __init__(
        self,
        path: Path,
        limits: Limits,
        progress: Progress,
        what: str,
        deadline: Deadline | None = None,
    ) -> None:
        self.path = path
        self.deadline = deadline
        self.progress = progress
        self.what = what
        self.total: int | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self.limits = limits.for_volume(path.parent)
        self._file: BinaryIO = path.open("wb")
        self.restart()

    def restart(self) -> None:
        """Forget what was written: the next bytes are the start of the body."""
        self._file.seek(0)
        self._file.truncate()
        self.hasher = hashlib.sha256()
        self.written = 0

    def expect(self, total: int | None) -> None:
        """Record the announced body size and refuse it early when it is over the limit."""
        self.total = total
        if total is not None:
            self.limits.check_bytes(total, self.what)

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; fail when the deadline has passed (see :meth:`Deadline.run`)."""
        self.check_deadline()
        self.written += len(chunk)
        self.limits.check_bytes(self.written, self.what)
        self._file.write(chunk)
        self.hasher.update(chunk)
        self.progress.update("download", bytes_done=self.written, total_bytes=self.total)

    def check_deadline(self) -> None:
        """Fail when the download's deadline, if any, has passed."""
        if self.deadline is not None:
            self.deadline.check()

    def close(self) -> Downloaded:
        """Flush to disk and describe the result."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.progress.update(
            "download", bytes_done=self.written, total_bytes=self.total, final=True
        )
        return Downloaded(path=self.path, size=self.written, sha256=self.hasher.hexdigest())

    def abort(self) -> None:
        """Close without reporting; the caller removes the staging area."""
        self._file.close()


def check_sha256(downloaded: Downloaded, expected: str | None, what: str) -> None:
    """Fail with ``ChecksumMismatch`` when ``expected`` is given and differs."""
    if expected is None:
        return
    want = normalise_sha256(expected)
    if downloaded.sha256 != want:
        raise DatasetError(
            "ChecksumMismatch",
            f"{what} has sha256 {downloaded.sha256}, expected {want}; check spec.source.sha256 "
            "or whether the source was replaced",
        )


def normalise_sha256(value: str) -> str:
    """``sha256:ABC…`` or ``abc…`` → lower-case hex; fail unless it is 64 hex digits."""
    text = value.strip().lower().removeprefix("sha256:")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise DatasetError(
            "InvalidArgument",
            f"--sha256 {value!r} is not a SHA-256 digest; give 64 hexadecimal digits",
        )
    return text


def _fix(status: int, authorization: str | None) -> str:
    """How to fix a 4xx answer; credentials are named, never shown."""
    if status in _AUTH_STATUS and authorization:
        return (
            "the server refused the credentials: check the Authorization key of the Secret in "
            "spec.source.secretRef (the full header value, e.g. 'Bearer <token>'), or the "
            "user:password in the URL"
        )
    if status in _AUTH_STATUS:
        return (
            "the server wants credentials: set spec.source.secretRef to a Secret whose key "
            "Authorization holds the full header value (e.g. 'Bearer <token>')"
        )
    return "check spec.source.uri and, for private data, spec.source.secretRef"


class _TransientError(Exception):
    """A transient failure of one try."""


def download_http(
    url: str,
    dest: Path,
    *,
    limits: Limits,
    retry: RetryPolicy,
    progress: Progress,
    sleep: Callable[[float], None] = time.sleep,
    authorization: str | None = None,
) -> Downloaded:
    """Download ``url`` to ``dest`` (streamed), retrying transient failures, within
    ``retry.deadline`` seconds.

    ``authorization`` is the ``Authorization`` header value for a private server; without
    it, credentials in the URL are used (see the module docstring).
    """
    plain, basic = split_credentials(url)
    deadline = Deadline(retry.deadline, f"the download of {redact_url(url)}")
    sink = Sink(dest, limits, progress, deadline.what, deadline)
    return deadline.run(lambda: _fill(plain, sink, retry, sleep, authorization or basic))


def _fill(
    url: str,
    sink: Sink,
    retry: RetryPolicy,
    sleep: Callable[[float], None],
    authorization: str | None,
) -> Downloaded:
    """Write the body into ``sink``, retrying transient failures (see :func:`download_http`)."""
    last_error = ""
    shown = redact_url(url)
    if authorization and urllib.parse.urlsplit(url).scheme == "http":
        log.warning("sending credentials to %s over plain http, unencrypted", shown)
    try:
        for attempt in range(1, retry.attempts + 1):
            try:
                _try_once(url, sink, retry.timeout, authorization)
                return sink.close()
            except _TransientError as exc:
                last_error = str(exc)
            sink.check_deadline()
            if attempt < retry.attempts:
                delay = retry.delay(attempt)
                log.warning(
                    "download attempt %d/%d of %s failed: %s; retrying in %.1fs",
                    attempt,
                    retry.attempts,
                    shown,
                    last_error,
                    delay,
                )
                sleep(delay)
    except BaseException:
        sink.abort()
        raise
    sink.abort()
    raise DatasetError(
        "DownloadFailed",
        f"{shown} could not be downloaded after {retry.attempts} attempts: {last_error}",
    )


def _try_once(url: str, sink: Sink, timeout: float, authorization: str | None) -> None:
    headers = {"Accept-Encoding": "identity", "User-Agent": f"kubearts-dataset/{__version__}"}
    resuming = sink.written > 0
    if resuming:
        headers["Range"] = f"bytes={sink.written}-"
    request = urllib.request.Request(url, headers=headers)
    if authorization:
        # Unredirected: urllib copies ordinary headers to a redirect's target, which may be
        # another host (a CDN, a presigned store URL) that must not see the credentials.
        request.add_unredirected_header("Authorization", authorization)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code >= 500 or exc.code in _RETRIABLE_STATUS:
            raise _TransientError(f"HTTP {exc.code} {exc.reason}") from None
        if exc.code == 416 and resuming:
            sink.restart()
            raise _TransientError("HTTP 416 on resume; starting over") from None
        raise DatasetError(
            "DownloadFailed",
            f"{redact_url(url)} answered HTTP {exc.code} {exc.reason}; "
            f"{_fix(exc.code, authorization)}",
        ) from None
    except urllib.error.URLError as exc:
        raise _TransientError(f"unreachable: {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _TransientError(f"unreachable: {exc}") from None
    with response:
        length = response.headers.get("Content-Length")
        remaining = int(length) if length and length.isdigit() else None
        content_range = response.headers.get("Content-Range", "")
        if (
            resuming
            and response.status == 206
            and content_range.startswith(f"bytes {sink.written}-")
        ):
            log.info("resuming %s at byte %d", redact_url(url), sink.written)
        else:
            sink.restart()
        sink.expect(None if remaining is None else sink.written + remaining)
        try:
            # read1: whatever has arrived, so that the deadline is checked between pieces
            # even when the server trickles.
            while chunk := response.read1(CHUNK):
                sink.write(chunk)
        except (OSError, http.client.HTTPException) as exc:
            raise _TransientError(f"connection lost after {sink.written} bytes: {exc}") from None
    if sink.total is not None and sink.written != sink.total:
        raise _TransientError(f"body ended after {sink.written} of {sink.total} bytes")
