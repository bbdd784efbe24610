"""Galleries in the operator: held in memory, refreshed once per gallery, and announced to
exactly the Subscriptions that use them.

Nothing here runs per Subscription on a clock. The pieces:

* ``gallery_configmaps`` — a kopf index of the gallery ConfigMaps of the operator
  namespace (the watch asks the API server for ``kubearts.io/gallery`` ConfigMaps only),
  ``{gallery name: [ConfigMap, ...]}``. Reading a gallery is a dictionary lookup, never an
  API call.
* ``subscriptions_by_gallery`` — a kopf index of Subscriptions by the gallery they name.
* :class:`Galleries` (one per operator, in kopf's ``memo``) — the cache of remote indexes
  (:class:`kubearts.gallery.RemoteIndexCache`) and the parsed gallery per *revision*, a
  digest of its ConfigMaps' data and its remote indexes' content. A thousand
  Subscriptions of one gallery parse it once.
* ``galleries_changed`` — a gallery ConfigMap was added, edited or deleted (kopf updates the
  index before calling it). When the gallery's revision differs from the one last
  announced, every Subscription of that gallery is woken.
* ``galleries_refresh`` — one operator-wide background task that fetches every remote index
  once per ``KUBEARTS_GALLERY_RESYNC_SECONDS`` with a conditional request (ETag,
  Last-Modified); a gallery whose index changed is announced like an edited ConfigMap.

Waking a Subscription means setting its ``gallery.kubearts.io/revision`` annotation to the
new revision. kopf sees an annotation change and runs the Subscription's update handler,
queued behind any handler already running for that object. So status has one writer, the
Subscription's own handlers, and a gallery change can never be overwritten by a handler
that read the gallery just before it: that handler's write is followed by the woken run.
A gallery change costs one small patch per subscriber and nothing for anyone else; an
unchanged ConfigMap (a label edit, a re-list after a watch expired) wakes nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, cast

import kopf

from kubearts import k8s, subscription_plan
from kubearts.constants import (
    GALLERY_LABEL,
    GALLERY_REVISION_ANNOTATION,
    GROUP,
    SUBSCRIPTIONS,
    VERSION,
)
from kubearts.gallery import (
    ConfigMapLike,
    Gallery,
    GalleryFetchError,
    RemoteIndex,
    RemoteIndexCache,
    Response,
    Validators,
    index_urls,
    load_gallery,
)
from kubearts.gallery.remote import MAX_INDEX_BYTES
from kubearts.handlers import common

__all__ = [
    "Galleries",
    "configmap_index",
    "galleries",
    "galleries_changed",
    "galleries_start_refresh",
    "galleries_stop_refresh",
    "galleries_watch_labelled_only",
    "gallery_configmaps",
    "read_gallery",
    "refresh_remote_indexes",
    "subscriber_index",
    "subscriptions_by_gallery",
    "urllib_fetch",
    "wake_subscribers",
]

#: Keys in kopf's memo.
MEMO_GALLERIES_KEY: Final = "galleries"
MEMO_REFRESH_TASK_KEY: Final = "galleries_refresh"
#: Seconds to wait for a remote index server to connect and for each read.
FETCH_TIMEOUT_SECONDS: Final = 10.0
#: Subscriptions woken at once when their gallery changes.
WAKE_CONCURRENCY: Final = 8
#: At most this many problems of one gallery ConfigMap are logged per change.
MAX_LOGGED_PROBLEMS: Final = 10

#: The two indexes, as kopf passes them to every handler: as keyword arguments named after
#: their functions (kopf's handler signatures type them as ``**kwargs``).
ConfigMapIndex = Mapping[str, Iterable[ConfigMapLike]]
SubscriberIndex = Mapping[str, Iterable[tuple[str, str]]]
CONFIGMAP_INDEX: Final = "gallery_configmaps"
SUBSCRIBER_INDEX: Final = "subscriptions_by_gallery"


def configmap_index(kwargs: Mapping[str, Any]) -> ConfigMapIndex:
    """The ``gallery_configmaps`` index from a handler's keyword arguments."""
    return cast(ConfigMapIndex, kwargs[CONFIGMAP_INDEX])


def subscriber_index(kwargs: Mapping[str, Any]) -> SubscriberIndex:
    """The ``subscriptions_by_gallery`` index from a handler's keyword arguments."""
    return cast(SubscriberIndex, kwargs[SUBSCRIBER_INDEX])


# --- fetching remote indexes (the only network I/O of the gallery) ---------------------------


