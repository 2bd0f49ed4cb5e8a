#!/bin/bash
# Installs the dependencies (ansible-core too, for the compatibility
# tests), builds, runs the whole test suite, then builds a copy with
# AddressSanitizer and UndefinedBehaviorSanitizer and runs the suite again.
# Run as root on Debian 12 (the lab tests need root; without it they skip).
# SANITIZERS=no skips the second pass.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh ansible-core
# Headless Chromium renders the HTML reports in one test (skipped without).
apt-get install -y --no-install-recommends chromium ||
    echo "test: no chromium; the report rendering test will be skipped" >&2

show_logs() {
    for f in tests/unit/*.log tests/integration/*.log tests/fuzz/*.log; do
        [ -f "$f" ] || continue
        case "$f" in */test-suite.log) continue ;; esac
        grep -q '^FAIL\|^ERROR' "${f%.log}.trs" 2>/dev/null && { echo "==== $f"; tail -n 80 "$f"; }
    done
    return 1
}

autoreconf -fi
./configure
make -j"$(nproc)"
make -j"$(nproc)" check || show_logs

if [ "${SANITIZERS:-yes}" != no ]; then
    echo "==== the same suite under ASan and UBSan"
    rm -rf build-san
    mkdir build-san
    git ls-files -z | tar --null -T - -cf - | tar -C build-san -xf -
    cd build-san
    autoreconf -fi
    ./configure --enable-asan --enable-ubsan
    make -j"$(nproc)"
    make -j"$(nproc)" check || show_logs
fi
