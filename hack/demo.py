"""`make demo`: KubeArts on the local cluster, from data set to predictions, offline.

Run with the project's interpreter once the local cluster is up (``make demo`` does both):

1. installs KubeArts with its Helm chart (release ``kubearts`` in ``kubearts-system``, the
   operator running as the chart's Deployment, CPU fallback allowed since the local GPU and
   Ascend nodes have no chips), or reuses the release when it is there with these values;
2. writes scikit-learn's digits as image folders into ``digits.tar.gz`` and serves it over
   http on the cluster bridge, where pods reach the host, then applies every manifest of
   ``examples/offline/`` at once into namespace ``kubearts-demo`` (the operator orders the
   steps: each waits for what it depends on);
3. prints each object's Ready condition as it changes, the training epochs and accuracy;
4. uploads a few eval images through the Service's ClusterIP and prints predicted against
   true labels, then how to open the predict page, call the service and tear down.

Everything is level-based: a second run finds the release and the objects as they are and
finishes as soon as they are Ready. The pure pieces (filling in ``${NAME}`` placeholders,
condition lines, the multipart body) are tested in ``tests/unit/test_demo_script.py``.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import io
import json
import re
import sys
import tarfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import helm_python as helm
import numpy as np
import yaml
from PIL import Image
from sklearn.datasets import load_digits

from kubearts.constants import ALL_KINDS

# hack/ is this script's folder, so the local cluster's package imports as itself.
from localcluster import cluster, controlplane
from localcluster import layout as layouts

REPO: Final = Path(__file__).resolve().parents[1]
CLUSTER_ROOT: Final = REPO / ".localcluster"
CHART: Final = REPO / "charts" / "kubearts"
FLOW: Final = REPO / "examples" / "offline"
CRDS: Final = REPO / "crds"

RELEASE: Final = "kubearts"
RELEASE_NAMESPACE: Final = "kubearts-system"
NAMESPACE: Final = "kubearts-demo"
#: Chart values of the demo: the operator runs in-cluster; the local GPU and Ascend nodes
#: have no chips, so workers placed there run on the CPU and say so.
VALUES: Final[Mapping[str, Any]] = {
    "replicaCount": 1,
    "jobs": {"allowCpuFallback": True},
    "logFormat": "plain",
}
GROUP: Final = "kubearts.io"
KINDS: Final = ("kads", "kasub", "katj", "kaconv", "kamodel", "kaisvc")
CRD_PLURALS: Final = tuple(kind.plural for kind in ALL_KINDS)

#: Port of the data server on the cluster bridge's address. The address belongs to this
#: cluster alone, and a fixed port keeps the Dataset's source URI the same on every run.
DATA_PORT: Final = 18080
DATA_ARCHIVE: Final = "digits.tar.gz"
SAMPLES: Final = 8
FLOW_TIMEOUT_S: Final = 1800
POLL_S: Final = 2.0

_PLACEHOLDER: Final = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
_NO_PROXY: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- pure pieces --------------------------------------------------------------------------------


class MissingValueError(KeyError):
    """A manifest names a ``${NAME}`` the demo has no value for."""


def fill(node: Any, values: Mapping[str, str]) -> Any:
    """``node`` (a loaded manifest) with every ``${NAME}`` in its strings replaced by
    ``values[NAME]``; raises :class:`MissingValueError` naming an unknown placeholder."""
    if isinstance(node, str):

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise MissingValueError(f"no value for ${{{name}}}")
            return values[name]

        return _PLACEHOLDER.sub(value, node)
    if isinstance(node, Mapping):
        return {key: fill(item, values) for key, item in node.items()}
    if isinstance(node, list):
        return [fill(item, values) for item in node]
    return node


def load_flow(folder: Path, values: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every manifest of ``folder``'s YAML files, in file order, placeholders filled in."""
    manifests: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                manifests.append(fill(document, values))
    return manifests


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """The condition of type ``kind`` in ``obj``'s status (empty when absent)."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def ready_line(obj: Mapping[str, Any]) -> str:
    """One line for an object's Ready condition: ``Kind/name  Ready=… Reason: message``."""
    ready = condition(obj, "Ready")
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if not ready:
        return f"{name:38} Ready=?     (no status yet)"
    text = f"{name:38} Ready={ready.get('status'):5} {ready.get('reason', '')}"
    message = str(ready.get("message") or "")
    return f"{text}: {message}" if message else text


