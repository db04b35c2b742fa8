"""A polite end never cuts a response: a kick, `backend maint` or SIGTERM's
drain waits until the response under way is whole, even when the backend
pauses in the middle of it right after a line end, the trap a "last byte
was a line end" check falls into.  The backend here is a script
(harness.ScriptBackend) that sends a FETCH literal or a RETR in two halves
with a pause between them; the clients are raw IMAP and POP3 over real TLS.

A session that turned on COMPRESS=DEFLATE is opaque: no byte of postern's
own may enter it, so it ends by a plain close, and every byte the client
got inflates cleanly."""

import os
import signal
import socket
import tempfile
import time
import zlib

import pytest

import harness
from harness import IO_TIMEOUT, TIMEOUT_SCALE, Postern, RawImap, RawPop3, ScriptBackend

USER = "kim@example.org"
PW = "kim-script-pw"
PAUSE = 3.0  # seconds the backend waits mid-response: > drain_quiet several times over


def body_of(size, split):
    """size bytes of CRLF lines with a line end at byte split."""
    line = b"%-48s\r\n"
    out = bytearray()
    n = 0
    while len(out) < size:
        out += line % (b"line %d of the message" % n)
        n += 1
    out = out[:size - 2] + b"\r\n"
    assert out[split - 2:split] == b"\r\n", "split must follow a line end"
    return bytes(out)


BODY = body_of(5200, 2600)


@pytest.fixture
def stack(certs, postern_registry, run_dir):
    """A factory: a script backend and a postern with an admin socket in
    front of it; both stopped after the test."""
    made = []

    def make(**kw):
        be = ScriptBackend(BODY, 2600, pause=PAUSE * 4 * TIMEOUT_SCALE).start()
        made.append(be)
        sockdir = tempfile.mkdtemp(prefix="adm-", dir=run_dir)
        kw.setdefault("timeouts", {"drain": "30s", "drain_quiet": "500ms",
                                   "drain_spread": "0s"})
        p = Postern(certs, [be.entry()], [{"default": True, "backend": be.name}],
                    parent_dir=run_dir,
                    extra='\nadmin = { socket = "%s"; };' % os.path.join(sockdir, "admin.sock"),
                    **kw)
        postern_registry.append(p)
        made.append(p)
        p.start()
        return be, p

    yield make
    for x in reversed(made):
        if isinstance(x, ScriptBackend):
            x.close()
        else:
            x.cleanup()


def admin(p, *args):
    return harness.run_postern("-c", p.conf_path, *args, timeout=30)


def imap_login(p, ca):
    c = RawImap(p.imap_port, ca)
    line, _ = c.command("a1", 'LOGIN "%s" "%s"' % (USER, PW))
    assert line.startswith(b"a1 OK"), c.dump()
    return c


def end_it(how, p, be):
    """End the session the polite way named by how."""
    if how == "sigterm":
        os.kill(p.proc.pid, signal.SIGTERM)
        return
    r = admin(p, "kick", "--user", USER) if how == "kick" else \
        admin(p, "backend", be.name, "maint")
    assert r.returncode == 0, r


def nothing_arrives(c, seconds):
    """True when the client gets no byte for that long (the session open)."""
    try:
        c.read_exact(len(c.buf) + 1, seconds)
    except (socket.timeout, harness.ClosedError):
        return not c.eof and len(c.buf) == 0
    return False


@pytest.mark.parametrize("how", ["kick", "maint", "sigterm"])
def test_imap_end_waits_for_a_fetch_literal_paused_after_a_line_end(stack, ca, how):
    be, p = stack()
    c = imap_login(p, ca)
    try:
        c.send(b"f FETCH 1 BODY[]\r\n")
        head = c.readline()
        assert head == b"* 1 FETCH (BODY[] {%d}\r\n" % len(BODY), c.dump()
        assert be.paused.wait(IO_TIMEOUT), "the backend never paused"
        first = c.read_exact(2600)
        assert first == BODY[:2600]
        end_it(how, p, be)
        # several drain_quiet periods pass with the response half out:
        # postern must neither cut it nor say BYE inside it
        assert nothing_arrives(c, 2.0 * TIMEOUT_SCALE), c.dump()
        be.resume.set()
        rest = c.read_exact(len(BODY) - 2600, 10 * TIMEOUT_SCALE)
        assert first + rest == BODY, "the literal came back altered"
        assert c.readline() == b")\r\n", c.dump()
        assert c.readline().startswith(b"f OK"), c.dump()
        bye = c.readline(10 * TIMEOUT_SCALE)
        assert bye.startswith(b"* BYE [UNAVAILABLE]"), c.dump()
        assert c.read_until_closed(10 * TIMEOUT_SCALE) == b""
    finally:
        be.resume.set()
        c.close()


