"""Fixtures for the converter's tests: the tiny classifier exported once per session into a
trainer-shaped output directory (``saved_model/``, ``frozen_graph.pb``, ``labels.txt``,
``model.json``) with an evaluation split, and the command line run in this process."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from converter_helpers import Exported, Run, make_exported, run_main


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return make_exported(
        tmp_path_factory.mktemp("trainer-output"), tmp_path_factory.mktemp("dataset")
    )


@pytest.fixture(name="run_main")
def run_main_fixture() -> Callable[..., Run]:
    return run_main
