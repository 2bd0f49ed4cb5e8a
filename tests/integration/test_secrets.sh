#!/bin/sh
# Secret hygiene end to end on a lab host: values from a vaulted vars file
# and from an inline !vault value are used by tasks, and never show up in
# the terminal output (at any -v level), --diff, the JSON report, error
# messages, or any process's argv while the run goes on. no_log censors a
# result whole. Then the SSH host-key policy: strict by default,
# --accept-new-host-keys, and ANSIBLE_HOST_KEY_CHECKING=False with a warning.
. "$top_srcdir/tests/integration/lib.sh"
need_lab
lab_up 1
inv="$LAB/inventory.ini"
fail=0
bad() { echo "FAIL: $*"; fail=1; }
# clean FILE WHAT: the canary must not be in FILE (never print the line).
clean() {
    if grep -q -a -F -e "$CANARY" "$1"; then
        bad "$2 shows the secret"
        rm -f "$1"
    fi
}

in="$WORK/secret-inputs"
mkdir -p "$in" "$WORK/pb/group_vars/all"
chmod 700 "$in"
printf 'pw-%s\n' "$CANARY" > "$in/pw"
printf 'ontap_password: %s-ontap\nkube_token: tok-%s\n' "$CANARY" "$CANARY" > "$in/plain.yml"
"$AICP" vault encrypt --vault-password-file "$in/pw" --output "$WORK/pb/group_vars/all/vault.yml" \
    "$in/plain.yml" > "$WORK/enc.out" 2>&1 || { cat "$WORK/enc.out"; bad "vault encrypt"; }
printf '%s-inline' "$CANARY" | "$AICP" vault encrypt_string --vault-password-file "$in/pw" \
    --stdin-name git_key > "$WORK/pb/group_vars/all/inline.yml" 2>"$WORK/es.err" ||
    { cat "$WORK/es.err"; bad "vault encrypt_string"; }
grep -q '^git_key: !vault |' "$WORK/pb/group_vars/all/inline.yml" || bad "encrypt_string output"

cat > "$WORK/pb/site.yml" <<'PB'
- hosts: lab
  gather_facts: false
  tasks:
    - name: say it
      debug: {msg: "the password is {{ ontap_password }}"}
    - name: the inline value was decrypted
      assert:
        that:
          - git_key is match('AICP-CANARY-')
          - git_key | length == 27
    - name: write it
      copy: {dest: /root/app.conf, content: "password={{ ontap_password }}\n", mode: "0600"}
    - name: a command that prints it
      command: "cat /root/app.conf"
      register: catted
      changed_when: false
    - name: hidden whole (it sleeps, so that the argv watch sees it run)
      shell: "cat /root/app.conf; sleep 1; echo token={{ kube_token }}"
      no_log: true
      changed_when: false
    - name: loop over secrets
      debug: {msg: "item {{ item }}"}
      loop: ["{{ kube_token }}", "plain"]
    - name: take a while, so that ps can look
      command: sleep 1
      changed_when: false
PB

# Every process's argv, sampled while the run goes on.
argv_watch_start "$WORK/ps.hits"
"$AICP" run "$WORK/pb/site.yml" -i "$inv" --diff -vvv --json "$WORK/report1.json" \
    --vault-password-file "$in/pw" > "$WORK/run1.out" 2>&1
rc=$?
argv_watch_stop
[ "$rc" -eq 2 ] || { sed "s/$CANARY/<CANARY>/g" "$WORK/run1.out"; bad "first run exit $rc, expected 2"; }
[ ! -s "$WORK/ps.hits" ] || bad "a process argv held the secret during the run"
clean "$WORK/run1.out" "run output at -vvv"
clean "$WORK/report1.json" "the JSON report"
grep -q '"msg": "the password is \*\*\*\*\*\*\*\*"' "$WORK/run1.out" || bad "debug msg not masked"
grep -q 'diff hidden: the change involves a secret value' "$WORK/run1.out" || bad "secret diff not hidden"
grep -q "the output has been hidden due to the fact that 'no_log: true' was specified" "$WORK/run1.out" ||
    bad "no_log result not censored"
