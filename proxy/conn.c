/*
 * conn.c: the connection object: accept to close, the PROXY header, the
 * client's TLS handshake, the pre-auth read/parse/write pump, STARTTLS,
 * the state table with each state's timeout, and the two-step close.
 * Protocol talk lives in imap_session.c / pop3_session.c, the login in
 * login.c, the backend in backend.c, the relay in relay.c.  Never blocks;
 * one conn costs one connection, never the process.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "registry.h"
#include "log.h"
#include "login.h"
#include "lookup.h"
#include "proxyproto.h"
#include "runtime.h"
#include "tls.h"
#include "worker.h"

#define CLOSING_LINGER_MS 5000 /* to flush last words before closing */

/* Each state's name and timeout (ms, from the conn's config; 0: none). */
struct state_info {
	const char *name;
	uint64_t (*timeout_ms)(const struct config *cfg);
};

static uint64_t
to_handshake(const struct config *cfg)
{
	return cfg->timeouts.handshake_ms;
}

static uint64_t
to_login(const struct config *cfg)
{
	return cfg->timeouts.login_ms;
}

static uint64_t
to_policy(const struct config *cfg)
{
	/* The backend keeps its own deadlines; the policy's answer may take
	 * at most what a backend login may. */
	return cfg->timeouts.backend_login_ms;
}

static uint64_t
to_idle(const struct config *cfg)
{
	return cfg->timeouts.idle_ms;
}

static uint64_t
to_linger(const struct config *cfg)
{
	(void)cfg;
	return CLOSING_LINGER_MS;
}

static const struct state_info states[] = {
    [CS_PROXY] = {"proxy", to_handshake},  [CS_TLS_ACCEPT] = {"tls_accept", to_handshake},
    [CS_PREAUTH] = {"preauth", to_login},  [CS_BACKEND] = {"backend", NULL},
    [CS_POLICY] = {"policy", to_policy},   [CS_RELAY] = {"relay", to_idle},
    [CS_CLOSING] = {"closing", to_linger},
};
_Static_assert(sizeof(states) / sizeof(states[0]) == CS__COUNT, "states must list every state");

static void client_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void backend_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void delay_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void conn_run(struct conn *c);
static void conn_watch(struct conn *c);
static void starttls_begin(struct conn *c);
static int conn_begin(struct conn *c);

const char *
conn_state_name(enum conn_state st)
{
	return (unsigned)st < CS__COUNT ? states[st].name : "?";
}

void
conn_set_state(struct conn *c, enum conn_state st)
{
	uint64_t ms = states[st].timeout_ms ? states[st].timeout_ms(c->cfg) : 0;

	if (c->state != st && log_get_level() <= LOG_DEBUG)
		log_kv(LOG_DEBUG, "conn.state", "cid=%016llx state=%s->%s",
		       (unsigned long long)c->id, conn_state_name(c->state), conn_state_name(st));
	c->state = st;
	if (st == CS_PREAUTH)
		c->last_active = ev_now(c->w->loop); /* quiet counts from the greeting */
	ev_timer_stop(c->w->loop, &c->timer);
	if (ms > 0) {
		ev_tstamp s = (ev_tstamp)ms / 1000.0;
		/* A held (tarpit) answer still goes out: linger past its delay. */
		if (st == CS_CLOSING && c->tarpit)
			s += ev_timer_remaining(c->w->loop, &c->delay);
		ev_timer_set(&c->timer, s, s);
		ev_timer_start(c->w->loop, &c->timer);
	}
	conn_watch(c);
}

