/*
 * conn.h: one client connection from accept to close, its state machine,
 * timers and the worker that owns it.  A conn never moves between workers
 * (threads); everything here is touched only by its worker's loop.
 */
#ifndef POSTERN_CONN_H
#define POSTERN_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/socket.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "config.h"
#include "policy.h"

#define CONN_BUF_SIZE    (16 * 1024) /* each relay direction, and pre-auth input */
#define CONN_OUT_SIZE    (16 * 1024)
#define CONN_PEER_MAX    64 /* "[v6]:port" */
#define CREDS_USER_MAX   256
#define CREDS_SECRET_MAX 1024

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

enum conn_state {
	CS_PROXY,      /* a load balancer's PROXY header comes first */
	CS_TLS_ACCEPT, /* implicit TLS: handshake before anything else */
	CS_PREAUTH,    /* greeting sent, pre-auth dialog */
	CS_BACKEND,    /* credentials in hand: connecting and logging in to a backend */
	CS_RELAY,      /* logged in: bytes relayed untouched */
	CS_CLOSING,    /* flushing a last reply (BYE), then close */
	CS__COUNT
};

extern const char *const conn_state_name[CS__COUNT];

/* Why a login or session failed; picks the client reply code and reason=. */
enum fail_class {
	FAIL_NONE = 0,
	FAIL_AUTH,          /* credentials refused: [AUTHENTICATIONFAILED] / -ERR [AUTH] */
	FAIL_POLICY,        /* refused by a policy: [CONTACTADMIN] / -ERR [AUTH] */
	FAIL_LIMIT,         /* a limit: [UNAVAILABLE] / -ERR [IN-USE] */
	FAIL_BACKEND_DOWN,  /* cannot reach a backend: [UNAVAILABLE] / -ERR [SYS/TEMP] */
	FAIL_BACKEND_PROTO, /* backend said something unusable: [UNAVAILABLE] / -ERR [SYS/TEMP] */
	FAIL_INTERNAL,      /* our fault: [UNAVAILABLE] / -ERR [SYS/TEMP] */
	FAIL_THROTTLE,      /* too many failed logins: [UNAVAILABLE] / -ERR [SYS/TEMP] */
	FAIL__COUNT
};

extern const char *const fail_class_name[FAIL__COUNT];

struct conn;
struct worker;
struct backend;
struct runtime;
struct pp_parser;

/* What differs between IMAP and POP3 in the session. */
struct proto_ops {
	enum proto_kind kind;
	/* Allocate c->sess and write the greeting into c->out.  -1: close. */
	int (*start)(struct conn *c);
	/* Parse and act on c->in.  May change state, write c->out, or close c. */
	void (*on_input)(struct conn *c);
	/* The backend answered a login (success or failure); see backend.h.
	 * On success the session writes the client's OK and enters CS_RELAY. */
	void (*login_done)(struct conn *c, enum fail_class fc, const char *text);
	/* Write a last message (BYE / -ERR) before an enforced close. */
	void (*bye)(struct conn *c, const char *text);
	/* Free c->sess (wiping credentials). */
	void (*free_sess)(struct conn *c);
};

extern const struct proto_ops imap_proto_ops;
extern const struct proto_ops pop3_proto_ops;

/* Credentials between the pre-auth dialog and the backend's answer. */
struct creds {
	char user[CREDS_USER_MAX + 1];
	size_t user_len;
	char secret[CREDS_SECRET_MAX + 1];
	size_t secret_len;
};

struct listener {
	size_t li;        /* index into cfg->listeners */
	const char *name; /* borrowed from the first config, for logs */
	struct worker *w; /* borrowed */
	int fd;           /* owned */
	ev_io io;
	bool paused;
};

