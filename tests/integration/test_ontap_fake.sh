#!/bin/sh
# Fidelity of the fake ONTAP REST server (tests/fakes/ontap_server.py).
# Part 1 talks raw HTTP to it (python3's urllib, verifying TLS with the
# test's CA): 401 without or with wrong credentials, records/num_records,
# fields=, query filters, a 202 job when return_timeout=0 and a job delay is
# set, the job reaching success, an injected job failure, a vanished job
# (404 on the job, the change still made), a "temporarily locked" error and
# its retry, a mounted volume refused for offline/delete with ONTAP's
# message, FlexClone relations, SnapMirror transitions (and an invalid one
# refused), lag time, transfers, and PATCH /_fake/volume. Part 2, when
# Debian's ansible with the netapp.ontap collection and python3-requests is
# installed, runs the collection's own modules against the fake with
# use_rest: always: every create is changed and every "same again" is
# unchanged. When they are absent it exits 77 (skip) after part 1, saying
# what is missing; a part 1 failure still fails. The password carries the
# canary AICP-CANARY-7f3e9b2c: it lives in files under secret-inputs/ (never
# on a command line) and nothing the test leaves may hold it.

. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip "no python3 for the fake ONTAP server"
command -v openssl >/dev/null 2>&1 || skip "no openssl to make test certificates"

T=$(mktemp -d /tmp/aicp-test-ontap-fake-XXXXXX) || fail "mktemp"
chmod 700 "$T"
SRV_PID=
cleanup() {
    exec 3>&- 2>/dev/null
    if [ -n "$SRV_PID" ]; then
        kill "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
    fi
    canary_scan "test_ontap_fake-$$" "$T"
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mkdir -m 700 "$T/secret-inputs" || fail "mkdir"

(
    cd "$T" &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
        -subj "/CN=aicp test CA" >/dev/null 2>&1 &&
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
        -subj "/CN=localhost" >/dev/null 2>&1 &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out server.pem -days 2 -extfile san.ext >/dev/null 2>&1
) || fail "could not make test certificates"

PW="pw-$CANARY"
(
    umask 077
    printf 'admin:%s\n' "$PW" > "$T/secret-inputs/users" &&
    printf 'machine 127.0.0.1 login admin password %s\n' "$PW" > "$T/secret-inputs/netrc" &&
    printf 'ontap_password: "%s"\n' "$PW" > "$T/secret-inputs/vars.yml"
) || fail "secret inputs"
unset PW

mkfifo "$T/ctl" || fail "mkfifo"
python3 "$top_srcdir/tests/fakes/ontap_server.py" --cert "$T/server.pem" --key "$T/server.key" \
    --users-file "$T/secret-inputs/users" <"$T/ctl" >"$T/port" 2>"$T/server.err" &
SRV_PID=$!
exec 3>"$T/ctl"
i=0
until grep -q '^PORT ' "$T/port" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$SRV_PID" 2>/dev/null; then
        cat "$T/server.err" >&2
        fail "the fake ONTAP server did not start"
    fi
    sleep 0.1
done
PORT=$(sed -n 's/^PORT //p' "$T/port")
grep -qx "URL https://127.0.0.1:$PORT" "$T/port" || fail "no URL line"

# api METHOD PATH [--body JSON] [--status N] [--check EXPR]... [--print EXPR]
#     [--noauth] [--badauth]: one request; EXPR is Python over j (the parsed
# body) and s (the status). Credentials come from the netrc file.
cat > "$T/api.py" <<'PYEOF'
import base64, json, netrc, os, ssl, sys, urllib.request, urllib.error
a = sys.argv[1:]
method, path = a[0], a[1]
opts, checks, prints = {}, [], []
i = 2
while i < len(a):
    k = a[i]
    if k in ("--noauth", "--badauth"):
        opts[k] = True
        i += 1
        continue
    v = a[i + 1]
    i += 2
    if k == "--check":
        checks.append(v)
    elif k == "--print":
        prints.append(v)
    else:
        opts[k] = v
ctx = ssl.create_default_context(cafile=os.environ["ONTAP_CA"])
data = opts["--body"].encode() if "--body" in opts else None
req = urllib.request.Request("https://127.0.0.1:%s%s" % (os.environ["ONTAP_PORT"], path),
                             data=data, method=method)
if data is not None:
    req.add_header("Content-Type", "application/json")
if not path.startswith("/_fake/") and "--noauth" not in opts:
    login, _, pw = netrc.netrc(os.environ["ONTAP_NETRC"]).authenticators("127.0.0.1")
    if "--badauth" in opts:
        pw = "wrong"
    req.add_header("Authorization", "Basic " +
                   base64.b64encode(("%s:%s" % (login, pw)).encode()).decode())
try:
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        s, raw = r.status, r.read()
except urllib.error.HTTPError as e:
    s, raw = e.code, e.read()
try:
    j = json.loads(raw) if raw else {}
except ValueError:
    j = raw.decode("utf-8", "replace")
def die(msg):
    sys.stderr.write("%s %s: %s\n  status %s body %s\n" % (method, path, msg, s, json.dumps(j)))
    sys.exit(1)
if "--status" in opts and str(s) != opts["--status"]:
    die("status %s, wanted %s" % (s, opts["--status"]))
for c in checks:
    try:
        ok = eval(c, {"j": j, "s": s})
    except Exception as e:
        ok = False
        c += " (%s: %s)" % (type(e).__name__, e)
    if not ok:
        die("check failed: " + c)
for p in prints:
    print(eval(p, {"j": j, "s": s}))
PYEOF
ONTAP_PORT=$PORT ONTAP_CA=$T/ca.pem ONTAP_NETRC=$T/secret-inputs/netrc
export ONTAP_PORT ONTAP_CA ONTAP_NETRC
api() { python3 "$T/api.py" "$@" || fail "api $1 $2"; }
# wait_job UUID STATE: polls the job until it leaves queued/running.
wait_job() {
    _n=0
    while :; do
        _st=$(api GET "/api/cluster/jobs/$1" --status 200 --print 'j["state"]')
        case $_st in queued | running) ;; *) break ;; esac
        _n=$((_n + 1))
        [ $_n -lt 100 ] || fail "job $1 still $_st"
        sleep 0.1
    done
    [ "$_st" = "$2" ] || fail "job $1 ended $_st, wanted $2"
}

