/*
 * policy_admin.c: `postern -c FILE lock show|set|clear|list`, the admin
 * commands on the protocol locks.  They run in their own process, on the
 * same store as the daemon (LMDB serialises writers across processes), and
 * never create a store: that is the daemon's, owned by its user.
 */
#include <string.h>
#include <time.h>

#include "account.h"
#include "log.h"
#include "policy.h"
#include "protolock.h"
#include "route.h"
#include "store.h"

struct show {
	FILE *out;
	uint64_t now_ms, expire_ms;
	enum protocol_lock_mode mode;
	const struct protolock_rules *rules; /* NULL: not known */
	size_t n;
};

static const char *
fmt_time(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "?");
	return buf;
}

/* One line: user="..." lock=imap origin=login created=... used=... expires=... */
static void
show_line(struct show *s, const char *key, size_t len, const struct store_lock *l)
{
	char qu[LOG_QUOTED_MAX], c[32], u[32], e[32];

	log_quote(qu, sizeof(qu), key, len);
	if (l == NULL) {
		fprintf(s->out, "user=%s lock=none", qu);
	} else {
		fprintf(s->out, "user=%s lock=%s origin=%s created=%s used=%s expires=%s", qu,
		        proto_name(l->proto), l->origin == STORE_ORIGIN_ADMIN ? "admin" : "login",
		        fmt_time(l->created_ms, c, sizeof(c)), fmt_time(l->used_ms, u, sizeof(u)),
		        s->expire_ms == 0 ? "never"
		                          : fmt_time(l->used_ms + s->expire_ms, e, sizeof(e)));
		if (protolock_expired(l, s->now_ms, s->expire_ms))
			fprintf(s->out, " expired=yes");
	}
	if (s->rules != NULL) {
		/* the lock does not decide for an account with its own rule */
		struct protolock_rule r =
		    protolock_rules_lookup(s->rules, key, len, PROTO_MASK_ALL);

		if (r.explicit_rule)
			fprintf(s->out, " static=%s", protolock_mask_name(r.allow));
	}
	fputc('\n', s->out);
	s->n++;
}

static int
list_one(void *arg, const char *key, size_t len, const struct store_lock *rec)
{
	show_line(arg, key, len, rec);
	return 0;
}

static int
usage(FILE *err)
{
	fprintf(err, "usage: postern -c FILE lock show USER\n"
	             "       postern -c FILE lock set USER imap|pop3\n"
	             "       postern -c FILE lock clear USER\n"
	             "       postern -c FILE lock list\n");
	return 2;
}

int
policy_admin_run(const struct config *cfg, int argc, char **argv, uint64_t now_ms, FILE *out,
                 FILE *err)
{
	struct show s = {.out = out,
	                 .now_ms = now_ms,
	                 .expire_ms = cfg->policy.lock_expire_ms,
	                 .mode = (enum protocol_lock_mode)cfg->policy.protocol_lock};
	struct protolock_rules *rules = NULL;
	char key[ROUTE_USER_MAX + 1];
	size_t klen = 0;
	struct store_params sp;
	struct store *st;
	const char *sub, *e = NULL;
	int rc = 1;

	if (argc < 2 || strcmp(argv[0], "lock") != 0)
		return usage(err);
	sub = argv[1];
	if (!((strcmp(sub, "show") == 0 && argc == 3) || (strcmp(sub, "set") == 0 && argc == 4) ||
	      (strcmp(sub, "clear") == 0 && argc == 3) || (strcmp(sub, "list") == 0 && argc == 2)))
		return usage(err);
	if (argc >= 3 &&
	    (klen = account_key_normalize(argv[2], strlen(argv[2]), key, sizeof(key))) == 0) {
		fprintf(err, "postern: lock %s: \"%s\" is not a user name\n", sub, argv[2]);
		return 2;
	}
	enum proto_kind proto = PROTO__COUNT;

	if (argc == 4) {
		/* a lock is about mail access: IMAP or POP3, never ManageSieve */
		for (int p = 0; p < PROTO__COUNT; p++)
			if (p != PROTO_SIEVE &&
			    strcmp(argv[3], proto_name((enum proto_kind)p)) == 0)
				proto = (enum proto_kind)p;
		if (proto == PROTO__COUNT) {
			fprintf(err, "postern: lock set: the protocol must be imap or pop3\n");
			return 2;
		}
	}
	if (cfg->state == NULL) {
		fprintf(err, "postern: lock: no state store: set state = \"lmdb:DIR\" in %s\n",
		        cfg->path ? cfg->path : "the configuration");
		return 1;
	}
	store_params_from_config(cfg, &sp);
	if ((st = store_open_with(cfg->state, &sp, 0, &e)) == NULL) {
		fprintf(err, "postern: lock: state \"%s\": %s\n", cfg->state, e);
		return 1;
	}
	/* static rules are shown beside the lock they override; a rule file
	 * that fails to read only costs that note */
	if (cfg->policy.protocol_lock != PLOCK_OFF)
		rules = protolock_rules_from_config(cfg, err);
	s.rules = rules;

	if (strcmp(sub, "show") == 0) {
		struct store_lock l;
		bool found;

		if (store_lock_get(st, key, klen, &l, &found, &e) < 0)
			goto fail;
		show_line(&s, key, klen, found ? &l : NULL);
	} else if (strcmp(sub, "set") == 0) {
		struct store_lock l = {.proto = proto,
		                       .origin = STORE_ORIGIN_ADMIN,
		                       .created_ms = now_ms,
		                       .used_ms = now_ms};

		if (store_lock_put(st, key, klen, &l, &e) < 0)
			goto fail;
		show_line(&s, key, klen, &l);
		if (s.mode != PLOCK_STICKY)
			fprintf(err,
			        "postern: lock set: note: protocol_lock is \"%s\": stored locks "
			        "are enforced only with \"sticky\"\n",
			        s.mode == PLOCK_OFF      ? "off"
			        : s.mode == PLOCK_STATIC ? "static"
			                                 : "concurrent");
	} else if (strcmp(sub, "clear") == 0) {
		bool found;

		if (store_lock_del(st, key, klen, &found, &e) < 0)
			goto fail;
		show_line(&s, key, klen, NULL);
		if (!found)
			fprintf(err, "postern: lock clear: there was no lock\n");
	} else {
		if (store_lock_list(st, list_one, &s, &e) < 0)
			goto fail;
	}
	rc = 0;
	goto out;
fail:
	fprintf(err, "postern: lock %s: %s\n", sub, e ? e : "failed");
out:
	fflush(out);
	protolock_rules_free(&rules);
	store_close(&st);
	return rc;
}

