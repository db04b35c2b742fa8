/*
 * fuzz_pop3.c: libFuzzer harness for pop3_parse().  Feeds the input whole, cut
 * where the data says, and byte by byte, answering AUTH like a session; the transcripts
 * must agree and every result must keep the header's promises.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3.h"
#include "sasl.h"
#include "fuzz_check.h"

/* Input layout: [cut] stream... */
#define HDR_LEN 1

#define FZ_INPUT_MAX (1 << 20) /* longer inputs are skipped */

struct fz_run {
	struct pop3_parser p;
	const uint8_t *all; /* the whole stream */
	size_t off;         /* bytes consumed so far */
	size_t line_start;  /* where the current line began */
	uint64_t hash;      /* FNV-1a of the transcript */
	size_t results;
	bool fatal;
	bool sasl; /* the current line is a SASL response */
	bool deep;
	size_t pend_len;
	char ir[POP3_SASL_MAX + 1]; /* the commands' SASL text, as a session's scratch */
	uint8_t pend[FZ_INPUT_MAX]; /* fed, not yet used: a line not yet whole (last) */
};

static void
fz_mix(struct fz_run *r, const void *b, size_t n)
{
	const uint8_t *p = b;

	for (size_t i = 0; i < n; i++) {
		r->hash ^= p[i];
		r->hash *= 0x100000001b3ULL;
	}
}

static void
fz_mix_str(struct fz_run *r, const char *s)
{
	fz_mix(r, s != NULL ? s : "(null)", strlen(s != NULL ? s : "(null)") + 1);
}

/* As the session would: decode a PLAIN response, and check the decoder. */
static void
fz_check_sasl(const char *ir, size_t len)
{
	char user[SASL_USER_MAX + 1], secret[SASL_SECRET_MAX + 1], out[2100];
	char user2[SASL_USER_MAX + 1], secret2[SASL_SECRET_MAX + 1];
	size_t ul, sl, ul2, sl2, n;
	enum sasl_rc rc = sasl_plain_decode(ir, len, user, &ul, secret, &sl);

	CHECK(sasl_strerror(rc) != NULL);
	if (rc != SASL_OK) {
		CHECK(ul == 0 && sl == 0 && user[0] == '\0' && secret[0] == '\0');
		return;
	}
	CHECK(ul >= 1 && ul <= SASL_USER_MAX && user[ul] == '\0' && strlen(user) == ul);
	CHECK(sl >= 1 && sl <= SASL_SECRET_MAX && secret[sl] == '\0' && strlen(secret) == sl);
	n = sasl_plain_encode(user, ul, secret, sl, out, sizeof(out));
	CHECK(n > 0 && out[n] == '\0');
	CHECK(sasl_plain_decode(out, n, user2, &ul2, secret2, &sl2) == SASL_OK);
	CHECK(ul2 == ul && memcmp(user, user2, ul) == 0);
	CHECK(sl2 == sl && memcmp(secret, secret2, sl) == 0);
}

/* The cap on a command line: 255 octets, or more for one that starts "AUTH ". */
static size_t
fz_line_cap(const uint8_t *l, size_t n)
{
	if (n >= 5 && (l[0] | 0x20) == 'a' && (l[1] | 0x20) == 'u' && (l[2] | 0x20) == 't' &&
	    (l[3] | 0x20) == 'h' && l[4] == ' ')
		return POP3_AUTH_LINE_MAX;
	return POP3_LINE_MAX;
}

static void
fz_check_cmd(struct fz_run *r, enum pop3_rc rc, const struct pop3_cmd *c)
{
	size_t line_len = r->off - r->line_start; /* with its LF */
	size_t cap = fz_line_cap(r->all + r->line_start, line_len);

	CHECK(strnlen(c->name, sizeof(c->name)) < sizeof(c->name));
	CHECK(strnlen(c->mech, sizeof(c->mech)) < sizeof(c->mech));
	CHECK(c->user_len <= POP3_USER_MAX && c->user[c->user_len] == '\0');
	CHECK(c->secret_len <= POP3_SECRET_MAX && c->secret[c->secret_len] == '\0');
	CHECK(c->ir_len <= POP3_SASL_MAX && c->ir[c->ir_len] == '\0');
	if (rc == POP3_FATAL) {
		CHECK(c->error != NULL);
		CHECK(line_len > (r->sasl ? POP3_SASL_MAX + 1 : cap) || r->all[r->off - 1] == '\n');
		return;
	}
	/* a line ends at LF and keeps to its limit */
	CHECK(r->all[r->off - 1] == '\n');
	CHECK(line_len <= (r->sasl ? POP3_SASL_MAX + 2 : cap));
	CHECK(memchr(r->all + r->line_start, '\n', line_len - 1) == NULL);
	if (rc == POP3_BAD) {
		CHECK(c->error != NULL && c->error[0] != '\0');
		CHECK(c->user_len == 0 && c->secret_len == 0 && c->ir_len == 0);
		CHECK(!r->sasl);
		return;
	}
	CHECK(c->error == NULL);
	CHECK(c->verb >= POP3_V_CAPA && c->verb <= POP3_V_OTHER);
	CHECK((c->verb == POP3_V_SASL) == r->sasl);
	if (c->verb != POP3_V_USER)
		CHECK(c->user_len == 0);
	if (c->verb != POP3_V_PASS)
		CHECK(c->secret_len == 0);
	if (c->verb != POP3_V_AUTH && c->verb != POP3_V_SASL)
		CHECK(c->ir_len == 0 && !c->has_ir && !c->has_mech);
	if (c->verb == POP3_V_USER) {
		CHECK(c->user_len >= 1 && c->user[0] != ' ' && c->user[c->user_len - 1] != ' ');
		CHECK(memchr(c->user, '\0', c->user_len) == NULL);
		CHECK(memchr(c->user, '\r', c->user_len) == NULL);
	}
	if (c->verb == POP3_V_PASS) {
		CHECK(c->secret_len >= 1);
		CHECK(memchr(c->secret, '\0', c->secret_len) == NULL);
		CHECK(memchr(c->secret, '\r', c->secret_len) == NULL);
	}
	if (c->verb == POP3_V_AUTH) {
		CHECK(c->has_mech || (!c->has_ir && c->mech[0] == '\0'));
		CHECK(!c->has_mech || (c->mech[0] != '\0' && strlen(c->mech) <= POP3_MECH_MAX));
	}
	if (c->cancelled)
		CHECK(c->verb == POP3_V_SASL && !c->has_ir && c->ir_len == 0);
	if (r->deep && c->has_ir)
		fz_check_sasl(c->ir, c->ir_len);
}

