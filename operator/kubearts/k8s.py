"""The only module that talks to the Kubernetes API server.

Thin synchronous wrappers over the official ``kubernetes`` client (handlers run in kopf's
thread pool, so blocking calls are fine there, never on the event loop). Objects go in and
come out as plain dicts, the same shape builders produce and ``kubectl get -o json`` shows.

The error policy lives here, in one place:

- reads answer ``None`` for 404 (the object does not exist);
- creates answer the existing object for 409 (it was created before: re-running a handler
  is harmless); children have deterministic names, so the existing object is *the* child;
- 429 and 5xx become ``kopf.TemporaryError`` (the API server is busy: retry soon);
- 400 and 422 become ``kopf.PermanentError`` with the server's message (the manifest is
  invalid; retrying the same spec cannot help — a spec change runs the handler again);
- anything else (401, 403, network errors, ...) propagates, and kopf retries with backoff.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from kubearts.constants import GROUP, VERSION

__all__ = [
    "ApiException",
    "api_client",
    "create_custom_object",
    "create_if_absent",
    "create_or_get",
    "delete",
    "get",
    "get_custom_object",
    "list_custom_objects",
    "list_objects",
    "list_pods",
    "patch",
    "patch_custom_object",
    "patch_custom_status",
    "read_pod_log",
    "use_client",
]

#: Delay before retrying after the API server said it is overloaded or failing.
RETRY_DELAY_SECONDS: Final = 10.0
_RETRYABLE: Final = frozenset({429, 500, 502, 503, 504})
_INVALID: Final = frozenset({400, 422})
_MERGE_PATCH: Final = "application/merge-patch+json"
#: Handler threads (kopf's executor) and API connections kept open: one per thread, so
#: handlers never queue for a connection. Most of a handler's time is spent waiting on the
#: API server, so more threads than cores pay off when many objects arrive at once.
HANDLER_THREADS: Final = 20


@dataclass(frozen=True)
class _Kind:
    """Where one built-in kind lives in the API: its group-version path and plural."""

    prefix: str
    plural: str

    def path(self, namespace: str, name: str = "") -> str:
        base = f"{self.prefix}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{name}" if name else base


# Built-in kinds the operator creates or reads, keyed by (apiVersion, kind).
_KINDS: Final[Mapping[tuple[str, str], _Kind]] = {
    ("batch/v1", "Job"): _Kind("/apis/batch/v1", "jobs"),
    ("apps/v1", "Deployment"): _Kind("/apis/apps/v1", "deployments"),
    ("v1", "Service"): _Kind("/api/v1", "services"),
    ("v1", "PersistentVolumeClaim"): _Kind("/api/v1", "persistentvolumeclaims"),
    ("v1", "ConfigMap"): _Kind("/api/v1", "configmaps"),
    ("v1", "Secret"): _Kind("/api/v1", "secrets"),
    ("v1", "Pod"): _Kind("/api/v1", "pods"),
}
_CUSTOM: Final = f"/apis/{GROUP}/{VERSION}"

_client_lock = threading.Lock()
_client: client.ApiClient | None = None


def api_client() -> client.ApiClient:
    """The process-wide API client, created on first use.

    In a pod it uses the service account; elsewhere the kubeconfig (``$KUBECONFIG`` or
    ``~/.kube/config``, current context), like kopf's own login.
    """
    global _client
    with _client_lock:
        if _client is None:
            configuration = client.Configuration()
            try:
                # The loaders are untyped in the client package.
                config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            except ConfigException:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            configuration.connection_pool_maxsize = HANDLER_THREADS
            _client = client.ApiClient(configuration)
        return _client


def use_client(api: client.ApiClient | None) -> None:
    """Replace the process-wide client (tests, embedded operators); None reloads lazily."""
    global _client
    with _client_lock:
        _client = api


def _request(
    method: str,
    path: str,
    *,
    query: Mapping[str, Any] | None = None,
    body: Any = None,
    content_type: str = "application/json",
) -> bytes:
    """One request to the API server through the shared client; the response's bytes.

    Raw requests, not the client's typed API classes: those load thousands of model classes
    (about 100 MiB) that the operator never uses. Non-2xx answers raise ``ApiException``.
    """
    api = api_client()
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    params = [(key, value) for key, value in (query or {}).items() if value is not None]
    request = api.param_serialize(
        method,
        path,
        query_params=params,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request)
    response.read()  # type: ignore[no-untyped-call]
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    return bytes(response.data or b"")


def _call(method: str, path: str, **kwargs: Any) -> Any:
    """A request whose answer is JSON, parsed as plain data: exactly the server's field
    names and values, fields newer than the client included."""
    data = _request(method, path, **kwargs)
    return json.loads(data) if data else None


def _as_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TypeError(f"the API server answered {type(data).__name__}, not an object")
    return data


def _kind_of(api_version: str, kind: str) -> _Kind:
    try:
        return _KINDS[(api_version, kind)]
    except KeyError:
        known = ", ".join(f"{v}/{k}" for v, k in _KINDS)
        raise ValueError(f"k8s does not handle {api_version}/{kind}; known: {known}") from None


def _server_message(exc: ApiException) -> str:
    """The human part of an API error: the Status object's message when there is one."""
    try:
        status = json.loads(exc.body or "")
    except (TypeError, ValueError):
        status = None
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])
    return f"{exc.status} {exc.reason or ''}".strip()


