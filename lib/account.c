/*
 * account.c: the account key (account.h).  It lives in lib/ because both
 * routing (lib/route.c, its rule tables and map files) and the policy
 * (throttles, locks, the store) take it as the account's identity.
 * Changing it moves users and orphans locks: test_account pins it.
 */
#include <string.h>

#include "account.h"

static int
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

size_t
account_key_normalize(const char *user, size_t len, char *out, size_t outlen)
{
	size_t start = 0, end = len, n;

	while (start < end && is_space((unsigned char)user[start]))
		start++;
	while (end > start && is_space((unsigned char)user[end - 1]))
		end--;
	n = end - start;
	if (n == 0 || n >= outlen)
		return 0;
	/* A NUL inside cannot be a key: keys are C strings in the arena. */
	if (memchr(user + start, '\0', n) != NULL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = user[start + i];

		/* ASCII only, by hand: tolower() would follow the locale. */
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
	return n;
}

size_t
account_key(const char *user, size_t len, char *out, size_t outlen)
{
	size_t n = account_key_normalize(user, len, out, outlen);

	if (n == 0) {
		n = len < outlen - 1 ? len : outlen - 1;
		memcpy(out, user, n);
		out[n] = '\0';
	}
	return n;
}