struct conn *
conn_new(struct worker *w, size_t li, int fd, const struct sockaddr *sa, socklen_t salen)
{
	const struct listener_conf *lc;
	struct conn *c;
	socklen_t ll;
	int one = 1;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return NULL;
	}
	/* The config and TLS of the moment, kept for the whole session. */
	c->rt = runtime_get();
	c->cfg = c->rt->cfg;
	c->li = li;
	c->lc = lc = &c->cfg->listeners[li];
	c->w = w;
	c->proto = lc->proto == PROTO_IMAP   ? &imap_proto_ops
	           : lc->proto == PROTO_POP3 ? &pop3_proto_ops
	                                     : &sieve_proto_ops;
	c->id = hash_splitmix64(&w->cid_state);
	c->started = ev_now(w->loop);
	link_init(&c->cl, w->loop, fd, client_io_cb);
	link_init(&c->bl, w->loop, -1, backend_io_cb);
	if (salen <= sizeof(c->client_sa))
		memcpy(&c->client_sa, sa, salen);
	ll = sizeof(c->local_sa);
	if (getsockname(fd, (struct sockaddr *)&c->local_sa, &ll) < 0)
		memset(&c->local_sa, 0, sizeof(c->local_sa));
	addr_format(sa, c->peer, sizeof(c->peer));
	buf_init(&c->in, CONN_BUF_SIZE, true); /* pre-auth input holds passwords */
	buf_init(&c->out, CONN_OUT_SIZE, false);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_init(&c->timer, timer_cb);
	ev_init(&c->delay, delay_cb);

	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;

	if (lc->proxy_protocol) {
		/* Only the load balancers named in trusted may tell us who the
		 * client is; anyone else could claim any address. */
		if (!policy_proxy_trusted(lc, sa, salen)) {
			log_kv(LOG_WARN, "proxy.refused", "cid=%016llx lst=%s peer=%s",
			       (unsigned long long)c->id, lc->name, c->peer);
			conn_close(c, CLOSE_PROXY_UNTRUSTED);
			return NULL;
		}
		c->pp = calloc(1, sizeof(*c->pp));
		if (c->pp == NULL) {
			conn_close(c, CLOSE_OUT_OF_MEMORY);
			return NULL;
		}
		proxyproto_init(c->pp);
		conn_set_state(c, CS_PROXY);
		conn_run(c);
		return c;
	}
	return conn_begin(c) < 0 ? NULL : c;
}

/* After accept, or after the PROXY header: TLS or the plaintext greeting.
 * -1 when c was closed. */
static int
conn_begin(struct conn *c)
{
	const struct listener_conf *lc = c->lc;
	enum policy_verdict v;
	enum policy_reason why;

	/* Logged here, after any PROXY header: client= is the real client. */
	log_kv(LOG_INFO, "session.start", "cid=%016llx proto=%s lst=%s client=%s tls=%s",
	       (unsigned long long)c->id, proto_name(lc->proto), lc->name, c->peer,
	       lc->tls == TLSM_IMPLICIT ? "implicit" : "starttls");
	v = policy_accept(c->w->policy, (const struct sockaddr *)&c->client_sa,
	                  sizeof(c->client_sa), &c->pc, &why);
	if (v != POLICY_ALLOW) {
		metrics_refused(&c->w->metrics, v);
		/* A proper refusal, after the TLS handshake when there is one. */
		log_kv(LOG_INFO, "policy.deny", "cid=%016llx client=%s verdict=%s reason=%s",
		       (unsigned long long)c->id, c->peer, policy_verdict_name[v],
		       policy_reason_name(why));
		c->refuse = fail_class_of_verdict(v, false);
	}
	if (lc->tls == TLSM_IMPLICIT) {
		if (link_tls_server(&c->cl, tls_state_server_ctx(c->rt->tls, c->li)) < 0) {
			conn_close(c, CLOSE_TLS_SETUP_FAILED);
			return -1;
		}
		conn_set_state(c, CS_TLS_ACCEPT);
		conn_run(c);
		return c->closed ? -1 : 0;
	}
	/* STARTTLS listener: greet in plaintext. */
	if (c->refuse != FAIL_NONE) {
		c->proto->bye(c, fail_reply_text(c->refuse, lc->proto));
		conn_close_after(c, CLOSE_POLICY_REFUSED);
		return c->closed ? -1 : 0;
	}
	if (c->proto->start(c) < 0) {
		conn_close(c, CLOSE_INTERNAL_ERROR);
		return -1;
	}
	conn_set_state(c, CS_PREAUTH);
	conn_run(c);
	return c->closed ? -1 : 0;
}

