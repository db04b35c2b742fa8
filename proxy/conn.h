/*
 * conn.h: one client connection from accept to close: its state machine,
 * its one timer, its buffers and the two-step close.  A conn never moves
 * between workers (threads); everything here is touched only by its
 * worker's loop.  The protocol dialogs (imap_session.c, pop3_session.c),
 * the login (login.c), the backend (backend.c) and the relay (relay.c)
 * each own their part; this file owns the order.
 */
#ifndef POSTERN_CONN_H
#define POSTERN_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

#include "account.h"
#include "addr.h"
#include "backend.h"
#include "buf.h"
#include "config.h"
#include "conn_index.h"
#include "link.h"
#include "policy.h"
#include "reason.h"
#include "relay.h"
#include "sasl.h"

#define CONN_BUF_SIZE (16 * 1024) /* each relay direction, and pre-auth input */
#define CONN_OUT_SIZE (16 * 1024)

enum conn_state {
	CS_PROXY,      /* a load balancer's PROXY header comes first */
	CS_TLS_ACCEPT, /* TLS handshake (implicit, or after STARTTLS/STLS) */
	CS_PREAUTH,    /* greeting sent, pre-auth dialog */
	CS_BACKEND,    /* credentials in hand: the backend connects and logs in */
	CS_POLICY,     /* the backend accepted: waiting for the post-login decision */
	CS_RELAY,      /* logged in: bytes relayed untouched */
	CS_CLOSING,    /* flushing a last reply (BYE), then close */
	CS__COUNT
};

const char *conn_state_name(enum conn_state st);

struct conn;
struct registry_entry;
struct worker;
struct runtime;
struct pp_parser;
struct lookup_req;

/* What differs between IMAP, POP3 and ManageSieve in the pre-auth dialog. */
struct proto_ops {
	enum proto_kind kind;
	/* Allocate c->sess and write the greeting into c->out.  -1: close. */
	int (*start)(struct conn *c);
	/* Parse and act on c->in.  May change state, write c->out, or close c. */
	void (*on_input)(struct conn *c);
	/* Write the client's success reply carrying text (the backend's IMAP
	 * capabilities or POP3 +OK text), and free c->sess. */
	void (*reply_ok)(struct conn *c, const char *text);
	/* Write the refusal of the login under way ("[CODE] text"). */
	void (*reply_fail)(struct conn *c, const char *text);
	/* A backend refused a token with an RFC 7628 §3.2.2 error: write the
	 * challenge (base64 JSON) and read the client's dummy response, then
	 * call login_oauth_refusal(c, last).  (sasl_exchange_oauth_error.) */
	void (*oauth_error)(struct conn *c, const char *b64, bool last);
	/* The SASL exchange wrote a challenge: parse the next line as a
	 * response. */
	void (*sasl_expect)(struct conn *c);
	/* Answer a SASL response the exchange cannot use (rc: SASL_BAD_BASE64,
	 * SASL_BAD_FORMAT, SASL_TOO_LONG, SASL_CANCELLED) in the
	 * protocol's own words and return true; false leaves it to the
	 * exchange, which refuses it as failed authentication.  SASL_CANCELLED
	 * must be answered. */
	bool (*sasl_reject)(struct conn *c, enum sasl_rc rc);
	/* The TLS of STARTTLS is up: ManageSieve writes its capabilities again
	 * (RFC 5804 §2.2); NULL for the protocols that say nothing then. */
	void (*tls_started)(struct conn *c);
	/* Write a SASL challenge (base64 text, "" for none): IMAP and POP3
	 * "+ text"; NULL means that form.  The exchange then calls
	 * sasl_expect. */
	void (*sasl_challenge)(struct conn *c, const char *text);
	/* Write last words (BYE / -ERR) before an enforced close. */
	void (*bye)(struct conn *c, const char *text);
	/* Free c->sess (wiping credentials).  Takes a conn without one. */
	void (*free_sess)(struct conn *c);
};

extern const struct proto_ops imap_proto_ops;
extern const struct proto_ops pop3_proto_ops;
extern const struct proto_ops sieve_proto_ops;

struct conn {
	uint64_t id;                    /* random; logged as cid= */
	struct worker *w;               /* borrowed */
	struct runtime *rt;             /* reference: the config + TLS this conn started under */
	const struct config *cfg;       /* borrowed: rt->cfg */
	const struct listener_conf *lc; /* borrowed from cfg */
	size_t li;                      /* index of lc in cfg->listeners */
	const struct proto_ops *proto;
	enum conn_state state; /* written only by conn_set_state() */

	struct link cl; /* the client */
	struct link bl; /* the backend, once the relay took it from c->be */
	ev_timer timer; /* the one timeout of the current state */

	struct buf in;  /* client -> us (pre-auth) / -> backend (relay) */
	struct buf out; /* us -> client (pre-auth) / backend -> client (relay) */
	struct relay relay;

	struct pp_parser *pp;       /* owned: while reading a PROXY header */
	struct policy_conn pc;      /* what policy_accept() counted */
	struct policy_req *preq;    /* owned: the post-login question under way */
	bool session_live;          /* policy counted this session: policy_session_end() owed */
	enum fail_class refuse;     /* refused at accept: say so after TLS, then close */
	ev_timer delay;             /* tarpit: a failed login's answer waits */
	uint64_t throttle_delay_ms; /* a throttled login's tarpit */
	bool tarpit;                /* c->out is held until the delay ends */
	void *sess;                 /* owned: the protocol's pre-auth state; NULL in relay */
	struct backend *be;         /* owned: from credentials to relay; NULL otherwise */
	struct creds *creds;        /* owned: from the login command to the backend's answer */
	struct lookup_req *lreq;    /* owned: the user lookup's question under way */

