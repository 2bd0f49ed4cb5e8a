#!/bin/sh
# A site's cluster layer end to end on the lab: three SSH hosts (node01 the
# control plane, node02 a CPU worker, node03 a GPU worker with 8 V100s in
# its nvidia-smi stand-in), the Kubernetes fake for the API layer and the
# helm stand-in. From nothing:
#   plan: lists the cluster playbooks' steps and every resource, changes
#         nothing on the hosts or the cluster;
#   apply: prepares the nodes, installs the GPU driver on node03 only,
#          kubeadm init once, joins both workers, then the device plugin,
#          the Trident operator and its readiness gates, the backends'
#          StorageClass, Airflow and its gate; a recap per layer;
#   apply again: unchanged, no second init or upgrade;
#   a new worker in the inventory: only it is prepared and joined;
#   remove_nodes: the Node is drained and deleted, its host untouched;
#   apply --state absent: the API layer removed dependents first, the
#   nodes left as they are; again: unchanged.
. "$top_srcdir/tests/integration/lib.sh"
need_lab
command -v kubectl >/dev/null 2>&1 || skip "no kubectl to seed the fake cluster"
lab_up 4
kube_fake_up --crds trident --controller
T=$KDIR
unset KUBECONFIG
export AICP_HELM_STATE="$T/helm-state"
mkdir -p "$AICP_HELM_STATE"
: >"$AICP_HELM_STATE/calls.log"
PATH="$top_srcdir/tests/lab/helm:$PATH"
export PATH

CL=$LAB/cluster
mkdir -p "$CL"
for h in node01 node02 node03 node04; do
    lab_ssh $h "mkdir -p /etc/aicp-lab && echo '$CL' > /etc/aicp-lab/cluster-dir &&
        rm -f /etc/aicp-lab/gpus /etc/aicp-lab/nvidia-driver-version" || fail "cannot set up $h"
done
# node03 is a DGX-1's worth of GPUs; the others have none.
lab_ssh node03 'for i in 0 1 2 3 4 5 6 7; do echo "Tesla V100-SXM2-32GB|32768|N/A|Enabled"; done \
    >/etc/aicp-lab/gpus' || fail "node03 GPUs"
for h in node01 node02 node04; do
    lab_ssh $h 'rm -f /usr/local/sbin/nvidia-smi' || fail "$h"
done

inventory() { # the lab's hosts with the site's groups; $1: extra workers
    {
        cat "$LAB/inventory.ini"
        printf '\n[pod_master]\nnode01\n\n[pod_workers]\nnode02\nnode03\n%s\n' "$1"
        printf '\n[pod_gpus]\nnode03\n'
    } >"$WORK/pod.ini"
}
inventory ""
ADMIN=$WORK/admin.conf

site() { # site [REMOVE_NODES]
    cat >"$T/site.yml" <<EOF
site: lab-pod
inventory: $WORK/pod.ini
kubernetes:
  kubeconfig: $ADMIN
  version: v1.29.3
  control_plane: pod_master
  workers: pod_workers
  gpu_workers: pod_gpus
  packages_version: 1.29.3-1.1
  gpu: {stack: device-plugin, driver: "535"}
  remove_nodes: [${1:-}]
trident:
  version: 23.07.1
storage_classes:
  - name: ontap-ai-flexvols
    provisioner: csi.trident.netapp.io
    default: true
    reclaim_policy: Retain
    parameters: {backendType: ontap-nas}
helm_releases:
  - name: airflow
    chart: apache-airflow/airflow
    repo: https://airflow.apache.org
    version: "1.11.0"
    namespace: airflow
    values: {executor: CeleryExecutor}
    ready: {deployments: [airflow-web], timeout: 60}
EOF
}
site ""
sed -i '/remove_nodes: \[\]/d' "$T/site.yml"

# The charts' objects come from the helm stand-in (tests/lab/helm/charts):
# the trident-operator's Deployments and node DaemonSet, Airflow's
# Deployments; the fake's controller makes them ready.

