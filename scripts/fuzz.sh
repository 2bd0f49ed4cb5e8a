#!/bin/bash
# Fuzzes aicp's parsers with libFuzzer (clang), under AddressSanitizer and
# UndefinedBehaviorSanitizer: YAML, INI/YAML inventories, templates,
# playbooks, vault files, site files and kubeconfigs (tests/fuzz/fuzz_*.c).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60, all)
#
# Builds a copy of the tree in build-fuzz/ with clang's fuzzer
# instrumentation, starts each target from its corpus in tests/data/fuzz/
# (copied to build-fuzz/corpus/, where new inputs accumulate) and stops at
# the first crash, leaving the input as build-fuzz/crash-* and exiting 1.
# A crashing input belongs in tests/data/fuzz/TARGET/ once it is fixed, so
# that `make check` replays it. Needs clang (apt-get install clang).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(yaml inventory template playbook vault site kubeconfig)
command -v clang >/dev/null || { echo "fuzz: needs clang (apt-get install clang)" >&2; exit 1; }

top=$PWD
b=$top/build-fuzz
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
if [ ! -f "$b/libaicp.a" ] || [ -n "$(find agent modules -newer "$b/libaicp.a" -name '*.[ch]' | head -n 1)" ]; then
    rm -rf "$b/src"
    mkdir -p "$b/src"
    git ls-files -z | tar --null -T - -cf - | tar -C "$b/src" -xf -
    (
        cd "$b/src"
        autoreconf -fi >/dev/null 2>&1
        ./configure CC=clang CFLAGS="-g -O1 -fsanitize=fuzzer-no-link $san" --disable-werror >/dev/null
        make -j"$(nproc)" libaicp.a >/dev/null
    )
    cp "$b/src/libaicp.a" "$b/libaicp.a"
fi
libs=$(sed -n 's/^\(YAML\|LIBSSH\|CURL\|JANSSON\|OPENSSL\|PTHREAD\)_LIBS = //p' "$b/src/Makefile" | tr '\n' ' ')
cd "$b"
for t in "${targets[@]}"; do
    [ -f "$top/tests/fuzz/fuzz_$t.c" ] || { echo "fuzz: no target $t" >&2; exit 64; }
    clang -g -O1 -fsanitize=fuzzer $san -I"$b/src" -I"$top/agent" -I"$top/modules" \
        "$top/tests/fuzz/fuzz_$t.c" libaicp.a $libs -o "fuzz_$t"
    mkdir -p "corpus/$t"
    [ -d "$top/tests/data/fuzz/$t" ] && cp -n "$top/tests/data/fuzz/$t"/* "corpus/$t/" 2>/dev/null || true
    echo "==== fuzz_$t for $secs s"
    ./"fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "corpus/$t" 2>"fuzz_$t.log" || {
        tail -n 40 "fuzz_$t.log"
        echo "fuzz: fuzz_$t found a crash (build-fuzz/crash-*)" >&2
        exit 1
    }
    grep -E '^stat::(number_of_executed_units|new_units_added)' "fuzz_$t.log" | sed 's/^/  /'
done