def training_line(obj: Mapping[str, Any]) -> str | None:
    """Epoch, running loss and accuracy and time left of a TrainingJob while it trains,
    None before the first step."""
    status = obj.get("status") or {}
    progress = status.get("progress") or {}
    metrics = status.get("metrics") or {}
    if "epoch" not in progress or "totalEpochs" not in progress:
        return None
    line = f"  epoch {progress['epoch']}/{progress['totalEpochs']}"
    for key in ("loss", "accuracy"):
        if isinstance(metrics.get(key), int | float):
            line += f"  {key} {metrics[key]:.4f}"
    # The first steps of a run (compilation, warm-up) make an estimate from them meaningless.
    if isinstance(progress.get("etaSeconds"), int) and (progress.get("percent") or 0) >= 5:
        line += f"  ({progress['etaSeconds']}s left)"
    return line


def report(obj: Mapping[str, Any]) -> tuple[str, str]:
    """What to print about ``obj`` and the key that says whether it changed: the Ready
    line, and for a training run its progress, at most once per tenth of the run."""
    text = ready_line(obj)
    progress = (obj.get("status") or {}).get("progress") or {}
    training = training_line(obj) if obj.get("kind") == "TrainingJob" else None
    if training is None or condition(obj, "Ready").get("reason") != "JobRunning":
        return text, text
    key = f"JobRunning {progress.get('epoch')} {int(progress.get('percent') or 0) // 10}"
    return key, f"{text}\n{training}"


def history_lines(obj: Mapping[str, Any]) -> list[str]:
    """The finished run's per-epoch table and its evaluation on the eval split."""
    status = obj.get("status") or {}
    lines = ["  epoch   loss  accuracy  eval loss  eval accuracy"]
    for row in status.get("history") or []:
        lines.append(
            f"  {row.get('epoch', 0):5d} {row.get('loss', float('nan')):6.3f}"
            f" {row.get('accuracy', float('nan')):9.4f} {row.get('evalLoss', float('nan')):10.3f}"
            f" {row.get('evalAccuracy', float('nan')):14.4f}"
        )
    accuracy = (status.get("evaluation") or {}).get("accuracy")
    if isinstance(accuracy, int | float):
        lines.append(f"  accuracy on the eval split: {accuracy:.4f}")
    return lines


def failure(obj: Mapping[str, Any]) -> str | None:
    """Why ``obj`` will not become Ready without a change to it, None while it may."""
    failed = condition(obj, "Failed")
    if failed.get("status") == "True":
        return f"{failed.get('reason')}: {failed.get('message')}"
    return None


