#!/bin/sh
# The ONTAP modules against the fake ONTAP REST server (tests/fakes/
# ontap_server.py), through `aicp run` on localhost: for every module the
# create -> again -> different -> delete -> delete again cycle, each step
# run first with --check, which must predict the same exit status and task
# statuses, and followed by a --check that must find nothing left to do;
# then the modules' own cases (snapshot rename, the SnapMirror state
# machine) and the client's faults through the modules (an async job that
# succeeds late, fails, or vanishes; a "temporarily locked" error retried);
# the password never shows (-vvv, --diff, --json).
#
# Shell API for tests/integration/ontap_modules_h.sh, which this script
# sources once the fake is up (H's modules: ontap_volume, ontap_clone,
# ontap_export_policy, ontap_info):
#   $OT            scratch directory, removed at exit (write files here)
#   $SEC           $OT/secret-inputs: files holding secrets (the canary
#                  scan skips it); $SEC/vars.yml holds ontap_hostname,
#                  ontap_password (the canary) and ontap_ca_file (a copy of
#                  lib.sh's $OVARS), and every ontap_step / ontap_run
#                  passes it as -e @$SEC/vars.yml
#   $CONN          the connection arguments as flow-style YAML pairs, to
#                  write inside a task's {...}:
#                  - ontap_volume: {name: v1, vserver: ontapai_nfs, $CONN}
#   $ONTAP_URL     https://127.0.0.1:PORT of the fake; $ONTAP_CA its CA
#   $CANARY        the canary a secret must never leak (lib.sh)
#   ontap_step LABEL RC [AICP-ARGS...] <FILE
#                  stdin: the play's tasks as a YAML list at column 0. Runs
#                  the play with --check, then for real, and fails unless
#                  both exit RC and report the same status per task; then
#                  (unless RC is 1) a --check must exit 0. $OUT holds the
#                  real run's output, $REPORT its --json report.
#   ontap_run RC [AICP-ARGS...] <FILE
#                  the same play run once (no --check pass); $OUT, $REPORT.
#   ontap_api METHOD PATH [JSON]
#                  one request to the fake as admin; prints the reply body;
#                  exits non-zero on an HTTP error (>= 400).
#   ontap_field PATH DOTTED.FIELD
#                  GETs PATH and prints one field ("" when absent); when
#                  the reply is a collection ({"records": [...]}) the field
#                  is read from its only record ("" when none, fails when
#                  more than one). e.g.
#                  ontap_field "/api/storage/volumes?name=v1&fields=size" size
#   ontap_count PATH   num_records of a collection GET
#   ontap_fault JSON   arms a fault: POST /_fake/fault (see docs/fakes.md)
#   ontap_config JSON  POST /_fake/config (e.g. {"job_delay": 0.5})
#   ontap_expect_out TEXT   fails unless $OUT contains TEXT (fixed string)
#   ontap_no_leak FILE...   fails if any FILE contains the canary
# Feed tasks through a file (ontap_step ... <"$T"), or a here-document, not
# a pipe: in a pipeline ontap_step runs in a subshell and its $OUT would not
# reach ontap_expect_out (set -e still ends the script on its failure).
# Names H uses start with "h_" (volumes, policies), mine with "i_", so that
# the two sets of cases cannot collide.
. "$top_srcdir/tests/integration/lib.sh"
set -e

[ -x "$AICP" ] || skip "no aicp binary at $AICP"
[ -f "$top_srcdir/tests/fakes/ontap_server.py" ] || skip "no fake ONTAP server yet"

# lib.sh's ontap_fake_up: the fake with a throw-away CA, the user admin
# whose password holds the canary, and $OVARS; it stops, and its directory
# is scanned for the canary and removed, when this script exits.
ontap_fake_up
OT=$ODIR
SEC=$ODIR/secret-inputs
ONTAP_URL="https://$OHOST"
ONTAP_CA=$OCA
cp "$OVARS" "$SEC/vars.yml"
CONN='hostname: "{{ ontap_hostname }}", username: admin, password: "{{ ontap_password }}", ca_file: "{{ ontap_ca_file }}"'
printf 'localhost ansible_connection=local\n' >"$OT/inventory"

ontap_api() { # METHOD PATH [JSON]
    python3 - "$ONTAP_URL" "$ONTAP_CA" "$SEC/users" "$@" <<'EOF'
import base64, ssl, sys, urllib.request, urllib.error
url, ca, users, method, path = sys.argv[1:6]
body = sys.argv[6].encode() if len(sys.argv) > 6 else None
req = urllib.request.Request(url + path, data=body, method=method)
cred = open(users).readline().strip()
req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
if body is not None:
    req.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=20) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stdout.write(e.read().decode())
    sys.exit(1)
