"""Certificates and TLS tools: the test CA and server certificates made
with openssl, PEM to DER, a verifying client context, and bounded runs of
`openssl s_client`, `openssl s_server` and sslscan."""

import os
import re
import ssl
import subprocess
import tempfile

from .procs import _live, free_port, stop_pid, wait_port


def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(
            "openssl %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace"))
        )


def make_certs(dirpath):
    """A self-signed test CA and two server certificates it signs, RSA-2048
    and ECDSA P-256, for CN "localhost" with SAN DNS:localhost, IP:127.0.0.1.
    Returns a dict of paths: ca, ca_key, rsa_cert, rsa_key, ecdsa_cert,
    ecdsa_key."""
    os.makedirs(dirpath, exist_ok=True)
    p = {
        "ca": os.path.join(dirpath, "ca.crt"),
        "ca_key": os.path.join(dirpath, "ca.key"),
        "rsa_cert": os.path.join(dirpath, "rsa.crt"),
        "rsa_key": os.path.join(dirpath, "rsa.key"),
        "ecdsa_cert": os.path.join(dirpath, "ecdsa.crt"),
        "ecdsa_key": os.path.join(dirpath, "ecdsa.key"),
    }
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", p["ca_key"], "-out", p["ca"], "-days", "30",
             "-subj", "/CN=postern test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ext = os.path.join(dirpath, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for kind, newkey in (("rsa", ["-newkey", "rsa:2048"]),
                         ("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])):
        csr = os.path.join(dirpath, kind + ".csr")
        _openssl("req", "-new", *newkey, "-nodes", "-keyout", p[kind + "_key"],
                 "-out", csr, "-subj", "/CN=localhost")
        _openssl("x509", "-req", "-in", csr, "-CA", p["ca"], "-CAkey", p["ca_key"],
                 "-CAcreateserial", "-out", p[kind + "_cert"], "-days", "30",
                 "-sha256", "-extfile", ext)
    return p


def make_ca(dirpath, name, cn):
    """Another self-signed CA (ECDSA P-256) in dirpath: {"ca", "ca_key"}."""
    os.makedirs(dirpath, exist_ok=True)
    p = {"ca": os.path.join(dirpath, name + ".crt"),
         "ca_key": os.path.join(dirpath, name + ".key")}
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", p["ca_key"], "-out", p["ca"], "-days", "30",
             "-subj", "/CN=" + cn,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return p


def make_server_cert(dirpath, name, ca, cn, dns=(), ips=(), kind="rsa"):
    """A server certificate signed by ca (a dict with "ca" and "ca_key", e.g.
    make_certs()' result), subject CN=cn, SAN DNS:dns..., IP:ips..., key kind
    "rsa" (2048) or "ecdsa" (P-256), a random serial.  Files
    dirpath/name.crt and name.key; returns {"cert", "key"}."""
    os.makedirs(dirpath, exist_ok=True)
    p = {"cert": os.path.join(dirpath, name + ".crt"),
         "key": os.path.join(dirpath, name + ".key")}
    san = ",".join(["DNS:" + d for d in dns] + ["IP:" + i for i in ips])
    ext = os.path.join(dirpath, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
        if san:
            f.write("subjectAltName=%s\n" % san)
    newkey = (["-newkey", "rsa:2048"] if kind == "rsa" else
              ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    csr = os.path.join(dirpath, name + ".csr")
    _openssl("req", "-new", *newkey, "-nodes", "-keyout", p["key"], "-out", csr,
             "-subj", "/CN=" + cn)
    _openssl("x509", "-req", "-in", csr, "-CA", ca["ca"], "-CAkey", ca["ca_key"],
             "-set_serial", "0x" + os.urandom(8).hex(), "-out", p["cert"], "-days", "30",
             "-sha256", "-extfile", ext)
    return p


def pem_to_der(path_or_text):
    """The DER bytes of the first certificate in a PEM file (or PEM text)."""
    text = path_or_text
    if "-----BEGIN" not in text:
        with open(text) as f:
            text = f.read()
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    if not m:
        raise ValueError("no certificate in %r" % text[:200])
    return ssl.PEM_cert_to_DER_cert(m.group(0))


def client_context(cafile):
    """A client TLS context that verifies the server against cafile."""
    return ssl.create_default_context(cafile=cafile)


# ---------------------------------------------------------------------------
# openssl s_client and sslscan, bounded in time
# ---------------------------------------------------------------------------


def s_client(port, args=(), wait_for=None, send=b"", timeout=15.0, host="127.0.0.1"):
    """Run `openssl s_client -connect host:port args...`.  Once its output
    matches the regex wait_for (bytes; None: at once) `send` goes to its stdin
    and stdin is closed, which makes s_client close the connection and exit.
    Returns (exit status or None if it had to be stopped, output text with
    stderr).  The process is stopped by its PID whatever happens."""
    import threading
    proc = subprocess.Popen(["openssl", "s_client", "-connect", "%s:%d" % (host, port),
                             *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    chunks = []
    seen = threading.Event()
    rx = re.compile(wait_for) if wait_for is not None else None

    def reader():
        while True:
            b = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else \
                proc.stdout.read(1)
            if not b:
                seen.set()
                return
            chunks.append(b)
            if rx is None or rx.search(b"".join(chunks)):
                seen.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    rc = None
    try:
        if rx is not None:
            seen.wait(timeout)
        try:
            if send:
                proc.stdin.write(send)
                proc.stdin.flush()
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
    finally:
        stop_pid(proc, term_timeout=5)
        t.join(5)
        try:
            proc.stdout.close()
        except OSError:
            pass
    return rc, b"".join(chunks).decode("utf-8", errors="replace")


def s_client_cert(output):
    """(subject line, DER of the server certificate) from s_client output;
    ValueError when it shows none."""
    m = re.search(r"^subject=(.*)$", output, re.M)
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", output, re.S)
    if not pem:
        raise ValueError("s_client showed no server certificate")
    return (m.group(1).strip() if m else None), ssl.PEM_cert_to_DER_cert(pem.group(0))


def sslscan(target, args=(), timeout=180):
    """Run `sslscan --no-colour args... target`; returns (status, text)."""
    r = subprocess.run(["sslscan", "--no-colour", *args, target], capture_output=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", errors="replace")


class OpensslServer:
    """`openssl s_server` on 127.0.0.1 (a TLS server with any settings, to
    check what the tests' own checks catch); stopped by its PID."""

    def __init__(self, args, port=None):
        self.args = list(args)
        self.port = port or free_port()
        self.proc = None
        self.output = None

    def start(self, timeout=10.0):
        self.output = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(["openssl", "s_server", "-accept",
                                      "127.0.0.1:%d" % self.port, "-quiet", *self.args],
                                     stdin=subprocess.DEVNULL, stdout=self.output,
                                     stderr=subprocess.STDOUT)
        _live.add(self)
        if not wait_port(self.port, timeout, alive=lambda: self.proc.poll() is None):
            self.stop()
            raise RuntimeError("openssl s_server did not listen on %d" % self.port)
        return self

    def stop(self):
        stop_pid(self.proc)
        _live.discard(self)
        if self.output is not None:
            self.output.close()
            self.output = None
