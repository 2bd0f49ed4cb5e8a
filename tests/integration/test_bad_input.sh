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

# The good playbook does run, so the marker check above means something.
rm -f "$work/marker"
"$AICP" run "$data/good.yml" -i "$work/inv.ini" -e "marker=$work/marker" >/dev/null 2>&1
rc=$?
if [ "$rc" -ne 2 ] || [ ! -e "$work/marker" ]; then
    echo "FAIL good.yml: exit $rc (expected 2) or no marker"; fail=1
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
exit $fail