EOF
}

ontap_field() { # PATH DOTTED.FIELD
    _j=$(ontap_api GET "$1") || { echo "$_j" >&2; fail "GET $1"; }
    printf '%s' "$_j" | python3 -c '
import json, sys
v = json.load(sys.stdin)
f = sys.argv[1]
if isinstance(v, dict) and "records" in v and not f.startswith(("records", "num_records")):
    recs = v["records"]
    if len(recs) > 1:
        sys.exit("%d records, expected one" % len(recs))
    v = recs[0] if recs else None
for k in f.split("."):
    if isinstance(v, list) and k.isdigit():
        v = v[int(k)] if int(k) < len(v) else None
    else:
        v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else (v if isinstance(v, str) else json.dumps(v)))' "$2"
}

ontap_count() { ontap_field "$1" num_records; }
ontap_fault() { ontap_api POST /_fake/fault "$1" >/dev/null || fail "arming fault $1"; }
ontap_config() { ontap_api POST /_fake/config "$1" >/dev/null || fail "fake config $1"; }

ontap_expect_out() {
    grep -q -F -e "$1" "$OUT" || { cat "$OUT" >&2; fail "the output does not say: $1"; }
}

ontap_no_leak() {
    for _f in "$@"; do
        [ -f "$_f" ] || continue
        if grep -q -F -e "$CANARY" "$_f"; then cat "$_f" >&2; fail "the canary leaked into $_f"; fi
    done
    return 0
}

# The tasks on stdin become $OT/play.yml.
ontap_write_play() {
    {
        printf -- '- hosts: localhost\n  gather_facts: false\n  tasks:\n'
        sed 's/^/    /'
    } >"$OT/play.yml"
}

