/*
 * backend.c: the login dialog with a backend, as its client.  Connects
 * without blocking, reads the greeting and capabilities, and logs in with
 * credentials re-serialised here (SASL PLAIN in base64, or IMAP strings
 * quoted or as literals), so no raw client byte reaches a backend before
 * login.  Reports the outcome once through c->proto->login_done().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "backend.h"
#include "health.h"
#include "imap.h"
#include "log.h"
#include "proxyproto.h"
#include "route.h"
#include "runtime.h"
#include "sasl.h"
#include "tls.h"

#define BE_LINE_MAX 8192 /* one response line from a backend */
#define BE_TX_MAX   8192 /* our commands, credentials included */
#define BE_CAPS_MAX 2048
#define BE_TEXT_MAX 512
#define BE_SEGS_MAX 3 /* LOGIN with two synchronising literals has three parts */

enum be_state {
	BE_CONNECT,
	BE_TLS, /* TLS handshake with the backend; then after_tls */
	/* IMAP */
	BI_GREETING,
	BI_STARTTLS,
	BI_CAPA,
	BI_ID,
	BI_LOGIN,
	BI_POSTCAPA,
	/* POP3 */
	BP_GREETING,
	BP_STLS,
	BP_CAPA_FIRST,
	BP_CAPA_LIST,
	BP_XCLIENT,
	BP_AUTH,
	BP_USER,
	BP_PASS,
	BE_DONE,
};

struct backend {
	const struct backend_conf *bc; /* borrowed from c->cfg */
	size_t bi;                     /* its index */
	size_t cand[ROUTE_POOL_MAX];
	size_t ncand, icand; /* candidates, best first; the one in use */
	bool creds_sent;     /* a login command went out: no failover any more */
	enum be_state state;
	enum be_state after_tls; /* where the dialog goes once TLS is up */
	ev_tstamp started;
	struct buf rx; /* backend -> us, until a line is complete */
	struct buf tx; /* us -> backend; holds credentials: wiped */
	/* Parts of a LOGIN waiting for the backend's "+" (synchronising literals). */
	struct buf later;
	size_t seg_len[BE_SEGS_MAX];
	size_t nsegs, iseg;
	char caps[BE_CAPS_MAX]; /* capabilities, space separated */
	bool have_caps;
	bool auth_plain, sasl_ir, literal_plus, login_disabled;
	bool pop3_sasl_plain, pop3_user, pop3_xclient;
	char text[BE_TEXT_MAX]; /* POP3: the +OK text; failures: what the backend said */
};

static void be_fail(struct conn *c, enum fail_class fc, const char *why);
static void set_text(struct backend *be, const char *s);

int
backend_events(struct conn *c)
{
	struct backend *be = c->be;

	if (be == NULL)
		return 0;
	if (be->state == BE_DONE)
		return 0; /* logged in, waiting for the policy: the relay reads */
	if (be->state == BE_CONNECT)
		return EV_WRITE;
	if (be->state == BE_TLS)
		return c->brd_wants;
	if (buf_len(&be->tx) > 0)
		return c->bwr_wants;
	return c->brd_wants;
}

void
backend_free(struct conn *c)
{
	struct backend *be = c->be;

	if (be == NULL)
		return;
	buf_deinit(&be->rx);
	buf_deinit(&be->tx);
	buf_deinit(&be->later);
	OPENSSL_cleanse(be, sizeof(*be));
	free(be);
	c->be = NULL;
}

int
backend_take_leftover(struct conn *c)
{
	struct backend *be = c->be;

	if (be == NULL || buf_len(&be->rx) == 0)
		return 0;
	if (buf_append(&c->out, buf_head(&be->rx), buf_len(&be->rx)) < 0)
		return -1;
	buf_consume(&be->rx, buf_len(&be->rx));
	return 0;
}

static int
be_connect(struct conn *c)
{
	struct backend *be = c->be;
	const struct backend_conf *bc = be->bc;
	enum proto_kind pk = c->proto->kind;
	int fd;

	fd = socket(bc->addr[pk].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&bc->addr[pk], bc->addrlen[pk]) < 0 &&
	    errno != EINPROGRESS) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	c->bfd = fd;
	return 0;
}

/* Drop the link to the current backend (socket, TLS, half-read lines). */
static void
be_close_link(struct conn *c)
{
	ev_io_stop(c->w->loop, &c->bio);
	c->bio_events = 0;
	tls_backend_free(c);
	if (c->bfd >= 0) {
		close(c->bfd);
		c->bfd = -1;
	}
	c->brd_wants = EV_READ;
	c->bwr_wants = EV_WRITE;
}

/*
 * Connect to the next candidate that is up, from be->icand on.  Returns 0
 * when a connection is under way, -1 when none is left (errno of the last
 * attempt, or 0).  A synchronous refusal marks the backend and moves on.
 */
