/*
 * fuzz_imap.c: libFuzzer harness for imap_parse().  Feeds the input whole, cut
 * where the data says, and byte by byte, answering like a session; the transcripts
 * must agree and every result must keep the header's promises.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap.h"
#include "sasl.h"
#include "fuzz_check.h"

/* Input layout: [flags] [cut] stream... */
#define HDR_LEN 2

#define FZ_INPUT_MAX (1 << 20) /* longer inputs are skipped */

struct fz_run {
	struct imap_parser p;
	const uint8_t *all; /* the whole stream, for checks on what was consumed */
	size_t off;         /* bytes consumed so far */
	uint64_t hash;      /* FNV-1a of the transcript */
	size_t results;
	bool fatal;
	bool deep; /* also run the slower checks (once per input) */
	size_t pend_len;
	char ir[IMAP_SASL_MAX + 1]; /* the session's cmd.ir */
	uint8_t pend[FZ_INPUT_MAX]; /* fed, not yet used (a SASL text waiting whole); last */
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

static bool
fz_is_tag_char(uint8_t c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\+", c) == NULL;
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

/* imap_quote() output must parse back to the same bytes. */
static void
fz_check_quote(const struct imap_cmd *c)
{
	static uint8_t buf[8192];
	struct imap_parser p;
	struct imap_cmd out;
	size_t o, n, off = 0, used;
	enum imap_rc rc;
	bool lit;

	memcpy(buf, "q LOGIN ", 8);
	o = 8;
	n = imap_quote((char *)buf + o, sizeof(buf) - o, c->user, c->user_len, c->user_len % 2,
	               &lit);
	CHECK(n > 0 && buf[o + n] == '\0');
	CHECK(lit == (memchr(buf + o, '{', 1) != NULL));
	o += n;
	buf[o++] = ' ';
	n = imap_quote((char *)buf + o, sizeof(buf) - o, c->secret, c->secret_len,
	               c->secret_len % 2 == 0, &lit);
	CHECK(n > 0);
	o += n;
	buf[o++] = '\r';
	buf[o++] = '\n';
	imap_parser_init(&p, NULL);
	imap_cmd_init(&out, NULL);
	while ((rc = imap_parse(&p, buf + off, o - off, &used, &out)) == IMAP_CONTINUE)
		off += used;
	CHECK(rc == IMAP_CMD && out.verb == IMAP_V_LOGIN);
	CHECK(off + used == o);
	CHECK(out.user_len == c->user_len && memcmp(out.user, c->user, c->user_len) == 0);
	CHECK(out.secret_len == c->secret_len && memcmp(out.secret, c->secret, c->secret_len) == 0);
	imap_cmd_wipe(&out);
}

static void
fz_check_cmd(struct fz_run *r, enum imap_rc rc, const struct imap_cmd *c)
{
	CHECK(strnlen(c->tag, sizeof(c->tag)) < sizeof(c->tag));
	CHECK(strnlen(c->name, sizeof(c->name)) < sizeof(c->name));
	CHECK(strnlen(c->mech, sizeof(c->mech)) < sizeof(c->mech));
	CHECK(c->user_len <= IMAP_USER_MAX && c->user[c->user_len] == '\0');
	CHECK(c->secret_len <= IMAP_SECRET_MAX && c->secret[c->secret_len] == '\0');
	CHECK(c->ir_len <= IMAP_SASL_MAX && c->ir[c->ir_len] == '\0');
	if (rc != IMAP_CMD) {
		CHECK(c->error != NULL && c->error[0] != '\0');
		CHECK(c->user_len == 0 && c->secret_len == 0 && c->ir_len == 0);
		if (rc == IMAP_BAD)
			CHECK(c->tag[0] != '\0');
		return;
	}
	CHECK(c->error == NULL);
	/* a command ends at a line end */
	CHECK(r->off > 0 && r->all[r->off - 1] == '\n');
	CHECK(c->verb >= IMAP_V_CAPABILITY && c->verb <= IMAP_V_OTHER);
	if (c->verb != IMAP_V_SASL) {
		size_t tl = strlen(c->tag);

		CHECK(tl >= 1 && tl <= IMAP_TAG_MAX);
		for (size_t i = 0; i < tl; i++)
			CHECK(fz_is_tag_char((uint8_t)c->tag[i]));
		CHECK(c->name[0] != '\0');
		CHECK(!c->cancelled);
	}
	if (c->verb != IMAP_V_LOGIN)
		CHECK(c->user_len == 0 && c->secret_len == 0);
	if (c->verb != IMAP_V_AUTHENTICATE && c->verb != IMAP_V_SASL)
		CHECK(c->ir_len == 0 && !c->has_ir);
	if (c->verb == IMAP_V_AUTHENTICATE) {
		size_t ml = strlen(c->mech);

		CHECK(ml >= 1 && ml <= IMAP_MECH_MAX);
		for (size_t i = 0; i < ml; i++)
			CHECK(!(c->mech[i] >= 'a' && c->mech[i] <= 'z'));
		CHECK(!c->has_ir ||
		      strspn(c->ir, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                    "0123456789+/=") == c->ir_len);
	}
	if (c->verb == IMAP_V_SASL && c->cancelled)
		CHECK(!c->has_ir && c->ir_len == 0);
	if (c->verb == IMAP_V_SASL)
		CHECK(c->tag[0] == '\0');
	if (r->deep && c->has_ir)
		fz_check_sasl(c->ir, c->ir_len);
	if (r->deep && c->verb == IMAP_V_LOGIN)
		fz_check_quote(c);
}

/* As a session: bytes not used wait in pend for more after them. */
static void
fz_feed(struct fz_run *r, const uint8_t *in, size_t len)
{
	size_t off = 0;

	CHECK(len <= sizeof(r->pend) - r->pend_len);
	memcpy(r->pend + r->pend_len, in, len);
	r->pend_len += len;
	while (off < r->pend_len && !r->fatal) {
		struct imap_cmd c;
		size_t used = (size_t)-1;
		enum imap_rc rc;

		imap_cmd_init(&c, r->ir);
		rc = imap_parse(&r->p, r->pend + off, r->pend_len - off, &used, &c);
		CHECK(used <= r->pend_len - off);
		off += used;
		r->off += used;
		if (rc == IMAP_MORE) {
			/* all used, or a SASL text kept: no line end yet, within its limit */
			CHECK(off == r->pend_len ||
			      (memchr(r->pend + off, '\n', r->pend_len - off) == NULL &&
			       r->pend_len - off <= IMAP_SASL_MAX + 2));
			break;
		}
		CHECK(used > 0);
		fz_mix(r, &rc, sizeof(rc));
		fz_mix(r, &r->off, sizeof(r->off));
		if (rc == IMAP_CONTINUE) {
			/* right after "{n}" CRLF (or LF) */
			const uint8_t *a = r->all;
			size_t e = r->off;

			CHECK(e >= 3 && a[e - 1] == '\n');
			CHECK(a[e - 2] == '}' || (a[e - 2] == '\r' && a[e - 3] == '}'));
			continue;
		}
		fz_check_cmd(r, rc, &c);
		r->results++;
		fz_mix(r, &c.verb, sizeof(c.verb));
		fz_mix_str(r, c.tag);
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
		fz_mix(r, &c.cancelled, sizeof(c.cancelled));
		if (rc == IMAP_FATAL)
			r->fatal = true;
		else if (c.verb == IMAP_V_AUTHENTICATE && !c.has_ir)
			imap_parser_expect_sasl(&r->p); /* the session wrote "+ " */
		imap_cmd_wipe(&c);
	}
	memmove(r->pend, r->pend + off, r->pend_len - off);
	r->pend_len -= off;
}

static void
fz_start(struct fz_run *r, const struct imap_limits *lim, const uint8_t *all, bool deep)
{
	memset(r, 0, offsetof(struct fz_run, ir)); /* not the buffers */
	imap_parser_init(&r->p, lim);
	r->all = all;
	r->hash = 0xcbf29ce484222325ULL;
	r->deep = deep;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz_run whole, split, bytes; /* big: keep off the stack */
	struct imap_limits small = {
	    .line_max = 48, .literal_max = 12, .sasl_line_max = 40, .id_line_max = 160};
	const struct imap_limits *lim = NULL;
	size_t len, cut;

	if (size < HDR_LEN || size > FZ_INPUT_MAX)
		return 0;
	if (data[0] & 1)
		lim = &small; /* reach the limits with short inputs */
	len = size - HDR_LEN;
	cut = (size_t)data[1] * len / 255;
	data += HDR_LEN;

	fz_start(&whole, lim, data, true);
	fz_feed(&whole, data, len);

	fz_start(&split, lim, data, false);
	fz_feed(&split, data, cut);
	fz_feed(&split, data + cut, len - cut);
	CHECK(split.hash == whole.hash && split.results == whole.results);

	fz_start(&bytes, lim, data, false);
	for (size_t i = 0; i < len; i++)
		fz_feed(&bytes, data + i, 1);
	CHECK(bytes.hash == whole.hash && bytes.results == whole.results);

	imap_parser_wipe(&whole.p);
	return 0;
}
