# Cases of the ontap_volume, ontap_clone, ontap_export_policy and ontap_info
# modules against the fake ONTAP server. Not a test on its own:
# tests/integration/test_ontap_modules.sh sources it once the fake is up,
# and provides (see its header) $OT, $SEC (vars.yml with ontap_hostname,
# ontap_password, ontap_ca_file, passed to every run), $CONN (the
# connection arguments as flow-style pairs), ontap_step LABEL RC [ARGS...]
# (tasks on stdin: --check, then the real run, same exit status and
# statuses, then a --check that finds nothing), ontap_run RC [ARGS...],
# $OUT / $REPORT of the last real run, ontap_api, ontap_field PATH FIELD,
# ontap_count, ontap_config, ontap_expect_out, ontap_no_leak.
# Tasks go through a file, not a pipe (ontap_step in a pipeline runs in a
# subshell). Every name here starts with "h_" so that it cannot collide
# with the other cases.

H=$OT/h-tasks.yml
SVM=ontapai_nfs
VOLQ="/api/storage/volumes?svm.name=$SVM"

# vol NAME [more flow pairs]: an ontap_volume task.
vol() {
    printf -- '- ontap_volume: {name: %s, vserver: %s, %s, %s}\n' "$1" "$SVM" "$CONN" "$2"
}
vfield() { # VOLUME FIELD
    ontap_field "$VOLQ&name=$1&fields=$2" "$2"
}

# ---- ontap_volume: the cycle -----------------------------------------------
vol h_vol1 'aggregate_name: aggr1, size: 10, junction_path: /h_vol1, space_guarantee: none' >"$H"
ontap_step "volume create" 2 <"$H"
[ "$(vfield h_vol1 size)" = 10737418240 ] || fail "volume: h_vol1 is not 10 GiB"
[ "$(vfield h_vol1 nas.path)" = /h_vol1 ] || fail "volume: h_vol1 is not mounted at /h_vol1"
case $(vfield h_vol1 comment) in
"[aicp site="*"]") ;;
*) fail "volume: a new volume without a comment has no provenance: $(vfield h_vol1 comment)" ;;
esac
ontap_step "volume again" 0 <"$H"
# The same volume written differently: units, case, permissions.
vol h_vol1 'aggregate_name: aggr1, size: 10Gi, junction_path: /h_vol1, space_guarantee: NONE' >"$H"
ontap_step "volume again, normalised" 0 <"$H"
vol h_vol1 'aggregate_name: aggr1, size: 20, junction_path: /h_vol1b, space_guarantee: none, comment: results' >"$H"
ontap_step "volume different" 2 --diff <"$H"
# The executor hides a diff whenever a task has a secret argument (here
# the connection's password); where it shows it, only drifted fields show.
grep -q -F "diff hidden" "$OUT" || ontap_expect_out "nas.path"
[ "$(vfield h_vol1 size)" = 21474836480 ] || fail "volume: h_vol1 did not grow to 20 GiB"
[ "$(vfield h_vol1 nas.path)" = /h_vol1b ] || fail "volume: h_vol1 was not remounted"
[ "$(vfield h_vol1 comment)" = results ] || fail "volume: the comment is not 'results'"
vol h_vol1 'state: absent' >"$H"
ontap_step "volume delete" 2 <"$H"
[ "$(ontap_count "$VOLQ&name=h_vol1")" = 0 ] || fail "volume: state absent left h_vol1"
ontap_step "volume delete again" 0 <"$H"

# ---- provenance: "COMMENT [aicp site=NAME run=ID]", never a change alone ----
vol h_prov 'aggregate_name: aggr1, size: 1, provenance: "site=h-site run=h-run1"' >"$H"
ontap_step "provenance create" 2 <"$H"
[ "$(vfield h_prov comment)" = "[aicp site=h-site run=h-run1]" ] ||
    fail "provenance: h_prov's comment is '$(vfield h_prov comment)'"
# Another run, nothing else to change: the old stamp stays, no change.
vol h_prov 'aggregate_name: aggr1, size: 1, provenance: "site=h-site run=h-run2"' >"$H"
ontap_step "provenance alone is no change" 0 <"$H"
[ "$(vfield h_prov comment)" = "[aicp site=h-site run=h-run1]" ] ||
    fail "provenance: a stamp alone rewrote the comment: $(vfield h_prov comment)"
