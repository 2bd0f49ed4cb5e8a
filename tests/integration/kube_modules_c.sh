# Cases of the k8s, namespace, secret and storage_class modules against the
# fake API server. Not a test on its own: tests/integration/
# test_kube_modules.sh sources it once the fake is up, and provides (see
# its header) $KT, $SEC (a secret-inputs directory the canary scan skips),
# $KUBECONFIG, $CANARY, kube_step LABEL RC [AICP-ARGS...] (tasks on stdin:
# --check, then the real run, same exit status and statuses, then a
# --check that finds nothing), kube_run RC [ARGS...], $OUT / $REPORT of the
# last real run, kube_api, kube_field PATH FIELD, kube_expect_out TEXT.
# Tasks go through a file, not a pipe: kube_step in a pipeline would run
# in a subshell and its $OUT would not reach kube_expect_out.
# Everything here lives in namespace default or in namespaces it creates,
# and names start with "c-" so that it cannot collide with the other cases.

T=$KT/c-tasks.yml

# ---- namespace -------------------------------------------------------------
ns() { # TEAM
    printf -- '- namespace: {name: c-ns, labels: {team: %s}, annotations: {owner: aicp}}\n' "$1"
}
ns ml >"$T" && kube_step "namespace create" 2 <"$T"
ns ml >"$T" && kube_step "namespace again" 0 <"$T"
ns ai >"$T" && kube_step "namespace different" 2 --diff <"$T"
kube_expect_out "metadata.labels.team"
[ "$(kube_field /api/v1/namespaces/c-ns metadata.labels.team)" = ai ] ||
    fail "namespace: label team is not ai"
kube_step "namespace delete" 2 <<'EOF'
- namespace: {name: c-ns, state: absent}
EOF
kube_step "namespace delete again" 0 <<'EOF'
- namespace: {name: c-ns, state: absent}
EOF
kube_api GET /api/v1/namespaces/c-ns >/dev/null && fail "namespace absent left c-ns"

# ---- secret ----------------------------------------------------------------
# The values come from a vars file among the test's secret inputs; neither
# they nor their base64 may show anywhere, and a change shows only as one.
C64=$(printf '%s' "$CANARY" | base64)
printf 'pw_b64: "%s"\ntoken: "%s-token"\n' "$C64" "$CANARY" >"$SEC/c-secret.yml"
printf 'pw_b64: "%s"\ntoken: "%s-rotated"\n' "$C64" "$CANARY" >"$SEC/c-secret2.yml"
sec() {
    cat <<'EOF'
- name: secret
  secret:
    name: c-creds
    namespace: default
    data: {password: "{{ pw_b64 }}"}
    string_data: {token: "{{ token }}"}
    labels: {app: c}
  register: s
- debug: {var: s}
EOF
}
no_leak() { # FILE...
    for f in "$@"; do
        [ -f "$f" ] || continue
        grep -q -F -e "$CANARY" -e "$C64" "$f" && { cat "$f" >&2; fail "a secret value leaked into $f"; }
    done
    return 0
}
sec >"$T" && kube_step "secret create" 2 -e "@$SEC/c-secret.yml" -vvv --diff <"$T"
no_leak "$OUT" "$REPORT" "$KT/check.out" "$KT/check.json"
[ "$(kube_field /api/v1/namespaces/default/secrets/c-creds data.password)" = "$C64" ] ||
    fail "secret: data.password is not as given"
[ "$(kube_field /api/v1/namespaces/default/secrets/c-creds data.token)" = \
    "$(printf '%s-token' "$CANARY" | base64)" ] || fail "secret: string_data.token is not encoded into data"
sec >"$T" && kube_step "secret again" 0 -e "@$SEC/c-secret.yml" -vvv --diff <"$T"
no_leak "$OUT" "$REPORT"
sec >"$T" && kube_step "secret different" 2 -e "@$SEC/c-secret2.yml" -vvv --diff <"$T"
no_leak "$OUT" "$REPORT" "$KT/check.out" "$KT/check.json"
kube_expect_out "diff hidden"
kube_step "secret delete" 2 <<'EOF'
- secret: {name: c-creds, namespace: default, state: absent}
EOF
kube_step "secret delete again" 0 <<'EOF'
- secret: {name: c-creds, namespace: default, state: absent}
EOF
# A Secret through k8s (no secret arguments): results and the diff mask
# its data all the same.
printf 'sval: "%s"\n' "$C64" >"$SEC/c-k8s-secret.yml"
kube_step "k8s Secret create" 2 -e "@$SEC/c-k8s-secret.yml" --diff <<'EOF'
- k8s:
    definition:
      {apiVersion: v1, kind: Secret, metadata: {name: c-raw, namespace: default},
       data: {key: "{{ sval }}"}}
  register: r
