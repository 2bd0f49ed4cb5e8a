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
#   tensorflow-results, a volume Trident made (the fake stand-in's PV names
#   it in internalName; its backend says defaults.snapshotPolicy and
#   exportPolicy): checked like the imports, never skipped silently; its
#   volume missing: drift 2 (deleted), then made through the fake's API
#   and in sync; re-exported and given another snapshot policy behind
#   Trident's back: drift 2 naming the PVC and the volume; deleted again:
#   drift 2; the counts of drift.txt and drift.json add up;
#   the drift output, drift.txt, drift.json and report.json say who last
#   changed the volume through aicp (site and run), and an ONTAP object
#   with a comment of its own still carries aicp's stamp (once the ONTAP
#   modules take provenance);
#   the ONTAP password (the canary, from a vaulted -e @FILE) never appears
#   in any output or report.
. "$top_srcdir/tests/integration/lib.sh"

[ -x "$AICP" ] || skip "no aicp binary at $AICP"
[ -f "$top_srcdir/tests/fakes/ontap_server.py" ] || skip "no fake ONTAP server"
"$AICP" modules ontap_volume >/dev/null 2>&1 || skip "this aicp has no ontap_volume module"
SITE0=$top_srcdir/inventory/ontap-ai-pod.site.yml

# Both fakes; ontap_fake_down (at exit) stops the Kubernetes one too.
kube_fake_up --crds trident --controller
ontap_fake_up
T=$ODIR
SEC=$ODIR/secret-inputs
cp "$KCFG" "$T/kubeconfig"
unset KUBECONFIG

# The pod, with volume defaults on the backend of new volumes (what the
# cross-layer pass compares a Trident-made volume with).
python3 - "$SITE0" "$T/pod.site.yml" <<'EOF' || fail "making the test site"
import os, sys
src, dst = sys.argv[1:3]
t = open(src).read()
old = "      svm: ontapai_nfs\n      data_lif: 192.168.11.11\n\n"
assert t.count(old) == 1 and t.count("inventory: ontap-ai-pod.ini\n") == 1
t = t.replace(old, old[:-1] + "      defaults: {exportPolicy: default, snapshotPolicy: default}\n\n")
t = t.replace("inventory: ontap-ai-pod.ini\n",
              "inventory: %s\n" % os.path.join(os.path.dirname(src), "ontap-ai-pod.ini"))
open(dst, "w").write(t)
EOF
SITE=$T/pod.site.yml

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
# kget PATH FIELD: a field (dotted) of a Kubernetes object of the fake.
# kpatch PATH JSON: a merge patch to one.
kget() {
    python3 - "$KURL" "$KDIR/ca.pem" "$KDIR/secret-inputs/token" "$1" "$2" <<'EOF'
import json, ssl, sys, urllib.request
url, ca, tokfile, path, field = sys.argv[1:6]
req = urllib.request.Request(url + path)
req.add_header("Authorization", "Bearer " + open(tokfile).read().strip())
with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=20) as r:
    v = json.load(r)
for k in field.split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)
EOF
}
kpatch() {
    python3 - "$KURL" "$KDIR/ca.pem" "$KDIR/secret-inputs/token" "$1" "$2" <<'EOF'
import ssl, sys, urllib.request
url, ca, tokfile, path, body = sys.argv[1:6]
req = urllib.request.Request(url + path, data=body.encode(), method="PATCH")
req.add_header("Authorization", "Bearer " + open(tokfile).read().strip())
req.add_header("Content-Type", "application/merge-patch+json")
urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=20).read()
EOF
}
# fake_vol NAME JSON: changes a volume behind Trident's back ("set" or "delete").
fake_vol() {
    ontap PATCH /_fake/volume "{\"name\": \"$1\", \"svm\": \"ontapai_nfs\", $2}" >/dev/null ||
        fail "changing $1 through the fake: $2"
}
# make_tfv: the volume of tensorflow-results, as Trident makes it (its
# backend's defaults).
make_tfv() {
    ontap POST /api/storage/volumes "{\"name\": \"$TFV\", \"svm\": {\"name\": \"ontapai_nfs\"},
        \"size\": 1099511627776, \"nas\": {\"export_policy\": {\"name\": \"default\"}},
        \"snapshot_policy\": {\"name\": \"default\"}}" >/dev/null || fail "making $TFV"
}

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

