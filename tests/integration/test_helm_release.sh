#!/bin/sh
# helm_release against the stand-in helm of tests/lab/helm (a recorded-
# behaviour helm 3 that keeps releases in $AICP_HELM_STATE and logs every
# call): install, an unchanged second run that does not call upgrade, value
# and chart version changes, check mode that predicts each without calling
# upgrade, uninstall twice, and a vaulted value that reaches neither any
# process's argv nor the output, through a values file that is 0600 in a
# 0700 directory and gone after the run.
set -u
: "${top_srcdir:?}" "${AICP:?}"
. "$top_srcdir/tests/integration/lib.sh"
command -v python3 >/dev/null 2>&1 || skip "python3 is needed by the stand-in helm"

T=$(mktemp -d "${TMPDIR:-/tmp}/aicp-helm-test.XXXXXX") || fail "mktemp"
# What the runs left in the scratch directory is scanned for the canary
# (test_zz_canary.sh reads the record) before it goes.
cleanup() {
    canary_scan "$(basename "$0" .sh)-$$" "$T"
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
export AICP_HELM_STATE="$T/state"
mkdir -p "$T/tmp" "$T/secret-inputs"
chmod 700 "$T/secret-inputs"
PATH="$top_srcdir/tests/lab/helm:$PATH"
export PATH
printf 'localhost ansible_connection=local\n' > "$T/inv"
printf 'replicaCount: 1\nimage:\n  repository: nginx\n  tag: "1.25"\nports: [80, 443]\n' > "$T/base.yaml"

printf 'pw-%s\n' "$CANARY" > "$T/secret-inputs/pw"
printf 'db_password: %s-db\n' "$CANARY" > "$T/secret-inputs/plain.yml"
"$AICP" vault encrypt --vault-password-file "$T/secret-inputs/pw" \
    --output "$T/secret-inputs/vault.yml" "$T/secret-inputs/plain.yml" > "$T/enc.out" 2>&1 ||
    { cat "$T/enc.out"; fail "vault encrypt"; }

cat > "$T/pb.yml" <<'PB'
- hosts: localhost
  gather_facts: false
  tasks:
    - name: web release
      helm_release:
        name: web
        chart_ref: stable/nginx
        chart_repo_url: https://charts.example.com/stable
        chart_version: "{{ ver | default('15.0.0') }}"
        release_namespace: apps
        create_namespace: true
        values_files: ["{{ playbook_dir }}/base.yaml"]
        values:
          image: {tag: "{{ tag | default('1.26') }}"}
          ports: [8080]
          db: {password: "{{ db_password | default('none') }}"}
        wait: true
        wait_timeout: 120
        atomic: true
        state: "{{ st | default('present') }}"
PB

mkdir -p "$AICP_HELM_STATE"
: > "$AICP_HELM_STATE/calls.log"
upgrades() { awk '/^upgrade /{n++} END{print n+0}' "$AICP_HELM_STATE/calls.log"; }
uninstalls() { awk '/^uninstall /{n++} END{print n+0}' "$AICP_HELM_STATE/calls.log"; }
n=0
# run EXPECTED_EXIT WHAT aicp-args...: one run, its output kept for the canary check.
run() {
    want=$1 what=$2
    shift 2
    n=$((n + 1))
    TMPDIR="$T/tmp" "$AICP" run "$T/pb.yml" -i "$T/inv" --diff "$@" > "$T/out.$n" 2>&1
    rc=$?
    [ "$rc" -eq "$want" ] || { sed "s/$CANARY/<CANARY>/g" "$T/out.$n"; fail "$what: exit $rc, expected $want"; }
    echo "ok   $what (exit $rc)"
}

run 2 "check mode predicts the install" --check
[ "$(upgrades)" -eq 0 ] || fail "check mode called helm upgrade"
run 2 "install"
[ "$(upgrades)" -eq 1 ] || fail "install: $(upgrades) upgrade calls, expected 1"
grep -q '^repo-add stable' "$AICP_HELM_STATE/calls.log" || fail "chart_repo_url: no helm repo add"
python3 - "$AICP_HELM_STATE/releases/apps/web.json" <<'PY' || fail "install recorded the wrong release"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["chart"] == "nginx" and r["chart_version"] == "15.0.0", r
v = r["values"]
# values_files then inline values: maps deep-merged, lists replaced.
assert v["image"] == {"repository": "nginx", "tag": "1.26"}, v
assert v["ports"] == [8080] and v["replicaCount"] == 1, v
PY
run 0 "same again is unchanged"
[ "$(upgrades)" -eq 1 ] || fail "an unchanged run called helm upgrade"
run 0 "check mode of an unchanged release" --check
run 2 "check mode predicts a values change" --check -e tag=1.27
[ "$(upgrades)" -eq 1 ] || fail "check mode called helm upgrade"
run 2 "values change upgrades" -e tag=1.27
[ "$(upgrades)" -eq 2 ] || fail "values change: $(upgrades) upgrade calls, expected 2"
grep -q '"tag": "1.27"' "$T/out.$n" || fail "values change: --diff does not show the new tag"
run 0 "values change again is unchanged" -e tag=1.27
run 2 "check mode predicts a chart version change" --check -e tag=1.27 -e ver=15.1.0
[ "$(upgrades)" -eq 2 ] || fail "check mode called helm upgrade"
run 2 "chart version change upgrades" -e tag=1.27 -e ver=15.1.0
[ "$(upgrades)" -eq 3 ] || fail "chart version change: expected a third upgrade"
grep -q '"chart_version": "15.1.0"' "$AICP_HELM_STATE/releases/apps/web.json" || fail "chart version not deployed"

# A vaulted value: never on argv (sampled with ps while runs go on), never
# in the output, and the values file that carried it is gone.
argv_watch_start "$T/ps.hits"
run 2 "a vaulted value upgrades" -e tag=1.27 -e ver=15.1.0 -e "@$T/secret-inputs/vault.yml" \
    --vault-password-file "$T/secret-inputs/pw" -vvv
run 0 "the vaulted value again is unchanged" -e tag=1.27 -e ver=15.1.0 \
    -e "@$T/secret-inputs/vault.yml" --vault-password-file "$T/secret-inputs/pw"
argv_watch_stop
[ ! -s "$T/ps.hits" ] || fail "the secret value was on a process's command line"
[ "$(upgrades)" -eq 4 ] || fail "vaulted value: expected a fourth upgrade"
grep -q "$CANARY-db" "$AICP_HELM_STATE/releases/apps/web.json" || fail "the vaulted value did not reach helm"
for f in "$T"/out.*; do
    if grep -q -a -F -e "$CANARY" "$f"; then fail "the secret value is in the output of a run ($f)"; fi
done
[ -z "$(ls -A "$T/tmp")" ] || fail "a values file or directory was left behind: $(ls -A "$T/tmp")"
while read -r path fmode dmode; do
    [ "$fmode" = 600 ] || fail "values file $path had mode $fmode, not 600"
    [ "$dmode" = 700 ] || fail "the values file's directory had mode $dmode, not 700"
    [ ! -e "$path" ] || fail "values file $path outlived the call"
done < "$AICP_HELM_STATE/values-files.log"
echo "ok   the vaulted value stayed off argv and output; values files 0600 in 0700 dirs, removed"

run 2 "check mode predicts the uninstall" --check -e st=absent
[ "$(uninstalls)" -eq 0 ] || fail "check mode called helm uninstall"
run 2 "absent uninstalls" -e st=absent
[ "$(uninstalls)" -eq 1 ] || fail "absent: expected one uninstall"
[ ! -e "$AICP_HELM_STATE/releases/apps/web.json" ] || fail "the release is still there"
run 0 "absent again is unchanged" -e st=absent
[ "$(uninstalls)" -eq 1 ] || fail "absent again called helm uninstall"

# helm's own error, first line, with the command's name and no arguments.
cat > "$T/bad.yml" <<'PB'
- hosts: localhost
  gather_facts: false
  tasks:
    - helm_release:
        name: other
        chart_ref: norepo/thing
        chart_version: "1.0.0"
        release_namespace: apps
PB
TMPDIR="$T/tmp" "$AICP" run "$T/bad.yml" -i "$T/inv" > "$T/bad.out" 2>&1
rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 2 ] || fail "a failing helm upgrade exits $rc"
grep -q 'helm upgrade failed for release other (exit 1): Error: repo norepo not found' "$T/bad.out" ||
    { cat "$T/bad.out"; fail "helm's error is not reported"; }
[ -z "$(ls -A "$T/tmp")" ] || fail "a failed upgrade left its values file behind"
echo "ok   a failing helm upgrade reports helm's error and removes its values file"

# A missing helm is named.
sed 's/^    - helm_release:/    - helm_release:\n        binary_path: \/nonexistent\/helm/' "$T/bad.yml" > "$T/nohelm.yml"
"$AICP" run "$T/nohelm.yml" -i "$T/inv" > "$T/nohelm.out" 2>&1
grep -q 'cannot run /nonexistent/helm' "$T/nohelm.out" || { cat "$T/nohelm.out"; fail "a missing helm is not named"; }
echo "ok   a missing helm binary is named"
exit 0
