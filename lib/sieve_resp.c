/*
 * sieve_resp.c: ManageSieve backend responses (sieve_resp.h).
 * PLACEHOLDER: being written.
 */
#include <string.h>

#include "sieve_resp.h"

enum sieve_resp_kind
sieve_resp_parse(const char *line, struct sieve_resp *r)
{
	(void)line;
	memset(r, 0, sizeof(*r));
	r->kind = SIEVE_R_OTHER;
	return r->kind;
}

void
sieve_caps_add(struct sieve_caps *caps, const struct sieve_resp *r)
{
	(void)caps;
	(void)r;
}