# ---- Part 1: raw HTTP --------------------------------------------------

api GET /api/cluster --noauth --status 401 --check 'j["error"]["code"] == "6"'
api GET /api/cluster --badauth --status 401 --check '"not authorized" in j["error"]["message"]'
api GET '/api/cluster?fields=version' --status 200 \
    --check 'j["version"]["generation"] == 9 and j["version"]["major"] == 8' \
    --check '"name" not in j'
api GET /api/svm/svms --status 200 \
    --check 'j["num_records"] == 2 == len(j["records"])' \
    --check 'sorted(r["name"] for r in j["records"]) == ["ontapai_nfs", "svm_dr"]' \
    --check 'all(set(r) == {"uuid", "name"} for r in j["records"])'
api GET '/api/storage/aggregates?fields=space.block_storage.size&name=aggr*' --status 200 \
    --check 'j["num_records"] == 2' \
    --check 'all(r["space"]["block_storage"]["size"] > 0 and "node" not in r for r in j["records"])'
api GET '/api/storage/aggregates?name=aggr1|aggr9' --check 'j["num_records"] == 1'
api GET '/api/protocols/nfs/export-policies?svm.name=ontapai_nfs&fields=name,id' \
    --check 'j["num_records"] == 1 and j["records"][0]["name"] == "default"'
api GET /api/nosuch --status 404 --check 'j["error"]["code"] == "3"'

# A synchronous create (job done within return_timeout): 201 with the job.
api POST '/api/storage/volumes?return_timeout=15&return_records=true' --status 201 \
    --body '{"name": "v1", "svm.name": "ontapai_nfs", "size": 1073741824, "aggregates": [{"name": "aggr1"}], "nas": {"path": "/v1"}}' \
    --check 'j["records"][0]["name"] == "v1" and "uuid" in j["job"]'
