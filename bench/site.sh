#!/bin/bash
# Times the TR-4798 site against the fake Kubernetes API server: the first
# apply from empty, a no-op apply, and a drift check, with the number of API
# requests each one sent (from the fake's request log). The fake answers
# from memory on loopback, so this measures aicp's own cost and its request
# count, which is what a real API server's latency multiplies.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x ./aicp ] || { echo "build aicp first" >&2; exit 1; }
k=$(mktemp -d /tmp/aicp-bench-site-XXXXXX)
trap 'exec 9>&-; kill "$KUBE_FAKE_PID" 2>/dev/null; rm -rf "$k"' EXIT
. scripts/kube-fake.sh "$k"
site=(inventory/ontap-ai-pod.site.yml --kubeconfig "$KUBE_FAKE_CONFIG" -e vault_ontap_password=bench)
requests() {
    python3 -c 'import json,ssl,sys,urllib.request
c=ssl.create_default_context(cafile=sys.argv[2])
print(len(json.load(urllib.request.urlopen(sys.argv[1]+"/_fake/requests",context=c))))' \
        "$KUBE_FAKE_URL" "$k/ca.pem" 2>/dev/null || echo "?"
}
run() {
    local label=$1 before after t0 t1
    shift
    before=$(requests)
    t0=$(date +%s.%N)
    ./aicp "$@" "${site[@]}" >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    after=$(requests)
    printf '%-22s %6.2f s  %s API requests\n' "$label" "$(echo "$t1 - $t0" | bc)" \
        "$([ "$before" = "?" ] && echo "?" || echo $((after - before - 1)))"
}
run "apply (from empty)" apply
run "apply (no change)" apply
run "drift" drift
