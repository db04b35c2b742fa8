"""An HTTP user lookup service on loopback, for the lookup tests: it speaks
nginx's auth_http protocol (a GET whose Auth-* header lines name the login;
the answer is Auth-Status and friends) and postern's JSON protocol (a POST
with a JSON body; the answer is an HTTP status and a JSON body), whichever
a request uses, and answers each user by a table of behaviours (AuthService.
users, {user: Behaviour}; Behaviour's constructors below).

It runs in threads of this process (one per connection, HTTP/1.1 with
keep-alive, Content-Length always sent), over plain HTTP or https with a
test certificate.  It counts the TCP connections it accepted and the
requests it read, and keeps every request (method, path, header lines with
nginx's escaping undone, body, JSON) for the tests to look at.

Every wait in here is bounded: a held or hanging answer gives up after
HOLD_MAX seconds, and stop() releases them all."""

import http.server
import json
import socket
import ssl
import threading
import time
import urllib.parse

from .procs import TIMEOUT_SCALE, free_port

HOST = "127.0.0.1"
HOLD_MAX = 60.0 * TIMEOUT_SCALE  # seconds a "hang" or "hold" answer waits at most


def nginx_unescape(value):
    """A header value as nginx escaped it (%XX for space, '%' and control
    bytes; other bytes raw, UTF-8 as is), as text.  http.server hands header
    values over as latin-1, so the raw bytes come back first."""
    raw = value.encode("latin-1", errors="replace")
    return urllib.parse.unquote_to_bytes(raw).decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------
# What the service does for one user
# ---------------------------------------------------------------------------


class Behaviour:
    """One way of answering.  Made with the constructors below, never
    directly:

    route(target, user=None, password=None, check=None, by_name=None)
        OK: Auth-Server/Auth-Port of target (a Dovecot, or a dict with
        "host"?, "imap", "pop3") for the login's protocol; JSON: {"server",
        "port"}, or {"backend": by_name} when by_name is given.  user /
        password: the rewrite (Auth-User / Auth-Pass; JSON "user").  check:
        the right password; a login that sends another one is refused
        (refuse(WRONG_TEXT, wait=1, status=401)).  Without a password in the
        request (send_password off) nothing is checked.
    refuse(text, wait=None, status=403)
        nginx: Auth-Status: text (+ Auth-Wait); JSON: status and
        {"message": text}.
    unknown()
        nginx: Auth-Status "Invalid login or password"; JSON: 404.
    error(status=500)
        an HTTP error without Auth-Status (or a JSON error body).
    hang()         never answers (until stop() or HOLD_MAX).
    garbage()      sends bytes that are not HTTP, then closes.
    close_mid()    sends half an answer's header lines, then closes.
    slow(ms, then) answers as `then` after ms milliseconds.
    hold(event, then)  answers as `then` once event (a threading.Event) is set.
    """

    def __init__(self, kind, **kw):
        self.kind = kind
        self.kw = kw

    def __repr__(self):
        return "Behaviour(%s, %r)" % (self.kind, self.kw)


WRONG_TEXT = "Invalid login or password"


def route(target, user=None, password=None, check=None, by_name=None):
    return Behaviour("route", target=target, user=user, password=password, check=check,
                     by_name=by_name)


def refuse(text, wait=None, status=403, sasl=None):
    """sasl: an Auth-Error-SASL value (nginx PR 1590: the base64 RFC 7628
    error challenge for an XOAUTH2 / OAUTHBEARER login)."""
    return Behaviour("refuse", text=text, wait=wait, status=status, sasl=sasl)


def unknown():
    return Behaviour("unknown")


def error(status=500):
    return Behaviour("error", status=status)


def hang():
    return Behaviour("hang")


def garbage():
    return Behaviour("garbage")


def close_mid():
    return Behaviour("close_mid")


def slow(ms, then):
    return Behaviour("slow", ms=ms, then=then)


def hold(event, then):
    return Behaviour("hold", event=event, then=then)