def multipart(files: Sequence[tuple[str, bytes]], boundary: str) -> bytes:
    """A ``multipart/form-data`` body with each file as field ``images``."""
    body = io.BytesIO()
    for name, data in files:
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; '
            f'filename="{name}"\r\nContent-Type: image/png\r\n\r\n'.encode()
        )
        body.write(data + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue()


# --- the cluster ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """The running local cluster: kubectl with its kubeconfig, and its bridge address."""

    layout: layouts.Layout

    @property
    def kubeconfig(self) -> str:
        return str(self.layout.kubeconfig)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = controlplane.kubectl(self.layout, *args, check=False, input=input, timeout=120)
        if check and proc.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed:\n{proc.stderr.strip()}")
        return str(proc.stdout)

    def get(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", *args, "-o", "json")))

    def apply(self, manifest: Mapping[str, Any], namespace: str | None = None) -> str:
        where = ["-n", namespace] if namespace else []
        return self.kubectl("apply", *where, "-f", "-", input=json.dumps(manifest))


def connect() -> Cluster:
    found = layouts.load(CLUSTER_ROOT)
    if found is None or not cluster.running(found):
        raise SystemExit("the local cluster is not running: start it with `make cluster-up`")
    return Cluster(found)


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


T = TypeVar("T")


def wait(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(1.0)


# --- 1. KubeArts from its chart -----------------------------------------------------------------


def ensure_namespace(kube: Cluster, name: str) -> None:
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def adopt_for_helm(kube: Cluster) -> None:
    """Mark CRDs and gallery ConfigMaps applied without Helm (e.g. ``kubectl apply -f
    crds/``) as the release's, so installing the chart adopts them instead of refusing."""
    owned = {
        "meta.helm.sh/release-name": RELEASE,
        "meta.helm.sh/release-namespace": RELEASE_NAMESPACE,
    }
    objects: list[tuple[str, str, str | None]] = [
        ("crd", f"{plural}.{GROUP}", None) for plural in CRD_PLURALS
    ]
    maps = kube.get("configmap", "-n", RELEASE_NAMESPACE, "-l", "kubearts.io/gallery")["items"]
    objects += [("configmap", m["metadata"]["name"], RELEASE_NAMESPACE) for m in maps]
    for kind, name, namespace in objects:
        where = ["-n", namespace] if namespace else []
        found = kube.kubectl("get", kind, name, *where, "-o", "json", check=False)
        if not found:
            continue
        annotations = json.loads(found)["metadata"].get("annotations") or {}
        if annotations.get("meta.helm.sh/release-name") == RELEASE:
            continue
        kube.kubectl(
            "label", kind, name, *where, "--overwrite", "app.kubernetes.io/managed-by=Helm"
        )
        kube.kubectl(
            "annotate", kind, name, *where, "--overwrite", *(f"{k}={v}" for k, v in owned.items())
        )


def install(kube: Cluster) -> None:
    step(f"KubeArts from its Helm chart: release {RELEASE} in {RELEASE_NAMESPACE}")
    ensure_namespace(kube, RELEASE_NAMESPACE)
    values = dict(VALUES)
    with helm.Config(kubeconfig_path=kube.kubeconfig, namespace=RELEASE_NAMESPACE) as cfg:
        releases = {item["name"]: item for item in cfg.list()}
        current = releases.get(RELEASE)
        if current is None:
            adopt_for_helm(kube)
            summary = cfg.install(CHART, RELEASE, values, namespace=RELEASE_NAMESPACE, timeout=180)
            print(f"installed revision {summary['revision']}")
        elif current.get("status") == "deployed" and cfg.get_values(RELEASE) == values:
            print(f"reusing revision {current['revision']} (status deployed, same values)")
        else:
            summary = cfg.upgrade(CHART, RELEASE, values, namespace=RELEASE_NAMESPACE, timeout=180)
            print(f"upgraded to revision {summary['revision']}")

    def operator_ready() -> str | None:
        pods = kube.get(
            "pods", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/component=operator"
        )["items"]
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if condition(pod, "Ready").get("status") == "True":
                return str(pod["metadata"]["name"])
        return None

    pod = wait(operator_ready, 180, "the operator pod to be Ready")
    print(f"operator pod {pod} is Ready")


# --- 2. the data and the flow -----------------------------------------------------------------


def digits_archive(folder: Path) -> Path:
    """scikit-learn's digits as ``digits/<class>/<index>.png`` in a tar.gz, written once,
    with no timestamps (the same bytes each time it is written)."""
    archive = folder / DATA_ARCHIVE
    if archive.exists():
        return archive
    folder.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    partial = archive.with_suffix(".partial")
    with (
        gzip.GzipFile(partial, "wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w") as tar,
    ):
        for index, (image, target) in enumerate(zip(digits.images, digits.target, strict=True)):
            buffer = io.BytesIO()
            pixels = (image * (255 / 16)).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(buffer, "PNG")
            info = tarfile.TarInfo(f"digits/{int(target)}/{index:04d}.png")
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)
    partial.rename(archive)
    return archive


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path, address: str, port: int) -> Iterator[bool]:
    """Serve ``folder`` over http at ``address:port``; yields False when the port is taken."""
    handler = functools.partial(_QuietFiles, directory=str(folder))
    try:
        server = http.server.ThreadingHTTPServer((address, port), handler)
    except OSError:
        yield False
        return
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield True
    finally:
        server.shutdown()
        server.server_close()


def apply_flow(kube: Cluster, values: Mapping[str, str]) -> list[tuple[str, str]]:
    """Apply every manifest of the offline flow at once; (kind, name) of each."""
    manifests = load_flow(FLOW, values)
    ensure_namespace(kube, NAMESPACE)
    output = kube.apply({"apiVersion": "v1", "kind": "List", "items": manifests}, NAMESPACE)
    print(output.rstrip())
    return [(m["kind"], m["metadata"]["name"]) for m in manifests]


# --- 3. progress --------------------------------------------------------------------------------


def follow(kube: Cluster, objects: Sequence[tuple[str, str]], timeout: float) -> None:
    """Print each object's Ready line and the training progress whenever they change,
    until every object is Ready; stop at the first that failed."""
    wanted = set(objects)
    shown: dict[tuple[str, str], str] = {}
    history_shown = False
    deadline = time.monotonic() + timeout
    while True:
        items = kube.get(",".join(KINDS), "-n", NAMESPACE)["items"]
        found = {(o["kind"], o["metadata"]["name"]): o for o in items}
        for key in objects:
            obj = found.get(key)
            if obj is None:
                continue
            change, text = report(obj)
            if shown.get(key) != change:
                print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)
                shown[key] = change
            if (
                key[0] == "TrainingJob"
                and not history_shown
                and (obj.get("status") or {}).get("history")
            ):
                print("\n".join(history_lines(obj)), flush=True)
                history_shown = True
            if (why := failure(obj)) is not None:
                raise SystemExit(f"{key[0]}/{key[1]} failed: {why}")
        ready = {k for k, o in found.items() if condition(o, "Ready").get("status") == "True"}
        if wanted <= ready:
            return
        if time.monotonic() > deadline:
            pending = ", ".join(f"{k}/{n}" for k, n in sorted(wanted - ready))
            raise SystemExit(f"not Ready after {timeout:.0f}s: {pending}")
        time.sleep(POLL_S)