grep -q '(item=\*\*\*\*\*\*\*\*)' "$WORK/run1.out" || bad "loop label not masked"
grep -q '"stdout": "password=\*\*\*\*\*\*\*\*"' "$WORK/run1.out" || bad "command stdout not masked"
grep -Eq '^node01 .*changed=1 .*failed=0' "$WORK/run1.out" || bad "first run recap"
# The file on the host has the real value (counted, never printed; the
# pattern is spelled so that the grep's own argv does not match it).
canary_re=$(printf '%s' "$CANARY" | sed 's/-/[-]/')
n=$(lab_ssh node01 "grep -c -e '$canary_re-ontap' /root/app.conf")
[ "$n" = 1 ] || bad "the secret did not reach the host ($n)"

# Second run: nothing changes, at every verbosity nothing leaks.
for v in "" -v -vv; do
    "$AICP" run "$WORK/pb/site.yml" -i "$inv" --diff $v --vault-password-file "$in/pw" \
        > "$WORK/run2.out" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || bad "rerun ($v) exit $rc, expected 0"
    clean "$WORK/run2.out" "rerun output ($v)"
done

# Check mode and diff of a changed secret: shows that it changes, not what.
# The new value comes from a vaulted -e @file.
printf 'ontap_password: %s-new\n' "$CANARY" > "$in/new.yml"
"$AICP" vault encrypt --vault-password-file "$in/pw" --output "$WORK/new.yml" "$in/new.yml" \
    >/dev/null 2>&1 || bad "vault encrypt new.yml"
"$AICP" run "$WORK/pb/site.yml" -i "$inv" --check --diff -e "@$WORK/new.yml" \
    --vault-password-file "$in/pw" > "$WORK/run3.out" 2>&1
rc=$?
[ "$rc" -eq 2 ] || bad "check run with a new secret: exit $rc, expected 2"
grep -q 'diff hidden: the change involves a secret value' "$WORK/run3.out" || bad "check diff not hidden"
clean "$WORK/run3.out" "check-mode diff of a changed secret"

# A failing task's message: masked in the error and the report.
cat > "$WORK/pb/fail.yml" <<'PB'
- hosts: lab
  gather_facts: false
  tasks:
    - fail: {msg: "cannot log in with {{ ontap_password }}"}
PB
"$AICP" run "$WORK/pb/fail.yml" -i "$inv" --json "$WORK/report4.json" \
    --vault-password-file "$in/pw" > "$WORK/run4.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] || bad "failing run exit $rc, expected 1"
grep -q 'cannot log in with \*\*\*\*\*\*\*\*' "$WORK/run4.out" || bad "failure message not masked"
clean "$WORK/run4.out" "failure output"
clean "$WORK/report4.json" "failure report"

# Without the password, or with a wrong one: a clear error, exit 1, and
# nothing of the plaintext.
"$AICP" run "$WORK/pb/site.yml" -i "$inv" > "$WORK/run5.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] || bad "no vault password: exit $rc, expected 1"
grep -qi 'vault' "$WORK/run5.out" || { cat "$WORK/run5.out"; bad "no vault password: message"; }
printf 'wrong\n' > "$in/wrong"
"$AICP" run "$WORK/pb/site.yml" -i "$inv" --vault-password-file "$in/wrong" > "$WORK/run6.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] || bad "wrong vault password: exit $rc, expected 1"
grep -q 'Decryption failed' "$WORK/run6.out" || { cat "$WORK/run6.out"; bad "wrong password message"; }
grep -Eq '(vault|inline).yml' "$WORK/run6.out" || bad "wrong password message does not name the file"
# AICP_VAULT_PASSWORD_FILE stands in for the option.
AICP_VAULT_PASSWORD_FILE="$in/pw" "$AICP" run "$WORK/pb/site.yml" -i "$inv" > "$WORK/run7.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] || bad "AICP_VAULT_PASSWORD_FILE: exit $rc, expected 0"
clean "$WORK/run7.out" "run with AICP_VAULT_PASSWORD_FILE"
lab_ssh node01 "rm -f /root/app.conf"

