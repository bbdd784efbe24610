"""kubearts.main: what importing the operator registers and what start-up configures."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import kopf
import pytest

import kubearts.main
from kubearts.config import Config
from kubearts.constants import (
    ALL_KINDS,
    DATASET,
    INFERENCE_SERVICE,
    MODEL,
    MODEL_CONVERSION,
    SUBSCRIPTION,
    TRAINING_JOB,
)

PLURALS = [names.plural for names in ALL_KINDS]
LOGGER = logging.getLogger("test")


def changing_handlers() -> list[Any]:
    registry = kopf.get_default_registry()
    return list(registry._changing.get_all_handlers())


def handler(handler_id: str) -> Any:
    (found,) = [h for h in changing_handlers() if h.id == handler_id]
    return found


def test_the_six_plurals_are_known() -> None:
    assert sorted(PLURALS) == sorted(
        [
            "datasets",
            "subscriptions",
            "trainingjobs",
            "modelconversions",
            "models",
            "inferenceservices",
        ]
    )


@pytest.mark.parametrize("plural", PLURALS)
@pytest.mark.parametrize("event", ["create", "update", "resume"])
def test_each_plural_has_a_handler_per_event(plural: str, event: str) -> None:
    registered = handler(f"{plural}_{event}")
    assert registered.selector.group == "kubearts.io"
    assert registered.selector.version == "v1alpha1"
    assert registered.selector.any_name == plural


def test_handlers_watch_only_kubearts_resources() -> None:
    assert {h.selector.group for h in changing_handlers()} == {"kubearts.io"}


def test_only_kinds_that_clean_up_or_poll_carry_a_finalizer() -> None:
    # A finalizer makes deleting an object wait for the operator. Datasets need one for
    # deleting stored files (deletePolicy: Delete) and while a Job works; TrainingJobs and
    # ModelConversions while their run is followed, Models while versions register,
    # InferenceServices while a batch run is followed;
    # Subscriptions have no timer or deletion handler, so none.
    needing = {h.selector.any_name for h in changing_handlers() if h.requires_finalizer}
    needing |= {
        h.selector.any_name
        for h in kopf.get_default_registry()._spawning.get_all_handlers()
        if h.requires_finalizer
    }
    assert SUBSCRIPTION.plural not in needing
    assert needing <= {
        DATASET.plural,
        TRAINING_JOB.plural,
        MODEL_CONVERSION.plural,
        MODEL.plural,
        INFERENCE_SERVICE.plural,
    }


def test_no_timer_or_daemon_runs_per_subscription() -> None:
    # Work per object on a clock grows with the cluster; galleries wake their subscribers.
    spawning = kopf.get_default_registry()._spawning.get_all_handlers()
    assert SUBSCRIPTION.plural not in {h.selector.any_name for h in spawning}


@pytest.fixture
def quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KUBEARTS_POOLS", "KUBEARTS_LOG_FORMAT", "KUBEARTS_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUBEARTS_METRICS_PORT", "0")


# kopf's decorators type the decorated functions as kopf callbacks; call them untyped.
configure: Any = kubearts.main.configure
config_probe: Any = kubearts.main.config_probe
metrics_probe: Any = kubearts.main.metrics_probe


def startup(memo: kopf.Memo | None = None) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    configure(settings=settings, memo=kopf.Memo() if memo is None else memo, logger=LOGGER)
    return settings


@pytest.mark.usefixtures("quiet_env")
def test_startup_uses_our_own_persistence_prefix_and_finalizer() -> None:
    settings = startup()
    assert settings.persistence.finalizer == "kubearts.io/finalizer"
    progress = settings.persistence.progress_storage
    diffbase = settings.persistence.diffbase_storage
    assert isinstance(progress, kopf.AnnotationsProgressStorage)
    assert progress.prefix == "kubearts.io"
    assert isinstance(diffbase, kopf.AnnotationsDiffBaseStorage)
    assert (diffbase.prefix, diffbase.key) == ("kubearts.io", "last-handled-configuration")


@pytest.mark.usefixtures("quiet_env")
def test_startup_gives_handlers_a_thread_and_a_connection_each() -> None:
    settings = startup()
    assert settings.execution.max_workers == kubearts.k8s.HANDLER_THREADS > 6


@pytest.mark.usefixtures("quiet_env")
def test_startup_puts_the_configuration_in_the_memo() -> None:
    memo = kopf.Memo()
    startup(memo)
    assert isinstance(memo["config"], Config)
    assert config_probe(memo=memo) == {
        "loaded": True,
        "namespace": "kubearts-system",
        "pools": ["ascend310", "ascend910", "cpu", "gpu"],
    }
    assert metrics_probe(memo=memo) == {"port": 0}


@pytest.mark.usefixtures("quiet_env")
def test_bad_configuration_stops_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEARTS_LOG_FORMAT", "xml")
    with pytest.raises(kopf.PermanentError, match="invalid operator configuration: KUBEARTS_LOG"):
        startup()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("quiet_env", "restore_logging")
def test_json_log_format_switches_to_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEARTS_LOG_FORMAT", "json")
    logging.getLogger().setLevel(logging.DEBUG)
    startup()
    root = logging.getLogger()
    formatters = [type(h.formatter).__name__ for h in root.handlers if h.formatter]
    assert "ObjectJsonFormatter" in formatters
    assert root.level == logging.DEBUG


def test_probes_before_startup() -> None:
    assert config_probe(memo=kopf.Memo()) == {"loaded": False}
    assert metrics_probe(memo=kopf.Memo()) == {"port": None}


@pytest.mark.parametrize("plural", [names.plural for names in ALL_KINDS])
def test_metric_cleanup_watch_runs_only_for_deletions(plural: str) -> None:
    handlers = [
        h
        for h in kopf.get_default_registry()._watching.get_all_handlers()
        if h.id == f"{plural}_forget_deleted"
    ]
    assert len(handlers) == 1
    when = handlers[0].when
    assert when is not None
    assert when(type="DELETED") is True
    assert when(type="MODIFIED") is False
    assert when(type=None) is False
