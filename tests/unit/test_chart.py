"""The Helm chart charts/kubearts, rendered and linted by the real Helm engine (helm_python).

Also the specification of tests/pss.py, the restricted Pod Security Standard checker the
chart's Deployment (and the operator's pods, elsewhere) are held to, and of
hack/sync_chart_crds.py, which keeps the chart's CRD copies equal to crds/.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from kubearts.config import DEFAULT_POOLS, DEFAULT_WORKER_RESOURCES, load_config
from kubearts.constants import ALL_KINDS, GROUP

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "kubearts"
CRD_DIR = REPO_ROOT / "crds"
GALLERY_FILES = sorted((CHART_DIR / "files" / "gallery").glob("*.yaml"))

RELEASE = "kubearts"
NAMESPACE = "kubearts-system"


import pss  # noqa: E402
import sync_chart_crds as sync  # noqa: E402

Manifest = dict[str, Any]


# --- helpers -------------------------------------------------------------------------------


def render(values: dict[str, Any] | None = None, chart_dir: Path = CHART_DIR) -> list[Manifest]:
    """Every object the chart renders with ``values``, in template order."""
    with helm.Chart.load(chart_dir) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    objects: list[Manifest] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def only(objects: list[Manifest], kind: str) -> Manifest:
    """The single object of ``kind``."""
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def operator_container(objects: list[Manifest]) -> Manifest:
    containers = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: Manifest = containers[0]
    return container


def operator_env(objects: list[Manifest]) -> dict[str, str]:
    return {env["name"]: env["value"] for env in operator_container(objects)["env"]}


def crd_sources() -> dict[str, Manifest]:
    """CRD name → the CRD as written in crds/."""
    sources: dict[str, Manifest] = {}
    for path in sorted(CRD_DIR.glob(sync.CRD_GLOB)):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        sources[crd["metadata"]["name"]] = crd
    return sources


needs_crds = pytest.mark.skipif(
    not list(CRD_DIR.glob("kubearts.io_*.yaml")), reason="crds/ holds no CRDs yet"
)


@pytest.fixture(scope="module")
def default_objects() -> list[Manifest]:
    return render()


# --- what the chart renders ----------------------------------------------------------------


def expected_kinds(*, crds: bool, gallery: bool = True) -> Counter[str]:
    kinds = Counter(
        {
            "Deployment": 1,
            "ServiceAccount": 1,
            "ClusterRole": 1,
            "ClusterRoleBinding": 1,
            "Service": 1,
        }
    )
    if crds:
        kinds["CustomResourceDefinition"] = len(list(CRD_DIR.glob(sync.CRD_GLOB)))
    if gallery and GALLERY_FILES:
        kinds["ConfigMap"] = len(GALLERY_FILES)
    return kinds


@needs_crds
@pytest.mark.parametrize(
    ("values", "crds"),
    [
        pytest.param(None, True, id="defaults"),
        pytest.param({"crds": {"install": False}}, False, id="crds.install=false"),
    ],
)
def test_renders_exactly_the_expected_kinds(values: dict[str, Any] | None, crds: bool) -> None:
    assert Counter(obj["kind"] for obj in render(values)) == expected_kinds(crds=crds)


def test_crds_install_false_renders_no_crd() -> None:
    objects = render({"crds": {"install": False}})
    assert of_kind(objects, "CustomResourceDefinition") == []


@needs_crds
def test_default_render_installs_the_six_crds(default_objects: list[Manifest]) -> None:
    names = {
        crd["metadata"]["name"] for crd in of_kind(default_objects, "CustomResourceDefinition")
    }
    assert names == {f"{kind.plural}.{GROUP}" for kind in ALL_KINDS}


def test_namespaced_objects_go_to_the_release_namespace(default_objects: list[Manifest]) -> None:
    cluster_scoped = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for obj in default_objects:
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"], obj["metadata"]["name"]
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(None, id="defaults"),
        pytest.param({"crds": {"install": False}}, id="crds.install=false"),
        pytest.param(
            {"metrics": {"serviceMonitor": {"enabled": True}}, "workspace": {"create": True}},
            id="all-optional-objects",
        ),
    ],
)
def test_lints_clean(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART_DIR, values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []
    assert report["errors"] == []


def test_chart_metadata() -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        metadata = chart.metadata
    assert metadata["apiVersion"] == "v2"
    assert metadata["version"] == "0.1.0"
    assert metadata["appVersion"] == "0.1.0"
    assert metadata["kubeVersion"] == ">=1.20.0-0"


# --- CRD copies ------------------------------------------------------------------------------


@needs_crds
def test_chart_crd_copies_equal_crds_folder() -> None:
    assert sync.drifted() == [], "run `python hack/sync_chart_crds.py`"


@needs_crds
def test_rendered_crds_equal_crds_folder() -> None:
    rendered = of_kind(render({"crds": {"keep": False}}), "CustomResourceDefinition")
    assert {crd["metadata"]["name"]: crd for crd in rendered} == crd_sources()


@needs_crds
@pytest.mark.parametrize(
    ("keep", "annotated"),
    [pytest.param(True, True, id="keep"), pytest.param(False, False, id="no-keep")],
)
def test_crds_keep_controls_the_resource_policy(keep: bool, annotated: bool) -> None:
    for crd in of_kind(render({"crds": {"keep": keep}}), "CustomResourceDefinition"):
        annotations = crd["metadata"].get("annotations") or {}
        assert (annotations.get("helm.sh/resource-policy") == "keep") is annotated


# --- RBAC ----------------------------------------------------------------------------------

# What the operator may do is proven by running it as the chart's ServiceAccount
# (tests/cluster/test_operator_rbac.py); here only what a reader checks at a glance.


def test_no_rbac_rule_uses_a_wildcard(default_objects: list[Manifest]) -> None:
    rules = [rule for role in of_kind(default_objects, "ClusterRole") for rule in role["rules"]]
    assert rules
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            assert "*" not in rule.get(field, []), f"{field} of {rule}"


def cluster_role_verbs(objects: list[Manifest]) -> dict[tuple[str, str], set[str]]:
    """The ClusterRole's verbs by (API group, resource)."""
    return {
        (group, resource): set(rule["verbs"])
        for rule in only(objects, "ClusterRole")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_the_cluster_role_lets_the_operator_watch_all_it_handles(
    default_objects: list[Manifest],
) -> None:
    """Every resource a kopf handler, index or timer of the operator follows cluster-wide is
    listed and watched: a missing verb stops the whole operator at its first watch."""
    import kopf

    import kubearts.main  # noqa: F401  (registers the handlers)

    registry = kopf.get_default_registry()
    followed = {
        (handler.selector.group, handler.selector.any_name)
        for registered in (
            registry._changing,
            registry._watching,
            registry._indexing,
            registry._spawning,
        )
        for handler in registered.get_all_handlers()
        if handler.selector.group  # core ConfigMaps: the gallery Role in the release namespace
    }
    assert ("batch", "jobs") in followed
    granted = cluster_role_verbs(default_objects)
    missing = {key for key in followed if not {"list", "watch"} <= granted.get(key, set())}
    assert missing == set()


def test_the_operator_may_not_read_secrets_nor_run_pods(default_objects: list[Manifest]) -> None:
    verbs = cluster_role_verbs(default_objects)
    assert verbs[("", "secrets")] == {"create"}
    assert "create" not in verbs.get(("", "pods"), set())


def test_cluster_role_is_bound_to_the_operator_service_account(
    default_objects: list[Manifest],
) -> None:
    binding = only(default_objects, "ClusterRoleBinding")
    account = only(default_objects, "ServiceAccount")
    deployment = only(default_objects, "Deployment")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": only(default_objects, "ClusterRole")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    )


def test_rbac_create_false_renders_no_rbac() -> None:
    kinds = {obj["kind"] for obj in render({"rbac": {"create": False}})}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


# --- the operator Deployment ------------------------------------------------------------------


def test_deployment_runs_one_replica_with_recreate(default_objects: list[Manifest]) -> None:
    spec = only(default_objects, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_operator_runs_kopf_standalone_on_all_namespaces(default_objects: list[Manifest]) -> None:
    assert operator_container(default_objects)["command"] == [
        "kopf",
        "run",
        "--standalone",
        "--all-namespaces",
        "--liveness=http://0.0.0.0:8081/healthz",
        "-m",
        "kubearts.main",
    ]


def test_operator_image_defaults_to_app_version(default_objects: list[Manifest]) -> None:
    container = operator_container(default_objects)
    assert container["image"] == "ghcr.io/kubearts/operator:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_liveness_and_readiness_probes_and_ports(default_objects: list[Manifest]) -> None:
    container = operator_container(default_objects)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for kind in ("livenessProbe", "readinessProbe"):
        probe = container[kind]["httpGet"]
        assert probe["path"] == "/healthz"
        assert ports[probe["port"]] == 8081


def test_operator_environment_defaults(default_objects: list[Manifest]) -> None:
    env = operator_env(default_objects)
    pools = env.pop("KUBEARTS_POOLS")
    workers = env.pop("KUBEARTS_WORKER_RESOURCES")
    assert load_config({"KUBEARTS_WORKER_RESOURCES": workers}).worker_resources == dict(
        DEFAULT_WORKER_RESOURCES
    )
    assert env == {
        "USER": "kubearts",
        "KUBEARTS_NAMESPACE": NAMESPACE,
        "KUBEARTS_WORKSPACE_PVC": "kubearts-workspace",
        "KUBEARTS_WORKSPACE_SIZE": "20Gi",
        "KUBEARTS_IMAGE_DATASET": "ghcr.io/kubearts/dataset:0.1.0",
        "KUBEARTS_IMAGE_TRAINER": "ghcr.io/kubearts/trainer:0.1.0",
        "KUBEARTS_IMAGE_CONVERTER": "ghcr.io/kubearts/converter:0.1.0",
        "KUBEARTS_IMAGE_PREDICTOR": "ghcr.io/kubearts/predictor:0.1.0",
        "KUBEARTS_IMAGE_CONVERTER_ASCEND": "ghcr.io/kubearts/converter-cann:0.1.0",
        "KUBEARTS_IMAGE_PREDICTOR_TENSORFLOW": "ghcr.io/kubearts/predictor-tensorflow:0.1.0",
        "KUBEARTS_IMAGE_PREDICTOR_CUDA": "ghcr.io/kubearts/predictor-cuda:0.1.0",
        "KUBEARTS_IMAGE_PREDICTOR_CANN": "ghcr.io/kubearts/predictor-cann:0.1.0",
        "KUBEARTS_METRICS_PORT": "8080",
        "KUBEARTS_HEALTH_PORT": "8081",
        "KUBEARTS_LOG_FORMAT": "json",
        "KUBEARTS_DATASET_JOB_DEADLINE_SECONDS": "21600",
        "KUBEARTS_TRAINING_JOB_DEADLINE_SECONDS": "86400",
        "KUBEARTS_CONVERSION_JOB_DEADLINE_SECONDS": "7200",
        "KUBEARTS_DATASET_CLEANUP_DEADLINE_SECONDS": "300",
        "KUBEARTS_CONVERSION_ASCEND_POOL": "cpu",
        "KUBEARTS_ALLOW_CPU_FALLBACK": "false",
        "KUBEARTS_GALLERY_RESYNC_SECONDS": "30",
    }
    assert pools


@pytest.mark.parametrize(
    ("values", "variable", "expected"),
    [
        pytest.param(
            {"images": {"trainer": {"repository": "registry.local/trainer", "tag": "dev"}}},
            "KUBEARTS_IMAGE_TRAINER",
            "registry.local/trainer:dev",
            id="trainer-image",
        ),
        pytest.param(
            {"workspace": {"pvcName": "shared-data"}},
            "KUBEARTS_WORKSPACE_PVC",
            "shared-data",
            id="workspace-pvc",
        ),
        pytest.param(
            {"workspace": {"size": "500Gi"}},
            "KUBEARTS_WORKSPACE_SIZE",
            "500Gi",
            id="workspace-size",
        ),
        pytest.param({"logFormat": "plain"}, "KUBEARTS_LOG_FORMAT", "plain", id="log-format"),
        pytest.param(
            {"jobs": {"deadlineSeconds": {"dataset": 600, "training": 60}}},
            "KUBEARTS_DATASET_JOB_DEADLINE_SECONDS",
            "600",
            id="dataset-deadline",
        ),
        pytest.param(
            {"jobs": {"deadlineSeconds": {"dataset": 1, "training": 60}, "allowCpuFallback": True}},
            "KUBEARTS_ALLOW_CPU_FALLBACK",
            "true",
            id="cpu-fallback",
        ),
        pytest.param(
            {"gallery": {"install": True, "resyncSeconds": 5}},
            "KUBEARTS_GALLERY_RESYNC_SECONDS",
            "5",
            id="gallery-resync",
        ),
        pytest.param(
            {"metrics": {"port": 9090}}, "KUBEARTS_METRICS_PORT", "9090", id="metrics-port"
        ),
    ],
)
def test_values_reach_the_operator_environment(
    values: dict[str, Any], variable: str, expected: str
) -> None:
    assert operator_env(render(values))[variable] == expected


def test_health_port_value_moves_probe_and_kopf_endpoint() -> None:
    objects = render({"health": {"port": 9091}})
    container = operator_container(objects)
    assert "--liveness=http://0.0.0.0:9091/healthz" in container["command"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["health"] == 9091
    assert operator_env(objects)["KUBEARTS_HEALTH_PORT"] == "9091"


def test_default_pools_are_what_the_operator_defaults_to(default_objects: list[Manifest]) -> None:
    config = load_config(operator_env(default_objects))
    assert dict(config.pools) == dict(DEFAULT_POOLS)


def test_pool_values_reach_the_operator_config() -> None:
    values = {
        "pools": {
            "gpu": {
                "resourceName": "nvidia.com/mig-1g.5gb",
                # Helm merges maps with the defaults; null removes a default key.
                "nodeSelector": {"nvidia.com/gpu.present": None, "gpu-type": "a100"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml"}],
            }
        }
    }
    gpu = load_config(operator_env(render(values))).pools["gpu"]
    assert gpu.resource_name == "nvidia.com/mig-1g.5gb"
    assert dict(gpu.node_selector) == {"gpu-type": "a100"}
    assert gpu.tolerations == ({"key": "dedicated", "operator": "Equal", "value": "ml"},)


def test_flavors_and_cpu_placement_values_reach_the_operator_config() -> None:
    values = {
        "pools": {
            "cpu": {
                "avoidAcceleratorNodes": False,
                "flavors": {"tiny": {"cpu": "100m", "memory": "256Mi"}},
                "defaultFlavor": "tiny",
            }
        },
        "jobs": {"resources": {"conversion": {"cpu": "2", "memory": "8Gi"}}},
    }
    config = load_config(operator_env(render(values)))
    cpu = config.pools["cpu"]
    assert cpu.avoid_accelerator_nodes is False
    assert cpu.default_flavor == "tiny"
    # Helm merges maps: the default flavors stay next to the new one.
    assert cpu.flavors["tiny"] == {"cpu": "100m", "memory": "256Mi"}
    assert set(cpu.flavors) == {"tiny", "small", "medium", "large"}
    assert config.worker_resources["conversion"] == {"cpu": "2", "memory": "8Gi"}
    assert config.worker_resources["dataset"] == DEFAULT_WORKER_RESOURCES["dataset"]


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"pools": {"cpu": {"flavors": {"x": {"cpu": "lots"}}}}}, "cpu"),
        ({"pools": {"gpu": {"flavors": {"x": {"gpus": "1"}}}}}, "gpus"),
        ({"jobs": {"resources": {"dataset": {"memory": "2 GB"}}}}, "memory"),
        ({"pools": {"cpu": {"avoidAcceleratorNodes": "yes"}}}, "avoidAcceleratorNodes"),
    ],
    ids=["bad-cpu-quantity", "unknown-size-key", "bad-worker-memory", "avoid-not-bool"],
)
def test_the_schema_refuses_bad_sizes(values: dict[str, Any], path: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=path):
        render(values)