/* As a session: the bytes not used wait in pend for more after them. */
static void
fz_feed(struct fz_run *r, const uint8_t *in, size_t len)
{
	size_t off = 0;

	CHECK(len <= sizeof(r->pend) - r->pend_len);
	memcpy(r->pend + r->pend_len, in, len);
	r->pend_len += len;
	while (off < r->pend_len && !r->fatal) {
		struct pop3_cmd c;
		size_t used = (size_t)-1;
		enum pop3_rc rc;

		pop3_cmd_init(&c, r->ir);
		rc = pop3_parse(&r->p, r->pend + off, r->pend_len - off, &used, &c);

		CHECK(used <= r->pend_len - off);
		if (rc == POP3_MORE) {
			/* nothing used: no LF yet, and within the longest limit */
			CHECK(used == 0);
			CHECK(memchr(r->pend + off, '\n', r->pend_len - off) == NULL);
			CHECK(r->pend_len - off <= POP3_AUTH_LINE_MAX);
			break;
		}
		off += used;
		r->off += used;
		CHECK(used > 0);
		fz_check_cmd(r, rc, &c);
		r->results++;
		fz_mix(r, &rc, sizeof(rc));
		fz_mix(r, &r->off, sizeof(r->off));
		fz_mix(r, &c.verb, sizeof(c.verb));
		fz_mix_str(r, c.name);
		fz_mix_str(r, c.mech);
		fz_mix_str(r, c.error);
		fz_mix(r, c.user, c.user_len);
		fz_mix(r, &c.user_len, sizeof(c.user_len));
		fz_mix(r, c.secret, c.secret_len);
		fz_mix(r, &c.secret_len, sizeof(c.secret_len));
		fz_mix(r, c.ir, c.ir_len);
		fz_mix(r, &c.ir_len, sizeof(c.ir_len));
		fz_mix(r, &c.has_ir, sizeof(c.has_ir));
		fz_mix(r, &c.has_mech, sizeof(c.has_mech));
		fz_mix(r, &c.cancelled, sizeof(c.cancelled));
		r->line_start = r->off;
		r->sasl = false;
		if (rc == POP3_FATAL) {
			r->fatal = true;
		} else if (rc == POP3_CMD && c.verb == POP3_V_AUTH && c.has_mech && !c.has_ir) {
			pop3_parser_expect_sasl(&r->p); /* the session wrote "+ " */
			r->sasl = true;
		}
		pop3_cmd_wipe(&c);
		/* nothing of a SASL text is left in the caller's buffer */
		CHECK(r->ir[0] == '\0' && memcmp(r->ir, r->ir + 1, sizeof(r->ir) - 1) == 0);
	}
	memmove(r->pend, r->pend + off, r->pend_len - off);
	r->pend_len -= off;
}

static void
fz_start(struct fz_run *r, const uint8_t *all, bool deep)
{
	memset(r, 0, offsetof(struct fz_run, pend)); /* not the 1 MiB of pend */
	pop3_parser_init(&r->p);
	r->all = all;
	r->hash = 0xcbf29ce484222325ULL;
	r->deep = deep;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz_run whole, split, bytes;
	size_t len, cut;

	if (size < HDR_LEN || size > FZ_INPUT_MAX)
		return 0;
	len = size - HDR_LEN;
	cut = (size_t)data[0] * len / 255;
	data += HDR_LEN;

	fz_start(&whole, data, true);
	fz_feed(&whole, data, len);

	fz_start(&split, data, false);
	fz_feed(&split, data, cut);
	fz_feed(&split, data + cut, len - cut);
	CHECK(split.hash == whole.hash && split.results == whole.results);

	fz_start(&bytes, data, false);
	for (size_t i = 0; i < len; i++)
		fz_feed(&bytes, data + i, 1);
	CHECK(bytes.hash == whole.hash && bytes.results == whole.results);

	pop3_parser_wipe(&whole.p);
	return 0;
}