V1=$(api GET '/api/storage/volumes?name=v1&svm.name=ontapai_nfs&fields=size,nas.path,style,type,state,space.snapshot.reserve_percent' \
    --check 'j["num_records"] == 1' \
    --check 'j["records"][0]["size"] == 1073741824 and j["records"][0]["nas"]["path"] == "/v1"' \
    --check 'j["records"][0]["style"] == "flexvol" and j["records"][0]["type"] == "rw"' \
    --check 'j["records"][0]["state"] == "online"' \
    --check '"guarantee" not in j["records"][0]' \
    --print 'j["records"][0]["uuid"]')
api GET '/api/storage/volumes?size=>1000&fields=size' --check 'j["num_records"] == 1'
api GET '/api/storage/volumes?size=<1000' --check 'j["num_records"] == 0'
api POST '/api/storage/volumes?return_timeout=15' --status 409 \
    --body '{"name": "v1", "svm": {"name": "ontapai_nfs"}, "size": 1073741824}' \
    --check 'j["error"]["code"] == "917536"'
api POST /api/storage/volumes --status 400 \
    --body '{"name": "v2", "svm": {"name": "nosuch"}}' \
    --check 'j["error"]["message"] == "SVM \"nosuch\" does not exist."'
api POST /api/storage/volumes --status 400 --body '{"name": "v2", "svm.name": "ontapai_nfs", "bogus": 1}' \
    --check 'j["error"]["code"] == "262179" and "bogus" in j["error"]["message"]'
api POST /api/storage/volumes --status 400 --body '{"name": "bad-name", "svm.name": "ontapai_nfs"}'
api GET /api/storage/volumes/00000000-0000-0000-0000-000000000000 --status 404 \
    --check 'j["error"] == {"message": "entry doesn'"'"'t exist", "code": "4", "target": "uuid"}'

# An async job: return_timeout=0 and a job delay -> 202, then success.
# (3 s: long enough for two requests on a loaded machine.)
api POST /_fake/config --body '{"job_delay": 3}' --status 200
J=$(api PATCH "/api/storage/volumes/$V1?return_timeout=0" --status 202 --body '{"size": 2147483648}' \
    --check 'j["job"]["_links"]["self"]["href"] == "/api/cluster/jobs/" + j["job"]["uuid"]' \
    --print 'j["job"]["uuid"]')
api GET "/api/cluster/jobs/$J" --status 200 --check 'j["state"] in ("queued", "running")'
api GET "/api/storage/volumes/$V1?fields=size" --check 'j["size"] == 1073741824'
wait_job "$J" success
api GET "/api/cluster/jobs/$J" --check 'j["message"] == "success" and "end_time" in j'
api GET "/api/storage/volumes/$V1?fields=size,space.size" \
    --check 'j["size"] == 2147483648 == j["space"]["size"]'
# A job delay within return_timeout answers at once (200, no polling).
api PATCH "/api/storage/volumes/$V1?return_timeout=5" --status 200 --body '{"comment": "c1"}'
api GET "/api/storage/volumes/$V1?fields=comment" --check 'j["comment"] == "c1"'
api POST /_fake/config --body '{"job_delay": 0}'

# An injected job failure: 202, the job fails with the message, nothing made.
api POST /_fake/fault --status 200 \
    --body '{"path_regex": "^/api/storage/volumes$", "method": "POST", "job": "fail", "message": "Failed to create volume: injected.", "error_code": 917555}'
J=$(api POST '/api/storage/volumes?return_timeout=30' --status 202 \
    --body '{"name": "vfail", "svm.name": "ontapai_nfs", "size": 1073741824}' --print 'j["job"]["uuid"]')
wait_job "$J" failure
api GET "/api/cluster/jobs/$J" \
    --check 'j["message"] == "Failed to create volume: injected." and j["code"] == 917555'
api GET '/api/storage/volumes?name=vfail' --check 'j["num_records"] == 0'

# A vanished job: 202, the job is 404, the volume was made all the same.
api POST /_fake/fault --body '{"path_regex": "^/api/storage/volumes$", "method": "POST", "job": "vanish"}'
J=$(api POST /api/storage/volumes --status 202 \
    --body '{"name": "vgone", "svm.name": "ontapai_nfs", "size": 1073741824}' --print 'j["job"]["uuid"]')