# A change for another reason renews the stamp in the same PATCH, and the
# user's comment goes before it.
vol h_prov 'aggregate_name: aggr1, size: 2, comment: "team data", provenance: "site=h-site run=h-run3"' >"$H"
ontap_step "provenance renewed with a change" 2 <"$H"
[ "$(vfield h_prov comment)" = "team data [aicp site=h-site run=h-run3]" ] ||
    fail "provenance: h_prov's comment is '$(vfield h_prov comment)'"
# The comment is compared without the stamp; the result (--check's too:
# drift reports read it) names who changed it last.
{ vol h_prov 'aggregate_name: aggr1, size: 2, comment: "team data", provenance: "site=h-site run=h-run4"'
  printf '  register: hp\n- assert: {that: ["hp.last_changed_by == \x27site=h-site run=h-run3\x27"]}\n'; } >"$H"
ontap_step "provenance: same comment, another run" 0 <"$H"
# A plain comment (no provenance) is written as given, as before.
vol h_prov 'comment: plain' >"$H"
ontap_step "plain comment" 2 <"$H"
[ "$(vfield h_prov comment)" = plain ] || fail "provenance: a plain comment became '$(vfield h_prov comment)'"
vol h_prov 'state: absent' >"$H"
ontap_step "provenance volume delete" 2 <"$H"

# ---- enums go out in ONTAP's spelling (the fake refuses any other) ----------
vol h_enum 'aggregate_name: aggr1, size: 1, tiering_policy: snapshot-only, volume_security_style: UNIX, space_guarantee: NONE' >"$H"
ontap_step "enums in other spellings, create" 2 <"$H"
[ "$(vfield h_enum tiering.policy)" = snapshot_only ] || fail "enum: tiering.policy is $(vfield h_enum tiering.policy)"
[ "$(vfield h_enum nas.security_style)" = unix ] || fail "enum: security style is $(vfield h_enum nas.security_style)"
ontap_step "enums in other spellings, again" 0 <"$H"
vol h_enum 'tiering_policy: AUTO, volume_security_style: Mixed' >"$H"
ontap_step "enums in other spellings, changed" 2 <"$H"
[ "$(vfield h_enum tiering.policy)" = auto ] || fail "enum: tiering.policy is $(vfield h_enum tiering.policy)"
[ "$(vfield h_enum nas.security_style)" = mixed ] || fail "enum: security style is $(vfield h_enum nas.security_style)"

# ---- offline: a mounted volume is unmounted in the same change ---------------
vol h_enum 'junction_path: /h_enum' >"$H"
ontap_step "volume mounted" 2 <"$H"
vol h_enum 'is_online: false' >"$H"
ontap_step "mounted volume taken offline" 2 <"$H"
[ "$(vfield h_enum state)" = offline ] || fail "offline: h_enum is $(vfield h_enum state)"
[ "$(vfield h_enum nas.path)" = "" ] || fail "offline: h_enum is still mounted at $(vfield h_enum nas.path)"
ontap_step "offline again" 0 <"$H"
vol h_enum 'is_online: false, junction_path: /h_enum' >"$H"
ontap_step "offline and mounted is refused" 1 <"$H"
ontap_expect_out "an offline volume cannot be mounted"
vol h_enum 'state: absent' >"$H"
ontap_step "enum volume delete" 2 <"$H"

# ---- a vanished job: re-read with a short backoff, then say so ---------------
# The job is 404 at once and the volume appears 1.5 s later: the re-reads
# find it.
ontap_fault '{"path_regex": "^/api/storage/volumes$", "method": "POST", "job": "vanish", "delay": 1.5, "count": 1}'
vol h_jn 'aggregate_name: aggr1, size: 1' >"$H"
ontap_run 2 <"$H"
[ "$(ontap_count "$VOLQ&name=h_jn")" = 1 ] || fail "vanished job: h_jn was not made"
# The job vanished and nothing happened: the error says so and what the
# re-read found.
ontap_fault '{"path_regex": "^/api/storage/volumes/", "method": "PATCH", "job": "vanish", "apply": false, "count": 1}'
vol h_jn 'size: 3' >"$H"
ontap_run 1 <"$H"
ontap_expect_out "vanished"
ontap_expect_out "still differs in: size"
vol h_jn 'state: absent' >"$H"
ontap_run 2 <"$H"

