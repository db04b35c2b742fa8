/*
 * utf8.c: RFC 3629 §4 as a table (see utf8.h).  The lead byte gives the
 * length and the range of the second byte; that range is where overlongs,
 * surrogates and code points above U+10FFFF are refused.  Never writes.
 */
#include "utf8.h"

/* RFC 3629 §4, UTF8-2 .. UTF8-4: lead bytes, length, second-byte range. */
static const struct {
	uint8_t lead_lo, lead_hi, len, second_lo, second_hi;
} utf8_rows[] = {
    {0xc2, 0xdf, 2, 0x80, 0xbf}, /* C0, C1: overlong two-byte forms */
    {0xe0, 0xe0, 3, 0xa0, 0xbf}, /* E0 80..9F: overlong */
    {0xe1, 0xec, 3, 0x80, 0xbf},
    {0xed, 0xed, 3, 0x80, 0x9f}, /* ED A0..BF: surrogates */
    {0xee, 0xef, 3, 0x80, 0xbf},
    {0xf0, 0xf0, 4, 0x90, 0xbf}, /* F0 80..8F: overlong */
    {0xf1, 0xf3, 4, 0x80, 0xbf},
    {0xf4, 0xf4, 4, 0x80, 0x8f}, /* F4 90..: above U+10FFFF; F5..FF never */
};

size_t
utf8_seq_len(const uint8_t *s, size_t len)
{
	if (len == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	for (size_t r = 0; r < sizeof(utf8_rows) / sizeof(utf8_rows[0]); r++) {
		size_t n = utf8_rows[r].len;

		if (s[0] < utf8_rows[r].lead_lo || s[0] > utf8_rows[r].lead_hi)
			continue;
		if (len < n || s[1] < utf8_rows[r].second_lo || s[1] > utf8_rows[r].second_hi)
			return 0;
		for (size_t i = 2; i < n; i++)
			if ((s[i] & 0xc0) != 0x80)
				return 0;
		return n;
	}
	return 0; /* 80..BF alone, C0, C1, F5..FF */
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
