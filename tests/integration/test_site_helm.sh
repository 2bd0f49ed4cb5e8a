#!/bin/sh
# A site's helm_releases section (docs/site.md) against the fake Kubernetes
# API server and the helm stand-in (tests/lab/helm: helm 3's documented
# behaviour, releases kept in $AICP_HELM_STATE, calls.log one line a call):
# a namespace, one default StorageClass and two releases, airflow with
# inline values and kubeflow behind requires_default_storage_class.
#   apply 2, apply again 0 with no second upgrade, drift 0;
#   a values change: plan 2 without an upgrade, apply upgrades airflow once;
#   the default-class annotation removed through the API: kubeflow fails
#   with the gate's message while airflow is unaffected.
. "$top_srcdir/tests/integration/lib.sh"

[ -x "$AICP" ] || skip "no aicp binary at $AICP"
"$AICP" plan --help >/dev/null 2>&1 || skip "this aicp has no 'plan' command"

kube_fake_up --crds trident --controller
T=$KDIR
unset KUBECONFIG
export AICP_HELM_STATE="$T/helm-state"
mkdir -p "$AICP_HELM_STATE" "$T/tmp"
: >"$AICP_HELM_STATE/calls.log"
PATH="$top_srcdir/tests/lab/helm:$PATH"
export PATH

cat >"$T/site.yml" <<EOF
site: helm-pod
kubernetes:
  kubeconfig: $KCFG
vars:
  executor: CeleryExecutor
namespaces:
  - airflow
storage_classes:
  - name: ontap-default
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
    values:
      executor: "{{ executor }}"
      web: {service: {type: NodePort}}
    wait: true
    timeout: 600
  - name: kubeflow
    chart: kubeflow/kubeflow
    repo: https://charts.example.com/kubeflow
    version: "1.8.0"
    namespace: kubeflow
    requires_default_storage_class: true
EOF

n=0
# site CMD WANT-RC [ARGS...]: output in $OUT.
site() {
    _cmd=$1 _want=$2
    shift 2
    n=$((n + 1))
    OUT=$T/out.$n
    TMPDIR="$T/tmp" "$AICP" "$_cmd" "$T/site.yml" "$@" >"$OUT" 2>&1
    _rc=$?
    [ "$_rc" = "$_want" ] || { cat "$OUT" >&2; fail "aicp $_cmd $* exited $_rc, not $_want"; }
}
expect() { grep -q -F -e "$1" "$OUT" || { cat "$OUT" >&2; fail "the output does not say: $1"; }; }
expect_not() { ! grep -q -F -e "$1" "$OUT" || { cat "$OUT" >&2; fail "the output says: $1"; }; }
upgrades() { awk -v r="$1" '$1 == "upgrade" && $2 == r {n++} END {print n+0}' "$AICP_HELM_STATE/calls.log"; }

site apply 2
expect "TASK [helm_release airflow/airflow]"
expect "TASK [helm_release kubeflow/kubeflow]"
expect_not "FAILED!"
[ "$(upgrades airflow)" = 1 ] || { cat "$AICP_HELM_STATE/calls.log" >&2; fail "airflow: not one upgrade"; }
[ "$(upgrades kubeflow)" = 1 ] || fail "kubeflow: not one upgrade"
python3 - "$AICP_HELM_STATE/releases/airflow/airflow.json" <<'PY' || fail "airflow's release is not as declared"
import json, sys
r = json.load(open(sys.argv[1]))
s = json.dumps(r)
assert "CeleryExecutor" in s and "NodePort" in s, s
PY

site apply 0
[ "$(upgrades airflow)" = 1 ] || fail "the second apply upgraded airflow"
[ "$(upgrades kubeflow)" = 1 ] || fail "the second apply upgraded kubeflow"
site drift 0
expect "DRIFT: 0 resources drifted"

# ---- a values change ------------------------------------------------------
site plan 2 -e executor=KubernetesExecutor
expect "KubernetesExecutor"
[ "$(upgrades airflow)" = 1 ] || fail "plan called helm upgrade"
site apply 2 -e executor=KubernetesExecutor
[ "$(upgrades airflow)" = 2 ] || fail "the values change did not upgrade airflow once"
[ "$(upgrades kubeflow)" = 1 ] || fail "the values change upgraded kubeflow"
site apply 0 -e executor=KubernetesExecutor

# ---- no default StorageClass: the Kubeflow gate --------------------------
ANN=storageclass.kubernetes.io/is-default-class
if command -v kubectl >/dev/null 2>&1; then
    kubectl --kubeconfig "$KCFG" annotate storageclass ontap-default "$ANN-" >"$T/kubectl.out" 2>&1 ||
        { cat "$T/kubectl.out" >&2; fail "kubectl annotate"; }
else
    python3 - "$KURL" "$T/ca.pem" "$T/secret-inputs/token" <<EOF || fail "removing the annotation"
import ssl, sys, urllib.request
url, ca, tok = sys.argv[1:4]
req = urllib.request.Request(url + "/apis/storage.k8s.io/v1/storageclasses/ontap-default",
    data=b'{"metadata":{"annotations":{"$ANN":null}}}', method="PATCH")
req.add_header("Authorization", "Bearer " + open(tok).read().strip())
req.add_header("Content-Type", "application/merge-patch+json")
urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=20).read()
EOF
fi
site apply 1 --only helm_releases -e executor=CeleryExecutor
expect "Kubeflow needs exactly one default StorageClass; found 0"
[ "$(upgrades airflow)" = 3 ] || fail "airflow was not upgraded next to the failed gate"
[ "$(upgrades kubeflow)" = 1 ] || fail "kubeflow was upgraded without a default StorageClass"
grep -F "helm_release airflow/airflow" -A2 "$OUT" | grep -q "changed:" ||
    { cat "$OUT" >&2; fail "airflow did not run beside the failed gate"; }
echo "ok   site helm_releases"
