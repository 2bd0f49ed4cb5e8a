#!/bin/bash
# Installs what aicp needs to build and test on Debian 12 (as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    build-essential autoconf automake pkg-config \
    libyaml-dev libssh-dev libcurl4-openssl-dev libjansson-dev libssl-dev libcmocka-dev \
    openssh-server openssh-client sudo iproute2 util-linux procps kmod dpkg-dev \
    ca-certificates python3 git "$@"
