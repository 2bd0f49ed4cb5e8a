#!/usr/bin/env python3
"""A small HTTP/HTTPS server for aicp's tests, and the base the fake
Kubernetes and ONTAP API servers build on (python3 standard library only).

It binds 127.0.0.1 on a free port, serves TLS with a given certificate and
key (optionally requiring client certificates), answers canned routes whose
responses can be a sequence (e.g. 429 with Retry-After, then 200; the last
one repeats), checks basic-auth and bearer credentials, and records every
request for the test to inspect. Secrets never reach argv, files or logs:
the configuration (which holds them) arrives as one JSON line on stdin, the
recorded Authorization header is redacted, and nothing is logged unless
--verbose.

As a program:
    python3 https_server.py [--verbose] [--config FILE] < config-line
prints the port on the first line of stdout, then serves until stdin reaches
EOF (the parent closed its pipe or died), SIGTERM/SIGINT, or a request to
POST /_fake/shutdown. With --config FILE (no secrets in it, please) stdin is
not read and not watched.

Config (every key optional):
    {"cert": PEM path, "key": PEM path,          # absent: plain HTTP
     "client_ca": PEM path,                      # require client certificates
     "basic": {"user": U, "password": P}, "bearer": TOKEN,
     "routes": [{"method": "GET", "path": "/x" | "path_re": "^/x/[^/]+$",
                 "auth": "basic" | "bearer" | "any" | "client_cert",
                 "responses": [{"status": 429, "headers": {"Retry-After": "1"},
                                "json": {...} | "body": "text",
                                "delay": seconds, "close": true}]}]}
A request that matches no route gets 404 with a JSON body.

Control endpoints (never recorded, no auth):
    GET  /_fake/requests   the recorded requests, a JSON list (each with the
                           "status" answered, null for a dropped connection)
    POST /_fake/reset      forget requests and rewind every sequence
    POST /_fake/routes     add routes (a JSON list as in the config)
    POST /_fake/shutdown   stop serving

As a module: subclass FakeServer and override dispatch(), or add routes with
handlers (callables taking a Request and returning a Response):
    srv = FakeServer(cert=..., key=...)
    srv.add_route("GET", "/api/cluster", handler=lambda req: Response(200, json={...}))
    port = srv.start()          # serves in a background thread
    ...
    srv.stop()
"""

import argparse
import base64
import hmac
import json
import re
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

REDACTED = "<redacted>"


class Response:
    """What a route answers. close=True drops the connection instead;
    stream (an iterable of bytes) is sent chunked after body, until it ends
    or the client goes away (a watch)."""

    def __init__(self, status=200, json=None, body=None, headers=None,
                 delay=0.0, close=False, stream=None):
        self.status = status
        self.headers = dict(headers or {})
        self.delay = delay
        self.close = close
        self.stream = stream
        if json is not None:
            self.body = _json_bytes(json)
            self.headers.setdefault("Content-Type", "application/json")
        elif body is not None:
            self.body = body.encode() if isinstance(body, str) else bytes(body)
            self.headers.setdefault("Content-Type", "text/plain")
        else:
            self.body = b""

    @classmethod
    def from_spec(cls, spec):
        return cls(status=spec.get("status", 200), json=spec.get("json"),
                   body=spec.get("body"), headers=spec.get("headers"),
                   delay=spec.get("delay", 0.0), close=spec.get("close", False))


def _json_bytes(value):
    return json.dumps(value, separators=(",", ":")).encode()


class Request:
    """One received request, as handlers and the record see it."""

    def __init__(self, method, target, headers, body, auth, client_cn):
        parts = urlsplit(target)
        self.method = method
        self.path = parts.path
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.headers = headers          # http.client.HTTPMessage
        self.body = body
        self.auth = auth                # "basic:USER", "bearer", "bad", "none"
        self.client_cn = client_cn
        self._json = None

    @property
    def json(self):
        """The body parsed as JSON; None when empty or not JSON."""
        if self._json is None and self.body:
            try:
                self._json = json.loads(self.body)
            except ValueError:
                self._json = None
        return self._json

    def record(self):
        hdrs = {}
        for k, v in self.headers.items():
            hdrs[k] = REDACTED if k.lower() in ("authorization", "cookie") else v
        return {"method": self.method, "path": self.path, "query": self.query,
                "headers": hdrs, "body": self.body.decode("utf-8", "replace"),
                "auth": self.auth, "client_cn": self.client_cn}


