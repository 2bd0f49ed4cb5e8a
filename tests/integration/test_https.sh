#!/bin/sh
# End-to-end checks of tests/fakes/https_server.py, the base of the fake API
# servers, with Python's own TLS client (the C client is tested against it
# in tests/unit/test_http.c): it serves TLS with a throw-away CA made here,
# is refused by a client that does not trust that CA, checks basic and
# bearer credentials, plays status sequences, records requests with the
# Authorization header redacted, and exits when its stdin closes. The
# secrets carry the canary AICP-CANARY-7f3e9b2c; they travel only through
# stdin and heredocs, and the test fails if the canary shows up in anything
# the server printed. Exits 77 when python3 or openssl is missing.

. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip "no python3"
command -v openssl >/dev/null 2>&1 || skip "no openssl"

T=$(mktemp -d /tmp/aicp-test-https-XXXXXX) || fail "mktemp"
SRV_PID=
cleanup() {
    exec 3>&- 2>/dev/null
    if [ -n "$SRV_PID" ]; then
        kill "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
    fi
    # What the server and the client wrote, for test_zz_canary.sh.
    canary_scan "$(basename "$0" .sh)-$$" "$T"
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# A CA, and a server certificate for localhost and 127.0.0.1 signed by it.
ossl() { openssl "$@" >/dev/null 2>&1 || fail "openssl $1"; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/ca.key" -out "$T/ca.pem" -days 2 -subj /CN=aicp-test-ca
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/srv.key" -out "$T/srv.csr" -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
ossl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" \
    -set_serial 2 -days 2 -copy_extensions copyall -out "$T/srv.pem"

# The server reads its config (secrets included) as one line on a FIFO
# that stays open on fd 3; closing fd 3 is how it is told to stop. tr makes
# the readable JSON below one line.
mkfifo "$T/ctl" || fail "mkfifo"
python3 "$top_srcdir/tests/fakes/https_server.py" <"$T/ctl" >"$T/port" 2>"$T/server.err" &
SRV_PID=$!
exec 3>"$T/ctl"
tr '\n' ' ' >&3 <<EOF
{"cert": "$T/srv.pem", "key": "$T/srv.key",
 "basic": {"user": "aicp", "password": "pw-AICP-CANARY-7f3e9b2c"},
 "bearer": "tok-AICP-CANARY-7f3e9b2c",
 "routes": [
  {"method": "GET", "path": "/api/ok", "responses": [{"json": {"ok": true}}]},
  {"method": "GET", "path": "/api/basic", "auth": "basic", "responses": [{"json": {}}]},
  {"method": "GET", "path": "/api/bearer", "auth": "bearer", "responses": [{"json": {}}]},
  {"method": "GET", "path_re": "^/api/seq/", "responses": [
     {"status": 429, "headers": {"Retry-After": "2"}},
     {"status": 200, "json": {"n": 2}}]}]}
EOF
echo >&3
i=0
while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
PORT=$(head -n 1 "$T/port")
[ -n "$PORT" ] || { cat "$T/server.err" >&2; fail "the server printed no port"; }

# The client side, in Python: every check prints one line, "ok ..." or
# "FAIL ...", and never a secret.
python3 - "$PORT" "$T/ca.pem" >"$T/client.out" 2>&1 <<'EOF' || { cat "$T/client.out" >&2; fail "client checks"; }
import base64, json, ssl, sys, urllib.error, urllib.request

port, ca = sys.argv[1], sys.argv[2]
canary = "AICP-CANARY-7f3e9b2c"
trusted = ssl.create_default_context(cafile=ca)
system = ssl.create_default_context()
failures = 0

def call(path, ctx=trusted, auth=None, host="localhost", method="GET"):
    req = urllib.request.Request("https://%s:%s%s" % (host, port, path), method=method)
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()

def check(ok, what):
    global failures
    print(("ok " if ok else "FAIL ") + what)
    failures += 0 if ok else 1

try:
    call("/api/ok", ctx=system)
    check(False, "a client without the test CA is refused")
except urllib.error.URLError as e:
    check(isinstance(e.reason, ssl.SSLCertVerificationError),
          "a client without the test CA is refused")
st, _, body = call("/api/ok")
check(st == 200 and json.loads(body) == {"ok": True}, "serves a canned JSON route over TLS")
st, _, _ = call("/api/ok", host="127.0.0.1")
check(st == 200, "the certificate covers 127.0.0.1")
basic = "Basic " + base64.b64encode(b"aicp:pw-" + canary.encode()).decode()
check(call("/api/basic", auth=basic)[0] == 200, "basic auth accepted")
check(call("/api/basic")[0] == 401, "basic auth required")
bad = "Basic " + base64.b64encode(b"aicp:wrong-" + canary.encode()).decode()
st, hdrs, body = call("/api/basic", auth=bad)
check(st == 401 and canary.encode() not in body, "a wrong password is refused, not echoed")
check(call("/api/bearer", auth="Bearer tok-" + canary)[0] == 200, "bearer accepted")
check(call("/api/bearer", auth="Bearer nope")[0] == 401, "a wrong bearer token is refused")
st, hdrs, _ = call("/api/seq/x")
check(st == 429 and hdrs.get("Retry-After") == "2", "a sequence starts with 429 and Retry-After")
check(call("/api/seq/x")[0] == 200 and call("/api/seq/x")[0] == 200,
      "then answers 200, and the last answer repeats")
check(call("/nowhere")[0] == 404, "no route: 404")
st, _, body = call("/_fake/requests")
recs = json.loads(body)
check(st == 200 and [r["path"] for r in recs][:2] == ["/api/ok", "/api/ok"],
      "requests are recorded, control requests are not")
check(canary.encode() not in body, "the record holds no credential")
auths = [r["auth"] for r in recs if r["path"] == "/api/basic"]
check(auths == ["basic:aicp", "none", "bad"], "the record says how each request authenticated")
check(call("/_fake/reset", method="POST")[0] == 200 and call("/api/seq/x")[0] == 429,
      "reset rewinds sequences")
sys.exit(1 if failures else 0)
EOF
cat "$T/client.out"

# Closing its stdin stops the server.
exec 3>&-
i=0
while kill -0 "$SRV_PID" 2>/dev/null && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -0 "$SRV_PID" 2>/dev/null && fail "the server did not exit when its stdin closed"
wait "$SRV_PID" || fail "the server exited with status $?"
SRV_PID=
echo "ok the server exits when its stdin closes"

if grep -q "AICP-CANARY-7f3e9b2c" "$T/port" "$T/server.err" "$T/client.out"; then
    fail "a secret reached the server's or client's output"
fi
[ -s "$T/server.err" ] && { cat "$T/server.err" >&2; fail "the server wrote to stderr"; }
echo "ok nothing secret or unexpected was printed"
exit 0
