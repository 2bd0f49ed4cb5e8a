# Shared helpers for the integration tests (POSIX sh), sourced by
# tests/integration/test_*.sh. make check sets top_srcdir, top_builddir and
# AICP (the aicp binary). lab_up starts a lab of real sshd hosts in a temp
# dir and arranges for it to be stopped and removed when the test exits.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${AICP:=$top_builddir/aicp}"
export AICP_LAB_DATA="${AICP_LAB_DATA:-$top_srcdir/tests/lab}"

# The value every test uses for a secret. Nothing a test produces may
# contain it: lab_cleanup scans each lab (its scratch directory, the hosts'
# files and temp dirs) and test_zz_canary.sh the test logs, at the end.
CANARY=AICP-CANARY-7f3e9b2c
CANARY_DIR="$top_builddir/tests/canary"

# canary_scan NAME DIR...: records how many files were scanned under DIRs
# and which of them hold the canary, in $CANARY_DIR/NAME.scan. Files under
# a directory called secret-inputs are a test's own inputs and are skipped.
canary_scan() {
    _name=$1
    shift
    mkdir -p "$CANARY_DIR" || return 0
    _n=$(find "$@" -type f ! -path '*/secret-inputs/*' 2>/dev/null | wc -l)
    {
        echo "files $_n"
        find "$@" -type f ! -path '*/secret-inputs/*' -exec \
            grep -l -a -F -e "$CANARY" {} + 2>/dev/null | sed 's/^/hit /'
    } > "$CANARY_DIR/$_name.scan"
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

skip() {
    echo "SKIP: $*" >&2
    exit 77
}

# Exits 77 unless the lab can run here: root, sshd, ssh and overlayfs.
lab_require() {
    [ "$(id -u)" = 0 ] || skip "the lab needs root (mount namespaces, overlayfs)"
    [ -x "$AICP" ] || skip "no aicp binary at $AICP"
    sshd=$(command -v sshd || echo /usr/sbin/sshd)
    [ -x "$sshd" ] || skip "no sshd (apt-get install openssh-server)"
    command -v ssh >/dev/null 2>&1 || skip "no ssh client"
    grep -qw overlay /proc/filesystems 2>/dev/null || modprobe overlay 2>/dev/null ||
        skip "no overlayfs in this kernel"
}

lab_cleanup() {
    if [ -n "${LAB:-}" ] && [ -d "$LAB" ]; then
        [ -f "$LAB/lab.json" ] && "$AICP" lab down --dir "$LAB" >/dev/null 2>&1
        canary_scan "$(basename "$0" .sh)-$$" "$LAB"
        rm -rf "$LAB"
    fi
}

# lab_up N: starts N hosts in $LAB; sets LAB, KEY, KH and WORK (a scratch
# directory removed with the lab).
lab_up() {
    LAB=$(mktemp -d /tmp/aicp-lab-XXXXXX) || fail "mktemp"
    chmod 755 "$LAB"
    trap lab_cleanup EXIT
    trap 'exit 130' INT TERM HUP
    "$AICP" lab up --nodes "$1" --dir "$LAB" >"$LAB.up.log" 2>&1 || {
        cat "$LAB.up.log" >&2
        rm -f "$LAB.up.log"
        fail "aicp lab up"
    }
    rm -f "$LAB.up.log"
    KEY=$LAB/keys/id_ed25519
    KH=$LAB/known_hosts
    WORK=$LAB/work
    mkdir -p "$WORK"
}

# need_lab: skip (77) unless the lab can run here.
need_lab() {
    lab_require
}

# lab_port NAME: the host's port from the inventory.
lab_port() {
    sed -n "s/^$1 .*ansible_port=\([0-9]*\).*/\1/p" "$LAB/inventory.ini"
}

# lab_pid NAME: the host's sshd pid from lab status.
lab_pid() {
    "$AICP" lab status --dir "$LAB" | awk -v h="$1" '$1 == h { print $3 }'
}

# lab_ssh NAME CMD...: runs CMD on the host with OpenSSH's client.
lab_ssh() {
    _h=$1
    shift
    ssh -q -i "$KEY" -o UserKnownHostsFile="$KH" -o GlobalKnownHostsFile=/dev/null \
        -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5 \
        -p "$(lab_port "$_h")" root@127.0.0.1 "$@"
}

# alive PID: the process exists and is not a zombie (an exited sshd whose
# parent, often PID 1 in a container, has not reaped it yet).
alive() {
    _s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case $_s in Z*) return 1 ;; esac
    return 0
}