/*
 * Read the PROXY header without taking a byte of what follows (a TLS
 * ClientHello): each read asks for no more than proxyproto_want() says
 * the header can still hold.
 */
static void
proxy_run(struct conn *c)
{
	struct pp_parser *p = c->pp;

	for (int i = 0; i < PP_V1_MAX + 4; i++) {
		uint8_t b[PP_HEADER_MAX];
		size_t want, used = 0;
		struct pp_result res;
		enum pp_rc rc;
		ssize_t n;

		want = proxyproto_want(p); /* never past the header */
		if (want == 0 || want > sizeof(b))
			want = 1;
		n = link_read(&c->cl, b, want);
		if (n == LINK_AGAIN) {
			link_watch(&c->cl, c->cl.rd_wants);
			return;
		}
		if (n <= 0) {
			conn_close(c, n == 0 ? CLOSE_CLIENT_CLOSED : CLOSE_CLIENT_READ_ERROR);
			return;
		}
		c->bytes_in += (uint64_t)n;
		rc = proxyproto_parse(p, b, (size_t)n, &used, &res);
		if (rc == PP_MORE)
			continue;
		if (rc == PP_BAD) {
			log_kv(LOG_WARN, "proxy.bad", "cid=%016llx lst=%s peer=%s reason=\"%s\"",
			       (unsigned long long)c->id, c->lc->name, c->peer,
			       res.error ? res.error : "malformed");
			conn_close(c, CLOSE_PROXY_HEADER_BAD);
			return;
		}
		/* PP_DONE: the real client, unless the balancer spoke for itself. */
		if (!res.local && res.srclen > 0 && res.srclen <= sizeof(c->client_sa)) {
			char was[ADDR_TEXT_MAX];
			snprintf(was, sizeof(was), "%s", c->peer);
			memcpy(&c->client_sa, &res.src, res.srclen);
			if (res.dstlen > 0 && res.dstlen <= sizeof(c->local_sa))
				memcpy(&c->local_sa, &res.dst, res.dstlen);
			addr_format((const struct sockaddr *)&c->client_sa, c->peer,
			            sizeof(c->peer));
			log_kv(LOG_INFO, "proxy.header", "cid=%016llx lst=%s client=%s via=%s v=%d",
			       (unsigned long long)c->id, c->lc->name, c->peer, was, res.version);
		}
		free(c->pp);
		c->pp = NULL;
		(void)conn_begin(c);
		return;
	}
	conn_close(c, CLOSE_PROXY_HEADER_BAD);
}

/* The client watcher outside the relay (which watches both links itself). */
static void
conn_watch(struct conn *c)
{
	int ev = 0;

	if (c->closed)
		return;
	switch (c->state) {
	case CS_PROXY:
	case CS_TLS_ACCEPT:
		ev = c->cl.rd_wants;
		break;
	case CS_PREAUTH:
		/* Neither answer nor read while a failed login's delay runs. */
		if (!c->tarpit)
			ev = buf_len(&c->out) > 0 ? c->cl.wr_wants : c->cl.rd_wants;
		break;
	case CS_BACKEND:
	case CS_POLICY:
		ev = buf_len(&c->out) > 0 && !c->tarpit ? c->cl.wr_wants : 0;
		break;
	case CS_CLOSING:
		ev = c->tarpit ? 0 : c->cl.wr_wants;
		break;
	case CS_RELAY:
	case CS__COUNT:
		return;
	}
	link_watch(&c->cl, ev);
}

/* Write c->out to the client until done or the socket is full.  -1 when
 * the connection failed (and was closed). */
