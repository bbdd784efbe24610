"""Timestamps in the form the Kubernetes API writes them."""

from __future__ import annotations

import datetime


def now_rfc3339() -> str:
    """The current UTC time to the second, as in status fields (``2026-01-01T00:00:00Z``)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
