#!/bin/sh
# Compares `aicp inventory --list` (and --graph --vars) with ansible-inventory
# for every inventory in tests/data/inventory/; skipped (77) when
# ansible-inventory is not installed.
set -u
: "${top_srcdir:=.}" "${top_builddir:=.}" "${AICP:=$top_builddir/aicp}"

if ! command -v ansible-inventory >/dev/null 2>&1; then
    echo "SKIP: ansible-inventory is not installed"
    exit 77
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "SKIP: python3 is not installed"
    exit 77
fi

if ! "$AICP" inventory --help >/dev/null 2>&1; then
    echo "SKIP: $AICP has no working 'inventory' command (not wired into main.c yet?)"
    exit 77
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
# ansible-inventory must not pick up a config or vars from the caller's cwd
cd "$tmp" || exit 1
printf '[defaults]\n' >"$tmp/ansible.cfg"
ANSIBLE_CONFIG="$tmp/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=0 \
    ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_LOCAL_TEMP="$tmp" ANSIBLE_HOME="$tmp"
export ANSIBLE_CONFIG ANSIBLE_NOCOLOR ANSIBLE_LOCALHOST_WARNING ANSIBLE_INVENTORY_UNPARSED_WARNING \
    ANSIBLE_LOCAL_TEMP ANSIBLE_HOME

status=0
count=0
for inv in "$top_srcdir"/tests/data/inventory/*; do
    case "$inv" in
    *.expected.json | *.md) continue ;;
    esac
    name=$(basename "$inv")
    count=$((count + 1))
    if ! ansible-inventory -i "$inv" --list >"$tmp/want.json" 2>"$tmp/want.err"; then
        echo "FAIL: $name: ansible-inventory failed:" >&2
        cat "$tmp/want.err" >&2
        status=1
        continue
    fi
    if ! "$AICP" inventory -i "$inv" --list >"$tmp/got.json" 2>"$tmp/got.err"; then
        echo "FAIL: $name: aicp inventory failed:" >&2
        cat "$tmp/got.err" >&2
        status=1
        continue
    fi
    if ! python3 -c 'import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
sys.exit(0 if a == b else 1)' "$tmp/want.json" "$tmp/got.json"; then
        echo "FAIL: $name: --list differs from ansible-inventory:" >&2
        diff "$tmp/want.json" "$tmp/got.json" >&2
        status=1
        continue
    fi
    # The graph is plain text: it must match byte for byte.
    ansible-inventory -i "$inv" --graph --vars >"$tmp/want.txt" 2>/dev/null
    "$AICP" inventory -i "$inv" --graph --vars >"$tmp/got.txt" 2>/dev/null
    if ! cmp -s "$tmp/want.txt" "$tmp/got.txt"; then
        echo "FAIL: $name: --graph --vars differs from ansible-inventory:" >&2
        diff "$tmp/want.txt" "$tmp/got.txt" >&2
        status=1
        continue
    fi
    echo "ok: $name"
done

# Several sources at once, as -i repeated.
d="$top_srcdir/tests/data/inventory"
ansible-inventory -i "$d/deepops.ini" -i "$d/cluster.yml" --list >"$tmp/want.json" 2>/dev/null
"$AICP" inventory -i "$d/deepops.ini" -i "$d/cluster.yml" --list >"$tmp/got.json"
if ! python3 -c 'import json, sys
sys.exit(0 if json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else 1)' "$tmp/want.json" "$tmp/got.json"; then
    echo "FAIL: two sources: --list differs" >&2
    diff "$tmp/want.json" "$tmp/got.json" >&2
    status=1
fi

# A broken inventory: exit 65 and a file:line message.
printf '[web]\nh1\n[web:oops]\n' >"$tmp/bad.ini"
"$AICP" inventory -i "$tmp/bad.ini" --list >/dev/null 2>"$tmp/bad.err"
rc=$?
if [ "$rc" -ne 65 ] || ! grep -q "bad.ini:3:" "$tmp/bad.err"; then
    echo "FAIL: bad inventory: exit $rc, stderr: $(cat "$tmp/bad.err")" >&2
    status=1
fi
"$AICP" inventory --list --graph -i "$tmp/bad.ini" >/dev/null 2>"$tmp/usage.err"
rc=$?
if [ "$rc" -ne 64 ] || ! grep -q "^aicp: " "$tmp/usage.err"; then
    echo "FAIL: usage error: exit $rc" >&2
    status=1
fi

[ "$count" -ge 5 ] || { echo "FAIL: only $count inventories found" >&2; status=1; }
exit $status