def _translate(exc: ApiException, what: str) -> Exception:
    """Map an API error to what a handler should raise (see the module docstring)."""
    message = f"{what}: {_server_message(exc)}"
    if exc.status in _RETRYABLE:
        return kopf.TemporaryError(message, delay=RETRY_DELAY_SECONDS)
    if exc.status in _INVALID:
        return kopf.PermanentError(message)
    return exc


def _namespace_and_name(body: Mapping[str, Any]) -> tuple[str, str]:
    metadata = body.get("metadata") or {}
    namespace, name = metadata.get("namespace"), metadata.get("name")
    if not namespace or not name:
        raise ValueError(
            f"{body.get('kind')} manifest needs metadata.namespace and metadata.name "
            "(children have deterministic names so creating twice is harmless)"
        )
    return str(namespace), str(name)


# --- Built-in kinds --------------------------------------------------------------------------


def get(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """Read a built-in object; None when it does not exist."""
    spec = _kind_of(api_version, kind)
    try:
        return _as_object(_call("GET", spec.path(namespace, name)))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise _translate(exc, f"reading {kind} {namespace}/{name}") from exc


def create_or_get(body: Mapping[str, Any]) -> dict[str, Any]:
    """Create a built-in object from its manifest; if it exists already, return that one.

    The manifest must carry apiVersion, kind, metadata.namespace and metadata.name. The
    existing object is returned as is, not compared or updated: callers that need to
    converge a changed spec patch it afterwards.
    """
    api_version, kind = str(body.get("apiVersion")), str(body.get("kind"))
    spec = _kind_of(api_version, kind)
    namespace, name = _namespace_and_name(body)
    try:
        return _as_object(_call("POST", spec.path(namespace), body=dict(body)))
    except ApiException as exc:
        if exc.status != 409:
            raise _translate(exc, f"creating {kind} {namespace}/{name}") from exc
    existing = get(api_version, kind, namespace, name)
    if existing is None:
        # It existed a moment ago and is gone now (being deleted): try again shortly.
        raise kopf.TemporaryError(
            f"{kind} {namespace}/{name} exists but could not be read; it is probably being deleted",
            delay=RETRY_DELAY_SECONDS,
        )
    return existing


def create_if_absent(body: Mapping[str, Any]) -> bool:
    """Create a built-in object unless one of that name exists; True when it was created.

    For objects the operator may create but not read (a Secret holding a source URL): a
    conflict is the answer, nothing is read back.
    """
    api_version, kind = str(body.get("apiVersion")), str(body.get("kind"))
    spec = _kind_of(api_version, kind)
    namespace, name = _namespace_and_name(body)
    try:
        _call("POST", spec.path(namespace), body=dict(body))
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise _translate(exc, f"creating {kind} {namespace}/{name}") from exc
    return True


def patch(
    api_version: str, kind: str, namespace: str, name: str, changes: Mapping[str, Any]
) -> dict[str, Any] | None:
    """JSON-merge-patch a built-in object; None when it does not exist.

    A merge patch replaces lists as a whole, so send complete lists (containers, ports).
    """
    spec = _kind_of(api_version, kind)
    try:
        return _as_object(
            _call(
                "PATCH", spec.path(namespace, name), body=dict(changes), content_type=_MERGE_PATCH
            )
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise _translate(exc, f"patching {kind} {namespace}/{name}") from exc


def delete(api_version: str, kind: str, namespace: str, name: str) -> bool:
    """Delete a built-in object and its dependents; False when it did not exist.

    Dependents go in the background: the API's default for Jobs would orphan their pods.
    """
    spec = _kind_of(api_version, kind)
    try:
        _call("DELETE", spec.path(namespace, name), query={"propagationPolicy": "Background"})
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise _translate(exc, f"deleting {kind} {namespace}/{name}") from exc
    return True


def list_objects(
    api_version: str, kind: str, namespace: str, labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """List built-in objects in ``namespace`` whose labels include ``labels``."""
    spec = _kind_of(api_version, kind)
    selector = ",".join(f"{key}={value}" for key, value in (labels or {}).items())
    try:
        result = _as_object(
            _call("GET", spec.path(namespace), query={"labelSelector": selector or None})
        )
    except ApiException as exc:
        raise _translate(exc, f"listing {kind} in {namespace}") from exc
    return [_as_object(item) for item in result.get("items") or ()]


def list_pods(namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """Pods in ``namespace`` carrying ``labels`` (e.g. the pods of one Job)."""
    return list_objects("v1", "Pod", namespace, labels)


def read_pod_log(
    namespace: str,
    name: str,
    container: str | None = None,
    tail_lines: int | None = None,
) -> str | None:
    """The log of a pod's container (the last ``tail_lines`` lines); None when the pod is gone.

    A container that has not started yet answers 400; that is "no log yet", i.e. "".
    """
    try:
        data = _request(
            "GET",
            _KINDS[("v1", "Pod")].path(namespace, name) + "/log",
            query={"container": container, "tailLines": tail_lines},
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        if exc.status == 400:
            return ""
        raise _translate(exc, f"reading the log of pod {namespace}/{name}") from exc
    return data.decode("utf-8", errors="replace")


# --- kubearts.io custom resources ------------------------------------------------------------


def get_custom_object(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    """Read a kubearts.io object (``plural`` from ``constants``); None when absent."""
    try:
        return _as_object(_call("GET", f"{_CUSTOM}/namespaces/{namespace}/{plural}/{name}"))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise _translate(exc, f"reading {plural} {namespace}/{name}") from exc


def create_custom_object(plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Create a kubearts.io object from its manifest, or return the existing one (409)."""
    namespace, name = _namespace_and_name(body)
    try:
        return _as_object(
            _call("POST", f"{_CUSTOM}/namespaces/{namespace}/{plural}", body=dict(body))
        )
    except ApiException as exc:
        if exc.status != 409:
            raise _translate(exc, f"creating {plural} {namespace}/{name}") from exc
    existing = get_custom_object(plural, namespace, name)
    if existing is None:
        raise kopf.TemporaryError(
            f"{plural} {namespace}/{name} exists but could not be read; it is probably being "
            "deleted",
            delay=RETRY_DELAY_SECONDS,
        )
    return existing


def list_custom_objects(
    plural: str, namespace: str, labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """List kubearts.io objects of ``plural`` in ``namespace`` carrying ``labels``."""
    selector = ",".join(f"{key}={value}" for key, value in (labels or {}).items())
    try:
        result = _as_object(
            _call(
                "GET",
                f"{_CUSTOM}/namespaces/{namespace}/{plural}",
                query={"labelSelector": selector or None},
            )
        )
    except ApiException as exc:
        raise _translate(exc, f"listing {plural} in {namespace}") from exc
    return [_as_object(item) for item in result.get("items") or ()]


def patch_custom_status(
    plural: str, namespace: str, name: str, status: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Merge ``status`` into a kubearts.io object's status subresource; None when absent.

    For code outside kopf handlers (timers, background work); inside a handler, write to
    kopf's ``patch.status`` instead (see ``handlers.common``), which kopf applies once.
    """
    try:
        return _as_object(
            _call(
                "PATCH",
                f"{_CUSTOM}/namespaces/{namespace}/{plural}/{name}/status",
                body={"status": dict(status)},
                content_type=_MERGE_PATCH,
            )
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise _translate(exc, f"patching the status of {plural} {namespace}/{name}") from exc


def patch_custom_object(
    plural: str, namespace: str, name: str, changes: Mapping[str, Any]
) -> dict[str, Any] | None:
    """JSON-merge-patch a kubearts.io object (e.g. its annotations); None when absent.

    For code outside the object's own handlers; never for ``spec``, which belongs to users.
    """
    try:
        return _as_object(
            _call(
                "PATCH",
                f"{_CUSTOM}/namespaces/{namespace}/{plural}/{name}",
                body=dict(changes),
                content_type=_MERGE_PATCH,
            )
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise _translate(exc, f"patching {plural} {namespace}/{name}") from exc
