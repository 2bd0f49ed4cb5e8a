#!/bin/sh
# `aicp vault` end to end: encrypt, decrypt, view, rekey, encrypt_string,
# their exit statuses and messages, atomic in-place writes that keep the
# mode, and round trips both ways with ansible-vault when it is installed.
# Plaintext and passwords (they hold the suite's canary) are never printed:
# outputs are compared with cmp into files that the exit trap removes. The
# test's own plaintext inputs live in secret-inputs/; on exit the scratch
# directory is scanned for the canary (tests/integration/lib.sh) before it
# is removed, so a temp file left with plaintext in it is caught.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"

[ -x "$AICP" ] || skip "no aicp binary at $AICP"
DATA=$top_srcdir/tests/data/vault
T=$(mktemp -d /tmp/aicp-vault-XXXXXX) || fail "mktemp"
# `out` is where view and decrypt write plaintext on purpose: it goes
# before the scan; anything else holding the canary is a leak.
trap 'rm -f "$T/out"; canary_scan "test_vault-$$" "$T"; rm -rf "$T"' EXIT
trap 'exit 130' INT TERM HUP
cd "$T" || fail "cd $T"
IN=$T/secret-inputs
mkdir -m 700 "$IN" || fail "mkdir $IN"
unset AICP_VAULT_PASSWORD_FILE ANSIBLE_VAULT_PASSWORD_FILE
PW=$DATA/password.txt

# run EXPECTED_STATUS CMD...: runs CMD with stdin from /dev/null (unless
# redirected by the caller), stdout to out, stderr to err.
run() {
    _want=$1
    shift
    "$@" >out 2>err
    _got=$?
    [ "$_got" = "$_want" ] || {
        sed 's/AICP-CANARY[-0-9a-z]*/<canary>/g' err >&2
        fail "exit $_got, wanted $_want: $*"
    }
}
has() { grep -qF -- "$1" "$2" || fail "$2 lacks '$1'"; }
no_canary() {
    for _f in "$@"; do
        ! grep -q AICP-CANARY "$_f" || fail "$_f shows plaintext or a password"
    done
}

# --- known answers: files ansible-vault made --------------------------------
run 0 "$AICP" vault view --vault-password-file "$PW" "$DATA/v11.yml" </dev/null
cmp -s out "$DATA/plain.yml" || fail "view v11.yml"
run 0 "$AICP" vault view --vault-id "prod@$PW" "$DATA/v12-prod.yml" </dev/null
cmp -s out "$DATA/plain.yml" || fail "view v12-prod.yml"
AICP_VAULT_PASSWORD_FILE=$PW run 0 "$AICP" vault view "$DATA/v11.yml" </dev/null
cmp -s out "$DATA/plain.yml" || fail "AICP_VAULT_PASSWORD_FILE"
ANSIBLE_VAULT_PASSWORD_FILE=$PW run 0 "$AICP" vault view "$DATA/v11.yml" </dev/null
cmp -s out "$DATA/plain.yml" || fail "ANSIBLE_VAULT_PASSWORD_FILE"
run 0 "$AICP" vault decrypt --vault-password-file "$PW" --output - <"$DATA/v11.yml"
cmp -s out "$DATA/plain.yml" || fail "decrypt stdin to stdout"

# --- encrypt in place, mode kept, then decrypt --------------------------------
cp "$DATA/plain.yml" secret.yml
chmod 640 secret.yml
run 0 "$AICP" vault encrypt --vault-password-file "$PW" secret.yml </dev/null
no_canary secret.yml out err
head -n 1 secret.yml | grep -qx '\$ANSIBLE_VAULT;1.1;AES256' || fail "1.1 header"
[ "$(stat -c %a secret.yml)" = 640 ] || fail "encrypt changed the mode"
awk 'NR > 1 && length($0) > 80 { exit 1 }' secret.yml || fail "lines over 80 columns"
[ "$(ls -A | grep -vx secret-inputs | sort | tr '\n' ' ')" = "err out secret.yml " ] || fail "temp file left behind"
run 1 "$AICP" vault encrypt --vault-password-file "$PW" secret.yml </dev/null
has "input is already encrypted" err
run 0 "$AICP" vault decrypt --vault-password-file "$PW" secret.yml </dev/null
cmp -s secret.yml "$DATA/plain.yml" || fail "decrypt in place"
[ "$(stat -c %a secret.yml)" = 640 ] || fail "decrypt changed the mode"
run 1 "$AICP" vault decrypt --vault-password-file "$PW" secret.yml </dev/null
has "input is not vault encrypted data" err
rm -f secret.yml

