"""The algorithm and data set gallery: its format, parsed into plain data (pure).

Modules by concern: :mod:`~kubearts.gallery.versions` (semantic versions and their order),
:mod:`~kubearts.gallery.entries` (entry shapes, problems, the parsed :class:`Gallery`),
:mod:`~kubearts.gallery.parsing` (ConfigMaps → Gallery), :mod:`~kubearts.gallery.remote`
(remote indexes: fetched through a function the caller passes in, cached per URL),
:mod:`~kubearts.gallery.lookup` (algorithms and versions by name). How a Subscription pins
a version is :mod:`kubearts.subscription_plan`; reading galleries in the operator (an index of
the ConfigMaps, the refresh of remote indexes) is :mod:`kubearts.handlers.galleries`.
Nothing here does I/O, so everything is testable without a cluster or a network.

Gallery format
==============

A gallery named ``<g>`` is every ConfigMap in the operator namespace labelled
``kubearts.io/gallery: "<g>"`` (the chart ships ``default``). Each ConfigMap's ``data`` holds
one key per entry, so entries are edited, added and removed independently:

``algorithm.<name>.yaml``
    One algorithm: ``displayName``, ``description``, ``task``, ``framework`` and a list of
    ``versions`` (see :class:`AlgorithmVersion`). ``<name>`` is the name Subscriptions use
    (lower case, digits, ``_`` and ``-``); an optional ``name`` field must repeat it.
``dataset.<name>.yaml``
    One public data set (see :class:`DatasetEntry`).
``index.<name>.url``
    The URL of a remote index to merge into this gallery (:mod:`kubearts.gallery.remote`).

The ``.yaml`` suffix may also be ``.yml``, ``.json`` or absent. The value is YAML (or JSON)
text. YAML anchors work within one entry, e.g. to share a hyperparameter list between
versions. Versions are semantic versions (``MAJOR.MINOR.PATCH[-pre][+build]``) written as
strings and ordered by semver precedence (``1.10.0`` > ``1.9.0``). A published version is
meant to be immutable: publish a new version rather than editing one (a Subscription pinned
to an edited version reports ``Synced=False`` with reason ``VersionChanged``).

Remote indexes cannot declare further indexes. When the same entry is defined twice,
ConfigMaps (in name order) win over remote indexes (in key order); the loser is reported as
a warning.

Problems
========

Parsing never stops at the first mistake: every problem is collected as a
:class:`GalleryProblem` naming the source (ConfigMap or URL), the key and the field, and a
broken entry or version is left out without hiding the others. Unknown fields are warnings
(the entry is kept), everything else is an error (the entry or version is dropped).
"""

from __future__ import annotations

from kubearts.gallery.entries import (
    OUTPUT_FORMATS,
    TENSOR_DTYPES,
    TENSOR_LAYOUTS,
    AlgorithmEntry,
    AlgorithmVersion,
    ConfigMapLike,
    DatasetEntry,
    DatasetSource,
    Entrypoint,
    Gallery,
    GalleryProblem,
    InputContract,
    OutputArtifact,
    Severity,
    TensorSpec,
)
from kubearts.gallery.lookup import (
    AlgorithmInvalidError,
    AlgorithmNotFoundError,
    GalleryLookupError,
    GalleryUnavailableError,
    VersionInvalidError,
    VersionNotFoundError,
    find_algorithm,
    latest_version,
    newer_versions,
    resolve_version,
    version_digest,
)
from kubearts.gallery.parsing import gallery_selector, index_urls, parse_gallery
from kubearts.gallery.remote import (
    Fetcher,
    GalleryFetchError,
    RemoteIndex,
    RemoteIndexCache,
    Response,
    Validators,
    fetch_index,
    load_gallery,
    parse_index,
)
from kubearts.gallery.versions import SemVer, parse_version, sort_versions

__all__ = [
    "OUTPUT_FORMATS",
    "TENSOR_DTYPES",
    "TENSOR_LAYOUTS",
    "AlgorithmEntry",
    "AlgorithmInvalidError",
    "AlgorithmNotFoundError",
    "AlgorithmVersion",
    "ConfigMapLike",
    "DatasetEntry",
    "DatasetSource",
    "Entrypoint",
    "Fetcher",
    "Gallery",
    "GalleryFetchError",
    "GalleryLookupError",
    "GalleryProblem",
    "GalleryUnavailableError",
    "InputContract",
    "OutputArtifact",
    "RemoteIndex",
    "RemoteIndexCache",
    "Response",
    "SemVer",
    "Severity",
    "TensorSpec",
    "Validators",
    "VersionInvalidError",
    "VersionNotFoundError",
    "fetch_index",
    "find_algorithm",
    "gallery_selector",
    "index_urls",
    "latest_version",
    "load_gallery",
    "newer_versions",
    "parse_gallery",
    "parse_index",
    "parse_version",
    "resolve_version",
    "sort_versions",
    "version_digest",
]
