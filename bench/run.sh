#!/bin/bash
# Times the same ten-task playbook on N lab hosts with aicp and, where
# ansible-core is installed, with ansible-playbook (pipelining on, forks N):
# the first converge and the no-op rerun. Run as root from a built tree:
#   bench/run.sh [N]        (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20}"
aicp="${AICP:-./aicp}"
lab="${BENCH_LAB:-$(mktemp -d /tmp/aicp-bench.XXXXXX)}"
trap '"$aicp" lab down --dir "$lab" >/dev/null 2>&1 || true; rm -rf "$lab"' EXIT
"$aicp" lab up --nodes "$n" --dir "$lab" >/dev/null
inv="$lab/inventory.ini"

seconds() { # command... -> elapsed seconds on stdout, command output to $lab/last.out
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > "$lab/last.out" 2>&1 || { rc=$?; [ $rc -eq 2 ] || { cat "$lab/last.out" >&2; return $rc; }; }
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

a_first=$(seconds "$aicp" run bench/node-tasks.yml -i "$inv" --forks "$n" -e base=/opt/bench-aicp)
a_noop=$(seconds "$aicp" run bench/node-tasks.yml -i "$inv" --forks "$n" -e base=/opt/bench-aicp)
grep -Eq 'changed=[1-9]' "$lab/last.out" && { echo "aicp's rerun changed something" >&2; exit 1; }
printf 'aicp            N=%-3s first converge %7ss   no-op rerun %7ss\n' "$n" "$a_first" "$a_noop"

# Peak memory of a no-op run on one host and on all N: the difference is
# what each connected host costs.
peak_kb() { # limit -> peak RSS in KiB of a no-op run limited to those hosts
    python3 - "$aicp" "$inv" "$1" "$n" <<'PY'
import resource, subprocess, sys
aicp, inv, limit, n = sys.argv[1:]
subprocess.run([aicp, "run", "bench/node-tasks.yml", "-i", inv, "--forks", n, "--limit", limit,
                "-e", "base=/opt/bench-aicp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
}
one=$(peak_kb node01)
all=$(peak_kb lab)
awk -v a="$one" -v b="$all" -v n="$n" 'BEGIN { printf "aicp peak RSS: %d KiB on 1 host, %d KiB on %d hosts (%.0f KiB per extra host)\n", a, b, n, (b - a) / (n > 1 ? n - 1 : 1) }'

if command -v ansible-playbook >/dev/null; then
    export ANSIBLE_PIPELINING=True ANSIBLE_FORKS="$n" ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=False
    export ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$lab/known_hosts"
    export ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_LOCAL_TEMP="$lab/ansible-tmp"
    b_first=$(seconds ansible-playbook bench/node-tasks.yml -i "$inv" -e base=/opt/bench-ansible)
    b_noop=$(seconds ansible-playbook bench/node-tasks.yml -i "$inv" -e base=/opt/bench-ansible)
    printf 'ansible-playbook N=%-3s first converge %7ss   no-op rerun %7ss\n' "$n" "$b_first" "$b_noop"
    awk -v a1="$a_first" -v a2="$a_noop" -v b1="$b_first" -v b2="$b_noop" \
        'BEGIN { printf "speed-up: first converge %.1fx, no-op rerun %.1fx\n", b1 / a1, b2 / a2 }'
else
    echo "ansible-playbook is not installed: only aicp was timed"
fi