def test_rendered_environment_is_accepted_by_operator_config(
    default_objects: list[Manifest],
) -> None:
    config = load_config(operator_env(default_objects))
    assert config.namespace == NAMESPACE
    assert config.log_format == "json"


def test_scheduling_values_reach_the_pod() -> None:
    values = {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
    }
    pod = pss.pod_spec_of(only(render(values), "Deployment"))
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]
    assert pod["containers"][0]["resources"] == values["resources"]


def test_deployment_pod_meets_restricted_pod_security(default_objects: list[Manifest]) -> None:
    assert pss.restricted_violations(pss.pod_spec_of(only(default_objects, "Deployment"))) == []


# --- metrics -------------------------------------------------------------------------------


def test_metrics_service_targets_the_operator_metrics_port(default_objects: list[Manifest]) -> None:
    service = only(default_objects, "Service")
    deployment = only(default_objects, "Deployment")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_service_monitor_is_off_by_default(default_objects: list[Manifest]) -> None:
    assert of_kind(default_objects, "ServiceMonitor") == []


def test_service_monitor_scrapes_the_metrics_service() -> None:
    objects = render({"metrics": {"serviceMonitor": {"enabled": True, "labels": {"team": "ml"}}}})
    monitor = only(objects, "ServiceMonitor")
    service = only(objects, "Service")
    assert monitor["metadata"]["labels"]["team"] == "ml"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


