#!/bin/sh
# Fidelity of the fake Kubernetes API server (tests/fakes/kube_apiserver.py)
# with the real kubectl: if kubectl behaves against the fake as it does
# against a cluster, aicp's client can trust what it learns from the fake.
# Covers client-side apply (created / unchanged / configured), server-side
# apply with a conflict and --force-conflicts, get -o json of objects and
# lists, the StorageClass table, a CRD kind (TridentBackendConfig) and the
# controller stand-in, immutable fields, a missing namespace, server dry
# runs, a stale replace, Job logs, deletes (objects and namespaces), a
# bearer token that is wrong, a CA that is not trusted, and a 429 that
# kubectl waits out. The token and the Secret data carry the canary
# AICP-CANARY-7f3e9b2c: they live in files under secret-inputs/ in a
# private temp dir (never on a command line) and nothing kubectl prints may
# hold them. Exits 77 when kubectl, python3 or openssl is missing.

. "$(dirname "$0")/lib.sh"

command -v kubectl >/dev/null 2>&1 ||
    skip "no kubectl (install kubectl, or Debian's kubernetes-client) to check the fake against"
command -v python3 >/dev/null 2>&1 || skip "no python3"
command -v openssl >/dev/null 2>&1 || skip "no openssl"

T=$(mktemp -d /tmp/aicp-test-kube-fake-XXXXXX) || fail "mktemp"
chmod 700 "$T"
SRV_PID=
cleanup() {
    exec 3>&- 2>/dev/null
    if [ -n "$SRV_PID" ]; then
        kill "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
    fi
    canary_scan "test_kube_fake-$$" "$T"
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mkdir -p "$T/secret-inputs" "$T/out" "$T/m" || fail "mkdir"

# A CA, a server certificate for localhost and 127.0.0.1 signed by it, and
# a second CA that signed nothing here (for the untrusted case).
ossl() { openssl "$@" >/dev/null 2>&1 || fail "openssl $1"; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/ca.key" -out "$T/ca.pem" -days 2 -subj /CN=aicp-test-ca
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/other-ca.key" -out "$T/other-ca.pem" -days 2 -subj /CN=aicp-other-ca
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/srv.key" -out "$T/srv.csr" -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
ossl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" \
    -set_serial 2 -days 2 -copy_extensions copyall -out "$T/srv.pem"

TOKEN_FILE=$T/secret-inputs/token
(umask 077 && printf 'tok-%s-fake\n' "$CANARY" >"$TOKEN_FILE") || fail "token file"

# The fake runs until fd 3 (its stdin, a FIFO) closes.
mkfifo "$T/ctl" || fail "mkfifo"
python3 "$top_srcdir/tests/fakes/kube_apiserver.py" --cert "$T/srv.pem" --key "$T/srv.key" \
    --token-file "$TOKEN_FILE" --crds trident --controller \
    <"$T/ctl" >"$T/port" 2>"$T/server.err" &
SRV_PID=$!
exec 3>"$T/ctl"
i=0
while ! grep -q '^PORT [0-9]' "$T/port" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || { cat "$T/server.err" >&2; fail "the fake did not print its port"; }
    alive "$SRV_PID" || { cat "$T/server.err" >&2; fail "the fake exited"; }
    sleep 0.1
done
[ "$(wc -l <"$T/port")" -eq 1 ] || fail "the fake printed more than its PORT line"
PORT=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$T/port")
[ -n "$PORT" ] || fail "bad PORT line"

# kubeconfig NAME CA TOKEN-EXPR: a kubeconfig in secret-inputs (it holds
# the token), written by a heredoc so the token is never on an argv.
kubeconfig() {
    (umask 077 && cat >"$T/secret-inputs/$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: https://127.0.0.1:$PORT
    certificate-authority: $2
users:
- name: tester
  user:
    token: $3
contexts:
- name: fake
  context:
    cluster: fake
    user: tester
current-context: fake
EOF
    ) || fail "kubeconfig $1"
}
kubeconfig good "$T/ca.pem" "$(cat "$TOKEN_FILE")"
kubeconfig badtoken "$T/ca.pem" wrong-token
kubeconfig badca "$T/other-ca.pem" "$(cat "$TOKEN_FILE")"

# k NAME ARGS...: kubectl with the good kubeconfig (or $KC), its output in
# $T/out/NAME; returns kubectl's status. A private cache dir keeps
# discovery results of this run out of ~/.kube.
KC=good
k() {
    _n=$1
    shift
    kubectl --kubeconfig "$T/secret-inputs/$KC" --cache-dir "$T/cache" --request-timeout=20s \
        "$@" >"$T/out/$_n" 2>&1
}
# ok NAME ARGS...: k, which must succeed.
ok() {
    k "$@" || { cat "$T/out/$1" >&2; fail "kubectl $*"; }
}
# notok NAME ARGS...: k, which must fail.
notok() {
    ! k "$@" || { cat "$T/out/$1" >&2; fail "kubectl $* succeeded"; }
}
# has NAME TEXT: kubectl's output NAME contains TEXT (a fixed string).
has() {
    grep -q -F -e "$2" "$T/out/$1" || {
        cat "$T/out/$1" >&2
        fail "output of $1 lacks: $2"
    }
}
# json NAME EXPR: evaluates the Python expression EXPR over the JSON output
# NAME (as o); it must be true.
json() {
    python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' \
        "$T/out/$1" "$2" || { cat "$T/out/$1" >&2; fail "$1: not true: $2"; }
}
# fake PATH [JSON]: POSTs JSON to a control endpoint (GET without JSON).
fake() {
    python3 - "$PORT" "$T/ca.pem" "$@" <<'EOF' || fail "control request $3"
import ssl, sys, urllib.request
port, ca, path = sys.argv[1:4]
data = sys.argv[4].encode() if len(sys.argv) > 4 else None
ctx = ssl.create_default_context(cafile=ca)
req = urllib.request.Request("https://127.0.0.1:%s%s" % (port, path), data=data,
                             headers={"Content-Type": "application/json"})
sys.stdout.write(urllib.request.urlopen(req, context=ctx, timeout=10).read().decode())
EOF
}
# wait_for NAME EXPR ARGS...: repeats `kubectl ARGS -o json` until EXPR holds.
wait_for() {
    _n=$1
    _e=$2
    shift 2
    _i=0
    while :; do
        if k "$_n" "$@" -o json &&
            python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' \
                "$T/out/$_n" "$_e" 2>/dev/null; then
            return 0
        fi
        _i=$((_i + 1))
        [ $_i -lt 50 ] || { cat "$T/out/$_n" >&2; fail "$_n: timed out waiting for $_e"; }
        sleep 0.1
    done
}

# kubectl before 1.27 validates manifests with the OpenAPI v2 document, which
# the fake does not serve (docs/fakes.md): it then needs --validate=false,
# as it would against any server without one.
APPLY=apply
minor=$(kubectl version --client -o json 2>/dev/null |
    python3 -c 'import json,sys; print(int("".join(c for c in json.load(sys.stdin)["clientVersion"]["minor"] if c.isdigit())))' 2>/dev/null)
[ -n "$minor" ] && [ "$minor" -lt 27 ] && APPLY="apply --validate=false"

# --- Connection: version, a wrong token, an untrusted CA -----------------
ok version version -o json
json version 'o["serverVersion"]["major"] == "1" and o["serverVersion"]["minor"] == "32"'
KC=badtoken
notok badtoken get namespaces
has badtoken "You must be logged in to the server"
KC=badca
notok badca get namespaces
has badca "certificate signed by unknown authority"
KC=good
ok ns-list get namespaces
has ns-list "default"
has ns-list "Active"

# --- Client-side apply: created, unchanged, configured ----------------------
cat >"$T/m/sc.yaml" <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ontap-flexvol
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: csi.trident.netapp.io
parameters:
  backendType: ontap-nas
reclaimPolicy: Retain
allowVolumeExpansion: true
mountOptions: [nfsvers=3]
EOF
ok csa-1 $APPLY -f "$T/m/sc.yaml"
has csa-1 "storageclass.storage.k8s.io/ontap-flexvol created"
ok csa-2 $APPLY -f "$T/m/sc.yaml"
has csa-2 "storageclass.storage.k8s.io/ontap-flexvol unchanged"
sed 's/allowVolumeExpansion: true/allowVolumeExpansion: false/' "$T/m/sc.yaml" >"$T/m/sc2.yaml"
ok csa-3 $APPLY -f "$T/m/sc2.yaml"
has csa-3 "storageclass.storage.k8s.io/ontap-flexvol configured"
ok csa-4 $APPLY -f "$T/m/sc2.yaml"
has csa-4 "unchanged"
ok sc-json get storageclass ontap-flexvol -o json
json sc-json 'o["kind"] == "StorageClass" and o["allowVolumeExpansion"] is False and o["reclaimPolicy"] == "Retain" and o["volumeBindingMode"] == "Immediate" and "kubectl.kubernetes.io/last-applied-configuration" in o["metadata"]["annotations"] and o["metadata"]["resourceVersion"] and o["metadata"]["uid"]'
ok sc-table get storageclass
has sc-table "ontap-flexvol (default)"
has sc-table "csi.trident.netapp.io"
grep -q 'NAME *PROVISIONER *RECLAIMPOLICY *VOLUMEBINDINGMODE *ALLOWVOLUMEEXPANSION *AGE' \
    "$T/out/sc-table" || { cat "$T/out/sc-table" >&2; fail "storageclass table header"; }

# Immutable parameters: refused as a cluster refuses them.
sed 's/backendType: ontap-nas/backendType: ontap-nas-flexgroup/' "$T/m/sc2.yaml" >"$T/m/sc3.yaml"
notok immutable $APPLY -f "$T/m/sc3.yaml"
has immutable 'The StorageClass "ontap-flexvol" is invalid: parameters: Forbidden: updates to parameters are forbidden.'
ok sc-after get storageclass ontap-flexvol -o json
json sc-after 'o["parameters"] == {"backendType": "ontap-nas"}'

# --- Server-side apply: applied, conflict, forced ----------------------------
cat >"$T/m/cm.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: ssa
  namespace: default
  labels: {app: demo}
data:
  a: "1"
  b: "2"
EOF
ok ssa-1 $APPLY --server-side -f "$T/m/cm.yaml"
has ssa-1 "configmap/ssa serverside-applied"
ok ssa-2 $APPLY --server-side -f "$T/m/cm.yaml"
has ssa-2 "configmap/ssa serverside-applied"
sed 's/a: "1"/a: "9"/' "$T/m/cm.yaml" >"$T/m/cm2.yaml"
notok ssa-conflict $APPLY --server-side --field-manager other -f "$T/m/cm2.yaml"
has ssa-conflict 'Apply failed with 1 conflict: conflict with "kubectl": .data.a'
has ssa-conflict "--force-conflicts"
ok ssa-unchanged get configmap ssa -n default -o json
json ssa-unchanged 'o["data"] == {"a": "1", "b": "2"}'
ok ssa-force $APPLY --server-side --field-manager other --force-conflicts -f "$T/m/cm2.yaml"
ok ssa-mf get configmap ssa -n default -o json --show-managed-fields
json ssa-mf 'o["data"]["a"] == "9" and sorted(m["manager"] for m in o["metadata"]["managedFields"]) == ["kubectl", "other"] and all(m["operation"] == "Apply" for m in o["metadata"]["managedFields"]) and "f:a" not in [m for m in o["metadata"]["managedFields"] if m["manager"] == "kubectl"][0]["fieldsV1"]["f:data"]'
# kubectl stops applying b: other still owns it, so it stays.
grep -v 'b: "2"' "$T/m/cm2.yaml" >"$T/m/cm3.yaml"
ok ssa-3 $APPLY --server-side -f "$T/m/cm3.yaml"
ok ssa-3-get get configmap ssa -n default -o json
json ssa-3-get 'o["data"] == {"a": "9", "b": "2"}'

# A stale replace: the object changed after it was read.
ok stale-read get configmap ssa -n default -o json
ok stale-bump label configmap ssa -n default bumped=yes
notok stale replace -f "$T/out/stale-read"
has stale 'the object has been modified; please apply your changes to the latest version and try again'

# --- kubectl's generators send protobuf: create namespace / secret -----------
ok create-ns create namespace gen
has create-ns "namespace/gen created"
(umask 077 && printf 'pw-%s' "$CANARY" >"$T/secret-inputs/pw") || fail "pw file"
ok create-secret create secret generic gen-cred -n gen --from-file=password="$T/secret-inputs/pw"
has create-secret "secret/gen-cred created"
ok create-secret-get get secret gen-cred -n gen -o 'jsonpath={.data.password}'
python3 -c '
import base64, sys
sys.exit(0 if base64.b64decode(open(sys.argv[1]).read()) == open(sys.argv[2], "rb").read() else 1)
' "$T/out/create-secret-get" "$T/secret-inputs/pw" || fail "kubectl create secret: data"
notok create-again create namespace gen
has create-again 'namespaces "gen" already exists'
ok gen-delete delete namespace gen

# --- get -o json of a list ----------------------------------------------------
ok list get configmaps -n default -o json
json list 'o["kind"] == "List" and [i["metadata"]["name"] for i in o["items"]] == ["ssa"] and o["items"][0]["kind"] == "ConfigMap"'
ok list-sel get configmaps -A -l 'app=demo,bumped in (yes)' -o name
has list-sel "configmap/ssa"
ok list-nosel get configmaps -A -l 'app!=demo' -o name
[ ! -s "$T/out/list-nosel" ] || { cat "$T/out/list-nosel" >&2; fail "label selector app!=demo"; }

# --- Namespaces, a Secret, a CRD kind and the controller stand-in -----------
# The Secret goes in server-side: a client-side apply would copy stringData
# into the last-applied-configuration annotation, as kubectl does anywhere.
(umask 077 && cat >"$T/secret-inputs/secret.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: ontap-cred
  namespace: trident
type: Opaque
stringData:
  username: vsadmin
  password: pw-$CANARY
EOF
cat >"$T/secret-inputs/backend.yaml" <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: trident
---
apiVersion: trident.netapp.io/v1
kind: TridentBackendConfig
metadata:
  name: backend-fg
  namespace: trident
spec:
  version: 1
  storageDriverName: ontap-nas-flexgroup
  backendName: fg-lif1
  managementLIF: 192.168.0.101
  dataLIF: 192.168.1.101
  svm: ai_svm
  credentials:
    name: ontap-cred
EOF
) || fail "backend.yaml"
ok tbc-apply $APPLY -f "$T/secret-inputs/backend.yaml"
has tbc-apply "namespace/trident created"
has tbc-apply "tridentbackendconfig.trident.netapp.io/backend-fg created"
wait_for tbc-unbound 'o["status"]["phase"] == "Unbound" and o["status"]["lastOperationStatus"] == "Failed" and "ontap-cred" in o["status"]["message"]' \
    get tridentbackendconfig backend-fg -n trident
ok secret-apply $APPLY --server-side -f "$T/secret-inputs/secret.yaml"
has secret-apply "secret/ontap-cred serverside-applied"
ok secret-get get secret ontap-cred -n trident -o 'jsonpath={.data.password}{"|"}{.stringData}{"|"}{.type}'
python3 -c '
import base64, sys
got = open(sys.argv[1]).read().split("|")
want = open(sys.argv[2]).read().split("password: ")[1].split()[0]
sys.exit(0 if base64.b64decode(got[0]).decode() == want and got[1:] == ["", "Opaque"] else 1)
' "$T/out/secret-get" "$T/secret-inputs/secret.yaml" || fail "the Secret's stringData did not become data"
wait_for tbc-bound 'o["status"]["phase"] == "Bound" and o["status"]["lastOperationStatus"] == "Success" and o["status"]["backendInfo"]["backendName"] == "fg-lif1" and len(o["status"]["backendInfo"]["backendUUID"]) == 36' \
    get tridentbackendconfig backend-fg -n trident
ok tbc-table get tbc -n trident
has tbc-table "fg-lif1"
has tbc-table "Bound"
ok tbc-again $APPLY -f "$T/secret-inputs/backend.yaml"
has tbc-again "tridentbackendconfig.trident.netapp.io/backend-fg unchanged"
ok crd-list get crd
has crd-list "tridentbackendconfigs.trident.netapp.io"

# A missing namespace; a server dry run that stores nothing.
cat >"$T/m/lost.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: lost
  namespace: nowhere
EOF
notok lost $APPLY -f "$T/m/lost.yaml"
has lost 'namespaces "nowhere" not found'
cat >"$T/m/pvc.yaml" <<'EOF'
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: results
  namespace: trident
spec:
  accessModes: [ReadWriteMany]
  resources:
    requests:
      storage: 1Gi
EOF
ok dry $APPLY --dry-run=server -f "$T/m/pvc.yaml"
has dry "persistentvolumeclaim/results created (server dry run)"
notok dry-get get pvc results -n trident
has dry-get 'persistentvolumeclaims "results" not found'
ok dry-ssa $APPLY --server-side --dry-run=server -f "$T/m/pvc.yaml"
has dry-ssa "(server dry run)"
notok dry-get2 get pvc results -n trident

# A PVC binds (the default class is filled in) and gets a volume.
ok pvc $APPLY -f "$T/m/pvc.yaml"
wait_for pvc-bound 'o["status"]["phase"] == "Bound" and o["spec"]["storageClassName"] == "ontap-flexvol" and o["spec"]["volumeName"].startswith("pvc-")' \
    get pvc results -n trident
ok pv get pv -o json
json pv 'len(o["items"]) == 1 and o["items"][0]["spec"]["claimRef"]["name"] == "results" and o["items"][0]["spec"]["persistentVolumeReclaimPolicy"] == "Retain"'
sed 's/ReadWriteMany/ReadOnlyMany/' "$T/m/pvc.yaml" >"$T/m/pvc2.yaml"
notok pvc-immutable $APPLY -f "$T/m/pvc2.yaml"
has pvc-immutable 'The PersistentVolumeClaim "results" is invalid: spec: Forbidden: spec is immutable after creation'

# --- A Job, its pod and its logs ----------------------------------------------
cat >"$T/m/job.yaml" <<'EOF'
apiVersion: batch/v1
kind: Job
metadata:
  name: train
  namespace: trident
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox:1.36
        command: [sh, -c, "echo epoch 1; echo epoch 2"]
        env:
        - name: FAKE_LOG
          value: "epoch 1\nepoch 2\n"
EOF
ok job $APPLY -f "$T/m/job.yaml"
wait_for job-done 'any(c["type"] == "Complete" and c["status"] == "True" for c in o["status"].get("conditions", [])) and o["status"]["succeeded"] == 1' \
    get job train -n trident
ok logs logs -n trident job/train
printf 'epoch 1\nepoch 2\n' | cmp -s - "$T/out/logs" || { cat "$T/out/logs" >&2; fail "job logs"; }
ok pods get pods -n trident -l job-name=train -o json
json pods 'len(o["items"]) == 1 and o["items"][0]["status"]["phase"] == "Succeeded"'
sed 's/busybox:1.36/busybox:1.37/' "$T/m/job.yaml" >"$T/m/job2.yaml"
notok job-immutable $APPLY -f "$T/m/job2.yaml"
has job-immutable 'The Job "train" is invalid: spec.template: Invalid value:'
has job-immutable 'field is immutable'
ok job-delete delete -f "$T/m/job.yaml"
has job-delete 'job.batch "train" deleted'
ok pods-gone get pods -n trident -o json
json pods-gone 'o["items"] == []'

# --- A 429 that kubectl waits out (Retry-After) ---------------------------------
fake /_fake/fault '{"path_regex": "^/api/v1/namespaces/default/configmaps/ssa$", "method": "GET", "status": 429, "retry_after": 1, "count": 1}' >/dev/null
start=$(date +%s)
ok throttled get configmap ssa -n default -o name
end=$(date +%s)
[ $((end - start)) -ge 1 ] || fail "kubectl did not wait for Retry-After"
fake /_fake/requests >"$T/out/requests"
json requests '[r["status"] for r in o if r["path"] == "/api/v1/namespaces/default/configmaps/ssa" and r["method"] == "GET"][-2:] == [429, 200]'

# --- Deletes: objects from a file, a namespace and its content ----------------
ok sc-delete delete -f "$T/m/sc.yaml"
has sc-delete 'storageclass.storage.k8s.io "ontap-flexvol" deleted'
notok sc-gone get storageclass ontap-flexvol
has sc-gone 'storageclasses.storage.k8s.io "ontap-flexvol" not found'
notok delete-again delete -f "$T/m/sc.yaml"
has delete-again 'storageclasses.storage.k8s.io "ontap-flexvol" not found'
ok ns-delete delete namespace trident
has ns-delete 'namespace "trident" deleted'
i=0
until ! k ns-gone get namespace trident; do
    i=$((i + 1))
    [ $i -lt 50 ] || fail "namespace trident was not removed"
    sleep 0.1
done
ok everything get tridentbackendconfigs,secrets,pvc -A -o json
json everything 'o["items"] == []'

# --- The API contract beyond what kubectl shows (raw HTTP from Python) -------
python3 - "$PORT" "$T/ca.pem" "$TOKEN_FILE" >"$T/out/api" 2>&1 <<'EOF' || { cat "$T/out/api" >&2; fail "API contract checks"; }
import http.client, json, ssl, sys, threading, time

port, ca, token_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
TOKEN = open(token_file).read().strip()
CTX = ssl.create_default_context(cafile=ca)


def call(method, path, body=None, ctype="application/json", token=True, raw=False):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=CTX, timeout=20)
    h = {"Accept": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + TOKEN
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        h["Content-Type"] = ctype
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    if raw:
        return r.status, dict(r.getheaders()), text
    return r.status, dict(r.getheaders()), (json.loads(text) if text else None)


def check(cond, what, got=None):
    if not cond:
        # Messages name the check and the status/reason, never bodies of secrets.
        sys.stderr.write("FAILED: %s\n%s\n" % (what, json.dumps(got, indent=1)[:3000] if got is not None else ""))
        sys.exit(1)


APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
CM = "/api/v1/namespaces/default/configmaps"


def cm(data, **meta):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": dict({"name": "api", "namespace": "default"}, **meta), "data": data}


# Authentication.
st, _, o = call("GET", "/api/v1/namespaces", token=False)
check(st == 401 and o["kind"] == "Status" and o["reason"] == "Unauthorized", "401 without a token", o)

# Discovery.
st, _, o = call("GET", "/apis")
check(st == 200 and o["kind"] == "APIGroupList" and "trident.netapp.io" in [g["name"] for g in o["groups"]], "/apis", o)
st, _, o = call("GET", "/apis/batch/v1")
names = {r["name"]: r for r in o["resources"]}
check(names["jobs"]["namespaced"] and names["jobs"]["kind"] == "Job" and "jobs/status" in names, "/apis/batch/v1", o)
st, _, o = call("GET", "/apis/trident.netapp.io/v1")
check("tridentbackendconfigs/status" in [r["name"] for r in o["resources"]], "TBC status subresource", o)

# Server-side apply: create, no-op, field removal, managed fields.
st, _, o = call("PATCH", CM + "/api?fieldManager=aicp", cm({"a": "1", "k": "v"}), APPLY)
check(st == 201 and o["data"] == {"a": "1", "k": "v"}, "SSA creates", o)
mf = o["metadata"]["managedFields"]
check(len(mf) == 1 and mf[0]["manager"] == "aicp" and mf[0]["operation"] == "Apply"
      and mf[0]["fieldsV1"] == {"f:data": {"f:a": {}, "f:k": {}}}, "managedFields of an apply", mf)
rv = o["metadata"]["resourceVersion"]
st, _, o = call("PATCH", CM + "/api?fieldManager=aicp", cm({"a": "1", "k": "v"}), APPLY)
check(st == 200 and o["metadata"]["resourceVersion"] == rv, "a no-op apply keeps resourceVersion", o)
st, _, o = call("PATCH", CM + "/api?fieldManager=aicp", cm({"a": "1"}), APPLY)
check(o["data"] == {"a": "1"} and o["metadata"]["resourceVersion"] != rv, "a field no longer applied is removed", o)
st, _, o = call("PATCH", CM + "/api", cm({"a": "1"}), APPLY)
check(st == 422 and "fieldManager: Required value" in o["message"], "apply needs a fieldManager", o)
st, _, o = call("PATCH", CM + "/api-dry?fieldManager=aicp&dryRun=All", cm({"a": "1"}, name="api-dry"), APPLY)
check(st == 201 and o["metadata"]["name"] == "api-dry", "dry-run apply answers the object", o)
st, _, o = call("GET", CM + "/api-dry")
check(st == 404 and o["reason"] == "NotFound" and o["message"] == 'configmaps "api-dry" not found', "dry run stores nothing", o)

# Another manager (an Update) takes a field; applying a different value conflicts.
st, _, o = call("PATCH", CM + "/api?fieldManager=other", {"data": {"c": "other"}}, MERGE)
check(st == 200 and o["data"]["c"] == "other", "merge patch", o)
st, _, o = call("PATCH", CM + "/api?fieldManager=aicp", cm({"a": "1", "c": "mine"}), APPLY)
check(st == 409 and o["reason"] == "Conflict" and o["message"].startswith('Apply failed with 1 conflict: conflict with "other" using v1 at ')
      and o["message"].endswith(": .data.c") and o["details"]["causes"][0]["field"] == ".data.c"
      and o["details"]["causes"][0]["reason"] == "FieldManagerConflict", "apply conflict", o)
# As the real server's apply conflict: the details hold the causes only, and
# each cause is {reason, message, field} (StatusCause's type is "reason").
check(list(o["details"]) == ["causes"] and sorted(o["details"]["causes"][0]) == ["field", "message", "reason"]
      and o["details"]["causes"][0]["message"].startswith('conflict with "other" using v1'), "apply conflict's details", o)
st, _, o = call("PATCH", CM + "/api?fieldManager=aicp", cm({"a": "1", "c": "other"}), APPLY)
check(st == 200, "applying the same value co-owns without conflict", o)
st, _, o = call("PATCH", CM + "/api?fieldManager=aicp&force=true", cm({"a": "1", "c": "mine"}), APPLY)
check(st == 200 and o["data"]["c"] == "mine", "force takes the field", o)
other = [m for m in o["metadata"]["managedFields"] if m["manager"] == "other"]
check(not other, "the forced-out manager owns nothing left", o["metadata"]["managedFields"])
st, _, o = call("PATCH", CM + "/api?fieldManager=aicp", cm({"a": "1"}, resourceVersion="1"), APPLY)
check(st == 409 and "the object has been modified" in o["message"], "apply with a stale resourceVersion", o)

# PUT: stale and current resourceVersion; POST of an existing object.
st, _, cur = call("GET", CM + "/api")
stale = json.loads(json.dumps(cur))
stale["data"]["z"] = "1"
call("PATCH", CM + "/api?fieldManager=other", {"metadata": {"labels": {"bump": "1"}}}, MERGE)
st, _, o = call("PUT", CM + "/api?fieldManager=aicp", stale)
check(st == 409 and o["reason"] == "Conflict" and o["message"] == 'Operation cannot be fulfilled on configmaps "api": the object has been modified; please apply your changes to the latest version and try again', "stale PUT", o)
st, _, cur = call("GET", CM + "/api")
cur["data"]["z"] = "1"
st, _, o = call("PUT", CM + "/api?fieldManager=aicp", cur)
check(st == 200 and o["data"]["z"] == "1" and int(o["metadata"]["resourceVersion"]) > int(cur["metadata"]["resourceVersion"]), "PUT", o)
st, _, o = call("POST", CM, cm({}))
check(st == 409 and o["reason"] == "AlreadyExists" and o["message"] == 'configmaps "api" already exists', "POST twice", o)

# A concurrent writer between GET and PUT: 409, then a re-read converges.
call("POST", "/_fake/concurrent_write", {"path": CM + "/api", "patch": {"metadata": {"labels": {"racer": "1"}}}, "count": 1}, token=False)
st, _, cur = call("GET", CM + "/api")
cur["data"]["mine"] = "1"
st, _, o = call("PUT", CM + "/api?fieldManager=aicp", cur)
check(st == 409, "a concurrent write makes the PUT stale", o)
st, _, cur = call("GET", CM + "/api")
cur["data"]["mine"] = "1"
st, _, o = call("PUT", CM + "/api?fieldManager=aicp", cur)
check(st == 200 and o["metadata"]["labels"]["racer"] == "1" and o["data"]["mine"] == "1", "no lost update", o)
# "{n}" counts the concurrent writes: every one changes the object, so a
# writer armed for 2 makes two writes stale in a row.
call("POST", "/_fake/concurrent_write", {"path": CM + "/api", "patch": {"metadata": {"labels": {"racer2": "w{n}"}}}, "count": 2}, token=False)
for i in (1, 2):
    st, _, cur = call("GET", CM + "/api")
    cur["data"]["mine"] = str(i)
    st, _, o = call("PUT", CM + "/api?fieldManager=aicp", cur)
    check(st == 409, "concurrent write %d makes the PUT stale" % i, o)
st, _, cur = call("GET", CM + "/api")
check(cur["metadata"]["labels"]["racer2"] == "w2", "the concurrent writes are numbered", cur["metadata"])

# JSON patch and strategic merge patch.
st, _, o = call("PATCH", CM + "/api", [{"op": "test", "path": "/data/a", "value": "1"}, {"op": "add", "path": "/data/j", "value": "p"}], "application/json-patch+json")
check(st == 200 and o["data"]["j"] == "p", "json patch", o)
st, _, o = call("PATCH", CM + "/api", [{"op": "test", "path": "/data/a", "value": "2"}], "application/json-patch+json")
check(st == 422, "json patch test failure", o)
st, _, o = call("PATCH", CM + "/api", "x", "text/plain")
check(st == 415 and o["reason"] == "UnsupportedMediaType", "unknown patch type", o)

# Faults: 500 once, a delay, a dropped connection, 429 with Retry-After.
call("POST", "/_fake/fault", {"path_regex": "^/api/v1/namespaces/default/configmaps/api$", "status": 500, "count": 1}, token=False)
st, _, o = call("GET", CM + "/api")
check(st == 500 and o["reason"] == "InternalError", "500 fault", o)
st, _, o = call("GET", CM + "/api")
check(st == 200, "the fault is used up", o)
call("POST", "/_fake/fault", {"path_regex": "/configmaps/api$", "method": "GET", "delay": 0.5}, token=False)
t0 = time.time()
st, _, o = call("GET", CM + "/api")
check(st == 200 and time.time() - t0 >= 0.5, "delay fault")
call("POST", "/_fake/fault", {"path_regex": "/configmaps/api$", "drop": True}, token=False)
try:
    call("GET", CM + "/api")
    check(False, "drop fault: the connection was not dropped")
except (http.client.RemoteDisconnected, ConnectionError, ssl.SSLError):
    pass
call("POST", "/_fake/fault", {"path_regex": "/configmaps/api$", "method": "PATCH", "status": 429, "retry_after": 2, "count": 2}, token=False)
for _ in range(2):
    st, h, o = call("PATCH", CM + "/api?fieldManager=aicp", cm({"a": "1"}), APPLY)
    check(st == 429 and h.get("Retry-After") == "2" and o["reason"] == "TooManyRequests" and o["details"]["retryAfterSeconds"] == 2, "429 fault", o)
st, _, o = call("PATCH", CM + "/api?fieldManager=aicp", cm({"a": "1"}), APPLY)
check(st == 200, "after the 429s", o)

# Validation and immutable fields.
st, _, o = call("POST", "/api/v1/namespaces/default/persistentvolumeclaims",
                {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "bad"}, "spec": {}})
check(st == 422 and o["reason"] == "Invalid" and o["message"] == 'PersistentVolumeClaim "bad" is invalid: [spec.accessModes: Required value: at least 1 access mode is required, spec.resources[storage]: Required value]'
      and [c["field"] for c in o["details"]["causes"]] == ["spec.accessModes", "spec.resources[storage]"], "PVC validation", o)
st, _, o = call("POST", CM, cm({}, name="Bad_Name"))
check(st == 422 and 'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain' in o["message"], "name validation", o)
SC = "/apis/storage.k8s.io/v1/storageclasses"
sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "api-sc"},
      "provisioner": "csi.trident.netapp.io", "parameters": {"backendType": "ontap-nas"}}