class Route:
    def __init__(self, method, path=None, path_re=None, responses=None,
                 handler=None, auth=None):
        self.method = method.upper()
        self.path = path
        self.path_re = re.compile(path_re) if path_re else None
        self.responses = [r if isinstance(r, Response) else Response.from_spec(r)
                          for r in (responses or [])]
        self.handler = handler
        self.auth = auth
        self.next = 0

    def matches(self, method, path):
        if self.method not in (method, "*"):
            return False
        if self.path_re is not None:
            return self.path_re.search(path) is not None
        return self.path == path

    def answer(self, req):
        if self.handler is not None:
            return self.handler(req)
        if not self.responses:
            return Response(200, json={})
        r = self.responses[min(self.next, len(self.responses) - 1)]
        self.next += 1
        return r


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive, as real API servers do
    timeout = 30
    server_version = "aicp-fake/1"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes; without TCP_NODELAY the
        # second waits for the client's delayed ACK (~40 ms a request).
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt, *args):  # noqa: N802 (stdlib name)
        if self.server.fake.verbose:
            sys.stderr.write("fake: " + (fmt % args) + "\n")

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, resp):
        if resp.delay:
            time.sleep(resp.delay)
        if resp.close:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if resp.stream is not None:
            self._send_stream(resp)
            return
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    def _send_stream(self, resp):
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in ([resp.body] if resp.body else []) + [None]:
                if chunk is None:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            for chunk in resp.stream:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (ConnectionError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            close = getattr(resp.stream, "close", None)
            if close is not None:
                close()

    def _handle(self):
        fake = self.server.fake
        body = self._read_body()
        cn = None
        if isinstance(self.connection, ssl.SSLSocket):
            cert = self.connection.getpeercert()
            for rdn in (cert or {}).get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        cn = v
        req = Request(self.command, self.path, self.headers, body,
                      fake.classify_auth(self.headers.get("Authorization")), cn)
        if req.path.startswith("/_fake/"):
            self._send(fake.control(req))
            return
        rec = fake.record_request(req)
        with fake.lock:
            fake.requests.append(rec)
        resp = fake.dispatch(req)
        rec["status"] = None if resp.close else resp.status
        self._send(resp)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake):
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the request's thread, so a client
        # that stalls or rejects our certificate cannot block accept().
        ctx = self.fake.ssl_context
        if ctx is not None:
            try:
                request.settimeout(10)
                request = ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            if ctx is not None:
                request.close()

    def handle_error(self, request, client_address):
        # Clients that hang up or fail TLS are what several tests do on
        # purpose; anything else is a bug in a fake and worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class FakeServer:
    """A configurable fake API server; see the module docstring."""

    def __init__(self, cert=None, key=None, client_ca=None, basic=None,
                 bearer=None, routes=(), verbose=False):
        self.verbose = verbose
        self.basic = basic              # {"user": U, "password": P}
        self.bearer = bearer
        self.routes = []
        self.requests = []
        self.lock = threading.Lock()
        self.ssl_context = None
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            if client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(client_ca)
            self.ssl_context = ctx
        for r in routes:
            self.add_route_spec(r)
        self.httpd = _Server(self)
        self.port = self.httpd.server_address[1]
        self._thread = None

    @classmethod
    def from_config(cls, cfg, verbose=False):
        return cls(cert=cfg.get("cert"), key=cfg.get("key"),
                   client_ca=cfg.get("client_ca"), basic=cfg.get("basic"),
                   bearer=cfg.get("bearer"), routes=cfg.get("routes", ()),
                   verbose=verbose)

    # Routes ---------------------------------------------------------------

    def add_route(self, method, path=None, responses=None, handler=None,
                  auth=None, path_re=None):
        with self.lock:
            self.routes.append(Route(method, path, path_re, responses, handler, auth))

    def add_route_spec(self, spec):
        self.add_route(spec.get("method", "GET"), spec.get("path"),
                       spec.get("responses"), None, spec.get("auth"),
                       spec.get("path_re"))

    def route(self, method, path=None, auth=None, path_re=None):
        """Decorator form of add_route for handler functions."""
        def deco(fn):
            self.add_route(method, path, handler=fn, auth=auth, path_re=path_re)
            return fn
        return deco

    # Auth -----------------------------------------------------------------

    def classify_auth(self, header):
        """'basic:USER' or 'bearer' when the credentials match, 'bad' when
        some were sent but do not, 'none' when there were none."""
        if not header:
            return "none"
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and self.basic:
            try:
                user, _, pw = base64.b64decode(value.strip(), validate=True) \
                    .decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return "bad"
            if (hmac.compare_digest(user.encode(), self.basic["user"].encode()) and
                    hmac.compare_digest(pw.encode(), self.basic["password"].encode())):
                return "basic:" + user
            return "bad"
        if scheme == "bearer" and self.bearer:
            if hmac.compare_digest(value.strip().encode(), self.bearer.encode()):
                return "bearer"
        return "bad"

    @staticmethod
    def auth_ok(required, req):
        if not required:
            return True
        if required == "client_cert":
            return req.client_cn is not None
        if required == "any":
            return req.auth.startswith("basic:") or req.auth == "bearer"
        if required == "basic":
            return req.auth.startswith("basic:")
        return req.auth == required

    # Dispatch -------------------------------------------------------------

    def record_request(self, req):
        """The entry GET /_fake/requests shows for req (a dict; its "status"
        is filled in with the answer's, None for a dropped connection).
        Subclasses may record less."""
        return req.record()

    def dispatch(self, req):
        """Answers one request. Subclasses may override and fall back here."""
        with self.lock:
            route = next((r for r in self.routes if r.matches(req.method, req.path)), None)
            if route is None:
                return Response(404, json={"message": "no route for %s %s" % (req.method, req.path)})
            if not self.auth_ok(route.auth, req):
                return Response(401, json={"message": "unauthorized"},
                                headers={"WWW-Authenticate": 'Basic realm="fake"'})
            if route.handler is None:
                return route.answer(req)
        return route.answer(req)

    def control(self, req):
        if req.path == "/_fake/requests" and req.method == "GET":
            with self.lock:
                return Response(200, json=list(self.requests))
        if req.path == "/_fake/reset" and req.method == "POST":
            with self.lock:
                self.requests.clear()
                for r in self.routes:
                    r.next = 0
            return Response(200, json={})
        if req.path == "/_fake/routes" and req.method == "POST":
            for spec in req.json or []:
                self.add_route_spec(spec)
            return Response(200, json={})
        if req.path == "/_fake/shutdown" and req.method == "POST":
            threading.Thread(target=self.httpd.shutdown, daemon=True).start()
            return Response(200, json={})
        return Response(404, json={"message": "no control endpoint " + req.path})

    # Lifetime -------------------------------------------------------------

    def start(self):
        """Serves in a background thread; returns the port."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self.port

    def serve(self):
        self.httpd.serve_forever()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)


def main(argv=None, server_class=FakeServer):
    """Entry point shared with the fake API servers built on this one."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="config file instead of a line on stdin (no secrets)")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = ap.parse_args(argv)
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            cfg = json.load(f)
    else:
        line = sys.stdin.buffer.readline()
        try:
            cfg = json.loads(line) if line.strip() else {}
        except ValueError as e:
            # Say where, never what: the line may hold secrets.
            sys.stderr.write("https_server: the config line is not JSON: %s\n" % e)
            return 2
    srv = server_class.from_config(cfg, verbose=args.verbose)

    def stop(*_):
        threading.Thread(target=srv.httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not args.config:
        def watch_stdin():
            while sys.stdin.buffer.read(4096):
                pass
            stop()
        threading.Thread(target=watch_stdin, daemon=True).start()
    sys.stdout.write("%d\n" % srv.port)
    sys.stdout.flush()
    srv.serve()
    srv.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