# ---- ontap_volume: permissions, offline and back, resize threshold ---------
vol h_vol2 'aggregate_name: aggr1, size: 100, junction_path: /h_vol2, unix_permissions: "0755", volume_security_style: unix' >"$H"
ontap_step "volume h_vol2 create" 2 <"$H"
vol h_vol2 'aggregate_name: aggr1, size: 100, junction_path: /h_vol2, unix_permissions: "---rwxr-xr-x", volume_security_style: UNIX' >"$H"
ontap_step "volume symbolic permissions unchanged" 0 <"$H"
vol h_vol2 'size: 104, resize_threshold: 5' >"$H"
ontap_step "volume growth within the threshold" 0 <"$H"
[ "$(vfield h_vol2 size)" = 107374182400 ] || fail "volume: a growth within the threshold resized h_vol2"
vol h_vol2 'size: 110, resize_threshold: 5' >"$H"
ontap_step "volume growth past the threshold" 2 <"$H"
[ "$(vfield h_vol2 size)" = 118111600640 ] || fail "volume: h_vol2 is not 110 GiB"
vol h_vol2 'size: 50' >"$H"
ontap_step "volume shrink refused" 1 <"$H"
ontap_expect_out "not shrunk unless allow_shrink"
[ "$(vfield h_vol2 size)" = 118111600640 ] || fail "volume: a refused shrink changed h_vol2"
# Offline needs an unmounted volume; online comes first when remounting.
vol h_vol2 'size: 110, junction_path: "", is_online: false' >"$H"
ontap_step "volume unmounted and offline" 2 <"$H"
[ "$(vfield h_vol2 state)" = offline ] || fail "volume: h_vol2 is not offline"
vol h_vol2 'size: 110, junction_path: /h_vol2, is_online: true' >"$H"
ontap_step "volume online and mounted" 2 <"$H"
[ "$(vfield h_vol2 nas.path)" = /h_vol2 ] || fail "volume: h_vol2 was not mounted again"

# ---- ontap_volume: FlexGroup ------------------------------------------------
vol h_fg 'aggr_list: [aggr1, aggr2], aggr_list_multiplier: 4, size: 2TB, junction_path: /h_fg' >"$H"
ontap_step "flexgroup create" 2 <"$H"
[ "$(vfield h_fg style)" = flexgroup ] || fail "volume: aggr_list did not make a FlexGroup"
[ "$(vfield h_fg size)" = 2199023255552 ] || fail "volume: h_fg is not 2 TiB"
ontap_step "flexgroup again" 0 <"$H"
vol h_fg 'style: flexvol, aggregate_name: aggr1, size: 2TB' >"$H"
ontap_step "flexgroup style cannot change" 1 <"$H"
ontap_expect_out "style cannot be changed"
vol h_fg 'state: absent' >"$H"
ontap_step "flexgroup delete" 2 <"$H"

# ---- ontap_clone ------------------------------------------------------------
clone() { # NAME [more flow pairs]
    printf -- '- ontap_clone: {name: %s, vserver: %s, parent_volume: h_vol2, %s, %s}\n' \
        "$1" "$SVM" "$CONN" "$2"
}
V2=$(vfield h_vol2 uuid)
[ -n "$V2" ] || fail "clone: no uuid for h_vol2"
ontap_api POST "/api/storage/volumes/$V2/snapshots" '{"name": "h_snap1"}' >/dev/null ||
    fail "clone: could not make Snapshot copy h_snap1 of h_vol2"
clone h_clone1 'parent_snapshot: h_snap1, junction_path: /h_clone1' >"$H"
ontap_step "clone create" 2 <"$H"
[ "$(vfield h_clone1 clone.is_flexclone)" = true ] || fail "clone: h_clone1 is not a FlexClone"
[ "$(vfield h_clone1 clone.parent_volume.name)" = h_vol2 ] || fail "clone: h_clone1's parent is not h_vol2"
[ "$(vfield h_clone1 clone.parent_snapshot.name)" = h_snap1 ] || fail "clone: h_clone1 is not of h_snap1"
ontap_step "clone again" 0 <"$H"
clone h_clone1 'parent_snapshot: h_snap1, junction_path: /h_clone1b' >"$H"
ontap_step "clone different" 2 --diff <"$H"
[ "$(vfield h_clone1 nas.path)" = /h_clone1b ] || fail "clone: h_clone1 was not remounted"
# The parent cannot go while the clone depends on it.
vol h_vol2 'state: absent' >"$H"
ontap_step "volume with a clone is not deleted" 1 <"$H"
ontap_expect_out "FlexClone children (h_clone1)"
[ "$(ontap_count "$VOLQ&name=h_vol2")" = 1 ] || fail "clone: the parent h_vol2 went"
clone h_clone1 'state: absent' >"$H"
ontap_step "clone delete" 2 <"$H"
[ "$(ontap_count "$VOLQ&name=h_clone1")" = 0 ] || fail "clone: state absent left h_clone1"
ontap_step "clone delete again" 0 <"$H"
# A volume of that name that is not a clone is never taken over.
vol h_plain 'aggregate_name: aggr2, size: 1' >"$H"
ontap_step "plain volume for the clash" 2 <"$H"
clone h_plain 'junction_path: /h_plain' >"$H"
ontap_step "clone name clash" 1 <"$H"
ontap_expect_out "volume h_plain exists and is not a FlexClone of h_vol2"
# split: the clone becomes independent, and stays unchanged after.
clone h_clone2 'junction_path: /h_clone2, split: true' >"$H"
ontap_step "clone create and split" 2 <"$H"
[ "$(vfield h_clone2 clone.split_initiated)" = true ] ||
    [ "$(vfield h_clone2 clone.is_flexclone)" = false ] || fail "clone: h_clone2 was not split"
