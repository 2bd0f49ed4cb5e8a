#!/bin/sh
# The k8s_wait module against the fake API server with its controller
# stand-in (which makes Deployments, StatefulSets and DaemonSets ready a
# moment after they are written, except those annotated
# fake.aicp.io/never-ready, and runs Jobs), through `aicp run`: waits that
# succeed (named, a list, a label selector, the whole namespace, an object
# created while waiting, every kind), timeouts that name what is not ready,
# a failed Job that fails at once, a URL that answers 200, 503 for a while,
# 503 for good, or with a certificate from a CA that is not given, and check
# mode, which reads once and never waits or fails for readiness. The
# module never writes: every run is "changed": false and no object's
# resourceVersion moves.
. "$top_srcdir/tests/integration/lib.sh"
set -e

[ -x "$AICP" ] || skip "no aicp binary at $AICP"
kube_fake_up --controller
T=$KDIR
KUBECONFIG=$KDIR/kubeconfig
export KUBECONFIG
printf 'localhost ansible_connection=local\n' >"$T/inventory"

# A second CA that signed nothing the servers use.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/other-ca.key" \
    -out "$T/other-ca.pem" -days 2 -subj "/CN=aicp-wait-test-other-ca" >/dev/null 2>&1 ||
    fail "openssl req"

# A small HTTPS server for the url checks, with the fake's certificate
# (CA $T/ca.pem): /health answers 200, /down 503 for good, /warming 503
# twice and then 200. Its config holds no secret, so it is a file.
cat >"$T/web.json" <<EOF
{"cert": "$T/server.pem", "key": "$T/server.key",
 "routes": [
  {"method": "GET", "path": "/health", "responses": [{"status": 200, "body": "ok"}]},
  {"method": "GET", "path": "/down", "responses": [{"status": 503, "body": "starting"}]},
  {"method": "GET", "path": "/warming", "responses": [
     {"status": 503, "body": "starting"}, {"status": 503, "body": "starting"},
     {"status": 200, "body": "ok"}]}]}
EOF
python3 "$top_srcdir/tests/fakes/https_server.py" --config "$T/web.json" >"$T/web.port" \
    2>"$T/web.err" &
WEB_PID=$!
trap 'kill "$WEB_PID" 2>/dev/null; wait "$WEB_PID" 2>/dev/null; kube_fake_down' EXIT
i=0
while [ ! -s "$T/web.port" ]; do
    i=$((i + 1))
    [ $i -lt 100 ] && kill -0 "$WEB_PID" 2>/dev/null || { cat "$T/web.err" >&2; fail "web server"; }
    sleep 0.1
done
WEB="https://localhost:$(head -n 1 "$T/web.port")"

