/*
 * fuzz_sieve.c: libFuzzer harness for sieve_parse().  Feeds the input whole,
 * cut where the data says, and byte by byte, keeping what was not used like
 * a session; the transcripts must agree and every result must keep the
 * header's promises.  sieve_quote() output must parse back to its bytes.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sieve.h"
#include "fuzz_check.h"

/* Input layout: [flags] [cut] stream... */
#define HDR_LEN 2

#define FZ_INPUT_MAX (1 << 20) /* longer inputs are skipped */
#define BYTEWISE_MAX 256       /* bytes fed one at a time, the rest in small chunks */

struct fz_run {
	struct sieve_parser p;
	const uint8_t *all; /* the whole stream, for checks on what was consumed */
	size_t off;         /* bytes consumed so far */
	uint64_t hash;      /* FNV-1a of the transcript */
	size_t results;
	bool fatal;
	bool deep; /* also run the slower checks (once per input) */
	size_t pend_len;
	bool c_ready;                /* c was readied and not written yet (SIEVE_MORE) */
	struct sieve_cmd c;          /* the session's command */
	char ir[SIEVE_SASL_MAX + 1]; /* the session's cmd.ir */
	uint8_t pend[FZ_INPUT_MAX];  /* fed, not yet used (a SASL text waiting whole); last */
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

/* Parse a whole line that must give one command; returns it in *out. */
static enum sieve_rc
fz_parse_line(const uint8_t *line, size_t len, char *ir, struct sieve_cmd *out)
{
	struct sieve_parser p;
	size_t used;
	enum sieve_rc rc;

	sieve_parser_init(&p);
	sieve_cmd_init(out, ir);
	rc = sieve_parse(&p, line, len, &used, out);
	CHECK(rc != SIEVE_MORE && (used == len || rc == SIEVE_FATAL));
	return rc;
}

/* sieve_quote() of any bytes, sent as an initial response, parses back to
 * the same bytes; a tag parses back as NOOP's tag. */
static void
fz_check_quote(const uint8_t *s, size_t len, bool as_tag)
{
	static uint8_t line[SIEVE_SASL_MAX + 64];
	static char ir[SIEVE_SASL_MAX + 1];
	struct sieve_cmd out;
	const char *head = as_tag ? "NOOP " : "AUTHENTICATE \"X\" ";
	size_t h = strlen(head), o = h, n;
	bool nonsync = len % 2;
	enum sieve_rc rc;

	memcpy(line, head, o);
	n = sieve_quote((char *)line + o, sizeof(line) - o - 2, (const char *)s, len, nonsync);
	CHECK(n > 0);
	CHECK(line[o] == '"' || line[o] == '{');
	if (line[o] == '"')
		CHECK(len <= 1024 && memchr(s, '\r', len) == NULL && memchr(s, '\n', len) == NULL &&
		      memchr(s, '\0', len) == NULL);
	else
		CHECK(line[o + n - len - 3] == '}' && (line[o + n - len - 4] == '+') == nonsync);
	o += n;
	line[o++] = '\r';
	line[o++] = '\n';
	if (line[h] == '{' && !nonsync) {
		/* a server's "{n}": a client may not send it */
		CHECK(fz_parse_line(line, o, ir, &out) == SIEVE_FATAL);
		return;
	}
	rc = fz_parse_line(line, o, ir, &out);
	if (as_tag) {
		if (rc != SIEVE_CMD) {
			CHECK(rc == SIEVE_BAD && (memchr(s, '\r', len) || memchr(s, '\n', len) ||
			                          memchr(s, '\0', len)));
			return;
		}
		CHECK(out.verb == SIEVE_V_NOOP && out.has_tag);
		CHECK(out.tag_len == len && memcmp(out.tag, s, len) == 0);
		return;
	}
	CHECK(rc == SIEVE_CMD && out.verb == SIEVE_V_AUTHENTICATE && out.has_ir);
	CHECK(out.ir_len == len && memcmp(out.ir, s, len) == 0);
	sieve_cmd_wipe(&out);
}

static void
fz_check_cmd(struct fz_run *r, enum sieve_rc rc, const struct sieve_cmd *c)
{
	CHECK(strnlen(c->name, sizeof(c->name)) < sizeof(c->name));
	CHECK(strnlen(c->mech, sizeof(c->mech)) < sizeof(c->mech));
	CHECK(c->tag_len <= SIEVE_TAG_MAX && c->tag[c->tag_len] == '\0');
	CHECK(c->ir_len <= SIEVE_SASL_MAX && c->ir[c->ir_len] == '\0');
	if (rc != SIEVE_CMD) {
		CHECK(c->error != NULL && c->error[0] != '\0');
		CHECK(c->ir_len == 0 && !c->has_ir && c->ir[0] == '\0');
		return;
	}
	CHECK(c->error == NULL);
	/* a command ends at a line end */
	CHECK(r->off > 0 && r->all[r->off - 1] == '\n');
	CHECK(c->verb >= SIEVE_V_CAPABILITY && c->verb <= SIEVE_V_OTHER);
	if (c->verb != SIEVE_V_SASL) {
		CHECK(c->name[0] != '\0');
		CHECK(!c->cancelled);
	} else {
		CHECK(c->name[0] == '\0');
		CHECK(c->has_ir != c->cancelled);
	}
	for (size_t i = 0; c->name[i] != '\0'; i++)
		CHECK(c->name[i] >= 'A' && c->name[i] <= 'Z');
	if (c->verb != SIEVE_V_AUTHENTICATE && c->verb != SIEVE_V_SASL)
		CHECK(c->ir_len == 0 && !c->has_ir);
	if (c->verb != SIEVE_V_NOOP)
		CHECK(c->tag_len == 0 && !c->has_tag);
	else
		for (size_t i = 0; i < c->tag_len; i++)
			CHECK(c->tag[i] != '\0' && c->tag[i] != '\r' && c->tag[i] != '\n');
	if (c->verb == SIEVE_V_AUTHENTICATE) {
		size_t ml = strlen(c->mech);

		CHECK(ml >= 1 && ml <= SIEVE_MECH_MAX);
		CHECK(strspn(c->mech, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ml);
	} else {
		CHECK(c->mech[0] == '\0');
	}
	if (r->deep && c->has_tag)
		fz_check_quote((const uint8_t *)c->tag, c->tag_len, true);
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
		struct sieve_cmd *cp = &r->c;
		size_t used = (size_t)-1;
		enum sieve_rc rc;

		/* SIEVE_MORE leaves cmd_out as it was: ready it once per result */
		if (!r->c_ready)
			sieve_cmd_init(cp, r->ir);
		r->c_ready = true;
		rc = sieve_parse(&r->p, r->pend + off, r->pend_len - off, &used, cp);
		CHECK(used <= r->pend_len - off);
		off += used;
		r->off += used;
		if (rc == SIEVE_MORE) {
			/* all used, or a SASL text kept: it fits the caller's buffer */
			CHECK(off == r->pend_len || r->pend_len - off < SIEVE_INPUT_MIN);
			CHECK(cp->ir_len == 0 && cp->error == NULL && cp->verb == SIEVE_V_NONE);
			break;
		}
		r->c_ready = false;
		CHECK(used > 0);
		fz_check_cmd(r, rc, cp);
		r->results++;
		fz_mix(r, &rc, sizeof(rc));
		fz_mix(r, &r->off, sizeof(r->off));
		fz_mix(r, &cp->verb, sizeof(cp->verb));
		fz_mix_str(r, cp->name);
		fz_mix_str(r, cp->mech);
		fz_mix_str(r, cp->error);
		fz_mix(r, cp->tag, cp->tag_len);
		fz_mix(r, &cp->tag_len, sizeof(cp->tag_len));
		fz_mix(r, &cp->has_tag, sizeof(cp->has_tag));
		fz_mix(r, cp->ir, cp->ir_len);
		fz_mix(r, &cp->ir_len, sizeof(cp->ir_len));
		fz_mix(r, &cp->has_ir, sizeof(cp->has_ir));
		fz_mix(r, &cp->cancelled, sizeof(cp->cancelled));
		if (rc == SIEVE_FATAL)
			r->fatal = true; /* never called again */
		else if (rc == SIEVE_CMD && cp->verb == SIEVE_V_AUTHENTICATE && !cp->has_ir)
			sieve_parser_expect_sasl(&r->p); /* the session wrote a challenge */
		sieve_cmd_wipe(cp);
		CHECK(cp->ir_len == 0 && r->ir[0] == '\0');
	}
	memmove(r->pend, r->pend + off, r->pend_len - off);
	r->pend_len -= off;
}

static void
fz_start(struct fz_run *r, const uint8_t *all, bool deep, bool sasl)
{
	memset(r, 0, offsetof(struct fz_run, ir)); /* not the buffers */
	sieve_parser_init(&r->p);
	if (sasl)
		sieve_parser_expect_sasl(&r->p);
	r->all = all;
	r->hash = 0xcbf29ce484222325ULL;
	r->deep = deep;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz_run whole, split, bytes; /* big: keep off the stack */
	bool sasl;
	size_t len, cut;

	if (size < HDR_LEN || size > FZ_INPUT_MAX)
		return 0;
	sasl = data[0] & 1; /* start as after a challenge */
	len = size - HDR_LEN;
	cut = (size_t)data[1] * len / 255;
	data += HDR_LEN;

	fz_start(&whole, data, true, sasl);
	fz_feed(&whole, data, len);

	fz_start(&split, data, false, sasl);
	fz_feed(&split, data, cut);
	fz_feed(&split, data + cut, len - cut);
	CHECK(split.hash == whole.hash && split.results == whole.results);

	/* byte by byte; past BYTEWISE_MAX in chunks of 1 to 16 the data picks */
	fz_start(&bytes, data, false, sasl);
	for (size_t i = 0, k; i < len; i += k) {
		k = i < BYTEWISE_MAX ? 1 : 1 + data[i] % 16;
		k = k < len - i ? k : len - i;
		fz_feed(&bytes, data + i, k);
	}
	CHECK(bytes.hash == whole.hash && bytes.results == whole.results);

	if (data[-HDR_LEN] & 2)
		fz_check_quote(data, len < SIEVE_SASL_MAX ? len : SIEVE_SASL_MAX, false);
	sieve_parser_wipe(&whole.p);
	return 0;
}
