#!/usr/bin/env bash
# Installs the Debian packages the local cluster and the tests need: etcd, Go 1.15 from
# bullseye (the toolchain Debian's kubernetes 1.20.2 source package builds with), the
# kubernetes source itself, the networking tools the node agent and kube-proxy use
# (kube-proxy runs conntrack to drop stale UDP flows to removed endpoints, and
# `kube-proxy --cleanup` asks ipset for the sets its IPVS mode would have made), and
# chromium (the browser the predictor's predict page is tested in, driven by playwright).
# Idempotent: a second run on a prepared machine does nothing but check.
set -euo pipefail

need_root() { if [ "$(id -u)" != 0 ]; then echo "run as root (apt-get and namespaces need it)" >&2; exit 1; fi; }

have_all() {
  command -v etcd >/dev/null && [ -x /usr/lib/go-1.15/bin/go ] && command -v ip >/dev/null \
    && command -v iptables >/dev/null && command -v conntrack >/dev/null \
    && command -v ipset >/dev/null && command -v dpkg-source >/dev/null \
    && command -v chromium >/dev/null
}

if have_all && [ "${1:-}" != "--force" ]; then
  exit 0
fi
need_root

sources=/etc/apt/sources.list.d/kubearts-debian.sources
if [ ! -f "$sources" ]; then
  cat >"$sources" <<'SRC'
# Added by KubeArts hack/install-system-deps.sh: bullseye for golang-1.15-go, and
# bookworm sources for the kubernetes 1.20.2 source package.
Types: deb
URIs: http://deb.debian.org/debian
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  # Prefer bookworm for everything but the packages we name explicitly.
  cat >/etc/apt/preferences.d/kubearts-bullseye <<'PREF'
Package: *
Pin: release n=bullseye
Pin-Priority: 100
PREF
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  etcd-server golang-1.15-go dpkg-dev iproute2 iptables conntrack ipset procps rsync make git ca-certificates \
  chromium >/dev/null
echo "system dependencies installed"
