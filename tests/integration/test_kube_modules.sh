#!/bin/sh
# The Kubernetes modules against the fake API server (tests/fakes/
# kube_apiserver.py with Trident's CRDs and its controller stand-in), through
# `aicp run`: for every module the create -> again -> different -> delete ->
# delete again cycle, each step run first with --check, which must predict
# the same exit status and task statuses, and followed by a --check that
# must find nothing left to do; then the modules' own cases (PVC import and
# shrink, Trident credentials never shown, Job logs, failures and
# replacement) and the client's faults (429 with Retry-After, a concurrent
# writer, a CA that does not match).
#
# Shell API for tests/integration/kube_modules_c.sh, which this script
# sources once the fake is up (C's modules: k8s, namespace, secret,
# storage_class):
#   $KT            scratch directory, removed at exit (write playbooks here)
#   $SEC           $KT/secret-inputs: files holding secrets (the canary scan
#                  skips it)
#   $KUBECONFIG    exported: a kubeconfig for the fake (token from a file)
#   $KUBE_URL      https://127.0.0.1:PORT of the fake
#   $KUBE_CA       the fake's CA certificate
#   $CANARY        the canary a secret must never leak (lib.sh)
#   kube_step LABEL RC [AICP-ARGS...] <<EOF ... EOF
#                  stdin: the play's tasks as a YAML list at column 0. Runs
#                  the play with --check, then for real, and fails unless
#                  both exit RC and report the same status per task; then
#                  (unless RC is 1) a --check must exit 0. $OUT holds the
#                  real run's output, $REPORT its --json report.
#   kube_run RC [AICP-ARGS...] <<EOF ... EOF
#                  the same play run once (no --check pass); $OUT, $REPORT.
#   kube_api METHOD PATH [JSON]
#                  one request to the fake (with the token); prints the
#                  reply body; exits non-zero on an HTTP error.
#   kube_field PATH DOTTED.FIELD
#                  GETs PATH and prints one field ("" when absent).
#   kube_fault JSON   arms a fault: POST /_fake/fault (see docs/fakes.md)
#   kube_expect_out TEXT   fails unless $OUT contains TEXT (fixed string)
#   kube_ns NAME   creates a namespace directly through the API
. "$top_srcdir/tests/integration/lib.sh"
# `tasks | kube_step ...` runs kube_step in a subshell, where fail only
# ends the subshell: -e ends the script on the pipeline's status too.
set -e

[ -x "$AICP" ] || skip "no aicp binary at $AICP"
kube_fake_up --crds trident --controller
KT=$KDIR
SEC=$KDIR/secret-inputs
KUBE_CA=$KDIR/ca.pem
KUBE_URL=$KURL
PORT=$KPORT
# A second CA that the server does not use, for the TLS refusal case.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$KT/other-ca.key" \
    -out "$KT/other-ca.pem" -days 2 -subj "/CN=aicp-kube-test-other-ca" >/dev/null 2>&1 ||
    fail "openssl req"

write_kubeconfig() { # FILE CA
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {server: "$KUBE_URL", certificate-authority: "$2"}
users:
- name: tester
  user: {tokenFile: "$SEC/token"}
contexts:
- name: fake
  context: {cluster: fake, user: tester, namespace: default}
current-context: fake
EOF
}
write_kubeconfig "$KT/kubeconfig" "$KUBE_CA"
write_kubeconfig "$KT/bad-kubeconfig" "$KT/other-ca.pem"
KUBECONFIG=$KT/kubeconfig
export KUBECONFIG
printf 'localhost ansible_connection=local\n' >"$KT/inventory"

kube_api() { # METHOD PATH [JSON]
    python3 - "$KUBE_URL" "$KUBE_CA" "$SEC/token" "$@" <<'EOF'
import ssl, sys, urllib.request, urllib.error
url, ca, tokfile, method, path = sys.argv[1:6]
body = sys.argv[6].encode() if len(sys.argv) > 6 else None
req = urllib.request.Request(url + path, data=body, method=method)
req.add_header("Authorization", "Bearer " + open(tokfile).read().strip())
if body is not None:
    req.add_header("Content-Type", "application/merge-patch+json" if method == "PATCH"
                   else "application/json")
try:
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=20) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stdout.write(e.read().decode())
    sys.exit(1)
