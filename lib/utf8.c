/*
 * utf8.c: RFC 3629 §4 (see utf8.h).  The lead byte gives the length;
 * chars_utf8_cont_ok() the range of each byte after it, the second one's
 * being where overlongs, surrogates and code points above U+10FFFF are
 * refused.  Never writes.
 */
#include "chars.h"
#include "utf8.h"

size_t
utf8_seq_len(const uint8_t *s, size_t len)
{
	size_t n;

	if (len == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	/* C0, C1 (overlong) and F5..FF start nothing; then the lead says how
	 * many continuation bytes follow, and chars.h which may (the one rule
	 * the IMAP parser checks literals by too) */
	n = s[0] >= 0xc2 && s[0] <= 0xdf   ? 2
	    : s[0] >= 0xe0 && s[0] <= 0xef ? 3
	    : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
	                                   : 0;
	if (n == 0 || len < n)
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!chars_utf8_cont_ok(s[0], (int)(n - i), s[i]))
			return 0;
	return n;
}

bool
utf8_valid(const uint8_t *s, size_t len)
{
	while (len > 0) {
		size_t n = utf8_seq_len(s, len);

		if (n == 0)
			return false;
		s += n;
		len -= n;
	}
	return true;
}
