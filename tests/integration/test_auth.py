"""Every way a real client logs in, through postern to real Dovecot: SASL
LOGIN (curl, imaplib, poplib, raw), XOAUTH2 and OAUTHBEARER passed through
to a Dovecot whose oauth2 passdb validates JWTs locally (HS256, a key this
module makes), the RFC 7628 error exchange, mechanism lists per listener,
and ID at its full legal size."""

import base64
import hashlib
import hmac
import imaplib
import json
import os
import poplib
import re
import ssl
import subprocess
import time

import pytest

import harness
from harness import IO_TIMEOUT, Dovecot, Postern, RawImap, RawPop3

HOST = "127.0.0.1"
OAUTH_USER = "olive@oauth.test"
OAUTH_OTHER = "oscar@oauth.test"
PLAIN_USER = "paula@plain.test"
PASSWORDS = {OAUTH_USER: "olive-pw-1", OAUTH_OTHER: "oscar-pw-2",
             PLAIN_USER: 'paula pw "3"'}
HMAC_KEY = os.urandom(32)
ALL_MECHS = ["plain", "login", "xoauth2", "oauthbearer"]


# ---------------------------------------------------------------------------
# tokens: JWTs signed HS256 with HMAC_KEY (Python's hmac, no JWT library)
# ---------------------------------------------------------------------------


