/*
 * sieve_session.c: the ManageSieve dialog before login (RFC 5804).
 * PLACEHOLDER: being written.
 */
#include "conn.h"

static int
sieve_start(struct conn *c)
{
	(void)c;
	return -1;
}

static void
sieve_nothing(struct conn *c)
{
	(void)c;
}

static void
sieve_text(struct conn *c, const char *text)
{
	(void)c;
	(void)text;
}

static void
sieve_oauth_error(struct conn *c, const char *b64, bool last)
{
	(void)c;
	(void)b64;
	(void)last;
}

static bool
sieve_sasl_reject(struct conn *c, enum sasl_rc rc)
{
	(void)c;
	(void)rc;
	return false;
}

const struct proto_ops sieve_proto_ops = {
    .kind = PROTO_SIEVE,
    .start = sieve_start,
    .on_input = sieve_nothing,
    .reply_ok = sieve_text,
    .reply_fail = sieve_text,
    .oauth_error = sieve_oauth_error,
    .sasl_expect = sieve_nothing,
    .sasl_reject = sieve_sasl_reject,
    .bye = sieve_text,
    .free_sess = sieve_nothing,
};
