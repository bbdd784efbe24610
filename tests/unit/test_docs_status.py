"""The docs say honestly which kinds are reconciled: a kind whose handlers only report
NotImplemented is marked "not built yet" where users read about it, and no other is."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubearts.constants import ALL_KINDS, KindNames

REPO = Path(__file__).resolve().parents[2]
HANDLERS = REPO / "operator" / "kubearts" / "handlers"


def not_built(kind: KindNames) -> bool:
    return "register_not_implemented(" in (HANDLERS / f"{kind.plural}.py").read_text()


def _row(text: str, kind: KindNames) -> str:
    return next(
        line
        for line in text.splitlines()
        if line.startswith("|") and kind.kind in line and kind.short_name in line
    )


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
@pytest.mark.parametrize("doc", ["README.md", "docs/api.md"])
def test_the_kind_tables_say_which_kinds_are_not_built(doc: str, kind: KindNames) -> None:
    row = _row((REPO / doc).read_text(), kind)
    assert ("not built yet" in row) == not_built(kind), row
