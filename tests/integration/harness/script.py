"""A scripted IMAP and POP3 backend: a Python server on loopback that logs
anyone in and answers a FETCH (IMAP) or RETR (POP3) with a body it sends in
two halves, pausing between them, so a test can act while a response is
half out.  It also speaks COMPRESS=DEFLATE (RFC 4978) for real.

Dovecot cannot be made to stop mid-literal; this can.  It serves plain TCP
(a backend with tls = "none"), one thread per connection, every wait
bounded, and stops its listeners and connections on close()."""

import socket
import threading
import zlib

from .procs import IO_TIMEOUT, TIMEOUT_SCALE, free_port

IMAP_CAPS = b"IMAP4rev1 AUTH=PLAIN SASL-IR ID LITERAL+ IDLE"
COMPRESS_CAP = b"COMPRESS=DEFLATE"


class _Stream:
    """A socket, optionally compressed both ways (raw DEFLATE, RFC 4978)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.inflate = self.deflate = None

    def compress(self):
        self.inflate = zlib.decompressobj(-15)
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)

    def send(self, data):
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        if self.inflate is not None:
            chunk = self.inflate.decompress(chunk)
        self.buf += chunk

    def readline(self):
        while b"\n" not in self.buf:
            if len(self.buf) > 65536:
                raise EOFError
            self._more()
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def read_exact(self, n):
        while len(self.buf) < n:
            self._more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


class ScriptBackend:
    """body: what FETCH / RETR send; split: where the pause falls (the first
    half should end with a line end, the trap); pause: seconds to wait
    there at most, cut short by resume.set(); delay: seconds before the
    answer begins.  `paused` is set when the
    first half is out; `commands` lists every command line received (after
    login)."""

    def __init__(self, body, split, pause=10.0, compress=True, name="script"):
        self.name = name
        self.body = body
        self.split = split
        self.pause = pause
        self.delay = 0.0  # seconds before a FETCH / RETR answer begins
        self.imap_caps = IMAP_CAPS + (b" " + COMPRESS_CAP if compress else b"")
        self.imap_port = free_port()
        self.pop3_port = free_port()
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.compressed = threading.Event()
        self.commands = []
        self._socks = []
        self._stop = threading.Event()
        self._threads = []

    # -- life --------------------------------------------------------------
    def start(self):
        for port, fn in ((self.imap_port, self._imap), (self.pop3_port, self._pop3)):
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", port))
            ls.listen(16)
            ls.settimeout(0.2)
            self._socks.append(ls)
            t = threading.Thread(target=self._accept, args=(ls, fn), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self):
        self._stop.set()
        self.resume.set()
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def entry(self):
        """The backend entry for Postern(backends=[...])."""
        return {"name": self.name, "host": "127.0.0.1", "imap": self.imap_port,
                "pop3": self.pop3_port, "tls": "none"}

    def _accept(self, ls, fn):
        while not self._stop.is_set():
            try:
                s, _ = ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(60 * TIMEOUT_SCALE)
            self._socks.append(s)
            t = threading.Thread(target=self._serve, args=(s, fn), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, s, fn):
        try:
            fn(_Stream(s))
        except (EOFError, OSError, ValueError):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def _halves(self, st, head, tail):
        if self.delay:
            self._stop.wait(self.delay)
        st.send(head + self.body[:self.split])
        self.paused.set()
        self.resume.wait(self.pause)
        st.send(self.body[self.split:] + tail)

    # -- IMAP --------------------------------------------------------------
    def _imap_command(self, st):
        """One command line with its literals, as bytes."""
        line = st.readline()
        out = line
        while line.rstrip(b"\r\n").endswith(b"}") and b"{" in line:
            spec = line.rstrip(b"\r\n")
            spec = spec[spec.rindex(b"{") + 1:-1]
            if not spec.endswith(b"+"):
                st.send(b"+ go on\r\n")
            n = int(spec.rstrip(b"+"))
            if n > 1 << 20:
                raise ValueError("literal too big")
            out += st.read_exact(n)
            line = st.readline()
            out += line
        return out

    def _imap(self, st):
        st.send(b"* OK [CAPABILITY " + self.imap_caps + b"] script ready\r\n")
        logged_in = False
        while not self._stop.is_set():
            cmd = self._imap_command(st)
            words = cmd.split(None, 2)
            if len(words) < 2:
                st.send(b"* BAD no tag\r\n")
                continue
            tag, name = words[0], words[1].upper()
            if logged_in:
                self.commands.append(cmd)
            if name == b"CAPABILITY" and logged_in:
                # in two writes, cut inside the word a "strip" removes
                line = b"* CAPABILITY " + self.imap_caps + b"\r\n"
                cut = line.find(b"COMPRESS=") + 5 if b"COMPRESS=" in line else len(line) // 2
                st.send(line[:cut])
                self._stop.wait(0.3)
                st.send(line[cut:] + tag + b" OK done\r\n")
            elif name == b"CAPABILITY":
                st.send(b"* CAPABILITY " + self.imap_caps + b"\r\n" + tag + b" OK done\r\n")
            elif name == b"ID":
                st.send(b"* ID NIL\r\n" + tag + b" OK done\r\n")
            elif name in (b"LOGIN", b"AUTHENTICATE"):
                if name == b"AUTHENTICATE" and len(cmd.split()) < 4:
                    st.send(b"+ \r\n")
                    st.readline()
                logged_in = True
                st.send(tag + b" OK [CAPABILITY " + self.imap_caps + b"] Logged in\r\n")
            elif name == b"FETCH":
                self._halves(st, b"* 1 FETCH (BODY[] {%d}\r\n" % len(self.body),
                             b")\r\n" + tag + b" OK Fetch completed.\r\n")
            elif name == b"IDLE":
                st.send(b"+ idling\r\n")
                st.readline()
                st.send(tag + b" OK Idle completed.\r\n")
            elif name == b"COMPRESS" and COMPRESS_CAP in self.imap_caps:
                st.send(tag + b" OK DEFLATE active\r\n")
                st.compress()
                self.compressed.set()
            elif name == b"LOGOUT":
                st.send(b"* BYE Logging out\r\n" + tag + b" OK Logout completed.\r\n")
                return
            else:
                st.send(tag + b" OK " + name + b" done\r\n")

    # -- POP3 --------------------------------------------------------------
    def _pop3(self, st):
        st.send(b"+OK script ready\r\n")
        logged_in = False
        while not self._stop.is_set():
            line = st.readline()
            words = line.split()
            name = words[0].upper() if words else b""
            if logged_in:
                self.commands.append(line)
            if name == b"CAPA":
                st.send(b"+OK\r\nUSER\r\nSASL PLAIN\r\nPIPELINING\r\n.\r\n")
            elif name == b"AUTH":
                if len(words) < 3:
                    st.send(b"+ \r\n")
                    st.readline()
                logged_in = True
                st.send(b"+OK Logged in.\r\n")
            elif name == b"USER":
                st.send(b"+OK\r\n")
            elif name == b"PASS":
                logged_in = True
                st.send(b"+OK Logged in.\r\n")
            elif name == b"RETR":
                self._halves(st, b"+OK %d octets\r\n" % len(self.body), b".\r\n")
            elif name == b"QUIT":
                st.send(b"+OK Logging out.\r\n")
                return
            else:
                st.send(b"+OK\r\n")


def pop3_dot_stuffed(body):
    """body as a RETR sends it: lines starting with '.' get another."""
    return b"".join(b"." + l if l.startswith(b".") else l
                    for l in body.splitlines(keepends=True))


__all__ = ["ScriptBackend", "pop3_dot_stuffed", "IO_TIMEOUT"]