kube_api() { # METHOD PATH [JSON]: one request to the fake; prints the body
    python3 - "$KURL" "$T/ca.pem" "$T/secret-inputs/token" "$@" <<'EOF'
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

ns() {
    kube_api POST /api/v1/namespaces \
        "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$1\"}}" >/dev/null ||
        fail "creating namespace $1"
}

# workload KIND NS NAME APP [ANNOTATIONS-JSON]: a Deployment, StatefulSet
# or DaemonSet with label app=APP.
workload() {
    _plural=$(echo "$1" | tr 'A-Z' 'a-z')s
    kube_api POST "/apis/apps/v1/namespaces/$2/$_plural" "{\"apiVersion\":\"apps/v1\",
        \"kind\":\"$1\",\"metadata\":{\"name\":\"$3\",\"labels\":{\"app\":\"$4\"},
        \"annotations\":${5:-{\}}},\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"$4\"}},
        \"template\":{\"metadata\":{\"labels\":{\"app\":\"$4\"}},
        \"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"nginx:1.25\"}]}}}}" >/dev/null ||
        fail "creating $1 $2/$3"
}

pod() { # NS NAME [ANNOTATIONS-JSON]
    kube_api POST "/api/v1/namespaces/$1/pods" "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",
        \"metadata\":{\"name\":\"$2\",\"labels\":{\"app\":\"$2\"},
        \"annotations\":${3:-{\}}},
        \"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"nginx:1.25\"}]}}" >/dev/null ||
        fail "creating pod $1/$2"
}

job() { # NS NAME FAIL(0|1)
    kube_api POST "/apis/batch/v1/namespaces/$1/jobs" "{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",
        \"metadata\":{\"name\":\"$2\"},\"spec\":{\"backoffLimit\":0,\"template\":{\"spec\":{
        \"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"c\",\"image\":\"busybox\",
        \"env\":[{\"name\":\"FAKE_FAIL\",\"value\":\"$3\"}]}]}}}}" >/dev/null ||
        fail "creating job $1/$2"
}

# wait_play RC [AICP-ARGS...] <<EOF: runs one k8s_wait task (its arguments
# on stdin, YAML at column 0) registered as w, and fails unless aicp exits
# RC; $OUT is the output, $REPORT the --json report, $RES the registered
# result (JSON) when the task did not fail.
wait_play() {
    _want=$1
    shift
    {
        printf -- '- hosts: localhost\n  gather_facts: false\n  tasks:\n'
        printf -- '    - k8s_wait:\n'
        sed 's/^/        /'
        printf -- '      register: w\n'
        printf -- '    - copy: {content: "{{ w | to_json }}", dest: "%s"}\n' "$T/res.json"
        printf -- '      check_mode: false\n'
    } >"$T/play.yml"
    OUT=$T/out REPORT=$T/report.json RES=$T/res.json
    rm -f "$REPORT" "$RES"
    _rc=0
    "$AICP" run "$T/play.yml" -i "$T/inventory" --json "$REPORT" "$@" >"$OUT" 2>&1 || _rc=$?
    # The copy task (check_mode: false: it runs in --check too) writes a
    # file: exit 2 (changed) is the module's 0.
    [ "$_rc" = 2 ] && [ -f "$RES" ] && _rc=0
    [ "$_rc" = "$_want" ] || { cat "$OUT" >&2; fail "exit $_rc, expected $_want"; }
    # k8s_wait itself never reports a change.
    python3 - "$REPORT" <<'EOF' || { cat "$OUT" >&2; fail "k8s_wait reported a change"; }
import json, sys
rep = json.load(open(sys.argv[1]))
for t in rep["plays"][0]["tasks"]:
    if t["name"] == "k8s_wait":
        for h in t["hosts"].values():
            assert h["changed"] is False and h["status"] in ("ok", "failed"), h
EOF
}

expect_out() { grep -q -F -e "$1" "$OUT" || { cat "$OUT" >&2; fail "the output does not say: $1"; }; }

# res_is PY-EXPR: the registered result r satisfies the expression.
res_is() {
    python3 - "$RES" "$1" <<'EOF' || { cat "$RES" >&2; echo >&2; fail "result: not $1"; }
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2], {"r": r}) else 1)
EOF
}

now() { python3 -c 'import time; print("%.3f" % time.time())'; }
took_less() { # START SECONDS
    python3 -c 'import sys, time; sys.exit(0 if time.time() - float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$1" "$2"
}

rv() { # PATH: the object's resourceVersion
    kube_api GET "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["metadata"]["resourceVersion"])'
}

ns air
ns broken
ns empty

# ---- Deployments -------------------------------------------------------------
# web becomes available after 1.5 s: the task has to wait for it.
workload Deployment air web web '{"fake.aicp.io/ready-delay":"1.5"}'
workload Deployment air sched sched
t0=$(now)
wait_play 0 <<'EOF'
namespace: air
name: web
timeout: 30
interval: 0.2
EOF
res_is 'r["ready"] == ["Deployment/air/web"] and r["changed"] is False'
took_less "$t0" 25 || fail "the wait for web took too long"
echo "ok   Deployment by name"

wait_play 0 <<'EOF'
namespace: air
names: [web, sched]
timeout: 30
EOF
res_is 'sorted(r["ready"]) == ["Deployment/air/sched", "Deployment/air/web"]'
echo "ok   Deployments by names"

wait_play 0 <<'EOF'
kind: Deployment
namespace: air
timeout: 30
EOF
res_is 'sorted(r["ready"]) == ["Deployment/air/sched", "Deployment/air/web"]'
echo "ok   every Deployment in the namespace"