api GET "/api/cluster/jobs/$J" --status 404 --check 'j["error"]["code"] == "4"'
api GET '/api/storage/volumes?name=vgone' --check 'j["num_records"] == 1'

# "Temporarily locked", then the retry succeeds.
api POST /_fake/fault --body '{"path_regex": "^/api/storage/volumes/", "method": "PATCH", "locked": true}'
api PATCH "/api/storage/volumes/$V1?return_timeout=15" --status 409 --body '{"comment": "c2"}' \
    --check '"temporarily locked" in j["error"]["message"] and j["error"]["code"] == "917505"'
api PATCH "/api/storage/volumes/$V1?return_timeout=15" --status 200 --body '{"comment": "c2"}'
# A plain fault: 503, then normal.
api POST /_fake/fault --body '{"path_regex": "^/api/svm/", "status": 503}'
api GET /api/svm/svms --status 503 --check '"error" in j'
api GET /api/svm/svms --status 200

# Snapshots and a FlexClone; a parent with clones cannot go.
api POST "/api/storage/volumes/$V1/snapshots?return_timeout=15" --status 201 \
    --body '{"name": "s1", "comment": "base", "snapmirror_label": "daily"}'
api POST "/api/storage/volumes/$V1/snapshots?return_timeout=15" --status 409 --body '{"name": "s1"}'
api GET "/api/storage/volumes/$V1/snapshots?name=s1&fields=comment,snapmirror_label,create_time" \
    --check 'j["num_records"] == 1 and j["records"][0]["comment"] == "base"'
api POST '/api/storage/volumes?return_timeout=15&return_records=true' --status 201 \
    --body '{"name": "c1", "svm.name": "ontapai_nfs", "clone": {"is_flexclone": true, "parent_volume": {"name": "v1"}, "parent_snapshot": {"name": "s1"}}}'
C1=$(api GET '/api/storage/volumes?name=c1&fields=clone,size' \
    --check 'j["records"][0]["clone"]["is_flexclone"] is True' \
    --check 'j["records"][0]["clone"]["parent_volume"]["name"] == "v1"' \
    --check 'j["records"][0]["clone"]["parent_snapshot"]["name"] == "s1"' \
    --check 'j["records"][0]["size"] == 2147483648' --print 'j["records"][0]["uuid"]')
api PATCH "/api/storage/volumes/$V1?return_timeout=15" --status 200 --body '{"nas.path": ""}'
api DELETE "/api/storage/volumes/$V1?return_timeout=15" --status 400 \
    --check '"FlexClone" in j["error"]["message"]'
api PATCH "/api/storage/volumes/$C1?return_timeout=15" --status 200 --body '{"clone.split_initiated": true}'
api GET "/api/storage/volumes/$C1?fields=clone" --check 'j["clone"]["is_flexclone"] is False'
api PATCH "/api/storage/volumes/$C1?return_timeout=15" --status 400 --body '{"clone": {"split_initiated": true}}'

# A mounted volume cannot be taken offline or deleted (ONTAP's words).
api PATCH "/api/storage/volumes/$V1?return_timeout=15" --status 200 --body '{"nas": {"path": "/v1"}}'
api DELETE "/api/storage/volumes/$V1?return_timeout=15" --status 400 \
    --check 'j["error"]["message"] == "Volume \"v1\" in Vserver \"ontapai_nfs\" must be unmounted before being taken offline or deleted."'
api PATCH "/api/storage/volumes/$V1?return_timeout=15" --status 400 --body '{"state": "offline"}' \
    --check '"must be unmounted" in j["error"]["message"]'
api PATCH "/api/storage/volumes/$V1?return_timeout=15" --status 200 --body '{"nas": {"path": ""}, "state": "offline"}'
api GET "/api/storage/volumes/$V1?fields=state,nas" \
    --check 'j["state"] == "offline" and "path" not in j["nas"]'
api PATCH "/api/storage/volumes/$V1?return_timeout=15" --status 200 --body '{"state": "online"}'

