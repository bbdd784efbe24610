"""How values and suggestions appear in messages for people (pure).

Validation messages across the operator (gallery entries, hyperparameters) show a value as
the user would write it in YAML/JSON and suggest the closest valid name, the same way
everywhere.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable

__all__ = ["closest", "show"]


def show(value: object) -> str:
    """A value as the user would write it in YAML/JSON: ``true``, ``null``, ``"0.01"``."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate the user most likely meant by ``word``, or None.

    Case-insensitive equality first (``Adam`` → ``adam``), then abbreviations by initials
    (``lr`` → ``learning_rate``), then an unambiguous prefix (``epoch`` → ``epochs``), then
    difflib's similarity.
    """
    options = list(candidates)
    lowered = word.lower()
    for candidate in options:
        if candidate.lower() == lowered:
            return candidate
    initials = [c for c in options if "".join(p[:1] for p in c.lower().split("_")) == lowered]
    if len(initials) == 1:
        return initials[0]
    prefixed = [c for c in options if len(lowered) >= 2 and c.lower().startswith(lowered)]
    if len(prefixed) == 1:
        return prefixed[0]
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return matches[0] if matches else None
