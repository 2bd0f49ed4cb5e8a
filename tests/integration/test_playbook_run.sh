#!/bin/sh
# Playbooks on lab hosts: keywords (tests/data/run/features.yml asserts them
# from inside), handlers, tags, --limit, --check predicting the real run, the
# JSON report, the node preparation playbook converging then idempotent,
# what ends a playbook, and the keys of registered results.
. "$top_srcdir/tests/integration/lib.sh"
need_lab
lab_up 2
inv="$LAB/inventory.ini"
pb="$top_srcdir/tests/data/run/features.yml"
fail=0
check() { # description command...
    d=$1; shift
    if "$@"; then echo "ok   $d"; else echo "FAIL $d"; fail=1; fi
}

out=$("$AICP" run "$pb" -i "$inv" -e extra_probe=from-extra-vars --json "$WORK/features.json" 2>&1)
rc=$?
echo "$out"
check "features: first run exits 2" [ "$rc" -eq 2 ]
check "features: no host failed" sh -c "! printf '%s' \"\$1\" | grep -E 'failed=[1-9]'" _ "$out"
check "features: the rescues are counted" sh -c "printf '%s' \"\$1\" | grep -q 'rescued=2 '" _ "$out"
check "features: the ignored failure is counted" sh -c "printf '%s' \"\$1\" | grep -q 'ignored=1 '" _ "$out"
check "features: the handler ran" sh -c "printf '%s' \"\$1\" | grep -q 'RUNNING HANDLER \[motd changed\]'" _ "$out"
check "features: JSON report written" python3 -c "
import json,sys
r=json.load(open(sys.argv[1]))
t=[t for p in r['plays'] for t in p['tasks'] if t['name']=='Write a templated file'][0]
assert t['hosts']['node01']['status']=='changed', t
assert r['stats']['node02']['failed']==0
" "$WORK/features.json"

out=$("$AICP" run "$pb" -i "$inv" -e extra_probe=from-extra-vars 2>&1)
check "features: second run, no handler" sh -c "! printf '%s' \"\$1\" | grep -q 'RUNNING HANDLER'" _ "$out"
check "features: second run, template unchanged" sh -c "printf '%s' \"\$1\" | grep -A2 'TASK \[Write a templated file\]' | grep -q '^ok: \[node01\]'" _ "$out"

out=$("$AICP" run "$pb" -i "$inv" -e extra_probe=from-extra-vars --limit node02 2>&1)
check "--limit: only node02 runs" sh -c "printf '%s' \"\$1\" | grep -q '^node02 ' && ! printf '%s' \"\$1\" | grep -q '^node01 '" _ "$out"

out=$("$AICP" run "$pb" -i "$inv" -e extra_probe=from-extra-vars --tags special 2>&1)
rc=$?
check "--tags: exit 0" [ "$rc" -eq 0 ]
check "--tags: only the tagged task (and facts) ran" sh -c "printf '%s' \"\$1\" | grep -q 'TASK \[Only with the tag\]' && ! printf '%s' \"\$1\" | grep -q 'TASK \[Tag check\]'" _ "$out"

# Node preparation: --check on fresh hosts predicts exactly what the run does.
prep="$top_srcdir/playbooks/k8s-node-prep.yml"
"$AICP" run "$prep" -i "$inv" --check --json "$WORK/prep-check.json" > "$WORK/prep-check.out" 2>&1
crc=$?
"$AICP" run "$prep" -i "$inv" --json "$WORK/prep.json" > "$WORK/prep.out" 2>&1
rc=$?
cat "$WORK/prep.out"
check "node prep: first run exits 2" [ "$rc" -eq 2 ]
check "node prep: --check exit status equals the run's" [ "$crc" -eq "$rc" ]
check "node prep: --check predicted every task's status" python3 -c "
import json,sys
def st(p):
    r=json.load(open(p)); out={}
    for pl in r['plays']:
        for t in pl['tasks']:
            for h,e in t['hosts'].items():
                out[(t['name'],h)]=[x['status'] for x in e] if isinstance(e,list) else e['status']
    return out
