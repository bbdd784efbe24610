"""Remote gallery indexes: what one fetch yields, a cache of the last outcome per URL, and
merging them into a gallery (pure: fetching is a function the caller passes in).

A ConfigMap declares a remote index with an ``index.<name>.url`` key. The index is an
http(s) URL serving one YAML or JSON mapping with the same keys as a ConfigMap's ``data``,
whose values are either entry text or the entry itself as a nested mapping.

The operator fetches each URL once, then once per refresh interval with a conditional
request (``If-None-Match``/``If-Modified-Since`` from the last answer), through one
:class:`RemoteIndexCache`; Subscriptions read the cached outcome and never fetch. A failed
fetch keeps nothing of an earlier success: an index that cannot be read is reported
unreachable, and entries that may live in it are ``GalleryUnavailable`` until it can.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import yaml

from kubearts.gallery.entries import ConfigMapLike, Gallery, GalleryProblem
from kubearts.gallery.parsing import REMOTE_INDEX_KIND, parse_gallery

__all__ = [
    "MAX_INDEX_BYTES",
    "Fetcher",
    "GalleryFetchError",
    "RemoteIndex",
    "RemoteIndexCache",
    "Response",
    "Validators",
    "fetch_index",
    "load_gallery",
    "parse_index",
]

#: Upper bound on a remote index body; a gallery is text, megabytes mean a wrong URL.
MAX_INDEX_BYTES: Final = 4 * 1024 * 1024


@dataclass(frozen=True)
class Validators:
    """What the server said last time, sent back so that it can answer 304 Not Modified."""

    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class Response:
    """One answer: the body, or None for 304 Not Modified; and the validators to keep."""

    body: bytes | None
    validators: Validators = Validators()


#: ``fetch(url, timeout_seconds, validators) -> Response``; raises on any failure.
Fetcher = Callable[[str, float, Validators], Response]


class GalleryFetchError(Exception):
    """A remote index could not be fetched or is not a gallery index."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.message = message
        super().__init__(f"remote index {url}: {message}")


def parse_index(url: str, body: bytes) -> dict[str, object]:
    """A fetched index body as a ConfigMap-like ``RemoteIndex`` document for
    :func:`kubearts.gallery.parsing.parse_gallery`; raises :class:`GalleryFetchError` when it
    is not a YAML/JSON mapping."""
    if len(body) > MAX_INDEX_BYTES:
        raise GalleryFetchError(url, f"larger than {MAX_INDEX_BYTES} bytes")
    try:
        document = yaml.safe_load(body.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise GalleryFetchError(url, f"is not UTF-8 YAML or JSON: {exc}") from exc
    if not isinstance(document, Mapping):
        raise GalleryFetchError(
            url, f"must be a mapping of gallery keys to entries, got {type(document).__name__}"
        )
    return {"kind": REMOTE_INDEX_KIND, "metadata": {"name": url}, "data": dict(document)}


@dataclass(frozen=True)
class RemoteIndex:
    """The outcome of the last fetch of one index URL: its document, or why there is none."""

    url: str
    document: dict[str, object] | None = None
    error: str = ""
    validators: Validators = Validators()
    revision: str = ""
    """Changes exactly when what the gallery sees of this index changes."""


def _revision(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()[:16]


def fetch_index(
    url: str, fetch: Fetcher, previous: RemoteIndex | None = None, *, timeout: float = 10.0
) -> RemoteIndex:
    """Fetch ``url`` once (conditionally when ``previous`` succeeded); never raises.

    304 Not Modified keeps ``previous``; any failure is a :class:`RemoteIndex` with
    ``error`` set, whatever the injected fetcher raised.
    """
    validators = previous.validators if previous is not None and not previous.error else None
    try:
        response = fetch(url, timeout, validators or Validators())
        if response.body is None:
            if previous is None or previous.document is None:
                raise GalleryFetchError(url, "answered 304 Not Modified to a first request")
            return previous
        document = parse_index(url, response.body)
    except GalleryFetchError as exc:
        return RemoteIndex(url, error=exc.message, revision=_revision(exc.message.encode()))
    except Exception as exc:  # an injected fetcher may raise anything; report it uniformly
        message = f"failed: {exc}"
        return RemoteIndex(url, error=message, revision=_revision(message.encode()))
    return RemoteIndex(url, document, "", response.validators, _revision(response.body))


def load_gallery(
    configmaps: Iterable[ConfigMapLike],
    *,
    name: str | None = None,
    remote: Mapping[str, RemoteIndex] | None = None,
) -> Gallery:
    """Parse ConfigMaps together with the remote indexes they declare.

    ``remote`` holds the fetched indexes by URL (:class:`RemoteIndexCache`); a declared
    index missing from it, or whose fetch failed, is a problem on the index URL and listed
    in :attr:`Gallery.unreachable`, and the rest of the gallery stays usable. When the same
    entry is defined twice, ConfigMaps (in name order) win over remote indexes (in key
    order); the loser is reported as a warning.
    """
    docs = list(configmaps)
    first = parse_gallery(docs, name=name)
    if not first.remote_indexes:
        return first
    fetched: list[dict[str, object]] = []
    problems: list[GalleryProblem] = []
    unreachable: list[str] = []
    for url in dict.fromkeys(first.remote_indexes):  # de-duplicated, order kept
        outcome = (remote or {}).get(url)
        if outcome is not None and outcome.document is not None:
            fetched.append(outcome.document)
            continue
        unreachable.append(url)
        message = outcome.error if outcome is not None else "not fetched yet"
        problems.append(GalleryProblem(f"index {url}", "", "", message))
    merged = parse_gallery([*docs, *fetched], name=name)
    return Gallery(
        name=merged.name,
        algorithms=merged.algorithms,
        datasets=merged.datasets,
        problems=merged.problems + tuple(problems),
        sources=merged.sources,
        remote_indexes=merged.remote_indexes,
        unreachable=tuple(unreachable),
    )


@dataclass
class RemoteIndexCache:
    """The last outcome per index URL, shared by every reader in the process (thread-safe).

    :meth:`get` fetches a URL the first time anyone needs it; after that only
    :meth:`refresh` fetches, conditionally, so readers never cause traffic to the index
    servers however many Subscriptions there are.
    """

    fetch: Fetcher
    timeout: float = 10.0
    _entries: dict[str, RemoteIndex] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def _lock(self, url: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(url, threading.Lock())

    def _fetch(self, url: str, *, again: bool) -> RemoteIndex:
        with self._lock(url):  # one fetch per URL at a time; the others wait for its result
            previous = self._entries.get(url)
            if previous is not None and not again:
                return previous
            outcome = fetch_index(url, self.fetch, previous, timeout=self.timeout)
            self._entries[url] = outcome
            return outcome

    def get(self, urls: Iterable[str]) -> dict[str, RemoteIndex]:
        """The outcomes for ``urls``, fetching those never fetched before."""
        return {url: self._fetch(url, again=False) for url in urls}

    def refresh(self, urls: Iterable[str]) -> list[str]:
        """Fetch ``urls`` again (conditionally); the URLs whose outcome changed."""
        changed = []
        for url in urls:
            before = self._entries.get(url)
            after = self._fetch(url, again=True)
            if before is None or before.revision != after.revision:
                changed.append(url)
        return changed

    def retain(self, urls: Iterable[str]) -> None:
        """Forget every URL not in ``urls`` (no gallery declares it any more)."""
        keep = set(urls)
        with self._guard:
            for url in [u for u in self._entries if u not in keep]:
                del self._entries[url]
                self._locks.pop(url, None)
