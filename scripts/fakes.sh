#!/bin/bash
# Starts the fake Kubernetes API server and the fake ONTAP REST server
# (tests/fakes/) for demos and benchmarks: a throwaway CA and server
# certificate, a random token, a random ONTAP password, a kubeconfig and
# the extra vars that point a site at the fake ONTAP, all in DIR.
# Source it: `. scripts/fakes.sh DIR` sets KUBE_FAKE_PID, KUBE_FAKE_URL,
# KUBE_FAKE_CONFIG, ONTAP_FAKE_PID, ONTAP_FAKE_URL and FAKE_ARGS (the
# --kubeconfig and -e options for `aicp apply|plan|drift`). The fakes serve
# until fds 8 and 9 close (`exec 8>&- 9>&-`) or they are killed.
k=$1
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$k/ca.key" -out "$k/ca.pem" -days 1 \
    -subj "/CN=aicp demo CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$k/server.key" -out "$k/server.csr" \
    -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
openssl x509 -req -in "$k/server.csr" -CA "$k/ca.pem" -CAkey "$k/ca.key" -set_serial 1 \
    -days 1 -copy_extensions copyall -out "$k/server.pem" 2>/dev/null
(
    umask 077
    openssl rand -hex 16 > "$k/token"
    printf 'admin:%s\n' "$(openssl rand -hex 12)" > "$k/users"
    printf 'vault_ontap_password: "%s"\nvault_airflow_git_ssh_key: "%s"\n' \
        "$(cut -d: -f2 "$k/users")" "$(openssl rand -hex 24)" > "$k/ontap-vars.yml"
)
# fake_start NAME FD ARGS...: starts one fake with stdin on a fifo held by FD.
fake_start() {
    local name=$1 fd=$2
    shift 2
    mkfifo "$k/$name.in"
    python3 "$@" < "$k/$name.in" > "$k/$name.port" &
    eval "exec $fd> \"$k/$name.in\""
    for _ in $(seq 50); do grep -q '^PORT' "$k/$name.port" && break; sleep 0.1; done
}
fake_start kube 9 "$top/tests/fakes/kube_apiserver.py" --cert "$k/server.pem" \
    --key "$k/server.key" --token-file "$k/token" --crds trident --controller --ontap-ca "$k/ca.pem"
KUBE_FAKE_PID=$!
KUBE_FAKE_URL="https://127.0.0.1:$(sed -n 's/^PORT //p' "$k/kube.port")"
fake_start ontap 8 "$top/tests/fakes/ontap_server.py" --cert "$k/server.pem" \
    --key "$k/server.key" --users-file "$k/users"
ONTAP_FAKE_PID=$!
ONTAP_FAKE_URL="127.0.0.1:$(sed -n 's/^PORT //p' "$k/ontap.port")"
KUBE_FAKE_CONFIG=$k/kubeconfig
cat > "$KUBE_FAKE_CONFIG" <<KEOF
apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "$KUBE_FAKE_URL", certificate-authority: "$k/ca.pem"}}]
users: [{name: demo, user: {tokenFile: "$k/token"}}]
contexts: [{name: fake, context: {cluster: fake, user: demo}}]
current-context: fake
KEOF
FAKE_ARGS=(--kubeconfig "$KUBE_FAKE_CONFIG" -e "@$k/ontap-vars.yml"
    -e "ontap_management_lif=$ONTAP_FAKE_URL" -e "ontap_ca_file=$k/ca.pem")