# --- a symlink stays a symlink; its target is encrypted ----------------------
cp "$DATA/plain.yml" target.yml
ln -s target.yml link.yml
run 0 "$AICP" vault encrypt --vault-password-file "$PW" link.yml </dev/null
[ -L link.yml ] || fail "encrypt replaced the symlink"
head -n 1 target.yml | grep -q '^\$ANSIBLE_VAULT;' || fail "symlink target not encrypted"
rm -f link.yml target.yml

# --- encrypt stdin to stdout and to --output; labels -------------------------
run 0 "$AICP" vault encrypt --vault-id "prod@$PW" <"$DATA/plain.yml"
head -n 1 out | grep -qx '\$ANSIBLE_VAULT;1.2;AES256;prod' || fail "1.2 header"
mv out prod.vault
run 0 "$AICP" vault encrypt --vault-password-file "$PW" --output enc.vault - <"$DATA/plain.yml"
[ "$(stat -c %a enc.vault)" = 600 ] || fail "a new vault file is not 0600"
run 0 "$AICP" vault decrypt --vault-password-file "$PW" --output dec.yml enc.vault </dev/null
cmp -s dec.yml "$DATA/plain.yml" || fail "decrypt --output"
[ "$(stat -c %a dec.yml)" = 600 ] || fail "a new plaintext file is not 0600"
rm -f dec.yml
run 64 "$AICP" vault encrypt --vault-id "a@$PW" --vault-id "b@$DATA/password-dev.txt" \
    --output x.vault "$DATA/plain.yml" </dev/null
has "The vault-ids a,b are available to encrypt. Specify the vault-id to encrypt with --encrypt-vault-id" err
run 0 "$AICP" vault encrypt --vault-id "a@$PW" --vault-id "b@$DATA/password-dev.txt" \
    --encrypt-vault-id b --output x.vault "$DATA/plain.yml" </dev/null
head -n 1 x.vault | grep -qx '\$ANSIBLE_VAULT;1.2;AES256;b' || fail "--encrypt-vault-id"
run 1 "$AICP" vault view --vault-password-file "$PW" x.vault </dev/null
rm -f x.vault

# --- failures: statuses and messages ------------------------------------------
printf 'wrong-password\n' >wrong.txt
run 1 "$AICP" vault view --vault-password-file wrong.txt "$DATA/v11.yml" </dev/null
has "Decryption failed (no vault secrets were found that could decrypt)" err
no_canary out err
run 1 "$AICP" vault view --vault-password-file nonexistent.txt "$DATA/v11.yml" </dev/null
has "The vault password file nonexistent.txt was not found" err
run 64 "$AICP" vault view "$DATA/v11.yml" </dev/null
has "A vault password is required" err
if command -v setsid >/dev/null 2>&1; then
    # no controlling terminal: --ask-vault-pass cannot prompt
    run 64 setsid -w "$AICP" vault view --ask-vault-pass "$DATA/v11.yml" </dev/null
    has "no terminal" err
fi
run 64 "$AICP" vault frobnicate
run 64 "$AICP" vault view --no-such-option x
run 64 "$AICP" vault rekey --vault-password-file "$PW"
run 64 "$AICP" vault view --vault-id 'a;b@x' x
has "The character ';' is not allowed in vault ids" err
# A vault that is not one (damaged, forged) exits 1 as a wrong password
# does, and as ansible-vault does; never 65 (invalid input).
printf '$ANSIBLE_VAULT;1.1;AES256\nzz\n' >bad.vault
run 1 "$AICP" vault view --vault-password-file "$PW" bad.vault </dev/null
has "Non-hexadecimal digit found" err
head -n 3 "$DATA/v11.yml" >cut.vault              # body cut short
sed '2s/^./x/' "$DATA/v11.yml" >hex.vault         # a non-hex digit
sed '1s/AES256/AES128/' "$DATA/v11.yml" >cipher.vault
sed '1s/;1.1;/;9.9;/' "$DATA/v11.yml" >version.vault
sed '$d' "$DATA/v11.yml" >short.vault            # last line gone
for f in cut hex cipher version short; do
    run 1 "$AICP" vault view --vault-password-file "$PW" $f.vault </dev/null
    no_canary out err
    # (ansible-vault reads any version as 1.1; aicp refuses what it does
    # not know)
    if [ $f != version ] && command -v ansible-vault >/dev/null 2>&1; then
        ANSIBLE_LOCAL_TEMP="$T/.ansible-tmp" ANSIBLE_HOME="$T/.ansible" \
            ansible-vault view --vault-password-file "$PW" $f.vault >/dev/null 2>&1
        [ $? = 1 ] || fail "ansible-vault does not exit 1 on $f.vault either"
    fi