static int
flush_out(struct conn *c)
{
	if (c->tarpit)
		return 0; /* a failed login's answer waits for its delay */
	while (buf_len(&c->out) > 0) {
		ssize_t n = link_write(&c->cl, buf_head(&c->out), buf_len(&c->out));
		if (n == LINK_AGAIN)
			return 0;
		if (n <= 0) {
			conn_close(c, CLOSE_CLIENT_WRITE_ERROR);
			return -1;
		}
		c->bytes_out += (uint64_t)n;
		buf_consume(&c->out, (size_t)n);
	}
	return 0;
}

/* Flush, and close once a closing conn's last words are out. */
static void
conn_flush(struct conn *c)
{
	if (flush_out(c) < 0)
		return;
	if (c->state == CS_CLOSING && buf_len(&c->out) == 0) {
		conn_close(c, c->close_reason);
		return;
	}
	conn_watch(c);
}

void
conn_close_after(struct conn *c, enum close_reason reason)
{
	if (c->closed)
		return;
	c->close_reason = reason;
	conn_set_state(c, CS_CLOSING);
	conn_flush(c);
}

static void
delay_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn *c = container_of(t, struct conn, delay);

	(void)loop;
	(void)revents;
	c->tarpit = false;
	if (!c->closed)
		conn_run(c); /* the held answer goes out, then input again */
}

void
conn_hold(struct conn *c, uint64_t ms)
{
	if (ms == 0 || c->closed)
		return;
	c->tarpit = true;
	ev_timer_stop(c->w->loop, &c->delay);
	ev_timer_set(&c->delay, (ev_tstamp)ms / 1000.0, 0.);
	ev_timer_start(c->w->loop, &c->delay);
	conn_watch(c);
}

/* Pre-auth: flush replies, parse what came, read more; the client must
 * read our replies before we read its next commands (nginx's s->blocked). */
static void
preauth_run(struct conn *c)
{
	/* An ending conn (drain, kick) goes on too: conn_end_sweep() says BYE
	 * once it is quiet, so a login under way is not cut. */
	for (int round = 0; round < 64; round++) {
		size_t space;
		uint8_t *t;
		ssize_t n;

		if (flush_out(c) < 0)
			return;
		if (buf_len(&c->out) > 0 || c->tarpit)
			break;
		if (c->starttls_pending) {
			starttls_begin(c);
			return;
		}
		if (buf_len(&c->in) > 0) {
			c->proto->on_input(c);
			if (c->closed || c->state != CS_PREAUTH)
				return; /* c may be closing or logging in */
			if (buf_len(&c->out) > 0)
				continue;
		}
		t = buf_tail(&c->in, &space);
		if (t == NULL) {
			conn_close(c, CLOSE_OUT_OF_MEMORY);
			return;
		}
		n = link_read(&c->cl, t, space);
		if (n == LINK_AGAIN) {
			/* Nothing came: an idle client holds no input buffer. */
			if (buf_len(&c->in) == 0)
				buf_consume(&c->in, 0);
			break;
		}
		if (n <= 0) {
			conn_close(c, n == 0 ? CLOSE_CLIENT_CLOSED : CLOSE_CLIENT_READ_ERROR);
			return;
		}
		buf_produce(&c->in, (size_t)n);
		c->bytes_in += (uint64_t)n;
		c->last_active = ev_now(c->w->loop);
	}
	conn_watch(c);
}

void
conn_starttls(struct conn *c)
{
	c->starttls_pending = true;
}

static void
starttls_begin(struct conn *c)
{
	c->starttls_pending = false;
	if (buf_len(&c->in) > 0) {
		/* RFC 3207 §4.2 / RFC 2595 §3.1: nothing sent before the handshake
		 * may be taken as a command after it. */
		log_kv(LOG_INFO, "starttls.pipelined_dropped", "cid=%016llx client=%s bytes=%zu",
		       (unsigned long long)c->id, c->peer, buf_len(&c->in));
		buf_reset(&c->in);
	}
	if (link_tls_server(&c->cl, tls_state_server_ctx(c->rt->tls, c->li)) < 0) {
		conn_close(c, CLOSE_TLS_SETUP_FAILED);
		return;
	}
	c->starttls_done = true;
	conn_set_state(c, CS_TLS_ACCEPT);
	conn_run(c);
}