# Behind-the-back changes for drift tests.
api PATCH /_fake/volume --status 200 \
    --body '{"name": "c1", "svm": "ontapai_nfs", "set": {"size": 5368709120, "nas.export_policy.name": "other", "snapshot_policy": {"name": "none"}}}'
api GET "/api/storage/volumes/$C1?fields=size,nas.export_policy.name,snapshot_policy.name" \
    --check 'j["size"] == 5368709120 and j["nas"]["export_policy"]["name"] == "other"' \
    --check 'j["snapshot_policy"]["name"] == "none"'

# SnapMirror: create uninitialized, refuse break, initialize, update,
# quiesce, resume, break (the destination becomes rw), resync, lag, delete.
api POST '/api/snapmirror/relationships?return_timeout=30' --status 201 \
    --body '{"source": {"path": "ontapai_nfs:v1"}, "destination": {"path": "svm_dr:v1_dst"}, "create_destination": {"enabled": true}}'
R=$(api GET '/api/snapmirror/relationships?destination.path=svm_dr:v1_dst&fields=state,policy,healthy,source,transfer' \
    --check 'j["num_records"] == 1 and j["records"][0]["state"] == "uninitialized"' \
    --check 'j["records"][0]["source"]["path"] == "ontapai_nfs:v1"' \
    --check 'j["records"][0]["policy"]["name"] == "MirrorAllSnapshots"' \
    --print 'j["records"][0]["uuid"]')
api GET '/api/storage/volumes?name=v1_dst&svm.name=svm_dr&fields=type' \
    --check 'j["num_records"] == 1 and j["records"][0]["type"] == "dp"'
api POST '/api/snapmirror/relationships?return_timeout=30' --status 409 \
    --body '{"source": {"path": "ontapai_nfs:v1"}, "destination": {"path": "svm_dr:v1_dst"}}'
api PATCH "/api/snapmirror/relationships/$R?return_timeout=30" --status 400 \
    --body '{"state": "broken_off"}' --check 'j["error"]["code"] == "13303825"'
api PATCH "/api/snapmirror/relationships/$R?return_timeout=30" --status 200 --body '{"state": "snapmirrored"}'
api GET "/api/snapmirror/relationships/$R" \
    --check 'j["state"] == "snapmirrored" and j["healthy"] is True' \
    --check 'j["lag_time"].startswith("PT") and j["transfer"]["state"] == "success"'
api GET '/api/storage/volumes?name=v1_dst&fields=snapshot_count' \
    --check 'j["records"][0]["snapshot_count"] >= 2'
api POST "/api/snapmirror/relationships/$R/transfers?return_records=true" --status 201 --body '{}' \
    --check 'j["records"][0]["state"] == "success"'
api GET "/api/snapmirror/relationships/$R/transfers" --check 'j["num_records"] == 2'
api PATCH "/api/snapmirror/relationships/$R?return_timeout=30" --status 200 --body '{"state": "paused"}'
api POST "/api/snapmirror/relationships/$R/transfers" --status 400 --body '{}'
api PATCH "/api/snapmirror/relationships/$R?return_timeout=30" --status 200 --body '{"state": "snapmirrored"}'
api DELETE "/api/snapmirror/relationships/$R?return_timeout=30" --status 400 \
    --check '"break" in j["error"]["message"]'
api PATCH "/api/snapmirror/relationships/$R?return_timeout=30" --status 200 --body '{"state": "broken_off"}'
api GET '/api/storage/volumes?name=v1_dst&fields=type' --check 'j["records"][0]["type"] == "rw"'
api PATCH "/api/snapmirror/relationships/$R?return_timeout=30" --status 400 --body '{"state": "paused"}'
api PATCH "/api/snapmirror/relationships/$R?return_timeout=30" --status 200 --body '{"state": "snapmirrored"}'
api GET "/api/snapmirror/relationships/$R?fields=state" --check 'j["state"] == "snapmirrored"'
api GET '/api/storage/volumes?name=v1_dst&fields=type' --check 'j["records"][0]["type"] == "dp"'
api PATCH /_fake/snapmirror --status 200 --body '{"destination": "svm_dr:v1_dst", "set": {"lag_seconds": 7260}}'
api GET "/api/snapmirror/relationships/$R?fields=lag_time" --check 'j["lag_time"] == "PT2H1M"'
# A slow transfer shows up as transferring; break is refused meanwhile.
api POST /_fake/config --body '{"transfer_time": 3}'
api POST "/api/snapmirror/relationships/$R/transfers" --status 201 --body '{}'
api GET "/api/snapmirror/relationships/$R?fields=transfer.state" \
    --check 'j["transfer"]["state"] == "transferring"'
