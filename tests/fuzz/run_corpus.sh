#!/bin/sh
# Replays every fuzz corpus file through its target; a crash or sanitizer
# report fails the test.
set -eu
: "${top_srcdir:=.}" "${top_builddir:=.}"
status=0
for target in yaml inventory template playbook vault site kubeconfig; do
    dir="$top_srcdir/tests/data/fuzz/$target"
    [ -d "$dir" ] || continue
    files=$(find "$dir" -type f | sort)
    [ -n "$files" ] || continue
    # shellcheck disable=SC2086
    if ! "$top_builddir/tests/fuzz/fuzz_$target" $files; then
        echo "fuzz_$target failed on its corpus" >&2
        status=1
    fi
done
exit $status