# aicp inventory reads vaulted values too, and shows them masked.
cat > "$WORK/inv.yml" <<EOF
all:
  hosts:
    dgx01:
      ansible_host: 127.0.0.1
  vars:
$(sed 's/^/    /' "$WORK/pb/group_vars/all/inline.yml")
EOF
"$AICP" inventory -i "$WORK/inv.yml" --host dgx01 --vault-password-file "$in/pw" \
    > "$WORK/inv.out" 2>&1 || { cat "$WORK/inv.out"; bad "inventory --host with a vaulted value"; }
grep -q '"git_key": "\*\*\*\*\*\*\*\*"' "$WORK/inv.out" || bad "inventory --host does not mask the value"
clean "$WORK/inv.out" "aicp inventory --host"
"$AICP" inventory -i "$WORK/inv.yml" --list > "$WORK/inv2.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] || bad "inventory without the vault password: exit $rc, expected 1"
grep -Eq 'inv.yml:6:.*(Decryption failed|no vault secrets)' "$WORK/inv2.out" || { cat "$WORK/inv2.out"; bad "inventory without password: message"; }

# A vaulted INI inventory: its values are secrets like any vaulted value
# (ansible-vault's own encryption of it, under another id than the vars
# files' password, which comes from the environment: both are used).
printf 'pw2-%s\n' "$CANARY" > "$in/pw2"
{ cat "$inv"; printf '\n[lab:vars]\ndb_password=%s-ini\n' "$CANARY"; } > "$in/vinv.ini"
if command -v ansible-vault >/dev/null 2>&1; then
    ANSIBLE_LOCAL_TEMP="$WORK/.ansible-tmp" ANSIBLE_HOME="$WORK/.ansible" \
        ansible-vault encrypt --vault-id "inv@$in/pw2" --output "$WORK/vinv.ini" "$in/vinv.ini" \
        > "$WORK/venc.out" 2>&1 || { cat "$WORK/venc.out"; bad "ansible-vault encrypt of the inventory"; }
else
    "$AICP" vault encrypt --vault-id "inv@$in/pw2" --output "$WORK/vinv.ini" "$in/vinv.ini" \
        > "$WORK/venc.out" 2>&1 || { cat "$WORK/venc.out"; bad "vault encrypt of the inventory"; }
fi
cat > "$WORK/pb/ini.yml" <<'PB'
- hosts: lab
  gather_facts: false
  tasks:
    - debug: {var: db_password}
    - debug: {msg: "db {{ db_password }} git {{ git_key }}"}
PB
AICP_VAULT_PASSWORD_FILE="$in/pw" "$AICP" run "$WORK/pb/ini.yml" -i "$WORK/vinv.ini" -v \
    --vault-id "inv@$in/pw2" --json "$WORK/report8.json" > "$WORK/run8.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] || { sed "s/$CANARY/<CANARY>/g" "$WORK/run8.out"; bad "vaulted INI inventory run: exit $rc"; }
grep -q '"db_password": "\*\*\*\*\*\*\*\*"' "$WORK/run8.out" || bad "vaulted INI value not masked"
grep -q '"msg": "db \*\*\*\*\*\*\*\* git \*\*\*\*\*\*\*\*"' "$WORK/run8.out" ||
    bad "vaulted INI value or the environment's vault password not used"
clean "$WORK/run8.out" "run with a vaulted INI inventory"
clean "$WORK/report8.json" "report of a run with a vaulted INI inventory"
"$AICP" inventory -i "$WORK/vinv.ini" --list --vault-id "inv@$in/pw2" > "$WORK/inv3.out" 2>&1 ||
    { cat "$WORK/inv3.out"; bad "inventory --list of a vaulted INI inventory"; }
grep -q '"db_password": "\*\*\*\*\*\*\*\*"' "$WORK/inv3.out" || bad "inventory --list does not mask it"
clean "$WORK/inv3.out" "aicp inventory --list of a vaulted INI inventory"