static int
be_connect_next(struct conn *c)
{
	struct backend *be = c->be;
	const struct config *cfg = c->cfg;

	for (; be->icand < be->ncand; be->icand++) {
		size_t bi = be->cand[be->icand];
		const struct backend_conf *bc = &cfg->backends[bi];

		if (!health_is_up(c->rt->health[bi]))
			continue; /* skip the dead: the next in this user's own order */
		be->bi = bi;
		be->bc = bc;
		c->backend_name = bc->name;
		be->state = BE_CONNECT;
		be->creds_sent = false;
		buf_reset(&be->rx);
		buf_reset(&be->tx);
		buf_reset(&be->later);
		be->nsegs = be->iseg = 0;
		be->have_caps = be->auth_plain = be->sasl_ir = be->literal_plus = false;
		be->login_disabled = be->pop3_sasl_plain = be->pop3_xclient = false;
		be->text[0] = '\0';
		if (be_connect(c) == 0)
			return 0;
		snprintf(be->text, sizeof(be->text), "connect: %s", strerror(errno));
		log_kv(LOG_WARN, "backend.fail",
		       "cid=%016llx backend=%s reason=backend_connect_failed "
		       "said=\"%s\"",
		       (unsigned long long)c->id, bc->name, be->text);
		health_report(c->rt->health[bi], false, be->text, bc->rise, bc->fall);
	}
	return -1;
}

int
backend_start(struct conn *c, enum fail_class *fc_out, const char **why_out)
{
	const struct config *cfg = c->cfg;
	struct backend *be;
	char norm[ROUTE_USER_MAX + 1];
	size_t n, k = 0;

	n = route_normalize(c->creds->user, c->creds->user_len, norm, sizeof(norm));
	be = calloc(1, sizeof(*be));
	if (be == NULL) {
		*fc_out = FAIL_INTERNAL;
		*why_out = "out_of_memory";
		return -1;
	}
	be->ncand = n == 0 ? 0 : route_lookup(cfg->routes, norm, n, be->cand, ROUTE_POOL_MAX);
	/* A backend without a port for this protocol cannot take the user. */
	for (size_t i = 0; i < be->ncand; i++)
		if (cfg->backends[be->cand[i]].port[c->proto->kind] != 0)
			be->cand[k++] = be->cand[i];
	be->ncand = k;
	if (be->ncand == 0) {
		free(be);
		*fc_out = FAIL_BACKEND_DOWN;
		*why_out = "no_route";
		return -1;
	}
	be->started = ev_now(c->w->loop);
	buf_init(&be->rx, BE_LINE_MAX, false);
	buf_init(&be->tx, BE_TX_MAX, true);
	buf_init(&be->later, BE_TX_MAX, true);
	c->be = be;
	c->backend_name = cfg->backends[be->cand[0]].name;
	if (be_connect_next(c) < 0) {
		/* Every candidate is down: say so at once, not after a timeout. */
		backend_free(c);
		*fc_out = FAIL_BACKEND_DOWN;
		*why_out = "backend_down";
		return -1;
	}
	conn_set_state(c, CS_BACKEND);
	conn_set_timeout(c, (ev_tstamp)cfg->timeouts.backend_connect_ms / 1000.0);
	conn_update_io(c);
	return 0;
}

/* Report the outcome to the session once; c may be closed afterwards. */
static void
be_done(struct conn *c, enum fail_class fc, const char *text)
{
	if (fc != FAIL_NONE) {
		be_close_link(c);
		c->proto->login_done(c, fc, text); /* c may be freed here */
		return;
	}
	c->be->state = BE_DONE;
	conn_update_io(c);        /* nothing is read from the backend until relay */
	conn_backend_ok(c, text); /* the policy speaks before the client hears OK */
}

static void
be_fail(struct conn *c, enum fail_class fc, const char *why)
{
	char qtext[LOG_QUOTED_MAX];
	struct backend *be = c->be;

	if (fc != FAIL_AUTH)
		log_kv(LOG_WARN, "backend.fail", "cid=%016llx backend=%s reason=%s said=%s",
		       (unsigned long long)c->id, be->bc->name, why,
		       log_quote(qtext, sizeof(qtext), be->text, strlen(be->text)));
	/* Unreachable before it saw any credential: count it against the
	 * backend and try the user's next candidate within this login.  Once
	 * credentials went out, nothing is retried elsewhere. */
	if (fc == FAIL_BACKEND_DOWN && !be->creds_sent) {
		const char *from = be->bc->name;
		health_report(c->rt->health[be->bi], false, be->text[0] ? be->text : why,
		              be->bc->rise, be->bc->fall);
		be_close_link(c);
		be->icand++;
		if (be_connect_next(c) == 0) {
			log_kv(LOG_INFO, "backend.failover", "cid=%016llx from=%s to=%s",
			       (unsigned long long)c->id, from, be->bc->name);
			conn_set_timeout(c,
			                 (ev_tstamp)c->cfg->timeouts.backend_connect_ms / 1000.0);
			conn_update_io(c);
			return;
		}
	}
	be_done(c, fc, why);
}

