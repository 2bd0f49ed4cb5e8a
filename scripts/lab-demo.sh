#!/bin/bash
# The main job on the built-in lab: installs the build dependencies, builds
# aicp, starts a lab of SSH hosts on loopback and converges them with the
# node-preparation playbook, twice: the second run changes nothing. Then
# the TR-4798 pod's site file is applied to the fake Kubernetes API and
# ONTAP REST servers the tests use (no cluster or ONTAP runs here): apply,
# apply again, drift.
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

# The site, on the fake Kubernetes API and ONTAP REST servers (TLS with a
# throwaway CA; a random token and password).
k=$(mktemp -d /tmp/aicp-demo-k8s-XXXXXX)
trap 'exec 8>&- 9>&-; kill "$KUBE_FAKE_PID" "$ONTAP_FAKE_PID" 2>/dev/null; rm -rf "$k"' EXIT
. scripts/fakes.sh "$k"
site=(inventory/ontap-ai-pod.site.yml "${FAKE_ARGS[@]}")
set +e
echo "== the TR-4798 site: apply"
./aicp apply "${site[@]}"
apply1=$?
echo "== apply again: nothing left to change"
./aicp apply "${site[@]}"
apply2=$?
echo "== drift: read-only"
./aicp drift "${site[@]}"
drift=$?
set -e
echo "exit statuses: apply $apply1 (2 = changed), apply again $apply2, drift $drift (0 = none)"
[ "$first" -le 2 ] && [ "$second" -eq 0 ] && [ "$apply1" -le 2 ] && [ "$apply2" -eq 0 ] &&
    [ "$drift" -eq 0 ]