# --- gallery and workspace -----------------------------------------------------------------


@pytest.mark.parametrize("gallery_file", GALLERY_FILES, ids=lambda path: path.name)
def test_each_gallery_file_becomes_a_labelled_configmap(
    default_objects: list[Manifest], gallery_file: Path
) -> None:
    name = gallery_file.stem
    maps = [
        cm
        for cm in of_kind(default_objects, "ConfigMap")
        if cm["metadata"]["labels"].get("kubearts.io/gallery") == name
    ]
    assert len(maps) == 1
    source = yaml.safe_load(gallery_file.read_text(encoding="utf-8"))
    data = maps[0]["data"]
    assert set(data) == set(source)
    # String values arrive byte for byte (other values are stored as their YAML text).
    assert {key: value for key, value in source.items() if isinstance(value, str)}.items() <= (
        data.items()
    )


@pytest.fixture
def chart_with_gallery(tmp_path: Path) -> Path:
    """A copy of the chart whose gallery is one known file, independent of the real one."""
    chart = tmp_path / "kubearts"
    shutil.copytree(CHART_DIR, chart)
    gallery = chart / "files" / "gallery"
    shutil.rmtree(gallery, ignore_errors=True)
    gallery.mkdir(parents=True)
    (gallery / "demo.yaml").write_text(
        "# A comment is not data.\n"
        "algorithms.yaml: |\n"
        "  - name: resnet_v1_50\n"
        "datasets:\n"
        "  - name: digits\n",
        encoding="utf-8",
    )
    return chart