EOF
}

kube_field() { # PATH DOTTED.FIELD
    kube_api GET "$1" | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else (v if isinstance(v, str) else json.dumps(v)))' "$2"
}

kube_fault() { kube_api POST /_fake/fault "$1" >/dev/null || fail "arming fault $1"; }

kube_ns() {
    kube_api POST /api/v1/namespaces "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$1\"}}" \
        >/dev/null || fail "creating namespace $1"
}

kube_expect_out() {
    grep -q -F -e "$1" "$OUT" || { cat "$OUT" >&2; fail "the output does not say: $1"; }
}

# The tasks on stdin become $KT/play.yml.
kube_write_play() {
    {
        printf -- '- hosts: localhost\n  gather_facts: false\n  tasks:\n'
        sed 's/^/    /'
    } >"$KT/play.yml"
}

# kube_same_statuses A.json B.json: the two --json reports give every task
# the same status on every host (missing reports count as empty).
kube_same_statuses() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
def statuses(path):
    try:
        rep = json.load(open(path))
    except Exception:
        return []
    out = []
    for play in rep.get("plays", []):
        for n, task in enumerate(play.get("tasks", [])):
            for h, e in sorted(task.get("hosts", {}).items()):
                st = [x["status"] for x in e] if isinstance(e, list) else e["status"]
                out.append((n, task.get("name"), h, st))
    return out
a, b = statuses(sys.argv[1]), statuses(sys.argv[2])
if a != b:
    sys.stderr.write("--check statuses: %s\nreal statuses:    %s\n" % (a, b))
    sys.exit(1)
EOF
}

# kube_aicp CHECK OUTFILE REPORT [ARGS...]: runs the play; prints its exit status.
kube_aicp() {
    _chk=$1 _o=$2 _r=$3
    shift 3
    rm -f "$_r"
    _x=0
    if [ "$_chk" = check ]; then
        "$AICP" run "$KT/play.yml" -i "$KT/inventory" --json "$_r" --check "$@" >"$_o" 2>&1 || _x=$?
    else
        "$AICP" run "$KT/play.yml" -i "$KT/inventory" --json "$_r" "$@" >"$_o" 2>&1 || _x=$?
    fi
    echo $_x
}

kube_step() { # LABEL RC [ARGS...]
    _label=$1 _want=$2
    shift 2
    kube_write_play
    _crc=$(kube_aicp check "$KT/check.out" "$KT/check.json" "$@")
    OUT=$KT/run.out REPORT=$KT/run.json
    _rc=$(kube_aicp run "$OUT" "$REPORT" "$@")
    if [ "$_rc" != "$_want" ] || [ "$_crc" != "$_rc" ] ||
        ! kube_same_statuses "$KT/check.json" "$REPORT"; then
        echo "---- check run (exit $_crc)" >&2
        cat "$KT/check.out" >&2
        echo "---- real run (exit $_rc)" >&2
        cat "$OUT" >&2
        fail "$_label: exit $_rc (check $_crc), expected $_want with the same statuses"
    fi
    if [ "$_want" != 1 ]; then
        _vrc=$(kube_aicp check "$KT/verify.out" "$KT/verify.json" "$@")
        [ "$_vrc" = 0 ] || { cat "$KT/verify.out" >&2; fail "$_label: a --check after the run still sees changes"; }
    fi
    echo "ok   $_label (exit $_rc)"
}

kube_run() { # RC [ARGS...]
    _want=$1
    shift
    kube_write_play
    OUT=$KT/run.out REPORT=$KT/run.json
    _rc=$(kube_aicp run "$OUT" "$REPORT" "$@")
    [ "$_rc" = "$_want" ] || { cat "$OUT" >&2; fail "exit $_rc, expected $_want"; }
}

now() { python3 -c 'import time; print("%.3f" % time.time())'; }

kube_ns ml
kube_ns trident
for sc in ontap-ai-flexvols-retain ontap-ai-flexgroups-iface1; do
    kube_api POST /apis/storage.k8s.io/v1/storageclasses \
        "{\"apiVersion\":\"storage.k8s.io/v1\",\"kind\":\"StorageClass\",\"metadata\":{\"name\":\"$sc\"},\"provisioner\":\"csi.trident.netapp.io\",\"allowVolumeExpansion\":true}" \
        >/dev/null || fail "creating StorageClass $sc"
