/*
 * lookup_breaker.c: the circuit breaker of each lookup service URL, one
 * for the whole process (every worker asks the same service): a small
 * table under one mutex, held only for a few loads and stores.  Says
 * whether to ask; never asks, never waits on anything but the mutex.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "lookup_impl.h"
#include "metrics.h"

#define BREAKER_URL_MAX 2048 /* config_lookup.c's bound on a URL */

enum breaker_state { BS_CLOSED = 0, BS_OPEN, BS_HALF };

struct breaker {
	char url[BREAKER_URL_MAX + 1]; /* "": a free slot */
	enum breaker_state state;
	int failures;      /* in a row */
	uint64_t until_ms; /* BS_OPEN: the probe may go from then on */
	bool probing;      /* BS_HALF: the probe is under way */
};

static pthread_mutex_t breakers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct breaker breakers[LOOKUP_BREAKERS_MAX];

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* url's slot, made when make and one is free; NULL otherwise.  Locked. */
static struct breaker *
breaker_find(const char *url, bool make)
{
	struct breaker *free_slot = NULL, *closed = NULL;

	if (strlen(url) > BREAKER_URL_MAX)
		return NULL;
	for (size_t i = 0; i < LOOKUP_BREAKERS_MAX; i++) {
		if (strcmp(breakers[i].url, url) == 0 && breakers[i].url[0] != '\0')
			return &breakers[i];
		if (free_slot == NULL && breakers[i].url[0] == '\0')
			free_slot = &breakers[i];
		if (closed == NULL && breakers[i].state == BS_CLOSED)
			closed = &breakers[i];
	}
	/* full (URLs of past reloads): a closed breaker forgets its few failures */
	if (free_slot == NULL)
		free_slot = closed;
	if (!make || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(*free_slot));
	strcpy(free_slot->url, url);
	return free_slot;
}

enum breaker_verdict
lookup_breaker_admit(const char *url)
{
	enum breaker_verdict v = BREAKER_PASS;
	struct breaker *b;

	pthread_mutex_lock(&breakers_lock);
	if ((b = breaker_find(url, false)) != NULL) {
		if (b->state == BS_OPEN && mono_ms() >= b->until_ms) {
			b->state = BS_HALF; /* the wait is over: one question probes */
			b->probing = false;
		}
		if (b->state == BS_OPEN || (b->state == BS_HALF && b->probing)) {
			v = BREAKER_REFUSE;
		} else if (b->state == BS_HALF) {
			b->probing = true;
			v = BREAKER_PROBE;
		}
	}
	pthread_mutex_unlock(&breakers_lock);
	return v;
}

void
lookup_breaker_report(const char *url, bool probe, bool failed, int failures, uint64_t wait_ms,
                      const char *why)
{
	enum { SAME, OPENED, CLOSED } change = SAME;
	struct breaker *b;
	int n = 0;

	pthread_mutex_lock(&breakers_lock);
	/* a slot only once something failed: a healthy service costs none */
	if ((b = breaker_find(url, failed)) != NULL) {
		if (!failed) {
			b->failures = 0;
			/* an answer while half-open closes it, the probe's or a late one */
			if (b->state != BS_CLOSED && (probe || b->state == BS_HALF))
				change = CLOSED;
			if (change == CLOSED)
				b->state = BS_CLOSED;
			b->probing = false;
		} else {
			n = ++b->failures;
			if ((b->state == BS_HALF && probe) ||
			    (b->state == BS_CLOSED && b->failures >= failures)) {
				b->state = BS_OPEN;
				b->probing = false;
				b->until_ms = mono_ms() + wait_ms;
				change = OPENED;
			}
		}
	}
	pthread_mutex_unlock(&breakers_lock);
	if (change != SAME)
		metrics_lookup_breakers(lookup_breakers_open());
	if (change != SAME) {
		char qu[LOG_QUOTED_MAX], qw[LOG_QUOTED_MAX];

		log_quote(qu, sizeof(qu), url, strlen(url));
		if (change == OPENED)
			log_kv(LOG_WARN, "lookup.breaker_open", "url=%s failures=%d why=%s", qu, n,
			       log_quote(qw, sizeof(qw), why ? why : "", why ? strlen(why) : 0));
		else
			log_kv(LOG_INFO, "lookup.breaker_closed", "url=%s", qu);
	}
}

void
lookup_breaker_release(const char *url)
{
	struct breaker *b;

	pthread_mutex_lock(&breakers_lock);
	if ((b = breaker_find(url, false)) != NULL && b->state == BS_HALF)
		b->probing = false;
	pthread_mutex_unlock(&breakers_lock);
}

int
lookup_breakers_open(void)
{
	int n = 0;

	pthread_mutex_lock(&breakers_lock);
	for (size_t i = 0; i < LOOKUP_BREAKERS_MAX; i++)
		n += breakers[i].url[0] != '\0' && breakers[i].state != BS_CLOSED;
	pthread_mutex_unlock(&breakers_lock);
	return n;
}
