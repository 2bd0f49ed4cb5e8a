#!/bin/bash
# Times the TR-4798 site against the fake Kubernetes API server and the
# fake ONTAP server: the first apply from empty, a no-op apply, and a drift
# check (with its cross-layer pass), with the number of API requests each
# one sent (from the fakes' request logs). The fakes answer from memory on
# loopback, so this measures aicp's own cost and its request count, which is
# what a real server's latency multiplies.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x ./aicp ] || { echo "build aicp first" >&2; exit 1; }
k=$(mktemp -d /tmp/aicp-bench-site-XXXXXX)
trap 'exec 8>&- 9>&-; kill "$KUBE_FAKE_PID" "$ONTAP_FAKE_PID" 2>/dev/null; rm -rf "$k"' EXIT
. scripts/fakes.sh "$k"
# The storage and Kubernetes objects (the cluster layer needs SSH hosts,
# the applications a helm binary: the lab demo runs those).
site=(inventory/ontap-ai-pod.site.yml "${FAKE_ARGS[@]}"
    --only ontap,namespaces,trident,storage_classes,pvcs,cross_layer)
# requests URL: how many requests the fake at URL has logged.
requests() {
    python3 -c 'import json,ssl,sys,urllib.request
c=ssl.create_default_context(cafile=sys.argv[2])
print(len(json.load(urllib.request.urlopen(sys.argv[1]+"/_fake/requests",context=c))))' \
        "$1" "$k/ca.pem" 2>/dev/null || echo 0
}
run() {
    local label=$1 kb ob ka oa t0 t1 rc
    shift
    kb=$(requests "$KUBE_FAKE_URL")
    ob=$(requests "https://$ONTAP_FAKE_URL")
    t0=$(date +%s.%N)
    ./aicp "$@" "${site[@]}" >"$k/$label.out" 2>&1 && rc=0 || rc=$?; [ -z "${SHOW:-}" ] || cat "$k/$label.out"
    t1=$(date +%s.%N)
    ka=$(requests "$KUBE_FAKE_URL")
    oa=$(requests "https://$ONTAP_FAKE_URL")
    # Each count includes the previous /_fake/requests call itself.
    printf '%-20s exit %d %6.2f s  %3d Kubernetes + %3d ONTAP requests\n' "$label" "$rc" \
        "$(echo "$t1 - $t0" | bc)" $((ka - kb - 1)) $((oa - ob - 1))
}
run "apply (from empty)" apply
run "apply (no change)" apply
run "drift" drift