ontap_step "clone split again" 0 <"$H"
clone h_clone3 'junction_path: /h_clone3' >"$H"
ontap_step "clone without split" 2 <"$H"
clone h_clone3 'junction_path: /h_clone3, split: true' >"$H"
ontap_step "clone split later" 2 <"$H"
rm -f "$OT/h-cleanup.yml"
for v in h_clone2 h_clone3 h_plain; do
    vol "$v" 'state: absent' >>"$OT/h-cleanup.yml"
done
ontap_step "clones and clash volume removed" 2 <"$OT/h-cleanup.yml"

# ---- ontap_export_policy -------------------------------------------------------
pol() { # RULES-OR-STATE (flow pairs)
    printf -- '- ontap_export_policy: {name: h_pol, vserver: %s, %s, %s}\n' "$SVM" "$CONN" "$1"
}
pol 'rules: [{clients: [192.168.11.0/24, 192.168.12.0/24], protocols: [nfs3, nfs4], superuser: [sys]}, {clients: 10.61.218.0/24, rw_rule: [never]}]' >"$H"
ontap_step "export policy create" 2 <"$H"
PID=$(ontap_field "/api/protocols/nfs/export-policies?svm.name=$SVM&name=h_pol&fields=id" id)
[ -n "$PID" ] || fail "export policy: h_pol was not created"
[ "$(ontap_count "/api/protocols/nfs/export-policies/$PID/rules")" = 2 ] ||
    fail "export policy: h_pol does not have 2 rules"
ontap_step "export policy again" 0 <"$H"
# Lists inside a rule reordered and enums in upper case: no change.
pol 'rules: [{clients: "192.168.12.0/24, 192.168.11.0/24", protocols: [nfs4, NFS3], superuser: [SYS]}, {clients: 10.61.218.0/24, rw_rule: [NEVER], ro_rule: [sys]}]' >"$H"
ontap_step "export policy lists reordered unchanged" 0 <"$H"
# The rules in another order: ONTAP evaluates them by index, so that is a
# change, made in place.
pol 'rules: [{clients: 10.61.218.0/24, rw_rule: [never]}, {clients: [192.168.11.0/24, 192.168.12.0/24], protocols: [nfs3, nfs4], superuser: [sys]}]' >"$H"
ontap_step "export policy rules reordered" 2 <"$H"
[ "$(ontap_field "/api/protocols/nfs/export-policies/$PID/rules?fields=clients,index" records.0.clients.0.match)" = 10.61.218.0/24 ] ||
    fail "export policy: the first rule is not 10.61.218.0/24 after the reorder"
ontap_step "export policy rules reordered again" 0 <"$H"
# One field of one rule: the diff shows that field, not ONTAP's defaults.
pol 'rules: [{clients: 10.61.218.0/24, rw_rule: [krb5]}, {clients: [192.168.11.0/24, 192.168.12.0/24], protocols: [nfs3, nfs4], superuser: [sys]}]' >"$H"
ontap_step "export policy one field" 2 --diff <"$H"
if grep -q -E '^-.*"anonymous_user"' "$OUT"; then cat "$OUT" >&2; fail "export policy: the diff shows anonymous_user as removed"; fi
pol 'rules: [{clients: [192.168.11.0/24, 192.168.12.0/24], protocols: [nfs3, nfs4], superuser: [sys]}, {clients: 10.61.218.0/24, rw_rule: [sys]}, {clients: 10.0.0.1}]' >"$H"
ontap_step "export policy different" 2 --diff <"$H"
[ "$(ontap_count "/api/protocols/nfs/export-policies/$PID/rules")" = 3 ] ||
    fail "export policy: h_pol does not have 3 rules"