def test_gallery_file_data_is_stored_as_strings(chart_with_gallery: Path) -> None:
    configmap = only(render(chart_dir=chart_with_gallery), "ConfigMap")
    assert configmap["metadata"]["name"] == "kubearts-gallery-demo"
    assert configmap["metadata"]["namespace"] == NAMESPACE
    assert configmap["metadata"]["labels"]["kubearts.io/gallery"] == "demo"
    assert configmap["data"] == {
        "algorithms.yaml": "- name: resnet_v1_50\n",
        "datasets": "- name: digits",
    }


def test_gallery_install_false_renders_no_configmap(chart_with_gallery: Path) -> None:
    objects = render({"gallery": {"install": False}}, chart_dir=chart_with_gallery)
    assert of_kind(objects, "ConfigMap") == []


def test_gallery_file_that_is_not_a_mapping_is_refused(chart_with_gallery: Path) -> None:
    (chart_with_gallery / "files" / "gallery" / "broken.yaml").write_text(
        "- just\n- a list\n", encoding="utf-8"
    )
    with pytest.raises(helm.HelmRenderError, match=r"files/gallery/broken\.yaml"):
        render(chart_dir=chart_with_gallery)


def test_workspace_pvc_is_created_only_on_request(default_objects: list[Manifest]) -> None:
    assert of_kind(default_objects, "PersistentVolumeClaim") == []
    pvc = only(
        render({"workspace": {"create": True, "size": "50Gi", "storageClassName": "fast"}}),
        "PersistentVolumeClaim",
    )
    assert pvc["metadata"]["name"] == "kubearts-workspace"
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert pvc["spec"]["storageClassName"] == "fast"


