/*
 * protolock.c: the protocol lock's decision and the static rule table.
 * Pure apart from reading the map file: the store and the live counts are
 * someone else's (store_*.c, counters.c); this file only says what they
 * should hold.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "account.h"
#include "hash.h"
#include "protolock.h"
#include "route.h"

#define MAX_SHOWN_ERRORS 50

uint64_t
protolock_refresh_ms(uint64_t expire_ms)
{
	uint64_t r = expire_ms / 64;

	if (expire_ms == 0 || r > PROTOLOCK_REFRESH_MAX)
		return PROTOLOCK_REFRESH_MAX;
	return r;
}

bool
protolock_expired(const struct store_lock *l, uint64_t now_ms, uint64_t expire_ms)
{
	return store_lock_expired(l, now_ms, expire_ms);
}

bool
protolock_uses_store(enum protocol_lock_mode mode, struct protolock_rule rule)
{
	return mode == PLOCK_STICKY && !rule.explicit_rule;
}

/* The one protocol in mask, or PROTO__COUNT. */
static enum proto_kind
only(unsigned mask)
{
	for (int p = 0; p < PROTO__COUNT; p++)
		if (mask == PROTO_MASK(p))
			return (enum proto_kind)p;
	return PROTO__COUNT;
}

struct protolock_decision
protolock_decide(enum protocol_lock_mode mode, struct protolock_rule rule,
                 const struct store_lock *stored, enum proto_kind proto, uint64_t now_ms,
                 uint64_t expire_ms)
{
	struct protolock_decision d = {.verdict = POLICY_ALLOW,
	                               .write = PROTOLOCK_NONE,
	                               .allowed = PROTO__COUNT,
	                               .reason = PR_OK};

	if (mode == PLOCK_OFF)
		return d;
	if ((unsigned)proto >= PROTO__COUNT || !(rule.allow & PROTO_MASK(proto))) {
		d.verdict = POLICY_DENY_PROTOCOL;
		d.reason = PR_STATIC_RULE;
		d.allowed = only(rule.allow);
		return d;
	}
	if (!protolock_uses_store(mode, rule))
		return d;
	/* the sticky part is the store's claim decision, made here on the
	 * lock given, and in the store (atomically) by store_lock_claim() */
	struct store_claim c = protolock_claim(proto, now_ms, expire_ms);
	struct store_claim_answer a;

	a.outcome = store_claim_decide(&c, stored, &a.lock);
	return protolock_from_claim(&a);
}

struct store_claim
protolock_claim(enum proto_kind proto, uint64_t now_ms, uint64_t expire_ms)
{
	return (struct store_claim){.proto = proto,
	                            .now_ms = now_ms,
	                            .expire_ms = expire_ms,
	                            .refresh_ms = protolock_refresh_ms(expire_ms)};
}

struct protolock_decision
protolock_from_claim(const struct store_claim_answer *a)
{
	struct protolock_decision d = {.verdict = POLICY_ALLOW,
	                               .write = PROTOLOCK_NONE,
	                               .allowed = PROTO__COUNT,
	                               .reason = PR_OK};

	switch (a->outcome) {
	case STORE_CLAIM_CREATED:
	case STORE_CLAIM_REPLACED:
	case STORE_CLAIM_REFRESHED:
		d.write = a->outcome == STORE_CLAIM_CREATED    ? PROTOLOCK_CREATE
		          : a->outcome == STORE_CLAIM_REPLACED ? PROTOLOCK_REPLACE
		                                               : PROTOLOCK_REFRESH;
		d.rec = a->lock;
		break;
	case STORE_CLAIM_HELD:
		break;
	case STORE_CLAIM_OTHER:
	default:
		d.verdict = POLICY_DENY_PROTOCOL;
		d.reason = PR_STICKY_LOCK;
		d.allowed = a->lock.proto;
		break;
	}
	return d;
}

/* ---- the rule table ------------------------------------------------------ */