a,b=st(sys.argv[1]),st(sys.argv[2])
bad=[(k,a.get(k),b.get(k)) for k in sorted(set(a)|set(b)) if a.get(k)!=b.get(k)]
for x in bad: print('  check said %s, run did %s: %s' % (x[1],x[2],x[0]))
sys.exit(1 if bad else 0)
" "$WORK/prep-check.json" "$WORK/prep.json"
out=$("$AICP" run "$prep" -i "$inv" 2>&1)
rc=$?
echo "$out" | tail -n 4
check "node prep: second run exits 0" [ "$rc" -eq 0 ]
check "node prep: second run changed nothing" sh -c "! printf '%s' \"\$1\" | grep -E 'changed=[1-9]'" _ "$out"
check "node prep: the sysctl file is on the host, not the machine" [ ! -e /etc/sysctl.d/99-kubernetes-cri.conf ]
# Play control: serial, any_errors_fatal, no_log, become.
out=$("$AICP" run "$top_srcdir/tests/data/run/control.yml" -i "$inv" -v 2>&1)
rc=$?
echo "$out"
check "control: exit 1 (node01 failed)" [ "$rc" -eq 1 ]
check "serial: one host per batch" sh -c "printf '%s' \"\$1\" | grep -q '\"msg\": \"batch node01\"' && printf '%s' \"\$1\" | grep -q '\"msg\": \"batch node02\"'" _ "$out"
check "any_errors_fatal: no host ran the next task" sh -c "! printf '%s' \"\$1\" | grep -q 'unreachable line'" _ "$out"
check "no_log: the secret never shows, even with -v" sh -c "! printf '%s' \"\$1\" | grep -q 's3cr3t-value'" _ "$out"
check "no_log: the result is censored" sh -c "printf '%s' \"\$1\" | grep -q 'censored'" _ "$out"

# serial may be a template over play and extra vars, as in Ansible.
cat > "$WORK/tserial.yml" <<'PB'
- name: templated
  hosts: lab
  gather_facts: false
  vars: {batch: 2}
  serial: "{{ batch }}"
  tasks:
    - debug: {msg: "in a batch"}
PB
out=$("$AICP" run "$WORK/tserial.yml" -i "$inv" 2>&1)
check "serial from a play var: one batch" [ "$(printf '%s\n' "$out" | grep -c '^PLAY \[templated\]')" -eq 1 ]
out=$("$AICP" run "$WORK/tserial.yml" -i "$inv" -e batch=1 2>&1)
check "serial from an extra var: a batch per host" [ "$(printf '%s\n' "$out" | grep -c '^PLAY \[templated\]')" -eq 2 ]
out=$("$AICP" run "$WORK/tserial.yml" -i "$inv" -e batch='{{ nope }}' 2>&1)
check "serial reading an undefined name: exit 65 naming the play" sh -c "[ $? -eq 65 ] && printf '%s' \"\$1\" | grep -q 'tserial.yml:1:3: serial'" _ "$out"

# --diff shows what a change does; --check --diff changes nothing.
cat > "$WORK/diff.yml" <<'PB'
- hosts: node01
  gather_facts: false
  tasks:
    - copy: {dest: /etc/aicp-diff.conf, content: "alpha\nbeta\n"}