static int
be_send(struct backend *be, const char *s, size_t len)
{
	return buf_append(&be->tx, s, len);
}

/*
 * Begin TLS on the backend link; the dialog goes on at next once the
 * handshake is done.  Anything the backend sent after its OK to STARTTLS is
 * dropped: it did not come through TLS.  Returns 0, or -1 (be_fail called).
 */
static int
be_start_tls(struct conn *c, enum be_state next)
{
	struct backend *be = c->be;

	buf_reset(&be->rx);
	if (tls_backend_start(c, be->bi, be->bc) < 0) {
		set_text(be, "cannot set up TLS");
		be_fail(c, FAIL_INTERNAL, "backend_tls_setup_failed");
		return -1;
	}
	be->after_tls = next;
	be->state = BE_TLS;
	return 0;
}

/* The handshake finished: go where the dialog was going. */
static void
be_tls_done(struct conn *c)
{
	struct backend *be = c->be;

	be->state = be->after_tls;
	if (be->state == BI_CAPA) {
		be->have_caps = false;
		be_send(be, "A1 CAPABILITY\r\n", 15);
	} else if (be->state == BP_CAPA_FIRST) {
		be_send(be, "CAPA\r\n", 6);
	}
}

/* ---- IMAP ---------------------------------------------------------------- */

/* Does the space-separated capability list hold word (case-insensitive)? */
static bool
caps_has(const char *caps, const char *word)
{
	size_t wl = strlen(word);

	for (const char *p = caps; *p != '\0';) {
		const char *e = strchr(p, ' ');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == wl && strncasecmp(p, word, wl) == 0)
			return true;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return false;
}

