"""Specification of the gallery (kubearts.gallery): format, versions, remote indexes.

Gallery ConfigMaps arrive as plain dicts; remote indexes are served by a local http.server.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from gallerykit import algorithm_doc, conditions, configmap, net_gallery, sync, version_doc

from kubearts import gallery as g
from kubearts.handlers.galleries import urllib_fetch
from kubearts.hyperparameters import validate_hyperparameters

GALLERY_DIR = Path(__file__).resolve().parents[2] / "charts" / "kubearts" / "files" / "gallery"


# --- semantic versions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        pytest.param("1.9.0", "1.10.0", id="numeric-not-lexical"),
        pytest.param("1.99.99", "2.0.0", id="major-wins"),
        pytest.param("1.0.0-rc.1", "1.0.0", id="release-after-prerelease"),
        pytest.param("1.0.0-rc.2", "1.0.0-rc.10", id="numeric-prerelease-identifiers"),
        pytest.param("1.0.0-alpha", "1.0.0-alpha.1", id="longer-prerelease-later"),
        pytest.param("1.0.0-alpha.1", "1.0.0-alpha.beta", id="numeric-before-alphanumeric"),
        pytest.param("1.0.0-beta", "1.0.0-rc.1", id="lexical-alphanumeric"),
    ],
)
def test_semver_precedence(lower: str, higher: str) -> None:
    assert g.parse_version(lower).key < g.parse_version(higher).key
    assert g.sort_versions([higher, lower]) == [lower, higher]


def test_build_metadata_does_not_change_precedence() -> None:
    assert g.parse_version("1.0.0+build.7").key == g.parse_version("1.0.0").key


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "latest", "1.0.0-", ""])
def test_invalid_versions_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape("is not a semantic version like 1.2.0")):
        g.parse_version(text)


def test_latest_is_the_highest_release_not_a_prerelease() -> None:
    entry = net_gallery("1.9.0", "1.10.0", "2.0.0-rc.1").algorithms["net"]
    assert g.resolve_version(entry, "latest")["version"] == "1.10.0"


def test_latest_falls_back_to_the_highest_prerelease() -> None:
    entry = net_gallery("2.0.0-rc.1", "2.0.0-rc.2").algorithms["net"]
    assert g.resolve_version(entry, "latest")["version"] == "2.0.0-rc.2"


def test_versions_are_kept_in_ascending_order() -> None:
    entry = net_gallery("1.10.0", "1.2.0", "1.9.0").algorithms["net"]
    assert [v["version"] for v in entry["versions"]] == ["1.2.0", "1.9.0", "1.10.0"]


def test_resolve_exact_version() -> None:
    entry = net_gallery("1.0.0", "1.1.0").algorithms["net"]
    assert g.resolve_version(entry, "1.0.0")["image"] == "registry.example/trainer:1.0.0"


def test_unknown_version_error_lists_what_exists() -> None:
    entry = net_gallery("1.0.0", "1.1.0").algorithms["net"]
    with pytest.raises(g.VersionNotFoundError) as caught:
        g.resolve_version(entry, "2.0.0")
    assert caught.value.reason == "VersionNotFound"
    assert "available: 1.0.0, 1.1.0 (or 'latest')" in caught.value.message


def test_unknown_algorithm_error_suggests_and_lists_what_exists() -> None:
    gallery = net_gallery("1.0.0", name="resnet_v1_50")
    with pytest.raises(g.AlgorithmNotFoundError) as caught:
        g.find_algorithm(gallery, "resnet_v1_5")
    assert caught.value.reason == "AlgorithmNotFound"
    assert "did you mean 'resnet_v1_50'? available: resnet_v1_50" in caught.value.message


def test_a_gallery_without_configmaps_is_unavailable() -> None:
    gallery = g.parse_gallery([], name="missing")
    assert not gallery.available
    with pytest.raises(g.GalleryUnavailableError, match=re.escape("kubearts.io/gallery=missing")):
        g.find_algorithm(gallery, "net")


# --- parsing ---------------------------------------------------------------------------------


def test_parse_reads_only_configmaps_of_the_named_gallery() -> None:
    gallery = g.parse_gallery(
        [
            configmap("a", {"algorithm.net.yaml": algorithm_doc(version_doc("1.0.0"))}),
            configmap("b", {"algorithm.other.yaml": algorithm_doc(version_doc("1.0.0"))}, "team"),
        ],
        name="default",
    )
    assert list(gallery.algorithms) == ["net"]
    assert gallery.sources == ("ConfigMap a",)
    assert gallery.problems == ()


@pytest.mark.parametrize(
    ("key", "value", "field", "message"),
    [
        pytest.param(
            "algorithm.net.yaml", "versions: [\n", "", "is not valid YAML at line", id="bad-yaml"
        ),
        pytest.param(
            "algorithm.net.yaml", "- a\n- b\n", "", "must be a YAML mapping", id="not-a-mapping"
        ),
        pytest.param("algorithms.net.yaml", "{}", "", "unknown key", id="unknown-key"),
        pytest.param(
            "algorithm.net.yaml",
            algorithm_doc(version_doc("1.0.0"), task=None),
            "task",
            "is required",
            id="missing-task",
        ),
        pytest.param(
            "algorithm.net.yaml",
            algorithm_doc(version_doc("1.0.0"), name="other"),
            "name",
            "must match the key's name 'net'",
            id="name-mismatch",
        ),
        pytest.param(
            "algorithm.net.yaml",
            algorithm_doc(version_doc(1.1)),  # type: ignore[arg-type]
            "versions[0].version",
            "must be a quoted string",
            id="unquoted-version",
        ),
        pytest.param(
            "algorithm.net.yaml",
            algorithm_doc(version_doc("1.0")),
            "versions[0].version",
            "is not a semantic version",
            id="short-version",
        ),
        pytest.param(
            "algorithm.net.yaml",
            algorithm_doc(version_doc("1.0.0", image="")),
            "versions[0].image",
            "must be a non-empty string",
            id="empty-image",
        ),
        pytest.param(
            "algorithm.net.yaml",
            algorithm_doc(version_doc("1.0.0", trainingDevices=["cpu", "tpu"])),
            "versions[0].trainingDevices",
            "unknown tpu; allowed: cpu, gpu, ascend910",
            id="unknown-device",
        ),
        pytest.param(
            "algorithm.net.yaml",
            algorithm_doc(
                version_doc(
                    "1.0.0",
                    hyperparameters=[{"name": "epochs", "type": "int", "default": 0, "minimum": 1}],
                )
            ),
            "versions[0].hyperparameters[0].default",
            "expected an integer at least 1, got 0",
            id="bad-hyperparameter-default",
        ),
        pytest.param(
            "algorithm.net.yaml",
            algorithm_doc(version_doc("1.0.0", contract={"formats": ["Parquet"]})),
            "versions[0].contract.formats",
            "allowed: ImageFolder, Manifest",
            id="unknown-dataset-format",
        ),
        pytest.param(
            "algorithm.net.yaml",
            algorithm_doc(version_doc("1.0.0"), version_doc("1.0.0")),
            "versions[1].version",
            "1.0.0 is listed twice",
            id="duplicate-version",
        ),
        pytest.param(
            "dataset.flowers.yaml",
            {"task": "image_classification", "format": "ImageFolder", "source": {"uri": "x"}},
            "source.uri",
            "needs a scheme",
            id="dataset-uri-without-scheme",
        ),
        pytest.param(
            "index.remote.url",
            "ftp://example.org/index.yaml",
            "",
            "must be an http(s) URL",
            id="index-not-http",
        ),
    ],
)
def test_parse_problems_name_configmap_key_and_field(
    key: str, value: object, field: str, message: str
) -> None:
    gallery = g.parse_gallery([configmap("gallery-a", {key: value})])
    errors = gallery.errors
    assert errors, "expected a problem"
    assert any(
        p.source == "ConfigMap gallery-a"
        and p.key == key
        and p.field == field
        and message in p.message
        for p in errors
    ), [str(p) for p in errors]


def test_a_broken_entry_does_not_hide_the_others() -> None:
    gallery = g.parse_gallery(
        [
            configmap(
                "gallery-a",
                {
                    "algorithm.broken.yaml": "displayName: [unclosed\n",
                    "algorithm.net.yaml": algorithm_doc(version_doc("1.0.0")),
                },
            ),
            configmap("gallery-b", {"algorithm.other.yaml": algorithm_doc(version_doc("2.0.0"))}),
        ]
    )
    assert list(gallery.algorithms) == ["net", "other"]
    assert [(p.key, p.entry) for p in gallery.errors] == [("algorithm.broken.yaml", "broken")]


def test_a_broken_version_is_dropped_and_the_others_kept() -> None:
    doc = algorithm_doc(version_doc("1.0.0"), version_doc("1.1.0", inferenceDevices=[]))
    gallery = g.parse_gallery([configmap("gallery-a", {"algorithm.net.yaml": doc})])
    assert [v["version"] for v in gallery.algorithms["net"]["versions"]] == ["1.0.0"]
    (problem,) = gallery.errors
    assert (problem.field, problem.version) == ("versions[1].inferenceDevices", "1.1.0")
    assert str(problem) == (
        "ConfigMap gallery-a, key algorithm.net.yaml, field versions[1].inferenceDevices: "
        "must not be empty"
    )


def test_unknown_fields_are_warnings_and_the_entry_is_kept() -> None:
    doc = algorithm_doc(version_doc("1.0.0", imagePullPolicy="Always"))
    gallery = g.parse_gallery([configmap("gallery-a", {"algorithm.net.yaml": doc})])
    assert "net" in gallery.algorithms
    assert gallery.errors == ()
    (warning,) = gallery.problems
    assert warning.severity == "warning"
    assert warning.field == "versions[0].imagePullPolicy"


def test_an_entry_defined_twice_keeps_the_first_configmap_by_name() -> None:
    gallery = g.parse_gallery(
        [
            configmap("gallery-b", {"algorithm.net.yaml": algorithm_doc(version_doc("2.0.0"))}),
            configmap("gallery-a", {"algorithm.net.yaml": algorithm_doc(version_doc("1.0.0"))}),
        ]
    )
    assert [v["version"] for v in gallery.algorithms["net"]["versions"]] == ["1.0.0"]
    (warning,) = gallery.problems
    assert warning.source == "ConfigMap gallery-b"
    assert "already defined in ConfigMap gallery-a" in warning.message


def test_yaml_anchors_share_data_between_versions() -> None:
    text = (
        "task: image_classification\nframework: TensorFlow-2.x\nversions:\n"
        "  - &v1\n"
        + "\n".join("    " + line for line in yaml.safe_dump(version_doc("1.0.0")).splitlines())
        + "\n  - <<: *v1\n    version: '1.1.0'\n"
    )
    gallery = g.parse_gallery([configmap("gallery-a", {"algorithm.net.yaml": text})])
    assert gallery.errors == ()
    assert [v["version"] for v in gallery.algorithms["net"]["versions"]] == ["1.0.0", "1.1.0"]


# --- the default gallery shipped by the chart ------------------------------------------------


def default_gallery() -> g.Gallery:
    data = yaml.safe_load((GALLERY_DIR / "default.yaml").read_text())
    return g.parse_gallery([configmap("kubearts-gallery-default", data)], name="default")


def test_every_chart_gallery_file_is_configmap_data() -> None:
    files = sorted(GALLERY_DIR.glob("*.yaml"))
    assert [f.name for f in files] == ["default.yaml"]
    for path in files:
        data = yaml.safe_load(path.read_text())
        assert isinstance(data, dict)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in data.items())


def test_default_gallery_parses_without_problems() -> None:
    gallery = default_gallery()
    assert [str(p) for p in gallery.problems] == []
    assert gallery.name == "default"


def test_default_gallery_pins_the_flowers_archive() -> None:
    flowers = default_gallery().datasets["flowers"]
    assert flowers["source"]["uri"].endswith("/flower_photos.tgz")
    assert flowers["source"]["sha256"] == (
        "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c"
    )
    assert (flowers["samples"], flowers["sizeBytes"]) == (3670, 228813984)


@pytest.mark.parametrize(
    ("name", "display"),
    [
        pytest.param("resnet_v1_50", "ResNet_v1_50", id="resnet_v1_50"),
        pytest.param("resnet_v1_101", "ResNet_v1_101", id="resnet_v1_101"),
        pytest.param("mobilenet_v1", "MobileNet_v1", id="mobilenet_v1"),
    ],
)
def test_default_gallery_offers_the_trainer_algorithms(name: str, display: str) -> None:
    entry = default_gallery().algorithms[name]
    assert entry["displayName"] == display
    assert (entry["task"], entry["framework"]) == ("image_classification", "TensorFlow-2.x")
    assert len(entry["versions"]) >= 2
    latest = g.resolve_version(entry, "latest")
    assert latest["version"] == entry["versions"][-1]["version"] != entry["versions"][0]["version"]
    for version in entry["versions"]:
        assert version["image"] == "ghcr.io/kubearts/trainer:0.1.0"
        assert version["entrypoint"] == {
            "command": ["python", "-m", "kubearts_trainer"],
            "args": ["train", "--model", name],
        }
        assert version["trainingDevices"] == ["cpu", "gpu", "ascend910"]
        assert version["inferenceDevices"] == ["cpu", "gpu", "ascend310"]
        assert version["contract"] == {
            "requiresSplitVersion": True,
            "formats": ["ImageFolder", "Manifest"],
        }
        formats = {o["format"]: o for o in version["outputs"]}
        assert set(formats) == {"saved_model", "frozen_graph"}
        graph = formats["frozen_graph"]
        assert graph["inputs"][0]["name"] == "images"
        assert graph["inputs"][0]["layout"] == "NHWC"
        assert graph["inputs"][0]["shape"][-1] == 3
        assert graph["outputs"][0]["name"] == "logits"
        # The defaults alone are a valid set of hyperparameters.
        assert validate_hyperparameters({}, version["hyperparameters"]) == []


def test_default_gallery_hyperparameter_defaults() -> None:
    entry = default_gallery().algorithms["resnet_v1_50"]
    params = {p["name"]: p for p in g.resolve_version(entry, "latest")["hyperparameters"]}
    assert {name: p.get("default") for name, p in params.items()} == {
        "learning_rate": 0.01,
        "batch_size": 32,
        "epochs": 10,
        "optimizer": "momentum",
        "momentum": 0.9,
        "image_size": 224,
        "pretrained_weights": None,
        "label_smoothing": 0.0,
        "freeze_backbone": False,
    }
    assert params["optimizer"]["choices"] == ["sgd", "momentum", "adam", "rmsprop"]
    assert (params["batch_size"]["minimum"], params["batch_size"]["maximum"]) == (1, 1024)
    assert params["learning_rate"]["exclusiveMinimum"] is True


def test_default_gallery_offers_the_flowers_dataset() -> None:
    flowers = default_gallery().datasets["flowers"]
    assert flowers["source"]["uri"] == (
        "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
    )
    assert flowers["format"] == "ImageFolder"
    assert flowers["classes"] == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert flowers["samples"] == 3670


# --- remote indexes --------------------------------------------------------------------------

REMOTE_INDEX = {
    # Values may be the entry as a nested mapping...
    "algorithm.remote_net.yaml": algorithm_doc(version_doc("3.0.0")),
    # ...or YAML text, like in a ConfigMap.
    "dataset.digits.yaml": yaml.safe_dump(
        {
            "task": "image_classification",
            "format": "ImageFolder",
            "source": {"uri": "https://example.org/digits.tgz"},
        }
    ),
    # The same entry as a local ConfigMap: the ConfigMap wins.
    "algorithm.net.yaml": algorithm_doc(version_doc("9.0.0")),
}
ETAG = '"index-v1"'


class _IndexHandler(http.server.BaseHTTPRequestHandler):
    #: (path, status) of every request answered, for tests that count them.
    answered: ClassVar[list[tuple[str, int]]] = []

    def do_GET(self) -> None:
        headers = {"Content-Type": "application/yaml"}
        if self.path == "/index.yaml" and self.headers.get("If-None-Match") == ETAG:
            body, status = b"", 304
        elif self.path == "/index.yaml":
            body, status = yaml.safe_dump(REMOTE_INDEX).encode(), 200
            headers["ETag"] = ETAG
        elif self.path == "/index.json":
            body, status = json.dumps(REMOTE_INDEX).encode(), 200
        elif self.path == "/list.yaml":
            body, status = b"- just\n- a list\n", 200
        elif self.path == "/slow.yaml":
            time.sleep(1.0)
            body, status = b"{}", 200
        else:
            body, status = b"not here", 404
        self.answered.append((self.path, status))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture(scope="module")
def index_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _IndexHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fetched(url: str, timeout: float = 5.0) -> g.RemoteIndex:
    return g.fetch_index(url, urllib_fetch, timeout=timeout)


@pytest.mark.parametrize("path", ["/index.yaml", "/index.json"])
def test_a_fetched_index_is_a_configmap_like_document(index_server: str, path: str) -> None:
    doc = fetched(index_server + path).document
    assert doc is not None
    assert doc["kind"] == "RemoteIndex"
    assert doc["metadata"] == {"name": index_server + path}
    data = doc["data"]
    assert isinstance(data, dict)
    assert set(data) == set(REMOTE_INDEX)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        pytest.param("/missing.yaml", "HTTP 404", id="not-found"),
        pytest.param("/list.yaml", "must be a mapping of gallery keys", id="not-a-mapping"),
        pytest.param("/slow.yaml", "timed out", id="timeout"),
    ],
)
def test_fetch_failures_are_explained(index_server: str, path: str, message: str) -> None:
    outcome = fetched(index_server + path, timeout=0.2)
    assert outcome.document is None
    assert message in outcome.error


def test_only_http_urls_are_fetched() -> None:
    with pytest.raises(g.GalleryFetchError, match="only http:// and https://"):
        urllib_fetch("file:///etc/passwd", 1.0, g.Validators())


def test_a_refresh_is_a_conditional_request(index_server: str) -> None:
    url = index_server + "/index.yaml"
    cache = g.RemoteIndexCache(urllib_fetch, 5.0)
    first = cache.get([url])[url]
    assert first.validators.etag == ETAG
    _IndexHandler.answered.clear()
    assert cache.refresh([url]) == []  # 304 Not Modified: nothing changed
    assert _IndexHandler.answered == [("/index.yaml", 304)]
    assert cache.get([url])[url] == first


def test_readers_share_one_fetch_per_url() -> None:
    calls: list[str] = []

    def fetch(url: str, timeout: float, validators: g.Validators) -> g.Response:
        calls.append(url)
        return g.Response(b"{}")

    cache = g.RemoteIndexCache(fetch)
    for _ in range(100):
        cache.get(["https://index.example/a.yaml"])
    assert calls == ["https://index.example/a.yaml"]


def test_a_refresh_reports_only_indexes_whose_content_changed() -> None:
    bodies = {"https://a.example/i.yaml": b"{}", "https://b.example/i.yaml": b"{}"}

    def fetch(url: str, timeout: float, validators: g.Validators) -> g.Response:
        return g.Response(bodies[url])

    cache = g.RemoteIndexCache(fetch)
    cache.get(bodies)
    bodies["https://b.example/i.yaml"] = b"algorithm.x.yaml: {}\n"
    assert cache.refresh(bodies) == ["https://b.example/i.yaml"]


def test_load_gallery_merges_remote_indexes_behind_configmaps(index_server: str) -> None:
    url = index_server + "/index.yaml"
    local = configmap(
        "gallery-a",
        {"algorithm.net.yaml": algorithm_doc(version_doc("1.0.0")), "index.team.url": url},
    )
    gallery = g.load_gallery([local], name="default", remote={url: fetched(url)})
    assert list(gallery.algorithms) == ["net", "remote_net"]
    assert list(gallery.datasets) == ["digits"]
    assert [v["version"] for v in gallery.algorithms["net"]["versions"]] == ["1.0.0"]
    assert gallery.sources == ("ConfigMap gallery-a", f"index {url}")
    assert gallery.errors == ()
    (warning,) = gallery.problems
    assert "already defined in ConfigMap gallery-a" in warning.message


def test_an_unreachable_index_leaves_the_rest_usable(index_server: str) -> None:
    url = index_server + "/missing.yaml"
    local = configmap(
        "gallery-a",
        {"algorithm.net.yaml": algorithm_doc(version_doc("1.0.0")), "index.team.url": url},
    )
    gallery = g.load_gallery([local], name="default", remote={url: fetched(url)})
    assert list(gallery.algorithms) == ["net"]
    assert gallery.unreachable == (url,)
    assert [str(p) for p in gallery.errors] == [f"index {url}: HTTP 404 Not Found"]
    # An algorithm missing while an index is unreachable may just be in that index.
    status = sync(gallery, {"algorithm": "remote_net"}, None)
    assert conditions(status)["Ready"] == ("False", "GalleryUnavailable")


def test_an_index_not_fetched_yet_is_unreachable() -> None:
    local = configmap("gallery-a", {"index.team.url": "https://index.example/gallery.yaml"})
    gallery = g.load_gallery([local])
    assert gallery.unreachable == ("https://index.example/gallery.yaml",)
    assert gallery.errors[0].message == "not fetched yet"


def test_an_injected_fetcher_is_used_and_its_errors_reported() -> None:
    calls: list[tuple[str, float]] = []

    def fetch(url: str, timeout: float, validators: g.Validators) -> g.Response:
        calls.append((url, timeout))
        raise ConnectionResetError("reset by peer")

    url = "https://index.example/gallery.yaml"
    local = configmap("gallery-a", {"index.team.url": url})
    gallery = g.load_gallery([local], remote=g.RemoteIndexCache(fetch, 3.0).get([url]))
    assert calls == [(url, 3.0)]
    assert gallery.unreachable == (url,)
    assert "reset by peer" in gallery.errors[0].message


def test_remote_indexes_cannot_declare_more_indexes() -> None:
    def fetch(url: str, timeout: float, validators: g.Validators) -> g.Response:
        return g.Response(b"index.more.url: https://elsewhere.example/x.yaml\n")

    url = "https://index.example/gallery.yaml"
    local = configmap("gallery-a", {"index.team.url": url})
    gallery = g.load_gallery([local], remote=g.RemoteIndexCache(fetch).get([url]))
    assert [p.message for p in gallery.errors] == ["remote indexes cannot declare further indexes"]


def test_index_urls_lists_the_declared_indexes_once() -> None:
    docs = [
        configmap("b", {"index.one.url": "https://x.example/i.yaml", "index.bad.url": "ftp://x"}),
        configmap("a", {"index.two.url": "https://x.example/i.yaml"}),
    ]
    assert g.index_urls(docs) == ["https://x.example/i.yaml"]


def test_gallery_selector_lists_the_configmaps_of_one_gallery() -> None:
    assert g.gallery_selector("default") == "kubearts.io/gallery=default"
