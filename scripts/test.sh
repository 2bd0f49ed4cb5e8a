#!/bin/bash
# Installs dependencies (ansible-core too, for the compatibility tests),
# builds, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh ansible-core
autoreconf -fi
./configure
make -j"$(nproc)"
make -j"$(nproc)" check || { cat tests/*/*.log 2>/dev/null | tail -200; exit 1; }