# ---- a volume Trident made: tensorflow-results ------------------------------
# Its PV names the volume (storagePrefix + the PV's name); no Trident runs
# here, so the volume is not there yet: deleted, as if removed behind
# Trident's back.
pv=$(kget /api/v1/namespaces/default/persistentvolumeclaims/tensorflow-results spec.volumeName)
TFV=$(kget "/api/v1/persistentvolumes/$pv" spec.csi.volumeAttributes.internalName)
[ -n "$TFV" ] || fail "the PV of tensorflow-results names no ONTAP volume"
TFHEAD="pvc default/tensorflow-results -> ONTAP volume ontapai_nfs:$TFV (aff-a220)"
site drift 2 --report "$T/report-deleted"
expect "cross-layer: $TFHEAD"
expect 'deleted: want "present", have "absent"'
grep -q -F "cross-layer: 1 of 3 PVCs' ONTAP volumes changed behind Trident's back, 0 not checked" \
    "$T/report-deleted/drift.txt" || { cat "$T/report-deleted/drift.txt" >&2; fail "drift.txt miscounts"; }
make_tfv
site drift 0 --report "$T/report-clean"
expect "DRIFT: 0 resources drifted"
expect "TASK [cross-layer pvc default/pb-fg-all-iface1 -> ONTAP volume ontapai_nfs:pb_fg_all (aff-a220)]"
expect "TASK [cross-layer $TFHEAD]"
expect_not "not checked"
grep -q -F "cross-layer: 0 of 3 PVCs' ONTAP volumes changed behind Trident's back, 0 not checked" \
    "$T/report-clean/drift.txt" || { cat "$T/report-clean/drift.txt" >&2; fail "drift.txt miscounts"; }
python3 - "$T/report-clean/drift.json" <<'EOF' || fail "drift.json does not list every PVC"
import json, sys
r = json.load(open(sys.argv[1]))
c = sorted(x["pvc"] for x in r["cross_layer"])
assert c == ["pvc default/pb-fg-all-iface1", "pvc default/pb-fg-all-iface2",
             "pvc default/tensorflow-results"], c
assert all(x["status"] == "in_sync" for x in r["cross_layer"]), r["cross_layer"]
assert r["cross_layer_drifted"] == 0 and r["cross_layer_not_checked"] == 0, r
assert r["site"] == "ontap-ai-pod" and r["run_id"], r
EOF

# A PV that does not name its volume: not checked, and said so with why
# (never a silent pass); the counts say it too.
kpatch "/api/v1/persistentvolumes/$pv" \
    '{"spec": {"csi": {"volumeAttributes": {"internalName": null}}}}' || fail "patching the PV"
site drift 0 --report "$T/report-unnamed"
expect "TASK [cross-layer pvc default/tensorflow-results]"
expect "not checked: the PV does not name its ONTAP volume"
expect "cross-layer not checked: pvc default/tensorflow-results: the PV does not name"
expect "1 PVC not checked across layers"
grep -q -F "cross-layer: 0 of 3 PVCs' ONTAP volumes changed behind Trident's back, 1 not checked" \
    "$T/report-unnamed/drift.txt" || { cat "$T/report-unnamed/drift.txt" >&2; fail "drift.txt miscounts"; }
python3 - "$T/report-unnamed" <<'EOF' || fail "the reports do not list the PVC not checked"
import json, sys
d = json.load(open(sys.argv[1] + "/drift.json"))
x = [c for c in d["cross_layer"] if c["pvc"] == "pvc default/tensorflow-results"]
assert len(x) == 1 and x[0]["status"] == "skipped" and "internalName" in x[0]["msg"], x
assert d["cross_layer_not_checked"] == 1, d
r = json.load(open(sys.argv[1] + "/report.json"))
assert [n["id"] for n in r["drift"]["not_checked"]] == \
    ["cross_layer/pvc default/tensorflow-results"], r["drift"]
assert "<skipped" in open(sys.argv[1] + "/junit.xml").read()
EOF
kpatch "/api/v1/persistentvolumes/$pv" \
    "{\"spec\": {\"csi\": {\"volumeAttributes\": {\"internalName\": \"$TFV\"}}}}" ||
    fail "restoring the PV"

