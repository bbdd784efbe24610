"""The local cluster lets non-root containers reach the project environment even when its
interpreter lives under a 0700 home (pyenv under /root on the build machines)."""

from __future__ import annotations

import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.cluster import make_environment_reachable


@pytest.fixture
def root() -> Iterator[Path]:
    """A searchable folder directly under the system temp dir (pytest's own tmp_path sits
    under 0700 folders, which the function would open up too)."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        folder.chmod(0o755)
        yield folder


def test_search_permission_is_added_only_where_missing(root: Path) -> None:
    home = root / "home"
    interpreter = home / "pyenv" / "bin" / "python3.11"
    interpreter.parent.mkdir(parents=True)
    interpreter.write_text("")
    home.chmod(0o700)
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(interpreter)

    assert make_environment_reachable(venv) == [home]
    assert home.stat().st_mode & stat.S_IXOTH
    assert not home.stat().st_mode & stat.S_IROTH, "search only, no listing"
    assert make_environment_reachable(venv) == []
