#!/bin/sh
# A host that goes away mid-run: the others converge, that host is
# UNREACHABLE, the run exits 1; after it comes back a rerun converges.
. "$top_srcdir/tests/integration/lib.sh"
need_lab
lab_up 3
inv="$LAB/inventory.ini"
cat > "$WORK/slow.yml" <<'PB'
- hosts: lab
  gather_facts: false
  tasks:
    - name: first
      file: {path: /opt/unreach, state: directory}
    - name: wait
      command: sleep 4
      changed_when: false
    - name: after the outage
      copy: {dest: /opt/unreach/done, content: "done\n"}
PB
fail=0
("$AICP" run "$WORK/slow.yml" -i "$inv" > "$WORK/run1.out" 2>&1; echo $? > "$WORK/run1.rc") &
runner=$!
# Stop node02 while the hosts sit in "wait", after "first" has run on all
# of them, however slowly the machine runs the tests.
i=0
until grep -q 'TASK \[wait\]' "$WORK/run1.out" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 600 ] || { echo "FAIL: the run never reached the wait task"; cat "$WORK/run1.out"; exit 1; }
    sleep 0.1
done
sleep 0.5
"$AICP" lab stop node02 --dir "$LAB" >/dev/null 2>&1
wait $runner
rc=$(cat "$WORK/run1.rc")
cat "$WORK/run1.out"
[ "$rc" -eq 1 ] || { echo "FAIL: exit $rc, expected 1"; fail=1; }
grep -q 'fatal: \[node02\]: UNREACHABLE!' "$WORK/run1.out" || { echo "FAIL: node02 not reported UNREACHABLE"; fail=1; }
grep -Eq '^node02 .*unreachable=1 ' "$WORK/run1.out" || { echo "FAIL: recap does not count node02 unreachable"; fail=1; }
for h in node01 node03; do
    grep -Eq "^$h .*changed=2 .*unreachable=0 +failed=0" "$WORK/run1.out" || { echo "FAIL: $h did not converge"; fail=1; }
done
"$AICP" lab start node02 --dir "$LAB" || { echo "FAIL: lab start node02"; fail=1; }
"$AICP" lab status --dir "$LAB"
"$AICP" run "$WORK/slow.yml" -i "$inv" > "$WORK/run2.out" 2>&1
rc=$?
cat "$WORK/run2.out"
[ "$rc" -eq 2 ] || { echo "FAIL: rerun exit $rc, expected 2 (node02 converges)"; fail=1; }
grep -Eq '^node02 .*changed=1 .*unreachable=0 +failed=0' "$WORK/run2.out" || { echo "FAIL: node02 did not converge on rerun"; fail=1; }
"$AICP" run "$WORK/slow.yml" -i "$inv" > "$WORK/run3.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] || { echo "FAIL: third run exit $rc, expected 0"; cat "$WORK/run3.out"; fail=1; }
# Host keys are checked: with no known_hosts entry the host is unreachable
# and the message says how to accept the key.
mkdir -p "$WORK/home"
grep -v aicp_known_hosts "$inv" > "$WORK/nokh.ini"
out=$(HOME="$WORK/home" "$AICP" run "$WORK/slow.yml" -i "$WORK/nokh.ini" --limit node01 2>&1)
rc=$?
[ "$rc" -eq 1 ] || { echo "FAIL: unknown host key: exit $rc, expected 1"; fail=1; }
printf '%s' "$out" | grep -q "UNREACHABLE.*is not in known_hosts.*ssh-keyscan" ||
    { echo "FAIL: unknown host key message"; echo "$out"; fail=1; }
exit $fail