- debug: {var: r}
EOF
no_leak "$OUT" "$REPORT" "$KT/check.out" "$KT/check.json"
kube_expect_out '"key": "********"'
kube_step "k8s Secret delete" 2 <<'EOF'
- k8s: {definition: {apiVersion: v1, kind: Secret, metadata: {name: c-raw, namespace: default}}, state: absent}
EOF

# ---- storage_class -----------------------------------------------------------
sc() { # NAME BACKEND [extra...]
    _n=$1 _b=$2
    shift 2
    printf -- '- storage_class:\n    name: %s\n    backend_type: %s\n    reclaim_policy: Retain\n' "$_n" "$_b"
    for _x in "$@"; do printf '    %s\n' "$_x"; done
}
SCP=/apis/storage.k8s.io/v1/storageclasses
sc c-gold ontap-nas >"$T" && kube_step "storage_class create" 2 <"$T"
[ "$(kube_field $SCP/c-gold provisioner)" = csi.trident.netapp.io ] || fail "storage_class: provisioner"
[ "$(kube_field $SCP/c-gold reclaimPolicy)" = Retain ] || fail "storage_class: reclaimPolicy"
sc c-gold ontap-nas >"$T" && kube_step "storage_class again" 0 <"$T"
sc c-gold ontap-nas "allow_volume_expansion: true" "mount_options: [nfsvers=4.1]" >"$T" && kube_step "storage_class different" 2 --diff <"$T"
kube_expect_out "allowVolumeExpansion"
[ "$(kube_field $SCP/c-gold allowVolumeExpansion)" = true ] || fail "storage_class: allowVolumeExpansion"
sc c-gold ontap-nas-flexgroup "allow_volume_expansion: true" "mount_options: [nfsvers=4.1]" >"$T" && kube_step "storage_class immutable change without replace" 1 <"$T"
kube_expect_out "parameters.backendType cannot be changed in place; the object must be replaced"
[ "$(kube_field $SCP/c-gold parameters.backendType)" = ontap-nas ] || fail "storage_class: changed without replace"
sc c-gold ontap-nas-flexgroup "allow_volume_expansion: true" "mount_options: [nfsvers=4.1]" "replace: true" >"$T" && kube_step "storage_class immutable change with replace" 2 <"$T"
[ "$(kube_field $SCP/c-gold parameters.backendType)" = ontap-nas-flexgroup ] || fail "storage_class: not replaced"

# The default class, and exclusive_default demoting another one.
sc c-other ontap-nas "default: true" >"$T" && kube_step "storage_class other default" 2 <"$T"
sc c-gold ontap-nas-flexgroup "allow_volume_expansion: true" "mount_options: [nfsvers=4.1]" \
    "default: true" "exclusive_default: true" >"$T" && kube_step "storage_class exclusive default" 2 --diff <"$T"
kube_expect_out "StorageClass/c-other"
A=metadata.annotations
kube_field $SCP/c-gold $A | grep -q '"storageclass.kubernetes.io/is-default-class": "true"' ||
    fail "storage_class: c-gold is not the default"
kube_field $SCP/c-other $A | grep -q '"storageclass.kubernetes.io/is-default-class": "false"' ||
    fail "storage_class: exclusive_default did not demote c-other"
sc c-gold ontap-nas-flexgroup "allow_volume_expansion: true" "mount_options: [nfsvers=4.1]" \
    "default: true" "exclusive_default: true" >"$T" && kube_step "storage_class exclusive default again" 0 <"$T"
# Not the default any more: aicp set the annotation, so it says "false" now.
sc c-gold ontap-nas-flexgroup "allow_volume_expansion: true" "mount_options: [nfsvers=4.1]" \
    "default: false" >"$T" && kube_step "storage_class default false" 2 <"$T"