static void
tls_accept_run(struct conn *c)
{
	char why[256];
	int r = link_handshake(&c->cl, why, sizeof(why));

	if (r == 0) {
		conn_watch(c);
		return;
	}
	if (r < 0) {
		log_kv(LOG_INFO, "tls.fail", "cid=%016llx client=%s reason=\"%s\"",
		       (unsigned long long)c->id, c->peer, why);
		conn_close(c, CLOSE_TLS_HANDSHAKE_FAILED);
		return;
	}
	metrics_tls_done(&c->w->metrics, c->li, SSL_session_reused(c->cl.ssl) == 1);
	if (log_get_level() <= LOG_DEBUG) {
		const char *sn = SSL_get_servername(c->cl.ssl, TLSEXT_NAMETYPE_host_name);
		char qsn[LOG_QUOTED_MAX];
		log_kv(LOG_DEBUG, "tls.ok", "cid=%016llx version=%s cipher=%s sni=%s reused=%d",
		       (unsigned long long)c->id, SSL_get_version(c->cl.ssl),
		       SSL_get_cipher_name(c->cl.ssl),
		       sn ? log_quote(qsn, sizeof(qsn), sn, strlen(sn)) : "-",
		       SSL_session_reused(c->cl.ssl));
	}
	if (c->refuse != FAIL_NONE) {
		c->proto->bye(c, fail_reply_text(c->refuse, c->lc->proto));
		conn_close_after(c, CLOSE_POLICY_REFUSED);
		return;
	}
	/* After STARTTLS there is no second greeting (RFC 2595 §3.1), except
	 * ManageSieve's capabilities (RFC 5804 §2.2). */
	if (!c->starttls_done && c->proto->start(c) < 0) {
		conn_close(c, CLOSE_INTERNAL_ERROR);
		return;
	}
	if (c->starttls_done && c->proto->tls_started != NULL)
		c->proto->tls_started(c);
	conn_set_state(c, CS_PREAUTH);
	preauth_run(c);
}

/* Hand the bytes moved since the last call to the metrics (during the
 * relay after each run, so a long session shows as it goes). */
static void
count_bytes(struct conn *c)
{
	uint64_t in = c->bytes_in + c->relay.up_bytes, out = c->bytes_out + c->relay.down_bytes;

	metrics_bytes(&c->w->metrics, c->lc->proto, in - c->counted_in, out - c->counted_out);
	c->counted_in = in;
	c->counted_out = out;
}

static void
relay_step(struct conn *c)
{
	enum close_reason why;
	enum relay_rc rc = relay_run(&c->relay, &why);

	count_bytes(c);
	if (rc == RELAY_END) {
		conn_close(c, why);
		return;
	}
	if (c->relay.moved) {
		ev_timer_again(c->w->loop, &c->timer); /* idle timeout counts from now */
		c->last_active = ev_now(c->w->loop);
	}
	if (rc == RELAY_MORE)
		ev_feed_event(c->w->loop, &c->cl.io, EV_READ);
}

void
conn_relay_start(struct conn *c)
{
	if (backend_hand_over(c->be, &c->bl, backend_io_cb, &c->out) < 0) {
		conn_close(c, CLOSE_BACKEND_SENT_TOO_MUCH);
		return;
	}
	/* Counted once, in the backend's record: the admin socket and the
	 * metrics both read it there. */
	c->be_reg = backend_reg(c->be);
	registry_sessions_add(c->be_reg, c->lc->proto, 1);
	backend_free(&c->be);
	c->logged_in = true;
	c->last_active = ev_now(c->w->loop);
	/* The credentials are gone from c->in: what the client sends from now
	 * on is its mail session, relayed without a wipe on every drain. */
	buf_stop_wiping(&c->in);
	relay_init(&c->relay, c->lc->proto, c->lc->compress == COMPRESS_STRIP, &c->cl, &c->bl,
	           &c->in, &c->out);
	conn_set_state(c, CS_RELAY);
	relay_step(c);
}

