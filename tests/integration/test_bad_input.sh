#!/bin/sh
# Bad input is refused before anything runs: exit 65, a message naming
# file:line:col, and the marker task at the top of each playbook never runs.
set -u
: "${top_srcdir:?}" "${AICP:?}"
data="$top_srcdir/tests/data/bad"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'localhost ansible_connection=local\n' > "$work/inv.ini"
fail=0

expect() { # file expected-location-regex expected-message-regex [inventory]
    pb="$data/$1"; inv="${4:-$work/inv.ini}"
    rm -f "$work/marker"
    out=$("$AICP" run "$pb" -i "$inv" -e "marker=$work/marker" 2>&1)
    rc=$?
    if [ "$rc" -ne 65 ]; then
        echo "FAIL $1: exit $rc, expected 65"; echo "$out"; fail=1; return
    fi
    if ! printf '%s' "$out" | grep -Eq "$2"; then
        echo "FAIL $1: no location matching '$2' in:"; echo "$out"; fail=1; return
    fi
    if ! printf '%s' "$out" | grep -Eq "$3"; then
        echo "FAIL $1: no message matching '$3' in:"; echo "$out"; fail=1; return
    fi
    if [ -e "$work/marker" ]; then
        echo "FAIL $1: a task ran although the input was invalid"; fail=1; return
    fi
    echo "ok   $1: $(printf '%s' "$out" | head -n 1)"
}

expect malformed.yml 'malformed\.yml:[0-9]+:[0-9]+' '.'
expect indentation.yml 'indentation\.yml:[0-9]+:[0-9]+' '.'
expect unknown_module.yml 'unknown_module\.yml:6:7' "couldn't resolve module/action 'nosuchmodule'"
expect misspelled_arg.yml 'misspelled_arg\.yml:[0-9]+:[0-9]+' "Unsupported parameters for \(file\) module: stat"
expect missing_arg.yml 'missing_arg\.yml:[0-9]+:[0-9]+' 'missing required arguments: path'
expect undefined_var.yml 'undefined_var\.yml:[0-9]+:[0-9]+' "'no_such_variable' is undefined"
expect unknown_play_key.yml 'unknown_play_key\.yml:[0-9]+:[0-9]+' "'taks' is not a valid attribute for a Play"
expect good.yml 'bad_inventory\.ini:[0-9]+' '.' "$data/bad_inventory.ini"
# Undefined names the run would only meet later: in a condition, in a play
# var's value, inside a template's text (named at its own line:col).
expect undefined_when.yml 'undefined_when\.yml:6:7' "'nope' is undefined"
expect undefined_play_var.yml 'undefined_play_var\.yml:8:7' "'nope' is undefined \(the value of 'derived'"
expect undefined_in_template.yml 'templates/undefined\.j2:3:25' "'no_such_user' is undefined.*undefined_in_template\.yml:8:7"
# Arguments required only in some cases, and local files that are not there.
expect mount_missing_src.yml 'mount_missing_src\.yml:6:7' 'state is mounted but all of the following are missing: src, fstype'
expect lineinfile_no_line.yml 'lineinfile_no_line\.yml:6:7' 'line is required with state=present'
expect command_no_command.yml 'command_no_command\.yml:6:7' 'no command given'
expect shell_no_command.yml 'shell_no_command\.yml:6:7' 'no command given'
expect copy_missing_src.yml 'copy_missing_src\.yml:6:7' "argument 'src' of module 'copy': Could not find or access 'no_such_file\.txt'"
expect template_missing_src.yml 'template_missing_src\.yml:6:7' "argument 'src' of module 'template': Could not find or access 'no_such_template\.j2'"

# The good playbook does run, so the marker check above means something.
rm -f "$work/marker"
"$AICP" run "$data/good.yml" -i "$work/inv.ini" -e "marker=$work/marker" >/dev/null 2>&1
rc=$?
if [ "$rc" -ne 2 ] || [ ! -e "$work/marker" ]; then
    echo "FAIL good.yml: exit $rc (expected 2) or no marker"; fail=1