kube_field $SCP/c-gold $A | grep -q '"storageclass.kubernetes.io/is-default-class": "false"' ||
    fail "storage_class: default: false left c-gold the default"
for n in c-gold c-other; do
    printf -- '- storage_class: {name: %s, state: absent}\n' $n >"$T" && kube_step "storage_class delete $n" 2 <"$T"
    printf -- '- storage_class: {name: %s, state: absent}\n' $n >"$T" && kube_step "storage_class delete $n again" 0 <"$T"
done

# ---- k8s -------------------------------------------------------------------
cm() { # VALUE
    cat <<EOF
- k8s:
    definition:
      apiVersion: v1
      kind: ConfigMap
      metadata: {name: c-cm}
      data: {epochs: "$1"}
    namespace: default
EOF
}
cm 10 >"$T" && kube_step "k8s create" 2 <"$T"
cm 10 >"$T" && kube_step "k8s again" 0 <"$T"
cm 20 >"$T" && kube_step "k8s different" 2 --diff <"$T"
kube_expect_out "data.epochs"
[ "$(kube_field /api/v1/namespaces/default/configmaps/c-cm data.epochs)" = 20 ] || fail "k8s: data.epochs"
kube_step "k8s delete" 2 <<'EOF'
- k8s: {definition: {apiVersion: v1, kind: ConfigMap, metadata: {name: c-cm, namespace: default}}, state: absent}
EOF
kube_step "k8s delete again" 0 <<'EOF'
- k8s: {definition: {apiVersion: v1, kind: ConfigMap, metadata: {name: c-cm, namespace: default}}, state: absent}
EOF

# Several documents from a file (relative to the playbook), a namespace
# and what goes into it in one call.
cat >"$KT/c-multi.yml" <<'EOF'
# a namespace and a config map in it
apiVersion: v1
kind: Namespace
metadata:
  name: c-multi
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c-settings, namespace: c-multi}
data: {a: "1"}
...
---
EOF
kube_step "k8s src create" 2 <<'EOF'
- k8s: {src: c-multi.yml}
EOF
[ "$(kube_field /api/v1/namespaces/c-multi/configmaps/c-settings data.a)" = 1 ] || fail "k8s src: no c-settings"
kube_step "k8s src again" 0 <<'EOF'
- k8s: {src: c-multi.yml}
EOF
kube_step "k8s src delete" 2 <<'EOF'
- k8s: {src: c-multi.yml, state: absent}
EOF
kube_step "k8s src delete again" 0 <<'EOF'
- k8s: {src: c-multi.yml, state: absent}
EOF

# template: a Jinja2 file rendered with the task's variables.
cat >"$KT/c-tpl.yml.j2" <<'EOF'
{% for n in names %}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: "c-tpl-{{ n }}", namespace: default}
data: {size: "{{ size }}"}
{% endfor %}
EOF
kube_step "k8s template create" 2 <<'EOF'
- k8s: {template: c-tpl.yml.j2}
  vars: {names: [a, b], size: "10Ti"}
EOF
[ "$(kube_field /api/v1/namespaces/default/configmaps/c-tpl-b data.size)" = 10Ti ] ||
    fail "k8s template: c-tpl-b not rendered"
kube_step "k8s template again" 0 <<'EOF'
- k8s: {template: c-tpl.yml.j2}
  vars: {names: [a, b], size: "10Ti"}
EOF
kube_step "k8s template different" 2 <<'EOF'
- k8s: {template: c-tpl.yml.j2}
  vars: {names: [a, b], size: "20Ti"}
EOF
kube_step "k8s template delete" 2 <<'EOF'
- k8s: {template: c-tpl.yml.j2, state: absent}
  vars: {names: [a, b], size: "20Ti"}
EOF