# ontap_same_statuses A.json B.json: the two --json reports give every task
# the same status on every host (missing reports count as empty).
ontap_same_statuses() {
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

# ontap_aicp CHECK OUTFILE REPORT [ARGS...]: runs the play; prints its exit status.
ontap_aicp() {
    _chk=$1 _o=$2 _r=$3
    shift 3
    rm -f "$_r"
    _x=0
    if [ "$_chk" = check ]; then
        "$AICP" run "$OT/play.yml" -i "$OT/inventory" -e "@$SEC/vars.yml" --json "$_r" --check "$@" \
            >"$_o" 2>&1 || _x=$?
    else
        "$AICP" run "$OT/play.yml" -i "$OT/inventory" -e "@$SEC/vars.yml" --json "$_r" "$@" \
            >"$_o" 2>&1 || _x=$?
    fi
    echo $_x
}

ontap_step() { # LABEL RC [ARGS...]
    _label=$1 _want=$2
    shift 2
    ontap_write_play
    _crc=$(ontap_aicp check "$OT/check.out" "$OT/check.json" "$@")
    OUT=$OT/run.out REPORT=$OT/run.json
    _rc=$(ontap_aicp run "$OUT" "$REPORT" "$@")
    if [ "$_rc" != "$_want" ] || [ "$_crc" != "$_rc" ] ||
        ! ontap_same_statuses "$OT/check.json" "$REPORT"; then
        echo "---- check run (exit $_crc)" >&2
        cat "$OT/check.out" >&2
        echo "---- real run (exit $_rc)" >&2
        cat "$OUT" >&2
        fail "$_label: exit $_rc (check $_crc), expected $_want with the same statuses"
    fi
    if [ "$_want" != 1 ]; then
        _vrc=$(ontap_aicp check "$OT/verify.out" "$OT/verify.json" "$@")
        [ "$_vrc" = 0 ] || { cat "$OT/verify.out" >&2; fail "$_label: a --check after the run still sees changes"; }
    fi
    echo "ok   $_label (exit $_rc)"
}

ontap_run() { # RC [ARGS...]
    _want=$1
    shift
    ontap_write_play
    OUT=$OT/run.out REPORT=$OT/run.json
    _rc=$(ontap_aicp run "$OUT" "$REPORT" "$@")
    [ "$_rc" = "$_want" ] || { cat "$OUT" >&2; fail "exit $_rc, expected $_want"; }
    echo "ok   run (exit $_rc)"
}

T=$OT/i-tasks.yml

# ---- helper H's modules ----------------------------------------------------
if [ -f "$top_srcdir/tests/integration/ontap_modules_h.sh" ]; then
    . "$top_srcdir/tests/integration/ontap_modules_h.sh"
fi

# ---- I's modules: ontap_snapshot, ontap_snapmirror --------------------------
# The source volume is made through the API, so that these cases do not
# depend on ontap_volume.
ontap_api POST "/api/storage/volumes?return_timeout=30" \
    '{"name": "i_src", "svm": {"name": "ontapai_nfs"}, "aggregates": [{"name": "aggr1"}], "size": 1073741824, "nas": {"path": "/i_src"}}' \
    >/dev/null || fail "creating volume i_src"
VQ="/api/storage/volumes?name=i_src&svm.name=ontapai_nfs&fields=uuid"
VU=$(ontap_field "$VQ" uuid)
[ -n "$VU" ] || fail "volume i_src has no uuid"
SQ="/api/storage/volumes/$VU/snapshots"
snap_field() { # NAME FIELD
    ontap_field "$SQ?name=$1&fields=name,comment,snapmirror_label,expiry_time" "$2"
}

snap() { # NAME EXTRA...
    _n=$1
    shift
    printf -- '- ontap_snapshot: {snapshot: %s, volume: i_src, vserver: ontapai_nfs, %s, %s}\n' \
        "$_n" "$CONN" "$*"
}
snap i_s1 'comment: first, snapmirror_label: daily' >"$T" && ontap_step "snapshot create" 2 <"$T"
[ "$(snap_field i_s1 snapmirror_label)" = daily ] || fail "snapshot: label is not daily"
snap i_s1 'comment: first, snapmirror_label: daily' >"$T" && ontap_step "snapshot again" 0 <"$T"
snap i_s1 'comment: second, snapmirror_label: daily' >"$T" && ontap_step "snapshot different" 2 --diff <"$T"
[ "$(snap_field i_s1 comment)" = second ] || fail "snapshot: comment is not second"
# The same instant written in another zone is no change.
snap i_s1 'expiry_time: "2030-01-31T12:00:00Z"' >"$T" && ontap_step "snapshot expiry" 2 <"$T"
snap i_s1 'expiry_time: "2030-01-31T13:00:00+01:00"' >"$T" && ontap_step "snapshot expiry, other zone" 0 <"$T"
snap i_s1 'state: absent' >"$T" && ontap_step "snapshot delete" 2 <"$T"
[ "$(ontap_count "$SQ?name=i_s1")" = 0 ] || fail "snapshot absent left i_s1"
snap i_s1 'state: absent' >"$T" && ontap_step "snapshot delete again" 0 <"$T"
# No comment: the provenance.
snap i_p 'snapmirror_label: weekly' >"$T" && ontap_run 2 <"$T"
snap_field i_p comment | grep -q '^\[aicp site=.* run=.*\]$' || fail "snapshot: no provenance comment"
# provenance: the stamp follows the comment, is renewed with a change, and
# is never a change on its own.
snap i_p 'snapmirror_label: weekly, comment: kept, provenance: "site=i-site run=i-1"' >"$T" &&
    ontap_step "snapshot comment with provenance" 2 <"$T"
[ "$(snap_field i_p comment)" = "kept [aicp site=i-site run=i-1]" ] || fail "snapshot: comment is '$(snap_field i_p comment)'"
snap i_p 'snapmirror_label: weekly, comment: kept, provenance: "site=i-site run=i-2"' >"$T" &&
    ontap_step "snapshot provenance alone" 0 <"$T"
snap i_p 'snapmirror_label: daily, provenance: "site=i-site run=i-3"' >"$T" &&
    ontap_step "snapshot label change renews the stamp" 2 <"$T"
[ "$(snap_field i_p comment)" = "kept [aicp site=i-site run=i-3]" ] || fail "snapshot: comment is '$(snap_field i_p comment)'"

# Rename.
snap i_r1 'comment: before rename' >"$T" && ontap_run 2 <"$T"
snap i_r2 'from_name: i_r1' >"$T" && ontap_step "snapshot rename" 2 --diff <"$T"
[ "$(ontap_count "$SQ?name=i_r1")" = 0 ] || fail "rename left i_r1"
[ "$(snap_field i_r2 comment)" = "before rename" ] || fail "rename lost the comment"
snap i_r2 'from_name: i_r1' >"$T" && ontap_step "snapshot rename again" 0 <"$T"
snap i_r1 'comment: another' >"$T" && ontap_run 2 <"$T"
snap i_r2 'from_name: i_r1' >"$T" && ontap_step "snapshot rename, both exist" 1 <"$T"
ontap_expect_out "both exist"
snap i_nx2 'from_name: i_nx1' >"$T" && ontap_step "snapshot rename, neither exists" 1 <"$T"
ontap_expect_out "no snapshot with this name exists"

# The password never shows: -vvv, --diff, --json, a registered result.
{ snap i_leak 'comment: leak test'; printf '  register: s\n- debug: {var: s}\n'; } >"$T"
ontap_run 2 -vvv --diff <"$T"
ontap_expect_out "leak test"
ontap_no_leak "$OUT" "$REPORT"
ontap_step "snapshot leak test again" 0 -vvv --diff <"$T"
ontap_no_leak "$OUT" "$REPORT" "$OT/check.out" "$OT/check.json"

# ---- jobs and faults through ontap_snapshot --------------------------------
# A slow job: the client gets a 202 and polls it to success.
ontap_config '{"job_delay": 1.5}'
snap i_j1 'comment: slow job' >"$T" && ontap_step "snapshot create, slow job (202)" 2 <"$T"
[ "$(snap_field i_j1 comment)" = "slow job" ] || fail "the slow job's snapshot is missing"
ontap_config '{"job_delay": 0}'
# A job that fails: the task fails with ONTAP's message and code.
ontap_fault '{"path_regex": "/snapshots$", "method": "POST", "job": "fail", "error_code": "1638555", "message": "i-injected: Failed to create snapshot", "count": 1}'
snap i_j2 'comment: failing job' >"$T" && ontap_run 1 <"$T"
ontap_expect_out "i-injected: Failed to create snapshot"
ontap_expect_out "1638555"
# A job that vanished: the module re-reads the snapshot and decides.
ontap_fault '{"path_regex": "/snapshots$", "method": "POST", "job": "vanish", "count": 1}'
snap i_j3 'comment: vanished job' >"$T" && ontap_run 2 <"$T"
[ "$(snap_field i_j3 comment)" = "vanished job" ] || fail "the vanished job's snapshot is missing"
# "Temporarily locked" twice, then success: retried.
ontap_fault '{"path_regex": "/snapshots$", "method": "POST", "locked": true, "count": 2}'
snap i_j4 'comment: locked' >"$T" && ontap_run 2 <"$T"
[ "$(snap_field i_j4 comment)" = locked ] || fail "the snapshot after the lock retries is missing"

# ---- ontap_snapmirror ------------------------------------------------------
sm() { # STATE EXTRA...
    _s=$1
    shift
    cat <<EOF
- ontap_snapmirror:
    source_endpoint: {path: "ontapai_nfs:i_src"}
    destination_endpoint: {path: "svm_dr:i_dst"}
    create_destination: {enabled: true}
    policy: MirrorAllSnapshots
    state: $_s
    hostname: "{{ ontap_hostname }}"
    username: admin
    password: "{{ ontap_password }}"
    ca_file: "{{ ontap_ca_file }}"
    $*
  register: m
EOF
}
RQ="/api/snapmirror/relationships?destination.path=svm_dr:i_dst&fields=state,healthy,lag_time,policy.name"
sm_state() { ontap_field "$RQ" state; }
sm snapmirrored >"$T" && ontap_step "snapmirror create + initialize" 2 <"$T"
[ "$(sm_state)" = snapmirrored ] || fail "snapmirror: state $(sm_state), not snapmirrored"
[ "$(ontap_field "/api/storage/volumes?name=i_dst&svm.name=svm_dr&fields=type" type)" = dp ] ||
    fail "snapmirror: create_destination made no DP volume i_dst"
sm snapmirrored >"$T" && ontap_step "snapmirror again" 0 <"$T"
{ sm snapmirrored; printf -- '- assert: {that: ["m.state == \x27snapmirrored\x27", "m.healthy", "m.lag_time is defined", "m.unhealthy_reason is none"]}\n'; } >"$T"
ontap_run 0 <"$T"
# The destination volume create_destination made carries the provenance.
case $(ontap_field "/api/storage/volumes?name=i_dst&svm.name=svm_dr&fields=comment" comment) in
"[aicp site="*"]") ;;
*) fail "snapmirror: the destination i_dst has no provenance comment" ;;
esac
# Health: an unhealthy relationship (a failed transfer) is drift, with
# ONTAP's reason, even without max_lag; apply heals it with a transfer.
ontap_api PATCH /_fake/snapmirror '{"destination": "svm_dr:i_dst", "set": {"lag_seconds": 90000, "healthy": false, "unhealthy_reason": "i-injected: Transfer failed.", "transfer_state": "failed"}}' \
    >/dev/null || fail "making i_dst unhealthy"
{ sm snapmirrored; printf -- '- assert: {that: ["not m.healthy", "m.unhealthy_reason | length > 0", "m.lag_time is defined"]}\n'; } >"$T"
ontap_run 2 --check --diff <"$T"
ontap_expect_out "i-injected: Transfer failed."
sm snapmirrored >"$T" && ontap_step "snapmirror unhealthy healed by a transfer" 2 <"$T"
[ "$(ontap_field "$RQ" healthy)" = true ] || fail "snapmirror: still unhealthy after the heal"
sm snapmirrored >"$T" && ontap_step "snapmirror healthy again" 0 <"$T"
# The volume at either end of a relationship is not deleted (nor unmounted
# or taken offline first): --check says so too.
printf -- '- ontap_volume: {name: i_dst, vserver: svm_dr, state: absent, %s}\n' "$CONN" >"$T"
ontap_step "volume absent on a SnapMirror destination" 1 <"$T"
ontap_expect_out "destination of SnapMirror relationship ontapai_nfs:i_src -> svm_dr:i_dst"
[ "$(ontap_field "/api/storage/volumes?name=i_dst&svm.name=svm_dr&fields=state" state)" = online ] ||
    fail "volume: the refused delete took i_dst offline"