	struct sockaddr_storage client_sa; /* the client (after a PROXY header: the real one) */
	struct sockaddr_storage local_sa;  /* the address it connected to */
	char peer[ADDR_TEXT_MAX];          /* client "ip:port" */
	char user[CREDS_USER_MAX + 1];     /* user name once known (for logs; never the secret) */
	char key[ACCOUNT_KEY_MAX + 1];     /* its account key (account_key()), made once by login */
	size_t key_len;                    /* what policy, routing and the backend take */
	const char *backend_name;          /* borrowed from cfg */
	enum close_reason close_reason;    /* CS_CLOSING: what to log once flushed */
	uint64_t bytes_in, bytes_out;      /* from and to the client */
	uint64_t counted_in, counted_out;  /* of all bytes (with the relay's), those in metrics */
	ev_tstamp started;
	int bad_commands;
	int auth_failures;
	unsigned login_attempts; /* logins begun: the lookup's Auth-Login-Attempt */

	/* Ending it politely (SIGTERM, kick): see conn_end_politely(). */
	bool ending;
	enum close_reason end_reason;  /* CLOSE_SHUTDOWN or CLOSE_KICKED */
	ev_tstamp end_after;           /* not before (a random point within drain_spread) */
	ev_tstamp end_deadline;        /* closed then, quiet or not */
	ev_tstamp last_active;         /* pre-auth: client bytes; relay: bytes either way */
	struct registry_entry *be_reg; /* borrowed: counted in its sessions while relaying */

	bool logged_in;
	bool closed;
	bool starttls_pending;      /* OK to STARTTLS written; handshake once flushed */
	bool starttls_done;         /* TLS came by STARTTLS: no second greeting */
	enum login_mech login_mech; /* how the latest login came, for logs */
	ev_tstamp login_started;

	struct conn *next, *prev;          /* worker->conns, newest first */
	struct conn_index_link by_user;    /* worker->by_user: under c->user */
	struct conn_index_link by_backend; /* worker->by_backend: under c->backend_name */
	struct conn *end_next, *end_prev;  /* worker->ending: while c->ending */
	struct conn *reap_next;
};

/* Take over an accepted socket; starts the PROXY header, TLS or the
 * greeting.  NULL on failure (fd closed, nothing left behind). */
struct conn *conn_new(struct worker *w, size_t li, int fd, const struct sockaddr *sa,
                      socklen_t salen);

/* Enter st and arm the state's timeout from the config (one table). */
void conn_set_state(struct conn *c, enum conn_state st);

/*
 * Close: safe to call twice; stops watchers, cancels the policy question
 * and the backend, closes both links, logs session.end once, and queues c
 * for the worker's reaper.  The caller returns at once afterwards: c stays
 * valid until the loop's next prepare phase.
 */
void conn_close(struct conn *c, enum close_reason reason);

/* Send what c->out holds as last words, then close (bounded by a linger
 * timeout); a held tarpit answer still goes out. */
void conn_close_after(struct conn *c, enum close_reason reason);

/* c->user or c->backend_name changed: file c under them in its worker's
 * indexes (the admin's lookups by user and backend). */
void conn_names_changed(struct conn *c);

/* Go on with the state's work (after an answer came from elsewhere).
 * c may be closed when it returns. */
void conn_resume(struct conn *c);

/* Hold c->out for ms (the tarpit of a failed login). */
void conn_hold(struct conn *c, uint64_t ms);

/* STARTTLS/STLS accepted: once the OK is flushed, drop whatever plaintext
 * the client pipelined and start the TLS handshake. */
void conn_starttls(struct conn *c);

/* Must the client start TLS before it may log in (a STARTTLS listener
 * without allow_plaintext_auth)? */
static inline bool
conn_tls_required(const struct conn *c)
{
	return c->cl.ssl == NULL && !c->lc->allow_plaintext_auth;
}

/* The login succeeded and the client's OK is in c->out: take the
 * backend's link and relay.  c may be closed when it returns. */
void conn_relay_start(struct conn *c);

/*
 * End c politely for reason (CLOSE_SHUTDOWN or CLOSE_KICKED): before TLS,
 * close; pre-auth, the protocol's BYE / -ERR and close; a login under way
 * goes on and is ended when it is done; a relayed session ends at its
 * first quiet moment (no bytes either way for timeouts.drain_quiet, the
 * backend's last line complete) after after_s seconds from now: IMAP with
 * "* BYE [UNAVAILABLE] ...", POP3 by closing.  Whatever is still open
 * deadline_s seconds from now is closed.  The waiting is done by
 * conn_end_sweep().  c may be closed when it returns; calling it again
 * changes nothing.
 */
void conn_end_politely(struct conn *c, enum close_reason reason, double after_s, double deadline_s);

/* The worker's periodic look at the conns being ended: those at a quiet
 * moment are told BYE, those past their deadline are closed. */
void conn_end_sweep(struct worker *w);

/* Worker's reaper: frees conns closed since the last loop iteration. */
void conn_reap(struct worker *w);

#endif