/*
 * Open addressing over keys kept back to back in one arena: 'u' or 'd',
 * the normalised key, NUL.  Keys come from the config, so the hash needs
 * no secret; lookups come from clients and only read.
 */
struct pl_slot {
	uint32_t off1; /* arena offset + 1; 0: empty */
	uint32_t hash;
	uint8_t allow;
};

struct protolock_rules {
	struct pl_slot *slots; /* owned; NULL until the first rule */
	uint32_t mask;         /* capacity - 1 */
	uint32_t n;
	char *arena; /* owned */
	size_t alen, acap;
};

static uint32_t
key_hash(char kind, const char *k, size_t len)
{
	uint64_t h = hash_fnv1a(HASH_FNV64_OFFSET, &kind, 1);

	/* splitmix64's finaliser: FNV's last bytes mix poorly on their own */
	h = hash_mix64(hash_fnv1a(h, k, len));
	return (uint32_t)h;
}

struct protolock_rules *
protolock_rules_new(void)
{
	return calloc(1, sizeof(struct protolock_rules));
}

void
protolock_rules_free(struct protolock_rules **rp)
{
	struct protolock_rules *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	free(r->slots);
	free(r->arena);
	free(r);
}

size_t
protolock_rules_count(const struct protolock_rules *r)
{
	return r->n;
}

static struct pl_slot *
find_slot(const struct protolock_rules *r, char kind, const char *k, size_t len, uint32_t h)
{
	if (r->slots == NULL)
		return NULL;
	for (uint32_t i = h & r->mask;; i = (i + 1) & r->mask) {
		struct pl_slot *s = &r->slots[i];
		const char *sk;

		if (s->off1 == 0)
			return s; /* where it would go */
		sk = r->arena + s->off1 - 1;
		if (s->hash == h && sk[0] == kind && strncmp(sk + 1, k, len) == 0 &&
		    sk[1 + len] == '\0')
			return s;
	}
}

static int
grow(struct protolock_rules *r)
{
	uint32_t ncap = r->slots ? (r->mask + 1) * 2 : 64;
	struct pl_slot *old = r->slots, *ns = calloc(ncap, sizeof(*ns));
	uint32_t ocap = r->slots ? r->mask + 1 : 0;

	if (ns == NULL)
		return -1;
	r->slots = ns;
	r->mask = ncap - 1;
	for (uint32_t i = 0; i < ocap; i++) {
		uint32_t j;

		if (old[i].off1 == 0)
			continue;
		for (j = old[i].hash & r->mask; ns[j].off1 != 0; j = (j + 1) & r->mask)
			;
		ns[j] = old[i];
	}
	free(old);
	return 0;
}

int
protolock_rules_add(struct protolock_rules *r, bool domain, const char *key, size_t len,
                    unsigned allow, bool replace, const char **err_out)
{
	char norm[ROUTE_USER_MAX + 1];
	char kind = domain ? 'd' : 'u';
	size_t nl = account_key_normalize(key, len, norm, sizeof(norm));
	struct pl_slot *s;
	uint32_t h;

	if (nl == 0) {
		*err_out = len > ROUTE_USER_MAX ? "name too long" : "empty name";
		return -1;
	}
	if (domain && memchr(norm, '@', nl) != NULL) {
		*err_out = "a domain cannot contain '@'";
		return -1;
	}
	if (allow == 0 || (allow & ~PROTO_MASK_ALL) != 0) {
		*err_out = "no protocol allowed";
		return -1;
	}
	h = key_hash(kind, norm, nl);
	if ((s = find_slot(r, kind, norm, nl, h)) != NULL && s->off1 != 0) {
		if (!replace) {
			*err_out = domain ? "a rule for this domain already exists"
			                  : "a rule for this user already exists";
			return -1;
		}
		s->allow = (uint8_t)allow;
		return 0;
	}
	if (r->n >= PROTOLOCK_RULES_MAX) {
		*err_out = "too many rules";
		return -1;
	}
	/* at most half full: probes stay short */
	if ((r->slots == NULL || (r->n + 1) * 2 > r->mask + 1) && grow(r) < 0) {
		*err_out = "out of memory";
		return -1;
	}
	if (r->alen + nl + 2 > r->acap) {
		size_t ncap = r->acap ? r->acap * 2 : 4096;
		char *na;

		while (ncap < r->alen + nl + 2)
			ncap *= 2;
		if (ncap > UINT32_MAX || (na = realloc(r->arena, ncap)) == NULL) {
			*err_out = "out of memory";
			return -1;
		}
		r->arena = na;
		r->acap = ncap;
	}
	s = find_slot(r, kind, norm, nl, h);
	s->off1 = (uint32_t)r->alen + 1;
	s->hash = h;
	s->allow = (uint8_t)allow;
	r->arena[r->alen] = kind;
	memcpy(r->arena + r->alen + 1, norm, nl);
	r->arena[r->alen + 1 + nl] = '\0';
	r->alen += nl + 2;
	r->n++;
	return 0;
}

