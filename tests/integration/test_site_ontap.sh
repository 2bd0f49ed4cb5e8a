#!/bin/sh
# The whole TR-4798 pod (inventory/ontap-ai-pod.site.yml): its storage
# against the fake ONTAP REST server (tests/fakes/ontap_server.py) and its
# Kubernetes side against the fake API server (tests/fakes/kube_apiserver.py
# with Trident's CRDs and controller stand-in), together, from empty:
#   plan 2 (nothing made), apply 2 (export policy, FlexGroup, snapshot,
#   FlexClone, SnapMirror, backends, classes, PVCs; ONTAP objects carry the
#   site's provenance), apply again 0, drift 0 (the cross-layer checks in
#   sync);
#   pb_fg_all resized behind aicp's back (the fake's PATCH /_fake/volume):
#   drift 2 naming the PVCs that import it and the volume, drift.json lists
#   it under cross_layer; apply grows it back; drift 0;
#   pb_fg_all taken offline: drift 2 (offline) the same way; apply brings
#   it online; drift 0;
#   the ONTAP password (the canary, from a vaulted -e @FILE) never appears
#   in any output or report.
. "$top_srcdir/tests/integration/lib.sh"

[ -x "$AICP" ] || skip "no aicp binary at $AICP"
[ -f "$top_srcdir/tests/fakes/ontap_server.py" ] || skip "no fake ONTAP server"
"$AICP" modules ontap_volume >/dev/null 2>&1 || skip "this aicp has no ontap_volume module"
SITE=$top_srcdir/inventory/ontap-ai-pod.site.yml

# Both fakes; ontap_fake_down (at exit) stops the Kubernetes one too.
kube_fake_up --crds trident --controller
ontap_fake_up
T=$ODIR
SEC=$ODIR/secret-inputs
cp "$KCFG" "$T/kubeconfig"
unset KUBECONFIG

# The ONTAP password (the fake's admin: pw-CANARY) in a vaulted vars file.
printf 'vault-pass-%s\n' "$$" >"$SEC/vault-pass"
printf 'vault_ontap_password: "pw-%s"\nvault_airflow_git_ssh_key: "key-%s"\n' "$CANARY" "$CANARY" \
    >"$SEC/secrets.yml"
"$AICP" vault encrypt --vault-password-file "$SEC/vault-pass" "$SEC/secrets.yml" >/dev/null 2>&1 ||
    fail "aicp vault encrypt"
grep -q '^\$ANSIBLE_VAULT' "$SEC/secrets.yml" || fail "the vars file is not vaulted"
V="-e @$SEC/secrets.yml --vault-password-file $SEC/vault-pass --kubeconfig $T/kubeconfig"
V="$V -e ontap_management_lif=$OHOST -e ontap_ca_file=$OCA"
# The storage and the objects Trident needs; the cluster and Helm layers
# are test_site_cluster.sh's.
V="$V --only ontap,namespaces,trident,storage_classes,pvcs,cross_layer"

n=0
# site CMD WANT-RC [ARGS...]: runs aicp CMD on $SITE; output in $OUT.
site() {
    _cmd=$1 _want=$2
    shift 2
    n=$((n + 1))
    OUT=$T/out.$n
    # shellcheck disable=SC2086
    "$AICP" "$_cmd" "$SITE" $V "$@" >"$OUT" 2>&1
    _rc=$?
    [ "$_rc" = "$_want" ] || { cat "$OUT" >&2; fail "aicp $_cmd $* exited $_rc, not $_want"; }
}
expect() { grep -q -F -e "$1" "$OUT" || { cat "$OUT" >&2; fail "the output does not say: $1"; }; }
expect_not() { ! grep -q -F -e "$1" "$OUT" || { cat "$OUT" >&2; fail "the output says: $1"; }; }