printf -- '- ontap_volume: {name: i_src, vserver: ontapai_nfs, state: absent, %s}\n' "$CONN" >"$T"
ontap_step "volume absent on a SnapMirror source" 1 <"$T"
ontap_expect_out "source of SnapMirror relationship"
[ "$(ontap_field "/api/storage/volumes?name=i_src&svm.name=ontapai_nfs&fields=nas.path" nas.path)" = /i_src ] ||
    fail "volume: the refused delete unmounted i_src"
# max_transfer_rate (throttle) converges both ways.
sm snapmirrored 'max_transfer_rate: 10240' >"$T" && ontap_step "snapmirror throttle set" 2 <"$T"
[ "$(ontap_field "/api/snapmirror/relationships?destination.path=svm_dr:i_dst&fields=throttle" throttle)" = 10240 ] || fail "snapmirror: throttle is not 10240"
sm snapmirrored 'max_transfer_rate: 10240' >"$T" && ontap_step "snapmirror throttle again" 0 <"$T"
sm snapmirrored 'max_transfer_rate: 0' >"$T" && ontap_step "snapmirror throttle unlimited" 2 <"$T"
[ "$(ontap_field "/api/snapmirror/relationships?destination.path=svm_dr:i_dst&fields=throttle" throttle)" = 0 ] || fail "snapmirror: throttle is not 0"
sm paused >"$T" && ontap_step "snapmirror paused (quiesce)" 2 --diff <"$T"
[ "$(sm_state)" = paused ] || fail "snapmirror: state $(sm_state), not paused"
sm paused >"$T" && ontap_step "snapmirror paused again" 0 <"$T"
# Paused and unhealthy: drift, and apply fails with the reason (a transfer
# would undo the pause).
ontap_api PATCH /_fake/snapmirror '{"destination": "svm_dr:i_dst", "set": {"healthy": false, "unhealthy_reason": "i-injected: paused badly."}}' \
    >/dev/null || fail "making i_dst unhealthy"
