#!/bin/sh
# The same playbooks through aicp and ansible-playbook on localhost: task
# banners, per-host result lines, debug output and the recap must agree.
# Skips (77) when ansible-playbook is not installed.
set -u
: "${top_srcdir:?}" "${AICP:?}"
command -v ansible-playbook >/dev/null 2>&1 || { echo "SKIP: no ansible-playbook"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n' > "$work/inv"
fail=0
# What both print that must match: banners, result lines, debug output,
# the recap. Timings and diagnostics are left out.
normalize() {
    # Content with no file behind it: Ansible names a local temp file, aicp
    # says so.
    sed -e 's/^\(fatal: \[[^]]*\]: [A-Z]*!\) => .*/\1/' -e 's/^\(failed: \[[^]]*\] (item=[^)]*)\) => {.*}$/\1/' \
        -e 's|^+++ after: /.*/ansible-local-[^ ]*$|+++ after: (generated)|' \
        -e 's|^+++ after: dynamically generated$|+++ after: (generated)|' |
        grep -Ev '^\s*$|"(delta|start|end)":|^\[WARNING\]' | sed 's/ *$//'
}
for pb in "$top_srcdir"/tests/data/compat/*.yml; do
    name=$(basename "$pb")
    # A first line "# args: ..." gives both tools the same extra options.
    args=$(sed -n '1s/^# args: //p' "$pb")
    # shellcheck disable=SC2086
    ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_DISPLAY_SKIPPED_HOSTS=1 \
        ANSIBLE_LOCAL_TEMP="$work/tmp" ansible-playbook -i "$work/inv" $args "$pb" 2>/dev/null |
        normalize > "$work/ansible.out"
    # shellcheck disable=SC2086
    "$AICP" run "$pb" -i "$work/inv" $args 2>/dev/null | normalize > "$work/aicp.out"
    # --list-hosts too (the same playbook and inventory).
    ansible-playbook -i "$work/inv" --list-hosts "$pb" 2>/dev/null >> "$work/ansible.out"
    "$AICP" run "$pb" -i "$work/inv" --list-hosts 2>/dev/null >> "$work/aicp.out"
    if diff -u "$work/ansible.out" "$work/aicp.out" > "$work/diff"; then
        echo "ok   $name: output identical to ansible-playbook's ($(wc -l < "$work/aicp.out") lines)"
    else
        echo "FAIL $name: output differs from ansible-playbook's (- ansible, + aicp):"
        cat "$work/diff"
        fail=1
    fi
done
exit $fail