done

# ---- trident_backend -------------------------------------------------------
printf 'ontap_password: "%s"\n' "$CANARY" >"$SEC/vars.yml"
tb() { # extra args for the backend task
    cat <<EOF
- name: backend
  trident_backend:
    name: fg-iface1
    driver: ontap-nas-flexgroup
    management_lif: 10.61.218.100
    data_lif: 192.168.11.11
    svm: ontapai_nfs
    username: admin
    password: "{{ ontap_password }}"
    $1
EOF
}
tb "limit_volume_size: 50Ti" | kube_step "trident_backend create" 2 -e "@$SEC/vars.yml"
tb "limit_volume_size: 50Ti" | kube_step "trident_backend again" 0 -e "@$SEC/vars.yml"
tb "limit_volume_size: 80Ti" | kube_step "trident_backend different" 2 -e "@$SEC/vars.yml"
[ "$(kube_field /apis/trident.netapp.io/v1/namespaces/trident/tridentbackendconfigs/fg-iface1 spec.limitVolumeSize)" = 80Ti ] ||
    fail "trident_backend: spec.limitVolumeSize is not 80Ti"
kube_step "trident_backend delete" 2 <<'EOF'
- trident_backend: {name: fg-iface1, state: absent}
EOF
kube_step "trident_backend delete again" 0 <<'EOF'
- trident_backend: {name: fg-iface1, state: absent}
EOF
if kube_api GET /api/v1/namespaces/trident/secrets/fg-iface1-credentials >/dev/null; then
    fail "trident_backend absent left the credentials Secret"
fi
# Trident fails a backend whose credentials Secret is missing: the task
# fails with Trident's message, and still says it changed something (the
# config was written), as a command that ran and failed.
kube_run 1 <<'EOF'
- trident_backend:
    name: fg-nocred
    driver: ontap-nas
    management_lif: 10.61.218.100
    svm: ontapai_nfs
    credentials_secret: no-such-secret
    wait_timeout: 20
EOF
kube_expect_out "credentials secret 'no-such-secret' not found"
kube_expect_out '"changed": true'
kube_run 2 <<'EOF'
- trident_backend: {name: fg-nocred, state: absent}
EOF

# The password never shows: not at -vvv, not in --diff, not in --json, not
# base64-encoded either; a changed password is reported as a change.
B64=$(printf '%s' "$CANARY" | base64)
{ tb "limit_volume_size: 50Ti"; printf '  register: be\n- debug: {var: be}\n'; } |
    kube_run 2 -e "@$SEC/vars.yml" -vvv --diff
kube_expect_out backend_uuid
for f in "$OUT" "$REPORT"; do
    if grep -q -F -e "$CANARY" -e "$B64" "$f"; then fail "the password leaked into $f"; fi
done
printf 'ontap_password: "%s-rotated"\n' "$CANARY" >"$SEC/vars2.yml"
tb "limit_volume_size: 50Ti" | kube_step "trident_backend new password" 2 -e "@$SEC/vars2.yml" -vvv --diff
for f in "$OUT" "$REPORT" "$KT/check.out" "$KT/check.json"; do
    if grep -q -F -e "$CANARY" -e "$B64" "$f"; then fail "the password leaked into $f"; fi
done
UUID=$(kube_field /apis/trident.netapp.io/v1/namespaces/trident/tridentbackendconfigs/fg-iface1 status.backendInfo.backendUUID)
[ -n "$UUID" ] || fail "the controller gave fg-iface1 no backend UUID"
# Only the Secret's values are hidden: a change of the config itself is
# shown field by field, old and new value.
tb "limit_volume_size: 50Ti" | sed 's/192.168.11.11/192.168.11.12/' |
    kube_step "trident_backend new data LIF" 2 -e "@$SEC/vars2.yml" --diff
kube_expect_out "spec.dataLIF"
kube_expect_out "192.168.11.12"
! grep -q -F "diff hidden" "$OUT" || { cat "$OUT" >&2; fail "trident_backend hides a data LIF change"; }
for f in "$OUT" "$REPORT" "$KT/check.out" "$KT/check.json"; do
    if grep -q -F -e "$CANARY" -e "$B64" "$f"; then fail "the password leaked into $f"; fi
