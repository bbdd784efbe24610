"""The images install exactly what the tests ran against: every pin of each image's lock
file (the operator's at the root, each worker's under images/) is the version installed in
the development environment, and the lock holds every pin of the project's own metadata."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCKS = {
    "operator": (REPO / "requirements.lock", REPO / "pyproject.toml"),
    "dataset": (REPO / "images/dataset/requirements.lock", REPO / "images/dataset/pyproject.toml"),
}


def pins(lock: Path) -> dict[str, str]:
    found = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            found[_normal(name)] = version
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("image", LOCKS)
def test_lock_pins_are_the_tested_versions(image: str) -> None:
    lock, _ = LOCKS[image]
    differing = {
        name: (version, importlib.metadata.version(name))
        for name, version in pins(lock).items()
        if importlib.metadata.version(name) != version
    }
    assert not differing, f"{lock.name} pins differ from the test environment: {differing}"


@pytest.mark.parametrize("image", LOCKS)
def test_lock_holds_every_declared_dependency(image: str) -> None:
    lock, pyproject = LOCKS[image]
    declared = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    locked = pins(lock)
    for requirement in declared:
        name, _, version = requirement.partition("==")
        assert locked.get(_normal(name)) == version, f"{requirement} is not locked as declared"
