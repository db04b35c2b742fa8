/*
 * chars.h: the character classes and the case-insensitive word match the
 * pure IMAP and POP3 parsers share.  Inline, no state, no I/O.
 */
#ifndef POSTERN_CHARS_H
#define POSTERN_CHARS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool
chars_alpha(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static inline bool
chars_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* RFC 4422 §3.1: mechanism names are upper-case letters, digits, "-", "_". */
static inline bool
chars_mech(uint8_t c)
{
	return chars_alpha(c) || chars_digit(c) || c == '-' || c == '_';
}

/* RFC 4648 §4 alphabet plus the pad (RFC 4959 §3, RFC 5034 §4 responses). */
static inline bool
chars_base64(uint8_t c)
{
	return chars_alpha(c) || chars_digit(c) || c == '+' || c == '/' || c == '=';
}

static inline uint8_t
chars_upper(uint8_t c)
{
	return (c >= 'a' && c <= 'z') ? (uint8_t)(c - 'a' + 'A') : c;
}

/* Is word[0..len) the upper-case word upper, ignoring case? */
/* No control byte (0x00-0x1f) and no DEL in s[0..len): text a login
 * may carry to a backend. */
static inline bool
chars_no_control(const void *s, size_t len)
{
	const uint8_t *p = s;

	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
	return true;
}

static inline bool
chars_word_eq(const void *word, size_t len, const char *upper)
{
	const uint8_t *w = word;
	size_t i;

	for (i = 0; i < len; i++)
		if (upper[i] == '\0' || chars_upper(w[i]) != (uint8_t)upper[i])
			return false;
	return upper[i] == '\0';
}

/* May c continue a UTF-8 sequence that began with lead and has left
 * continuation bytes to come?  RFC 3629 §4: no overlongs, no surrogates,
 * nothing above U+10FFFF (the second byte's range depends on the lead). */
static inline bool
chars_utf8_cont_ok(int lead, int left, uint8_t c)
{
	bool second = (lead >= 0xe0 && lead <= 0xef) ? left == 2 : lead >= 0xf0 ? left == 3 : false;

	if (c < 0x80 || c > 0xbf)
		return false;
	if (!second)
		return true;
	if (lead == 0xe0)
		return c >= 0xa0;
	if (lead == 0xed)
		return c <= 0x9f;
	if (lead == 0xf0)
		return c >= 0x90;
	if (lead == 0xf4)
		return c <= 0x8f;
	return true;
}

#endif