# --- values.schema.json ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"replicaCount": "1"},
            "/replicaCount': got string, want integer",
            id="replicaCount-string",
        ),
        pytest.param({"replicaCount": 2}, "/replicaCount': maximum", id="replicaCount-two"),
        pytest.param(
            {"pools": {"tpu": {"resourceName": "google.com/tpu"}}},
            "/pools': additional properties 'tpu' not allowed",
            id="unknown-pool",
        ),
        pytest.param(
            {"pools": {"cpu": {"resourceName": "nvidia.com/gpu"}}},
            "/pools/cpu': additional properties 'resourceName' not allowed",
            id="cpu-pool-with-accelerator",
        ),
        pytest.param(
            {"pools": {"gpu": {"resourceName": "nvidia gpu"}}},
            "/pools/gpu/resourceName': 'nvidia gpu' does not match pattern",
            id="bad-resource-name",
        ),
        pytest.param(
            {"pools": {"ascend910": {"tolerations": [{"key": "npu", "effect": "Sometimes"}]}}},
            "/pools/ascend910/tolerations/0/effect'",
            id="bad-toleration-effect",
        ),
        pytest.param(
            {"pools": {"gpu": {"nodeSelector": {"nvidia.com/gpu.present": True}}}},
            "/pools/gpu/nodeSelector/nvidia.com~1gpu.present': got boolean, want string",
            id="unquoted-label-value",
        ),
        pytest.param({"logFormat": "xml"}, "/logFormat': value must be one of", id="log-format"),
        pytest.param(
            {"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy'", id="pull-policy"
        ),
        pytest.param({"metrics": {"port": 70000}}, "/metrics/port': maximum", id="port-range"),
        pytest.param(
            {"crds": {"install": "yes"}},
            "/crds/install': got string, want boolean",
            id="crds-install-string",
        ),
        pytest.param(
            {"replicas": 1}, "additional properties 'replicas' not allowed", id="unknown-key"
        ),
    ],
)
def test_schema_refuses_bad_values_naming_them(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        render(values)
    assert message in str(refused.value)


def test_equal_metrics_and_health_ports_are_refused() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"metrics\.port and health\.port are both 8081"):
        render({"metrics": {"port": 8081}})