api PATCH "/api/snapmirror/relationships/$R?return_timeout=30" --status 400 --body '{"state": "broken_off"}'
n=0
until api GET "/api/snapmirror/relationships/$R?fields=transfer.state" \
    --print 'j["transfer"]["state"]' | grep -qx success; do
    n=$((n + 1))
    [ $n -lt 50 ] || fail "the transfer did not finish"
    sleep 0.2
done
api POST /_fake/config --body '{"transfer_time": 0}'
api PATCH "/api/snapmirror/relationships/$R?return_timeout=30" --status 200 --body '{"state": "paused"}'
api PATCH "/api/snapmirror/relationships/$R?return_timeout=30" --status 200 --body '{"state": "broken_off"}'
api DELETE "/api/snapmirror/relationships/$R?return_timeout=30" --status 200
api GET "/api/snapmirror/relationships/$R" --status 404

# Export policies and rules (synchronous).
P=$(api POST '/api/protocols/nfs/export-policies?return_records=true' --status 201 \
    --body '{"name": "ep1", "svm": {"name": "ontapai_nfs"}, "rules": [{"clients": [{"match": "10.0.0.0/8"}], "ro_rule": ["sys"], "rw_rule": ["sys"]}]}' \
    --print 'j["records"][0]["id"]')
api POST "/api/protocols/nfs/export-policies/$P/rules?return_records=true" --status 201 \
    --body '{"clients": [{"match": "0.0.0.0/0"}], "protocols": ["nfs"], "ro_rule": ["any"], "rw_rule": ["never"], "superuser": ["none"]}' \
    --check 'j["records"][0]["index"] == 2'
api GET "/api/protocols/nfs/export-policies/$P/rules?clients.match=0.0.0.0/0&fields=protocols,rw_rule" \
    --check 'j["num_records"] == 1 and j["records"][0]["rw_rule"] == ["never"]'
api PATCH "/api/protocols/nfs/export-policies/$P/rules/2?new_index=1" --status 200 --body '{}'
api GET "/api/protocols/nfs/export-policies/$P/rules/1?fields=clients" \
    --check 'j["clients"] == [{"match": "0.0.0.0/0"}]'
api GET "/api/protocols/nfs/export-policies/$P/rules/9" --status 404
api PATCH "/api/storage/volumes/$V1?return_timeout=15" --status 200 --body '{"nas.export_policy.name": "ep1"}'
api DELETE "/api/protocols/nfs/export-policies/$P" --status 400 --check '"in use" in j["error"]["message"]'
api PATCH "/api/storage/volumes/$V1?return_timeout=15" --status 400 --body '{"nas.export_policy.name": "nosuch"}'

# The request log holds no credentials.
api GET /_fake/requests --check 'len(j) > 20 and all("authorization" not in str(r).lower() for r in j)' \
    --check 'any(r["auth"] == "basic:admin" for r in j) and any(r["auth"] == "bad" for r in j)'
api POST /_fake/reset --body '{"objects": true}'
api GET /api/storage/volumes --check 'j["num_records"] == 0'
echo "raw HTTP checks passed ($(date +%s))"

# ---- Part 2: the netapp.ontap collection -----------------------------

COLL=/usr/lib/python3/dist-packages/ansible_collections/netapp/ontap
AP=/usr/bin/ansible-playbook
# Without the collection the fidelity check proper cannot run: skip (77),
# even though part 1 passed, rather than pass without it.
[ -x "$AP" ] ||
    skip "part 1 passed; no $AP for part 2 (Debian's ansible package ships netapp.ontap)"
[ -d "$COLL" ] || ansible-doc -t module netapp.ontap.na_ontap_volume >/dev/null 2>&1 ||
    skip "part 1 passed; the netapp.ontap collection is not installed (Debian's ansible package)"
