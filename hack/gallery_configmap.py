"""Print the gallery ConfigMap for a gallery data file, as the chart renders it.

python hack/gallery_configmap.py charts/kubearts/files/gallery/default.yaml | kubectl apply -f -
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def configmap(path: Path) -> dict[str, object]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: a gallery file is a mapping of entry keys to YAML text")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"kubearts-gallery-{path.stem}",
            "labels": {"kubearts.io/gallery": path.stem, "app.kubernetes.io/component": "gallery"},
        },
        "data": {k: v if isinstance(v, str) else yaml.safe_dump(v) for k, v in data.items()},
    }


if __name__ == "__main__":
    json.dump(configmap(Path(sys.argv[1])), sys.stdout, indent=2)
