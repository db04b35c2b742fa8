/*
 * backend_sieve.c: the ManageSieve side of a backend login (RFC 5804).
 * PLACEHOLDER: being written.
 */
#include <stdio.h>
#include <string.h>

#include "backend_impl.h"

bool
backend_sieve_caps(char *sieve, size_t sieve_len, char *notify, size_t notify_len)
{
	if (sieve_len > 0)
		sieve[0] = '\0';
	if (notify_len > 0)
		notify[0] = '\0';
	return false;
}

static void
sieve_begin(struct backend *be)
{
	(void)be;
}

static void
sieve_after_tls(struct backend *be)
{
	(void)be;
}

static int
sieve_line(struct backend *be, char *line)
{
	return backend_fail_said(be, line, FAIL_BACKEND_PROTO, LR_BACKEND_BAD_GREETING);
}

static const char *
sieve_ok_text(const struct backend *be)
{
	(void)be;
	return "";
}

const struct backend_dialog backend_sieve_dialog = {
    .name = "sieve",
    .begin = sieve_begin,
    .after_tls = sieve_after_tls,
    .line = sieve_line,
    .ok_text = sieve_ok_text,
    .logout = "LOGOUT\r\n",
};