def urllib_fetch(url: str, timeout: float, validators: Validators) -> Response:
    """Fetch ``url`` over http(s), conditionally when ``validators`` are given."""
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        # Never file:// or ftp://: a URL from a ConfigMap must not read the operator's files.
        raise GalleryFetchError(url, "only http:// and https:// URLs are supported")
    headers = {"Accept": "application/yaml, application/json;q=0.9, text/plain;q=0.5"}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = cast(bytes, response.read(MAX_INDEX_BYTES + 1))
            answered = Validators(
                response.headers.get("ETag", ""), response.headers.get("Last-Modified", "")
            )
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Response(None, validators)
        raise GalleryFetchError(url, f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise GalleryFetchError(url, f"cannot connect: {exc.reason}") from exc
    except (TimeoutError, OSError) as exc:
        raise GalleryFetchError(url, f"failed: {exc}") from exc
    return Response(body, answered)


# --- the in-memory galleries -----------------------------------------------------------------


def _name(doc: ConfigMapLike) -> str:
    metadata = doc.get("metadata")
    return str(metadata.get("name", "")) if isinstance(metadata, Mapping) else ""


def _revision(configmaps: list[ConfigMapLike], remote: Mapping[str, RemoteIndex]) -> str:
    """A digest of everything a gallery is read from."""
    content = [[_name(doc), doc.get("data")] for doc in configmaps]
    indexes = sorted((url, index.revision) for url, index in remote.items())
    text = json.dumps([content, indexes], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Galleries:
    """The operator's galleries: remote indexes cached per URL, each gallery parsed once
    per revision, and the revision last announced to its Subscriptions (thread-safe)."""

    def __init__(self, remote: RemoteIndexCache) -> None:
        self.remote = remote
        self._parsed: dict[str, tuple[str, Gallery]] = {}
        self._announced: dict[str, str] = {}
        self._lock = threading.Lock()

    def read(self, name: str, configmaps: Iterable[ConfigMapLike]) -> tuple[str, Gallery]:
        """Gallery ``name`` as held by ``configmaps`` (its entries in the index), with its
        revision. The first reader of a remote index fetches it; later ones use the cache."""
        docs = sorted(configmaps, key=_name)
        remote = self.remote.get(index_urls(docs))
        revision = _revision(docs, remote)
        with self._lock:
            cached = self._parsed.get(name)
            if cached is not None and cached[0] == revision:
                return cached
        parsed = load_gallery(docs, name=name, remote=remote)
        with self._lock:
            self._parsed[name] = (revision, parsed)
        return revision, parsed

    def announce(self, name: str, revision: str) -> str | None:
        """Record ``revision`` as announced for gallery ``name``; the one announced before
        (None the first time). Equal values mean there is nothing new to announce."""
        with self._lock:
            previous = self._announced.get(name)
            self._announced[name] = revision
            return previous


_memo_lock = threading.Lock()


def galleries(memo: Mapping[str, Any]) -> Galleries:
    """The operator's :class:`Galleries` from kopf's ``memo``, made on first use."""
    with _memo_lock:
        found = memo.get(MEMO_GALLERIES_KEY)
        if not isinstance(found, Galleries):
            found = Galleries(RemoteIndexCache(urllib_fetch, FETCH_TIMEOUT_SECONDS))
            cast(dict[str, Any], memo)[MEMO_GALLERIES_KEY] = found
        return found


def read_gallery(name: str, index: ConfigMapIndex, memo: Mapping[str, Any]) -> tuple[str, Gallery]:
    """Gallery ``name`` and its revision, from the ConfigMap index (no API call)."""
    return galleries(memo).read(name, list(index.get(name, ())))


# --- indexes ---------------------------------------------------------------------------------


@kopf.on.startup()
def galleries_watch_labelled_only(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Ask the API server for gallery ConfigMaps only: without a label selector the watch
    behind the index would stream every ConfigMap of the cluster to the operator."""
    settings.watching.label_selectors["v1", "configmaps"] = GALLERY_LABEL


@kopf.index("v1", "configmaps", labels={GALLERY_LABEL: kopf.PRESENT})
def gallery_configmaps(
    namespace: str | None,
    name: str | None,
    labels: kopf.Labels,
    body: kopf.Body,
    memo: kopf.Memo,
    **_: Any,
) -> dict[str, dict[str, Any]] | None:
    """Gallery ConfigMaps of the operator namespace by gallery name (name and data only)."""
    if namespace != common.operator_config(memo).namespace:
        return None
    gallery = str(labels[GALLERY_LABEL])
    metadata = {"name": name, "labels": {GALLERY_LABEL: gallery}}
    return {gallery: {"metadata": metadata, "data": dict(body.get("data") or {})}}


@kopf.index(GROUP, VERSION, SUBSCRIPTIONS)
def subscriptions_by_gallery(
    namespace: str | None, name: str | None, spec: kopf.Spec, **_: Any
) -> dict[str, tuple[str, str]]:
    """Subscriptions by the gallery they name: ``{gallery: [(namespace, name), ...]}``."""
    return {subscription_plan.subscription_gallery(spec): (str(namespace), str(name))}


# --- announcing changes ----------------------------------------------------------------------


def wake_subscribers(
    gallery: str, revision: str, subscribers: SubscriberIndex, logger: kopf.Logger
) -> int:
    """Set the revision annotation on every Subscription of ``gallery``, so kopf runs its
    update handler; the number woken. A few patches run at once (each waits mostly on the
    API server). A failure is logged and skipped: the next change of the gallery, or of the
    Subscription, evaluates it again."""
    change = {"metadata": {"annotations": {GALLERY_REVISION_ANNOTATION: revision}}}

    def wake(target: tuple[str, str]) -> bool:
        namespace, name = target
        try:
            return k8s.patch_custom_object(SUBSCRIPTIONS, namespace, name, change) is not None
        except (k8s.ApiException, kopf.TemporaryError, kopf.PermanentError) as exc:
            logger.warning("Cannot wake Subscription %s/%s: %s", namespace, name, exc)
            return False

    targets = list(subscribers.get(gallery, ()))
    if len(targets) <= 1:
        return sum(wake(target) for target in targets)
    with ThreadPoolExecutor(WAKE_CONCURRENCY, thread_name_prefix="gallery-wake") as pool:
        return sum(pool.map(wake, targets))


def _log_problems(gallery: Gallery, configmap: str | None, logger: kopf.Logger) -> None:
    source = f"ConfigMap {configmap}"
    problems = [p for p in gallery.problems if p.source == source]
    for problem in problems[:MAX_LOGGED_PROBLEMS]:
        logger.warning("Gallery %r: %s", gallery.name, problem)
    if len(problems) > MAX_LOGGED_PROBLEMS:
        logger.warning(
            "Gallery %r: %d more problems in %s",
            gallery.name,
            len(problems) - MAX_LOGGED_PROBLEMS,
            source,
        )


@kopf.on.event("v1", "configmaps", labels={GALLERY_LABEL: kopf.PRESENT})
def galleries_changed(
    type: str | None,
    name: str | None,
    namespace: str | None,
    labels: kopf.Labels,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """A gallery ConfigMap was listed, added, edited or deleted: announce a new revision.

    A listing (``type`` None, at start-up or after a watch expired) only records the
    revision the first time: the resume handlers evaluate every Subscription at start-up.
    """
    if namespace != common.operator_config(memo).namespace:
        return
    gallery_name = str(labels.get(GALLERY_LABEL, ""))
    revision, found = read_gallery(gallery_name, configmap_index(kwargs), memo)
    previous = galleries(memo).announce(gallery_name, revision)
    if previous == revision or (previous is None and type is None):
        return
    if type != "DELETED":
        _log_problems(found, name, logger)
    woken = wake_subscribers(gallery_name, revision, subscriber_index(kwargs), logger)
    logger.info(
        "Gallery %r changed (revision %s): woke %d Subscription(s)", gallery_name, revision, woken
    )


# --- refreshing remote indexes ---------------------------------------------------------------


def refresh_remote_indexes(
    state: Galleries,
    configmaps: ConfigMapIndex,
    subscribers: SubscriberIndex,
    logger: kopf.Logger,
) -> list[str]:
    """Fetch every declared remote index again (conditionally) and announce the galleries
    whose content changed; the names of those galleries."""
    declared = {name: index_urls(list(docs)) for name, docs in list(configmaps.items())}
    urls = list(dict.fromkeys(url for found in declared.values() for url in found))
    changed = set(state.remote.refresh(urls))
    state.remote.retain(urls)
    announced = []
    for name, found in declared.items():
        if not changed.intersection(found):
            continue
        revision, _ = state.read(name, list(configmaps.get(name, ())))
        if state.announce(name, revision) not in (None, revision):
            woken = wake_subscribers(name, revision, subscribers, logger)
            logger.info("Gallery %r: a remote index changed; woke %d Subscription(s)", name, woken)
            announced.append(name)
    return announced


async def _refresh_forever(
    memo: kopf.Memo,
    configmaps: ConfigMapIndex,
    subscribers: SubscriberIndex,
    logger: kopf.Logger,
) -> None:
    # Read when the loop starts, after the startup handler of main.py loaded the settings.
    await asyncio.sleep(0)
    interval = common.operator_config(memo).gallery_resync_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(
                refresh_remote_indexes, galleries(memo), configmaps, subscribers, logger
            )
        except Exception:  # the loop must outlive any one bad refresh
            logger.exception("Refreshing the remote gallery indexes failed")


@kopf.on.startup()
async def galleries_start_refresh(memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    """Make the operator's :class:`Galleries` and start the one task that refreshes remote
    indexes every ``KUBEARTS_GALLERY_RESYNC_SECONDS`` (the indexes are live views kopf keeps
    current). Made here, before any object is seen, because kopf gives each object a shallow
    copy of this memo: all of them then share the one instance."""
    galleries(memo)
    memo[MEMO_REFRESH_TASK_KEY] = asyncio.create_task(
        _refresh_forever(memo, configmap_index(kwargs), subscriber_index(kwargs), logger)
    )


@kopf.on.cleanup()
async def galleries_stop_refresh(memo: kopf.Memo, **_: Any) -> None:
    """Stop the refresh task when the operator stops."""
    task = memo.get(MEMO_REFRESH_TASK_KEY)
    if isinstance(task, asyncio.Task):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