PB
"$AICP" run "$WORK/diff.yml" -i "$inv" >/dev/null 2>&1
sed -i 's/beta/gamma/' "$WORK/diff.yml"
out=$("$AICP" run "$WORK/diff.yml" -i "$inv" --check --diff 2>&1)
rc=$?
echo "$out"
check "--check --diff: exit 2" [ "$rc" -eq 2 ]
check "--diff: unified diff of the content" sh -c "printf '%s' \"\$1\" | grep -q '^-beta' && printf '%s' \"\$1\" | grep -q '^+gamma'" _ "$out"
out=$("$AICP" run "$WORK/diff.yml" -i "$inv" --check 2>&1)
check "--check changed nothing" [ $? -eq 2 ]
# Reads go together: a no-op run of ten tasks costs one round trip per host.
"$AICP" run "$top_srcdir/bench/node-tasks.yml" -i "$inv" -e base=/opt/rt >/dev/null 2>&1
"$AICP" run "$top_srcdir/bench/node-tasks.yml" -i "$inv" -e base=/opt/rt --json "$WORK/rt.json" >/dev/null 2>&1
check "no-op run: exit 0" [ $? -eq 0 ]
check "no-op run: one round trip per host for ten tasks" python3 -c "
import json,sys
s=json.load(open(sys.argv[1]))['stats']
print('  round trips:', {h: v['round_trips'] for h, v in s.items()})
sys.exit(0 if all(v['round_trips'] == 1 for v in s.values()) and len(s) == 2 else 1)
" "$WORK/rt.json"
out=$("$AICP" run "$top_srcdir/tests/data/run/maxfail.yml" -i "$inv" 2>&1)
rc=$?
echo "$out"
check "max_fail_percentage: exit 1" [ "$rc" -eq 1 ]
check "max_fail_percentage: the second batch never started" sh -c "! printf '%s' \"\$1\" | grep -q 'second batch ran'" _ "$out"
# any_errors_fatal, max_fail_percentage and a play whose every host failed
# end the playbook, not only the play, as ansible-playbook does.
out=$("$AICP" run "$top_srcdir/tests/data/run/stop.yml" -i "$inv" 2>&1)
rc=$?
echo "$out"
check "any_errors_fatal: exit 1" [ "$rc" -eq 1 ]
check "any_errors_fatal: NO MORE HOSTS LEFT" sh -c "printf '%s' \"\$1\" | grep -q '^NO MORE HOSTS LEFT'" _ "$out"
check "any_errors_fatal: node01 stopped in the play" sh -c "! printf '%s' \"\$1\" | grep -q 'same play ran on'" _ "$out"
check "any_errors_fatal: no later play ran" sh -c "! printf '%s' \"\$1\" | grep -q 'second play ran'" _ "$out"
check "any_errors_fatal: node01 is not counted failed" sh -c "printf '%s' \"\$1\" | grep -q '^node01 .* failed=0 '" _ "$out"
out=$("$AICP" run "$top_srcdir/tests/data/run/stop_maxfail.yml" -i "$inv" 2>&1)
rc=$?
echo "$out"
check "max_fail_percentage (serial [1,2]): exit 1" [ "$rc" -eq 1 ]
check "max_fail_percentage: the first batch ran" sh -c "printf '%s' \"\$1\" | grep -q 'rest of the batch ran on node01'" _ "$out"
check "max_fail_percentage: node02's batch stopped" sh -c "! printf '%s' \"\$1\" | grep -q 'rest of the batch ran on node02'" _ "$out"
check "max_fail_percentage: no later play ran" sh -c "! printf '%s' \"\$1\" | grep -q 'second play ran'" _ "$out"
check "max_fail_percentage: NO MORE HOSTS LEFT twice, as Ansible" [ "$(printf '%s\n' "$out" | grep -c '^NO MORE HOSTS LEFT')" -eq 2 ]
check "serial: a PLAY banner per batch" [ "$(printf '%s\n' "$out" | grep -c '^PLAY \[batches\]')" -eq 2 ]
out=$("$AICP" run "$top_srcdir/tests/data/run/stop_failed_hosts.yml" -i "$inv" 2>&1)
rc=$?
echo "$out"
check "failed hosts: exit 1" [ "$rc" -eq 1 ]
check "any_errors_fatal: a rescued failure stops no host" sh -c "printf '%s' \"\$1\" | grep -q 'after the rescue on node01' && printf '%s' \"\$1\" | grep -q 'after the rescue on node02'" _ "$out"
check "failed hosts: a failed host runs no later play" sh -c "! printf '%s' \"\$1\" | grep -q 'failed host ran again'" _ "$out"
check "failed hosts: its play shows the banner only" sh -c "printf '%s' \"\$1\" | grep -A2 '^PLAY \[only node02\]' | grep -q '^PLAY \[survivors\]'" _ "$out"
check "failed hosts: the others go on" sh -c "printf '%s' \"\$1\" | grep -q 'survivor node01'" _ "$out"
check "every host of a play failed: the playbook ends" sh -c "! printf '%s' \"\$1\" | grep -q 'ran after everyone failed'" _ "$out"
check "every host of a play failed: no NO MORE HOSTS LEFT" sh -c "! printf '%s' \"\$1\" | grep -q 'NO MORE HOSTS LEFT'" _ "$out"

# Registered results have Ansible's keys (failed: false, a loop's skipped,
# check mode's command keys); with_items flattens what its templates give;
# debug msg null; an unnamed task's ansible_failed_task.name. The playbooks
# assert it from inside.
out=$("$AICP" run "$top_srcdir/tests/data/run/results.yml" -i "$inv" 2>&1)
rc=$?
echo "$out"
check "results: exit 2, every assertion held" sh -c "[ $rc -eq 2 ] && printf '%s' \"\$1\" | grep -q '^node01 .* failed=0 '" _ "$out"
check "results: debug msg null prints null" sh -c "printf '%s' \"\$1\" | grep -A2 'TASK \[a null message\]' | grep -q '\"msg\": null'" _ "$out"
check "results: a result line has no failed key, as Ansible's callback" sh -c "! printf '%s' \"\$1\" | grep -q '\"failed\": true, \"msg\": \"non-zero return code\"'" _ "$out"
out=$("$AICP" run "$top_srcdir/tests/data/run/results_check.yml" -i "$inv" --check 2>&1)
rc=$?
echo "$out"
check "results --check: exit 2, every assertion held" sh -c "[ $rc -eq 2 ] && printf '%s' \"\$1\" | grep -q '^node01 .* failed=0 '" _ "$out"
# The implicit localhost obeys --limit, as in Ansible: a limit that does
# not name it leaves a localhost play without hosts.
printf -- '- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug: msg=implicit-ran\n' \
    > "$LAB/implicit.yml"
out=$("$AICP" run "$LAB/implicit.yml" -i "$inv" --limit node01 2>&1)
check "implicit localhost: left out by --limit node01" sh -c "! printf '%s' \"\$1\" | grep -q implicit-ran && printf '%s' \"\$1\" | grep -q 'skipping: no hosts matched'" _ "$out"
out=$("$AICP" run "$LAB/implicit.yml" -i "$inv" --limit localhost 2>&1)
check "implicit localhost: kept by --limit localhost" sh -c "printf '%s' \"\$1\" | grep -q implicit-ran" _ "$out"
exit $fail