st, _, o = call("PATCH", SC + "/api-sc?fieldManager=aicp", sc, APPLY)
check(st == 201 and o["reclaimPolicy"] == "Delete" and o["volumeBindingMode"] == "Immediate", "StorageClass defaults", o)
check(o["metadata"]["managedFields"][0]["fieldsV1"] == {"f:parameters": {".": {}, "f:backendType": {}}, "f:provisioner": {}}
      or o["metadata"]["managedFields"][0]["fieldsV1"] == {"f:parameters": {"f:backendType": {}}, "f:provisioner": {}},
      "defaulted fields are not the applier's", o["metadata"]["managedFields"])
sc["parameters"]["backendType"] = "ontap-nas-flexgroup"
sc["reclaimPolicy"] = "Retain"
st, _, o = call("PATCH", SC + "/api-sc?fieldManager=aicp&dryRun=All", sc, APPLY)
check(st == 422 and o["message"] == 'StorageClass.storage.k8s.io "api-sc" is invalid: [parameters: Forbidden: updates to parameters are forbidden., reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.]'
      and o["details"]["group"] == "storage.k8s.io" and o["details"]["kind"] == "StorageClass", "immutable StorageClass fields (dry run too)", o)
st, _, o = call("DELETE", SC + "/api-sc?dryRun=All")
check(st == 200, "dry-run delete", o)
st, _, o = call("GET", SC + "/api-sc")
check(st == 200, "a dry-run delete keeps the object", o)

