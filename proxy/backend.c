/*
 * backend.c: connecting to a user's backend and running the login dialog
 * as its client, without blocking.  Connect, failover to the next
 * candidate, the PROXY header, TLS, line splitting and deadlines are here;
 * what is said is in backend_imap.c / backend_pop3.c.  Reports once through
 * req.done and never touches the client connection.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "addr.h"
#include "backend_impl.h"
#include "dynback.h"
#include "registry.h"
#include "log.h"
#include "policy.h"
#include "proxyproto.h"
#include "runtime.h"
#include "tls.h"

#define BE_ROUNDS 32 /* bounded work per wakeup */

static void be_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void be_timer_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void be_run(struct backend *be);
static void be_report(struct backend *be, enum fail_class fc, enum login_reason why);
static int be_connect_next(struct backend *be);

void
creds_free(struct creds **cp)
{
	if (*cp == NULL)
		return;
	if ((*cp)->token != NULL) {
		OPENSSL_cleanse((*cp)->token, (*cp)->token_len + 1);
		free((*cp)->token);
	}
	OPENSSL_cleanse(*cp, sizeof(**cp));
	free(*cp);
	*cp = NULL;
}

const char *
backend_oauth_error(const struct backend *be)
{
	return be->oauth_err[0] != '\0' ? be->oauth_err : NULL;
}

const char *
backend_name(const struct backend *be)
{
	return be->bc != NULL ? be->bc->name : "-";
}

struct registry_entry *
backend_reg(const struct backend *be)
{
	return be->reg;
}

const char *
backend_ok_text(const struct backend *be)
{
	return be->dialog->ok_text(be);
}

static const struct config *
be_cfg(const struct backend *be)
{
	return be->req.rt->cfg;
}

static void
be_arm(struct backend *be, uint64_t ms)
{
	ev_timer_stop(be->req.loop, &be->timer);
	if (ms > 0) {
		ev_timer_set(&be->timer, (ev_tstamp)ms / 1000.0, 0.);
		ev_timer_start(be->req.loop, &be->timer);
	}
}

/* Watch what the state waits for. */
static void
be_watch(struct backend *be)
{
	int ev;

	switch (be->state) {
	case BE_CONNECT:
		ev = EV_WRITE;
		break;
	case BE_TLS:
		ev = be->link.rd_wants;
		break;
	case BE_DIALOG:
		ev = buf_len(&be->tx) > 0 ? be->link.wr_wants : be->link.rd_wants;
		break;
	default:
		ev = 0;
		break;
	}
	link_watch(&be->link, ev);
}

void
backend_set_text(struct backend *be, const char *s)
{
	size_t n = strnlen(s, sizeof(be->text) - 1);

	memcpy(be->text, s, n);
	be->text[n] = '\0';
}

int
backend_send(struct backend *be, const char *s, size_t len)
{
	return buf_append(&be->tx, s, len);
}