# --- 4. predictions -------------------------------------------------------------------------


def claim_folder(kube: Cluster, uri: str) -> Path:
    """The host folder behind ``pvc://<claim>/<path>``: the local cluster's volumes are
    host folders."""
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    volume = kube.get("pvc", claim, "-n", NAMESPACE)["spec"]["volumeName"]
    return Path(kube.get("pv", volume)["spec"]["hostPath"]["path"]) / path


def eval_samples(kube: Cluster, count: int) -> list[tuple[Path, str]]:
    """The first ``count`` images of the eval split, with their true labels, one per class
    while there are classes left."""
    dataset = kube.get("kads", "digits", "-n", NAMESPACE)["status"]
    root = claim_folder(kube, dataset["location"])
    manifest = claim_folder(kube, dataset["versions"][0]["manifests"]["eval"])
    picked: dict[str, tuple[Path, str]] = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        label = str(record["annotation"][0]["name"])
        picked.setdefault(label, (root / record["source"], label))
        if len(picked) == count:
            break
    return sorted(picked.values(), key=lambda sample: sample[1])


def service_address(kube: Cluster, isvc: str) -> str:
    """``http://<ClusterIP>:<port>`` of an InferenceService's predictor Service."""
    status = kube.get("kaisvc", isvc, "-n", NAMESPACE)["status"]
    spec = kube.get("service", status["serviceName"], "-n", NAMESPACE)["spec"]
    port = next((p for p in spec["ports"] if p.get("name") == "http"), spec["ports"][0])
    return f"http://{spec['clusterIP']}:{port['port']}"