sm paused >"$T" && ontap_run 2 --check <"$T"
ontap_run 1 <"$T"
ontap_expect_out "paused and unhealthy: i-injected: paused badly."
ontap_api PATCH /_fake/snapmirror '{"destination": "svm_dr:i_dst", "set": {"healthy": true}}' \
    >/dev/null || fail "making i_dst healthy"
sm broken_off >"$T" && ontap_step "snapmirror broken_off (break)" 2 <"$T"
[ "$(sm_state)" = broken_off ] || fail "snapmirror: state $(sm_state), not broken_off"
sm broken_off >"$T" && ontap_step "snapmirror broken_off again" 0 <"$T"
sm snapmirrored >"$T" && ontap_step "snapmirror resync" 2 <"$T"
[ "$(sm_state)" = snapmirrored ] || fail "snapmirror: state $(sm_state), not snapmirrored after resync"
sm snapmirrored >"$T" && ontap_step "snapmirror resync again" 0 <"$T"
# netapp.ontap's form: state present + relationship_state broken / active.
sm present 'relationship_state: broken' >"$T" && ontap_step "snapmirror relationship_state broken" 2 <"$T"
sm present 'relationship_state: active' >"$T" && ontap_step "snapmirror relationship_state active" 2 <"$T"
sm present 'relationship_state: active' >"$T" && ontap_step "snapmirror relationship_state active again" 0 <"$T"
# max_lag: within it, nothing; update without max_lag: a transfer each run.
sm snapmirrored 'max_lag: P1D' >"$T" && ontap_step "snapmirror lag within max_lag" 0 <"$T"
# A lag past max_lag is drift; with update it starts a transfer, after
# which the lag is within it again.
ontap_api PATCH /_fake/snapmirror '{"destination": "svm_dr:i_dst", "set": {"lag_seconds": 7200}}' \
    >/dev/null || fail "setting the lag"
