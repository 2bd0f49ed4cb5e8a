#!/bin/bash
# Installs what aicp needs to build and test on Debian 12 (as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    build-essential autoconf automake pkg-config \
    libyaml-dev libssh-dev libcurl4-openssl-dev libjansson-dev libssl-dev libcmocka-dev \
    openssh-server openssh-client sudo iproute2 util-linux procps kmod dpkg-dev \
    ca-certificates openssl python3 git "$@"
# The fake Kubernetes API server's fidelity test drives the real kubectl:
# Debian's when the machine has none of its own.
if ! command -v kubectl >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends kubernetes-client ||
        echo "deps: no kubectl; the kubectl fidelity test will be skipped" >&2
fi