def _b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def make_jwt(email, key=None, lifetime=600, pad=0):
    """A JWT for email; pad adds a claim of that many bytes (long tokens)."""
    now = int(time.time())
    claims = {"sub": email, "email": email, "iat": now, "nbf": now - 5,
              "exp": now + lifetime}
    if pad:
        claims["pad"] = "x" * pad
    head = _b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64u(json.dumps(claims).encode())
    sig = _b64u(hmac.new(key or HMAC_KEY, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


def xoauth2(user, token):
    return base64.b64encode(b"user=%s\x01auth=Bearer %s\x01\x01"
                            % (user.encode(), token.encode())).decode()


def oauthbearer(user, token):
    gs2 = b"n,a=%s," % user.encode() if user else b"n,,"
    return base64.b64encode(gs2 + b"\x01auth=Bearer %s\x01\x01" % token.encode()).decode()


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


# ---------------------------------------------------------------------------
# fixtures: an OAuth Dovecot, a plain one, and a postern in front of both
# ---------------------------------------------------------------------------


def oauth_dovecot_conf(d):
    """Dovecot 2.3 oauth2 passdb with local JWT validation: the HS256 key,
    base64, in an fs:posix dict at <prefix>default/HS256/default (azp and
    kid "default")."""
    keys = os.path.join(d, "oauth-keys")
    os.makedirs(os.path.join(keys, "default", "HS256"), exist_ok=True)
    with open(os.path.join(keys, "default", "HS256", "default"), "w") as f:
        f.write(base64.b64encode(HMAC_KEY).decode())
    ext = os.path.join(d, "dovecot-oauth2.conf.ext")
    with open(ext, "w") as f:
        f.write("introspection_mode = local\n"
                "local_validation_key_dict = fs:posix:prefix=%s/\n"
                "username_attribute = email\n" % keys)
    for root, dirs, files in os.walk(d):
        os.chmod(root, 0o755)
        for fn in files:
            os.chmod(os.path.join(root, fn), 0o644)
    return ("auth_mechanisms = plain login xoauth2 oauthbearer\n"
            "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
            "  args = %s\n}\n" % ext)


class Env:
    pass


@pytest.fixture(scope="module")
def env(certs, run_dir, postern_registry):
    e = Env()
    started = []
    try:
        d = os.path.join(run_dir, "oauth")
        os.makedirs(d, exist_ok=True)
        e.ox = Dovecot("ox", {OAUTH_USER: PASSWORDS[OAUTH_USER],
                              OAUTH_OTHER: PASSWORDS[OAUTH_OTHER]},
                       parent_dir=run_dir, extra_conf=oauth_dovecot_conf(d))
        e.ox.start()
        started.append(e.ox)
        e.px = Dovecot("px", {PLAIN_USER: PASSWORDS[PLAIN_USER]}, parent_dir=run_dir)
        e.px.start()
        started.append(e.px)
        routes = [{"domain": "oauth.test", "backend": "ox"},
                  {"domain": "plain.test", "backend": "px"},
                  {"default": True, "backend": "ox"}]
        e.only_login = {"protocol": "imap", "tls": "implicit", "auth_mechanisms": ["login"]}
        e.pop_plain_x = {"protocol": "pop3", "tls": "implicit",
                         "auth_mechanisms": ["plain", "xoauth2"]}
        e.p = Postern(certs, [e.ox, e.px], routes, parent_dir=run_dir,
                      extra="auth_mechanisms = [ %s ];" % ", ".join(
                          '"%s"' % m for m in ALL_MECHS),
                      starttls=True, extra_listeners=[e.only_login, e.pop_plain_x])
        postern_registry.append(e.p)
        e.p.start()
        started.append(e.p)
        e.only_login, e.pop_plain_x = e.p.extra_listeners  # with their ports
        e.ca = certs["ca"]
        yield e
    finally:
        for x in reversed(started):
            x.cleanup()


@pytest.fixture(scope="module")
def default_postern(certs, run_dir, env, postern_registry):
    """A postern with no auth_mechanisms anywhere: the defaults."""
    p = Postern(certs, [env.ox], [{"default": True, "backend": "ox"}], parent_dir=run_dir,
                starttls=True)
    postern_registry.append(p)
    p.start()
    yield p
    p.cleanup()


def ctx(ca):
    return ssl.create_default_context(cafile=ca)


def imap(env, port=None):
    return RawImap(port or env.p.imap_port, env.ca)


def pop(env, port=None):
    return RawPop3(port or env.p.pop3_port, env.ca)


def first_message_subject(c, tag="s"):
    line, _ = c.command(tag + "1", "SELECT INBOX")
    assert b" OK " in line, c.dump()
    line, lines = c.command(tag + "2", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b" OK " in line, c.dump()
    return b"".join(lines)


# ---------------------------------------------------------------------------
# SASL LOGIN
# ---------------------------------------------------------------------------


def test_curl_authenticates_with_sasl_login_and_fetches_the_users_mail(env):
    since = env.px.log_size()
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", env.ca,
                        "--login-options", "AUTH=LOGIN",
                        "-u", "%s:%s" % (PLAIN_USER, PASSWORDS[PLAIN_USER]),
                        "imaps://127.0.0.1:%d/INBOX;UID=1" % env.p.imap_port],
                       capture_output=True, timeout=30 * harness.TIMEOUT_SCALE)
    assert r.returncode == 0, r.stderr
    assert b"user=%s backend=px n=1" % PLAIN_USER.encode() in r.stdout
    assert env.px.wait_log(r"imap-login: Info: Login: user=<%s>" % re.escape(PLAIN_USER),
                           since=since)
    assert env.p.wait_log(r"event=login\.ok .*user=\"%s\" mech=sasl-login" %
                          re.escape(PLAIN_USER))


def test_imaplib_authenticate_login_answers_username_and_password_challenges(env):
    seen = []
    answers = iter([PLAIN_USER.encode(), PASSWORDS[PLAIN_USER].encode()])

    def cb(challenge):
        seen.append(challenge)
        return next(answers)

    m = imaplib.IMAP4_SSL(HOST, env.p.imap_port, ssl_context=ctx(env.ca), timeout=IO_TIMEOUT)
    try:
        typ, _ = m.authenticate("LOGIN", cb)
        assert typ == "OK"
        assert seen == [b"Username:", b"Password:"]
        typ, data = m.select("INBOX")
        assert typ == "OK" and int(data[0]) == 3
    finally:
        m.logout()


def test_authenticate_login_with_sasl_ir_asks_only_the_password(env):
    with imap(env) as c:
        c.send("a AUTHENTICATE LOGIN %s\r\n" % b64(PLAIN_USER))
        assert c.expect_continuation() == b"+ UGFzc3dvcmQ6\r\n"
        c.send(b64(PASSWORDS[PLAIN_USER]) + "\r\n")
        line, _ = c.read_response("a")
        assert line.startswith(b"a OK "), c.dump()
        assert b"for %s on px" % PLAIN_USER.encode() in first_message_subject(c)


def test_authenticate_login_wrong_password_and_cancel(env):
    with imap(env) as c:
        c.send("a AUTHENTICATE LOGIN\r\n")
        assert c.expect_continuation() == b"+ VXNlcm5hbWU6\r\n"
        c.send("*\r\n")
        line, _ = c.read_response("a")
        assert line == b"a BAD Authentication canceled.\r\n"
        c.send("b AUTHENTICATE LOGIN\r\n")
        c.expect_continuation()
        c.send(b64(PLAIN_USER) + "\r\n")
        c.expect_continuation()
        c.send(b64("wrong-login-pw") + "\r\n")
        line, _ = c.read_response("b")
        assert line.startswith(b"b NO [AUTHENTICATIONFAILED]"), c.dump()
        # the password step cancelled: no login, the connection goes on
        c.send("c AUTHENTICATE LOGIN %s\r\n" % b64(PLAIN_USER))
        c.expect_continuation()
        c.send("*\r\n")
        line, _ = c.read_response("c")
        assert line == b"c BAD Authentication canceled.\r\n"
        line, _ = c.command("d", "NOOP")
        assert line.startswith(b"d OK")


def test_pop3_auth_login_raw_and_with_poplib(env):
    with pop(env) as c:
        assert c.command("AUTH LOGIN") == b"+ VXNlcm5hbWU6\r\n"
        assert c.command(b64(PLAIN_USER)) == b"+ UGFzc3dvcmQ6\r\n"
        assert c.command(b64(PASSWORDS[PLAIN_USER])).startswith(b"+OK"), c.dump()
        assert c.command("STAT").startswith(b"+OK 3 ")
    p = poplib.POP3_SSL(HOST, env.p.pop3_port, context=ctx(env.ca), timeout=IO_TIMEOUT)
    try:
        # poplib has no AUTH method: its raw command helpers
        p._putcmd("AUTH LOGIN %s" % b64(PLAIN_USER))
        assert p._getline()[0] == b"+ UGFzc3dvcmQ6"
        resp = p._shortcmd(b64(PASSWORDS[PLAIN_USER]))
        assert resp.startswith(b"+OK")
        assert p.stat()[0] == 3
        p.quit()
    finally:
        p.close()


def test_pop3_auth_login_cancel_and_wrong_password(env):
    with pop(env) as c:
        c.command("AUTH LOGIN")
        assert c.command("*") == b"-ERR Authentication canceled.\r\n"
        c.command("AUTH LOGIN %s" % b64(PLAIN_USER))
        assert c.command(b64("nope")).startswith(b"-ERR [AUTH]"), c.dump()
        assert c.command("CAPA").startswith(b"+OK")


def test_sasl_responses_each_protocol_answers_in_its_own_words(env):
    """One SASL exchange serves both protocols; where RFC 9051 and RFC 5034
    disagree, each keeps its own answer."""
    other = harness.sasl_plain(PLAIN_USER, PASSWORDS[PLAIN_USER], authzid=OAUTH_USER).decode()
    with imap(env) as c:
        # RFC 9051 §6.2.2: undecodable is BAD, and the session goes on
        line, _ = c.command("a", "AUTHENTICATE PLAIN QQ")
        assert line == b"a BAD Invalid base64 in SASL response.\r\n", c.dump()
        c.send("b AUTHENTICATE LOGIN\r\n")
        assert c.readline() == b"+ VXNlcm5hbWU6\r\n"
        c.send("QQ\r\n")
        line, _ = c.read_response("b")
        assert line == b"b BAD Invalid base64 in SASL response.\r\n", c.dump()
        # RFC 5530: an authorization identity is not ours to grant
        line, _ = c.command("c", "AUTHENTICATE PLAIN %s" % other)
        assert line == b"c NO [AUTHORIZATIONFAILED] Authorization identity not supported.\r\n", \
            c.dump()
        line, _ = c.command("d", "NOOP")
        assert line.startswith(b"d OK"), c.dump()
    with pop(env) as c:
        # RFC 5034 §4: all of these are a failed authentication (two per
        # connection: the third would end it, limits.max_auth_failures)
        assert c.command("AUTH PLAIN QQ").startswith(b"-ERR [AUTH]"), c.dump()
        assert c.command("AUTH PLAIN %s" % other) == \
            b"-ERR [AUTH] Authorization identity not supported.\r\n", c.dump()
    with pop(env) as c:
        # a wrong password names the user; the malformed try after it
        # names nobody, and must not be logged or throttled as that user
        assert c.command("USER %s" % PLAIN_USER).startswith(b"+OK")
        assert c.command("PASS wrong-pw").startswith(b"-ERR [AUTH]"), c.dump()
        assert c.command("AUTH LOGIN") == b"+ VXNlcm5hbWU6\r\n"
        assert c.command("QQ").startswith(b"-ERR [AUTH]"), c.dump()
        # USER, then AUTH: the USER does not survive into a later PASS
        assert c.command("USER %s" % PLAIN_USER).startswith(b"+OK")
        assert c.command("AUTH LOGIN") == b"+ VXNlcm5hbWU6\r\n"
        assert c.command("*") == b"-ERR Authentication canceled.\r\n"
        assert c.command("PASS %s" % PASSWORDS[PLAIN_USER]).startswith(b"-ERR No user"), \
            c.dump()
    # both protocols log and count it as a refused login (class=auth_failed)
    for proto in ("imap", "pop3"):
        assert env.p.wait_log(r"event=login\.fail .*proto=%s .*user=\"\" .*class=auth_failed "
                              r"reason=sasl_authzid" % proto)
    assert env.p.wait_log(r"event=login\.fail .*proto=pop3 .*user=\"\" .*mech=sasl-login "
                          r".*reason=sasl_bad_format")
    # a response refused as it came took no time (not the epoch's worth)
    for line in env.p.log().splitlines():
        if "event=login.fail" in line and "reason=sasl_" in line:
            assert int(re.search(r" ms=(\d+)", line).group(1)) < 60000, line


# ---------------------------------------------------------------------------
# XOAUTH2 and OAUTHBEARER passed through
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mech,enc", [("XOAUTH2", xoauth2), ("OAUTHBEARER", oauthbearer)])
def test_imap_token_with_sasl_ir_reaches_the_users_mailbox(env, mech, enc):
    tok = make_jwt(OAUTH_USER)
    since = env.ox.log_size()
    with imap(env) as c:
        line, _ = c.command("a", "AUTHENTICATE %s %s" % (mech, enc(OAUTH_USER, tok)))
        assert line.startswith(b"a OK "), c.dump()
        hdr = first_message_subject(c)
        assert b"for %s on ox" % OAUTH_USER.encode() in hdr
    assert env.ox.wait_log(r"imap-login: Info: Login: user=<%s>, method=%s"
                           % (re.escape(OAUTH_USER), mech), since=since)
    assert tok not in env.p.log()


@pytest.mark.parametrize("mech,enc", [("XOAUTH2", xoauth2), ("OAUTHBEARER", oauthbearer)])
def test_imap_token_in_a_continuation_round_and_a_long_token(env, mech, enc):
    # a 5 KiB token: over the backend SASL-IR bound (2 KiB), so the backend
    # gets it after its "+" too.  (Dovecot 2.3's login process takes SASL
    # responses up to 8 KiB of base64: "Authentication response too large"
    # beyond, which caps tokens behind it near 6 KiB.)
    tok = make_jwt(OAUTH_OTHER, pad=3600)
    assert 5000 < len(tok) < 5300
    with imap(env) as c:
        c.send("a AUTHENTICATE %s\r\n" % mech)
        assert c.expect_continuation() == b"+ \r\n"
        c.send(enc(OAUTH_OTHER, tok) + "\r\n")
        line, _ = c.read_response("a")
        assert line.startswith(b"a OK "), c.dump()
        assert b"for %s on ox" % OAUTH_OTHER.encode() in first_message_subject(c)
    assert tok not in env.p.log()


@pytest.mark.parametrize("mech,enc", [("XOAUTH2", xoauth2), ("OAUTHBEARER", oauthbearer)])
def test_pop3_token_with_and_without_initial_response(env, mech, enc):
    tok = make_jwt(OAUTH_USER)
    with pop(env) as c:
        assert c.command("AUTH %s %s" % (mech, enc(OAUTH_USER, tok))).startswith(b"+OK"), \
            c.dump()
        assert c.command("STAT").startswith(b"+OK 3 ")
    with pop(env) as c:
        assert c.command("AUTH %s" % mech) == b"+ \r\n"
        assert c.command(enc(OAUTH_USER, tok)).startswith(b"+OK"), c.dump()
        c.send("RETR 1\r\n")
        assert c.readline().startswith(b"+OK")
        assert any(b"on ox" in l for l in c.read_multiline())
    assert tok not in env.p.log()


@pytest.mark.parametrize("mech,enc", [("XOAUTH2", xoauth2), ("OAUTHBEARER", oauthbearer)])
def test_imap_wrong_token_gets_the_rfc7628_error_then_no(env, mech, enc):
    bad = make_jwt(OAUTH_USER, key=b"not-the-key")
    with imap(env) as c:
        c.send("a AUTHENTICATE %s %s\r\n" % (mech, enc(OAUTH_USER, bad)))
        cont = c.expect_continuation()
        assert cont.startswith(b"+ ") and cont.strip() != b"+"
        err = json.loads(base64.b64decode(cont[2:].strip()))
        assert "status" in err
        c.send("AQ==\r\n")
        line, _ = c.read_response("a")
        assert line == b"a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
        # the connection goes on: a good token now
        line, _ = c.command("b", "AUTHENTICATE %s %s" % (mech, enc(OAUTH_USER,
                                                                    make_jwt(OAUTH_USER))))
        assert line.startswith(b"b OK"), c.dump()
    assert env.p.wait_log(r"event=login\.fail .*mech=%s .*class=auth_failed "
                          r"reason=backend_refused_token" % mech.lower())
    assert bad not in env.p.log()
    assert bad.split(".")[2] not in env.ox.log()


def test_pop3_wrong_token_gets_the_rfc7628_error_then_err(env):
    bad = make_jwt(OAUTH_USER, key=b"wrong")
    with pop(env) as c:
        line = c.command("AUTH OAUTHBEARER %s" % oauthbearer(OAUTH_USER, bad))
        assert line.startswith(b"+ ") and len(line) > 4, c.dump()
        assert b"status" in base64.b64decode(line[2:].strip())
        assert c.command("AQ==") == b"-ERR [AUTH] Authentication failed.\r\n"
        assert c.command("CAPA").startswith(b"+OK")
    assert bad not in env.p.log()


def test_token_for_another_user_is_refused(env):
    tok = make_jwt(OAUTH_OTHER)
    with imap(env) as c:
        c.send("a AUTHENTICATE XOAUTH2 %s\r\n" % xoauth2(OAUTH_USER, tok))
        line = c.readline()
        if line.startswith(b"+"):
            c.send("AQ==\r\n")
            line, _ = c.read_response("a")
        assert line.startswith(b"a NO [AUTHENTICATIONFAILED]"), c.dump()


def test_oauthbearer_without_a_user_is_refused_with_a_reason(env):
    tok = make_jwt(OAUTH_USER)
    with imap(env) as c:
        line, _ = c.command("a", "AUTHENTICATE OAUTHBEARER %s" % oauthbearer("", tok))
        assert line.startswith(b"a NO [AUTHENTICATIONFAILED] OAUTHBEARER without a user"), \
            c.dump()
    with pop(env) as c:
        line = c.command("AUTH OAUTHBEARER %s" % oauthbearer("", tok))
        assert line.startswith(b"-ERR [AUTH] OAUTHBEARER without a user"), c.dump()
    # refused as a wrong password would be: same class, counted alike
    assert env.p.wait_log(r"event=login\.fail .*class=auth_failed reason=sasl_no_user")
    assert tok not in env.p.log()


def test_backend_without_the_mechanism_gives_unavailable_and_a_log_line(env):
    tok = make_jwt(PLAIN_USER)
    since = env.p.log_size()
    with imap(env) as c:
        line, _ = c.command("a", "AUTHENTICATE XOAUTH2 %s" % xoauth2(PLAIN_USER, tok))
        assert line.startswith(b"a NO [UNAVAILABLE]"), c.dump()
    with pop(env) as c:
        line = c.command("AUTH OAUTHBEARER %s" % oauthbearer(PLAIN_USER, tok))
        assert line.startswith(b"-ERR [SYS/TEMP]"), c.dump()
    assert env.p.wait_log(r"event=backend\.fail .*backend=px "
                          r"reason=backend_mechanism_unavailable said=\"backend does not "
                          r"advertise AUTH=XOAUTH2\"", since=since)
    assert env.p.wait_log(r"reason=backend_mechanism_unavailable said=\"backend does not "
                          r"offer SASL OAUTHBEARER\"", since=since)
    assert tok not in env.p.log()


def test_refused_tokens_count_as_refused_passwords(env):
    """max_auth_failures (3) applies to tokens too: the third failure ends
    the connection after the refusal."""
    bad = make_jwt(OAUTH_USER, key=b"bad-key")
    with imap(env) as c:
        for i in range(3):
            c.send("t%d AUTHENTICATE XOAUTH2 %s\r\n" % (i, xoauth2(OAUTH_USER, bad)))
            c.expect_continuation()
            c.send("AQ==\r\n")
            line, _ = c.read_response("t%d" % i)
            assert line.startswith(b"t%d NO [AUTHENTICATIONFAILED]" % i)
        assert b"BYE" in c.read_until_closed()


def test_no_token_in_any_log(env):
    # run last in this module (pytest keeps file order)
    text = env.p.log()
    for m in re.finditer(r"eyJ[A-Za-z0-9_-]{10,}", text):
        pytest.fail("a token in postern's log: %s" % m.group(0)[:40])
    assert "auth=Bearer" not in text


# ---------------------------------------------------------------------------
# mechanism lists
# ---------------------------------------------------------------------------


def caps_of(line):
    m = re.search(rb"CAPABILITY ([^\]\r]*)", line)
    return m.group(1).split()


def test_mechanism_lists_are_exactly_the_configured_ones(env, default_postern):
    with imap(env) as c:
        auth = [x for x in caps_of(c.greeting) if x.startswith(b"AUTH=")]
        assert auth == [b"AUTH=PLAIN", b"AUTH=LOGIN", b"AUTH=XOAUTH2", b"AUTH=OAUTHBEARER"]
        _, lines = c.command("a", "CAPABILITY")
        assert [x for x in caps_of(lines[0]) if x.startswith(b"AUTH=")] == auth
    with imap(env, env.only_login["port"]) as c:
        _, lines = c.command("a", "CAPABILITY")
        assert [x for x in caps_of(lines[0]) if x.startswith(b"AUTH=")] == [b"AUTH=LOGIN"]
        line, _ = c.command("b", "AUTHENTICATE PLAIN %s" % b64("\0a\0b"))
        assert line == b"b NO Unsupported authentication mechanism.\r\n"
        line, _ = c.command("c", "AUTHENTICATE XOAUTH2 %s" % xoauth2("a@b", "t"))
        assert line == b"c NO Unsupported authentication mechanism.\r\n"
    with pop(env, env.pop_plain_x["port"]) as c:
        c.send("CAPA\r\n")
        assert c.readline().startswith(b"+OK")
        capa = c.read_multiline()
        assert b"SASL PLAIN XOAUTH2" in capa and b"USER" in capa
        assert c.command("AUTH LOGIN").startswith(b"-ERR Unsupported")
        c.send("AUTH\r\n")
        assert c.readline().startswith(b"+OK")
        assert c.read_multiline() == [b"PLAIN", b"XOAUTH2"]
    with pop(env) as c:
        c.send("CAPA\r\n")
        c.readline()
        assert b"SASL PLAIN LOGIN XOAUTH2 OAUTHBEARER" in c.read_multiline()
    # the defaults: plain and login, no OAuth
    with RawImap(default_postern.imap_port, env.ca) as c:
        auth = [x for x in caps_of(c.greeting) if x.startswith(b"AUTH=")]
        assert auth == [b"AUTH=PLAIN", b"AUTH=LOGIN"]
        line, _ = c.command("a", "AUTHENTICATE OAUTHBEARER %s"
                            % oauthbearer(OAUTH_USER, make_jwt(OAUTH_USER)))
        assert line == b"a NO Unsupported authentication mechanism.\r\n"
    with RawPop3(default_postern.pop3_port, env.ca) as c:
        c.send("CAPA\r\n")
        c.readline()
        assert b"SASL PLAIN LOGIN" in c.read_multiline()


def test_starttls_listeners_advertise_no_mechanism_before_tls(env):
    with RawImap(env.p.imap_starttls_port, env.ca, plaintext=True) as c:
        assert b"AUTH=" not in c.greeting and b"LOGINDISABLED" in c.greeting
        c.command("a", "STARTTLS")
        c.starttls()
        _, lines = c.command("b", "CAPABILITY")
        assert [x for x in caps_of(lines[0]) if x.startswith(b"AUTH=")] == \
            [b"AUTH=PLAIN", b"AUTH=LOGIN", b"AUTH=XOAUTH2", b"AUTH=OAUTHBEARER"]
    with RawPop3(env.p.pop3_starttls_port, env.ca, plaintext=True) as c:
        c.send("CAPA\r\n")
        c.readline()
        capa = c.read_multiline()
        assert not any(l.startswith(b"SASL") for l in capa) and b"STLS" in capa


# ---------------------------------------------------------------------------
# ID at its full legal size (RFC 2971 §3.3)
# ---------------------------------------------------------------------------


def _id_pairs(n, value_len, field_len=30):
    return " ".join('"%s" "%s"' % (("f%02d" % i).ljust(field_len, "x"), "v" * value_len)
                    for i in range(n))


def test_maximal_legal_id_is_answered_and_login_follows(env):
    with imap(env) as c:
        line, lines = c.command("a", "ID (%s)" % _id_pairs(30, 1024))
        assert lines == [b"* ID NIL\r\n", b"a OK ID completed.\r\n"], c.dump()
        # the same size again, every value a literal
        c.send("b ID (")
        for i in range(30):
            c.send('"f%02d" {1024}\r\n' % i)
            c.expect_continuation()
            c.send("w" * 1024 + (" " if i < 29 else ""))
        c.send(")\r\n")
        line, lines = c.read_response("b")
        assert lines == [b"* ID NIL\r\n", b"b OK ID completed.\r\n"], c.dump()
        line, _ = c.command("c", "LOGIN %s %s" % (PLAIN_USER, '"paula pw \\"3\\""'))
        assert line.startswith(b"c OK"), c.dump()


@pytest.mark.parametrize("what", ["31 pairs", "value 1025"])
def test_id_just_over_a_bound_gets_bad_and_the_connection_goes_on(env, what):
    with imap(env) as c:
        args = _id_pairs(31, 10) if what == "31 pairs" else \
            _id_pairs(29, 1024) + ' "last" "%s"' % ("v" * 1025)
        line, lines = c.command("a", "ID (%s)" % args)
        assert line.startswith(b"a BAD"), c.dump()
        assert b"* ID" not in b"".join(lines)
        line, _ = c.command("b", "NOOP")
        assert line.startswith(b"b OK")
        line, _ = c.command("c", "ID NIL")
        assert line.startswith(b"c OK")