static void
set_caps(struct backend *be, const char *s, size_t len)
{
	while (len > 0 && s[len - 1] == ' ')
		len--;
	if (len >= sizeof(be->caps))
		len = sizeof(be->caps) - 1;
	memcpy(be->caps, s, len);
	be->caps[len] = '\0';
	/* Capabilities go back to the client inside a response code: keep them
	 * to printable ASCII so nothing can break out of the line. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)be->caps[i] < 0x20 || (unsigned char)be->caps[i] > 0x7e ||
		    be->caps[i] == ']')
			be->caps[i] = ' ';
	be->have_caps = true;
	be->auth_plain = caps_has(be->caps, "AUTH=PLAIN");
	be->sasl_ir = caps_has(be->caps, "SASL-IR");
	be->literal_plus = caps_has(be->caps, "LITERAL+");
	be->login_disabled = caps_has(be->caps, "LOGINDISABLED");
}

/* "[CAPABILITY a b c] text" at the start of resp text: take the list. */
static void
caps_from_code(struct backend *be, const char *text)
{
	static const char code[] = "[CAPABILITY ";
	const char *end;

	if (strncasecmp(text, code, sizeof(code) - 1) != 0)
		return;
	text += sizeof(code) - 1;
	end = strchr(text, ']');
	if (end != NULL)
		set_caps(be, text, (size_t)(end - text));
}

/* Keep what the backend said, cut, for the log line. */
static void
set_text(struct backend *be, const char *s)
{
	size_t n = strnlen(s, sizeof(be->text) - 1);

	memcpy(be->text, s, n);
	be->text[n] = '\0';
}

/* Queue the login: AUTHENTICATE PLAIN if offered, else LOGIN with each
 * string quoted or sent as a literal. */
static int
imap_send_login(struct conn *c)
{
	struct backend *be = c->be;
	struct creds *cr = c->creds;
	char *cmd = NULL;
	size_t cap = BE_TX_MAX, o = 0;
	int rc = -1;

	cmd = malloc(cap);
	if (cmd == NULL)
		return -1;
	be->creds_sent = true;
	be->have_caps = false; /* the answer to the login brings the new ones */
	be->nsegs = be->iseg = 0;
	if (be->auth_plain) {
		char b64[SASL_MAX_B64];
		size_t n = sasl_plain_encode(cr->user, cr->user_len, cr->secret, cr->secret_len,
		                             b64, sizeof(b64));
		if (n == 0)
			goto out;
		if (be->sasl_ir) {
			o = (size_t)snprintf(cmd, cap, "A2 AUTHENTICATE PLAIN %s\r\n", b64);
			rc = be_send(be, cmd, o);
		} else {
			/* RFC 3501 §6.2.2: wait for "+", then the response. */
			o = (size_t)snprintf(cmd, cap, "A2 AUTHENTICATE PLAIN\r\n");
			rc = be_send(be, cmd, o);
			if (rc == 0) {
				size_t l = (size_t)snprintf(cmd, cap, "%s\r\n", b64);
				be->seg_len[be->nsegs++] = l;
				rc = buf_append(&be->later, cmd, l);
			}
		}
		OPENSSL_cleanse(b64, sizeof(b64));
		goto out;
	}
	if (be->login_disabled) {
		set_text(be, "backend advertises LOGINDISABLED and no AUTH=PLAIN");
		goto out;
	}
	/* LOGIN: "A2 LOGIN " user SP secret CRLF, split after each synchronising
	 * literal announcement: the backend must say "+" before its bytes. */
	{
		size_t seg_start = 0, n;
		bool lit;

		o = (size_t)snprintf(cmd, cap, "A2 LOGIN ");
		n = imap_quote(cmd + o, cap - o, cr->user, cr->user_len, be->literal_plus, &lit);
		if (n == 0)
			goto out;
		if (lit && !be->literal_plus) {
			/* The quote wrote "{n}\r\n" + bytes: cut after the CRLF. */
			size_t hdr = (size_t)(strchr(cmd + o, '\n') - (cmd + o)) + 1;
			be->seg_len[be->nsegs++] = o + hdr - seg_start;
			seg_start = o + hdr;
		}
		o += n;
		cmd[o++] = ' ';
		n = imap_quote(cmd + o, cap - o - 2, cr->secret, cr->secret_len, be->literal_plus,
		               &lit);
		if (n == 0)
			goto out;
		if (lit && !be->literal_plus) {
			size_t hdr = (size_t)(strchr(cmd + o, '\n') - (cmd + o)) + 1;
			be->seg_len[be->nsegs++] = o + hdr - seg_start;
			seg_start = o + hdr;
		}
		o += n;
		cmd[o++] = '\r';
		cmd[o++] = '\n';
		be->seg_len[be->nsegs++] = o - seg_start;
		/* First segment now, the rest after each "+". */
		rc = be_send(be, cmd, be->seg_len[0]);
		if (rc == 0 && be->nsegs > 1)
			rc = buf_append(&be->later, cmd + be->seg_len[0], o - be->seg_len[0]);
		/* seg_len[0] is sent; the queue holds seg_len[1..]. */
		memmove(be->seg_len, be->seg_len + 1, (be->nsegs - 1) * sizeof(be->seg_len[0]));
		be->nsegs--;
	}
out:
	OPENSSL_cleanse(cmd, cap);
	free(cmd);
	if (rc == 0)
		be->state = BI_LOGIN;
	return rc;
}

/* The client's address for the backend (RFC 2971 ID with the fields
 * Dovecot trusts from login_trusted_networks). */
static int
imap_send_id(struct conn *c)
{
	struct backend *be = c->be;
	char pip[64], lip[64];
	unsigned pport, lport;

	conn_addr_parts(&c->client_sa, pip, sizeof(pip), &pport);
	conn_addr_parts(&c->local_sa, lip, sizeof(lip), &lport);
	be->state = BI_ID;
	return buf_printf(&be->tx,
	                  "A4 ID (\"x-originating-ip\" \"%s\" \"x-originating-port\" \"%u\" "
	                  "\"x-connected-ip\" \"%s\" \"x-connected-port\" \"%u\" "
	                  "\"x-session-id\" \"%016llx\")\r\n",
	                  pip, pport, lip, lport, (unsigned long long)c->id);
}

static enum fail_class
imap_no_class(const char *text)
{
	if (strncasecmp(text, "[UNAVAILABLE]", 13) == 0)
		return FAIL_BACKEND_DOWN;
	/* [AUTHENTICATIONFAILED], [AUTHORIZATIONFAILED], [EXPIRED], none: the
	 * credentials were not accepted. */
	return FAIL_AUTH;
}

/* One line from an IMAP backend (CRLF removed, NUL-terminated).  Returns -1
 * when the dialog ended (be_done was called: c may be gone). */
static int
imap_line(struct conn *c, char *line)
{
	struct backend *be = c->be;

	switch (be->state) {
	case BI_GREETING:
		if (strncasecmp(line, "* OK", 4) != 0) {
			set_text(be, line);
			be_fail(c, FAIL_BACKEND_PROTO,
			        strncasecmp(line, "* BYE", 5) == 0 ? "backend_bye"
			                                           : "backend_bad_greeting");
			return -1;
		}
		health_report(c->rt->health[be->bi], true, NULL, be->bc->rise, be->bc->fall);
		if (be->bc->tls == TLSM_STARTTLS && c->bssl == NULL) {
			/* RFC 9051 §6.2.1; capabilities are asked again over TLS. */
			be_send(be, "A0 STARTTLS\r\n", 13);
			be->state = BI_STARTTLS;
			return 0;
		}
		caps_from_code(be, line + (line[4] == ' ' ? 5 : 4));
		if (!be->have_caps) {
			be_send(be, "A1 CAPABILITY\r\n", 15);
			be->state = BI_CAPA;
			return 0;
		}
		break;
	case BI_STARTTLS:
		if (line[0] == '*')
			return 0;
		if (strncasecmp(line, "A0 OK", 5) != 0) {
			set_text(be, line);
			be_fail(c, FAIL_BACKEND_PROTO, "backend_starttls_refused");
			return -1;
		}
		return be_start_tls(c, BI_CAPA);
	case BI_CAPA:
		if (strncasecmp(line, "* CAPABILITY ", 13) == 0) {
			set_caps(be, line + 13, strlen(line + 13));
			return 0;
		}
		if (line[0] == '*')
			return 0;
		if (strncasecmp(line, "A1 OK", 5) != 0) {
			set_text(be, line);
			be_fail(c, FAIL_BACKEND_PROTO, "backend_capability_failed");
			return -1;
		}
		break;
	case BI_LOGIN:
		if (line[0] == '+') {
			size_t l;
			if (be->nsegs == 0) {
				set_text(be, line);
				be_fail(c, FAIL_BACKEND_PROTO, "backend_unexpected_continuation");
				return -1;
			}
			l = be->seg_len[0];
			if (be_send(be, (const char *)buf_head(&be->later), l) < 0) {
				be_fail(c, FAIL_INTERNAL, "backend_command_too_long");
				return -1;
			}
			buf_consume(&be->later, l);
			memmove(be->seg_len, be->seg_len + 1,
			        (be->nsegs - 1) * sizeof(be->seg_len[0]));
			be->nsegs--;
			return 0;
		}
		if (strncasecmp(line, "* CAPABILITY ", 13) == 0) {
			set_caps(be, line + 13, strlen(line + 13));
			return 0;
		}
		if (strncasecmp(line, "* BYE", 5) == 0) {
			set_text(be, line);
			be_fail(c, FAIL_BACKEND_DOWN, "backend_bye");
			return -1;
		}
		if (line[0] == '*')
			return 0;
		if (strncasecmp(line, "A2 OK", 5) == 0) {
			const char *t = line + 5 + (line[5] == ' ');
			caps_from_code(be, t);
			if (!be->have_caps) {
				be_send(be, "A3 CAPABILITY\r\n", 15);
				be->state = BI_POSTCAPA;
				return 0;
			}
			be_done(c, FAIL_NONE, be->caps);
			return -1;
		}
		if (strncasecmp(line, "A2 NO", 5) == 0) {
			const char *t = line + 5 + (line[5] == ' ');
			set_text(be, line);
			be_fail(c, imap_no_class(t), "backend_refused_login");
			return -1;
		}
		set_text(be, line);
		be_fail(c, FAIL_BACKEND_PROTO, "backend_bad_login_reply");
		return -1;
	case BI_ID:
		/* Whatever the answer, go on: a backend that ignores ID still
		 * serves the user, it only logs the proxy's address. */
		if (line[0] == '*')
			return 0;
		if (strncasecmp(line, "A4 OK", 5) != 0) {
			char q[LOG_QUOTED_MAX];
			log_kv(LOG_WARN, "backend.forward", "cid=%016llx backend=%s via=id said=%s",
			       (unsigned long long)c->id, be->bc->name,
			       log_quote(q, sizeof(q), line, strlen(line)));
		}
		break;
	case BI_POSTCAPA:
		if (strncasecmp(line, "* CAPABILITY ", 13) == 0) {
			set_caps(be, line + 13, strlen(line + 13));
			return 0;
		}
		if (line[0] == '*')
			return 0;
		if (strncasecmp(line, "A3 OK", 5) == 0) {
			be_done(c, FAIL_NONE, be->have_caps ? be->caps : "IMAP4rev1");
			return -1;
		}
		set_text(be, line);
		be_fail(c, FAIL_BACKEND_PROTO, "backend_capability_failed");
		return -1;
	default:
		return 0;
	}
	/* Greeting or CAPABILITY done: tell who the client is, then log in. */
	if ((be->bc->forward & FORWARD_ID) && be->state != BI_ID) {
		if (imap_send_id(c) < 0) {
			be_fail(c, FAIL_INTERNAL, "backend_command_too_long");
			return -1;
		}
		return 0;
	}
	if (imap_send_login(c) < 0) {
		be_fail(c, be->text[0] ? FAIL_BACKEND_PROTO : FAIL_INTERNAL,
		        be->text[0] ? "backend_login_disabled" : "backend_command_too_long");
		return -1;
	}
	return 0;
}

/* ---- POP3 ---------------------------------------------------------------- */

static bool
pop3_ok(const char *line)
{
	return strncmp(line, "+OK", 3) == 0 && (line[3] == '\0' || line[3] == ' ');
}

static enum fail_class
pop3_err_class(const char *line)
{
	/* RFC 3206 codes after "-ERR ". */
	const char *t = line + 4 + (line[4] == ' ');
	if (strncasecmp(t, "[SYS/TEMP]", 10) == 0)
		return FAIL_BACKEND_DOWN;
	if (strncasecmp(t, "[IN-USE]", 8) == 0)
		return FAIL_LIMIT;
	return FAIL_AUTH;
}

static int
pop3_send_login(struct conn *c)
{
	struct backend *be = c->be;
	struct creds *cr = c->creds;
	char cmd[SASL_MAX_B64 + 16];
	int rc;

	be->creds_sent = true;
	if (be->pop3_sasl_plain) {
		char b64[SASL_MAX_B64];
		size_t n = sasl_plain_encode(cr->user, cr->user_len, cr->secret, cr->secret_len,
		                             b64, sizeof(b64));
		if (n == 0)
			return -1;
		/* RFC 5034 §4: the initial response rides on the AUTH line. */
		n = (size_t)snprintf(cmd, sizeof(cmd), "AUTH PLAIN %s\r\n", b64);
		rc = be_send(be, cmd, n);
		OPENSSL_cleanse(b64, sizeof(b64));
		OPENSSL_cleanse(cmd, sizeof(cmd));
		be->state = BP_AUTH;
		return rc;
	}
	/* USER/PASS: the session refused CR, LF and NUL in both already. */
	rc = buf_printf(&be->tx, "USER %.*s\r\n", (int)cr->user_len, cr->user);
	be->state = BP_USER;
	return rc;
}

static int
pop3_line(struct conn *c, char *line)
{
	struct backend *be = c->be;
	struct creds *cr = c->creds;

	switch (be->state) {
	case BP_GREETING:
		if (!pop3_ok(line)) {
			set_text(be, line);
			be_fail(c, FAIL_BACKEND_PROTO, "backend_bad_greeting");
			return -1;
		}
		health_report(c->rt->health[be->bi], true, NULL, be->bc->rise, be->bc->fall);
		/* Dovecot offers XCLIENT in its greeting's response code
		 * ("+OK [XCLIENT] ..."), not in CAPA, to trusted networks. */
		if (strncasecmp(line, "+OK [XCLIENT]", 13) == 0)
			be->pop3_xclient = true;
		if (be->bc->tls == TLSM_STARTTLS && c->bssl == NULL) {
			be_send(be, "STLS\r\n", 6); /* RFC 2595 §4 */
			be->state = BP_STLS;
			return 0;
		}
		be_send(be, "CAPA\r\n", 6);
		be->state = BP_CAPA_FIRST;
		return 0;
	case BP_STLS:
		if (!pop3_ok(line)) {
			set_text(be, line);
			be_fail(c, FAIL_BACKEND_PROTO, "backend_starttls_refused");
			return -1;
		}
		return be_start_tls(c, BP_CAPA_FIRST);
	case BP_CAPA_FIRST:
		if (pop3_ok(line)) {
			be->state = BP_CAPA_LIST;
			return 0;
		}
		break; /* no CAPA (RFC 1939 server): USER/PASS */
	case BP_CAPA_LIST:
		if (strcmp(line, ".") != 0) {
			if (strncasecmp(line, "XCLIENT", 7) == 0 &&
			    (line[7] == '\0' || line[7] == ' '))
				be->pop3_xclient = true;
			if (strncasecmp(line, "SASL ", 5) == 0) {
				char tmp[BE_LINE_MAX];
				snprintf(tmp, sizeof(tmp), "%s", line + 5);
				for (char *s = NULL, *t = strtok_r(tmp, " ", &s); t != NULL;
				     t = strtok_r(NULL, " ", &s))
					if (strcasecmp(t, "PLAIN") == 0)
						be->pop3_sasl_plain = true;
			}
			return 0;
		}
		if (be->bc->forward & FORWARD_XCLIENT) {
			if (be->pop3_xclient) {
				char pip[64];
				unsigned pport;
				conn_addr_parts(&c->client_sa, pip, sizeof(pip), &pport);
				if (buf_printf(&be->tx,
				               "XCLIENT ADDR=%s PORT=%u SESSION=%016llx\r\n", pip,
				               pport, (unsigned long long)c->id) < 0) {
					be_fail(c, FAIL_INTERNAL, "backend_command_too_long");
					return -1;
				}
				be->state = BP_XCLIENT;
				return 0;
			}
			log_kv(LOG_WARN, "backend.forward",
			       "cid=%016llx backend=%s via=xclient said=\"XCLIENT not offered "
			       "(login_trusted_networks?)\"",
			       (unsigned long long)c->id, be->bc->name);
		}
		break;
	case BP_XCLIENT:
		if (!pop3_ok(line)) {
			char q[LOG_QUOTED_MAX];
			log_kv(LOG_WARN, "backend.forward",
			       "cid=%016llx backend=%s via=xclient said=%s",
			       (unsigned long long)c->id, be->bc->name,
			       log_quote(q, sizeof(q), line, strlen(line)));
		}
		break;
	case BP_AUTH:
		if (line[0] == '+' && line[1] != 'O') {
			/* A server that ignored the initial response asks for it. */
			char b64[SASL_MAX_B64];
			size_t n = sasl_plain_encode(cr->user, cr->user_len, cr->secret,
			                             cr->secret_len, b64, sizeof(b64));
			int rc = n ? buf_printf(&be->tx, "%s\r\n", b64) : -1;
			OPENSSL_cleanse(b64, sizeof(b64));
			if (rc < 0) {
				be_fail(c, FAIL_INTERNAL, "backend_command_too_long");
				return -1;
			}
			return 0;
		}
		/* fall through */
	case BP_PASS:
		if (pop3_ok(line)) {
			set_text(be, line[3] == ' ' ? line + 4 : "");
			be_done(c, FAIL_NONE, be->text);
			return -1;
		}
		set_text(be, line);
		be_fail(c,
		        strncmp(line, "-ERR", 4) == 0 ? pop3_err_class(line) : FAIL_BACKEND_PROTO,
		        "backend_refused_login");
		return -1;
	case BP_USER:
		if (!pop3_ok(line)) {
			set_text(be, line);
			be_fail(c,
			        strncmp(line, "-ERR", 4) == 0 ? pop3_err_class(line)
			                                      : FAIL_BACKEND_PROTO,
			        "backend_refused_login");
			return -1;
		}
		if (buf_printf(&be->tx, "PASS %.*s\r\n", (int)cr->secret_len, cr->secret) < 0) {
			be_fail(c, FAIL_INTERNAL, "backend_command_too_long");
			return -1;
		}
		be->state = BP_PASS;
		return 0;
	default:
		return 0;
	}
	if (pop3_send_login(c) < 0) {
		be_fail(c, FAIL_INTERNAL, "backend_command_too_long");
		return -1;
	}
	return 0;
}

/* ---- I/O --------------------------------------------------------------- */

/*
 * The PROXY header goes first, in the clear even before backend TLS.  The
 * socket has just connected and its send buffer is empty, so the header
 * (at most a few hundred bytes) goes out whole or the link is unusable.
 * Returns 0, or -1 (be_fail called).
 */
static int
be_send_proxy(struct conn *c)
{
	struct backend *be = c->be;
	uint8_t hdr[PP_HEADER_MAX];
	size_t n;
	ssize_t w;

	if (be->bc->forward & FORWARD_PROXY_V2) {
		struct pp_tls_info ti = {0};
		struct pp_tls_info *tip = NULL;
		if (c->ssl != NULL) {
			ti.version = SSL_get_version(c->ssl);
			ti.cipher = SSL_get_cipher_name(c->ssl);
			ti.sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
			tip = &ti;
		}
		n = proxyproto_write_v2(hdr, sizeof(hdr), (const struct sockaddr *)&c->client_sa,
		                        (const struct sockaddr *)&c->local_sa, tip);
	} else {
		n = proxyproto_write_v1((char *)hdr, sizeof(hdr),
		                        (const struct sockaddr *)&c->client_sa,
		                        (const struct sockaddr *)&c->local_sa);
	}
	if (n == 0) {
		set_text(be, "cannot write the PROXY header");
		be_fail(c, FAIL_INTERNAL, "backend_proxy_header_failed");
		return -1;
	}
	do
		w = send(c->bfd, hdr, n, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)n) {
		snprintf(be->text, sizeof(be->text), "PROXY header: %s",
		         w < 0 ? strerror(errno) : "short write");
		be_fail(c, FAIL_BACKEND_DOWN, "backend_write_failed");
		return -1;
	}
	return 0;
}

