/*
 * route_map.c: route map files (route_map_load()): one rule a line, added to
 * a route table the config built.  Reads the file in big chunks and cuts
 * lines in place; allocates nothing per line; never looks anything up.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "route.h"
#include "route_impl.h"
#include "route_map.h"

#define MAP_CHUNK (1u << 20) /* read size; a line may not be longer than MAP_LINE */

/*
 * One load.  A million-line map must cost what its rules cost and no more:
 * lines are cut in place in one read buffer, and the only other memory is
 * first[], kept for the load's length so that a duplicate can name the line
 * of its first occurrence.
 */
struct rt_first {
	uint32_t key;  /* key offset in the arena: ascending, as keys are appended */
	uint32_t line; /* where it was */
};

struct rt_mapload {
	struct route_table *rt;
	const char *path;
	FILE *errs;
	route_resolve_cb resolve;
	void *arg;
	size_t nerr;
	uint32_t keys_base;     /* keys at and after this offset came from this file */
	struct rt_first *first; /* owned: [nfirst], one per rule added */
	size_t nfirst, first_cap;
	/* the last target resolved: maps tend to repeat one target for long runs */
	char last[ROUTE_MAP_LINE_MAX + 1];
	size_t last_n; /* 0: nothing cached */
	size_t pool[ROUTE_POOL_MAX];
	uint32_t weights[ROUTE_POOL_MAX];
};

static void map_err(struct rt_mapload *m, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
map_err(struct rt_mapload *m, size_t line, const char *fmt, ...)
{
	va_list ap;

	m->nerr++;
	if (m->errs == NULL)
		return;
	fprintf(m->errs, "%s:%zu: ", m->path, line);
	va_start(ap, fmt);
	vfprintf(m->errs, fmt, ap);
	va_end(ap);
	fputc('\n', m->errs);
}

/* s[0..n) for a message: control bytes as '?', cut at 64 bytes. */
static const char *
map_show(const char *s, size_t n, char *buf, size_t buflen)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 4 < buflen; i++) {
		if (i == 64) {
			memcpy(buf + k, "...", 3);
			k += 3;
			break;
		}
		buf[k++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	}
	buf[k] = '\0';
	return buf;
}

/* The line a key at arena offset off was added on by this load. */
static size_t
map_first_line(const struct rt_mapload *m, uint32_t off)
{
	size_t lo = 0, hi = m->nfirst;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->first[mid].key < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < m->nfirst && m->first[lo].key == off ? m->first[lo].line : 0;
}

/* target -> m->pool/weights, *n_out; through the one-entry cache.  0 or -1. */
static int
map_resolve(struct rt_mapload *m, const char *target, size_t tlen, size_t *n_out)
{
	size_t n = 0;

	if (m->last_n != 0 && strcmp(m->last, target) == 0) {
		*n_out = m->last_n;
		return 0;
	}
	m->last_n = 0;
	for (size_t i = 0; i < ROUTE_POOL_MAX; i++)
		m->weights[i] = 1;
	if (m->resolve(m->arg, target, m->pool, m->weights, &n) < 0)
		return -1;
	if (n == 0 || n > ROUTE_POOL_MAX)
		return -1;
	memcpy(m->last, target, tlen + 1);
	m->last_n = n;
	*n_out = n;
	return 0;
}

