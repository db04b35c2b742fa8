"""Raw protocol clients: IMAP and POP3 spoken by hand over TLS (or
plaintext, then STARTTLS), every read with a deadline and a transcript for
failure messages; and the SASL PLAIN message."""

import base64
import re
import socket
import ssl
import time

from .certs import client_context
from .procs import IO_TIMEOUT


class ClosedError(Exception):
    """The peer closed the connection before the expected data arrived."""


class RawTLS:
    """A line-oriented TLS client; every read has a deadline.

    plaintext=True connects without TLS (a STARTTLS listener); starttls()
    later runs the TLS handshake on the same socket.

    source: the local address to connect from (e.g. "127.0.0.3"; any
    127.0.0.0/8 address works on loopback).  preamble: bytes sent on the TCP
    connection before anything else (e.g. a PROXY protocol header), before
    the TLS handshake."""

    def __init__(self, port, cafile, host="127.0.0.1", timeout=IO_TIMEOUT, context=None,
                 server_hostname=None, plaintext=False, source=None, preamble=b""):
        self.timeout = timeout
        self.cafile = cafile
        self.context = context
        self.server_hostname = server_hostname or host
        raw = socket.create_connection((host, port), timeout=timeout,
                                       source_address=(source, 0) if source else None)
        if preamble:
            try:
                raw.sendall(preamble)
            except Exception:
                raw.close()
                raise
        if plaintext:
            self.sock = raw
        else:
            ctx = context or client_context(cafile)
            try:
                self.sock = ctx.wrap_socket(raw, server_hostname=self.server_hostname)
            except Exception:
                raw.close()
                raise
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False
        self.transcript = []  # (direction, bytes), for failure messages

    def starttls(self, context=None, server_hostname=None):
        """TLS handshake on the existing (plaintext) socket.  Returns the
        bytes that were already received after the last line read (a server
        must send nothing between its STARTTLS answer and the handshake);
        they are dropped."""
        leftover, self.buf = self.buf, b""
        ctx = context or self.context or client_context(self.cafile)
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock,
                                    server_hostname=server_hostname or self.server_hostname)
        self.sock.settimeout(self.timeout)
        self.transcript.append(("-", b"(TLS handshake done: %s)" % self.sock.version().encode()))
        return leftover

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.transcript.append(("C", data))
        self.sock.settimeout(self.timeout)  # a read may have left a short one
        self.sock.sendall(data)

    def _fill(self, deadline):
        if self.eof:
            raise ClosedError("connection closed; transcript:\n" + self.dump())
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out; transcript:\n" + self.dump())
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise socket.timeout("timed out; transcript:\n" + self.dump()) from None
        except (ConnectionResetError, ssl.SSLEOFError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            raise ClosedError("connection closed; transcript:\n" + self.dump())
        self.transcript.append(("S", chunk))
        self.buf += chunk

    def readline(self, timeout=None):
        """One line including CRLF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_until_closed(self, timeout=None):
        """Everything until the peer closes; raises on timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                self._fill(deadline)
        except ClosedError:
            pass
        data, self.buf = self.buf, b""
        return data

    def dump(self):
        out = []
        for d, data in self.transcript[-40:]:
            out.append("%s: %r" % (d, data[:600]))
        return "\n".join(out)


class RawImap(RawTLS):
    """IMAP over implicit TLS (or plaintext=True: a STARTTLS port), spoken
    by hand."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.greeting = self.readline()

    def read_response(self, tag, timeout=None):
        """Lines until the tagged response for tag (str).  Literals in
        untagged data ({n}) are read whole and kept inside the line.
        Returns (tagged_line, [all lines including the tagged one])."""
        t = tag.encode() + b" "
        lines = []
        while True:
            line = self.readline(timeout)
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            while m:
                lit = self.read_exact(int(m.group(1)), timeout)
                rest = self.readline(timeout)
                line = line + lit + rest
                m = re.search(rb"\{(\d+)\}\r\n$", rest)
            lines.append(line)
            if line.startswith(t):
                return line, lines

    def command(self, tag, text, timeout=None):
        """Send 'tag text\\r\\n' and read to the tagged response."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.read_response(tag, timeout)

    def expect_continuation(self, timeout=None):
        line = self.readline(timeout)
        if not line.startswith(b"+"):
            raise AssertionError("expected a continuation request, got %r\n%s"
                                 % (line, self.dump()))
        return line


class RawPop3(RawTLS):
    """POP3 over implicit TLS (or plaintext=True: a STLS port), spoken by
    hand."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.greeting = self.readline()

    def command(self, text, timeout=None):
        if isinstance(text, str):
            text = text.encode("utf-8")
        self.send(text + b"\r\n")
        return self.readline(timeout)

    def read_multiline(self, timeout=None):
        """Lines of a multi-line answer up to '.', dot-unstuffed, without CRLF."""
        out = []
        while True:
            line = self.readline(timeout)
            if line == b".\r\n":
                return out
            if line.startswith(b".."):
                line = line[1:]
            out.append(line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n"))


def sasl_plain(user, password, authzid=""):
    """Base64 of a SASL PLAIN message (RFC 4616): authzid NUL authcid NUL passwd."""
    enc = lambda s: s.encode("utf-8") if isinstance(s, str) else s  # noqa: E731
    return base64.b64encode(enc(authzid) + b"\0" + enc(user) + b"\0" + enc(password))