run() { # run NAME CMD ARGS...: output in $WORK/NAME.out, exit status in $rc
    _n=$1
    shift
    "$AICP" "$@" "$T/site.yml" --kubeconfig "$KCFG" >"$WORK/$_n.out" 2>&1
    rc=$?
}
expect() { # expect NAME RC
    [ "$rc" -eq "$2" ] || { cat "$WORK/$1.out"; fail "$1 exits $rc, not $2"; }
}
calls() { # calls HOST WORD: how often kubeadm WORD ran on HOST
    lab_ssh "$1" "cat /var/lib/aicp-lab/kubeadm.calls 2>/dev/null" | grep -c "^$2"
}
upgrades() { grep -c '^upgrade' "$AICP_HELM_STATE/calls.log"; }
has() { grep -qF -- "$2" "$WORK/$1.out" || { cat "$WORK/$1.out"; fail "$1: no '$2' in the output"; }; }

# ---- plan on an empty lab ---------------------------------------------------
run plan plan
expect plan 2
has plan "TASK [Create the cluster when this node has none]"
has plan "TASK [NVIDIA driver]"
has plan "TASK [helm_release trident/trident-operator]"
has plan "TASK [k8s_wait trident/trident-deployments]"
has plan "TASK [storage_class ontap-ai-flexvols]"
has plan "TASK [helm_release airflow/airflow]"
has plan "cluster (SSH)         : would change"
# In order: the nodes, then the operator, its gate, then the rest.
awk '/TASK \[Create the cluster/ { a = NR } /TASK \[helm_release trident\/trident-operator\]/ { b = NR }
     /TASK \[k8s_wait trident\/trident-deployments\]/ { c = NR }
     END { exit !(a && b && c && a < b && b < c) }' "$WORK/plan.out" ||
    { cat "$WORK/plan.out"; fail "plan does not list the layers in order"; }
for h in node01 node02 node03; do
    lab_ssh $h "test ! -e /etc/kubernetes && test ! -s /var/lib/aicp-lab/kubeadm.calls" ||
        fail "plan changed $h"
done
[ ! -e "$ADMIN" ] || fail "plan fetched the kubeconfig"
[ "$(upgrades)" = 0 ] || fail "plan ran helm upgrade"
kubectl --kubeconfig "$KCFG" get storageclass ontap-ai-flexvols >/dev/null 2>&1 &&
    fail "plan made the StorageClass"
echo "ok   plan on an empty lab lists every step in order and changes nothing"

# ---- apply from nothing ------------------------------------------------------
run apply1 apply
expect apply1 2
[ "$(calls node01 init)" = 1 ] || fail "node01: kubeadm init ran $(calls node01 init) times"
for h in node02 node03; do
    [ "$(calls $h join)" = 1 ] || fail "$h did not join once"
    [ "$(calls $h init)" = 0 ] || fail "$h ran kubeadm init"
done
lab_ssh node03 'cat /etc/aicp-lab/nvidia-driver-version' | grep -q '^535\.' ||
    fail "node03 has no 535 driver"
lab_ssh node02 'test ! -e /etc/aicp-lab/nvidia-driver-version' || fail "node02 got a GPU driver"
lab_ssh node03 'grep -q "default_runtime_name = \"nvidia\"" /etc/containerd/config.toml' ||
    fail "node03's containerd does not default to the nvidia runtime"
lab_ssh node02 'grep -q "SystemdCgroup = true" /etc/containerd/config.toml' ||
    fail "node02's containerd is not on systemd cgroups"
lab_ssh node02 'apt-mark showhold' | grep -q '^kubelet$' || fail "kubelet is not held on node02"
[ "$(stat -c %a "$ADMIN")" = 600 ] || fail "the admin kubeconfig is not 0600"
kubectl --kubeconfig "$KCFG" -n kube-system get daemonset nvidia-device-plugin-daemonset >/dev/null ||
    fail "no device plugin DaemonSet"