static bool
map_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* One line, s[0..len) without its LF; may write into s. */
static void
map_line(struct rt_mapload *m, char *s, size_t len, size_t line)
{
	struct route_table *rt = m->rt;
	char k[ROUTE_USER_MAX], show[80], show2[80];
	size_t i = 0, kstart, kend, tstart, tend, klen, n;
	bool domain;
	struct rt_map *map;
	const char *what, *err = NULL;
	uint32_t tag, off;
	const struct rt_slot *slot;

	if (len > ROUTE_MAP_LINE_MAX) {
		map_err(m, line, "line longer than %d bytes", ROUTE_MAP_LINE_MAX);
		return;
	}
	if (memchr(s, '\0', len) != NULL) {
		map_err(m, line, "NUL byte in the line");
		return;
	}
	while (i < len && map_blank(s[i]))
		i++;
	if (i == len || s[i] == '#')
		return; /* blank or comment */
	kstart = i;
	while (i < len && !map_blank(s[i]))
		i++;
	kend = i;
	while (i < len && map_blank(s[i]))
		i++;
	tstart = i;
	while (i < len && !map_blank(s[i]))
		i++;
	tend = i;
	while (i < len && map_blank(s[i]))
		i++;
	if (tstart == tend || s[tstart] == '#') {
		map_err(m, line,
		        "\"%s\" has no target: expected 'user backend', '@domain backend' or "
		        "'@domain pool:NAME'",
		        map_show(s + kstart, kend - kstart, show, sizeof(show)));
		return;
	}
	if (i < len && s[i] != '#') {
		map_err(m, line,
		        "unexpected \"%s\" after the target (one rule a line; '#' for a "
		        "comment)",
		        map_show(s + i, len - i, show, sizeof(show)));
		return;
	}
	s[tend] = '\0';

	domain = s[kstart] == '@';
	if (domain)
		kstart++;
	what = domain ? "domain" : "user";
	map = domain ? &rt->domains : &rt->users;
	if (kstart == kend) {
		map_err(m, line, "empty domain after '@'");
		return;
	}
	if ((klen = account_key_normalize(s + kstart, kend - kstart, k, sizeof(k))) == 0) {
		map_err(m, line, "%s \"%s\" is longer than %d bytes", what,
		        map_show(s + kstart, kend - kstart, show, sizeof(show)),
		        ROUTE_USER_MAX - 1);
		return;
	}

	/* a second rule for a key: say where the first one is */
	tag = (uint32_t)(rt_key_hash(k, klen) >> 32);
	slot = rt_map_find(rt, map, tag, k, klen, rt_key_eq);
	if (slot != NULL && slot->ref != 0) {
		off = slot->ref - 1;
		if (off >= m->keys_base)
			map_err(m, line, "duplicate %s \"%s\" (first on line %zu)", what,
			        map_show(k, klen, show, sizeof(show)), map_first_line(m, off));
		else
			map_err(m, line,
			        "%s \"%s\" already has a route in the config; the map may not "
			        "repeat it",
			        what, map_show(k, klen, show, sizeof(show)));
		return;
	}

	if (map_resolve(m, s + tstart, tend - tstart, &n) < 0) {
		if (tend - tstart > 5 && memcmp(s + tstart, "pool:", 5) == 0)
			map_err(m, line, "unknown pool \"%s\"",
			        map_show(s + tstart + 5, tend - tstart - 5, show2, sizeof(show2)));
		else
			map_err(m, line, "unknown backend \"%s\"",
			        map_show(s + tstart, tend - tstart, show2, sizeof(show2)));
		return;
	}
	if (rt_grow((void **)&m->first, &m->first_cap, m->nfirst + 1, sizeof(*m->first)) < 0) {
		map_err(m, line, "out of memory");
		return;
	}
	off = (uint32_t)rt->keys_len;
	if (rt_add_rule(rt, map, domain, k, m->pool, m->weights, n, &err) < 0) {
		map_err(m, line, "%s \"%s\": %s", what, map_show(k, klen, show, sizeof(show)), err);
		return;
	}
	m->first[m->nfirst].key = off;
	m->first[m->nfirst].line = line > UINT32_MAX ? UINT32_MAX : (uint32_t)line;
	m->nfirst++;
}

/*
 * Feed f to map_line() line by line.  Lines are cut in place in one buffer;
 * a partial last line moves to its front before the next read.  A line over
 * ROUTE_MAP_LINE_MAX is reported once and skipped to its end.
 */
static void
map_read(struct rt_mapload *m, FILE *f, char *buf)
{
	size_t have = 0, line = 0;
	bool skipping = false, eof = false;

	while (!eof) {
		size_t got = fread(buf + have, 1, MAP_CHUNK - have, f), start = 0;
		char *nl;

		if (got == 0) {
			if (ferror(f)) {
				map_err(m, line + 1, "read error: %s", strerror(errno));
				return;
			}
			eof = true;
		}
		have += got;
		while ((nl = memchr(buf + start, '\n', have - start)) != NULL) {
			size_t end = (size_t)(nl - buf);

			line++;
			if (skipping)
				skipping = false;
			else
				map_line(m, buf + start, end - start, line);
			start = end + 1;
		}
		have -= start;
		if (eof) {
			if (have > 0 && !skipping)
				map_line(m, buf + start, have, line + 1);
		} else if (have > ROUTE_MAP_LINE_MAX) {
			if (!skipping)
				map_err(m, line + 1, "line longer than %d bytes",
				        ROUTE_MAP_LINE_MAX);
			skipping = true;
			have = 0;
		} else {
			memmove(buf, buf + start, have);
		}
	}
}

int
route_map_load(struct route_table *rt, const char *path, route_resolve_cb resolve, void *arg,
               FILE *errs)
{
	struct rt_mapload *m;
	char *buf;
	FILE *f;
	int rc;

	if ((m = calloc(1, sizeof(*m))) == NULL || (buf = malloc(MAP_CHUNK)) == NULL) {
		free(m);
		if (errs != NULL)
			fprintf(errs, "%s:0: out of memory\n", path);
		return -1;
	}
	m->rt = rt;
	m->path = path;
	m->errs = errs;
	m->resolve = resolve;
	m->arg = arg;
	m->keys_base = (uint32_t)rt->keys_len;
	if ((f = fopen(path, "r")) == NULL) {
		map_err(m, 0, "cannot open: %s", strerror(errno));
	} else {
		map_read(m, f, buf);
		fclose(f);
	}
	/* give back the arena's doubling slack: a big map is loaded once */
	if (rt->keys_cap > rt->keys_len && rt->keys_len > 0) {
		char *k = realloc(rt->keys, rt->keys_len);

		if (k != NULL) {
			rt->keys = k;
			rt->keys_cap = rt->keys_len;
		}
	}
	if (errs != NULL)
		fflush(errs);
	rc = m->nerr == 0 ? 0 : -1;
	free(m->first);
	free(m);
	free(buf);
	return rc;
}
