#!/bin/sh
# Values a template derives from a secret are masked like the secret: a
# slice, upper, b64encode, reverse and list of a vaulted value never show
# in the terminal (at -vvv too), in a command's output, or in the JSON
# report, while numbers and booleans about it (length, is defined) still
# print. Errors about a secret template or a filter's secret input quote
# no piece of it. Runs on the local connection: no lab needed.
. "$top_srcdir/tests/integration/lib.sh"
[ -x "$AICP" ] || skip "no aicp binary at $AICP"
T=$(mktemp -d /tmp/aicp-derived-XXXXXX) || fail "mktemp"
cleanup() {
    canary_scan "$(basename "$0" .sh)-$$" "$T"
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# What each derivation gives, worked out here (never printed).
upper=$(printf '%s' "$CANARY" | tr 'a-z' 'A-Z')
lower=$(printf '%s' "$CANARY" | tr 'A-Z' 'a-z')
b64=$(printf '%s' "$CANARY" | base64)
rev=$(printf '%s' "$CANARY" | rev)
head12=$(printf '%s' "$CANARY" | cut -c1-12)
tail8=$(printf '%s' "$CANARY" | cut -c13-)
# leaks FILE WHAT: none of the canary and its derived forms is in FILE;
# only the names of those found are printed.
leaks() {
    for pair in "canary:$CANARY" "upper:$upper" "lower:$lower" "b64encode:$b64" \
        "reverse:$rev" "slice:$head12" "tail:$tail8"; do
        if grep -q -a -F -e "${pair#*:}" "$1"; then
            bad "$2 shows the secret's ${pair%%:*} form"
        fi
    done
}

in="$T/secret-inputs"
mkdir -p "$in" "$T/pb"
chmod 700 "$in" "$T"
printf 'pw-%s\n' "$CANARY" > "$in/pw"
printf 'vf_file: %s\npw_tmpl: "{{ %s }}"\n' "$CANARY" "$CANARY" > "$in/plain.yml"
"$AICP" vault encrypt --vault-password-file "$in/pw" --output "$T/pb/vault.yml" \
    "$in/plain.yml" > "$T/enc.out" 2>&1 || { cat "$T/enc.out"; bad "vault encrypt"; }
printf 'localhost ansible_connection=local\n' > "$T/inv.ini"

cat > "$T/pb/derived.yml" <<'PB'
- hosts: localhost
  gather_facts: false
  vars_files: [vault.yml]
  tasks:
    - name: slice
      debug: {msg: "{{ vf_file[0:12] }}"}
    - name: upper
      debug: {msg: "{{ vf_file | upper }}"}
    - name: b64encode
      debug: {msg: "{{ vf_file | b64encode }}"}
    - name: reverse
      debug: {msg: "{{ vf_file | reverse }}"}
    - name: list
      debug: {msg: "{{ vf_file | list }}"}
    - name: list in a string
      debug: {msg: "chars {{ vf_file | list }}"}
    - name: tail, by a lazy variable
      debug: {var: tail}
      vars: {tail: "{{ vf_file[12:] }}"}
    - name: facts about it still print
      debug: {msg: "len {{ vf_file | length }} defined {{ vf_file is defined }}"}
    - name: a fact set from it
      set_fact: {low: "{{ vf_file | lower }}"}
    - name: the fact
      debug: {var: low}
    - name: a command that prints a derived value
      command: "echo {{ vf_file | b64encode }}"
      changed_when: false
PB
"$AICP" run "$T/pb/derived.yml" -i "$T/inv.ini" -vvv --json "$T/report1.json" \
    --vault-password-file "$in/pw" > "$T/run1.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] || { sed "s/$CANARY/<CANARY>/g" "$T/run1.out"; bad "derived run exit $rc, expected 0"; }
leaks "$T/run1.out" "the run output at -vvv"
leaks "$T/report1.json" "the JSON report"
n=$(grep -c '"msg": "\*\*\*\*\*\*\*\*"' "$T/run1.out")
[ "$n" -eq 6 ] || bad "expected the 6 derived debug messages masked whole, got $n"
grep -q '"tail": "\*\*\*\*\*\*\*\*"' "$T/run1.out" || bad "the lazy variable is not masked"
grep -q '"low": "\*\*\*\*\*\*\*\*"' "$T/run1.out" || bad "the fact is not masked"
grep -q '"stdout": "\*\*\*\*\*\*\*\*"' "$T/run1.out" || bad "the command's stdout is not masked"
grep -q '"msg": "len 20 defined True"' "$T/run1.out" || bad "length and is defined garbled"
# The same without -v.
"$AICP" run "$T/pb/derived.yml" -i "$T/inv.ini" --vault-password-file "$in/pw" \
    > "$T/run2.out" 2>&1 || bad "derived run without -v failed"
leaks "$T/run2.out" "the run output"

# Errors: a secret that is a broken template, a filter failing on a secret.
cat > "$T/pb/errors.yml" <<'PB'
- hosts: localhost
  gather_facts: false
  vars_files: [vault.yml]
  tasks:
    - name: a secret that does not parse
      debug: {msg: "{{ pw_tmpl }}"}
      ignore_errors: true
    - name: a secret that is no JSON
      debug: {msg: "{{ vf_file | from_json }}"}
      ignore_errors: true
PB
"$AICP" run "$T/pb/errors.yml" -i "$T/inv.ini" -vvv --json "$T/report3.json" \
    --vault-password-file "$in/pw" > "$T/run3.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] || { sed "s/$CANARY/<CANARY>/g" "$T/run3.out"; bad "error run exit $rc, expected 0"; }
grep -q 'ignored=2' "$T/run3.out" || bad "the two errors were not both reported"
for f in "$T/run3.out" "$T/report3.json"; do
    for piece in AICP CANARY 7f3e f3e9b2c; do
        grep -q -a -F -e "$piece" "$f" && bad "$(basename "$f") quotes a piece of the secret ($piece)"
    done
done
grep -q 'template error while templating a secret value' "$T/run3.out" ||
    bad "the broken secret template's error does not say what failed"
grep -q "filter 'from_json' failed on a secret value" "$T/run3.out" ||
    bad "from_json's error does not say what failed"
exit $fail