# re-exported behind Trident's back (its backend says exportPolicy default)
fake_vol "$TFV" '"set": {"nas.export_policy.name": "ontap-ai"}'
site drift 2 --report "$T/report-reexport"
expect "cross-layer: $TFHEAD"
expect 're-exported: nas.export_policy.name: want "default", have "ontap-ai"'
grep -q -F '"what": "re-exported"' "$T/report-reexport/drift.json" || fail "drift.json: no re-exported"
fake_vol "$TFV" '"set": {"nas.export_policy.name": "default"}'
# another snapshot policy (its backend says snapshotPolicy default)
fake_vol "$TFV" '"set": {"snapshot_policy.name": "none"}'
site drift 2
expect "cross-layer: $TFHEAD"
expect 'snapshot-policy: snapshot_policy.name: want "default", have "none"'
fake_vol "$TFV" '"set": {"snapshot_policy.name": "default"}'
site drift 0
# deleted behind Trident's back
fake_vol "$TFV" '"delete": true'
site drift 2
expect "cross-layer: $TFHEAD"
expect 'deleted: want "present", have "absent"'
expect "1 PVC whose ONTAP volume changed behind Trident's back"
make_tfv
site drift 0

# ---- resized behind aicp's back ------------------------------------------------
ontap PATCH /_fake/volume '{"name": "pb_fg_all", "svm": "ontapai_nfs", "set": {"size": 8796093022208}}' \
    >/dev/null || fail "resizing pb_fg_all through the fake"
site drift 2 --report "$T/report"
expect "cross-layer: pvc default/pb-fg-all-iface1 -> ONTAP volume ontapai_nfs:pb_fg_all"
expect "cross-layer: pvc default/pb-fg-all-iface2 -> ONTAP volume ontapai_nfs:pb_fg_all"
expect "resized: size: want $TEN_TB, have 8796093022208"
expect "PVCs whose ONTAP volume changed behind Trident's back"
expect "last changed by aicp site=ontap-ai-pod run="
python3 - "$T/report/drift.json" <<'EOF' || fail "drift.json does not list the cross-layer drift"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["drifted"] is True, r
x = [c for c in r["cross_layer"] if c["status"] == "drifted"]
assert sorted(c["pvc"] for c in x) == ["pvc default/pb-fg-all-iface1",
                                       "pvc default/pb-fg-all-iface2"], x
assert all(c["volume"] == "ontapai_nfs:pb_fg_all" for c in x), x
assert all(f["what"] == "resized" and f["field"] == "size" for c in x for f in c["findings"]), x
# who last changed it through aicp: the volume's stamp
assert all(c["last_changed_by"].startswith("site=ontap-ai-pod run=") for c in x), x
v = [c for c in r["resources"] if c["id"] == "ontap_volume/ontapai_nfs/pb_fg_all"]
assert v[0]["status"] == "drifted", v
assert v[0]["last_changed_by"].startswith("site=ontap-ai-pod run="), v
EOF
python3 - "$T/report/report.json" <<'EOF' || fail "report.json does not say who last changed the volume"
import json, sys
r = json.load(open(sys.argv[1]))
d = [x for x in r["drift"]["drifted"] if x["id"].startswith("cross_layer/")]
assert len(d) == 2 and all(x["last_changed_by"].startswith("site=ontap-ai-pod run=") for x in d), d
EOF
grep -q "last changed by aicp site=ontap-ai-pod run=" "$T/report/drift.txt" ||
    fail "drift.txt does not say who last changed the volume"
grep -q "last changed by aicp site=ontap-ai-pod run=" "$T/report/report.html" ||
    fail "report.html does not say who last changed the volume"
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

# ---- provenance of ONTAP objects with a comment of their own -----------------
# The baseline snapshot's comment is the site's; with the modules'
# provenance argument the stamp follows it (and is never drift).
if "$AICP" modules ontap_snapshot 2>/dev/null | grep -q "^[-=] provenance "; then
    ontap GET "/api/storage/volumes/$uuid/snapshots?name=baseline&fields=comment" |
        grep -q '"comment": *"dataset baseline for the ResNet-50 runs \[aicp site=ontap-ai-pod run=[^]]*\]"' ||
        fail "the baseline snapshot's own comment carries no aicp stamp"
fi

# ---- the secrets never showed -------------------------------------------------
for f in "$T"/out.* "$T/apply.json" "$T"/report*/*; do
    ! grep -q -F -e "$CANARY" "$f" || fail "the canary is in $f"
done
echo "test_site_ontap: $(( $(date +%s) - t0 )) s"
exit 0