# ---- label_selector ------------------------------------------------------------
wait_play 0 <<'EOF'
namespace: air
label_selector: app=sched
timeout: 30
EOF
res_is 'r["ready"] == ["Deployment/air/sched"]'
wait_play 0 <<'EOF'
namespace: air
label_selector: app in (web, sched)
timeout: 30
EOF
res_is 'sorted(r["ready"]) == ["Deployment/air/sched", "Deployment/air/web"]'
wait_play 0 <<'EOF'
namespace: air
label_selector: app=nothing
allow_none: true
EOF
res_is 'r["ready"] == []'
wait_play 1 <<'EOF'
namespace: air
label_selector: app=nothing
timeout: 1
interval: 0.3
EOF
expect_out "timed out after 1 s: no Deployment in namespace air matches app=nothing"
wait_play 1 <<'EOF'
namespace: empty
timeout: 1
interval: 0.3
EOF
expect_out "no Deployment in namespace empty"
echo "ok   label_selector, allow_none, nothing matching"

# ---- an object that appears while the task waits ------------------------------
(sleep 1.5 && workload Deployment air late late) &
LATE=$!
wait_play 0 <<'EOF'
namespace: air
name: late
timeout: 30
interval: 0.3
EOF
wait "$LATE" || fail "creating the late Deployment"
res_is 'r["ready"] == ["Deployment/air/late"]'
echo "ok   an object created during the wait"

# ---- never ready: a timeout naming it ------------------------------------------
workload Deployment broken stuck stuck '{"fake.aicp.io/never-ready":"true"}'
workload Deployment broken fine fine
t0=$(now)
wait_play 1 <<'EOF'
namespace: broken
timeout: 2
interval: 0.5
EOF
expect_out "timed out after 2 s: deployment broken/stuck: 0/1 available"
expect_out "condition Available is False (MinimumReplicasUnavailable"
grep -q "deployment broken/fine" "$OUT" && { cat "$OUT" >&2; fail "the timeout names a ready Deployment"; }
took_less "$t0" 15 || fail "the timeout of 2 s took much longer"
wait_play 1 <<'EOF'
namespace: broken
names: [fine, stuck, ghost]
timeout: 1
interval: 0.3
EOF
expect_out "deployment broken/stuck: 0/1 available"
expect_out "deployment broken/ghost: not found"
echo "ok   a never-ready Deployment times out, named with why"

# ---- the other kinds -------------------------------------------------------------
workload StatefulSet air db db
workload DaemonSet air agent agent
wait_play 0 <<'EOF'
kind: StatefulSet
namespace: air
name: db
timeout: 30
EOF
res_is 'r["ready"] == ["StatefulSet/air/db"]'
wait_play 0 <<'EOF'
kind: DaemonSet
namespace: air
name: agent
timeout: 30
EOF
res_is 'r["ready"] == ["DaemonSet/air/agent"]'
workload DaemonSet broken nodeagent nodeagent '{"fake.aicp.io/never-ready":"true"}'
wait_play 1 <<'EOF'
kind: DaemonSet
namespace: broken
name: nodeagent
timeout: 1
interval: 0.3
EOF
expect_out "daemonset broken/nodeagent: 0/1 ready"
echo "ok   StatefulSet, DaemonSet"

# Pods: the fake's kubelet stand-in makes a running pod Ready, unless it
# is annotated never-ready (a readiness probe that keeps failing).
pod air p1
pod air p2 '{"fake.aicp.io/never-ready":"true"}'
wait_play 0 <<'EOF'
kind: Pod
namespace: air
name: p1
timeout: 30
EOF
res_is 'r["ready"] == ["Pod/air/p1"]'
wait_play 1 <<'EOF'
kind: Pod
namespace: air
label_selector: app=p2
timeout: 1
interval: 0.3
EOF
expect_out "pod air/p2: phase"
expect_out "condition Ready is False (ContainersNotReady"
echo "ok   Pod Ready"

job air done 0
job air bad 1
wait_play 0 <<'EOF'
kind: Job
namespace: air
name: done
timeout: 30
EOF
res_is 'r["ready"] == ["Job/air/done"]'
t0=$(now)
wait_play 1 <<'EOF'
kind: Job
namespace: air
name: bad
timeout: 60
interval: 0.3
EOF
expect_out "job air/bad: condition Failed is True"
took_less "$t0" 30 || fail "a failed Job was waited for until the timeout"
echo "ok   Job Complete, a failed Job fails at once"