int
policy_admin_main(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
	return policy_admin_run(cfg, argc, argv, policy_now_ms(), out, err);
}

/* ---- route and kick ------------------------------------------------------- */

static int
fleet_usage(FILE *err)
{
	fprintf(err, "usage: postern -c FILE route set USER BACKEND [--kick]\n"
	             "       postern -c FILE route clear USER\n"
	             "       postern -c FILE route show USER\n"
	             "       postern -c FILE kick --user USER\n");
	return 2;
}

static bool
backend_known(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nbackends; i++)
		if (strcmp(cfg->backends[i].name, name) == 0)
			return true;
	return false;
}

int
policy_admin_fleet(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
	char key[ROUTE_USER_MAX + 1], qu[LOG_QUOTED_MAX];
	const char *cmd, *sub = NULL, *user, *backend = NULL, *e = NULL;
	bool kick = false, shared, found = false;
	struct store_params sp;
	struct store *st;
	size_t klen;
	int rc = 1;

	if (argc < 1)
		return fleet_usage(err);
	cmd = argv[0];
	if (strcmp(cmd, "kick") == 0) {
		if (argc != 3 || strcmp(argv[1], "--user") != 0)
			return fleet_usage(err);
		user = argv[2];
		kick = true;
	} else if (strcmp(cmd, "route") == 0 && argc >= 3) {
		sub = argv[1];
		user = argv[2];
		if (strcmp(sub, "set") == 0 && argc >= 4 && argc <= 5) {
			backend = argv[3];
			if (argc == 5 && strcmp(argv[4], "--kick") != 0)
				return fleet_usage(err);
			kick = argc == 5;
		} else if (!((strcmp(sub, "clear") == 0 || strcmp(sub, "show") == 0) &&
		             argc == 3)) {
			return fleet_usage(err);
		}
	} else {
		return fleet_usage(err);
	}
	if ((klen = account_key_normalize(user, strlen(user), key, sizeof(key))) == 0) {
		fprintf(err, "postern: %s: \"%s\" is not a user name\n", cmd, user);
		return 2;
	}
	if (backend != NULL && !backend_known(cfg, backend)) {
		fprintf(err, "postern: route set: no backend \"%s\" in %s\n", backend,
		        cfg->path ? cfg->path : "the configuration");
		return 1;
	}
	if (cfg->state == NULL) {
		fprintf(err, "postern: %s: no state store: set state in %s\n", cmd,
		        cfg->path ? cfg->path : "the configuration");
		return 1;
	}
	store_params_from_config(cfg, &sp);
	if ((st = store_open_with(cfg->state, &sp, 0, &e)) == NULL) {
		fprintf(err, "postern: %s: state \"%s\": %s\n", cmd, cfg->state, e);
		return 1;
	}
	shared = store_is_shared(st);
	log_quote(qu, sizeof(qu), key, klen);
	if (sub != NULL && strcmp(sub, "show") == 0) {
		char b[STORE_BACKEND_MAX + 1];

		if (store_route_get(st, key, klen, b, &found, &e) < 0)
			goto fail;
		fprintf(out, "user=%s route=%s%s\n", qu, found ? b : "none",
		        found && !backend_known(cfg, b) ? " note=unknown_backend" : "");
	} else if (sub != NULL && strcmp(sub, "set") == 0) {
		if (store_route_put(st, key, klen, backend, &e) < 0)
			goto fail;
		fprintf(out, "user=%s route=%s\n", qu, backend);
	} else if (sub != NULL) {
		if (store_route_del(st, key, klen, &found, &e) < 0)
			goto fail;
		fprintf(out, "user=%s route=none\n", qu);
		if (!found)
			fprintf(err, "postern: route clear: there was no route\n");
	}
	/* every proxy forgets its cached lookup; kicks go to the whole fleet */
	if (shared && sub != NULL && strcmp(sub, "show") != 0 &&
	    store_publish(st, STORE_EVENT_ROUTE, key, klen, &e) < 0)
		goto fail;
	if (kick) {
		if (!shared) {
			fprintf(err,
			        "postern: kick: the store \"%s\" is not shared: the local kick "
			        "goes through the admin socket\n",
			        store_name(st));
			if (sub == NULL)
				goto out_rc;
		} else {
			if (store_publish(st, STORE_EVENT_KICK, key, klen, &e) < 0)
				goto fail;
			fprintf(out, "user=%s kick=sent\n", qu);
		}
	}
	rc = 0;
	goto out_rc;
fail:
	fprintf(err, "postern: %s%s%s: %s\n", cmd, sub ? " " : "", sub ? sub : "",
	        e ? e : "failed");
out_rc:
	fflush(out);
	store_close(&st);
	return rc;
}