pol 'rules: [{clients: 10.0.0.1}]' >"$H"
ontap_step "export policy rules removed" 2 <"$H"
[ "$(ontap_count "/api/protocols/nfs/export-policies/$PID/rules")" = 1 ] ||
    fail "export policy: h_pol does not have 1 rule"
# In use by a volume: --check fails as the real delete does (1703957).
vol h_polvol "aggregate_name: aggr1, size: 1, export_policy: h_pol" >"$H"
ontap_step "volume using h_pol" 2 <"$H"
pol 'state: absent' >"$H"
ontap_step "export policy in use is not deleted" 1 <"$H"
ontap_expect_out "in use by volume h_polvol"
[ "$(ontap_count "/api/protocols/nfs/export-policies?svm.name=$SVM&name=h_pol")" = 1 ] ||
    fail "export policy: h_pol went while in use"
vol h_polvol 'state: absent' >"$H"
ontap_step "volume using h_pol delete" 2 <"$H"
pol 'state: absent' >"$H"
ontap_step "export policy delete" 2 <"$H"
ontap_step "export policy delete again" 0 <"$H"

# ---- ontap_info ----------------------------------------------------------------
cat >"$H" <<EOF
- ontap_info: {$CONN, vserver: $SVM}
  register: facts
- debug:
    msg: "cluster={{ facts.ontap_info.cluster.name }} vols={{ facts.ontap_info.volumes | map(attribute='name') | join(',') }} aggrs={{ facts.ontap_info.aggregates | length }}"
EOF
ontap_step "ontap_info" 0 <"$H"
ontap_expect_out "cluster=fake-cluster"
ontap_expect_out "h_vol2"
# na_ontap_rest_info's shape too.
cat >"$H" <<EOF
- ontap_info: {$CONN, vserver: $SVM, gather_subset: [storage/volumes, svm/svms]}
  register: facts
- debug:
    msg: "n={{ facts.ontap_info['storage/volumes'].num_records }} rest={{ facts.ontap_info['storage/volumes'].records | map(attribute='name') | join(',') }} svm={{ facts.ontap_info['svm/svms'].records[0].name }}"
EOF
ontap_step "ontap_info, na_ontap_rest_info keys" 0 <"$H"
ontap_expect_out "svm=$SVM"
grep -q -E 'rest=[^"]*h_vol2' "$OUT" || { cat "$OUT" >&2; fail "ontap_info: storage/volumes.records has no h_vol2"; }
cat >"$H" <<EOF
- ontap_info: {$CONN, gather_subset: [nothing]}
EOF
ontap_step "ontap_info unknown subset" 1 <"$H"
ontap_expect_out "unknown subset 'nothing'"

# ---- async jobs: ONTAP answers 202 and aicp waits for the job ------------------
ontap_config '{"job_delay": 1.5, "force_async": true}'
vol h_async 'aggregate_name: aggr1, size: 1, junction_path: /h_async' >"$H"
ontap_step "volume create through a job" 2 <"$H"
ontap_api GET /_fake/requests | python3 -c '
import json, sys
reqs = json.load(sys.stdin)
posted = [r for r in reqs if r.get("method") == "POST" and r.get("path", "").startswith("/api/storage/volumes") and r.get("status") == 202]
polled = [r for r in reqs if r.get("method") == "GET" and r.get("path", "").startswith("/api/cluster/jobs/")]
sys.exit(0 if posted and polled else "no 202 answer to a volume POST, or no job polled")' ||
    fail "async: the volume was not created through a job"
vol h_async 'aggregate_name: aggr1, size: 2, junction_path: /h_async' >"$H"
ontap_step "volume resize through a job" 2 <"$H"
[ "$(vfield h_async size)" = 2147483648 ] || fail "async: h_async is not 2 GiB"
vol h_async 'state: absent' >"$H"
ontap_step "volume delete through jobs" 2 <"$H"
ontap_config '{"job_delay": 0, "force_async": false}'

# ---- the password never shows --------------------------------------------------
vol h_vol2 'size: 110' >"$H"
printf '  register: v\n- debug: {var: v}\n' >>"$H"
ontap_run 0 -vvv --diff <"$H"
ontap_no_leak "$OUT" "$REPORT"
vol h_vol2 'size: 120' >"$H"
ontap_step "volume grow, verbose" 2 -vvv --diff <"$H"
ontap_no_leak "$OUT" "$REPORT" "$OT/check.out" "$OT/check.json" "$OT/verify.out"
vol h_vol2 'state: absent' >"$H"
ontap_step "volume h_vol2 delete" 2 -vvv <"$H"
ontap_no_leak "$OUT" "$REPORT"