done
rm -f cut.vault hex.vault cipher.vault version.vault short.vault
run 1 "$AICP" vault view --vault-password-file "$PW" missing.vault </dev/null
has "missing.vault" err
rm -f bad.vault wrong.txt

# --- an executable password file is run, argv only its path ------------------
printf '#!/bin/sh\n[ $# -eq 0 ] || exit 9\ncat %s\n' "'$PW'" >pw.sh
chmod 700 pw.sh
run 0 "$AICP" vault view --vault-password-file ./pw.sh "$DATA/v11.yml" </dev/null
cmp -s out "$DATA/plain.yml" || fail "password script"
printf '#!/bin/sh\nexit 4\n' >fail.sh
chmod 700 fail.sh
run 1 "$AICP" vault view --vault-password-file ./fail.sh "$DATA/v11.yml" </dev/null
has "returned non-zero (4)" err
rm -f pw.sh fail.sh

# --- a client script (NAME-client[.ext]) is asked for the id --------------
# As ansible's ClientScriptVaultSecret: argv "--vault-id LABEL", stdout is
# the password, exit 2 means it knows no password for that id.
cat >my-client.sh <<EOF
#!/bin/sh
[ "\$1" = --vault-id ] || exit 9
case "\$2" in prod|default) cat '$PW' ;; *) echo "no \$2" >&2; exit 2 ;; esac
EOF
chmod 700 my-client.sh
run 0 "$AICP" vault view --vault-id prod@./my-client.sh "$DATA/v12-prod.yml" </dev/null
cmp -s out "$DATA/plain.yml" || fail "client script with --vault-id prod"
run 0 "$AICP" vault view --vault-password-file ./my-client.sh "$DATA/v11.yml" </dev/null
cmp -s out "$DATA/plain.yml" || fail "client script as --vault-password-file (id default)"
run 1 "$AICP" vault view --vault-id dev@./my-client.sh "$DATA/v11.yml" </dev/null
has "did not find a secret for vault-id=dev" err
if command -v ansible-vault >/dev/null 2>&1; then
    ANSIBLE_LOCAL_TEMP="$T/.ansible-tmp" ANSIBLE_HOME="$T/.ansible" \
        ansible-vault view --vault-id prod@./my-client.sh "$DATA/v12-prod.yml" >out 2>err ||
        fail "ansible-vault does not take the client script"
    cmp -s out "$DATA/plain.yml" || fail "ansible-vault view with the client script"
fi
rm -f my-client.sh

# --- rekey: in place, mode kept, nothing but the vault in the directory ------
mkdir rk
cp "$DATA/v11.yml" rk/s.yml
chmod 604 rk/s.yml
printf 'new-AICP-CANARY-7f3e9b2c-pw\n' >"$IN/newpw.txt"
ln -s "$IN/newpw.txt" newpw.txt
run 0 "$AICP" vault rekey --vault-password-file "$PW" --new-vault-password-file newpw.txt rk/s.yml </dev/null
has "Rekey successful" err
[ "$(ls -A rk)" = s.yml ] || fail "rekey left files behind: $(ls -A rk)"
[ "$(stat -c %a rk/s.yml)" = 604 ] || fail "rekey changed the mode"
no_canary rk/s.yml
run 1 "$AICP" vault view --vault-password-file "$PW" rk/s.yml </dev/null
run 0 "$AICP" vault view --vault-password-file newpw.txt rk/s.yml </dev/null
cmp -s out "$DATA/plain.yml" || fail "rekeyed content"
run 0 "$AICP" vault rekey --vault-password-file newpw.txt --new-vault-id "prod@$PW" rk/s.yml </dev/null
head -n 1 rk/s.yml | grep -qx '\$ANSIBLE_VAULT;1.2;AES256;prod' || fail "rekey --new-vault-id"
run 1 "$AICP" vault rekey --vault-password-file newpw.txt --new-vault-password-file "$PW" rk/s.yml </dev/null
cmp -s rk/s.yml "$DATA/v11.yml" && fail "failed rekey touched the file"
head -n 1 rk/s.yml | grep -qx '\$ANSIBLE_VAULT;1.2;AES256;prod' || fail "failed rekey changed the file"