struct worker {
	int id;
	struct ev_loop *loop; /* owned */
	pthread_t thread;
	struct listener *listeners; /* [i] serves cfg->listeners[i] of every runtime */
	size_t nlisteners;
	ev_async stop_async;
	ev_prepare reap_prepare;
	ev_timer accept_resume;   /* after EMFILE: accepting resumes shortly */
	struct policy *policy;    /* borrowed: the process's policy */
	struct policy_worker *pw; /* owned: this loop's way into it */
	struct conn *conns;       /* all live conns (for shutdown) */
	struct conn *reap;        /* closed conns waiting to be freed */
	uint64_t nconns;
	uint64_t cid_state; /* splitmix64 state for connection ids */
	bool stopping;
};

struct conn {
	uint64_t id;                    /* random; logged as cid= */
	struct worker *w;               /* borrowed */
	struct runtime *rt;             /* reference: the config + TLS this conn started under */
	const struct config *cfg;       /* borrowed: rt->cfg */
	const struct listener_conf *lc; /* borrowed from cfg */
	size_t li;                      /* index of lc in cfg->listeners */
	const struct proto_ops *proto;
	enum conn_state state; /* written only by conn_set_state() */

	int fd;   /* client socket, owned */
	SSL *ssl; /* owned; NULL until TLS starts */
	ev_io io; /* client socket */
	int io_events;
	int rd_wants; /* EV_READ, or EV_WRITE when SSL_read wants to write */
	int wr_wants; /* EV_WRITE, or EV_READ when SSL_write wants to read */

	int bfd;   /* backend socket, owned; -1 until connecting */
	SSL *bssl; /* owned; TLS to the backend, or NULL */
	ev_io bio; /* backend socket */
	int bio_events;
	int brd_wants, bwr_wants; /* as rd_wants/wr_wants, for the backend side */

	ev_timer timer; /* the one timeout of the current state */
	ev_tstamp timeout;

	struct buf in;  /* client -> us (pre-auth) / -> backend (relay) */
	struct buf out; /* us -> client (pre-auth) / backend -> client (relay) */

	struct pp_parser *pp;           /* owned: while reading a PROXY header */
	struct policy_conn pc;          /* what policy_accept() counted */
	struct policy_req *preq;        /* owned: the post-auth question under way */
	bool session_live;              /* policy counted this session: policy_session_end() owed */
	enum proto_kind policy_allowed; /* FAIL_POLICY: the protocol the account may use */
	const char *refuse;             /* refused at accept: say this after TLS, then close */
	ev_timer delay;                 /* tarpit: a failed login's answer waits */
	uint64_t throttle_delay_ms;     /* a throttled login's tarpit */
	bool tarpit;                    /* c->out is held until the delay ends */
	void *sess;          /* owned: the protocol's pre-auth state (parser); NULL in relay */
	struct backend *be;  /* owned: backend dialog; NULL outside CS_BACKEND */
	struct creds *creds; /* owned: NULL except between login command and backend answer */

	struct sockaddr_storage client_sa; /* the client (after a PROXY header: the real one) */
	struct sockaddr_storage local_sa;  /* the address it connected to */
	char peer[CONN_PEER_MAX];          /* client "ip:port" */
	char user[CREDS_USER_MAX + 1];     /* user name once known (for logs; never the secret) */
	const char *backend_name;          /* borrowed from cfg */
	const char *close_reason;
	uint64_t bytes_in, bytes_out; /* from and to the client */
	ev_tstamp started;
	int bad_commands;
	int auth_failures;

	bool c_eof;     /* client sent EOF (relay) */
	bool b_eof;     /* backend sent EOF (relay) */
	bool b_shut_wr; /* we shut down writing to the backend */
	bool logged_in;
	bool closed;
	bool tls_failed;        /* client TLS had a fatal error: no close_notify */
	bool btls_failed;       /* the same for the backend side */
	bool starttls_pending;  /* OK to STARTTLS written; handshake once flushed */
	bool starttls_done;     /* TLS came by STARTTLS: no second greeting */
	const char *login_mech; /* "login", "user", "plain" for logs */
	ev_tstamp login_started;

	struct conn *next, *prev; /* worker->conns */
	struct conn *reap_next;
};

/* Take over an accepted socket; starts TLS or the greeting.  NULL on failure
 * (fd closed). */
struct conn *conn_new(struct worker *w, size_t li, int fd, const struct sockaddr *sa,
                      socklen_t salen);