# A condition of one's own choosing.
wait_play 0 <<'EOF'
namespace: air
name: web
condition: Progressing
EOF
echo "ok   condition"

# ---- url ----------------------------------------------------------------------
printf 'url_ca: "%s"\nother_ca: "%s"\nweb: "%s"\n' "$T/ca.pem" "$T/other-ca.pem" "$WEB" >"$T/urlvars.yml"
wait_play 0 -e "@$T/urlvars.yml" <<'EOF'
namespace: air
name: web
url: "{{ web }}/health"
ca_file: "{{ url_ca }}"
timeout: 30
EOF
res_is 'r["url_status"] == 200'
wait_play 0 -e "@$T/urlvars.yml" <<'EOF'
namespace: air
name: web
url: "{{ web }}/warming"
ca_file: "{{ url_ca }}"
timeout: 30
interval: 0.2
EOF
res_is 'r["url_status"] == 200'
wait_play 1 -e "@$T/urlvars.yml" <<'EOF'
namespace: air
name: web
url: "{{ web }}/down"
ca_file: "{{ url_ca }}"
timeout: 2
interval: 0.3
EOF
expect_out "timed out after 2 s waiting for the url to answer"
expect_out "HTTP 503"
wait_play 0 -e "@$T/urlvars.yml" <<'EOF'
namespace: air
name: web
url: "{{ web }}/down"
ca_file: "{{ url_ca }}"
status_code: [200, 503]
EOF
res_is 'r["url_status"] == 503'
echo "ok   url: 200, 503 then 200, 503 until the timeout, status_code"

# TLS: a CA that did not sign the server's certificate, and the system's
# store, refuse it; validate_certs: false accepts it with a warning.
wait_play 1 -e "@$T/urlvars.yml" <<'EOF'
namespace: air
name: web
url: "{{ web }}/health"
ca_file: "{{ other_ca }}"
timeout: 1
interval: 0.3
EOF
expect_out "TLS certificate was not trusted"
wait_play 1 -e "@$T/urlvars.yml" <<'EOF'
namespace: air
name: web
url: "{{ web }}/health"
timeout: 1
interval: 0.3
EOF
expect_out "TLS certificate was not trusted"
wait_play 0 -e "@$T/urlvars.yml" <<'EOF'
namespace: air
name: web
url: "{{ web }}/health"
validate_certs: false
EOF
res_is 'r["url_status"] == 200'
expect_out "[WARNING]"
echo "ok   url: TLS verified by default, validate_certs: false warns"

# ---- check mode -----------------------------------------------------------------
# It reads once: what is missing or not ready is ok with a message, at once.
t0=$(now)
wait_play 0 --check <<'EOF'
namespace: air
names: [web, future]
timeout: 60
EOF
took_less "$t0" 20 || fail "check mode waited"
expect_out "check mode: not ready yet (a real run waits up to 60 s): deployment air/future: not found"
res_is 'r["ready"] == ["Deployment/air/web"] and r["not_ready"][0]["object"] == "Deployment/air/future"'
t0=$(now)
wait_play 0 --check -e "@$T/urlvars.yml" <<'EOF'
namespace: broken
name: stuck
url: "{{ web }}/health"
ca_file: "{{ url_ca }}"
timeout: 60
EOF
took_less "$t0" 20 || fail "check mode waited"
expect_out "deployment broken/stuck: 0/1 available"
res_is 'r["url_status"] is None'
wait_play 0 --check -e "@$T/urlvars.yml" <<'EOF'
namespace: air
name: web
url: "{{ web }}/down"
ca_file: "{{ url_ca }}"
timeout: 60
EOF
res_is 'r["url_status"] == 503 and "HTTP 503" in r["url_error"]'
# A bad argument still fails in check mode.
wait_play 1 --check <<'EOF'
namespace: air
name: web
label_selector: app=web
EOF
expect_out "mutually exclusive"
echo "ok   check mode reads once and reports"

# ---- read-only -------------------------------------------------------------------
before=$(rv /apis/apps/v1/namespaces/air/deployments/web)
wait_play 0 <<'EOF'
namespace: air
timeout: 30
EOF
[ "$(rv /apis/apps/v1/namespaces/air/deployments/web)" = "$before" ] ||
    fail "k8s_wait changed Deployment air/web"
echo "ok   nothing written"