/usr/bin/python3 -c 'import requests' 2>/dev/null ||
    skip "part 1 passed; netapp.ontap needs python3-requests, which is not installed"

# netapp.ontap has no CA-file option; it verifies with python-requests,
# which reads REQUESTS_CA_BUNDLE, so validate_certs stays true and the
# play's environment points requests at the test CA.
cat > "$T/play.yml" <<EOF
- hosts: localhost
  gather_facts: false
  connection: local
  vars_files: ["$T/secret-inputs/vars.yml"]
  environment:
    REQUESTS_CA_BUNDLE: "$T/ca.pem"
  module_defaults:
    group/netapp.ontap.netapp_ontap:
      hostname: "127.0.0.1:$PORT"
      username: admin
      password: "{{ ontap_password }}"
      https: true
      validate_certs: true
      use_rest: always
  tasks:
    - name: volume create
      netapp.ontap.na_ontap_volume: &vol
        name: fid_vol
        vserver: ontapai_nfs
        aggregate_name: aggr1
        size: 1
        size_unit: gb
        junction_path: /fid_vol
        export_policy: default
        snapshot_policy: default
        percent_snapshot_space: 5
        space_guarantee: none
        volume_security_style: unix
        unix_permissions: "755"
        tiering_policy: none
        comment: made by aicp fidelity test
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: volume create not changed}}
    - name: volume again
      netapp.ontap.na_ontap_volume: *vol
      register: r
      no_log: true
    - {assert: {that: [r is not changed], fail_msg: volume again changed}}
    - name: volume resize
      netapp.ontap.na_ontap_volume:
        <<: *vol
        size: 2
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: resize not changed}}
    - name: volume resize again
      netapp.ontap.na_ontap_volume:
        <<: *vol
        size: 2
      register: r
      no_log: true
    - {assert: {that: [r is not changed], fail_msg: resize again changed}}
    - name: flexgroup create
      netapp.ontap.na_ontap_volume: &fg
        name: fid_fg
        vserver: ontapai_nfs
        aggr_list: [aggr1, aggr2]
        aggr_list_multiplier: 2
        size: 100
        size_unit: gb
        junction_path: /fid_fg
        space_guarantee: none
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: flexgroup create not changed}}
    - name: flexgroup again
      netapp.ontap.na_ontap_volume: *fg
      register: r
      no_log: true
    - {assert: {that: [r is not changed], fail_msg: flexgroup again changed}}
    - name: export policy create
      netapp.ontap.na_ontap_export_policy: &ep
        name: fid_ep
        vserver: ontapai_nfs
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: export policy create not changed}}
    - name: export policy again
      netapp.ontap.na_ontap_export_policy: *ep
      register: r
      no_log: true
    - {assert: {that: [r is not changed], fail_msg: export policy again changed}}
    - name: export policy rule create
      netapp.ontap.na_ontap_export_policy_rule: &rule
        name: fid_ep
        vserver: ontapai_nfs
        rule_index: 1
        client_match: [10.0.0.0/8]
        protocol: [nfs]
        ro_rule: [sys]
        rw_rule: [sys]
        super_user_security: [none]
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: rule create not changed}}
    - name: export policy rule again
      netapp.ontap.na_ontap_export_policy_rule: *rule
      register: r
      no_log: true
    - {assert: {that: [r is not changed], fail_msg: rule again changed}}
    - name: snapshot create
      netapp.ontap.na_ontap_snapshot: &snap
        snapshot: fid_snap
        volume: fid_vol
        vserver: ontapai_nfs
        comment: baseline
        snapmirror_label: daily
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: snapshot create not changed}}
    - name: snapshot again
      netapp.ontap.na_ontap_snapshot: *snap
      register: r
      no_log: true
    - {assert: {that: [r is not changed], fail_msg: snapshot again changed}}
    - name: snapshot rename
      netapp.ontap.na_ontap_snapshot:
        <<: *snap
        snapshot: fid_snap2
        from_name: fid_snap
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: snapshot rename not changed}}
    - name: clone create
      netapp.ontap.na_ontap_volume_clone: &clone
        name: fid_clone
        vserver: ontapai_nfs
        parent_volume: fid_vol
        parent_snapshot: fid_snap2
        junction_path: /fid_clone
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: clone create not changed}}
    - name: clone again
      netapp.ontap.na_ontap_volume_clone: *clone
      register: r
      no_log: true
    - {assert: {that: [r is not changed], fail_msg: clone again changed}}
    - name: clone split
      netapp.ontap.na_ontap_volume_clone:
        <<: *clone
        split: true
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: clone split not changed}}
    - name: clone split again
      netapp.ontap.na_ontap_volume_clone:
        <<: *clone
        split: true
      register: r
      no_log: true
    - {assert: {that: [r is not changed], fail_msg: clone split again changed}}
    - name: snapmirror create and initialize
      netapp.ontap.na_ontap_snapmirror: &sm
        source_endpoint: {path: "ontapai_nfs:fid_vol"}
        destination_endpoint: {path: "svm_dr:fid_vol_dst"}
        create_destination: {enabled: true}
        initialize: true
        update: false
        transferring_time_out: 0
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: snapmirror create not changed}}
    - name: snapmirror again
      netapp.ontap.na_ontap_snapmirror: *sm
      register: r
      no_log: true
    - {assert: {that: [r is not changed], fail_msg: snapmirror again changed}}
    - name: snapmirror break
      netapp.ontap.na_ontap_snapmirror:
        <<: *sm
        relationship_state: broken
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: snapmirror break not changed}}
    - name: snapmirror break again
      netapp.ontap.na_ontap_snapmirror:
        <<: *sm
        relationship_state: broken
      register: r
      no_log: true
    - {assert: {that: [r is not changed], fail_msg: snapmirror break again changed}}
    - name: snapmirror resync
      netapp.ontap.na_ontap_snapmirror: *sm
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: snapmirror resync not changed}}
    - name: snapmirror delete
      netapp.ontap.na_ontap_snapmirror:
        <<: *sm
        state: absent
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: snapmirror delete not changed}}
    - name: snapmirror delete again
      netapp.ontap.na_ontap_snapmirror:
        <<: *sm
        state: absent
      register: r
      no_log: true
    - {assert: {that: [r is not changed], fail_msg: snapmirror delete again changed}}
    - name: delete volumes
      netapp.ontap.na_ontap_volume:
        name: "{{ item }}"
        vserver: "{{ 'svm_dr' if item.endswith('_dst') else 'ontapai_nfs' }}"
        state: absent
      loop: [fid_clone, fid_vol_dst, fid_fg]
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: volume deletes not changed}}
    - name: snapshot delete
      netapp.ontap.na_ontap_snapshot:
        <<: *snap
        snapshot: fid_snap2
        state: absent
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: snapshot delete not changed}}
    - name: volume delete
      netapp.ontap.na_ontap_volume:
        <<: *vol
        state: absent
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: volume delete not changed}}
    - name: volume delete again
      netapp.ontap.na_ontap_volume:
        <<: *vol
        state: absent
      register: r
      no_log: true
    - {assert: {that: [r is not changed], fail_msg: volume delete again changed}}
    - name: export policy delete
      netapp.ontap.na_ontap_export_policy:
        <<: *ep
        state: absent
      register: r
      no_log: true
    - {assert: {that: [r is changed], fail_msg: export policy delete not changed}}
EOF

ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_LOCALHOST_WARNING=0 \
ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_COLLECTIONS_PATH=/usr/lib/python3/dist-packages \
    "$AP" -i localhost, "$T/play.yml" >"$T/ansible.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    # The log holds no password (no_log, and the collection marks it
    # no_log too); show it to say what went wrong.
    cat "$T/ansible.log" >&2
    fail "netapp.ontap against the fake (rc $rc)"
fi
grep -q 'failed=0' "$T/ansible.log" || { cat "$T/ansible.log" >&2; fail "play recap"; }
grep -A1 '^PLAY RECAP' "$T/ansible.log"
api GET /api/storage/volumes --check 'j["num_records"] == 0'
echo "netapp.ontap passed: volume (FlexVol, FlexGroup), export policy and rule, snapshot, clone, snapmirror"
exit 0