# --- encrypt_string --------------------------------------------------------------
printf 'AICP-CANARY-7f3e9b2c-str' >"$IN/str.txt"
ln -s "$IN/str.txt" str.txt
run 0 "$AICP" vault encrypt_string --vault-password-file "$PW" --stdin-name ontap_password <str.txt
no_canary out err
head -n 1 out | grep -qx 'ontap_password: !vault |' || fail "encrypt_string header line"
sed -n 2p out | grep -qx '          \$ANSIBLE_VAULT;1.1;AES256' || fail "encrypt_string indent"
[ "$(tail -c 1 out | od -An -c | tr -d ' ')" != '\n' ] || fail "encrypt_string adds a newline"
! grep -q 'command line' err || fail "stdin input warned about the command line"
mv out str.yml
sed -n 's/^          //p' str.yml >str.vault
run 0 "$AICP" vault view --vault-password-file "$PW" str.vault </dev/null
cmp -s out str.txt || fail "encrypt_string round trip"
run 0 "$AICP" vault encrypt_string --vault-password-file "$PW" -n v1 'AICP-CANARY-7f3e9b2c-argv' </dev/null
has "command line" err
no_canary err
head -n 1 out | grep -qx 'v1: !vault |' || fail "encrypt_string --name"
run 64 "$AICP" vault encrypt_string --vault-password-file "$PW" </dev/null
has "stdin was empty" err

# --- ansible-vault reads ours, we read ansible-vault's ------------------------
if command -v ansible-vault >/dev/null 2>&1; then
    export ANSIBLE_LOCAL_TEMP="$T/.ansible-tmp" ANSIBLE_HOME="$T/.ansible"
    run 0 "$AICP" vault encrypt --vault-password-file "$PW" --output ours.vault "$DATA/plain.yml" </dev/null
    ansible-vault decrypt --output - --vault-password-file "$PW" ours.vault >out 2>err ||
        fail "ansible-vault cannot view ours (1.1)"
    cmp -s out "$DATA/plain.yml" || fail "ansible-vault view of ours (1.1)"
    ansible-vault decrypt --output - --vault-id "prod@$PW" prod.vault >out 2>err ||
        fail "ansible-vault cannot view ours (1.2)"
    cmp -s out "$DATA/plain.yml" || fail "ansible-vault view of ours (1.2)"
    ansible-vault decrypt --output - --vault-password-file "$PW" str.vault >out 2>err ||
        fail "ansible-vault cannot view our encrypt_string block"
    cmp -s out str.txt || fail "ansible-vault view of our encrypt_string block"
    cp "$DATA/plain.yml" theirs.yml
    ansible-vault encrypt --vault-id "lab@$PW" theirs.yml >out 2>err || fail "ansible-vault encrypt"
    run 0 "$AICP" vault view --vault-password-file "$PW" theirs.yml </dev/null
    cmp -s out "$DATA/plain.yml" || fail "view of ansible-vault's 1.2 file"
    printf 'AICP-CANARY-7f3e9b2c-str' | ansible-vault encrypt_string --vault-password-file "$PW" \
        --stdin-name x >theirs-str.yml 2>err || fail "ansible-vault encrypt_string"
    run 0 "$AICP" vault encrypt_string --vault-password-file "$PW" --stdin-name x <str.txt
    # the same shape, byte for byte, but for the ciphertext
    sed 's/^          [0-9a-f]*$/          HEX/' out >a.shape
    sed 's/^          [0-9a-f]*$/          HEX/' theirs-str.yml >b.shape
    cmp -s a.shape b.shape || fail "encrypt_string output differs in shape from ansible-vault's"
    # and ansible reads our encrypt_string output as a vars file
    if command -v ansible >/dev/null 2>&1; then
        { cat str.yml; printf '\n'; } >vars.yml
        ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0 \
            ansible localhost -c local -m debug -a var=ontap_password -e @vars.yml \
            --vault-password-file "$PW" >out 2>err || fail "ansible cannot read our !vault value"
        grep -q '"ontap_password": "AICP-CANARY-7f3e9b2c-str"' out ||
            fail "ansible read another value from our !vault block"
    fi
    rm -f ours.vault theirs.yml theirs-str.yml a.shape b.shape vars.yml out err
else
    echo "SKIP ansible-vault round trip: not installed"
fi
exit 0
