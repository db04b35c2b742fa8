"""Raw protocol clients: IMAP, POP3 and ManageSieve spoken by hand over TLS (or
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


# ---------------------------------------------------------------------------
# ManageSieve (RFC 5804)
# ---------------------------------------------------------------------------

_SIEVE_STATUS = (b"OK", b"NO", b"BYE")


def sieve_tokens(line):
    """The tokens of one ManageSieve line (without its CRLF): atoms as str,
    quoted strings as bytes (unescaped), a parenthesised response code as a
    list of tokens.  Raises ValueError on anything RFC 5804 does not allow
    (an unclosed string, a CR, LF or NUL inside one, a stray byte)."""
    out, stack, i = [], [], 0
    cur = out
    while i < len(line):
        ch = line[i:i + 1]
        if ch == b" ":
            i += 1
        elif ch == b'"':
            i += 1
            s = bytearray()
            while True:
                if i >= len(line):
                    raise ValueError("unclosed string in %r" % line)
                c = line[i:i + 1]
                if c == b"\\" and i + 1 < len(line) and line[i + 1:i + 2] in (b'"', b"\\"):
                    s += line[i + 1:i + 2]
                    i += 2
                elif c == b'"':
                    i += 1
                    break
                elif c in (b"\r", b"\n", b"\0", b"\\"):
                    raise ValueError("%r inside a quoted string in %r" % (c, line))
                else:
                    s += c
                    i += 1
            cur.append(bytes(s))
        elif ch == b"(":
            stack.append(cur)
            cur.append([])
            cur = cur[-1]
            i += 1
        elif ch == b")":
            if not stack:
                raise ValueError("unbalanced ')' in %r" % line)
            cur = stack.pop()
            i += 1
        else:
            j = i
            while j < len(line) and line[j:j + 1] not in (b" ", b"(", b")", b'"'):
                j += 1
            if j == i:
                raise ValueError("stray byte in %r" % line)
            cur.append(line[i:j].decode("ascii"))
            i = j
    if stack:
        raise ValueError("unclosed '(' in %r" % line)
    return out


class SieveResponse:
    """A parsed ManageSieve response: status ("OK", "NO", "BYE"), code (the
    tokens in parentheses, e.g. ["TRYLATER"] or ["SASL", b"..."], or None),
    text (bytes, or None), lines (the data lines before it, raw), line (the
    response line itself, raw)."""

    def __init__(self, line, lines):
        self.line = line
        self.lines = lines
        raw = line[:-2] if line.endswith(b"\r\n") else line
        toks = sieve_tokens(raw)
        self.status = toks[0].upper()
        rest = toks[1:]
        self.code = rest.pop(0) if rest and isinstance(rest[0], list) else None
        self.text = rest.pop(0) if rest and isinstance(rest[0], bytes) else None
        if rest:
            raise ValueError("response with trailing tokens: %r" % line)

    @property
    def code_name(self):
        return self.code[0].upper() if self.code else None

    def __repr__(self):
        return "SieveResponse(%r)" % self.line


def sieve_caps(lines):
    """{NAME: value str or None} from capability lines ("NAME" ["value"]);
    strict: every line must be one or two quoted strings."""
    caps = {}
    for line in lines:
        toks = sieve_tokens(line.rstrip(b"\r\n"))
        if not (1 <= len(toks) <= 2 and all(isinstance(t, bytes) for t in toks)):
            raise ValueError("not a capability line: %r" % line)
        caps[toks[0].decode().upper()] = toks[1].decode() if len(toks) == 2 else None
    return caps


class RawSieve(RawTLS):
    """ManageSieve spoken by hand: plaintext first (a STARTTLS listener,
    the default here) or implicit TLS (plaintext=False).  The greeting (the
    capability lines and OK) is read at once: self.greeting (a
    SieveResponse) and self.caps ({NAME: value})."""

    def __init__(self, port, cafile, plaintext=True, read_greeting=True, **kw):
        super().__init__(port, cafile, plaintext=plaintext, **kw)
        self.greeting = self.caps = None
        if read_greeting:
            self.greeting = self.read_response()
            self.caps = sieve_caps(self.greeting.lines)

    def read_response(self, timeout=None):
        """Lines up to a line starting OK, NO or BYE.  A line ending in a
        server literal {n} is read with its n octets and the rest of the
        line (data lines keep the literal inside, raw).  Returns a
        SieveResponse; the literal of a response line itself (NO {n}) is
        put into text."""
        lines = []
        while True:
            line = self.readline(timeout)
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            while m:
                lit = self.read_exact(int(m.group(1)), timeout)
                rest = self.readline(timeout)
                line = line + lit + rest
                m = re.search(rb"\{(\d+)\}\r\n$", rest)
            word = line.split(b" ", 1)[0].split(b"(", 1)[0].rstrip(b"\r\n").upper()
            if word in _SIEVE_STATUS:
                lm = re.match(rb"^(\w+)( \([^)]*\))? \{(\d+)\}\r\n", line)
                if lm:  # a response whose text is a literal
                    text = line[lm.end():lm.end() + int(lm.group(3))]
                    r = SieveResponse(lm.group(1) + (lm.group(2) or b"") + b"\r\n", lines)
                    r.text, r.line = text, line
                    return r
                return SieveResponse(line, lines)
            lines.append(line)

    def command(self, text, timeout=None):
        """Send text + CRLF; the response."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        self.send(text + b"\r\n")
        return self.read_response(timeout)

    def stls(self, context=None):
        """STARTTLS, the handshake and the capabilities sent again after it
        (RFC 5804 §2.2).  Returns (the STARTTLS response, the capability
        response after TLS); the caps are updated.  Any byte the server
        sent between its OK and the handshake fails."""
        r = self.command("STARTTLS")
        if r.status != "OK":
            raise AssertionError("STARTTLS refused: %r\n%s" % (r.line, self.dump()))
        leftover = self.starttls(context=context)
        if leftover:
            raise AssertionError("bytes after the STARTTLS OK before TLS: %r" % leftover)
        again = self.read_response()
        self.caps = sieve_caps(again.lines)
        return r, again

    def authenticate_plain(self, user, password, timeout=None):
        """AUTHENTICATE "PLAIN" with the initial response as a string."""
        return self.command(b'AUTHENTICATE "PLAIN" "%s"' % sasl_plain(user, password),
                            timeout)

    def getscript(self, name):
        """GETSCRIPT: (the response, the script's bytes or None)."""
        r = self.command(b'GETSCRIPT "%s"' % name.encode())
        if r.status != "OK" or not r.lines:
            return r, None
        m = re.match(rb"^\{(\d+)\}\r\n", r.lines[0])
        if not m:
            raise AssertionError("GETSCRIPT data is not a literal: %r" % r.lines[0][:200])
        n = int(m.group(1))
        body = r.lines[0][m.end():]
        if len(body) != n + 2 or not body.endswith(b"\r\n"):
            raise AssertionError("GETSCRIPT literal of %d octets, got %d then %r"
                                 % (n, len(body), body[n:]))
        return r, body[:n]


def sieve_literal(data):
    """A client literal {n+}CRLF data (RFC 5804 §4: clients send only
    non-synchronising literals)."""
    return b"{%d+}\r\n" % len(data) + data