void conn_set_state(struct conn *c, enum conn_state st);
/* (Re)arm the timer with seconds; 0 stops it. */
void conn_set_timeout(struct conn *c, ev_tstamp seconds);

/*
 * Close: safe to call twice; stops watchers, closes sockets, logs the session
 * summary once, and queues c for the worker's reaper.  The caller returns at
 * once afterwards: c stays valid until the loop's next prepare phase.
 */
void conn_close(struct conn *c, const char *reason);

/* Write what c->out holds and watch the right events; used by sessions after
 * writing a reply.  May close c: check c->closed afterwards. */
void conn_flush(struct conn *c);

/* Send text as the last words, then close once flushed (bounded). */
void conn_close_after(struct conn *c, const char *reason);

/* Recompute the client and backend watchers from the state and buffers. */
void conn_update_io(struct conn *c);

/*
 * Client I/O through TLS or plain socket.  Returns bytes (> 0), 0 on EOF,
 * CIO_AGAIN (try later: rd_wants/wr_wants tell which event) or CIO_ERR.
 */
#define CIO_AGAIN (-1)
#define CIO_ERR   (-2)
ssize_t conn_client_read(struct conn *c, void *p, size_t n);
ssize_t conn_client_write(struct conn *c, const void *p, size_t n);
/* The same for the backend socket (TLS when c->bssl); brd_wants/bwr_wants. */
ssize_t conn_backend_read(struct conn *c, void *p, size_t n);
ssize_t conn_backend_write(struct conn *c, const void *p, size_t n);

/* Free creds (wiped). */
void conn_creds_free(struct conn *c);

/*
 * Begin a login with user and secret (copied into c->creds): checks them
 * (no control characters in the user, none empty), then routes and starts
 * the backend dialog.  0: c is in CS_BACKEND and login_done() will come.
 * -1: refused at once, *fc_out and *why_out (static) say why; no callback.
 */
int conn_login_begin(struct conn *c, const char *user, size_t user_len, const char *secret,
                     size_t secret_len, const char *mech, enum fail_class *fc_out,
                     const char **why_out);
/* conn_login_begin(), and on a refusal at once the session's login_done()
 * with it (c may be closing afterwards). */
void conn_login(struct conn *c, const char *user, size_t user_len, const char *secret,
                size_t secret_len, const char *mech);
/* Decode a SASL PLAIN response (RFC 4616) and conn_login() with it.  Any
 * other rc: nothing was started, the caller answers (the credentials it
 * held are wiped). */
int conn_login_sasl_plain(struct conn *c, const char *b64, size_t len);

/* Must the client start TLS before it may log in (a STARTTLS listener
 * without allow_plaintext_auth)? */
static inline bool
conn_tls_required(const struct conn *c)
{
	return c->ssl == NULL && !c->lc->allow_plaintext_auth;
}

/* Log login.ok / login.fail and count failures; wipes the credentials.
 * Returns true when this failure used the last attempt (the session says
 * goodbye and closes). */
bool conn_login_end(struct conn *c, enum fail_class fc, const char *why);

/* Split sa into a numeric address and a port (IPv4-mapped IPv6 shown as
 * IPv4); "unknown" and 0 for other families. */
void conn_addr_parts(const struct sockaddr_storage *sa, char *ip, size_t iplen, unsigned *port);

/* The backend accepted the login (text: IMAP capabilities or the POP3 +OK
 * text, valid while c->be lives): ask the policy, then either
 * login_done(FAIL_NONE, text) or log out of the backend and login_done()
 * with the refusal.  c may be closed when it returns. */
void conn_backend_ok(struct conn *c, const char *text);

/* Go on with the state's work (after an answer came from elsewhere). */
void conn_resume(struct conn *c);

/* STARTTLS/STLS accepted: once the OK is flushed, drop whatever plaintext
 * the client pipelined and start the TLS handshake. */
void conn_starttls(struct conn *c);

/* Worker's reaper: frees conns closed since the last loop iteration. */
void conn_reap(struct worker *w);

#endif
