/*
 * backend_impl.h: what backend.c shares with the protocol dialogs
 * (backend_imap.c, backend_pop3.c) and nobody else.  backend.c connects,
 * fails over, forwards the client's address in a PROXY header, runs TLS,
 * splits lines and keeps time; a dialog turns lines into the next command
 * and is the only code that speaks the backend's protocol.
 */
#ifndef POSTERN_BACKEND_IMPL_H
#define POSTERN_BACKEND_IMPL_H

#include "backend.h"
#include "imap_resp.h"
#include "pop3_resp.h"
#include "route.h"
#include "sasl.h"
#include "sieve_resp.h"

#define BE_LINE_MAX 8192 /* one response line from a backend */
/* our commands, credentials included: an OAuth message of SASL_OAUTH_B64_MAX
 * (12 KiB) and its command */
#define BE_TX_MAX   16384
#define BE_TEXT_MAX 512
#define BE_SEGS_MAX 3            /* LOGIN with two synchronising literals has three parts */
#define BE_CAND_DYN ((size_t)-1) /* the candidate a lookup named by address */

enum be_state {
	BE_ROUTE,   /* asking the state store for the user's route (route_lookup) */
	BE_CONNECT, /* TCP connect under way */
	BE_TLS,     /* TLS handshake (implicit, or after STARTTLS/STLS) */
	BE_DIALOG,  /* lines to the dialog; be->step is its own state */
	BE_DONE,    /* logged in: nothing read until the relay takes the link */
};

struct backend_dialog {
	const char *name;
	/* Connected (PROXY header and implicit TLS done): the greeting comes. */
	void (*begin)(struct backend *be);
	/* STARTTLS/STLS finished: go on at be->step (capabilities again). */
	void (*after_tls)(struct backend *be);
	/* One line, CRLF removed, NUL-terminated, no NUL inside.  0: go on;
	 * -1: the dialog ended (backend_fail() or backend_logged_in() was
	 * called, be may be freed). */
	int (*line)(struct backend *be, char *line);
	/* What the client's OK carries. */
	const char *(*ok_text)(const struct backend *be);
	/* The line that ends a logged-in session politely. */
	const char *logout;
};

extern const struct backend_dialog backend_imap_dialog;
extern const struct backend_dialog backend_pop3_dialog;
extern const struct backend_dialog backend_sieve_dialog;

struct backend {
	struct backend_req req;
	const struct backend_dialog *dialog;
	const struct backend_conf *bc; /* borrowed from req.rt's config (or dynback) */
	struct registry_entry *reg;    /* its registry record, or NULL */
	SSL_CTX *ctx;                  /* its TLS client context, or NULL */
	/* candidates: indices into the config's backends, BE_CAND_DYN for
	 * req.pin_dyn */
	size_t cand[ROUTE_POOL_MAX];
	size_t ncand, icand; /* candidates, best first; the one in use */
	bool creds_sent;     /* a login command went out: no failover any more */
	enum be_state state;
	struct policy_route_req *rreq; /* owned: BE_ROUTE's question */
	int step;                      /* the dialog's state */
	int after_tls;                 /* the dialog's state once TLS is up */
	struct link link;
	ev_timer timer; /* connect, then greeting-to-login deadline */
	struct buf rx;  /* backend -> us, until a line is complete */
	struct buf tx;  /* us -> backend; holds credentials: wiped */
	/* Parts of a LOGIN waiting for the backend's "+" (synchronising literals). */
	struct buf later;
	size_t seg_len[BE_SEGS_MAX];
	size_t nsegs;
	struct imap_caps caps; /* IMAP: the list and what it offers */
	bool have_caps;
	struct pop3_capa capa;   /* POP3: XCLIENT and SASL mechanisms */
	struct sieve_caps scaps; /* ManageSieve: what its greeting offers (backend_sieve.c) */
	bool oauth_dummy;        /* our dummy response went after its RFC 7628 error */
	/* The RFC 7628 error challenge for the client (base64), or "". */
	char oauth_err[(SASL_OAUTH_ERR_MAX + 2) / 3 * 4 + 1];
	char text[BE_TEXT_MAX]; /* POP3: the +OK text; failures: what the backend said */
};

/* Queue bytes for the backend.  -1 when they do not fit. */
int backend_send(struct backend *be, const char *s, size_t len);
int backend_printf(struct backend *be, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A command queued with backend_send/printf (rc): -1 (backend_fail
 * called: be may be gone) when it did not fit, else 0. */
int backend_sent(struct backend *be, int rc);
/* Keep what the backend said (cut) for the log line. */
void backend_set_text(struct backend *be, const char *s);
/* The backend greeted: a passive health success. */
void backend_greeted(struct backend *be);
/* Begin TLS on the link (after STARTTLS/STLS was accepted); the dialog's
 * after_tls() runs at step next once it is up.  0, or -1 (backend_fail
 * called). */
int backend_start_tls(struct backend *be, int next);
/* The dialog failed (fc, why); fails over to the next candidate while no
 * credentials were sent.  be may be freed. */
void backend_fail(struct backend *be, enum fail_class fc, enum login_reason why);
/* backend_fail() after keeping line, what the backend said, for the log.
 * Returns -1, for a dialog's line() to return. */
int backend_fail_said(struct backend *be, const char *line, enum fail_class fc,
                      enum login_reason why);
/* The backend accepted the login.  be may be freed. */
void backend_logged_in(struct backend *be);
/* POP3 and ManageSieve (Dovecot): the client's address in "XCLIENT ADDR=
 * PORT= SESSION=", as the dialog's step next, when the greeting offered
 * it; else the log line of backend_forward_failed().  1: sent; 0: not
 * offered, go on; -1: backend_fail called. */
int backend_xclient(struct backend *be, bool offered, int step);
/* Log that the client's address could not be forwarded (via: id, xclient). */
void backend_forward_failed(struct backend *be, const char *via, const char *said);

#endif