# ontap METHOD PATH [JSON]: one request to the fake ONTAP as admin.
ontap() {
    python3 - "https://$OHOST" "$OCA" "$SEC/users" "$@" <<'EOF'
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
# vol FIELD: a field of pb_fg_all ("" when absent or no volume).
vol() {
    ontap GET "/api/storage/volumes?name=pb_fg_all&svm.name=ontapai_nfs&fields=$1" |
        python3 -c '
import json, sys
r = json.load(sys.stdin).get("records") or [{}]
v = r[0]
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1"
}
count() { ontap GET "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["num_records"])'; }

TEN_TB=10995116277760

# ---- from empty ------------------------------------------------------------
t0=$(date +%s)
site plan 2
expect "TASK [ontap_volume ontapai_nfs/pb_fg_all]"
expect "TASK [ontap_snapmirror ontapai_nfs:pb_fg_all -> svm_dr:pb_fg_all_dr]"
expect "TASK [pvc default/pb-fg-all-iface1]"
[ "$(count '/api/storage/volumes?name=pb_fg_all')" = 0 ] || fail "plan created the volume"

site apply 2 --json "$T/apply.json"
expect_not "FAILED!"
expect "changed: [ontap-ai-pod]"
[ "$(vol style)" = flexgroup ] || fail "pb_fg_all is not a FlexGroup: $(vol style)"
[ "$(vol size)" = "$TEN_TB" ] || fail "pb_fg_all is $(vol size) bytes, not 10 TB"
[ "$(vol nas.path)" = /pb_fg_all ] || fail "pb_fg_all is not mounted at /pb_fg_all"
[ "$(vol nas.export_policy.name)" = ontap-ai ] || fail "pb_fg_all is not exported by ontap-ai"
case $(vol comment) in
*site=ontap-ai-pod*run=*) ;;
*) fail "pb_fg_all carries no provenance: '$(vol comment)'" ;;
esac
uuid=$(vol uuid)
[ "$(count "/api/storage/volumes/$uuid/snapshots?name=baseline")" = 1 ] ||
    fail "no baseline snapshot of pb_fg_all"
ontap GET '/api/storage/volumes?name=pb_fg_all_workspace&fields=clone' |
    grep -q '"is_flexclone": *true' || fail "pb_fg_all_workspace is not a FlexClone"
ontap GET '/api/snapmirror/relationships?destination.path=svm_dr:pb_fg_all_dr&fields=state' |
    grep -q '"state": *"snapmirrored"' || fail "pb_fg_all is not mirrored to svm_dr"

site apply 0
expect_not "changed:"
site drift 0
expect "DRIFT: 0 resources drifted"
expect "TASK [cross-layer pvc default/pb-fg-all-iface1 -> ONTAP volume ontapai_nfs:pb_fg_all (aff-a220)]"

# ---- resized behind aicp's back ------------------------------------------------
ontap PATCH /_fake/volume '{"name": "pb_fg_all", "svm": "ontapai_nfs", "set": {"size": 8796093022208}}' \
    >/dev/null || fail "resizing pb_fg_all through the fake"
site drift 2 --report "$T/report"
expect "cross-layer: pvc default/pb-fg-all-iface1 -> ONTAP volume ontapai_nfs:pb_fg_all"
expect "cross-layer: pvc default/pb-fg-all-iface2 -> ONTAP volume ontapai_nfs:pb_fg_all"
expect "resized: size: want $TEN_TB, have 8796093022208"
expect "PVCs whose ONTAP volume changed behind Trident's back"
python3 - "$T/report/drift.json" <<'EOF' || fail "drift.json does not list the cross-layer drift"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["drifted"] is True, r
x = [c for c in r["cross_layer"] if c["status"] == "drifted"]
assert sorted(c["pvc"] for c in x) == ["pvc default/pb-fg-all-iface1",
                                       "pvc default/pb-fg-all-iface2"], x
assert all(c["volume"] == "ontapai_nfs:pb_fg_all" for c in x), x
assert all(f["what"] == "resized" and f["field"] == "size" for c in x for f in c["findings"]), x
EOF
grep -q "cross-layer drifted: pvc default/pb-fg-all-iface1 -> ONTAP volume ontapai_nfs:pb_fg_all" \
    "$T/report/drift.txt" || fail "drift.txt does not name the PVC and the volume"
[ "$(vol size)" = 8796093022208 ] || fail "drift changed the volume"
site apply 2
[ "$(vol size)" = "$TEN_TB" ] || fail "apply did not grow pb_fg_all back: $(vol size)"
site drift 0

# ---- taken offline ---------------------------------------------------------------
ontap PATCH /_fake/volume '{"name": "pb_fg_all", "svm": "ontapai_nfs", "set": {"state": "offline"}}' \
    >/dev/null || fail "taking pb_fg_all offline through the fake"
site drift 2 --report "$T/report2"
expect "cross-layer: pvc default/pb-fg-all-iface1 -> ONTAP volume ontapai_nfs:pb_fg_all"
expect "offline: state: want \"online\", have \"offline\""
grep -q '"what": "offline"' "$T/report2/drift.json" || fail "drift.json does not say offline"
site apply 2
[ "$(vol state)" = online ] || fail "apply did not bring pb_fg_all online: $(vol state)"
site drift 0

# ---- the secrets never showed -------------------------------------------------
for f in "$T"/out.* "$T/apply.json" "$T"/report*/*; do
    ! grep -q -F -e "$CANARY" "$f" || fail "the canary is in $f"
done
echo "test_site_ontap: $(( $(date +%s) - t0 )) s"
exit 0