# Status subresource and generation, on a CRD made here.
crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "widgets.example.com"},
       "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                              "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
st, _, o = call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
check(st == 201, "CRD create", o)
W = "/apis/example.com/v1/namespaces/default/widgets"
st, _, o = call("POST", W, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                            "spec": {"size": 1, "items": [{"name": "a", "v": 1}]}, "status": {"ready": True}})
check(st == 201 and "status" not in o and o["metadata"]["generation"] == 1, "create drops status", o)
st, _, o = call("PATCH", W + "/w/status", {"status": {"ready": True}, "spec": {"size": 9}}, MERGE)
check(st == 200 and o["status"] == {"ready": True} and o["spec"]["size"] == 1 and o["metadata"]["generation"] == 1, "status write", o)
st, _, o = call("PATCH", W + "/w", {"status": {"ready": False}, "spec": {"size": 2}}, MERGE)
check(st == 200 and o["status"] == {"ready": True} and o["spec"]["size"] == 2 and o["metadata"]["generation"] == 2, "main write ignores status", o)
st, _, o = call("PATCH", W + "/w", {"spec": {"size": 3}}, "application/strategic-merge-patch+json")
check(st == 415, "no strategic merge patch for custom resources", o)
st, _, o = call("PATCH", W + "/w?fieldManager=aicp&force=true", {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"items": [{"name": "b"}]}}, APPLY)
check(st == 200 and o["spec"]["items"] == [{"name": "b"}], "custom resource lists are atomic", o)

