#!/bin/bash
# The main job on the built-in lab: installs the build dependencies, builds
# aicp, starts a lab of SSH hosts on loopback and converges them with the
# node-preparation playbook, twice: the second run changes nothing.
# Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes="${NODES:-3}"
./scripts/deps.sh
[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure
make -j"$(nproc)"
./aicp lab down >/dev/null 2>&1 || true
./aicp lab up --nodes "$nodes"
echo "== first run: converge"
set +e
./aicp run playbooks/k8s-node-prep.yml -i lab/inventory.ini
first=$?
echo "== second run: nothing left to change"
./aicp run playbooks/k8s-node-prep.yml -i lab/inventory.ini
second=$?
set -e
echo "exit statuses: first run $first (2 = changed), second run $second (0 = nothing changed)"
echo "the lab keeps running; stop it with: ./aicp lab down"
[ "$first" -le 2 ] && [ "$second" -eq 0 ]
