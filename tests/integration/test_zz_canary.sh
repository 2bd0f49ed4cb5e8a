#!/bin/sh
# The suite-wide secret canary: runs after every other test (Makefile.am
# orders it) and fails when the canary value shows up in anything the tests
# produced: their logs (stdout and stderr), the scans each lab made of its
# scratch files, hosts and temp dirs before removal, and aicp's remote
# private temp dirs and temp files, which must all be gone.
. "$top_srcdir/tests/integration/lib.sh"
fail=0
files=0
hits=0
# Logs of the other tests, in the build tree (this test's own is open).
logs=$(find "$top_builddir/tests" -type f \( -name '*.log' -o -name '*.trs' \) \
    ! -name 'test_zz_canary.*' 2>/dev/null)
for f in $logs; do
    files=$((files + 1))
    if grep -q -a -F -e "$CANARY" "$f"; then
        echo "FAIL: the canary is in $f:"
        grep -n -a -F -e "$CANARY" "$f" | head -3 | cut -c1-200
        hits=$((hits + 1))
    fi
done
nlogs=$files
# What the labs held.
nscans=0
for s in "$CANARY_DIR"/*.scan; do
    [ -f "$s" ] || continue
    nscans=$((nscans + 1))
    n=$(sed -n 's/^files //p' "$s")
    files=$((files + ${n:-0}))
    if grep -q '^hit ' "$s"; then
        echo "FAIL: $(basename "$s" .scan) left the canary in:"
        sed -n 's/^hit /    /p' "$s"
        hits=$((hits + $(grep -c '^hit ' "$s")))
    fi
done
# Remote private temp dirs (the lab hosts share this machine's /tmp), and
# the files a write that died half-way leaves: .aicp-tmp.* and
# .aicp-vault-* beside their destination, DEST.aicp-* (find lists a file
# given as itself).
for d in /tmp/.aicp-* /var/tmp/.aicp-* /tmp/*.aicp-* /var/tmp/*.aicp-*; do
    [ -e "$d" ] || continue
    for f in $(find "$d" -type f 2>/dev/null); do
        files=$((files + 1))
        if grep -q -a -F -e "$CANARY" "$f"; then
            echo "FAIL: the canary is in remote temp file $f"
            hits=$((hits + 1))
        fi
    done
done
# The records are consumed: the next make check starts from its own.
rm -f "$CANARY_DIR"/*.scan
echo "canary scan: $files files ($nlogs test logs, $nscans lab scans), $hits with the canary"
# As root the lab tests run, so a missing scan means the scanning broke.
if [ "$(id -u)" = 0 ] && [ "$nscans" -eq 0 ]; then
    echo "FAIL: no lab left a scan"
    fail=1
fi
[ "$hits" -eq 0 ] || fail=1
mkdir -p "$CANARY_DIR"
echo "$files" > "$CANARY_DIR/files-scanned"
exit $fail