# Watch: a change made after the watch starts arrives.
st, _, lst = call("GET", CM)
events = []


def watcher():
    c = http.client.HTTPSConnection("127.0.0.1", port, context=CTX, timeout=20)
    c.request("GET", CM + "?watch=true&timeoutSeconds=3&resourceVersion=" + lst["metadata"]["resourceVersion"],
              headers={"Authorization": "Bearer " + TOKEN})
    r = c.getresponse()
    for line in r:
        events.append(json.loads(line))
        if len(events) == 2:
            break
    c.close()


th = threading.Thread(target=watcher)
th.start()
time.sleep(0.3)
call("POST", CM, cm({"x": "1"}, name="watched"))
call("DELETE", CM + "/watched")
th.join(10)
check([(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "watched"), ("DELETED", "watched")], "watch events", events)

# Selectors.
st, _, o = call("GET", CM + "?fieldSelector=metadata.name%3Dapi")
check([i["metadata"]["name"] for i in o["items"]] == ["api"] and "kind" not in o["items"][0], "fieldSelector; list items of built-ins carry no kind", o)
st, _, o = call("GET", CM + "?labelSelector=racer%3D1,bump")
check([i["metadata"]["name"] for i in o["items"]] == ["api"], "labelSelector", o)

# Import PVCs bind only against a Bound backend's UUID (controller stand-in).
NS = "/api/v1/namespaces"
call("POST", NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "imp"}})
call("POST", NS + "/imp/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cred"}, "stringData": {"password": "x"}})
call("POST", "/apis/storage.k8s.io/v1/storageclasses", {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "imp-sc"}, "provisioner": "csi.trident.netapp.io"})
st, _, o = call("PATCH", "/apis/trident.netapp.io/v1/namespaces/imp/tridentbackendconfigs/b?fieldManager=aicp",
                {"apiVersion": "trident.netapp.io/v1", "kind": "TridentBackendConfig", "metadata": {"name": "b"},
                 "spec": {"version": 1, "storageDriverName": "ontap-nas", "managementLIF": "10.0.0.1", "credentials": {"name": "cred"}}}, APPLY)