kubectl --kubeconfig "$KCFG" get storageclass ontap-ai-flexvols >/dev/null || fail "no StorageClass"
[ "$(upgrades)" = 2 ] || fail "helm upgrade ran $(upgrades) times, not 2 (trident-operator, airflow)"
has apply1 "LAYER RECAP"
has apply1 "cluster (SSH)         : changed"
grep -q '^applications (helm)   : ok=[0-9]* changed=[1-9]' "$WORK/apply1.out" ||
    { cat "$WORK/apply1.out"; fail "no applications line in the layer recap"; }
grep -q '^kubernetes            : ok=[0-9]* changed=[1-9]' "$WORK/apply1.out" ||
    { cat "$WORK/apply1.out"; fail "no kubernetes line in the layer recap"; }
echo "ok   apply from nothing: nodes prepared, GPU node driven, init once, joins, API layers"

run apply2 apply
expect apply2 0
[ "$(calls node01 init)" = 1 ] || fail "a second apply ran kubeadm init"
[ "$(upgrades)" = 2 ] || fail "a second apply ran helm upgrade"
has apply2 "cluster (SSH)         : ok (nothing to change)"
echo "ok   a second apply changes nothing"

# ---- a new worker -----------------------------------------------------------
inventory node04
run grow apply
expect grow 2
[ "$(calls node04 join)" = 1 ] || { cat "$WORK/grow.out"; fail "node04 did not join"; }
for h in node02 node03; do
    [ "$(calls $h join)" = 1 ] || fail "$h joined again"
done
lab_ssh node04 'test -f /etc/aicp-node-prep.conf && test -f /etc/kubernetes/kubelet.conf' ||
    fail "node04 was not prepared and joined"
run grow2 apply
expect grow2 0
echo "ok   a worker added to the inventory is prepared and joined, alone"

# ---- removing a node -----------------------------------------------------------
kubectl --kubeconfig "$KCFG" apply --validate=false -f - >/dev/null <<'EOF' || fail "seeding node04's Node"
apiVersion: v1
kind: Node
metadata: {name: node04}
EOF
inventory ""
site node04
run remove apply
expect remove 2
kubectl --kubeconfig "$KCFG" get node node04 >/dev/null 2>&1 && fail "node04's Node is still there"
lab_ssh node04 'test -f /etc/kubernetes/kubelet.conf' || fail "removing node04 touched its host"
run remove2 apply
expect remove2 0
echo "ok   remove_nodes drains and deletes the Node, and leaves its host alone"

# ---- teardown ---------------------------------------------------------------------
run down apply --state absent
expect down 2
kubectl --kubeconfig "$KCFG" get storageclass ontap-ai-flexvols >/dev/null 2>&1 &&
    fail "teardown left the StorageClass"
kubectl --kubeconfig "$KCFG" -n kube-system get daemonset nvidia-device-plugin-daemonset \
    >/dev/null 2>&1 && fail "teardown left the device plugin"
grep -c '^uninstall' "$AICP_HELM_STATE/calls.log" | grep -qx 2 || fail "teardown did not uninstall both releases"
# Dependents first: airflow's release before the StorageClass it needs is
# not a dependency here, but the operator goes after what waits on it.
awk '/TASK \[k8s_wait/ { w = 1 } END { exit w }' "$WORK/down.out" ||
    fail "teardown ran a readiness gate"
for h in node01 node02 node03; do
    lab_ssh $h 'test -f /etc/kubernetes/kubelet.conf || test -f /etc/kubernetes/admin.conf' ||
        fail "teardown touched $h's cluster files"
done
[ "$(calls node01 reset)" = 0 ] || fail "teardown reset node01"
run down2 apply --state absent
expect down2 0
echo "ok   apply --state absent removes the API layer, leaves the nodes; again unchanged"