int
backend_printf(struct backend *be, const char *fmt, ...)
{
	char line[BE_TX_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n = n < 0 || (size_t)n >= sizeof(line) ? -1 : buf_append(&be->tx, line, (size_t)n);
	OPENSSL_cleanse(line, sizeof(line)); /* may have held a password */
	return n;
}

int
backend_sent(struct backend *be, int rc)
{
	if (rc < 0) {
		backend_fail(be, FAIL_INTERNAL, LR_BACKEND_COMMAND_TOO_LONG);
		return -1;
	}
	return 0;
}

void
backend_greeted(struct backend *be)
{
	registry_report(be->reg, true, NULL, be->bc->rise, be->bc->fall);
}

void
backend_forward_failed(struct backend *be, const char *via, const char *said)
{
	char q[LOG_QUOTED_MAX];

	log_kv(LOG_WARN, "backend.forward", "cid=%016llx backend=%s via=%s said=%s",
	       (unsigned long long)be->req.cid, be->bc->name, via,
	       log_quote(q, sizeof(q), said, strlen(said)));
}

int
backend_xclient(struct backend *be, bool offered, int step)
{
	char pip[64];
	unsigned pport;

	if (!offered) {
		backend_forward_failed(be, "xclient",
		                       "XCLIENT not offered (login_trusted_networks?)");
		return 0;
	}
	addr_parts((const struct sockaddr *)be->req.client_sa, pip, sizeof(pip), &pport);
	be->step = step;
	return backend_sent(be, backend_printf(be, "XCLIENT ADDR=%s PORT=%u SESSION=%016llx\r\n",
	                                       pip, pport, (unsigned long long)be->req.cid)) < 0
	           ? -1
	           : 1;
}

/*
 * Connect to the next candidate that is up, from be->icand on.  Returns 0
 * when a connection is under way, -1 when none is left.  A synchronous
 * refusal marks the backend and moves on.
 */
static int
be_connect_next(struct backend *be)
{
	const struct config *cfg = be_cfg(be);
	enum proto_kind pk = be->req.proto;

	for (; be->icand < be->ncand; be->icand++) {
		size_t ci = be->cand[be->icand];
		bool dyn = ci == BE_CAND_DYN;
		const struct backend_conf *bc = dyn ? &be->req.pin_dyn->bc : &cfg->backends[ci];
		struct registry_entry *reg = dyn ? be->req.pin_dyn->reg : be->req.rt->reg[ci];

		/* Skip the dead, and what the operator drained: the next in this
		 * user's own order.  None left: "[UNAVAILABLE]", as when all are
		 * down.  A backend named by address has no active check to see it
		 * come back: only the operator's state keeps logins away. */
		if (dyn ? registry_admin(reg) != BACKEND_READY : !registry_takes_logins(reg))
			continue;
		be->bc = bc;
		be->reg = reg;
		be->ctx = dyn ? tls_state_dyn_ctx(be->req.rt->tls)
		              : tls_state_backend_ctx(be->req.rt->tls, ci);
		be->state = BE_CONNECT;
		be->creds_sent = false;
		buf_reset(&be->rx);
		buf_reset(&be->tx);
		buf_reset(&be->later);
		be->nsegs = 0;
		be->have_caps = be->oauth_dummy = false;
		memset(&be->caps, 0, sizeof(be->caps)); /* and the POP3 CAPA */
		memset(&be->capa, 0, sizeof(be->capa));
		be->oauth_err[0] = '\0';
		be->text[0] = '\0';
		if (link_connect(&be->link, (const struct sockaddr *)&bc->addr[pk],
		                 bc->addrlen[pk]) == 0) {
			be_arm(be, cfg->timeouts.backend_connect_ms);
			be_watch(be);
			return 0;
		}
		snprintf(be->text, sizeof(be->text), "connect: %s", strerror(errno));
		log_kv(LOG_WARN, "backend.fail", "cid=%016llx backend=%s reason=%s said=\"%s\"",
		       (unsigned long long)be->req.cid, bc->name,
		       login_reason_name(LR_BACKEND_CONNECT_FAILED), be->text);
		registry_report(reg, false, be->text, bc->rise, bc->fall);
		registry_connect_error(reg);
	}
	return -1;
}

/* Candidates for the user: the store's backend (if it names one this
 * config knows), else the config's rules; then connect.  0, or -1 with
 * *fc_out and *why_out. */
static int
be_route(struct backend *be, const char *store_backend, enum fail_class *fc_out,
         enum login_reason *why_out)
{
	const struct config *cfg = be_cfg(be);
	const struct backend_req *req = &be->req;
	size_t k = 0;

	be->ncand = 0;
	if (store_backend != NULL) {
		int64_t i = config_backend_find(cfg, store_backend);

		if (i >= 0) {
			be->cand[0] = (size_t)i;
			be->ncand = 1;
		} else {
			char q[LOG_QUOTED_MAX];

			log_kv(LOG_WARN, "route.unknown_backend",
			       "cid=%016llx backend=%s note=\"the store names a backend this "
			       "config lacks: config rules used\"",
			       (unsigned long long)req->cid,
			       log_quote(q, sizeof(q), store_backend, strlen(store_backend)));
		}
	}
	if (be->ncand == 0 && req->pinned) {
		/* the lookup's answer: that backend alone */
		be->cand[0] = req->pin_dyn != NULL ? BE_CAND_DYN : req->pin_index;
		be->ncand = 1;
	}
	if (be->ncand == 0)
		be->ncand =
		    route_lookup(cfg->routes, req->key, req->key_len, be->cand, ROUTE_POOL_MAX);
	/* A backend without a port for this protocol cannot take the user. */
	for (size_t i = 0; i < be->ncand; i++)
		if (be->cand[i] == BE_CAND_DYN || cfg->backends[be->cand[i]].port[req->proto] != 0)
			be->cand[k++] = be->cand[i];
	be->ncand = k;
	if (be->ncand == 0) {
		*fc_out = FAIL_BACKEND_DOWN;
		*why_out = LR_NO_ROUTE;
		return -1;
	}
	if (be->cand[0] == BE_CAND_DYN) {
		be->bc = &req->pin_dyn->bc;
		be->reg = req->pin_dyn->reg;
	} else {
		be->bc = &cfg->backends[be->cand[0]];
		be->reg = req->rt->reg[be->cand[0]];
	}
	be->state = BE_CONNECT;
	if (be_connect_next(be) < 0) {
		/* Every candidate is down: say so at once, not after a timeout. */
		*fc_out = FAIL_BACKEND_DOWN;
		*why_out = LR_BACKEND_DOWN;
		return -1;
	}
	return 0;
}

static void
be_route_answer(void *arg, const struct policy_route_answer *a)
{
	struct backend *be = arg;
	enum fail_class fc;
	enum login_reason why;

	be->rreq = NULL;
	if (a->degraded)
		log_kv(LOG_WARN, "route.fallback",
		       "cid=%016llx note=\"no route answer from the state store in time: "
		       "config rules used\"",
		       (unsigned long long)be->req.cid);
	if (be_route(be, a->backend, &fc, &why) < 0)
		be_report(be, fc, why); /* be may be freed here */
}

struct backend *
backend_start(const struct backend_req *req, enum fail_class *fc_out, enum login_reason *why_out)
{
	struct backend *be;

	be = calloc(1, sizeof(*be));
	if (be == NULL) {
		*fc_out = FAIL_INTERNAL;
		*why_out = LR_OUT_OF_MEMORY;
		return NULL;
	}
	be->req = *req;
	be->dialog = req->proto == PROTO_IMAP   ? &backend_imap_dialog
	             : req->proto == PROTO_POP3 ? &backend_pop3_dialog
	                                        : &backend_sieve_dialog;
	link_init(&be->link, req->loop, -1, be_io_cb);
	ev_init(&be->timer, be_timer_cb);
	buf_init(&be->rx, BE_LINE_MAX, false);
	buf_init(&be->tx, BE_TX_MAX, true);
	buf_init(&be->later, BE_TX_MAX, true);
	/* the store's route first: asked on this loop, bounded by state_timeout */
	if (req->pw != NULL && (be->rreq = policy_route_lookup(req->pw, req->key, req->key_len,
	                                                       be_route_answer, be)) != NULL) {
		be->state = BE_ROUTE;
		return be;
	}
	if (be_route(be, NULL, fc_out, why_out) < 0) {
		backend_free(&be);
		return NULL;
	}
	return be;
}

void
backend_free(struct backend **bep)
{
	struct backend *be = *bep;

	if (be == NULL)
		return;
	policy_route_cancel(&be->rreq);
	ev_timer_stop(be->req.loop, &be->timer);
	link_close(&be->link);
	buf_deinit(&be->rx);
	buf_deinit(&be->tx);
	buf_deinit(&be->later);
	OPENSSL_cleanse(be, sizeof(*be));
	free(be);
	*bep = NULL;
}

/* Report the outcome once; be may be freed by the callback. */
static void
be_report(struct backend *be, enum fail_class fc, enum login_reason why)
{
	ev_timer_stop(be->req.loop, &be->timer);
	if (fc != FAIL_NONE)
		link_close(&be->link);
	else
		link_watch(&be->link, 0); /* nothing is read until the relay */
	be->state = BE_DONE;
	be->req.done(be->req.arg, fc, why); /* be may be freed here */
}

void
backend_logged_in(struct backend *be)
{
	be_report(be, FAIL_NONE, LR_NONE);
}

void
backend_fail(struct backend *be, enum fail_class fc, enum login_reason why)
{
	char qtext[LOG_QUOTED_MAX];

	if (fc != FAIL_AUTH)
		log_kv(LOG_WARN, "backend.fail", "cid=%016llx backend=%s reason=%s said=%s",
		       (unsigned long long)be->req.cid, be->bc->name, login_reason_name(why),
		       log_quote(qtext, sizeof(qtext), be->text, strlen(be->text)));
	/* Unreachable before it saw any credential: count it against the
	 * backend and try the user's next candidate within this login.  Once
	 * credentials went out, nothing is retried elsewhere. */
	if (fc == FAIL_BACKEND_DOWN && !be->creds_sent) {
		const char *from = be->bc->name;
		registry_report(be->reg, false, be->text[0] ? be->text : login_reason_name(why),
		                be->bc->rise, be->bc->fall);
		registry_connect_error(be->reg);
		link_close(&be->link);
		be->icand++;
		if (be_connect_next(be) == 0) {
			log_kv(LOG_INFO, "backend.failover", "cid=%016llx from=%s to=%s",
			       (unsigned long long)be->req.cid, from, be->bc->name);
			return;
		}
	}
	be_report(be, fc, why);
}

int
backend_fail_said(struct backend *be, const char *line, enum fail_class fc, enum login_reason why)
{
	backend_set_text(be, line);
	backend_fail(be, fc, why);
	return -1;
}

void
backend_logout(struct backend *be)
{
	const char *bye = be->dialog->logout;

	/* Politely and without waiting: one write, then the link is closed. */
	if (be->link.fd >= 0)
		(void)link_write(&be->link, bye, strlen(bye));
	link_close(&be->link);
}

int
backend_hand_over(struct backend *be, struct link *to, link_cb cb, struct buf *leftover)
{
	if (buf_len(&be->rx) > 0) {
		if (buf_append(leftover, buf_head(&be->rx), buf_len(&be->rx)) < 0)
			return -1;
		buf_consume(&be->rx, buf_len(&be->rx));
	}
	link_move(to, &be->link, cb);
	return 0;
}

int
backend_start_tls(struct backend *be, int next)
{
	SSL_CTX *ctx = be->ctx;

	/* Anything the backend sent after its OK to STARTTLS did not come
	 * through TLS: dropped. */
	buf_reset(&be->rx);
	if (link_tls_client(&be->link, ctx, tls_backend_verify_name(be->bc)) < 0) {
		backend_set_text(be, "cannot set up TLS");
		backend_fail(be, FAIL_INTERNAL, LR_BACKEND_TLS_SETUP_FAILED);
		return -1;
	}
	be->after_tls = next;
	be->state = BE_TLS;
	return 0;
}

/*
 * The PROXY header goes first, in the clear even before backend TLS.  The
 * socket has just connected and its send buffer is empty, so the header
 * (at most a few hundred bytes) goes out whole or the link is unusable.
 * Returns 0, or -1 (backend_fail called).
 */
static int
be_send_proxy(struct backend *be)
{
	const struct sockaddr *src = (const struct sockaddr *)be->req.client_sa;
	const struct sockaddr *dst = (const struct sockaddr *)be->req.local_sa;
	uint8_t hdr[PP_HEADER_MAX];
	size_t n;

	if (be->bc->forward & FORWARD_PROXY_V2) {
		struct pp_tls_info ti = {0};
		SSL *ssl = be->req.client_ssl;
		if (ssl != NULL) {
			ti.version = SSL_get_version(ssl);
			ti.cipher = SSL_get_cipher_name(ssl);
			ti.sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
		}
		n = proxyproto_write_v2(hdr, sizeof(hdr), src, dst, ssl ? &ti : NULL);
	} else {
		n = proxyproto_write_v1((char *)hdr, sizeof(hdr), src, dst);
	}
	if (n == 0) {
		backend_set_text(be, "cannot write the PROXY header");
		backend_fail(be, FAIL_INTERNAL, LR_BACKEND_PROXY_HEADER_FAILED);
		return -1;
	}
	if (link_send_all(&be->link, hdr, n) < 0) {
		snprintf(be->text, sizeof(be->text), "PROXY header: %s", strerror(errno));
		backend_fail(be, FAIL_BACKEND_DOWN, LR_BACKEND_WRITE_FAILED);
		return -1;
	}
	return 0;
}

/* The TCP connection is up (or failed).  -1: be may be gone. */
static int
be_connected(struct backend *be)
{
	int err = link_connect_error(&be->link);

	if (err != 0) {
		snprintf(be->text, sizeof(be->text), "connect: %s", strerror(err));
		backend_fail(be, FAIL_BACKEND_DOWN, LR_BACKEND_CONNECT_FAILED);
		return -1;
	}
	be_arm(be, be_cfg(be)->timeouts.backend_login_ms);
	be->state = BE_DIALOG;
	be->dialog->begin(be);
	if ((be->bc->forward & (FORWARD_PROXY_V1 | FORWARD_PROXY_V2)) && be_send_proxy(be) < 0)
		return -1;
	if (be->bc->tls == TLSM_IMPLICIT && backend_start_tls(be, be->step) < 0)
		return -1;
	return 0;
}

/* Complete lines in rx, one at a time, to the dialog.  -1: be may be gone. */
static int
be_lines(struct backend *be)
{
	char line[BE_LINE_MAX + 1];

	while (buf_len(&be->rx) > 0 && be->state == BE_DIALOG) {
		const uint8_t *h = buf_head(&be->rx);
		const uint8_t *nl = memchr(h, '\n', buf_len(&be->rx));
		size_t l;
		int rc;

		if (nl == NULL) {
			if (buf_space(&be->rx) == 0) {
				backend_set_text(be, "(line too long)");
				backend_fail(be, FAIL_BACKEND_PROTO, LR_BACKEND_LINE_TOO_LONG);
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
			backend_set_text(be, "(NUL in line)");
			backend_fail(be, FAIL_BACKEND_PROTO, LR_BACKEND_BAD_LINE);
			return -1;
		}
		rc = be->dialog->line(be, line);
		OPENSSL_cleanse(line, l);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Send what is queued until done or the socket is full: bytes moved, or
 * -1 (backend_fail called). */
static ssize_t
be_flush(struct backend *be)
{
	ssize_t moved = 0;

	while (buf_len(&be->tx) > 0) {
		ssize_t n = link_write(&be->link, buf_head(&be->tx), buf_len(&be->tx));
		if (n == LINK_AGAIN)
			break;
		if (n <= 0) {
			snprintf(be->text, sizeof(be->text), "send: %s",
			         be->link.ssl ? "TLS error" : strerror(errno));
			backend_fail(be, FAIL_BACKEND_DOWN, LR_BACKEND_WRITE_FAILED);
			return -1;
		}
		buf_consume(&be->tx, (size_t)n);
		moved += n;
	}
	return moved;
}

/* Read and hand complete lines on: bytes read, or -1 (be may be gone). */
static ssize_t
be_read(struct backend *be)
{
	size_t space;
	uint8_t *t = buf_tail(&be->rx, &space);
	ssize_t n;

	if (t == NULL) {
		backend_fail(be, FAIL_INTERNAL, LR_OUT_OF_MEMORY);
		return -1;
	}
	n = link_read(&be->link, t, space);
	if (n == LINK_AGAIN)
		return 0;
	if (n <= 0) {
		snprintf(be->text, sizeof(be->text), "%s",
		         n == 0         ? "connection closed"
		         : be->link.ssl ? "TLS error"
		                        : strerror(errno));
		backend_fail(be, FAIL_BACKEND_DOWN, LR_BACKEND_CLOSED);
		return -1;
	}
	buf_produce(&be->rx, (size_t)n);
	if (be_lines(be) < 0)
		return -1;
	return n;
}

static void
be_run(struct backend *be)
{
	/* Bounded rounds of: handshake, send, read.  Reading goes on until the
	 * socket (and OpenSSL's buffer) is empty: bytes TLS already decrypted
	 * would never wake the loop again. */
	for (int round = 0; round < BE_ROUNDS; round++) {
		ssize_t moved = 0, n;

		if (be->state == BE_TLS) {
			char why[256];
			int r = link_handshake(&be->link, why, sizeof(why));
			if (r < 0) {
				backend_set_text(be, why);
				backend_fail(be, FAIL_BACKEND_DOWN, LR_BACKEND_TLS_FAILED);
				return;
			}
			if (r == 0)
				break;
			log_kv(LOG_DEBUG, "backend.tls", "cid=%016llx backend=%s version=%s",
			       (unsigned long long)be->req.cid, be->bc->name,
			       SSL_get_version(be->link.ssl));
			be->state = BE_DIALOG;
			be->step = be->after_tls;
			be->dialog->after_tls(be);
			moved = 1;
		}
		if ((n = be_flush(be)) < 0)
			return;
		moved += n;
		if (buf_len(&be->tx) == 0) {
			if ((n = be_read(be)) < 0)
				return; /* be may be gone */
			moved += n;
		}
		if (moved == 0)
			break;
	}
	be_watch(be);
}

static void
be_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct backend *be = container_of(io, struct backend, link.io);

	(void)loop;
	if (be->state == BE_CONNECT) {
		if (!(revents & EV_WRITE) || be_connected(be) < 0)
			return;
	}
	if (be->state == BE_DONE)
		return;
	be_run(be);
}

static void
be_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct backend *be = container_of(t, struct backend, timer);
	bool connecting = be->state == BE_CONNECT;

	(void)loop;
	(void)revents;
	snprintf(be->text, sizeof(be->text), "%s",
	         connecting ? "connect timeout" : "no answer in time");
	backend_fail(be, FAIL_BACKEND_DOWN,
	             connecting ? LR_BACKEND_CONNECT_TIMEOUT : LR_BACKEND_TIMEOUT);
}