done

# ---- pvc -------------------------------------------------------------------
pvc() { # SIZE [extra]
    cat <<EOF
- pvc:
    name: results
    namespace: ml
    size: $1
    access_modes: [ReadWriteMany]
    storage_class: ontap-ai-flexvols-retain
    wait_timeout: 20
    $2
EOF
}
pvc 1Ti | kube_step "pvc create" 2
pvc 1Ti | kube_step "pvc again" 0
pvc 2Ti | kube_step "pvc different (grow)" 2
{ pvc 2Ti; printf '  register: r\n- assert: {that: ["r.phase == \x27Bound\x27", "r.volume_name"]}\n'; } |
    kube_run 0
pvc 1Ti | kube_step "pvc shrink refused" 1
kube_expect_out "volumes cannot shrink"
pvc 2Ti "storage_class: other-class" | kube_step "pvc immutable class without replace" 1
kube_expect_out "replace"
kube_step "pvc delete" 2 <<'EOF'
- pvc: {name: results, namespace: ml, state: absent}
EOF
kube_step "pvc delete again" 0 <<'EOF'
- pvc: {name: results, namespace: ml, state: absent}
EOF

# Import: the backend UUID comes from the Bound TridentBackendConfig.
imp() { # NAME BACKEND
    cat <<EOF
- pvc:
    name: $1
    namespace: ml
    size: 10Ti
    access_modes: [ReadOnlyMany]
    storage_class: ontap-ai-flexgroups-iface1
    import_volume: pb_fg_all
    import_backend: $2
    not_managed: true
    import_no_rename: true
    wait_timeout: 20
EOF
}
imp pb-fg-all-iface1 fg-iface1 | kube_step "pvc import" 2
A=/api/v1/namespaces/ml/persistentvolumeclaims/pb-fg-all-iface1
[ "$(kube_field $A metadata.annotations | python3 -c 'import json,sys; print(json.load(sys.stdin)["trident.netapp.io/importBackendUUID"])')" = "$UUID" ] ||
    fail "pvc import: importBackendUUID is not the backend's UUID $UUID"
kube_field $A metadata.annotations | grep -q '"trident.netapp.io/importOriginalName": "pb_fg_all"' ||
    fail "pvc import: no importOriginalName annotation"
imp pb-fg-all-iface1 fg-iface1 | kube_step "pvc import again" 0
imp pb-x nosuch | kube_step "pvc import from a missing backend" 1
kube_expect_out "does not exist"
# A config whose credentials Secret is missing: the controller leaves it Unbound.
kube_api POST /apis/trident.netapp.io/v1/namespaces/trident/tridentbackendconfigs \
    '{"apiVersion":"trident.netapp.io/v1","kind":"TridentBackendConfig","metadata":{"name":"unbound"},"spec":{"version":1,"storageDriverName":"ontap-nas","managementLIF":"10.0.0.1","credentials":{"name":"missing"}}}' \
    >/dev/null || fail "creating the unbound TridentBackendConfig"
sleep 0.5
imp pb-y unbound | kube_step "pvc import from an unbound backend" 1
kube_expect_out "not Bound yet"