# Immutable fields of known kinds, and waiting for a condition.
ksc() { # BACKEND [extra]
    cat <<EOF
- k8s:
    definition:
      apiVersion: storage.k8s.io/v1
      kind: StorageClass
      metadata: {name: c-raw-sc}
      provisioner: csi.trident.netapp.io
      parameters: {backendType: $1}
    $2
EOF
}
ksc ontap-nas >"$T" && kube_step "k8s StorageClass create" 2 <"$T"
ksc ontap-nas-flexgroup >"$T" && kube_step "k8s StorageClass immutable without replace" 1 <"$T"
kube_expect_out "must be replaced"
ksc ontap-nas-flexgroup "replace: true" >"$T" && kube_step "k8s StorageClass immutable with replace" 2 <"$T"
ksc ontap-nas-flexgroup "state: absent" >"$T" && kube_step "k8s StorageClass delete" 2 <"$T"
kube_step "k8s Job wait" 2 <<'EOF'
- k8s:
    definition:
      apiVersion: batch/v1
      kind: Job
      metadata: {name: c-job, namespace: default}
      spec:
        template:
          spec:
            restartPolicy: Never
            containers: [{name: main, image: busybox, command: ["true"]}]
    wait: true
    wait_condition: {type: Complete, status: "True"}
    wait_timeout: 30
  register: j
- debug:
    var: j.objects[0].status.succeeded
EOF
kube_expect_out '"j.objects[0].status.succeeded": 1'
kube_step "k8s Job delete" 2 <<'EOF'
- k8s: {definition: {apiVersion: batch/v1, kind: Job, metadata: {name: c-job, namespace: default}}, state: absent}
EOF
# ---- field conflicts -------------------------------------------------------
# Another tool CHANGES a field aicp declares (a merge patch by manager
# "kubectl-patch", an Update, as `kubectl patch` sends it): apply without
# force fails naming the object, the field, the manager and the two ways to
# take it over, and --check fails the same way, predicting it (aicp drift
# checks with force, so there it is plain drift: test_site.sh); with
# force: true it converges.
CMP=/api/v1/namespaces/default/configmaps/c-conf
ccm() { # [extra]
    cat <<EOF
- k8s:
    definition: {apiVersion: v1, kind: ConfigMap, metadata: {name: c-conf, namespace: default}, data: {epochs: "90"}}
    $1
EOF
}
ccm >"$T" && kube_step "k8s conflict: create" 2 <"$T"
kube_api PATCH "$CMP?fieldManager=kubectl-patch" '{"data": {"epochs": "1"}}' >/dev/null ||
    fail "patching c-conf as kubectl-patch"
ccm >"$T" && kube_run 1 --check --diff <"$T"
kube_expect_out 'ConfigMap/default/c-conf: apply: conflict'
kube_expect_out '.data.epochs (owned by field manager \"kubectl-patch\", Update)'
ccm "force: true" >"$T" && kube_run 2 --check --diff <"$T"
kube_expect_out '"90"'
ccm >"$T" && kube_run 1 <"$T"
kube_expect_out 'ConfigMap/default/c-conf: apply: conflict'
kube_expect_out '.data.epochs (owned by field manager \"kubectl-patch\", Update)'
kube_expect_out 'force: true on the resource'
kube_expect_out '--force-conflicts'
[ "$(kube_field $CMP data.epochs)" = 1 ] || fail "k8s conflict: changed without force"
ccm "force: true" >"$T" && kube_step "k8s conflict: force takes the field over" 2 <"$T"
[ "$(kube_field $CMP data.epochs)" = 90 ] || fail "k8s conflict: force did not converge"
ccm >"$T" && kube_step "k8s conflict: converged" 0 <"$T"
kube_api DELETE "$CMP" >/dev/null || fail "deleting c-conf"

# A Secret written with stringData: the server keeps it as base64 data,
# which is what drift compares with (it used to fail "not idempotent").
printf 'tok: "%s-sd"\n' "$CANARY" >"$SEC/c-sd.yml"
sdsec() {
    cat <<'EOF'
- k8s:
    definition: {apiVersion: v1, kind: Secret, metadata: {name: c-sd, namespace: default}, stringData: {token: "{{ tok }}"}}
EOF
}
sdsec >"$T" && kube_step "k8s Secret stringData create" 2 -e "@$SEC/c-sd.yml" --diff <"$T"
no_leak "$OUT" "$REPORT" "$KT/check.out" "$KT/check.json" "$KT/verify.out"
sdsec >"$T" && kube_step "k8s Secret stringData again" 0 -e "@$SEC/c-sd.yml" --diff <"$T"
printf 'tok: "%s-sd2"\n' "$CANARY" >"$SEC/c-sd2.yml"
sdsec >"$T" && kube_step "k8s Secret stringData different" 2 -e "@$SEC/c-sd2.yml" --diff <"$T"
no_leak "$OUT" "$REPORT" "$KT/check.out" "$KT/check.json" "$KT/verify.out"
[ "$(kube_field /api/v1/namespaces/default/secrets/c-sd data.token)" = \
    "$(printf '%s-sd2' "$CANARY" | base64)" ] || fail "k8s Secret stringData: not updated"