# argv_watch_start FILE: samples, every 20 ms until argv_watch_stop, the
# command line of every process that belongs to this test (its own
# descendants, and the lab hosts' sshd and theirs) and appends to FILE a
# line, naming the pid only, for each one that holds the canary. Processes
# of tests running beside this one (whose checks may well name the canary
# on their own command lines) are not looked at. The canary reaches awk
# through its environment, so the sampler never matches itself.
argv_watch_start() {
    _aw_file=$1
    : > "$_aw_file"
    rm -f "$_aw_file.stop"
    (
        while [ ! -f "$_aw_file.stop" ]; do
            ps -eo pid=,ppid=,args= | AW_ROOT=$$ AW_LAB="${LAB:-}" AW_SECRET="$CANARY" awk '
                { p = $1; parent[p] = $2; $1 = ""; $2 = ""; args[p] = $0; order[++n] = p }
                END {
                    for (i = 1; i <= n; i++) {
                        p = order[i]
                        if (p == ENVIRON["AW_ROOT"] ||
                            (ENVIRON["AW_LAB"] != "" && index(args[p], "sshd") &&
                             index(args[p], ENVIRON["AW_LAB"])))
                            root[p] = 1
                    }
                    for (i = 1; i <= n; i++) {
                        p = order[i]
                        if (!index(args[p], ENVIRON["AW_SECRET"]))
                            continue
                        q = p
                        for (d = 0; d < 64 && q != "" && !(q in root); d++)
                            q = parent[q]
                        if (q in root)
                            print "pid " p " held the secret on its command line"
                    }
                }' >> "$_aw_file"
            sleep 0.02
        done
    ) &
    _aw_pid=$!
}

# argv_watch_stop: stops the sampler argv_watch_start started.
argv_watch_stop() {
    touch "$_aw_file.stop"
    wait "$_aw_pid"
}

# test_certs DIR: a throw-away CA (DIR/ca.pem) and a server certificate
# for localhost and 127.0.0.1 signed by it (DIR/server.pem, server.key).
test_certs() {
    (
        cd "$1" &&
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
            -subj "/CN=aicp test CA" >/dev/null 2>&1 &&
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
            -subj "/CN=localhost" >/dev/null 2>&1 &&
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 2 -extfile san.ext >/dev/null 2>&1
    ) || fail "could not make test certificates"
}

# fake_start DIR FD SCRIPT ARGS...: starts a python fake server with its
# stdin on a fifo that fd FD holds open (it serves until the fd closes),
# waits for its `PORT n` line; sets FAKE_PID and FAKE_PORT.
fake_start() {
    _dir=$1 _fd=$2
    shift 2
    mkfifo "$_dir/in"
    python3 "$@" < "$_dir/in" > "$_dir/out" 2> "$_dir/err" &
    FAKE_PID=$!
    eval "exec $_fd> \"\$_dir/in\""
    _i=0
    until grep -q '^PORT ' "$_dir/out" 2>/dev/null; do
        _i=$((_i + 1))
        [ $_i -lt 100 ] && kill -0 "$FAKE_PID" 2>/dev/null ||
            { cat "$_dir/err" >&2; fail "the fake server $(basename "$1") did not start"; }
        sleep 0.1
    done
    FAKE_PORT=$(sed -n 's/^PORT //p' "$_dir/out" | head -n 1)
}

# kube_fake_up [ARGS...]: starts the fake Kubernetes API server
# (tests/fakes/kube_apiserver.py) with a throw-away CA and server
# certificate and a bearer token holding the canary, and writes a
# kubeconfig for it. Sets KDIR (its temp dir), KPORT, KURL and KCFG (the
# kubeconfig). ARGS go to the fake (--crds trident --controller). Skips
# (77) without python3 or openssl. The fake stops when the test exits (its
# stdin closes).
kube_fake_up() {
    command -v python3 >/dev/null 2>&1 || skip "no python3 for the fake API server"
    command -v openssl >/dev/null 2>&1 || skip "no openssl to make test certificates"
    KDIR=$(mktemp -d /tmp/aicp-kube-XXXXXX) || fail "mktemp"
    trap 'kube_fake_down' EXIT
    trap 'exit 130' INT TERM HUP
    test_certs "$KDIR"
    mkdir -m 700 "$KDIR/secret-inputs"
    printf 'tok-%s\n' "$CANARY" > "$KDIR/secret-inputs/token"
    fake_start "$KDIR" 9 "$top_srcdir/tests/fakes/kube_apiserver.py" --cert "$KDIR/server.pem" \
        --key "$KDIR/server.key" --token-file "$KDIR/secret-inputs/token" "$@"
    KPID=$FAKE_PID KPORT=$FAKE_PORT
    KURL="https://127.0.0.1:$KPORT"
    KCFG="$KDIR/kubeconfig"
    cat > "$KCFG" <<KEOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {server: "$KURL", certificate-authority: "$KDIR/ca.pem"}
users:
- name: tester
  user: {tokenFile: "$KDIR/secret-inputs/token"}
contexts:
- name: fake
  context: {cluster: fake, user: tester, namespace: default}
current-context: fake
KEOF
}