def _target_addr(target, proto):
    """(host, port) of target for proto ("imap" / "pop3")."""
    if isinstance(target, dict):
        return target.get("host", HOST), int(target[proto])
    return HOST, int(getattr(target, proto + "_port"))


# ---------------------------------------------------------------------------
# The request handler
# ---------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pit-authsvc"
    # a connection left idle this long is closed (the client's keep-alive
    # pool sees it and reconnects)
    timeout = 30

    def log_message(self, fmt, *args):  # quiet: the tests read svc.requests
        pass

    def setup(self):
        super().setup()
        svc = self.server.svc
        with svc.lock:
            svc.connections += 1
            self.conn_no = svc.connections

    def do_GET(self):
        self._serve(b"")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(n, 1 << 20)) if n > 0 else b""
        self._serve(body)

    # ---- one request --------------------------------------------------
    def _serve(self, body):
        svc = self.server.svc
        heads = {}
        for k, v in self.headers.items():
            heads.setdefault(k.lower(), nginx_unescape(v) if k.lower().startswith(
                ("auth-", "client-")) else v)
        doc = None
        if self.command == "POST":
            try:
                doc = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                doc = None
        req = {"method": self.command, "path": self.path, "headers": heads,
               "raw_headers": list(self.headers.items()), "body": body, "json": doc,
               "conn": self.conn_no, "time": time.monotonic()}
        with svc.lock:
            svc.requests.append(req)
        if isinstance(doc, dict):
            user = str(doc.get("user", ""))
            proto = str(doc.get("protocol", "imap"))
            password = doc.get("password")
            kind = "json"
        else:
            user = heads.get("auth-user", "")
            proto = heads.get("auth-protocol", "imap")
            password = heads.get("auth-pass")
            kind = "nginx"
        b = svc.users.get(user, svc.default)
        self._answer(kind, b, proto, password)

    def _answer(self, kind, b, proto, password):
        svc = self.server.svc
        if b.kind == "slow":
            svc.stopping.wait(b.kw["ms"] / 1000.0)
            return self._answer(kind, b.kw["then"], proto, password)
        if b.kind == "hold":
            with svc.lock:
                svc.held += 1
            try:
                deadline = time.monotonic() + HOLD_MAX
                while not b.kw["event"].is_set() and not svc.stopping.is_set() \
                        and time.monotonic() < deadline:
                    # a long wait: 500 held answers must not busy the
                    # process the test's own clients run in
                    b.kw["event"].wait(1.0)
            finally:
                with svc.lock:
                    svc.held -= 1
            return self._answer(kind, b.kw["then"], proto, password)
        if b.kind == "hang":
            svc.stopping.wait(HOLD_MAX)
            self.close_connection = True
            return None
        if b.kind == "garbage":
            self.wfile.write(b"\x16\x03\x01 this is not HTTP at all\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
            return None
        if b.kind == "close_mid":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nAuth-Status: OK\r\nAuth-Ser")
            self.wfile.flush()
            self.close_connection = True
            return None
        if b.kind == "route" and b.kw["check"] is not None and password is not None \
                and password != b.kw["check"]:
            b = refuse(WRONG_TEXT, wait=1, status=401)
        if kind == "nginx":
            return self._nginx(b, proto)
        return self._json(b, proto)

    def _send(self, status, heads, body=b""):
        self.send_response(status)
        for k, v in heads:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()

    def _nginx(self, b, proto):
        if b.kind == "route":
            host, port = _target_addr(b.kw["target"], proto)
            heads = [("Auth-Status", "OK"), ("Auth-Server", host), ("Auth-Port", str(port))]
            if b.kw["user"] is not None:
                heads.append(("Auth-User", b.kw["user"]))
            if b.kw["password"] is not None:
                heads.append(("Auth-Pass", b.kw["password"]))
            return self._send(200, heads)
        if b.kind in ("refuse", "unknown"):
            text = b.kw["text"] if b.kind == "refuse" else WRONG_TEXT
            heads = [("Auth-Status", text)]
            if b.kind == "refuse" and b.kw["wait"] is not None:
                heads.append(("Auth-Wait", str(b.kw["wait"])))
            if b.kind == "refuse" and b.kw.get("sasl") is not None:
                heads.append(("Auth-Error-SASL", b.kw["sasl"]))
            return self._send(200, heads)
        if b.kind == "error":
            return self._send(b.kw["status"], [("Content-Type", "text/plain")],
                              b"internal error\n")
        raise AssertionError("behaviour %r" % b)

    def _json(self, b, proto):
        def send(status, doc):
            self._send(status, [("Content-Type", "application/json")],
                       json.dumps(doc).encode())

        if b.kind == "route":
            if b.kw["by_name"] is not None:
                doc = {"backend": b.kw["by_name"]}
            else:
                host, port = _target_addr(b.kw["target"], proto)
                doc = {"server": host, "port": port}
            if b.kw["user"] is not None:
                doc["user"] = b.kw["user"]
            return send(200, doc)
        if b.kind == "refuse":
            return send(b.kw["status"], {"message": b.kw["text"]})
        if b.kind == "unknown":
            return send(404, {"message": "no such user"})
        if b.kind == "error":
            return send(b.kw["status"], {"error": "internal"})
        raise AssertionError("behaviour %r" % b)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, addr, svc, tls_ctx):
        self.svc = svc
        self.tls_ctx = tls_ctx
        super().__init__(addr, _Handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls_ctx is not None:
            # The handshake runs in the connection's thread (finish_request),
            # not here, so one slow client does not stop the accepting.
            sock = self.tls_ctx.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request, client_address):
        if self.tls_ctx is not None:
            request.settimeout(10.0 * TIMEOUT_SCALE)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                with self.svc.lock:
                    self.svc.tls_failures += 1
                return
            request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass  # a client that went away mid-answer is part of the tests