kube_api DELETE /api/v1/namespaces/default/secrets/c-sd >/dev/null || fail "deleting c-sd"

# ---- the default class moving between classes -----------------------------
# exclusive_default demotes with merge patches (Updates by manager "aicp");
# promoting a class aicp itself demoted earlier is no conflict with anyone
# else, and after every step exactly one class is the default.
dflt() { # NAME
    sc "$1" ontap-nas "default: true" "exclusive_default: true"
}
defaults() {
    kube_api GET "$SCP" | python3 -c '
import json, sys
print(" ".join(sorted(o["metadata"]["name"] for o in json.load(sys.stdin)["items"]
    if (o["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true")))'
}
dflt c-da >"$T" && kube_step "default class: c-da" 2 <"$T"
[ "$(defaults)" = c-da ] || fail "default class: defaults are '$(defaults)', not c-da"
dflt c-db >"$T" && kube_step "default class: c-db" 2 <"$T"
[ "$(defaults)" = c-db ] || fail "default class: defaults are '$(defaults)', not c-db"
dflt c-da >"$T" && kube_step "default class: c-da again" 2 <"$T"
[ "$(defaults)" = c-da ] || fail "default class: defaults are '$(defaults)', not c-da"

# The demotion is a read-modify-write: it carries the resourceVersion it
# read, so a concurrent writer makes it stale (409) and it is sent again on
# a fresh read. Three concurrent writes: three 409s, converged on the
# fourth attempt, and the other writer's label kept (no lost update).
kube_api POST /_fake/reset >/dev/null || fail "resetting the fake's log"
kube_api POST /_fake/concurrent_write \
    "{\"path\": \"$SCP/c-da\", \"patch\": {\"metadata\": {\"labels\": {\"racer\": \"w{n}\"}}}, \"count\": 3}" \
    >/dev/null || fail "arming the concurrent writer"
dflt c-db >"$T" && kube_run 2 <"$T"
[ "$(defaults)" = c-db ] || fail "demotion under a concurrent writer: defaults are '$(defaults)'"
[ "$(kube_field $SCP/c-da metadata.labels.racer)" = w3 ] || fail "the concurrent writer's last label was lost"
kube_api GET /_fake/requests | python3 -c '
import json, sys
w = [r["status"] for r in json.load(sys.stdin)
     if r["method"] == "PATCH" and r["path"].endswith("/storageclasses/c-da")
     and not (r.get("query") or {}).get("dryRun")]
sys.exit(0 if w == [409, 409, 409, 200] else "demotion writes: %s, not three 409s then a 200" % w)' ||
    fail "the demotion did not retry its stale writes"
# A writer that never stops: bounded, and the run says so.
kube_api POST /_fake/concurrent_write \
    "{\"path\": \"$SCP/c-db\", \"patch\": {\"metadata\": {\"labels\": {\"racer\": \"w{n}\"}}}, \"count\": 5}" \
    >/dev/null || fail "arming the concurrent writer"
dflt c-da >"$T" && kube_run 1 <"$T"
kube_expect_out "gave up after 5 attempts"
# The class is promoted before the others are demoted: a failed demotion
# leaves two defaults for a moment, never none.
[ "$(defaults)" = "c-da c-db" ] || fail "after a failed demotion the defaults are '$(defaults)'"
kube_api POST /_fake/reset >/dev/null || fail "resetting the fake"
dflt c-da >"$T" && kube_step "default class: c-da converges" 2 <"$T"
[ "$(defaults)" = c-da ] || fail "default class: defaults are '$(defaults)', not c-da"
for n in c-da c-db; do
    printf -- '- storage_class: {name: %s, state: absent}\n' $n >"$T" && kube_run 2 <"$T"
done

echo "ok   helper C's module cases"
