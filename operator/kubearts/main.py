"""KubeArts operator entry point — a table of contents: start-up settings and registrations.

Run with ``kopf run --standalone -A -m kubearts.main`` (add
``--liveness=http://0.0.0.0:8081/healthz`` for the liveness endpoint). Importing this
module registers every handler with kopf's default registry; the handlers themselves live
in ``kubearts.handlers.<plural>``.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from kubearts import k8s, metrics
from kubearts.config import Config, load_config
from kubearts.constants import (
    ALL_KINDS,
    DIFFBASE_KEY,
    FINALIZER,
    GROUP,
    PERSISTENCE_PREFIX,
    VERSION,
)

# Importing a handler module registers its handlers.
from kubearts.handlers import (  # noqa: F401
    common,
    datasets,
    galleries,
    inferenceservices,
    modelconversions,
    models,
    subscriptions,
    trainingjobs,
    wakes,
)


def _is_deletion(type: str | None, **_: Any) -> bool:
    return type == "DELETED"


# Watches that keep the kubearts_objects metric free of deleted objects, one per kind.
# Filtered to deletions so that ordinary watch events do not run (and log) a handler.
for _names in ALL_KINDS:
    kopf.on.event(
        GROUP, VERSION, _names.plural, id=f"{_names.plural}_forget_deleted", when=_is_deletion
    )(common.forget_deleted)


@kopf.on.startup()
def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Load the configuration, apply kopf settings, start the metrics endpoint."""
    try:
        config = load_config()
    except ValueError as exc:
        # A bad setting does not heal by retrying: stop the operator with the message.
        raise kopf.PermanentError(f"invalid operator configuration: {exc}") from exc
    memo[common.MEMO_CONFIG_KEY] = config

    if config.log_format == "json":
        _use_json_logs()

    # Our own annotation prefix and finalizer from day one: kopf's defaults
    # (kopf.zalando.org/...) would be shared with any other kopf operator on the cluster.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=PERSISTENCE_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PERSISTENCE_PREFIX, key=DIFFBASE_KEY
    )
    # Object-scoped log lines at INFO and above become Kubernetes Events, so
    # `kubectl describe` shows what the operator did and why it waits.
    settings.posting.level = logging.INFO
    # Ask the API server to end watches regularly: a silently dropped connection would
    # otherwise stall the operator until the client notices.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # kopf's default is min(32, cores + 4) threads: 6 on two cores, while 100 TrainingJobs
    # applied at once each wait on a few API calls.
    settings.execution.max_workers = k8s.HANDLER_THREADS

    serving = metrics.start_server(config.metrics_port)
    logger.info(
        "KubeArts operator configured: namespace %s, pools %s, metrics %s",
        config.namespace,
        ", ".join(sorted(config.pools)),
        f"on port {config.metrics_port}" if serving else "off",
    )


def _use_json_logs() -> None:
    """Switch kopf's log handler to one JSON object per line, keeping the current level
    (set by ``kopf run --verbose/--debug/--quiet``); the object reference goes under
    ``object``."""
    level = logging.getLogger().level
    kopf.configure(
        verbose=level <= logging.DEBUG,
        quiet=level >= logging.WARNING,
        log_format=kopf.LogFormat.JSON,
        log_refkey="object",
    )


@kopf.on.probe(id="config")
def config_probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """Liveness detail: the configuration the operator runs with (no secrets in it)."""
    config = memo.get(common.MEMO_CONFIG_KEY)
    if not isinstance(config, Config):
        return {"loaded": False}
    return {"loaded": True, "namespace": config.namespace, "pools": sorted(config.pools)}


@kopf.on.probe(id="metrics")
def metrics_probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """Liveness detail: where the Prometheus endpoint listens (port 0 means off)."""
    config = memo.get(common.MEMO_CONFIG_KEY)
    return {"port": config.metrics_port if isinstance(config, Config) else None}
