/* lookup_msg.c: placeholder until the parsers land (see lookup_msg.h). */
#include <string.h>

#include "lookup_msg.h"

const char *
lookup_status_name(enum lookup_status st)
{
	static const char *const names[] = {"ok", "refused", "unknown", "tempfail"};
	return (unsigned)st < 4 ? names[st] : "?";
}

void
lookup_answer_init(struct lookup_answer *a)
{
	memset(a, 0, sizeof(*a));
	a->status = LOOKUP_TEMP;
	a->wait_s = -1;
	a->tls = -1;
	strcpy(a->why, "no answer");
}

void
lookup_answer_wipe(struct lookup_answer *a)
{
	memset(a->pass, 0, sizeof(a->pass));
	a->pass_len = 0;
}