static void
be_connected(struct conn *c)
{
	struct backend *be = c->be;
	int err = 0;
	socklen_t el = sizeof(err);

	if (getsockopt(c->bfd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
		err = errno;
	if (err != 0) {
		snprintf(be->text, sizeof(be->text), "connect: %s", strerror(err));
		be_fail(c, FAIL_BACKEND_DOWN, "backend_connect_failed");
		return;
	}
	be->state = c->proto->kind == PROTO_IMAP ? BI_GREETING : BP_GREETING;
	conn_set_timeout(c, (ev_tstamp)c->cfg->timeouts.backend_login_ms / 1000.0);
	if ((be->bc->forward & (FORWARD_PROXY_V1 | FORWARD_PROXY_V2)) && be_send_proxy(c) < 0)
		return;
	if (be->bc->tls == TLSM_IMPLICIT) {
		enum be_state greet = be->state;
		(void)be_start_tls(c, greet);
	}
}

/* Complete lines in rx, one at a time, to the protocol's handler. */
static int
be_lines(struct conn *c)
{
	struct backend *be = c->be;
	char line[BE_LINE_MAX + 1];

	while (buf_len(&be->rx) > 0) {
		const uint8_t *h = buf_head(&be->rx);
		const uint8_t *nl = memchr(h, '\n', buf_len(&be->rx));
		size_t l;
		int rc;

		if (nl == NULL) {
			if (buf_space(&be->rx) == 0) {
				set_text(be, "(line too long)");
				be_fail(c, FAIL_BACKEND_PROTO, "backend_line_too_long");
				return -1;
			}
			return 0;
		}
		l = (size_t)(nl - h);
		memcpy(line, h, l);
		buf_consume(&be->rx, l + 1);
		if (l > 0 && line[l - 1] == '\r')
			l--;
		line[l] = '\0';
		if (memchr(line, '\0', l) != NULL) {
			set_text(be, "(NUL in line)");
			be_fail(c, FAIL_BACKEND_PROTO, "backend_bad_line");
			return -1;
		}
		rc = c->proto->kind == PROTO_IMAP ? imap_line(c, line) : pop3_line(c, line);
		OPENSSL_cleanse(line, l);
		if (rc < 0)
			return -1; /* c may be gone */
	}
	return 0;
}

/* Send what is queued until done or the socket is full; returns bytes
 * moved, or -1: failed (be_fail called, c may be gone). */
static ssize_t
be_flush(struct conn *c)
{
	struct backend *be = c->be;
	ssize_t moved = 0;

	while (buf_len(&be->tx) > 0) {
		ssize_t n = conn_backend_write(c, buf_head(&be->tx), buf_len(&be->tx));
		if (n == CIO_AGAIN)
			break;
		if (n <= 0) {
			snprintf(be->text, sizeof(be->text), "send: %s",
			         c->bssl ? "TLS error" : strerror(errno));
			be_fail(c, FAIL_BACKEND_DOWN, "backend_write_failed");
			return -1;
		}
		buf_consume(&be->tx, (size_t)n);
		moved += n;
	}
	return moved;
}

/* Read what the backend sent and hand complete lines on; returns bytes read,
 * or -1 when the dialog ended (c may be gone). */
static ssize_t
be_read(struct conn *c)
{
	struct backend *be = c->be;
	size_t space;
	uint8_t *t = buf_tail(&be->rx, &space);
	ssize_t n;

	if (t == NULL) {
		be_fail(c, FAIL_INTERNAL, "out_of_memory");
		return -1;
	}
	n = conn_backend_read(c, t, space);
	if (n == CIO_AGAIN)
		return 0;
	if (n <= 0) {
		snprintf(be->text, sizeof(be->text), "%s",
		         n == 0    ? "connection closed"
		         : c->bssl ? "TLS error"
		                   : strerror(errno));
		be_fail(c, FAIL_BACKEND_DOWN, "backend_closed");
		return -1;
	}
	buf_produce(&be->rx, (size_t)n);
	if (be_lines(c) < 0)
		return -1;
	return n;
}

void
backend_on_io(struct conn *c, int revents)
{
	struct backend *be = c->be;

	if (be == NULL)
		return;
	if (be->state == BE_CONNECT) {
		if (!(revents & EV_WRITE))
			return;
		be_connected(c);
		if (c->closed || c->be == NULL || c->state != CS_BACKEND)
			return;
	}
	/* Bounded rounds of: handshake, send, read.  Reading goes on until the
	 * socket (and OpenSSL's buffer) is empty: bytes TLS already decrypted
	 * would never wake the loop again. */
	for (int round = 0; round < 32; round++) {
		ssize_t moved = 0, n;

		if (be->state == BE_TLS) {
			char why[256];
			int r = tls_backend_handshake(c, why, sizeof(why));
			if (r < 0) {
				set_text(be, why);
				be_fail(c, FAIL_BACKEND_DOWN, "backend_tls_failed");
				return;
			}
			if (r == 0)
				break;
			log_kv(LOG_DEBUG, "backend.tls", "cid=%016llx backend=%s version=%s",
			       (unsigned long long)c->id, be->bc->name, SSL_get_version(c->bssl));
			be_tls_done(c);
			moved = 1;
		}
		if ((n = be_flush(c)) < 0)
			return;
		moved += n;
		if (buf_len(&be->tx) == 0) {
			if ((n = be_read(c)) < 0)
				return; /* c may be gone */
			moved += n;
		}
		if (moved == 0)
			break;
	}
	conn_update_io(c);
}

const char *
backend_ok_text(const struct conn *c)
{
	const struct backend *be = c->be;

	if (be == NULL)
		return "";
	if (c->proto->kind == PROTO_IMAP)
		return be->have_caps ? be->caps : "IMAP4rev1";
	return be->text;
}

void
backend_on_timeout(struct conn *c)
{
	struct backend *be = c->be;

	if (be == NULL)
		return;
	if (be->state == BE_DONE) {
		/* Logged in, but the policy did not answer in time. */
		policy_req_cancel(&c->preq);
		set_text(be, "no policy answer in time");
		be_fail(c, FAIL_INTERNAL, "policy_timeout");
		return;
	}
	snprintf(be->text, sizeof(be->text), "%s",
	         be->state == BE_CONNECT ? "connect timeout" : "no answer in time");
	be_fail(c, FAIL_BACKEND_DOWN,
	        be->state == BE_CONNECT ? "backend_connect_timeout" : "backend_timeout");
}