void
conn_names_changed(struct conn *c)
{
	conn_index_set(&c->w->by_user, c, c->user);
	conn_index_set(&c->w->by_backend, c, c->backend_name);
}

void
conn_resume(struct conn *c)
{
	if (!c->closed)
		conn_run(c);
}

static void
conn_run(struct conn *c)
{
	switch (c->state) {
	case CS_PROXY:
		proxy_run(c);
		break;
	case CS_TLS_ACCEPT:
		tls_accept_run(c);
		break;
	case CS_PREAUTH:
		preauth_run(c);
		break;
	case CS_BACKEND:
	case CS_POLICY:
	case CS_CLOSING:
		conn_flush(c);
		break;
	case CS_RELAY:
		relay_step(c);
		break;
	case CS__COUNT:
		break;
	}
}

static void
client_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = container_of(io, struct conn, cl.io);

	(void)loop;
	(void)revents;
	if (!c->closed)
		conn_run(c);
}

static void
backend_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = container_of(io, struct conn, bl.io);

	(void)loop;
	(void)revents;
	if (!c->closed && c->state == CS_RELAY)
		relay_step(c);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn *c = container_of(t, struct conn, timer);

	(void)loop;
	(void)revents;
	if (c->closed)
		return;
	switch (c->state) {
	case CS_PROXY:
		conn_close(c, CLOSE_PROXY_HEADER_TIMEOUT);
		break;
	case CS_TLS_ACCEPT:
		conn_close(c, CLOSE_HANDSHAKE_TIMEOUT);
		break;
	case CS_PREAUTH:
		c->proto->bye(c, "Login timeout, closing connection");
		conn_close_after(c, CLOSE_LOGIN_TIMEOUT);
		break;
	case CS_POLICY:
		login_policy_timeout(c);
		break;
	case CS_RELAY:
		conn_close(c, CLOSE_IDLE_TIMEOUT);
		break;
	case CS_BACKEND: /* the backend keeps its own deadlines */
	case CS_CLOSING:
	case CS__COUNT:
		conn_close(c, c->close_reason);
		break;
	}
}

void
conn_close(struct conn *c, enum close_reason reason)
{
	struct worker *w = c->w;
	char quser[LOG_QUOTED_MAX];
	double ms;

	if (c->closed)
		return;
	c->closed = true;
	count_bytes(c);
	ev_timer_stop(w->loop, &c->timer);
	ev_timer_stop(w->loop, &c->delay);
	policy_req_cancel(&c->preq);
	lookup_cancel(&c->lreq);
	if (c->session_live) {
		policy_session_end_sid(w->pw, c->key, c->key_len, c->lc->proto, c->id);
		c->session_live = false;
	}
	policy_conn_closed(w->policy, &c->pc);
	registry_sessions_add(c->be_reg, c->lc->proto, -1);
	c->be_reg = NULL;
	if (c->ending) {
		if (c->end_prev != NULL)
			c->end_prev->end_next = c->end_next;
		else
			w->ending = c->end_next;
		if (c->end_next != NULL)
			c->end_next->end_prev = c->end_prev;
		c->end_next = c->end_prev = NULL;
		worker_end_done(w);
	}
	conn_index_remove(&w->by_user, c);
	conn_index_remove(&w->by_backend, c);
	backend_free(&c->be);
	if (c->sess != NULL)
		c->proto->free_sess(c);
	free(c->pp);
	c->pp = NULL;
	creds_free(&c->creds);
	link_close(&c->cl);
	link_close(&c->bl);
	buf_deinit(&c->in);
	buf_deinit(&c->out);

	ms = (ev_now(w->loop) - c->started) * 1000.0;
	log_kv(LOG_INFO, "session.end",
	       "cid=%016llx proto=%s lst=%s client=%s user=%s backend=%s reason=%s in=%llu "
	       "out=%llu ms=%.0f",
	       (unsigned long long)c->id, proto_name(c->lc->proto), c->lc->name, c->peer,
	       log_quote(quser, sizeof(quser), c->user, strlen(c->user)),
	       c->backend_name ? c->backend_name : "-", close_reason_name(reason),
	       (unsigned long long)(c->bytes_in + c->relay.up_bytes),
	       (unsigned long long)(c->bytes_out + c->relay.down_bytes), ms);

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	w->nconns--;
	c->reap_next = w->reap;
	w->reap = c;
}

