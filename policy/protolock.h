/*
 * protolock.h: one protocol per account.  The decision is a pure function
 * of the mode, the account's static rule, its stored lock and the clock;
 * it also says what to write.  The static rules (policy.protocols and the
 * protocols_file map) live in a table built once per configuration.
 *
 * Modes (policy.protocol_lock):
 *   off         nothing is checked.
 *   static      proto must be in the account's allowed set: its user rule,
 *               else its domain rule, else protocols_default.
 *   concurrent  the allowed set as for static, and no live session of the
 *               other protocol (counters.c counts those; connlimit.c decides).
 *   sticky      an account with a user or domain rule follows that rule (a
 *               static rule wins over sticky); any other must be in
 *               protocols_default, and then the first protocol it logs in
 *               with is recorded and the other refused until an admin
 *               clears it or it lies unused for lock_expire (0: never).
 */
#ifndef POSTERN_PROTOLOCK_H
#define POSTERN_PROTOLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "policy.h"
#include "store.h"

#define PROTOLOCK_RULES_MAX   (1u << 22)            /* rules in one table (config + file) */
#define PROTOLOCK_LINE_MAX    1024                  /* bytes in one line of the map file */
#define PROTOLOCK_REFRESH_MAX (24 * 3600 * 1000ULL) /* see protolock_refresh_ms() */

/* The static rule for one account. */
struct protolock_rule {
	unsigned allow;     /* PROTO_MASK() bits */
	bool explicit_rule; /* from a user or domain rule, not protocols_default */
};

enum protolock_write {
	PROTOLOCK_NONE,    /* nothing to write */
	PROTOLOCK_CREATE,  /* first login: record the lock */
	PROTOLOCK_REFRESH, /* the lock was used: move used_ms forward */
	PROTOLOCK_REPLACE, /* the stored lock had expired: a new one replaces it */
};

struct protolock_decision {
	enum policy_verdict verdict; /* POLICY_ALLOW or POLICY_DENY_PROTOCOL */
	enum protolock_write write;
	struct store_lock rec;     /* what to write, unless PROTOLOCK_NONE */
	enum proto_kind allowed;   /* a refusal: the one protocol allowed, or PROTO__COUNT */
	enum policy_reason reason; /* PR_OK, PR_STATIC_RULE, PR_STICKY_LOCK */
};

/*
 * How stale used_ms may grow before a login refreshes it: lock_expire / 64,
 * at most a day (a day for "never").  Refreshing on every login would cost
 * an fsync per login; this way a lock may lapse up to that much early.
 */
uint64_t protolock_refresh_ms(uint64_t expire_ms);

/* Has l lain unused for expire_ms (0: never expires) at now_ms? */
bool protolock_expired(const struct store_lock *l, uint64_t now_ms, uint64_t expire_ms);

/* Does this account's decision read the store (sticky, no explicit rule)? */
bool protolock_uses_store(enum protocol_lock_mode mode, struct protolock_rule rule);

/*
 * The decision for a login over proto that the backend accepted.  stored is
 * the account's lock or NULL (read only in sticky mode).  Pure.
 */
struct protolock_decision protolock_decide(enum protocol_lock_mode mode, struct protolock_rule rule,
                                           const struct store_lock *stored, enum proto_kind proto,
                                           uint64_t now_ms, uint64_t expire_ms);

/* The store question a sticky decision asks (store_lock_claim()): the
 * store runs the sticky part of protolock_decide() atomically. */
struct store_claim protolock_claim(enum proto_kind proto, uint64_t now_ms, uint64_t expire_ms);

/* The decision that a claim's answer amounts to (the same that
 * protolock_decide() gives on the lock the store held). */
struct protolock_decision protolock_from_claim(const struct store_claim_answer *a);

/* ---- static rules ------------------------------------------------------ */

struct protolock_rules; /* immutable once built: lookups from any thread */

struct protolock_rules *protolock_rules_new(void);
void protolock_rules_free(struct protolock_rules **rp);

/*
 * Add a rule for a user or (domain true) a domain; the key is normalised
 * like user names (account_key_normalize()).  An existing rule for the key
 * is an error unless replace.  0, or -1 and *err_out (static).
 */
int protolock_rules_add(struct protolock_rules *r, bool domain, const char *key, size_t len,
                        unsigned allow, bool replace, const char **err_out);

/*
 * Read a map file: "user imap|pop3|imap,pop3" or "@domain ..." per line,
 * blank lines and '#' comments ignored.  Every problem is printed to errs as
 * "path:line: message" (the first 50; then a count).  Returns the number of
 * problems (0: all read), or -1 if the file cannot be read (printed too).
 */
int protolock_rules_load(struct protolock_rules *r, const char *path, FILE *errs);

size_t protolock_rules_count(const struct protolock_rules *r);

/* The rule for a normalised user: its user rule, else the rule of the
 * domain after its last '@', else protocols_default (explicit_rule false). */
struct protolock_rule protolock_rules_lookup(const struct protolock_rules *r, const char *user,
                                             size_t len, unsigned default_mask);

/* The table of cfg: protocols_file first, then policy.protocols, which win
 * over the file's rule for the same key.  NULL after printing the problems
 * to errs. */
struct protolock_rules *protolock_rules_from_config(const struct config *cfg, FILE *errs);

/* "imap", "pop3", "imap,pop3" (or "none"); static. */
const char *protolock_mask_name(unsigned mask);

#endif
