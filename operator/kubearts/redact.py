"""URLs as the operator shows them: never with the credentials they may carry.

A data set source may hold credentials in its user information
(``https://user:password@host/…``) or, for presigned URLs, in its query (``X-Amz-Signature``,
``sig``, ``token``…). Conditions, events, status, logs and Job arguments show such a URL
only through :func:`redact_url`; the URL itself reaches the worker through a Secret
(:func:`has_credentials` says when). The dataset worker applies the same rules to what it
prints (``kubearts_dataset.redact``); a unit test keeps the two in agreement.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = ["REDACTED", "has_credentials", "redact_url"]

REDACTED: Final = "***"
#: Query parameters (lower case) that are secrets by name, and fragments that make one.
_SECRET_NAMES: Final = frozenset({"sig", "key", "apikey", "api_key", "auth", "code"})
_SECRET_PARTS: Final = ("signature", "token", "secret", "password", "passwd", "credential")


def _secret_parameter(name: str) -> bool:
    lowered = unquote_plus(name).lower()
    return lowered in _SECRET_NAMES or any(part in lowered for part in _SECRET_PARTS)


def _secret_pieces(query: str) -> list[bool]:
    return [
        "=" in piece and _secret_parameter(piece.partition("=")[0]) for piece in query.split("&")
    ]


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries user information or a secret query parameter."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return True  # unreadable: treat as secret rather than show or pass it in the clear
    return "@" in parts.netloc or any(_secret_pieces(parts.query))


def redact_url(url: str) -> str:
    """``url`` with its password (or a lone user name, often a token) and secret query
    values replaced by ``***``; the rest as written."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{url.partition('://')[0]}://{REDACTED}"
    userinfo, at, host = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{host}" if colon else f"{REDACTED}@{host}"
    pieces = parts.query.split("&")
    query = "&".join(
        f"{piece.partition('=')[0]}={REDACTED}" if secret else piece
        for piece, secret in zip(pieces, _secret_pieces(parts.query), strict=True)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
