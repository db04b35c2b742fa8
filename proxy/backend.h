/*
 * backend.h: a connection to the backend a user routes to, logged in with
 * the user's credentials re-serialised by postern (never the client's raw
 * bytes).  A backend is a full connection of its own: it owns its link,
 * its timer and its dialog, and knows nothing of the client connection
 * that asked for it; it reports once through a callback and, on success,
 * hands its link to the relay.
 */
#ifndef POSTERN_BACKEND_H
#define POSTERN_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "config.h"
#include "link.h"
#include "reason.h"

#define CREDS_USER_MAX   256
#define CREDS_SECRET_MAX 1024
#define CREDS_TOKEN_MAX  8192 /* SASL_TOKEN_MAX: sasl.h says why */

/* What the backend login carries: a password (PLAIN or LOGIN at the
 * backend, whichever it offers), or an OAuth bearer token passed through
 * with the client's own mechanism. */
enum creds_kind { CREDS_PASSWORD = 0, CREDS_XOAUTH2, CREDS_OAUTHBEARER };

struct runtime;
struct backend;
struct policy_worker;
struct dynback;
struct registry_entry;

/* Credentials between the pre-auth dialog and the backend's answer. */
struct creds {
	enum creds_kind kind;
	char user[CREDS_USER_MAX + 1];
	size_t user_len;
	char secret[CREDS_SECRET_MAX + 1]; /* CREDS_PASSWORD */
	size_t secret_len;
	char *token; /* owned, CREDS_XOAUTH2/CREDS_OAUTHBEARER: [token_len + 1], wiped */
	size_t token_len;
};

/* Wipe and free *cp and its token; takes NULL. */
void creds_free(struct creds **cp);

/* The outcome of a login: FAIL_NONE and LR_NONE (logged in; the link
 * waits for backend_hand_over() or backend_logout()) or why it failed.
 * Called once, never from inside backend_start(). */
typedef void (*backend_done_cb)(void *arg, enum fail_class fc, enum login_reason why);

/* What a login asks for.  Everything is borrowed and must outlive the
 * backend (creds: until done() is called). */
struct backend_req {
	uint64_t cid; /* the client connection's id, for logs and forwarding */
	struct ev_loop *loop;
	struct runtime *rt; /* config, backend TLS contexts, registry records */
	enum proto_kind proto;
	const struct sockaddr_storage *client_sa; /* forwarded (ID, XCLIENT, PROXY) */
	const struct sockaddr_storage *local_sa;
	SSL *client_ssl; /* the client's TLS, NULL if plain: PROXY v2 TLS fields */
	const struct creds *creds;
	/* the account key of creds->user (account_key()): what routing and
	 * the store's routes take; creds->user is what the backend hears */
	const char *key;
	size_t key_len;
	/* the state store's routes come first (`postern route set`,
	 * route_lookup = "state"): asked through pw; NULL: the config only */
	struct policy_worker *pw;
	/* the backend a lookup named (unless the store has a route for the
	 * user): configured backend pin_index, or pin_dyn when that is set;
	 * pinned false: the config's rules */
	bool pinned;
	size_t pin_index;
	const struct dynback *pin_dyn;
	backend_done_cb done;
	void *arg;
};

/*
 * Route req->creds->user and start connecting to the first candidate that
 * is up.  Returns the backend (done() comes later, exactly once), or NULL
 * with *fc_out and *why_out when nothing could be started (no route,
 * every candidate down, out of memory): then no callback comes.
 */
struct backend *backend_start(const struct backend_req *req, enum fail_class *fc_out,
                              enum login_reason *why_out);

/* The backend in use (the first candidate before a connection is made);
 * borrowed from the config. */
const char *backend_name(const struct backend *be);

/* The registry record of the backend in use (the first candidate before
 * a connection is made), or NULL. */
struct registry_entry *backend_reg(const struct backend *be);

/* After FAIL_NONE: what the client's OK carries (the IMAP capabilities,
 * the text of POP3's +OK, or ManageSieve's response tail: a response code
 * other than SASL and the quoted text, ready to follow "OK ", or "");
 * valid while be lives. */
const char *backend_ok_text(const struct backend *be);

/* ManageSieve: the SIEVE extension list and the NOTIFY methods that the
 * latest backend greeting offered (any backend, any worker: a lock guards
 * them), for the pre-login capability of sieve listeners.  false, and ""
 * in both, before any ManageSieve backend greeted. */
bool backend_sieve_caps(char *sieve, size_t sieve_len, char *notify, size_t notify_len);

/* After FAIL_AUTH of a token: the backend's RFC 7628 §3.2.2 error
 * challenge, re-encoded base64 of the JSON it sent (checked by
 * sasl_oauth_error_decode()), for the client; NULL when it sent none.
 * Valid while be lives. */
const char *backend_oauth_error(const struct backend *be);

/* After FAIL_NONE, when the login is refused after all (policy): say
 * LOGOUT/QUIT without waiting and close the link. */
void backend_logout(struct backend *be);

/* After FAIL_NONE: move the link into to (watched by cb) and whatever the
 * backend sent after its OK into leftover.  -1 when that does not fit (the
 * link stays with be). */
int backend_hand_over(struct backend *be, struct link *to, link_cb cb, struct buf *leftover);

/* Close the link (if still held), wipe and free *bep; takes NULL.  No
 * callback comes afterwards. */
void backend_free(struct backend **bep);

#endif