fi
# Names a condition guards (is defined, default, an and-chain or a list of
# conditions, a block's when) are not refused: the playbook runs.
rm -f "$work/marker.fine"
"$AICP" run "$data/guarded_when.yml" -i "$work/inv.ini" -e "marker=$work/marker" >"$work/out" 2>&1
rc=$?
if [ "$rc" -ne 2 ] || [ ! -e "$work/marker.fine" ]; then
    echo "FAIL guarded_when.yml: exit $rc (expected 2) or no marker"; cat "$work/out"; fail=1
fi
# k=v values decode escapes as Ansible's parse_kv: \1 stays a backreference
# (it is not an octal escape), so backrefs write c=22, not c=\x01.
printf 'a=1\nb=22\n' > "$work/br.txt"
cat > "$work/br.yml" <<EOF
- hosts: localhost
  gather_facts: false
  tasks:
    - lineinfile: path=$work/br.txt regexp='^b=(\\d+)' line='c=\\1' backrefs=yes
EOF
"$AICP" run "$work/br.yml" -i "$work/inv.ini" >"$work/out" 2>&1
rc=$?
if [ "$rc" -ne 2 ] || [ "$(cat "$work/br.txt")" != "$(printf 'a=1\nc=22')" ]; then
    echo "FAIL backrefs through k=v: exit $rc, file:"; od -c "$work/br.txt"; cat "$work/out"; fail=1
fi
# --syntax-check validates without running anything.
rm -f "$work/marker"
"$AICP" run "$data/good.yml" -i "$work/inv.ini" -e "marker=$work/marker" --syntax-check >/dev/null 2>&1
rc=$?
if [ "$rc" -ne 0 ] || [ -e "$work/marker" ]; then
    echo "FAIL --syntax-check on a good playbook: exit $rc (expected 0), or it ran a task"; fail=1
fi
"$AICP" run "$data/misspelled_arg.yml" -i "$work/inv.ini" -e "marker=$work/marker" --syntax-check >/dev/null 2>&1
[ $? -eq 65 ] || { echo "FAIL --syntax-check on a bad playbook is not 65"; fail=1; }
# Usage errors are 64.
"$AICP" run >/dev/null 2>&1; [ $? -eq 64 ] || { echo "FAIL: 'aicp run' without arguments is not 64"; fail=1; }
"$AICP" frobnicate >/dev/null 2>&1; [ $? -eq 64 ] || { echo "FAIL: an unknown command is not 64"; fail=1; }
"$AICP" run "$data/good.yml" -i "$work/inv.ini" --forks zero >/dev/null 2>&1
[ $? -eq 64 ] || { echo "FAIL: --forks zero is not 64"; fail=1; }
# The command line, as ansible-playbook checks it before anything runs.
rm -f "$work/marker"
out=$("$AICP" run "$data/good.yml" -i "$work/inv.ini" -e "marker=$work/marker" -e bad 2>&1)
rc=$?
if [ "$rc" -ne 64 ] || [ -e "$work/marker" ] ||
   ! printf '%s' "$out" | grep -q "Invalid extra vars data supplied. 'bad' could not be made into a dictionary"; then
    echo "FAIL: -e bad: exit $rc (expected 64), or it ran: $out"; fail=1
fi
out=$("$AICP" run "$data/good.yml" -i "$work/inv.ini" -e "marker=$work/marker" --limit nosuchhost 2>&1)
rc=$?
if [ "$rc" -ne 1 ] || [ -e "$work/marker" ] ||
   ! printf '%s' "$out" | grep -q 'Specified inventory, host pattern and/or --limit leaves us with no hosts to target.'; then
    echo "FAIL: --limit nosuchhost: exit $rc (expected 1), or it ran: $out"; fail=1
fi
out=$("$AICP" run "$work/no-such-playbook.yml" -i "$work/inv.ini" 2>&1)
rc=$?
if [ "$rc" -ne 65 ] || ! printf '%s' "$out" | grep -q 'no-such-playbook.yml could not be found'; then
    echo "FAIL: a missing playbook: exit $rc (expected 65): $out"; fail=1
fi
"$AICP" version extra >/dev/null 2>&1; [ $? -eq 64 ] || { echo "FAIL: 'aicp version extra' is not 64"; fail=1; }
"$AICP" version >/dev/null 2>&1; [ $? -eq 0 ] || { echo "FAIL: 'aicp version' is not 0"; fail=1; }
exit $fail
