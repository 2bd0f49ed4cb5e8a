#!/bin/bash
# The main job on the built-in lab: installs the build dependencies, builds
# aicp, starts a lab of five SSH hosts on loopback and converges them with
# the node-preparation playbook, twice (the second run changes nothing).
# Then the whole TR-4798 pod from bare nodes: inventory/ontap-ai-pod.site.yml
# with the lab standing in for its hosts (node01 the master, node02-03 the
# CPU workers, node04-05 two DGX-1s with eight V100s each in their nvidia-smi
# stand-in), the fake Kubernetes API and ONTAP REST servers for the cluster
# and the storage (no real cluster or ONTAP runs here) and the helm
# stand-in: plan (from nothing), apply, apply again, drift.
# Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes="${NODES:-5}"
./scripts/deps.sh
[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure
make -j"$(nproc)"
# From bare hosts every time: the last demo's trees are purged.
./aicp lab down --purge >/dev/null 2>&1 || true
rm -rf lab/cluster lab/helm-state
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

# The site on the lab: its groups over the lab's hosts, the GPUs of the
# DGX-1s, one shared directory for the kubeadm stand-ins' cluster state.
[ "$nodes" -ge 5 ] || { echo "the TR-4798 site needs NODES >= 5" >&2; exit 1; }
k=$(mktemp -d /tmp/aicp-demo-k8s-XXXXXX)
trap 'exec 8>&- 9>&-; kill "${KUBE_FAKE_PID:-}" "${ONTAP_FAKE_PID:-}" 2>/dev/null; rm -rf "$k"' EXIT
{
    cat lab/inventory.ini
    printf '\n[kube-master]\nnode01\n\n[cpu-nodes]\nnode02\nnode03\n\n[gpu-nodes]\nnode04\nnode05\n'
    printf '\n[kube-node:children]\ncpu-nodes\ngpu-nodes\n'
} > lab/pod.ini
mkdir -p lab/cluster
cat > lab/pod-hardware.yml <<EOF
# What the lab hosts stand in for: DGX-1s have eight V100s, the others none.
- hosts: all
  gather_facts: false
  tasks:
    - file: {path: /etc/aicp-lab, state: directory, mode: "0755"}
    - copy: {dest: /etc/aicp-lab/cluster-dir, content: "$PWD/lab/cluster\n"}
    - copy:
        dest: /etc/aicp-lab/gpus
        content: "{% for i in range(8) %}Tesla V100-SXM2-32GB|32768|N/A|Enabled\n{% endfor %}"
      when: inventory_hostname in groups['gpu-nodes']
    - file: {path: /usr/local/sbin/nvidia-smi, state: absent}
      when: inventory_hostname not in groups['gpu-nodes']
EOF
./aicp run lab/pod-hardware.yml -i lab/pod.ini >/dev/null || [ $? -eq 2 ]
rm -rf lab/helm-state
. scripts/fakes.sh "$k"
export AICP_HELM_STATE=$PWD/lab/helm-state PATH="$PWD/tests/lab/helm:$PATH"
site=(inventory/ontap-ai-pod.site.yml -i lab/pod.ini "${FAKE_ARGS[@]}")
set +e
echo "== the TR-4798 site: plan (what it would do, from bare nodes)"
./aicp plan "${site[@]}" >lab/plan.out 2>&1
plan=$?
grep -c '^TASK' lab/plan.out | sed 's/^/   steps listed: /'
sed -n '/^LAYER RECAP/,$p' lab/plan.out
echo "== apply: cluster, storage, Kubernetes, applications"
./aicp apply "${site[@]}"
apply1=$?
echo "== apply again: nothing left to change"
./aicp apply "${site[@]}"
apply2=$?
echo "== drift: read-only"
./aicp drift "${site[@]}"
drift=$?
set -e
echo "exit statuses: plan $plan (2 = would change), apply $apply1 (2 = changed), apply again $apply2, drift $drift (0 = none)"
[ "$first" -le 2 ] && [ "$second" -eq 0 ] && [ "$plan" -eq 2 ] && [ "$apply1" -eq 2 ] &&
    [ "$apply2" -eq 0 ] && [ "$drift" -eq 0 ]