sm snapmirrored 'max_lag: PT1H' >"$T" && ontap_run 2 --check <"$T"
sm snapmirrored 'max_lag: PT1H
    update: true' >"$T" && ontap_step "snapmirror lag past max_lag, update" 2 <"$T"
sm snapmirrored 'max_lag: PT1H' >"$T" && ontap_step "snapmirror lag within max_lag after update" 0 <"$T"
# Without update too: a lag past max_lag is healed by a transfer.
ontap_api PATCH /_fake/snapmirror '{"destination": "svm_dr:i_dst", "set": {"lag_seconds": 7200}}' \
    >/dev/null || fail "setting the lag"
sm snapmirrored 'max_lag: PT1H' >"$T" && ontap_step "snapmirror lag past max_lag healed" 2 <"$T"
# (an action, not a state: a --check after it still predicts a transfer)
sm snapmirrored 'update: true' >"$T" && ontap_run 2 <"$T"
ontap_run 2 --check <"$T"
sm absent >"$T" && ontap_step "snapmirror delete" 2 <"$T"
[ "$(ontap_count "$RQ")" = 0 ] || fail "snapmirror absent left the relationship"
sm absent >"$T" && ontap_step "snapmirror delete again" 0 <"$T"
# A relationship left uninitialized, then driven to broken_off in one task
# (to a new destination: the DP volume i_dst outlives its relationship, and
# ONTAP refuses to create a destination that exists).
RQ="/api/snapmirror/relationships?destination.path=svm_dr:i_dst2&fields=state"
sm() { # STATE EXTRA...
    _s=$1
    shift
    printf -- '- ontap_snapmirror: {source_path: "ontapai_nfs:i_src", destination_path: "svm_dr:i_dst2", create_destination: {enabled: true}, state: %s, %s, %s}\n' \
        "$_s" "$CONN" "$*"
}
sm present 'initialize: false' >"$T" && ontap_step "snapmirror create uninitialized" 2 <"$T"
[ "$(sm_state)" = uninitialized ] || fail "snapmirror: state $(sm_state), not uninitialized"
sm present 'initialize: false' >"$T" && ontap_step "snapmirror uninitialized again" 0 <"$T"
sm broken_off >"$T" && ontap_step "snapmirror uninitialized to broken_off" 2 <"$T"
sm absent >"$T" && ontap_step "snapmirror delete broken_off" 2 <"$T"

# ---- version gating: fields ONTAP 9.6 lacks fail before anything is sent ---
ontap_config '{"version": "9.6.0"}'
printf -- '- ontap_snapmirror: {source_path: "ontapai_nfs:i_src", destination_path: "svm_dr:i_dst9", create_destination: {enabled: true}, %s}\n' "$CONN" >"$T"
ontap_step "create_destination on 9.6" 1 <"$T"
ontap_expect_out "ONTAP 9.6 does not support snapmirror create_destination (needs 9.7 or later)"
printf -- '- ontap_snapmirror: {source_path: "ontapai_nfs:i_src", destination_path: "svm_dr:i_dst9", max_transfer_rate: 100, %s}\n' "$CONN" >"$T"
ontap_step "max_transfer_rate on 9.6" 1 <"$T"
ontap_expect_out "ONTAP 9.6 does not support snapmirror max_transfer_rate (throttle) (needs 9.8 or later)"
ontap_config '{"version": "9.8.0"}'

for f in "$OT"/*.out "$OT"/*.json; do
    ontap_no_leak "$f"
done
echo "all ONTAP module tests passed"