# kube_fake_api METHOD PATH [JSON]: one request to the fake API server
# with the token (a PATCH is a JSON merge patch); the answer's body on
# stdout, exit 1 on an HTTP error.
kube_fake_api() {
    python3 - "$KURL" "$KDIR/ca.pem" "$KDIR/secret-inputs/token" "$@" <<'EOF'
import ssl, sys, urllib.request, urllib.error
url, ca, tokfile, method, path = sys.argv[1:6]
body = sys.argv[6].encode() if len(sys.argv) > 6 else None
req = urllib.request.Request(url + path, data=body, method=method)
req.add_header("Authorization", "Bearer " + open(tokfile).read().strip())
if body is not None:
    req.add_header("Content-Type", "application/merge-patch+json" if method == "PATCH"
                   else "application/json")
try:
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=20) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stdout.write(e.read().decode())
    sys.exit(1)
EOF
}

# kube_fake_field PATH DOTTED.FIELD: one field of the object at PATH on the
# fake ("" when absent; a non-string as JSON).
kube_fake_field() {
    kube_fake_api GET "$1" | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else (v if isinstance(v, str) else json.dumps(v)))' "$2"
}

# kube_fake_pods_on NODE: the pods bound to NODE, "ns/name" sorted, one line.
kube_fake_pods_on() {
    kube_fake_api GET "/api/v1/pods?fieldSelector=spec.nodeName%3D$1" | python3 -c '
import json, sys
print(" ".join(sorted("%s/%s" % (p["metadata"]["namespace"], p["metadata"]["name"])
                      for p in json.load(sys.stdin)["items"])))'
}

# kube_fake_pod NS NAME NODE [EXTRA-METADATA-JSON [EXTRA-SPEC-JSON]]: a pod
# bound to NODE (nothing schedules on the fake); fails the test otherwise.
kube_fake_pod() {
    kube_fake_api POST "/api/v1/namespaces/$1/pods" "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",
        \"metadata\":{\"name\":\"$2\"${4:+,$4}},
        \"spec\":{\"nodeName\":\"$3\",\"containers\":[{\"name\":\"c\",\"image\":\"busybox:1\"}]${5:+,$5}}}" \
        >/dev/null || fail "creating pod $1/$2"
}

kube_fake_down() {
    exec 9>&- 2>/dev/null
    if [ -n "${KPID:-}" ]; then
        kill "$KPID" 2>/dev/null
        wait "$KPID" 2>/dev/null
    fi
    if [ -n "${KDIR:-}" ] && [ -d "$KDIR" ]; then
        canary_scan "$(basename "$0" .sh)-kube-$$" "$KDIR"
        rm -rf "$KDIR"
    fi
    lab_cleanup
}

# ontap_fake_up [ARGS...]: starts the fake ONTAP REST server
# (tests/fakes/ontap_server.py) with a throw-away CA and server certificate
# and the user admin, whose password holds the canary. Sets ODIR, OPORT,
# OHOST (127.0.0.1:PORT), OCA (the CA file) and OVARS (a vars file with
# ontap_hostname, ontap_password, ontap_ca_file, for -e @$OVARS). Skips
# (77) without python3 or openssl; stops with the test.
ontap_fake_up() {
    command -v python3 >/dev/null 2>&1 || skip "no python3 for the fake ONTAP server"
    command -v openssl >/dev/null 2>&1 || skip "no openssl to make test certificates"
    ODIR=$(mktemp -d /tmp/aicp-ontap-XXXXXX) || fail "mktemp"
    trap 'ontap_fake_down' EXIT
    trap 'exit 130' INT TERM HUP
    test_certs "$ODIR"
    mkdir -m 700 "$ODIR/secret-inputs"
    printf 'admin:pw-%s\n' "$CANARY" > "$ODIR/secret-inputs/users"
    fake_start "$ODIR" 8 "$top_srcdir/tests/fakes/ontap_server.py" --cert "$ODIR/server.pem" \
        --key "$ODIR/server.key" --users-file "$ODIR/secret-inputs/users" "$@"
    OPID=$FAKE_PID OPORT=$FAKE_PORT
    OHOST="127.0.0.1:$OPORT"
    OCA="$ODIR/ca.pem"
    OVARS="$ODIR/secret-inputs/ontap-vars.yml"
    printf 'ontap_hostname: "%s"\nontap_password: "pw-%s"\nontap_ca_file: "%s"\n' \
        "$OHOST" "$CANARY" "$OCA" > "$OVARS"
}

ontap_fake_down() {
    exec 8>&- 2>/dev/null
    if [ -n "${OPID:-}" ]; then
        kill "$OPID" 2>/dev/null
        wait "$OPID" 2>/dev/null
    fi
    if [ -n "${ODIR:-}" ] && [ -d "$ODIR" ]; then
        canary_scan "$(basename "$0" .sh)-ontap-$$" "$ODIR"
        rm -rf "$ODIR"
    fi
    kube_fake_down
}
