#!/bin/bash
# Starts the fake Kubernetes API server (tests/fakes/kube_apiserver.py) for
# demos and benchmarks: a throwaway CA and server certificate, a random
# token and a kubeconfig, all in DIR. Source it: `. scripts/kube-fake.sh DIR`
# sets KUBE_FAKE_PID, KUBE_FAKE_URL and KUBE_FAKE_CONFIG; the fake serves
# until fd 9 closes (`exec 9>&-`) or it is killed.
k=$1
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$k/ca.key" -out "$k/ca.pem" -days 1 \
    -subj "/CN=aicp demo CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$k/server.key" -out "$k/server.csr" \
    -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
openssl x509 -req -in "$k/server.csr" -CA "$k/ca.pem" -CAkey "$k/ca.key" -set_serial 1 \
    -days 1 -copy_extensions copyall -out "$k/server.pem" 2>/dev/null
(umask 077 && openssl rand -hex 16 > "$k/token")
mkfifo "$k/in"
python3 "$top/tests/fakes/kube_apiserver.py" --cert "$k/server.pem" --key "$k/server.key" \
    --token-file "$k/token" --crds trident --controller < "$k/in" > "$k/port" &
KUBE_FAKE_PID=$!
exec 9> "$k/in"
for _ in $(seq 50); do grep -q '^PORT' "$k/port" && break; sleep 0.1; done
KUBE_FAKE_URL="https://127.0.0.1:$(sed -n 's/^PORT //p' "$k/port")"
KUBE_FAKE_CONFIG=$k/kubeconfig
cat > "$KUBE_FAKE_CONFIG" <<KEOF
apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "$KUBE_FAKE_URL", certificate-authority: "$k/ca.pem"}}]
users: [{name: demo, user: {tokenFile: "$k/token"}}]
contexts: [{name: fake, context: {cluster: fake, user: demo}}]
current-context: fake
KEOF
