"""Showing URLs without the secrets they may carry.

A source URL can hold credentials in two places: the user information
(``https://user:password@host/…``) and the query of a presigned URL (``X-Amz-Signature``,
``Signature``, ``sig``, ``token``…). Whatever the worker prints, logs or writes into a
result shows URLs through :func:`redact_url`; :func:`redact_text` applies it to every URL in
a free text (exception messages, log lines) as a last line of defence.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote_plus, urlsplit, urlunsplit

REDACTED: Final = "***"

_SECRET_PARAMETERS: Final = frozenset({"sig", "key", "apikey", "api_key", "auth", "code"})
"""Query parameter names (lower case) that hold secrets although they say no more."""
_SECRET_FRAGMENTS: Final = ("signature", "token", "secret", "password", "passwd", "credential")
"""Query parameter names containing one of these (lower case) hold secrets."""
_URL: Final = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>`]+""")


def is_secret_parameter(name: str) -> bool:
    """Whether a query parameter called ``name`` carries a secret (signatures, tokens…)."""
    lowered = unquote_plus(name).lower()
    return lowered in _SECRET_PARAMETERS or any(part in lowered for part in _SECRET_FRAGMENTS)


def redact_url(url: str) -> str:
    """``url`` with its password (or a lone user name, often a token) and secret query
    values replaced by ``***``; everything else is kept as written."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: show nothing after the scheme
        scheme, _, _ = url.partition("://")
        return f"{scheme}://{REDACTED}"
    return urlunsplit(parts._replace(netloc=_netloc(parts.netloc), query=_query(parts.query)))


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted by :func:`redact_url`."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


def _netloc(netloc: str) -> str:
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return netloc
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{REDACTED}@{host}" if colon else f"{REDACTED}@{host}"


def _query(query: str) -> str:
    pieces = []
    for piece in query.split("&"):
        name, equals, _ = piece.partition("=")
        pieces.append(f"{name}={REDACTED}" if equals and is_secret_parameter(name) else piece)
    return "&".join(pieces)