# An error in vaulted YAML names the place, never the text (here an alias
# whose name is the secret).
printf 'pw: *%s-alias\n' "$CANARY" > "$in/badalias.yml"
"$AICP" vault encrypt --vault-password-file "$in/pw" --output "$WORK/pb/badalias.yml" \
    "$in/badalias.yml" >/dev/null 2>&1 || bad "vault encrypt badalias.yml"
cat > "$WORK/pb/alias.yml" <<'PB'
- hosts: lab
  gather_facts: false
  vars_files: [badalias.yml]
  tasks:
    - debug: {var: pw}
PB
"$AICP" run "$WORK/pb/alias.yml" -i "$inv" --vault-password-file "$in/pw" > "$WORK/run9.out" 2>&1
rc=$?
[ "$rc" -ne 0 ] || bad "a vaulted vars file with a YAML error: exit 0"
grep -q 'badalias.yml:1:5: found undefined alias' "$WORK/run9.out" ||
    { sed "s/$CANARY/<CANARY>/g" "$WORK/run9.out"; bad "vaulted YAML error: no place or description"; }
clean "$WORK/run9.out" "a YAML error in a vaulted file"

# ---- SSH host keys --------------------------------------------------------
cat > "$WORK/ping.yml" <<'PB'
- hosts: lab
  gather_facts: false
  tasks:
    - ping:
PB
kh2="$WORK/kh2"
sed "s|aicp_known_hosts=[^ ]*|aicp_known_hosts=$kh2|" "$inv" > "$WORK/kh2.ini"
grep -q "aicp_known_hosts=$kh2" "$WORK/kh2.ini" || bad "could not point the inventory at $kh2"
: > "$kh2"
"$AICP" run "$WORK/ping.yml" -i "$WORK/kh2.ini" > "$WORK/hk1.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] || bad "unknown host key: exit $rc, expected 1"
grep -q 'UNREACHABLE.*is not in known_hosts' "$WORK/hk1.out" || bad "unknown host key message"
"$AICP" run "$WORK/ping.yml" -i "$WORK/kh2.ini" --accept-new-host-keys > "$WORK/hk2.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] || { cat "$WORK/hk2.out"; bad "--accept-new-host-keys: exit $rc, expected 0"; }
grep -q 'added \[127.0.0.1\]' "$WORK/hk2.out" || bad "accepting a new key is not reported"
[ "$(grep -c . "$kh2")" -ge 1 ] || bad "the accepted key was not recorded"
"$AICP" run "$WORK/ping.yml" -i "$WORK/kh2.ini" > "$WORK/hk3.out" 2>&1 ||
    bad "the recorded key is not trusted on the next run"
# A changed key is refused even with --accept-new-host-keys.
port=$(lab_port node01)
ssh-keygen -q -t ed25519 -N '' -f "$WORK/other" >/dev/null
printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$WORK/other.pub")" > "$kh2"
"$AICP" run "$WORK/ping.yml" -i "$WORK/kh2.ini" --accept-new-host-keys > "$WORK/hk4.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] || bad "changed host key: exit $rc, expected 1"
grep -q 'HAS CHANGED' "$WORK/hk4.out" || bad "changed host key message"
# Ansible's switch turns checking off, with a warning.
ANSIBLE_HOST_KEY_CHECKING=False "$AICP" run "$WORK/ping.yml" -i "$WORK/kh2.ini" \
    > "$WORK/hk5.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] || bad "ANSIBLE_HOST_KEY_CHECKING=False: exit $rc, expected 0"
grep -q 'WARNING.*host key checking is off (ANSIBLE_HOST_KEY_CHECKING=False)' "$WORK/hk5.out" ||
    bad "no warning when host key checking is off"
# So does host_key_checking = False in ansible.cfg.
mkdir -p "$WORK/cfgdir"
printf '[defaults]\nhost_key_checking = False\n' > "$WORK/cfgdir/ansible.cfg"
(cd "$WORK/cfgdir" && "$AICP" run "$WORK/ping.yml" -i "$WORK/kh2.ini" > "$WORK/hk6.out" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || bad "ansible.cfg host_key_checking = False: exit $rc, expected 0"
grep -q 'host_key_checking = False in ansible.cfg' "$WORK/hk6.out" || bad "no warning for ansible.cfg"
exit $fail
