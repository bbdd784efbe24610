#!/usr/bin/env bash
# Advertise accelerators on a kind cluster made from kind-config.yaml: patch the extended
# resources a device plugin would report onto each worker's node status.
#   hack/kind-extended-resources.sh [cluster-name]
set -euo pipefail
cluster=${1:-kubearts}
patch() {  # node resource count
  kubectl --context "kind-$cluster" patch node "$1" --subresource=status --type=json \
    -p "[{\"op\":\"add\",\"path\":\"/status/capacity/${2//\//~1}\",\"value\":\"$3\"}]"
}
for node in $(kubectl --context "kind-$cluster" get nodes -l kubearts.io/pool=gpu -o name); do
  patch "${node#node/}" nvidia.com/gpu 2
done
for node in $(kubectl --context "kind-$cluster" get nodes -l kubearts.io/pool=ascend910 -o name); do
  patch "${node#node/}" huawei.com/Ascend910 8
done
for node in $(kubectl --context "kind-$cluster" get nodes -l kubearts.io/pool=ascend310 -o name); do
  patch "${node#node/}" huawei.com/Ascend310 4
done