def upload(url: str, images: Sequence[Path]) -> list[dict[str, Any]]:
    boundary = uuid.uuid4().hex
    body = multipart([(path.name, path.read_bytes()) for path in images], boundary)
    request = urllib.request.Request(
        url + "/", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with _NO_PROXY.open(request, timeout=60) as response:
        answer = json.loads(response.read())
    return answer if isinstance(answer, list) else [answer]


def predict(kube: Cluster, isvc: str, samples: Sequence[tuple[Path, str]]) -> None:
    status = kube.get("kaisvc", isvc, "-n", NAMESPACE)["status"]
    url = service_address(kube, isvc)
    provider = str(status.get("provider"))
    if status.get("deviceFallback"):
        provider += ", CPU fallback: no accelerator visible"
    step(f"{isvc}: {len(samples)} eval images to POST {url}/ ({provider})")
    answers = upload(url, [path for path, _ in samples])
    print("  image      true  predicted  score")
    correct = 0
    for (path, label), answer in zip(samples, answers, strict=True):
        predicted = str(answer.get("predicted_label"))
        scores = answer.get("scores") or [[predicted, 0.0]]
        score = float(scores[0][1])
        mark = "ok" if predicted == label else "WRONG"
        correct += predicted == label
        print(f"  {path.name:10} {label:>4}  {predicted:>9}  {score:.3f}  {mark}")
    print(f"  {correct}/{len(samples)} right")


def guide(kube: Cluster, image: Path) -> None:
    status = kube.get("kaisvc", "digits", "-n", NAMESPACE)["status"]
    url = service_address(kube, "digits")
    host = str(status.get("url", ""))
    calls = [line.replace(host, url) for line in str(status.get("example", "")).splitlines()]
    step("Done")
    lines = [
        f"Predict page: open {url}/ in a browser on this machine (the Service's ClusterIP).",
        "Call the service (status.example of InferenceService digits, with the ClusterIP",
        f"for its in-cluster address {host}):",
        *(f"  {call}" for call in calls),
        f"  e.g. curl -F images=@{image} {url}/",
        "Look around:",
        f"  export KUBECONFIG={kube.kubeconfig}",
        f"  kubectl get kubearts -n {NAMESPACE}",
        f"  kubectl logs -n {RELEASE_NAMESPACE} deploy/{RELEASE}",
        "Tear down: make cluster-down",
    ]
    print("\n".join(lines))


def main() -> int:
    started = time.monotonic()
    kube = connect()
    install(kube)

    step(f"The offline flow: examples/offline/ into namespace {NAMESPACE}")
    served = CLUSTER_ROOT / "demo" / "served"
    archive = digits_archive(served)
    address = str(kube.layout.gateway)
    values = {"DIGITS_URL": f"http://{address}:{DATA_PORT}/{archive.name}"}
    print(f"digits: {archive} served at {values['DIGITS_URL']}")
    with serve(served, address, DATA_PORT) as serving:
        if not serving:
            print(f"port {DATA_PORT} on {address} is taken: the data set must already be in")
        objects = apply_flow(kube, values)
        step("Progress (Ready and reason as they change)")
        follow(kube, objects, FLOW_TIMEOUT_S)

    samples = eval_samples(kube, SAMPLES)
    predict(kube, "digits", samples)
    predict(kube, "digits-ascend310", samples[:2])
    guide(kube, samples[0][0])
    print(f"\n`make demo` took {time.monotonic() - started:.0f}s after the cluster was up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