class AuthService:
    """The lookup service.  users: {user: Behaviour}; default: the
    behaviour for anyone else (unknown()).  cert: {"cert", "key"} (e.g.
    make_certs()' rsa_cert/rsa_key as such a dict) serves https.

        svc = AuthService({"alice@example.org": route(mx1)}).start()
        svc.url("nginx")   # "http://127.0.0.1:PORT/nginx"
        ...; svc.stop()

    connections, requests (list of dicts: method, path, headers (lower-case
    names, nginx's escaping undone), raw_headers, body, json, conn), held
    (answers waiting on a hold() event now), tls_failures."""

    def __init__(self, users=None, default=None, cert=None, port=None):
        self.users = dict(users or {})
        self.default = default or unknown()
        self.cert = cert
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.connections = 0
        self.requests = []
        self.held = 0
        self.tls_failures = 0
        self.server = None
        self.thread = None

    @property
    def scheme(self):
        return "https" if self.cert else "http"

    def url(self, path="auth"):
        return "%s://%s:%d/%s" % (self.scheme, HOST, self.port, path)

    def start(self):
        ctx = None
        if self.cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert["cert"], self.cert["key"])
        self.stopping.clear()
        self.server = _Server((HOST, self.port), self, ctx)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Stop accepting and close the listening socket (nothing listens on
        the port afterwards: "service down"); held and hanging answers end."""
        self.stopping.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- inspection ----------------------------------------------------
    def counts(self):
        """(TCP connections accepted, requests read) so far."""
        with self.lock:
            return self.connections, len(self.requests)

    def requests_of(self, user):
        """The requests about user (either protocol), in order."""
        with self.lock:
            reqs = list(self.requests)
        out = []
        for r in reqs:
            u = r["json"].get("user") if isinstance(r["json"], dict) \
                else r["headers"].get("auth-user")
            if u == user:
                out.append(r)
        return out

    def wait_held(self, n, timeout):
        """Wait until n answers are held at once; returns the count then."""
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while time.monotonic() < deadline:
            with self.lock:
                if self.held >= n:
                    return self.held
            time.sleep(0.05)
        with self.lock:
            return self.held


def nothing_listens_port():
    """A loopback port nothing listens on (a service that is down)."""
    port = free_port()
    with socket.socket() as s:
        assert s.connect_ex((HOST, port)) != 0, port
    return port