check(st == 201, "TBC apply", o)
uuid = None
for _ in range(50):
    st, _, o = call("GET", "/apis/trident.netapp.io/v1/namespaces/imp/tridentbackendconfigs/b")
    uuid = (o.get("status") or {}).get("backendInfo", {}).get("backendUUID")
    if uuid:
        break
    time.sleep(0.1)
check(uuid, "the TBC got a backend UUID", o)


def pvc(name, backend_uuid):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "annotations": {"trident.netapp.io/importOriginalName": "pb_fg_all",
                                                       "trident.netapp.io/importBackendUUID": backend_uuid,
                                                       "trident.netapp.io/notManaged": "true"}},
            "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "imp-sc", "resources": {"requests": {"storage": "10Ti"}}}}


call("POST", NS + "/imp/persistentvolumeclaims", pvc("wrong", "00000000-0000-0000-0000-000000000000"))
call("POST", NS + "/imp/persistentvolumeclaims", pvc("right", uuid))
phase = None
for _ in range(50):
    st, _, o = call("GET", NS + "/imp/persistentvolumeclaims/right")
    phase = o["status"]["phase"]
    if phase == "Bound":
        break
    time.sleep(0.1)
check(phase == "Bound" and o["status"]["capacity"]["storage"] == "10Ti", "import PVC binds", o)
st, _, o = call("GET", NS + "/imp/persistentvolumeclaims/wrong")
check(o["status"]["phase"] == "Pending", "an import against an unknown backend UUID stays Pending", o)
st, _, o = call("PATCH", NS + "/imp/persistentvolumeclaims/right", {"spec": {"resources": {"requests": {"storage": "1Ti"}}}}, MERGE)
check(st == 422 and "field can not be less than previous value" in o["message"], "PVC shrink", o)

