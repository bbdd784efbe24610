"""The registry digest: the same tree anywhere has the same digest; any change shows."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kubearts_converter.digest import Entry, digest_tree, tree_digest


def _tree(root: Path) -> Path:
    (root / "saved_model" / "variables").mkdir(parents=True)
    (root / "saved_model" / "saved_model.pb").write_bytes(b"graph")
    (root / "saved_model" / "variables" / "variables.index").write_bytes(b"\x00\x01")
    (root / "labels.txt").write_text("a\nb\n", encoding="utf-8")
    return root


def test_same_tree_in_two_places_has_the_same_digest(tmp_path: Path) -> None:
    first = _tree(tmp_path / "one")
    second = tmp_path / "elsewhere" / "two"
    shutil.copytree(first, second)
    os.utime(second / "labels.txt", (0, 0))
    (second / "labels.txt").chmod(0o600)
    assert digest_tree(first) == digest_tree(second)
    assert digest_tree(first).files == 3
    assert digest_tree(first).size_bytes == 5 + 2 + 4


@pytest.mark.parametrize("change", ["rename", "byte", "add", "remove"])
def test_any_change_gives_another_digest(tmp_path: Path, change: str) -> None:
    first = _tree(tmp_path / "one")
    second = tmp_path / "two"
    shutil.copytree(first, second)
    if change == "rename":
        (second / "labels.txt").rename(second / "labels.text")
    elif change == "byte":
        (second / "saved_model" / "saved_model.pb").write_bytes(b"grapH")
    elif change == "add":
        (second / "extra").write_bytes(b"")
    else:
        (second / "labels.txt").unlink()
    assert digest_tree(first).digest != digest_tree(second).digest


def test_order_of_entries_does_not_matter() -> None:
    a = Entry("a", 1, "00")
    b = Entry("b/c", 2, "11")
    assert tree_digest([a, b]) == tree_digest([b, a])
    assert tree_digest([a, b]).digest.startswith("sha256:")


def test_path_and_content_are_not_confused() -> None:
    # Moving bytes between the path and the size must not collide.
    assert tree_digest([Entry("a1", 2, "x")]).digest != tree_digest([Entry("a", 12, "x")]).digest


def test_excluded_top_level_entries(tmp_path: Path) -> None:
    root = _tree(tmp_path / "one")
    before = digest_tree(root)
    (root / "registration.json").write_text("{}", encoding="utf-8")
    assert digest_tree(root, exclude=frozenset({"registration.json"})) == before
