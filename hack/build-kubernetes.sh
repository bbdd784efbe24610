#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy and kubectl from
# Debian's kubernetes source package (1.20.2) with Go 1.15 and caches them under the user's
# cache directory. Go 1.19 builds an apiserver that crashes (an old json-iterator/reflect2 in
# the vendor tree), so the toolchain is pinned. Prints the directory holding the binaries.
#
# Only the binaries the cache lacks are built: a cache made before a binary joined the list
# gains it without rebuilding the others.
#
# KUBEARTS_K8S_BIN=<dir> skips the build and uses binaries the user already has.
set -euo pipefail

version=1.20.2
bins=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl)

if [ -n "${KUBEARTS_K8S_BIN:-}" ]; then
  for b in "${bins[@]}"; do
    [ -x "$KUBEARTS_K8S_BIN/$b" ] || { echo "KUBEARTS_K8S_BIN=$KUBEARTS_K8S_BIN has no executable $b" >&2; exit 1; }
  done
  echo "$KUBEARTS_K8S_BIN"; exit 0
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubearts/kubernetes-$version"
out="$cache/bin"
missing() { for b in "${bins[@]}"; do [ -x "$out/$b" ] || echo "$b"; done; }
todo=$(missing)
if [ -z "$todo" ]; then echo "$out"; exit 0; fi

goroot=/usr/lib/go-1.15
[ -x "$goroot/bin/go" ] || { echo "Go 1.15 missing: run hack/install-system-deps.sh" >&2; exit 1; }

# One build at a time per cache: a second caller (another checkout's tests, a second
# `make`) waits for the first and then uses its binaries instead of wiping its sources.
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9
todo=$(missing)
if [ -z "$todo" ]; then echo "$out"; exit 0; fi
# shellcheck disable=SC2206 # binary names have no spaces
todo=($todo)

work="$cache/src"
rm -rf "$work" && mkdir -p "$work"
(
  cd "$work"
  apt-get source -qq --download-only "kubernetes=$(apt-cache showsrc kubernetes | awk '/^Version:/{print $2; exit}')" >&2 2>/dev/null \
    || apt-get source -qq --download-only kubernetes >&2
  dpkg-source -x --skip-debianization ./*.dsc tree >&2 2>/dev/null || dpkg-source -x ./*.dsc tree >&2
) 
start=$(date +%s)
(
  cd "$work/tree"
  export PATH="$goroot/bin:$PATH" GOROOT="$goroot" GOFLAGS=-mod=vendor GO111MODULE=on GOPROXY=off
  export KUBE_GIT_VERSION="v$version" KUBE_GIT_TREE_STATE=clean KUBE_GIT_COMMIT=debian
  export KUBE_BUILD_PLATFORMS=linux/amd64
  make WHAT="${todo[*]/#/cmd/}" >&2
  # Each binary appears under its final name in one rename, so a reader that finds all of
  # them executable never sees a half-written one.
  mkdir -p "$out"
  for b in "${todo[@]}"; do cp "_output/bin/$b" "$out/.$b.tmp" && mv "$out/.$b.tmp" "$out/$b"; done
)
rm -rf "$work"
echo "built ${todo[*]} (kubernetes $version) in $(( $(date +%s) - start ))s" >&2
echo "$out"