struct protolock_rule
protolock_rules_lookup(const struct protolock_rules *r, const char *user, size_t len,
                       unsigned default_mask)
{
	struct protolock_rule rule = {.allow = default_mask, .explicit_rule = false};
	const struct pl_slot *s;
	const char *at;

	if (r == NULL || r->n == 0)
		return rule;
	if ((s = find_slot(r, 'u', user, len, key_hash('u', user, len))) != NULL && s->off1 != 0)
		return (struct protolock_rule){.allow = s->allow, .explicit_rule = true};
	if ((at = memrchr(user, '@', len)) != NULL) {
		const char *dom = at + 1;
		size_t dl = len - (size_t)(dom - user);

		if (dl > 0 && (s = find_slot(r, 'd', dom, dl, key_hash('d', dom, dl))) != NULL &&
		    s->off1 != 0)
			return (struct protolock_rule){.allow = s->allow, .explicit_rule = true};
	}
	return rule;
}

const char *
protolock_mask_name(unsigned mask)
{
	switch (mask & PROTO_MASK_ALL) {
	case PROTO_MASK(PROTO_IMAP):
		return "imap";
	case PROTO_MASK(PROTO_POP3):
		return "pop3";
	case PROTO_MASK_ALL:
		return "imap,pop3";
	default:
		return "none";
	}
}

/* "imap", "pop3", "imap,pop3" (any order, any case) -> mask; 0 if bad. */
static unsigned
parse_protocols(const char *s, size_t len)
{
	unsigned mask = 0;

	while (len > 0) {
		const char *comma = memchr(s, ',', len);
		size_t n = comma ? (size_t)(comma - s) : len;
		unsigned bit;

		if (n == 4 && strncasecmp(s, "imap", 4) == 0)
			bit = PROTO_MASK(PROTO_IMAP);
		else if (n == 4 && strncasecmp(s, "pop3", 4) == 0)
			bit = PROTO_MASK(PROTO_POP3);
		else
			return 0;
		if (mask & bit)
			return 0;
		mask |= bit;
		if (comma == NULL)
			break;
		len -= n + 1;
		s = comma + 1;
		if (len == 0)
			return 0; /* a trailing comma */
	}
	return mask;
}