# A Job deleted without a propagation policy orphans its pod, with a warning.
job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
       "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
           {"name": "c", "image": "busybox", "env": [{"name": "FAKE_FAIL", "value": "1"}, {"name": "FAKE_LOG", "value": "a\nb\nc\n"}]}]}}}}
st, _, o = call("POST", "/apis/batch/v1/namespaces/imp/jobs", job)
check(st == 201 and o["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] == o["metadata"]["uid"], "Job defaults", o)
for _ in range(50):
    st, _, o = call("GET", "/apis/batch/v1/namespaces/imp/jobs/j")
    if o.get("status", {}).get("conditions"):
        break
    time.sleep(0.1)
c = o["status"]["conditions"][0]
check(c["type"] == "Failed" and c["reason"] == "BackoffLimitExceeded" and o["status"]["failed"] == 1, "FAKE_FAIL", o)
st, _, pods = call("GET", NS + "/imp/pods?labelSelector=job-name%3Dj")
pod = pods["items"][0]["metadata"]["name"]
st, _, text = call("GET", NS + "/imp/pods/%s/log?tailLines=2" % pod, raw=True)
check(st == 200 and text == "b\nc\n", "pod log tailLines", text)
st, h, o = call("DELETE", "/apis/batch/v1/namespaces/imp/jobs/j")
check(st == 200 and "child pods are preserved by default" in h.get("Warning", ""), "Job delete warning", h)
st, _, o = call("GET", NS + "/imp/pods/" + pod)
check(st == 200 and "ownerReferences" not in o["metadata"], "orphaned pod", o)

# Namespaces: a terminating one refuses new content, then goes with its content.
st, _, o = call("DELETE", NS + "/imp")
check(st == 200 and o["status"]["phase"] == "Terminating", "namespace delete", o)
st, _, o = call("POST", NS + "/imp/configmaps", cm({}, name="late", namespace="imp"))
check(st == 403 and "because it is being terminated" in o["message"], "create in a terminating namespace", o)
time.sleep(0.6)
st, _, o = call("GET", NS + "/imp/pods/" + pod)
check(st == 404, "the namespace's content is gone", o)
st, _, o = call("DELETE", NS + "/default")
check(st == 403, "default cannot be deleted", o)

# The request log: no credentials, no bodies.
st, _, log = call("GET", "/_fake/requests", token=False)
text = json.dumps(log)
check(TOKEN not in text and "Bearer" not in text and '"body"' not in text, "the request log holds no secrets")
check(any(r["status"] == 429 for r in log) and any(r["status"] is None for r in log), "the log records answers")
print("api checks passed")
EOF

# Nothing kubectl printed may hold the canary (the secret or the token).
if grep -l -F -e "$CANARY" "$T/out/"* "$T/server.err" >&2 2>/dev/null; then
    fail "the canary leaked into kubectl's output or the fake's stderr"
fi
[ ! -s "$T/server.err" ] || { cat "$T/server.err" >&2; fail "the fake wrote to stderr"; }
echo "PASS: kubectl against the fake API server"
exit 0
