/*
 * account.h: the account key, the one name under which routing, throttles,
 * session counts, protocol locks and the store know a user.  A login makes
 * it once from the name the client sent (account_key()); every room after
 * takes the key as it is.  Pure: no I/O, no locale.
 */
#ifndef POSTERN_ACCOUNT_H
#define POSTERN_ACCOUNT_H

#include <stddef.h>

#define ACCOUNT_KEY_MAX 256 /* bytes of a key, without its NUL */

/*
 * Normalise a user name (or a domain, or a rule's key from the config):
 * lower-case ASCII, surrounding white space removed, other bytes as they
 * are.  Returns the length written to out (NUL-terminated), or 0 when the
 * result would be empty, holds a NUL or does not fit outlen.
 */
size_t account_key_normalize(const char *user, size_t len, char *out, size_t outlen);

/*
 * The account key of a login's user name: account_key_normalize(), or,
 * when that gives nothing (a blank name), the raw bytes cut to outlen - 1,
 * so that even such a login has a key to count its failures on (a blank
 * key starts with white space, which route_lookup() never matches).
 * Returns its length (0 only for an empty name); out is NUL-terminated;
 * outlen >= 1.
 */
size_t account_key(const char *user, size_t len, char *out, size_t outlen);

#endif