static void
report(FILE *errs, const char *path, unsigned line, unsigned *nerr, const char *msg)
{
	if (errs != NULL && *nerr < MAX_SHOWN_ERRORS)
		fprintf(errs, "%s:%u: %s\n", path, line, msg);
	(*nerr)++;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/*
 * The next line of f into buf (NUL-terminated, without its '\n').  Returns
 * its length, -1 at the end, -2 for a line over PROTOLOCK_LINE_MAX (the
 * rest of it is skipped), -3 for a NUL byte in it.
 */
static long
read_line(FILE *f, char *buf)
{
	size_t n = 0;
	bool nul = false, any = false;
	int c;

	while ((c = getc(f)) != EOF && c != '\n') {
		any = true;
		if (c == '\0')
			nul = true;
		if (n < PROTOLOCK_LINE_MAX)
			buf[n] = (char)c;
		n++;
	}
	if (c == EOF && !any)
		return -1;
	if (n > PROTOLOCK_LINE_MAX)
		return -2;
	buf[n] = '\0';
	return nul ? -3 : (long)n;
}

int
protolock_rules_load(struct protolock_rules *r, const char *path, FILE *errs)
{
	char buf[PROTOLOCK_LINE_MAX + 1];
	unsigned line = 0, nerr = 0;
	FILE *f = fopen(path, "re");
	long len;

	if (f == NULL) {
		if (errs != NULL)
			fprintf(errs, "%s:0: cannot read: %s\n", path, strerror(errno));
		return -1;
	}
	while ((len = read_line(f, buf)) != -1) {
		char *p = buf, *key, *protos, *rest;
		const char *err;
		unsigned mask;
		bool domain;

		line++;
		if (len == -2) {
			report(errs, path, line, &nerr, "line too long");
			continue;
		}
		if (len == -3) {
			report(errs, path, line, &nerr, "NUL byte in line");
			continue;
		}
		if ((rest = strchr(p, '#')) != NULL)
			*rest = '\0';
		while (is_space(*p))
			p++;
		if (*p == '\0')
			continue;
		key = p;
		while (*p != '\0' && !is_space(*p))
			p++;
		if (*p != '\0')
			*p++ = '\0';
		while (is_space(*p))
			p++;
		protos = p;
		while (*p != '\0' && !is_space(*p))
			p++;
		if (*p != '\0')
			*p++ = '\0';
		while (is_space(*p))
			p++;
		if (*protos == '\0') {
			report(errs, path, line, &nerr,
			       "expected \"user protocols\" or \"@domain protocols\"");
			continue;
		}
		if (*p != '\0') {
			report(
			    errs, path, line, &nerr,
			    "extra text after the protocols (they take no spaces: \"imap,pop3\")");
			continue;
		}
		if ((mask = parse_protocols(protos, strlen(protos))) == 0) {
			report(errs, path, line, &nerr,
			       "protocols must be \"imap\", \"pop3\" or \"imap,pop3\"");
			continue;
		}
		domain = key[0] == '@';
		if (domain)
			key++;
		if (protolock_rules_add(r, domain, key, strlen(key), mask, false, &err) < 0)
			report(errs, path, line, &nerr, err);
	}
	if (ferror(f))
		report(errs, path, line, &nerr, "read error");
	fclose(f);
	if (errs != NULL && nerr > MAX_SHOWN_ERRORS)
		fprintf(errs, "%s:0: %u more problems not shown\n", path, nerr - MAX_SHOWN_ERRORS);
	return (int)nerr;
}

struct protolock_rules *
protolock_rules_from_config(const struct config *cfg, FILE *errs)
{
	struct protolock_rules *r = protolock_rules_new();
	bool bad = false;

	if (r == NULL) {
		if (errs != NULL)
			fprintf(errs, "%s:0: out of memory\n", cfg->path ? cfg->path : "config");
		return NULL;
	}
	if (cfg->policy.protocols_file != NULL &&
	    protolock_rules_load(r, cfg->policy.protocols_file, errs) != 0)
		bad = true;
	for (size_t i = 0; i < cfg->policy.nprotocols; i++) {
		const struct protocol_rule_conf *rc = &cfg->policy.protocols[i];
		const char *key = rc->user ? rc->user : rc->domain, *err;

		if (key == NULL)
			continue;
		if (protolock_rules_add(r, rc->user == NULL, key, strlen(key), rc->allow, true,
		                        &err) < 0) {
			if (errs != NULL)
				fprintf(errs, "%s:0: policy.protocols: %s \"%s\": %s\n",
				        cfg->path ? cfg->path : "config",
				        rc->user ? "user" : "domain", key, err);
			bad = true;
		}
	}
	if (bad)
		protolock_rules_free(&r);
	return r;
}
