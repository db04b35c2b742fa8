/*
 * imap_quote.c: IMAP strings as postern writes them to a backend (the
 * other direction from imap.c's parser): a quoted string when the bytes
 * allow, else a literal.  Pure: no allocation, no I/O.
 */
#include <stdio.h>
#include <string.h>

#include "imap.h"

/*
 * RFC 9051 §4.3: a quoted string holds 7-bit text without CR, LF or NUL,
 * with '"' and '\' escaped; anything else goes as a literal.
 */
size_t
imap_quote(char *out, size_t outlen, const char *s, size_t len, bool nonsync, bool *is_literal_out)
{
	bool literal = false;
	size_t need = 2; /* the quotes */
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		uint8_t c = (uint8_t)s[i];

		if (c == '\0' || c == '\r' || c == '\n' || c >= 0x80) {
			literal = true;
			break;
		}
		need += (c == '"' || c == '\\') ? 2 : 1;
	}
	if (is_literal_out != NULL)
		*is_literal_out = literal;
	if (literal) {
		char hdr[32];
		int hl = snprintf(hdr, sizeof(hdr), "{%zu%s}\r\n", len, nonsync ? "+" : "");

		/* + 1: out is always NUL-terminated, for callers that format */
		if (hl < 0 || out == NULL || len > outlen || (size_t)hl + 1 > outlen - len)
			return 0;
		memcpy(out, hdr, (size_t)hl);
		memcpy(out + hl, s, len);
		out[(size_t)hl + len] = '\0';
		return (size_t)hl + len;
	}
	if (out == NULL || need + 1 > outlen)
		return 0;
	out[o++] = '"';
	for (i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			out[o++] = '\\';
		out[o++] = s[i];
	}
	out[o++] = '"';
	out[o] = '\0';
	return o;
}
