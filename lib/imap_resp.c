/*
 * imap_resp.c: the IMAP backend's response lines, read before login (see
 * imap_resp.h).  Pure: what a hostile backend sends can cost it a failed
 * login, never memory or a byte in the client's line it should not have.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "imap_resp.h"
#include "sasl.h"

bool
imap_caps_has(const char *list, const char *word)
{
	size_t wl = strlen(word);

	for (const char *p = list; *p != '\0';) {
		const char *e = strchr(p, ' ');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == wl && strncasecmp(p, word, wl) == 0)
			return true;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return false;
}

size_t
imap_caps_drop(char *s, size_t len, const char *prefix)
{
	size_t pl = strlen(prefix), i = 0, o = 0;

	while (i < len) {
		size_t j = i;
		while (j < len && s[j] != ' ' && s[j] != '\r' && s[j] != '\n')
			j++;
		if (j - i >= pl && strncasecmp(s + i, prefix, pl) == 0) {
			if (o > 0 && s[o - 1] == ' ')
				o--; /* the space before it goes with it */
			else if (j < len && s[j] == ' ')
				j++; /* first word: the space after it */
		} else {
			memmove(s + o, s + i, j - i);
			o += j - i;
		}
		/* the separator (or the line end) stays */
		if (j < len && (s[j] == ' ' || s[j] == '\r' || s[j] == '\n'))
			s[o++] = s[j++];
		i = j;
	}
	return o;
}

void
imap_caps_set(struct imap_caps *caps, const char *s, size_t len)
{
	while (len > 0 && s[len - 1] == ' ')
		len--;
	if (len >= sizeof(caps->list))
		len = sizeof(caps->list) - 1;
	memcpy(caps->list, s, len);
	caps->list[len] = '\0';
	/* Capabilities go back to the client inside a response code: keep them
	 * to printable ASCII so nothing can break out of the line. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)caps->list[i] < 0x20 || (unsigned char)caps->list[i] > 0x7e ||
		    caps->list[i] == ']')
			caps->list[i] = ' ';
	caps->auth_plain = imap_caps_has(caps->list, "AUTH=PLAIN");
	caps->sasl_ir = imap_caps_has(caps->list, "SASL-IR");
	caps->literal_plus = imap_caps_has(caps->list, "LITERAL+");
	caps->login_disabled = imap_caps_has(caps->list, "LOGINDISABLED");
	caps->mechs = 0;
	for (const char *p = caps->list; *p != '\0';) {
		size_t l = strcspn(p, " ");
		if (l > 5 && strncasecmp(p, "AUTH=", 5) == 0)
			caps->mechs |= sasl_mech_bit(p + 5, l - 5);
		p += l;
		p += strspn(p, " ");
	}
}

bool
imap_resp_caps_code(const char *text, struct imap_caps *caps)
{
	static const char code[] = "[CAPABILITY ";
	const char *end;

	if (strncasecmp(text, code, sizeof(code) - 1) != 0)
		return false;
	text += sizeof(code) - 1;
	if ((end = strchr(text, ']')) == NULL)
		return false;
	imap_caps_set(caps, text, (size_t)(end - text));
	return true;
}

bool
imap_resp_greeting(const char *line, const char **text_out, bool *bye_out)
{
	*bye_out = strncasecmp(line, "* BYE", 5) == 0;
	*text_out = line + strlen(line);
	if (strncasecmp(line, "* OK", 4) != 0)
		return false;
	*text_out = line + 4 + (line[4] == ' ');
	return true;
}

/* "TAG STATUS" then SP or the end: the resp-text after it, or NULL. */
static const char *
tagged(const char *line, const char *tag, const char *status)
{
	size_t tl = strlen(tag), sl = strlen(status);

	if (strncmp(line, tag, tl) != 0 || line[tl] != ' ' ||
	    strncasecmp(line + tl + 1, status, sl) != 0)
		return NULL;
	line += tl + 1 + sl;
	if (*line == ' ')
		return line + 1;
	return *line == '\0' ? line : NULL;
}

enum imap_resp_kind
imap_resp_classify(const char *line, const char *tag, struct imap_caps *caps, const char **text_out)
{
	const char *t;

	*text_out = line + strlen(line);
	if (line[0] == '+') {
		*text_out = line + 1 + (line[1] == ' ');
		return IMAP_R_CONTINUE;
	}
	if (line[0] == '*') {
		if (caps != NULL && strncasecmp(line, "* CAPABILITY ", 13) == 0) {
			imap_caps_set(caps, line + 13, strlen(line + 13));
			return IMAP_R_CAPS;
		}
		if (strncasecmp(line, "* BYE", 5) == 0 && (line[5] == ' ' || line[5] == '\0')) {
			*text_out = line + 5 + (line[5] == ' ');
			return IMAP_R_BYE;
		}
		return IMAP_R_UNTAGGED;
	}
	if ((t = tagged(line, tag, "OK")) != NULL) {
		*text_out = t;
		return IMAP_R_OK;
	}
	if ((t = tagged(line, tag, "NO")) != NULL) {
		*text_out = t;
		return IMAP_R_NO;
	}
	if ((t = tagged(line, tag, "BAD")) != NULL) {
		*text_out = t;
		return IMAP_R_BAD;
	}
	return IMAP_R_OTHER;
}

bool
imap_resp_unavailable(const char *text)
{
	return strncasecmp(text, "[UNAVAILABLE]", 13) == 0;
}