def test_readme_documents_every_value() -> None:
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")

    def leaves(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
        for key, value in values.items():
            path = f"{prefix}{key}"
            # Pools are documented as a whole per pool, not per nested field.
            if isinstance(value, dict) and value and not path.startswith("pools."):
                yield from leaves(value, f"{path}.")
            else:
                yield path

    with helm.Chart.load(CHART_DIR) as chart:
        defaults = chart.values
    missing = [key for key in leaves(defaults) if f"`{key}`" not in readme]
    assert missing == []


# --- hack/sync_chart_crds.py -----------------------------------------------------------------

CRD_WITHOUT_ANNOTATIONS = """\
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.kubearts.io
spec:
  group: kubearts.io
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          description: "Braces {{ like these }} stay literal."
"""

CRD_WITH_ANNOTATIONS = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  annotations:
    kubearts.io/source: crds
  labels:
    app.kubernetes.io/part-of: kubearts
  name: gadgets.kubearts.io
spec:
  group: kubearts.io
  names:
    kind: Gadget
    plural: gadgets
  scope: Namespaced
  versions: []
"""


def write_sources(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / f"kubearts.io_{name}.yaml").write_text(text, encoding="utf-8")
    return directory


def make_chart(tmp_path: Path, sources: Path) -> Path:
    """A minimal chart holding only the generated CRD templates."""
    chart = tmp_path / "chart"
    (chart / "templates" / "crds").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: crds\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("crds:\n  install: true\n  keep: true\n")
    assert sync.main(["--source", str(sources), "--target", str(chart / "templates" / "crds")]) == 0
    return chart


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(CRD_WITHOUT_ANNOTATIONS, id="without-annotations"),
        pytest.param(CRD_WITH_ANNOTATIONS, id="with-annotations"),
    ],
)
@pytest.mark.parametrize("keep", [pytest.param(True, id="keep"), pytest.param(False, id="no-keep")])
def test_generated_template_renders_the_source_crd(tmp_path: Path, source: str, keep: bool) -> None:
    chart = make_chart(tmp_path, write_sources(tmp_path / "crds", widgets=source))
    rendered = only(
        render({"crds": {"install": True, "keep": keep}}, chart_dir=chart),
        "CustomResourceDefinition",
    )
    expected = yaml.safe_load(source)
    if keep:
        expected["metadata"].setdefault("annotations", {})["helm.sh/resource-policy"] = "keep"
    assert rendered == expected


def test_generated_template_renders_nothing_without_crds_install(tmp_path: Path) -> None:
    chart = make_chart(tmp_path, write_sources(tmp_path / "crds", widgets=CRD_WITH_ANNOTATIONS))
    assert render({"crds": {"install": False, "keep": True}}, chart_dir=chart) == []


DriftMaker = Callable[[Path], object]


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        pytest.param(
            lambda target: (target / "kubearts.io_widgets.yaml").write_text("edited\n"),
            "kubearts.io_widgets.yaml: differs from",
            id="edited-copy",
        ),
        pytest.param(
            lambda target: (target / "kubearts.io_widgets.yaml").unlink(),
            "kubearts.io_widgets.yaml: missing",
            id="missing-copy",
        ),
        pytest.param(
            lambda target: (target / "kubearts.io_gone.yaml").write_text("old\n"),
            "kubearts.io_gone.yaml: stale",
            id="stale-copy",
        ),
    ],
)
def test_check_exits_1_naming_the_drifted_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spoil: DriftMaker, problem: str
) -> None:
    sources = write_sources(
        tmp_path / "crds", widgets=CRD_WITHOUT_ANNOTATIONS, gadgets=CRD_WITH_ANNOTATIONS
    )
    target = tmp_path / "copies"
    args = ["--source", str(sources), "--target", str(target)]
    assert sync.main(args) == 0
    assert sync.main([*args, "--check"]) == 0
    capsys.readouterr()

    spoil(target)

    assert sync.main([*args, "--check"]) == 1
    assert problem in capsys.readouterr().err


def test_sync_refuses_a_file_with_two_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = write_sources(
        tmp_path / "crds", widgets=CRD_WITHOUT_ANNOTATIONS + "---\n" + CRD_WITH_ANNOTATIONS
    )
    assert sync.main(["--source", str(sources), "--target", str(tmp_path / "copies")]) == 2
    assert "kubearts.io_widgets.yaml holds 2 YAML documents" in capsys.readouterr().err


# --- tests/pss.py: the restricted Pod Security Standard ----------------------------------


def compliant_pod() -> Manifest:
    """A pod spec that meets the restricted profile; each case below breaks one rule."""
    return {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "main",
                "image": "example/app:1",
                "ports": [{"containerPort": 8080}],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
        ],
    }


def with_changes(*changes: tuple[tuple[str | int, ...], Any]) -> Manifest:
    """``compliant_pod()`` with each (path, value) set; intermediate mappings are created."""
    pod = compliant_pod()
    for path, value in changes:
        node: Any = pod
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
        node[path[-1]] = value
    return pod


MAIN_SC = ("containers", 0, "securityContext")


def check_ids(violations: list[str]) -> set[str]:
    return {violation.split(":", 1)[0] for violation in violations}


def test_compliant_pod_has_no_violations() -> None:
    assert pss.restricted_violations(compliant_pod()) == []


@pytest.mark.parametrize(
    ("pod", "expected_ids", "field"),
    [
        pytest.param(
            with_changes(((*MAIN_SC, "privileged"), True)),
            {"privileged"},
            "spec.containers[0].securityContext.privileged",
            id="privileged",
        ),
        pytest.param(
            with_changes((("securityContext", "runAsUser"), 0)),
            {"runAsUser"},
            "spec.securityContext.runAsUser",
            id="root-user-pod",
        ),
        pytest.param(
            with_changes(((*MAIN_SC, "runAsUser"), 0)),
            {"runAsUser"},
            "spec.containers[0].securityContext.runAsUser",
            id="root-user-container",
        ),
        pytest.param(
            with_changes((("securityContext", "runAsNonRoot"), None)),
            {"runAsNonRoot"},
            "spec.containers[0].securityContext.runAsNonRoot",
            id="non-root-unset",
        ),
        pytest.param(
            with_changes(((*MAIN_SC, "runAsNonRoot"), False)),
            {"runAsNonRoot"},
            "spec.containers[0].securityContext.runAsNonRoot",
            id="container-overrides-non-root",
        ),
        pytest.param(
            with_changes((("volumes", 0), {"name": "host", "hostPath": {"path": "/"}})),
            {"hostPathVolumes", "restrictedVolumes"},
            "spec.volumes[0] (host)",
            id="hostPath",
        ),
        pytest.param(
            with_changes((("volumes", 0), {"name": "share", "nfs": {"server": "s", "path": "/"}})),
            {"restrictedVolumes"},
            "spec.volumes[0] (share) uses nfs",
            id="nfs-volume",
        ),
        pytest.param(
            with_changes((("hostNetwork",), True)),
            {"hostNamespaces"},
            "spec.hostNetwork",
            id="hostNetwork",
        ),
        pytest.param(
            with_changes((("hostPID",), True)), {"hostNamespaces"}, "spec.hostPID", id="hostPID"
        ),
        pytest.param(
            with_changes((("hostIPC",), True)), {"hostNamespaces"}, "spec.hostIPC", id="hostIPC"
        ),
        pytest.param(
            with_changes((("containers", 0, "ports", 0, "hostPort"), 80)),
            {"hostPorts"},
            "spec.containers[0].ports[0].hostPort",
            id="hostPort",
        ),
        pytest.param(
            with_changes(((*MAIN_SC, "allowPrivilegeEscalation"), True)),
            {"allowPrivilegeEscalation"},
            "spec.containers[0].securityContext.allowPrivilegeEscalation",
            id="privilege-escalation",
        ),
        pytest.param(
            with_changes(((*MAIN_SC, "allowPrivilegeEscalation"), None)),
            {"allowPrivilegeEscalation"},
            "spec.containers[0].securityContext.allowPrivilegeEscalation",
            id="privilege-escalation-unset",
        ),
        pytest.param(
            with_changes(((*MAIN_SC, "capabilities"), {"drop": ["NET_RAW"]})),
            {"capabilities_restricted"},
            "spec.containers[0].securityContext.capabilities.drop",
            id="capabilities-not-dropped",
        ),
        pytest.param(
            with_changes(((*MAIN_SC, "capabilities", "add"), ["SYS_ADMIN"])),
            {"capabilities_baseline", "capabilities_restricted"},
            "must not add SYS_ADMIN",
            id="capability-sys-admin",
        ),
        pytest.param(
            with_changes(((*MAIN_SC, "capabilities", "add"), ["CHOWN"])),
            {"capabilities_restricted"},
            "may only add NET_BIND_SERVICE, not CHOWN",
            id="capability-baseline-only",
        ),
        pytest.param(
            with_changes((("securityContext", "seccompProfile"), None)),
            {"seccompProfile_restricted"},
            "spec.containers[0].securityContext.seccompProfile.type",
            id="seccomp-unset",
        ),
        pytest.param(
            with_changes(((*MAIN_SC, "seccompProfile"), {"type": "Unconfined"})),
            {"seccompProfile_baseline", "seccompProfile_restricted"},
            "spec.containers[0].securityContext.seccompProfile.type must not be Unconfined",
            id="seccomp-unconfined",
        ),
        pytest.param(
            with_changes(((*MAIN_SC, "procMount"), "Unmasked")),
            {"procMount"},
            "spec.containers[0].securityContext.procMount",
            id="procMount",
        ),
        pytest.param(
            with_changes((("securityContext", "seLinuxOptions"), {"type": "spc_t"})),
            {"seLinuxOptions"},
            "spec.securityContext.seLinuxOptions.type",
            id="selinux-type",
        ),
        pytest.param(
            with_changes(((*MAIN_SC, "seLinuxOptions"), {"user": "system_u"})),
            {"seLinuxOptions"},
            "spec.containers[0].securityContext.seLinuxOptions.user",
            id="selinux-user",
        ),
        pytest.param(
            with_changes(
                (("securityContext", "sysctls"), [{"name": "kernel.msgmax", "value": "1"}])
            ),
            {"sysctls"},
            "(kernel.msgmax)",
            id="unsafe-sysctl",
        ),
        pytest.param(
            with_changes(((*MAIN_SC, "appArmorProfile"), {"type": "Unconfined"})),
            {"appArmorProfile"},
            "spec.containers[0].securityContext.appArmorProfile.type",
            id="apparmor-unconfined",
        ),
        pytest.param(
            with_changes((("securityContext", "windowsOptions"), {"hostProcess": True})),
            {"windowsHostProcess"},
            "spec.securityContext.windowsOptions.hostProcess",
            id="windows-host-process",
        ),
        pytest.param(
            with_changes(
                (
                    ("initContainers",),
                    [
                        {
                            "name": "init",
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "privileged": True,
                            },
                        }
                    ],
                )
            ),
            {"privileged"},
            "spec.initContainers[0].securityContext.privileged",
            id="privileged-init-container",
        ),
        pytest.param(
            with_changes((("ephemeralContainers",), [{"name": "debug"}])),
            {"allowPrivilegeEscalation", "capabilities_restricted"},
            "spec.ephemeralContainers[0]",
            id="ephemeral-container",
        ),
    ],
)
def test_each_broken_rule_is_named(pod: Manifest, expected_ids: set[str], field: str) -> None:
    violations = pss.restricted_violations(pod)
    assert check_ids(violations) == expected_ids
    assert any(field in violation for violation in violations), violations


@pytest.mark.parametrize(
    "pod",
    [
        pytest.param(
            with_changes(((*MAIN_SC, "capabilities", "add"), ["NET_BIND_SERVICE"])),
            id="add-net-bind-service",
        ),
        pytest.param(
            with_changes(
                (("securityContext",), {}),
                (
                    MAIN_SC,
                    {
                        "runAsNonRoot": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
                    },
                ),
            ),
            id="container-level-settings-only",
        ),
        pytest.param(
            with_changes(
                (
                    ("securityContext", "sysctls"),
                    [{"name": "net.ipv4.tcp_syncookies", "value": "1"}],
                )
            ),
            id="safe-sysctl",
        ),
        pytest.param(
            with_changes(
                (("os",), {"name": "windows"}),
                (MAIN_SC, {}),
                (("securityContext", "seccompProfile"), None),
            ),
            id="windows-pod-exempt-from-linux-rules",
        ),
    ],
)
def test_allowed_variations_pass(pod: Manifest) -> None:
    assert pss.restricted_violations(pod) == []


@pytest.mark.parametrize(
    ("manifest", "path"),
    [
        pytest.param({"kind": "Pod", "spec": {"containers": []}}, ("spec",), id="Pod"),
        pytest.param(
            {"kind": "Deployment", "spec": {"template": {"spec": {"containers": []}}}},
            ("spec", "template", "spec"),
            id="Deployment",
        ),
        pytest.param(
            {"kind": "Job", "spec": {"template": {"spec": {"containers": []}}}},
            ("spec", "template", "spec"),
            id="Job",
        ),
        pytest.param(
            {
                "kind": "CronJob",
                "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
            },
            ("spec", "jobTemplate", "spec", "template", "spec"),
            id="CronJob",
        ),
    ],
)
def test_pod_spec_of_finds_the_pod_template(manifest: Manifest, path: tuple[str, ...]) -> None:
    expected: Any = manifest
    for key in path:
        expected = expected[key]
    assert pss.pod_spec_of(manifest) is expected


def test_pod_spec_of_refuses_kinds_without_pods() -> None:
    with pytest.raises(ValueError, match="'Service' has no pod template"):
        pss.pod_spec_of({"kind": "Service", "spec": {}})
