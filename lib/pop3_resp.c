/*
 * pop3_resp.c: the POP3 backend's response lines, read before login (see
 * pop3_resp.h).  Pure; a hostile backend can cost itself a login, nothing
 * more.
 */
#include <string.h>
#include <strings.h>

#include "pop3_resp.h"
#include "sasl.h"

enum pop3_resp_kind
pop3_resp_classify(const char *line, const char **text_out)
{
	*text_out = line + strlen(line);
	if (strncmp(line, "+OK", 3) == 0 && (line[3] == '\0' || line[3] == ' ')) {
		*text_out = line + 3 + (line[3] == ' ');
		return POP3_R_OK;
	}
	if (strncmp(line, "-ERR", 4) == 0 && (line[4] == '\0' || line[4] == ' ')) {
		*text_out = line + 4 + (line[4] == ' ');
		return POP3_R_ERR;
	}
	if (line[0] == '+' && (line[1] == '\0' || line[1] == ' ')) {
		*text_out = line + 1 + (line[1] == ' ');
		return POP3_R_CONTINUE;
	}
	return POP3_R_OTHER;
}

enum pop3_err_code
pop3_resp_err_code(const char *text)
{
	if (strncasecmp(text, "[SYS/TEMP]", 10) == 0)
		return POP3_E_SYS_TEMP;
	if (strncasecmp(text, "[IN-USE]", 8) == 0)
		return POP3_E_IN_USE;
	return POP3_E_NONE;
}

void
pop3_resp_capa_line(const char *line, struct pop3_capa *capa)
{
	if (strncasecmp(line, "XCLIENT", 7) == 0 && (line[7] == '\0' || line[7] == ' '))
		capa->xclient = true;
	if (strncasecmp(line, "SASL ", 5) != 0)
		return;
	for (const char *p = line + 5; *p != '\0';) {
		size_t l = strcspn(p, " ");
		unsigned bit = sasl_mech_bit(p, l);
		capa->mechs |= bit;
		if (bit == SASL_MECH_PLAIN)
			capa->sasl_plain = true;
		p += l;
		p += strspn(p, " ");
	}
}

bool
pop3_resp_greeting_xclient(const char *text)
{
	return strncasecmp(text, "[XCLIENT]", 9) == 0;
}