@pytest.mark.parametrize("how", ["kick", "sigterm"])
def test_pop3_end_waits_for_the_dot_line_of_a_paused_retr(stack, ca, how):
    be, p = stack()
    c = RawPop3(p.pop3_port, ca)
    try:
        assert c.command("USER " + USER).startswith(b"+OK"), c.dump()
        assert c.command("PASS " + PW).startswith(b"+OK"), c.dump()
        c.send(b"RETR 1\r\n")
        assert c.readline().startswith(b"+OK"), c.dump()
        assert be.paused.wait(IO_TIMEOUT), "the backend never paused"
        first = c.read_exact(2600)
        end_it(how, p, be)
        assert nothing_arrives(c, 2.0 * TIMEOUT_SCALE), c.dump()
        be.resume.set()
        rest = c.read_exact(len(BODY) - 2600 + 3, 10 * TIMEOUT_SCALE)
        assert first + rest == BODY + b".\r\n", "the message came back altered"
        # POP3 has no word for it: the close, once the answer is whole
        assert c.read_until_closed(10 * TIMEOUT_SCALE) == b""
    finally:
        be.resume.set()
        c.close()


def test_imap_end_waits_for_the_answer_to_a_pipelined_command(stack, ca):
    """A command sent and not yet answered is in flight too: the kick
    waits for its answer, which begins only after several drain_quiet
    periods of silence both ways."""
    be, p = stack()
    c = imap_login(p, ca)
    try:
        be.pause = 0
        be.delay = 2.0 * TIMEOUT_SCALE
        c.send(b"f FETCH 1 BODY[]\r\n")
        r = admin(p, "kick", "--user", USER)
        assert r.returncode == 0, r
        line, lines = c.read_response("f", 10 * TIMEOUT_SCALE)
        assert line.startswith(b"f OK") and BODY in lines[0], c.dump()
        assert c.readline(10 * TIMEOUT_SCALE).startswith(b"* BYE [UNAVAILABLE]"), c.dump()
    finally:
        c.close()


def inflate_all(z, data):
    out = z.decompress(data)
    assert not z.unused_data, "bytes after the end of the DEFLATE stream"
    return out


def test_a_compressed_session_is_never_written_into_only_closed(stack, ca):
    be, p = stack()
    c = imap_login(p, ca)
    try:
        line, _ = c.command("z", "COMPRESS DEFLATE")
        assert line.startswith(b"z OK"), c.dump()
        assert be.compressed.wait(IO_TIMEOUT)
        out = zlib.compressobj(6, zlib.DEFLATED, -15)
        z = zlib.decompressobj(-15)
        c.send(out.compress(b"n NOOP\r\n") + out.flush(zlib.Z_SYNC_FLUSH))
        got = b""
        deadline = time.monotonic() + IO_TIMEOUT
        while b"n OK" not in got and time.monotonic() < deadline:
            raw = c.read_exact(1)  # at least a byte, then all that came with it
            raw, c.buf = raw + c.buf, b""
            got += inflate_all(z, raw)
        assert b"n OK" in got, got
        r = admin(p, "kick", "--user", USER)
        assert r.returncode == 0 and r.stdout.strip() == "kicked 1 session", r
        # the close comes, and every byte before it is DEFLATE: no BYE of
        # postern's own in clear text inside the compressed stream
        rest = c.read_until_closed(10 * TIMEOUT_SCALE)
        tail = inflate_all(z, rest)
        assert b"BYE" not in tail, tail
        assert p.wait_log(r"event=session\.end[^\n]*reason=kicked")
    finally:
        c.close()


def test_compress_strip_hides_the_capability_and_keeps_byes_polite(stack, ca):
    be, p = stack(compress="strip")
    c = imap_login(p, ca)
    try:
        assert b"COMPRESS=DEFLATE" not in c.transcript[-1][1], c.dump()
        line, lines = c.command("k", "CAPABILITY")
        assert line.startswith(b"k OK"), c.dump()
        assert all(b"COMPRESS" not in l for l in lines), lines
        assert b"IDLE" in lines[0], lines
        r = admin(p, "kick", "--user", USER)
        assert r.returncode == 0, r
        assert c.readline(10 * TIMEOUT_SCALE).startswith(b"* BYE [UNAVAILABLE]"), c.dump()
    finally:
        c.close()
