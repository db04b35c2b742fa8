"""`make demo`: two real Dovecot backends and postern in front of them on
127.0.0.1:10993 (IMAPS) and 127.0.0.1:10995 (POP3S), with a fresh test CA.
Prints how to connect, then runs until Ctrl-C (SIGINT or SIGTERM) and stops
everything it started.  Run files live in a temporary directory that is
removed on exit.

With stdin not a terminal and DEMO_SECONDS set, it exits after that many
seconds (for smoke tests):  DEMO_SECONDS=5 python3 tests/integration/demo.py </dev/null
"""

import imaplib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import Dovecot, Postern  # noqa: E402

IMAPS_PORT = 10993
POP3S_PORT = 10995
SIEVE_PORT = 14190

ALICE, ALICE_PW = "alice@example.org", "alice-demo-pw"
BOB, BOB_PW = "bob@example.net", "bob-demo-pw"

ROUTES = [
    {"domain": "example.org", "backend": "mx1"},
    {"domain": "example.net", "backend": "mx2"},
    {"default": True, "backend": "mx1"},
]

_stop = False


def _on_signal(signum, frame):
    global _stop
    _stop = True


def _port_in_use(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _self_check(ca):
    """Log in as alice through postern and fetch message 1; returns an error
    string or None."""
    try:
        m = imaplib.IMAP4_SSL("127.0.0.1", IMAPS_PORT,
                              ssl_context=harness.client_context(ca), timeout=10)
        try:
            m.login(ALICE, ALICE_PW)
            m.select("INBOX")
            typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            m.logout()
        finally:
            try:
                m.shutdown()
            except OSError:
                pass
        if typ != "OK" or b"on mx1" not in data[0][1]:
            return "unexpected FETCH answer: %r" % (data,)
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        return "%s: %s" % (type(e).__name__, e)
    return None


def _instructions(run, ca, postern):
    return """
postern demo is running (run files in {run})

  IMAPS  127.0.0.1:{imap}      POP3S  127.0.0.1:{pop3}
  ManageSieve (STARTTLS)  127.0.0.1:{sieve}
  CA certificate (self-signed test CA): {ca}

  user                password        backend
  {alice:<19} {alice_pw:<15} mx1 (route: domain example.org)
  {bob:<19} {bob_pw:<15} mx2 (route: domain example.net)

Fetch a message with curl (IMAP, then POP3):
  curl --cacert {ca} 'imaps://127.0.0.1:{imap}/INBOX;UID=1' -u {alice}:{alice_pw}
  curl --cacert {ca} 'pop3s://127.0.0.1:{pop3}/1' -u {bob}:{bob_pw}
  (list: curl --cacert {ca} 'imaps://127.0.0.1:{imap}/' -u {alice}:{alice_pw})

Sieve filters over ManageSieve with sieve-connect (it asks for the password):
  sieve-connect --server 127.0.0.1 --port {sieve} --tlscafile {ca} --user {alice} --list

Python, one line each:
  python3 -c "import imaplib,ssl; m=imaplib.IMAP4_SSL('127.0.0.1',{imap},ssl_context=ssl.create_default_context(cafile='{ca}')); print(m.login('{alice}','{alice_pw}')); m.select('INBOX'); print(m.fetch('1','(RFC822)')[1][0][1].decode()); m.logout()"
  python3 -c "import poplib,ssl; p=poplib.POP3_SSL('127.0.0.1',{pop3},context=ssl.create_default_context(cafile='{ca}')); p.user('{bob}'); print(p.pass_('{bob_pw}')); print(p.stat()); print(b'\\n'.join(p.retr(1)[1]).decode()); p.quit()"

By hand:  openssl s_client -quiet -crlf -CAfile {ca} -connect 127.0.0.1:{imap}
          then type:  a LOGIN {alice} {alice_pw}   /   b SELECT INBOX   /   c LOGOUT

A mail client (Thunderbird, mutt, ...): server 127.0.0.1, IMAP port {imap} or
POP3 port {pop3}, SSL/TLS, normal password, user name as above.  Import the CA
file above as a trusted authority, or accept the certificate exception.

postern's log:  tail -f {log}
Press Ctrl-C to stop.
""".format(run=run, ca=ca, imap=IMAPS_PORT, pop3=POP3S_PORT, sieve=SIEVE_PORT, alice=ALICE,
           alice_pw=ALICE_PW, bob=BOB, bob_pw=BOB_PW, log=postern.log_path)


def main():
    for port in (IMAPS_PORT, POP3S_PORT, SIEVE_PORT):
        if _port_in_use(port):
            print("demo: 127.0.0.1:%d is already in use (another demo running?)" % port,
                  file=sys.stderr)
            return 1
    if not os.access(harness.POSTERN_BIN, os.X_OK):
        print("demo: %s not built; run `make` first" % harness.POSTERN_BIN, file=sys.stderr)
        return 1

    seconds = None
    if not sys.stdin.isatty() and os.environ.get("DEMO_SECONDS"):
        seconds = float(os.environ["DEMO_SECONDS"])

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    run = tempfile.mkdtemp(prefix="postern-demo-")
    os.chmod(run, 0o755)  # Dovecot's mail uid walks through it
    started = []
    rc = 0
    try:
        certs = harness.make_certs(os.path.join(run, "certs"))
        mx1 = Dovecot("mx1", {ALICE: ALICE_PW}, parent_dir=run)
        mx1.start()
        started.append(mx1)
        mx2 = Dovecot("mx2", {BOB: BOB_PW}, parent_dir=run)
        mx2.start()
        started.append(mx2)
        postern = Postern(certs, [mx1, mx2], ROUTES, imap_port=IMAPS_PORT,
                          pop3_port=POP3S_PORT, sieve=True, sieve_port=SIEVE_PORT,
                          log_level="info", parent_dir=run)
        postern.start()
        started.append(postern)

        print(_instructions(run, certs["ca"], postern), flush=True)
        err = _self_check(certs["ca"])
        if err:
            rc = 1
            print("demo: WARNING: self-check through postern failed: %s\n"
                  "--- postern log (tail) ---\n%s" % (err, "\n".join(
                      postern.log().splitlines()[-20:])), file=sys.stderr, flush=True)
        else:
            print("demo: self-check ok (alice logged in through postern, message 1 "
                  "fetched from mx1)", flush=True)

        deadline = time.monotonic() + seconds if seconds is not None else None
        while not _stop:
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not postern.running():
                print("demo: postern exited (status %s); log tail:\n%s"
                      % (postern.proc.returncode,
                         "\n".join(postern.log().splitlines()[-20:])), file=sys.stderr)
                rc = 1
                break
            time.sleep(0.2)
    except Exception as e:  # noqa: BLE001 - report and clean up
        print("demo: %s" % e, file=sys.stderr)
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let cleanup finish
        print("demo: stopping", flush=True)
        for x in reversed(started):
            x.cleanup()
        shutil.rmtree(run, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