/* ---- ending sessions politely (SIGTERM, kick) ---------------------------- */

static void
end_preauth(struct conn *c)
{
	c->proto->bye(c, close_bye_text(c->end_reason, c->lc->proto));
	conn_close_after(c, c->end_reason);
}

/* A relayed session at a quiet moment: the backend link goes (IMAP
 * sessions there end as a client that vanished), the client gets BYE
 * (RFC 9051 §7.1.5: the server may send it between any two responses;
 * RFC 5804 §1.3: ManageSieve's BYE, which ends the connection) or,
 * POP3, which has no word for it, and a compressed stream, which no byte
 * of ours may enter, the close. */
static void
end_relay(struct conn *c)
{
	link_close(&c->bl);
	if (c->lc->proto != PROTO_POP3 && !relay_opaque(&c->relay))
		c->proto->bye(c, close_bye_text(c->end_reason, c->lc->proto));
	conn_close_after(c, c->end_reason);
}

void
conn_end_politely(struct conn *c, enum close_reason reason, double after_s, double deadline_s)
{
	ev_tstamp now = ev_now(c->w->loop);

	if (c->closed || c->ending || c->state == CS_CLOSING)
		return;
	c->ending = true;
	c->end_reason = reason;
	c->end_after = now + (after_s > 0 ? after_s : 0);
	c->end_deadline = now + (deadline_s > 0 ? deadline_s : 0);
	/* The sweep looks at these only, not at every conn of the worker. */
	c->end_prev = NULL;
	c->end_next = c->w->ending;
	if (c->w->ending != NULL)
		c->w->ending->end_prev = c;
	c->w->ending = c;
	worker_end_started(c->w);
	/* Nothing is cut at once: a handshake or a login under way finishes
	 * (an upgrade's new postern is already accepting, so a client that
	 * is told BYE mid-login has to start over); conn_end_sweep() ends
	 * the session at its next quiet moment, the deadline at the latest. */
}

void
conn_end_sweep(struct worker *w)
{
	ev_tstamp now = ev_now(w->loop);
	struct conn *next;
	uint64_t visited = 0;
	bool quiet;

	for (struct conn *c = w->ending; c != NULL; c = next) {
		next = c->end_next; /* closing c unlinks c only */
		visited++;
		if (c->closed || c->state == CS_CLOSING)
			continue;
		if (now >= c->end_deadline) {
			conn_close(c, c->end_reason);
			continue;
		}
		quiet = now - c->last_active >= (ev_tstamp)c->cfg->timeouts.drain_quiet_ms / 1000.0;
		/* Pre-auth: once the client stopped sending and has every reply
		 * (it is not mid-login); no spread, it holds no session yet. */
		if (c->state == CS_PREAUTH && quiet && buf_len(&c->out) == 0 && !c->tarpit) {
			end_preauth(c);
			continue;
		}
		if (c->state != CS_RELAY || now < c->end_after)
			continue;
		/* Between two whole responses with nothing in flight either
		 * way; a compressed stream cannot tell, so it waits for both
		 * sides to be silent with nothing buffered. */
		if (quiet &&
		    (relay_opaque(&c->relay) ? relay_idle(&c->relay) : relay_at_rest(&c->relay)))
			end_relay(c);
	}
	metrics_sweep_visited(&w->metrics, visited);
}

void
conn_reap(struct worker *w)
{
	while (w->reap != NULL) {
		struct conn *c = w->reap;
		w->reap = c->reap_next;
		runtime_unref(&c->rt);
		free(c);
	}
}