# ---- k8s_job ---------------------------------------------------------------
job() { # NAME ENV-YAML [extra]
    cat <<EOF
- name: train
  k8s_job:
    name: $1
    namespace: ml
    image: nvcr.io/nvidia/tensorflow:21.03-tf1-py3
    command: [python, train.py]
    resources: {limits: {nvidia.com/gpu: 1}}
    volumes: [{name: results, pvc: results, mount_path: /results}]
    env: $2
    wait_timeout: 30
    $3
  register: j
- debug: {var: j.logs}
EOF
}
job train '{FAKE_LOG: "epoch 1 images/sec 6123\n"}' | kube_step "k8s_job create" 2
kube_expect_out "images/sec 6123"
job train '{FAKE_LOG: "epoch 1 images/sec 6123\n"}' | kube_step "k8s_job again" 0
kube_expect_out "images/sec 6123"
job train '{FAKE_LOG: "epoch 2\n"}' | kube_step "k8s_job changed without replace" 1
kube_expect_out "must be replaced"
job train '{FAKE_LOG: "epoch 2 replaced\n"}' "replace: true" | kube_step "k8s_job changed with replace" 2
kube_expect_out "epoch 2 replaced"
# Check mode cannot foresee a failure: the first run alone; the re-run
# fails the same way in both modes.
job bad '{FAKE_FAIL: "1", FAKE_LOG: "CUDA error: out of memory\n"}' | kube_run 1
kube_expect_out "BackoffLimitExceeded"
kube_expect_out "CUDA error: out of memory"
job bad '{FAKE_FAIL: "1", FAKE_LOG: "CUDA error: out of memory\n"}' | kube_step "k8s_job failed again" 1
kube_expect_out "BackoffLimitExceeded"
kube_step "k8s_job delete" 2 <<'EOF'
- k8s_job: {name: train, namespace: ml, state: absent}
EOF
kube_step "k8s_job delete again" 0 <<'EOF'
- k8s_job: {name: train, namespace: ml, state: absent}
EOF
if kube_api GET "/api/v1/namespaces/ml/pods?labelSelector=job-name%3Dtrain" | grep -q '"name": *"train-'; then
    fail "k8s_job absent left the Job's pods"
fi

# ---- helper C's modules ----------------------------------------------------
if [ -f "$top_srcdir/tests/integration/kube_modules_c.sh" ]; then
    . "$top_srcdir/tests/integration/kube_modules_c.sh"
fi

# ---- faults ----------------------------------------------------------------
# 429 with Retry-After: 1 on the first write: at least a second, then success.
kube_fault '{"path_regex": "/persistentvolumeclaims/slow", "method": "PATCH", "status": 429, "retry_after": 1, "count": 1}'
t0=$(now)
kube_run 2 <<'EOF'
- pvc: {name: slow, namespace: ml, size: 1Gi, storage_class: ontap-ai-flexvols-retain, wait_timeout: 20}
EOF
t1=$(now)
python3 -c 'import sys; sys.exit(0 if float(sys.argv[2]) - float(sys.argv[1]) >= 1.0 else 1)' "$t0" "$t1" ||
    fail "a 429 with Retry-After: 1 was retried after less than a second"

# Another manager writes a label between our GET and our apply: server-side
# apply carries no resourceVersion and merges, so there is no 409 here (the
# retry of stale writes is exercised by the default-class demotion in
# kube_modules_c.sh); what this asserts is that neither label is lost.
kube_api POST /_fake/concurrent_write \
    '{"path": "/api/v1/namespaces/ml/persistentvolumeclaims/slow", "patch": {"metadata": {"labels": {"other": "kept"}}}, "count": 2}' \
    >/dev/null || fail "arming the concurrent writer"
kube_run 2 <<'EOF'
- pvc: {name: slow, namespace: ml, size: 1Gi, storage_class: ontap-ai-flexvols-retain, wait_timeout: 20, labels: {ours: "yes"}}
EOF
S=/api/v1/namespaces/ml/persistentvolumeclaims/slow
[ "$(kube_field $S metadata.labels.other)" = kept ] || fail "the other manager's label was lost"
[ "$(kube_field $S metadata.labels.ours)" = yes ] || fail "our label was not applied"
kube_run 0 <<'EOF'
- pvc: {name: slow, namespace: ml, size: 1Gi, storage_class: ontap-ai-flexvols-retain, wait_timeout: 20, labels: {ours: "yes"}}
EOF

# A CA that did not sign the server's certificate: refused, saying why.
KUBECONFIG=$KT/bad-kubeconfig
kube_run 1 <<'EOF'
- pvc: {name: slow, namespace: ml, size: 1Gi, storage_class: ontap-ai-flexvols-retain, wait_timeout: 20}
EOF
KUBECONFIG=$KT/kubeconfig
grep -q -i -e certificate -e tls -e ssl "$OUT" || { cat "$OUT" >&2; fail "the TLS failure does not say why"; }

for f in "$KT"/*.out "$KT"/*.json; do
    if [ -f "$f" ] && grep -q -F -e "$CANARY" "$f"; then fail "the canary leaked into $f"; fi
done
echo "all Kubernetes module tests passed"
