/*
 * test_imap.c: the pre-auth IMAP parser (lib/imap.c).  Every input is also
 * fed one byte at a time and cut at every point, and must give the same
 * transcript: the parser is resumable at any byte boundary.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

#include "imap.h"
#include "sasl.h"

#define RESULTS_MAX  16
#define LOG_MAX      131072
#define ID_VALUE_MAX 1024 /* RFC 2971 §3.3 */

/* A pretend session: feeds bytes, answers IMAP_CONTINUE and AUTHENTICATE. */
struct drive {
	struct imap_parser p;
	struct imap_cmd cmd[RESULTS_MAX]; /* IMAP_CMD, IMAP_BAD, IMAP_FATAL in order */
	enum imap_rc rc[RESULTS_MAX];
	size_t n;
	size_t continues;
	size_t cont_at[RESULTS_MAX]; /* input offset after each IMAP_CONTINUE */
	size_t off;                  /* bytes consumed so far */
	bool fatal;
	char log[LOG_MAX]; /* the transcript compared across splits */
	size_t log_len;
	size_t pend_len;
	uint8_t pend[256 * 1024];                     /* fed, not yet used, as c->in keeps it */
	char ir_now[IMAP_SASL_MAX + 1];               /* cmd.ir of the call under way */
	char ir_kept[RESULTS_MAX][IMAP_SASL_MAX + 1]; /* cmd[k].ir */
};

static void
tr_printf(struct drive *d, const char *fmt, ...)
{
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(d->log + d->log_len, sizeof(d->log) - d->log_len, fmt, ap);
	va_end(ap);
	assert_true(w >= 0 && (size_t)w < sizeof(d->log) - d->log_len);
	d->log_len += (size_t)w;
}

static void
tr_hex(struct drive *d, const char *key, const char *s, size_t n)
{
	tr_printf(d, " %s=", key);
	for (size_t i = 0; i < n; i++)
		tr_printf(d, "%02x", (unsigned char)s[i]);
}

static void
check_cmd_invariants(const struct imap_cmd *c)
{
	assert_true(strnlen(c->tag, sizeof(c->tag)) < sizeof(c->tag));
	assert_true(strnlen(c->name, sizeof(c->name)) < sizeof(c->name));
	assert_true(strnlen(c->mech, sizeof(c->mech)) < sizeof(c->mech));
	assert_true(c->user_len <= IMAP_USER_MAX);
	assert_true(c->secret_len <= IMAP_SECRET_MAX);
	assert_true(c->ir_len <= IMAP_SASL_MAX);
	assert_int_equal(c->user[c->user_len], '\0');
	assert_int_equal(c->secret[c->secret_len], '\0');
	assert_int_equal(c->ir[c->ir_len], '\0');
}

static struct drive *
drive_new(const struct imap_limits *lim)
{
	struct drive *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	imap_parser_init(&d->p, lim);
	return d;
}

static void
drive_feed(struct drive *d, const uint8_t *in, size_t len)
{
	size_t off = 0;
	bool more = false;

	assert_true(len <= sizeof(d->pend) - d->pend_len);
	memcpy(d->pend + d->pend_len, in, len);
	d->pend_len += len;
	while (off < d->pend_len && !d->fatal && !more) {
		struct imap_cmd cmd;
		size_t used = (size_t)-1;
		enum imap_rc rc;

		imap_cmd_init(&cmd, d->ir_now);
		rc = imap_parse(&d->p, d->pend + off, d->pend_len - off, &used, &cmd);
		assert_true(used <= d->pend_len - off);
		off += used;
		d->off += used;
		switch (rc) {
		case IMAP_MORE:
			/* all used, or a SASL text kept whole: no line end yet */
			assert_true(off == d->pend_len ||
			            memchr(d->pend + off, '\n', d->pend_len - off) == NULL);
			more = true;
			continue;
		case IMAP_CONTINUE:
			assert_true(used > 0);
			assert_true(d->continues < RESULTS_MAX);
			d->cont_at[d->continues++] = d->off;
			tr_printf(d, "+@%zu|", d->off);
			continue;
		case IMAP_CMD:
		case IMAP_BAD:
		case IMAP_FATAL:
			break;
		}
		assert_true(used > 0 || rc == IMAP_FATAL);
		check_cmd_invariants(&cmd);
		assert_true(d->n < RESULTS_MAX);
		d->rc[d->n] = rc;
		memcpy(d->ir_kept[d->n], cmd.ir, sizeof(d->ir_kept[d->n]));
		d->cmd[d->n] = cmd;
		d->cmd[d->n].ir = d->ir_kept[d->n];
		d->n++;
		if (rc == IMAP_CMD) {
			assert_null(cmd.error);
			tr_printf(d, "CMD@%zu v=%d tag=%s name=%s", d->off, cmd.verb, cmd.tag,
			          cmd.name);
			tr_hex(d, "user", cmd.user, cmd.user_len);
			tr_hex(d, "secret", cmd.secret, cmd.secret_len);
			tr_hex(d, "ir", cmd.ir, cmd.ir_len);
			tr_printf(d, " mech=%s has_ir=%d cancelled=%d|", cmd.mech, cmd.has_ir,
			          cmd.cancelled);
			/* the session writes "+ " and expects a SASL line */
			if (cmd.verb == IMAP_V_AUTHENTICATE && !cmd.has_ir)
				imap_parser_expect_sasl(&d->p);
		} else {
			assert_non_null(cmd.error);
			assert_int_equal(cmd.user_len, 0);
			assert_int_equal(cmd.secret_len, 0);
			tr_printf(d, "%s@%zu tag=%s error=%s|", rc == IMAP_BAD ? "BAD" : "FATAL",
			          d->off, cmd.tag, cmd.error);
			d->fatal = rc == IMAP_FATAL;
		}
	}
	memmove(d->pend, d->pend + off, d->pend_len - off);
	d->pend_len -= off;
}

static struct drive *
run_split(const void *in, size_t len, size_t cut, const struct imap_limits *lim)
{
	struct drive *d = drive_new(lim);

	drive_feed(d, in, cut);
	drive_feed(d, (const uint8_t *)in + cut, len - cut);
	return d;
}

static struct drive *
run_bytes(const void *in, size_t len, const struct imap_limits *lim)
{
	struct drive *d = drive_new(lim);

	for (size_t i = 0; i < len; i++)
		drive_feed(d, (const uint8_t *)in + i, 1);
	return d;
}

/* Feed whole, byte by byte and cut at every point; the transcripts must
 * agree.  Returns the whole-input run for the caller to inspect. */
static struct drive *
run_lim(const void *in, size_t len, const struct imap_limits *lim)
{
	struct drive *whole = run_split(in, len, len, lim);
	struct drive *d = run_bytes(in, len, lim);
	size_t step = len > 3000 ? len / 1500 : 1;

	assert_string_equal(d->log, whole->log);
	free(d);
	for (size_t cut = 0; cut <= len; cut += step) {
		d = run_split(in, len, cut, lim);
		if (strcmp(d->log, whole->log) != 0)
			fail_msg("cut %zu: %s\n  whole: %s", cut, d->log, whole->log);
		free(d);
	}
	return whole;
}

static struct drive *
run(const void *in, size_t len)
{
	return run_lim(in, len, NULL);
}

/* STYLE.md §7: the first result of in, fed in two pieces cut at cut. */
static enum imap_rc
feed_split(const char *in, size_t cut, struct imap_cmd *cmd_out)
{
	struct drive *d = run_split(in, strlen(in), cut, NULL);
	enum imap_rc rc;

	assert_true(d->n > 0);
	rc = d->rc[0];
	*cmd_out = d->cmd[0];
	cmd_out->ir = NULL; /* it was d's */
	free(d);
	return rc;
}

#define IN(s) s, sizeof(s) - 1

struct row {
	const char *in;
	size_t len;
	enum imap_rc rc;   /* the first result that is not IMAP_CONTINUE */
	const char *error; /* its reason; NULL for IMAP_CMD */
	const char *tag;
	enum imap_verb verb;
};

static void
check_rows(const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct drive *d = run(rows[i].in, rows[i].len);

		if (d->n == 0)
			fail_msg("row %zu: no result", i);
		if (d->rc[0] != rows[i].rc)
			fail_msg("row %zu: rc %d, want %d (%s)", i, d->rc[0], rows[i].rc, d->log);
		if (rows[i].error == NULL)
			assert_null(d->cmd[0].error);
		else if (d->cmd[0].error == NULL || strcmp(d->cmd[0].error, rows[i].error) != 0)
			fail_msg("row %zu: error \"%s\", want \"%s\"", i,
			         d->cmd[0].error ? d->cmd[0].error : "(null)", rows[i].error);
		if (rows[i].tag != NULL)
			assert_string_equal(d->cmd[0].tag, rows[i].tag);
		if (rows[i].rc == IMAP_CMD)
			assert_int_equal(d->cmd[0].verb, rows[i].verb);
		free(d);
	}
}

static void
well_formed_commands_parse_in_any_split(void **state)
{
	static const struct row rows[] = {
	    {IN("a1 CAPABILITY\r\n"), IMAP_CMD, NULL, "a1", IMAP_V_CAPABILITY},
	    {IN("a1 capability\r\n"), IMAP_CMD, NULL, "a1", IMAP_V_CAPABILITY},
	    {IN("a1 CaPaBiLiTy\n"), IMAP_CMD, NULL, "a1", IMAP_V_CAPABILITY},
	    {IN("x NOOP\r\n"), IMAP_CMD, NULL, "x", IMAP_V_NOOP},
	    {IN("x logout\r\n"), IMAP_CMD, NULL, "x", IMAP_V_LOGOUT},
	    {IN("x StartTLS\r\n"), IMAP_CMD, NULL, "x", IMAP_V_STARTTLS},
	    {IN("a]b NOOP\r\n"), IMAP_CMD, NULL, "a]b", IMAP_V_NOOP},
	    {IN("A.001-x_y:z NOOP\r\n"), IMAP_CMD, NULL, "A.001-x_y:z", IMAP_V_NOOP},
	    {IN("0 NOOP\r\n"), IMAP_CMD, NULL, "0", IMAP_V_NOOP},
	    {IN("t123456789012345678901234567890123456789012345678901234567890123 NOOP\r\n"),
	     IMAP_CMD, NULL, NULL, IMAP_V_NOOP}, /* 64 chars */
	    {IN("a LOGIN alice secret\r\n"), IMAP_CMD, NULL, "a", IMAP_V_LOGIN},
	    {IN("a login \"alice\" \"s e c\"\r\n"), IMAP_CMD, NULL, "a", IMAP_V_LOGIN},
	    {IN("a LOGIN \"\" \"\"\r\n"), IMAP_CMD, NULL, "a", IMAP_V_LOGIN},
	    {IN("a LOGIN a]b c]d\r\n"), IMAP_CMD, NULL, "a", IMAP_V_LOGIN},
	    {IN("a LOGIN {5}\r\nalice {6}\r\nsecret\r\n"), IMAP_CMD, NULL, "a", IMAP_V_LOGIN},
	    {IN("a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n"), IMAP_CMD, NULL, "a", IMAP_V_LOGIN},
	    {IN("a LOGIN {5}\nalice \"x\"\n"), IMAP_CMD, NULL, "a", IMAP_V_LOGIN},
	    {IN("a ID NIL\r\n"), IMAP_CMD, NULL, "a", IMAP_V_ID},
	    {IN("a id nil\r\n"), IMAP_CMD, NULL, "a", IMAP_V_ID},
	    {IN("a ID ()\r\n"), IMAP_CMD, NULL, "a", IMAP_V_ID},
	    {IN("a ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\n"), IMAP_CMD, NULL, "a",
	     IMAP_V_ID},
	    {IN("a ID (\"name\" {3}\r\nx\"y \"os\" {0+}\r\n)\r\n"), IMAP_CMD, NULL, "a", IMAP_V_ID},
	    {IN("a ID (\"a\" nil \"b\" NiL)\r\n"), IMAP_CMD, NULL, "a", IMAP_V_ID},
	    {IN("a AUTHENTICATE PLAIN\r\n"), IMAP_CMD, NULL, "a", IMAP_V_AUTHENTICATE},
	    {IN("a authenticate plain =\r\n"), IMAP_CMD, NULL, "a", IMAP_V_AUTHENTICATE},
	    {IN("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n"), IMAP_CMD, NULL, "a",
	     IMAP_V_AUTHENTICATE},
	    {IN("a AUTHENTICATE SCRAM-SHA-256\r\n"), IMAP_CMD, NULL, "a", IMAP_V_AUTHENTICATE},
	    {IN("a SELECT INBOX\r\n"), IMAP_CMD, NULL, "a", IMAP_V_OTHER},
	    {IN("a ENABLE UTF8=ACCEPT\r\n"), IMAP_CMD, NULL, "a", IMAP_V_OTHER},
	    {IN("a FROBNICATE\r\n"), IMAP_CMD, NULL, "a", IMAP_V_OTHER},
	    {IN("a UID FETCH 1:* (FLAGS)\r\n"), IMAP_CMD, NULL, "a", IMAP_V_OTHER},
	    {IN("a LIST \"\" *\r\n"), IMAP_CMD, NULL, "a", IMAP_V_OTHER},
	    {IN("a APPEND INBOX {5}\r\nhello\r\n"), IMAP_CMD, NULL, "a", IMAP_V_OTHER},
	    {IN("a APPEND INBOX {5+}\r\nhel\r\n\r\n"), IMAP_CMD, NULL, "a", IMAP_V_OTHER},
	    {IN("a X {1}\r\n{ {0}\r\n\r\n"), IMAP_CMD, NULL, "a", IMAP_V_OTHER},
	    {IN("a SEARCH {x} \"{3}\"\r\n"), IMAP_CMD, NULL, "a", IMAP_V_OTHER},
	    {IN("a LOGINX\r\n"), IMAP_CMD, NULL, "a", IMAP_V_OTHER},
	    {IN("a AUTH PLAIN\r\n"), IMAP_CMD, NULL, "a", IMAP_V_OTHER},
	};
	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void
malformed_commands_give_bad_with_reason_in_any_split(void **state)
{
	static const struct row rows[] = {
	    /* tags (RFC 9051 §9: 1*<ASTRING-CHAR except "+">) */
	    {IN("\r\n"), IMAP_BAD, "empty command line", "*", 0},
	    {IN("\n"), IMAP_BAD, "empty command line", "*", 0},
	    {IN(" NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("+ NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("a+b NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("* NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("a%b NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("a(b NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("a)b NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("a{b NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("a\"b NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("a\\b NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("a\tb NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("a\x7f NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("\xc3\xa9 NOOP\r\n"), IMAP_BAD, "invalid tag", "*", 0},
	    {IN("a\0 NOOP\r\n"), IMAP_BAD, "NUL in command", "*", 0},
	    {IN("t1234567890123456789012345678901234567890123456789012345678901234 NOOP\r\n"),
	     IMAP_BAD, "invalid tag", "*", 0}, /* 65 chars */
	    /* command words */
	    {IN("a1\r\n"), IMAP_BAD, "missing command", "a1", 0},
	    {IN("a1 \r\n"), IMAP_BAD, "missing command", "a1", 0},
	    {IN("a1  NOOP\r\n"), IMAP_BAD, "invalid command", "a1", 0},
	    {IN("a1 1NOOP\r\n"), IMAP_BAD, "invalid command", "a1", 0},
	    {IN("a1 (NOOP\r\n"), IMAP_BAD, "invalid command", "a1", 0},
	    {IN("a1 NO!OP\r\n"), IMAP_BAD, "invalid command", "a1", 0},
	    {IN("a1 NOOP(\r\n"), IMAP_BAD, "invalid command", "a1", 0},
	    {IN("a1 N\xc3\xa9\r\n"), IMAP_BAD, "invalid command", "a1", 0},
	    /* argument-less commands */
	    {IN("a NOOP x\r\n"), IMAP_BAD, "unexpected arguments", "a", 0},
	    {IN("a NOOP \r\n"), IMAP_BAD, "unexpected arguments", "a", 0},
	    {IN("a STARTTLS {5}\r\n"), IMAP_BAD, "unexpected arguments", "a", 0},
	    /* line ends and NUL */
	    {IN("a NOOP\rx\r\n"), IMAP_BAD, "CR not followed by LF", "a", 0},
	    {IN("a NOOP\r\r\n"), IMAP_BAD, "CR not followed by LF", "a", 0},
	    {IN("a SELECT IN\0BOX\r\n"), IMAP_BAD, "NUL in command", "a", 0},
	    {IN("a SELECT INBOX\rx\n"), IMAP_BAD, "CR not followed by LF", "a", 0},
	    /* LOGIN */
	    {IN("a LOGIN\r\n"), IMAP_BAD, "missing arguments", "a", 0},
	    {IN("a LOGIN \r\n"), IMAP_BAD, "missing arguments", "a", 0},
	    {IN("a LOGIN alice\r\n"), IMAP_BAD, "missing arguments", "a", 0},
	    {IN("a LOGIN alice \r\n"), IMAP_BAD, "missing arguments", "a", 0},
	    {IN("a LOGIN alice s x\r\n"), IMAP_BAD, "too many arguments", "a", 0},
	    {IN("a LOGIN alice s \r\n"), IMAP_BAD, "too many arguments", "a", 0},
	    {IN("a LOGIN alice  s\r\n"), IMAP_BAD, "invalid arguments", "a", 0},
	    {IN("a LOGIN (alice) s\r\n"), IMAP_BAD, "invalid arguments", "a", 0},
	    {IN("a LOGIN al%ice s\r\n"), IMAP_BAD, "invalid arguments", "a", 0},
	    {IN("a LOGIN al*ce s\r\n"), IMAP_BAD, "invalid arguments", "a", 0},
	    {IN("a LOGIN \"alice\"x s\r\n"), IMAP_BAD, "invalid arguments", "a", 0},
	    {IN("a LOGIN al\xc3\xa9 s\r\n"), IMAP_BAD, "invalid arguments", "a", 0},
	    {IN("a LOGIN \"al\\ice\" s\r\n"), IMAP_BAD, "invalid escape in quoted string", "a", 0},
	    {IN("a LOGIN \"al\\nce\" s\r\n"), IMAP_BAD, "invalid escape in quoted string", "a", 0},
	    {IN("a LOGIN \"alice s\r\n"), IMAP_BAD, "unterminated quoted string", "a", 0},
	    {IN("a LOGIN \"al\rice\" s\r\n"), IMAP_BAD, "CR not followed by LF", "a", 0},
	    /* 8-bit in a quoted string must be well-formed UTF-8 (RFC 3629) */
	    {IN("a LOGIN \"al\xe9\" s\r\n"), IMAP_BAD, "invalid UTF-8 in quoted string", "a", 0},
	    {IN("a LOGIN \"al\xc3\" s\r\n"), IMAP_BAD, "invalid UTF-8 in quoted string", "a", 0},
	    {IN("a LOGIN \"\xc0\xaf\" s\r\n"), IMAP_BAD, "invalid UTF-8 in quoted string", "a", 0},
	    {IN("a LOGIN \"\xed\xa0\x80\" s\r\n"), IMAP_BAD, "invalid UTF-8 in quoted string", "a",
	     0},
	    {IN("a LOGIN \"\xf4\x90\x80\x80\" s\r\n"), IMAP_BAD, "invalid UTF-8 in quoted string",
	     "a", 0},
	    {IN("a LOGIN \"al\0ice\" s\r\n"), IMAP_BAD, "NUL in command", "a", 0},
	    {IN("a LOGIN {5\r\n"), IMAP_BAD, "invalid literal", "a", 0},
	    {IN("a LOGIN {}\r\n"), IMAP_BAD, "invalid literal", "a", 0},
	    {IN("a LOGIN {+}\r\n"), IMAP_BAD, "invalid literal", "a", 0},
	    {IN("a LOGIN {5++}\r\n"), IMAP_BAD, "invalid literal", "a", 0},
	    {IN("a LOGIN {-5}\r\n"), IMAP_BAD, "invalid literal", "a", 0},
	    {IN("a LOGIN {5} \r\n"), IMAP_BAD, "invalid literal", "a", 0},
	    {IN("a LOGIN {5}x\r\n"), IMAP_BAD, "invalid literal", "a", 0},
	    {IN("a LOGIN {5}\rx\n"), IMAP_BAD, "CR not followed by LF", "a", 0},
	    /* the bad line is over at its sync literal: no "+" is asked */
	    {IN("a LOGIN alice x {3}\r\n"), IMAP_BAD, "too many arguments", "a", 0},
	    /* AUTHENTICATE (RFC 9051 §6.2.2, RFC 4959) */
	    {IN("a AUTHENTICATE\r\n"), IMAP_BAD, "missing mechanism", "a", 0},
	    {IN("a AUTHENTICATE \r\n"), IMAP_BAD, "missing mechanism", "a", 0},
	    {IN("a AUTHENTICATE  PLAIN\r\n"), IMAP_BAD, "missing mechanism", "a", 0},
	    {IN("a AUTHENTICATE PL@IN\r\n"), IMAP_BAD, "invalid mechanism", "a", 0},
	    {IN("a AUTHENTICATE \"PLAIN\"\r\n"), IMAP_BAD, "invalid mechanism", "a", 0},
	    {IN("a AUTHENTICATE {5}\r\n"), IMAP_BAD, "invalid mechanism", "a", 0},
	    {IN("a AUTHENTICATE ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\r\n"), IMAP_BAD,
	     "mechanism name too long", "a", 0},
	    {IN("a AUTHENTICATE PLAIN \r\n"), IMAP_BAD, "missing initial response", "a", 0},
	    {IN("a AUTHENTICATE PLAIN a b\r\n"), IMAP_BAD, "too many arguments", "a", 0},
	    {IN("a AUTHENTICATE PLAIN ab!=\r\n"), IMAP_BAD, "invalid initial response", "a", 0},
	    {IN("a AUTHENTICATE PLAIN {4}\r\n"), IMAP_BAD, "invalid initial response", "a", 0},
	    /* ID (RFC 2971) */
	    {IN("a ID\r\n"), IMAP_BAD, "missing arguments", "a", 0},
	    {IN("a ID \r\n"), IMAP_BAD, "missing arguments", "a", 0},
	    {IN("a ID NILL\r\n"), IMAP_BAD, "invalid ID arguments", "a", 0},
	    {IN("a ID NI\r\n"), IMAP_BAD, "invalid ID arguments", "a", 0},
	    {IN("a ID NIL x\r\n"), IMAP_BAD, "invalid ID arguments", "a", 0},
	    {IN("a ID \"x\"\r\n"), IMAP_BAD, "invalid ID arguments", "a", 0},
	    {IN("a ID (\"a\")\r\n"), IMAP_BAD, "ID list not in pairs", "a", 0},
	    {IN("a ID (\"a\" \"b\"\r\n"), IMAP_BAD, "unterminated ID list", "a", 0},
	    {IN("a ID (\r\n"), IMAP_BAD, "unterminated ID list", "a", 0},
	    {IN("a ID ( )\r\n"), IMAP_BAD, "invalid arguments", "a", 0},
	    {IN("a ID ((\"a\" \"b\"))\r\n"), IMAP_BAD, "invalid arguments", "a", 0},
	    {IN("a ID (\"a\" \"b\") x\r\n"), IMAP_BAD, "unexpected arguments", "a", 0},
	    {IN("a ID (\"a\"  \"b\")\r\n"), IMAP_BAD, "invalid arguments", "a", 0},
	    {IN("a ID (\"a\" \"b\" )\r\n"), IMAP_BAD, "invalid arguments", "a", 0},
	    {IN("a ID (\"a\"\"b\")\r\n"), IMAP_BAD, "invalid ID arguments", "a", 0},
	    {IN("a ID (\"0123456789012345678901234567890\" NIL)\r\n"), IMAP_BAD,
	     "ID field too long", "a", 0},
	    {IN("a ID ({31}\r\n"), IMAP_BAD, "ID field too long", "a", 0},
	    /* RFC 2971 §4: fields are strings, values strings or NIL */
	    {IN("a ID (name \"x\")\r\n"), IMAP_BAD, "ID item not a string", "a", 0},
	    {IN("a ID (NIL \"x\")\r\n"), IMAP_BAD, "ID item not a string", "a", 0},
	    {IN("a ID (\"name\" x)\r\n"), IMAP_BAD, "ID item not a string", "a", 0},
	    {IN("a ID (\"name\" NILL)\r\n"), IMAP_BAD, "ID item not a string", "a", 0},
	    {IN("a ID (\"name\" NI)\r\n"), IMAP_BAD, "ID item not a string", "a", 0},
	    {IN("a ID (\"name\" NIL\r\n"), IMAP_BAD, "unterminated ID list", "a", 0},
	    {IN("a ID (\"name\" N\r\n"), IMAP_BAD, "unterminated ID list", "a", 0},
	    {IN("a ID (\"name\" (\"x\"))\r\n"), IMAP_BAD, "invalid arguments", "a", 0},
	    /* a value literal over 1024: BAD before the client sends it */
	    {IN("a ID (\"a\" {1025}\r\n"), IMAP_BAD, "ID value too long", "a", 0},
	    {IN("a ID (\"a\" {4294967296}\r\n"), IMAP_BAD, "ID value too long", "a", 0},
	};
	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void
over_budget_inputs_are_fatal_in_any_split(void **state)
{
	static const struct row rows[] = {
	    {IN("a LOGIN {257}\r\n"), IMAP_FATAL, "literal too large", NULL, 0},
	    {IN("a LOGIN {257+}\r\n"), IMAP_FATAL, "literal too large", NULL, 0},
	    {IN("a LOGIN alice {1025}\r\n"), IMAP_FATAL, "literal too large", NULL, 0},
	    {IN("a LOGIN alice {1025+}\r\n"), IMAP_FATAL, "literal too large", NULL, 0},
	    {IN("a LOGIN {4294967296}\r\n"), IMAP_FATAL, "literal too large", NULL, 0},
	    {IN("a LOGIN {99999999999999999999999}\r\n"), IMAP_FATAL, "literal too large", NULL, 0},
	    {IN("a SELECT {1025}\r\n"), IMAP_FATAL, "literal too large", NULL, 0},
	    {IN("a APPEND INBOX {1025+}\r\n"), IMAP_FATAL, "literal too large", NULL, 0},
	    {IN("a ID (\"a\" {1025+}\r\n"), IMAP_FATAL, "literal too large", NULL, 0},
	    /* a bad line cannot hide a {n+} over budget: its bytes would follow */
	    {IN("a NOOP {1025+}\r\n"), IMAP_FATAL, "literal too large", NULL, 0},
	    {IN("+ {2000+}\r\n"), IMAP_FATAL, "literal too large", NULL, 0},
	};
	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void
login_with_literal_survives_any_split(void **state)
{
	static const char in[] = "a1 LOGIN {5}\r\nalice \"s3\\\"x\"\r\n";
	(void)state;
	for (size_t cut = 1; cut < sizeof(in) - 1; cut++) {
		struct imap_cmd cmd;
		assert_int_equal(feed_split(in, cut, &cmd), IMAP_CMD);
		assert_string_equal(cmd.user, "alice");
		assert_string_equal(cmd.secret, "s3\"x");
	}
	free(run(IN(in)));
}

static void
login_copies_atom_and_quoted_arguments(void **state)
{
	struct drive *d = run(IN("A001 login alice@example.org \"pass word\"\r\n"));
	(void)state;
	assert_int_equal(d->n, 1);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->cmd[0].verb, IMAP_V_LOGIN);
	assert_string_equal(d->cmd[0].tag, "A001");
	assert_string_equal(d->cmd[0].name, "login"); /* as sent, for logs */
	assert_string_equal(d->cmd[0].user, "alice@example.org");
	assert_int_equal(d->cmd[0].user_len, 17);
	assert_string_equal(d->cmd[0].secret, "pass word");
	assert_int_equal(d->cmd[0].secret_len, 9);
	free(d);
}

static void
quoted_strings_unescape_backslash_and_quote(void **state)
{
	struct drive *d = run(IN("a LOGIN \"a\\\\b\\\"c\" \"\\\\\\\\\\\"\"\r\n"));
	(void)state;
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_string_equal(d->cmd[0].user, "a\\b\"c");
	assert_int_equal(d->cmd[0].user_len, 5);
	assert_string_equal(d->cmd[0].secret, "\\\\\"");
	free(d);
	/* other 7-bit controls are TEXT-CHARs and allowed (RFC 9051 §9) */
	d = run(IN("a LOGIN \"a\tb\" \"{5}\"\r\n"));
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_string_equal(d->cmd[0].user, "a\tb");
	assert_string_equal(d->cmd[0].secret, "{5}");
	assert_int_equal(d->continues, 0);
	free(d);
}

static void
quoted_strings_carry_utf8_passwords(void **state)
{
	/* RFC 9051 §9 QUOTED-CHAR includes UTF8-2, UTF8-3 and UTF8-4 */
	struct drive *d =
	    run(IN("a LOGIN \"d\xc3\xa4v\" \"p\xc3\xa4ss \xe2\x82\xac \xf0\x9f\x94\x91\"\r\n"));
	(void)state;
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_string_equal(d->cmd[0].user, "d\xc3\xa4v");
	assert_string_equal(d->cmd[0].secret, "p\xc3\xa4ss \xe2\x82\xac \xf0\x9f\x94\x91");
	free(d);
}

static void
sync_literal_asks_for_continuation_right_after_its_crlf(void **state)
{
	static const char in[] = "a LOGIN {5}\r\nalice {3}\r\nabc\r\n";
	struct imap_parser p;
	struct imap_cmd cmd;
	size_t used = 0;
	(void)state;

	imap_cmd_init(&cmd, NULL);
	imap_parser_init(&p, NULL);
	assert_int_equal(imap_parse(&p, (const uint8_t *)in, sizeof(in) - 1, &used, &cmd),
	                 IMAP_CONTINUE);
	assert_int_equal(used, strlen("a LOGIN {5}\r\n"));
	assert_int_equal(imap_parse(&p, (const uint8_t *)in + 13, sizeof(in) - 1 - 13, &used, &cmd),
	                 IMAP_CONTINUE);
	assert_int_equal(used, strlen("alice {3}\r\n"));
	assert_int_equal(imap_parse(&p, (const uint8_t *)in + 24, sizeof(in) - 1 - 24, &used, &cmd),
	                 IMAP_CMD);
	assert_int_equal(used, strlen("abc\r\n"));
	assert_string_equal(cmd.user, "alice");
	assert_string_equal(cmd.secret, "abc");
	/* a bare LF after "}" ends the announcement just as well */
	imap_parser_init(&p, NULL);
	assert_int_equal(imap_parse(&p, (const uint8_t *)"a LOGIN {5}\nal", 14, &used, &cmd),
	                 IMAP_CONTINUE);
	assert_int_equal(used, 12);
}

static void
nonsync_literal_needs_no_continuation(void **state)
{
	struct drive *d = run(IN("a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n"));
	(void)state;
	assert_int_equal(d->continues, 0);
	assert_int_equal(d->n, 1);
	assert_string_equal(d->cmd[0].user, "alice");
	assert_string_equal(d->cmd[0].secret, "secret");
	free(d);
	d = run(IN("a LOGIN {5}\r\nalice {6}\r\nsecret\r\n"));
	assert_int_equal(d->continues, 2);
	assert_int_equal(d->cont_at[0], 13);
	assert_int_equal(d->cont_at[1], 24);
	free(d);
}

static void
zero_length_literals_give_empty_arguments(void **state)
{
	struct drive *d = run(IN("a LOGIN {0}\r\n {0+}\r\n\r\n"));
	(void)state;
	assert_int_equal(d->continues, 1);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->cmd[0].user_len, 0);
	assert_int_equal(d->cmd[0].secret_len, 0);
	free(d);
}

/* The parser hands back what the client sent, CR LF and NUL included; the
 * session refuses control characters in a user name, not the parser. */
static void
literal_user_keeps_crlf_and_nul_bytes(void **state)
{
	static const char in[] = "a LOGIN {19}\r\nx\r\nb LOGOUT\r\n\0\0\0\0\0\0 s\r\n";
	struct drive *d = run(IN(in));
	(void)state;
	assert_int_equal(d->n, 1);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->cmd[0].verb, IMAP_V_LOGIN);
	assert_int_equal(d->cmd[0].user_len, 19);
	assert_memory_equal(d->cmd[0].user, "x\r\nb LOGOUT\r\n\0\0\0\0\0\0", 20);
	assert_string_equal(d->cmd[0].secret, "s");
	free(d);
}

static void
user_and_password_limits_apply_to_every_form(void **state)
{
	char in[4096], u[IMAP_USER_MAX + 2], s[IMAP_SECRET_MAX + 2];
	struct drive *d;
	int n;
	(void)state;

	memset(u, 'u', sizeof(u) - 1);
	u[sizeof(u) - 1] = '\0';
	memset(s, 's', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	/* at the limit: atom, quoted, literal */
	n = snprintf(in, sizeof(in), "a LOGIN %.256s \"%.1024s\"\r\n", u, s);
	d = run(in, (size_t)n);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->cmd[0].user_len, IMAP_USER_MAX);
	assert_int_equal(d->cmd[0].secret_len, IMAP_SECRET_MAX);
	free(d);
	n = snprintf(in, sizeof(in), "a LOGIN {256}\r\n%.256s {1024+}\r\n%.1024s\r\n", u, s);
	d = run(in, (size_t)n);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->cmd[0].user_len, IMAP_USER_MAX);
	assert_int_equal(d->cmd[0].secret_len, IMAP_SECRET_MAX);
	free(d);
	/* one over: BAD for atoms and quoted strings, FATAL for literals */
	n = snprintf(in, sizeof(in), "a LOGIN %s x\r\nb NOOP\r\n", u);
	d = run(in, (size_t)n);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_string_equal(d->cmd[0].error, "user name too long");
	assert_int_equal(d->rc[1], IMAP_CMD);
	free(d);
	n = snprintf(in, sizeof(in), "a LOGIN \"%s\" x\r\n", u);
	d = run(in, (size_t)n);
	assert_string_equal(d->cmd[0].error, "user name too long");
	free(d);
	n = snprintf(in, sizeof(in), "a LOGIN x \"%s\"\r\n", s);
	d = run(in, (size_t)n);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_string_equal(d->cmd[0].error, "password too long");
	free(d);
	n = snprintf(in, sizeof(in), "a LOGIN x %s\r\n", s);
	d = run(in, (size_t)n);
	assert_string_equal(d->cmd[0].error, "password too long");
	free(d);
}

static void
bad_command_pipelined_before_good_one_is_answered_separately(void **state)
{
	struct drive *d = run(IN("a1 LOGIN \"x\r\na2 LOGIN alice secret\r\n"));
	(void)state;
	assert_int_equal(d->n, 2);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_string_equal(d->cmd[0].tag, "a1");
	assert_int_equal(d->rc[1], IMAP_CMD);
	assert_string_equal(d->cmd[1].tag, "a2");
	assert_string_equal(d->cmd[1].user, "alice");
	assert_string_equal(d->cmd[1].secret, "secret");
	free(d);
}

static void
pipelined_commands_stop_used_right_after_each_line_end(void **state)
{
	static const char in[] = "a CAPABILITY\r\nb NOOP\nc ID NIL\r\nd LOGOUT\r\n";
	struct imap_parser p;
	struct imap_cmd cmd;
	size_t off = 0, used;
	static const struct {
		const char *tag;
		enum imap_verb verb;
		size_t used;
	} want[] = {
	    {"a", IMAP_V_CAPABILITY, 14},
	    {"b", IMAP_V_NOOP, 7},
	    {"c", IMAP_V_ID, 10},
	    {"d", IMAP_V_LOGOUT, 10},
	};
	(void)state;

	imap_cmd_init(&cmd, NULL);
	imap_parser_init(&p, NULL);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(
		    imap_parse(&p, (const uint8_t *)in + off, sizeof(in) - 1 - off, &used, &cmd),
		    IMAP_CMD);
		assert_int_equal(used, want[i].used);
		assert_string_equal(cmd.tag, want[i].tag);
		assert_int_equal(cmd.verb, want[i].verb);
		off += used;
	}
	assert_int_equal(off, sizeof(in) - 1);
	assert_int_equal(imap_parse(&p, (const uint8_t *)in, 0, &used, &cmd), IMAP_MORE);
	assert_int_equal(used, 0);
	free(run(IN(in)));
}

static void
bad_line_ending_in_sync_literal_ends_there(void **state)
{
	/* No "+" is sent, so the client drops the command and its literal:
	 * what follows is the next command. */
	struct drive *d = run(IN("a NOOP {5}\r\nb NOOP\r\n"));
	(void)state;
	assert_int_equal(d->continues, 0);
	assert_int_equal(d->n, 2);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_string_equal(d->cmd[0].error, "unexpected arguments");
	assert_int_equal(d->rc[1], IMAP_CMD);
	assert_string_equal(d->cmd[1].tag, "b");
	free(d);
}

static void
bad_line_ending_in_nonsync_literal_skips_its_bytes(void **state)
{
	/* RFC 7888: {n+} bytes follow unasked; a LOGIN hidden in them must
	 * not run. */
	struct drive *d = run(IN("a NOOP {14+}\r\nb LOGIN x y\r\n more\r\nc NOOP\r\n"));
	(void)state;
	assert_int_equal(d->continues, 0);
	assert_int_equal(d->n, 2);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_string_equal(d->cmd[0].tag, "a");
	assert_int_equal(d->rc[1], IMAP_CMD);
	assert_string_equal(d->cmd[1].tag, "c");
	assert_int_equal(d->cmd[1].verb, IMAP_V_NOOP);
	free(d);
	/* the same after an error inside an argument, and inside a tag */
	d = run(IN("a LOGIN \"a\\x\" {3+}\r\n\r\n\n {2+}\r\nzz\r\nc NOOP\r\n"));
	assert_int_equal(d->n, 2);
	assert_string_equal(d->cmd[0].error, "invalid escape in quoted string");
	assert_string_equal(d->cmd[1].tag, "c");
	free(d);
	d = run(IN("+a {3+}\r\nx\r\n\r\nc NOOP\r\n"));
	assert_int_equal(d->n, 2);
	assert_string_equal(d->cmd[0].tag, "*");
	assert_string_equal(d->cmd[1].tag, "c");
	free(d);
	/* an unterminated quoted string ending in {n+}: the client still sends */
	d = run(IN("a LOGIN \"x{1+}\r\n\"\r\nc NOOP\r\n"));
	assert_int_equal(d->n, 2);
	assert_string_equal(d->cmd[0].error, "unterminated quoted string");
	assert_string_equal(d->cmd[1].tag, "c");
	free(d);
}

static void
other_commands_are_skipped_whole_with_their_literals(void **state)
{
	struct drive *d = run(IN("a APPEND INBOX (\\Seen) {11}\r\nb LOGIN x y {3+}\r\n"
	                         "\r\n\r {0}\r\n\r\nc NOOP\r\n"));
	(void)state;
	assert_int_equal(d->continues, 2);
	assert_int_equal(d->n, 2);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->cmd[0].verb, IMAP_V_OTHER);
	assert_string_equal(d->cmd[0].name, "APPEND");
	assert_int_equal(d->cmd[0].user_len, 0);
	assert_string_equal(d->cmd[1].tag, "c");
	free(d);
	/* a NUL makes an unknown command bad, and then no "+" is asked */
	d = run(IN("a SELECT \0 {3}\r\nb NOOP\r\n"));
	assert_int_equal(d->continues, 0);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_string_equal(d->cmd[0].error, "NUL in command");
	assert_string_equal(d->cmd[0].name, "SELECT");
	assert_int_equal(d->rc[1], IMAP_CMD);
	free(d);
}

static void
long_command_names_are_cut_for_logs(void **state)
{
	struct drive *d = run(IN("a ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 x\r\n"));
	(void)state;
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->cmd[0].verb, IMAP_V_OTHER);
	assert_string_equal(d->cmd[0].name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
	free(d);
	/* a known name with a tail is another command */
	d = run(IN("a CAPABILITYCAPABILITYCAPABILITYCAPABILITY\r\n"));
	assert_int_equal(d->cmd[0].verb, IMAP_V_OTHER);
	free(d);
}

static void
id_accepts_nil_lists_and_literals(void **state)
{
	struct drive *d = run(IN("a ID (\"name\" {5}\r\nmutt) \"os\" NIL \"x\" {3+}\r\n"
	                         "a\"b)\r\nb NOOP\r\n"));
	(void)state;
	assert_int_equal(d->continues, 1);
	assert_int_equal(d->n, 2);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->cmd[0].verb, IMAP_V_ID);
	assert_int_equal(d->cmd[0].user_len, 0); /* dropped, not kept */
	assert_string_equal(d->cmd[1].tag, "b");
	free(d);
}

static void
id_enforces_rfc2971_limits(void **state)
{
	char in[40000], v[ID_VALUE_MAX + 2];
	size_t o;
	struct drive *d;
	(void)state;

	/* 30 pairs pass, 31 do not */
	o = (size_t)snprintf(in, sizeof(in), "a ID (");
	for (int i = 0; i < 30; i++)
		o += (size_t)snprintf(in + o, sizeof(in) - o, "%s\"f%d\" \"v\"", i ? " " : "", i);
	o += (size_t)snprintf(in + o, sizeof(in) - o, ")\r\n");
	d = run(in, o);
	assert_int_equal(d->rc[0], IMAP_CMD);
	free(d);
	o -= 3;
	o += (size_t)snprintf(in + o, sizeof(in) - o, " \"f31\" \"v\")\r\n");
	d = run(in, o);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_string_equal(d->cmd[0].error, "too many ID pairs");
	free(d);
	/* fields up to 30 octets, values up to 1024 */
	d = run(IN("a ID (\"012345678901234567890123456789\" NIL)\r\n"));
	assert_int_equal(d->rc[0], IMAP_CMD);
	free(d);
	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	o = (size_t)snprintf(in, sizeof(in), "a ID (\"f\" \"%.1024s\" \"g\" {1024}\r\n%.1024s)\r\n",
	                     v, v);
	d = run(in, o);
	assert_int_equal(d->rc[0], IMAP_CMD);
	free(d);
	o = (size_t)snprintf(in, sizeof(in), "a ID (\"f\" \"%s\")\r\n", v);
	d = run(in, o);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_string_equal(d->cmd[0].error, "ID value too long");
	free(d);
	/* a literal field over 30: BAD at once, no "+" asked, or its {n+}
	 * bytes skipped */
	d = run(IN("a ID ({31}\r\nb NOOP\r\n"));
	assert_int_equal(d->continues, 0);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_int_equal(d->rc[1], IMAP_CMD);
	free(d);
	d = run(IN("a ID ({31+}\r\n0123456789012345678901234567890 NIL)\r\nb NOOP\r\n"));
	assert_int_equal(d->n, 2);
	assert_string_equal(d->cmd[0].error, "ID field too long");
	assert_string_equal(d->cmd[1].tag, "b");
	free(d);
}

/*
 * An ID command built to order: pairs pairs, each field flen octets and
 * each value vlen octets ('\\' escaped when esc, so the line is longest),
 * as quoted strings, or {n+}/{n} literals when lit is '+' / 's'.
 */
static size_t
id_cmd(char *in, size_t cap, int pairs, size_t flen, size_t vlen, bool esc, char lit,
       const char *after)
{
	size_t o = (size_t)snprintf(in, cap, "a ID (");

	for (int i = 0; i < pairs; i++) {
		for (int k = 0; k < 2; k++) {
			size_t len = k == 0 ? flen : vlen;

			if (i > 0 || k > 0)
				in[o++] = ' ';
			if (lit != 0) {
				o += (size_t)snprintf(in + o, cap - o, "{%zu%s}\r\n", len,
				                      lit == '+' ? "+" : "");
				memset(in + o, k == 0 ? 'f' : '\n', len);
				o += len;
				continue;
			}
			in[o++] = '"';
			for (size_t j = 0; j < len; j++) {
				if (esc)
					in[o++] = '\\';
				in[o++] = esc ? '\\' : (char)('a' + (i + j) % 26);
			}
			in[o++] = '"';
			assert_true(o < cap - 64);
		}
	}
	o += (size_t)snprintf(in + o, cap - o, ")\r\n%s", after);
	return o;
}

static void
id_at_its_full_rfc2971_size_passes_and_one_past_any_bound_is_bad(void **state)
{
	static char in[IMAP_ID_LINE_MAX + 70000];
	struct drive *d;
	size_t n;
	(void)state;

	/* 30 pairs, 30-octet fields, 1024-octet values, every byte escaped:
	 * 63427 line octets, then a command that must keep the 8 KiB cap */
	n = id_cmd(in, sizeof(in), 30, 30, 1024, true, 0, "b NOOP\r\n");
	assert_true(n - 8 > IMAP_LINE_MAX * 7);
	d = run(in, n);
	assert_int_equal(d->n, 2);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->cmd[0].verb, IMAP_V_ID);
	assert_int_equal(d->cmd[1].verb, IMAP_V_NOOP);
	free(d);
	/* the same as literals, {n+} and {n} (60 continuations are asked) */
	n = id_cmd(in, sizeof(in), 30, 30, 1024, false, '+', "");
	d = run(in, n);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->continues, 0);
	free(d);
	n = id_cmd(in, sizeof(in), 8, 30, 1024, false, 's', ""); /* RESULTS_MAX continuations */
	d = run(in, n);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->continues, 16);
	free(d);
	/* one past each bound: a BAD with the line skipped, then "b" parses */
	n = id_cmd(in, sizeof(in), 31, 30, 1024, false, 0, "b NOOP\r\n");
	d = run(in, n);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_string_equal(d->cmd[0].error, "too many ID pairs");
	assert_int_equal(d->cmd[1].verb, IMAP_V_NOOP);
	free(d);
	n = id_cmd(in, sizeof(in), 30, 31, 1024, false, 0, "b NOOP\r\n");
	d = run(in, n);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_string_equal(d->cmd[0].error, "ID field too long");
	assert_int_equal(d->cmd[1].verb, IMAP_V_NOOP);
	free(d);
	n = id_cmd(in, sizeof(in), 30, 30, 1025, true, 0, "b NOOP\r\n");
	d = run(in, n);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_string_equal(d->cmd[0].error, "ID value too long");
	assert_int_equal(d->cmd[1].verb, IMAP_V_NOOP);
	free(d);
	n = id_cmd(in, sizeof(in), 1, 30, 1025, false, '+', "b NOOP\r\n");
	d = run(in, n);
	assert_int_equal(d->rc[0], IMAP_FATAL); /* 1025 bytes on their way: over budget */
	assert_string_equal(d->cmd[0].error, "literal too large");
	free(d);
	n = id_cmd(in, sizeof(in), 1, 31, 1, false, '+', "b NOOP\r\n");
	d = run(in, n);
	assert_int_equal(d->rc[0], IMAP_BAD); /* 31 bytes within budget: skipped */
	assert_string_equal(d->cmd[0].error, "ID field too long");
	assert_int_equal(d->cmd[1].verb, IMAP_V_NOOP);
	free(d);
	/* a bad ID line is skipped within the ID cap, and no further */
	n = id_cmd(in, sizeof(in), 32, 30, 1024, true, 0, "b NOOP\r\n");
	assert_true(n > IMAP_ID_LINE_MAX);
	d = run(in, n);
	assert_int_equal(d->n, 1);
	assert_int_equal(d->rc[0], IMAP_FATAL);
	assert_string_equal(d->cmd[0].error, "line too long");
	assert_int_equal(d->off, IMAP_ID_LINE_MAX + 1);
	free(d);
}

static void
id_cap_applies_to_id_only(void **state)
{
	static char in[2 * IMAP_LINE_MAX];
	struct imap_limits lim = {.id_line_max = 100};
	struct drive *d;
	size_t n;
	(void)state;

	/* LOGIN keeps 8 KiB even right after a long ID */
	n = id_cmd(in, sizeof(in), 4, 30, 1024, false, 0, "");
	n += (size_t)snprintf(in + n, sizeof(in) - n, "b LOGIN ");
	memset(in + n, 'x', IMAP_LINE_MAX);
	n += IMAP_LINE_MAX;
	d = run(in, n);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->rc[1], IMAP_FATAL);
	assert_string_equal(d->cmd[1].error, "line too long");
	free(d);
	/* the ID cap can be lowered, never below line_max */
	n = id_cmd(in, sizeof(in), 4, 30, 30, false, 0, "");
	d = run_lim(in, n, &lim);
	assert_int_equal(d->rc[0], IMAP_CMD); /* 259 octets: under line_max */
	free(d);
	lim.line_max = 64;
	d = run_lim(in, n, &lim);
	assert_int_equal(d->rc[0], IMAP_FATAL);
	free(d);
}

static void
authenticate_carries_an_oauth_token_longer_than_a_command_line(void **state)
{
	static char in[2 * IMAP_SASL_MAX + 128], token[SASL_TOKEN_MAX];
	static char b64[SASL_OAUTH_B64_MAX + 1], user[SASL_USER_MAX + 1], tok[SASL_TOKEN_MAX + 1];
	size_t n, bl, ul, tl;
	struct drive *d;
	(void)state;

	memset(token, 'T', sizeof(token));
	bl = sasl_oauthbearer_encode("alice@example.org", 17, token, sizeof(token), b64,
	                             sizeof(b64));
	assert_true(bl > IMAP_LINE_MAX);
	/* as a SASL-IR initial response, and as a continuation line */
	n = (size_t)snprintf(in, sizeof(in),
	                     "a AUTHENTICATE OAUTHBEARER %s\r\n"
	                     "b AUTHENTICATE XOAUTH2\r\n%s\r\nc NOOP\r\n",
	                     b64, b64);
	d = run(in, n);
	assert_int_equal(d->n, 4);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_true(d->cmd[0].has_ir);
	assert_int_equal(d->cmd[0].ir_len, bl);
	assert_int_equal(
	    sasl_oauthbearer_decode(d->cmd[0].ir, d->cmd[0].ir_len, user, &ul, tok, &tl), SASL_OK);
	assert_string_equal(user, "alice@example.org");
	assert_int_equal(tl, SASL_TOKEN_MAX);
	assert_int_equal(d->cmd[2].verb, IMAP_V_SASL);
	assert_int_equal(d->cmd[2].ir_len, bl);
	assert_int_equal(d->cmd[3].verb, IMAP_V_NOOP);
	free(d);
}

static void
sasl_line_limits_are_exact_and_separate_from_the_line_limit(void **state)
{
	static char in[2 * IMAP_LINE_MAX + IMAP_SASL_MAX + 64];
	struct imap_limits lim = {.sasl_line_max = 100};
	struct drive *d;
	size_t o;
	(void)state;

	/* an initial response of IMAP_SASL_MAX passes, one more is BAD */
	o = (size_t)snprintf(in, sizeof(in), "a AUTHENTICATE XOAUTH2 ");
	memset(in + o, 'A', IMAP_SASL_MAX);
	memcpy(in + o + IMAP_SASL_MAX, "\r\nb NOOP\r\n", 10);
	d = run(in, o + IMAP_SASL_MAX + 10);
	assert_int_equal(d->rc[0], IMAP_CMD);
	assert_int_equal(d->cmd[0].ir_len, IMAP_SASL_MAX);
	free(d);
	memcpy(in + o + IMAP_SASL_MAX, "A\r\nb NOOP\r\n", 11);
	d = run(in, o + IMAP_SASL_MAX + 11);
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_string_equal(d->cmd[0].error, "initial response too long");
	assert_int_equal(d->cmd[1].verb, IMAP_V_NOOP);
	free(d);
	/* the rest of such a line is skipped up to line_max + sasl_line_max */
	memset(in + o, 'A', IMAP_SASL_MAX + IMAP_LINE_MAX);
	memcpy(in + o + IMAP_SASL_MAX + IMAP_LINE_MAX, "\r\n", 2);
	d = run(in, o + IMAP_SASL_MAX + IMAP_LINE_MAX + 2);
	assert_int_equal(d->rc[0], IMAP_FATAL);
	assert_string_equal(d->cmd[0].error, "line too long");
	assert_int_equal(d->off, IMAP_SASL_MAX + IMAP_LINE_MAX + 1);
	free(d);
	/* a lowered SASL limit bounds both kinds of line */
	o = (size_t)snprintf(in, sizeof(in), "a AUTHENTICATE PLAIN ");
	memset(in + o, 'A', 101);
	memcpy(in + o + 101, "\r\n", 2);
	d = run_lim(in, o + 103, &lim);
	assert_string_equal(d->cmd[0].error, "initial response too long");
	free(d);
	o = (size_t)snprintf(in, sizeof(in), "a AUTHENTICATE PLAIN\r\n");
	memset(in + o, 'A', 100);
	memcpy(in + o + 100, "\r\n", 2);
	d = run_lim(in, o + 102, &lim);
	assert_int_equal(d->rc[1], IMAP_CMD);
	free(d);
	in[o + 100] = 'A';
	d = run_lim(in, o + 102, &lim);
	assert_int_equal(d->rc[1], IMAP_FATAL);
	assert_string_equal(d->cmd[1].error, "SASL response too long");
	free(d);
	/* LOGIN keeps IMAP_LINE_MAX */
	o = (size_t)snprintf(in, sizeof(in), "a LOGIN ");
	memset(in + o, 'x', IMAP_LINE_MAX);
	d = run(in, IMAP_LINE_MAX + 1);
	assert_int_equal(d->rc[0], IMAP_FATAL);
	free(d);
}

static void
authenticate_without_initial_response_reads_a_sasl_line(void **state)
{
	struct drive *d = run(IN("a AUTHENTICATE plain\r\nAGFsaWNlAHNlY3JldA==\r\nb NOOP\r\n"));
	(void)state;
	assert_int_equal(d->n, 3);
	assert_int_equal(d->cmd[0].verb, IMAP_V_AUTHENTICATE);
	assert_string_equal(d->cmd[0].mech, "PLAIN"); /* upper-cased */
	assert_false(d->cmd[0].has_ir);
	assert_int_equal(d->cmd[1].verb, IMAP_V_SASL);
	assert_true(d->cmd[1].has_ir);
	assert_false(d->cmd[1].cancelled);
	assert_string_equal(d->cmd[1].ir, "AGFsaWNlAHNlY3JldA==");
	assert_int_equal(d->cmd[1].ir_len, 20);
	assert_string_equal(d->cmd[1].tag, "");
	/* one line only: then commands again */
	assert_int_equal(d->cmd[2].verb, IMAP_V_NOOP);
	free(d);
}

static void
authenticate_initial_response_and_equals_sign(void **state)
{
	struct drive *d = run(IN("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n"
	                         "b AUTHENTICATE PLAIN =\r\nc NOOP\r\n"));
	(void)state;
	assert_int_equal(d->n, 3);
	assert_true(d->cmd[0].has_ir);
	assert_string_equal(d->cmd[0].ir, "AGFsaWNlAHNlY3JldA==");
	assert_int_equal(d->cmd[0].ir_len, 20);
	/* RFC 4959 §3: "=" is an empty initial response */
	assert_true(d->cmd[1].has_ir);
	assert_int_equal(d->cmd[1].ir_len, 0);
	assert_string_equal(d->cmd[1].ir, "");
	/* with an initial response no SASL line is expected */
	assert_int_equal(d->cmd[2].verb, IMAP_V_NOOP);
	free(d);
}

static void
sasl_star_cancels_and_other_lines_pass_as_sent(void **state)
{
	struct drive *d = run(IN("a AUTHENTICATE PLAIN\r\n*\r\n"
	                         "b AUTHENTICATE PLAIN\r\n**\r\n"
	                         "c AUTHENTICATE PLAIN\n\r\n"
	                         "d AUTHENTICATE PLAIN\r\n a\0\rb\r\r\n"));
	(void)state;
	assert_int_equal(d->n, 8);
	assert_int_equal(d->cmd[1].verb, IMAP_V_SASL);
	assert_true(d->cmd[1].cancelled);
	assert_false(d->cmd[1].has_ir);
	assert_int_equal(d->cmd[1].ir_len, 0);
	assert_false(d->cmd[3].cancelled);
	assert_string_equal(d->cmd[3].ir, "**");
	/* an empty line is an empty response */
	assert_false(d->cmd[5].cancelled);
	assert_true(d->cmd[5].has_ir);
	assert_int_equal(d->cmd[5].ir_len, 0);
	/* the decoder, not the parser, judges the text */
	assert_int_equal(d->cmd[7].ir_len, 6);
	assert_memory_equal(d->cmd[7].ir, " a\0\rb\r", 7);
	free(d);
}

static void
sasl_line_over_its_limit_is_fatal(void **state)
{
	static char in[IMAP_SASL_MAX + 64];
	size_t o = (size_t)snprintf(in, sizeof(in), "a AUTHENTICATE PLAIN\r\n");
	struct drive *d;
	(void)state;

	memset(in + o, 'A', IMAP_SASL_MAX);
	memcpy(in + o + IMAP_SASL_MAX, "\r\n", 2);
	d = run(in, o + IMAP_SASL_MAX + 2);
	assert_int_equal(d->n, 2);
	assert_int_equal(d->rc[1], IMAP_CMD);
	assert_int_equal(d->cmd[1].ir_len, IMAP_SASL_MAX);
	free(d);
	memcpy(in + o + IMAP_SASL_MAX, "A\r\n", 3);
	d = run(in, o + IMAP_SASL_MAX + 3);
	assert_int_equal(d->n, 2);
	assert_int_equal(d->rc[1], IMAP_FATAL);
	assert_string_equal(d->cmd[1].error, "SASL response too long");
	free(d);
}

static void
line_over_line_max_is_fatal_and_literals_do_not_count(void **state)
{
	static char in[IMAP_LINE_MAX + 4096];
	size_t o;
	struct drive *d;
	(void)state;

	/* exactly IMAP_LINE_MAX octets, CRLF included, pass */
	o = (size_t)snprintf(in, sizeof(in), "a SELECT ");
	memset(in + o, 'x', IMAP_LINE_MAX - o - 2);
	memcpy(in + IMAP_LINE_MAX - 2, "\r\n", 2);
	d = run(in, IMAP_LINE_MAX);
	assert_int_equal(d->rc[0], IMAP_CMD);
	free(d);
	/* one more is fatal, before the line end arrives */
	memcpy(in + IMAP_LINE_MAX - 2, "x\r\n", 3);
	d = run(in, IMAP_LINE_MAX - 1);
	assert_int_equal(d->n, 0);
	free(d);
	d = run(in, IMAP_LINE_MAX + 1);
	assert_int_equal(d->rc[0], IMAP_FATAL);
	assert_string_equal(d->cmd[0].error, "line too long");
	assert_int_equal(d->off, IMAP_LINE_MAX + 1);
	free(d);
	/* literal bytes are not line bytes */
	o = (size_t)snprintf(in, sizeof(in), "a X {1000+}\r\n");
	memset(in + o, '\n', 1000);
	o += 1000;
	memset(in + o, 'y', IMAP_LINE_MAX - 13 - 2);
	o += IMAP_LINE_MAX - 13 - 2;
	memcpy(in + o, "\r\n", 2);
	d = run(in, o + 2);
	assert_int_equal(d->rc[0], IMAP_CMD);
	free(d);
}

static void
fatal_is_sticky_and_used_is_always_set(void **state)
{
	struct imap_parser p;
	struct imap_cmd cmd;
	size_t used = 1234;
	(void)state;

	imap_cmd_init(&cmd, NULL);
	imap_parser_init(&p, NULL);
	assert_int_equal(imap_parse(&p, (const uint8_t *)"a LOGIN {999}\r\n", 15, &used, &cmd),
	                 IMAP_FATAL);
	assert_int_equal(used, 15);
	assert_string_equal(cmd.error, "literal too large");
	used = 1234;
	assert_int_equal(imap_parse(&p, (const uint8_t *)"a NOOP\r\n", 8, &used, &cmd), IMAP_FATAL);
	assert_int_equal(used, 0);
	used = 1234;
	imap_parser_init(&p, NULL);
	assert_int_equal(imap_parse(&p, (const uint8_t *)"", 0, &used, &cmd), IMAP_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(imap_parse(&p, (const uint8_t *)"a NO", 4, &used, &cmd), IMAP_MORE);
	assert_int_equal(used, 4);
	assert_int_equal(imap_parse(&p, (const uint8_t *)"OP x\r\n", 6, &used, &cmd), IMAP_BAD);
	assert_int_equal(used, 6);
}

static void
limits_can_be_lowered(void **state)
{
	struct imap_limits lim = {.line_max = 32, .literal_max = 4};
	struct drive *d;
	(void)state;

	d = run_lim(IN("a LOGIN {4}\r\nabcd {5}\r\n"), &lim);
	assert_int_equal(d->continues, 1);
	assert_int_equal(d->rc[0], IMAP_FATAL);
	assert_string_equal(d->cmd[0].error, "literal too large");
	free(d);
	d = run_lim(IN("a SELECT {5+}\r\n"), &lim);
	assert_int_equal(d->rc[0], IMAP_FATAL);
	free(d);
	d = run_lim(IN("a SELECT 012345678901234567890\r\n"), &lim);
	assert_int_equal(d->rc[0], IMAP_CMD); /* 32 octets */
	free(d);
	d = run_lim(IN("a SELECT 0123456789012345678901\r\n"), &lim);
	assert_int_equal(d->rc[0], IMAP_FATAL);
	assert_string_equal(d->cmd[0].error, "line too long");
	free(d);
}

static void
bad_results_carry_no_credentials(void **state)
{
	struct drive *d = run(IN("a LOGIN alice secret x\r\n"));
	(void)state;
	assert_int_equal(d->rc[0], IMAP_BAD);
	assert_int_equal(d->cmd[0].verb, IMAP_V_NONE);
	assert_string_equal(d->cmd[0].name, "LOGIN");
	assert_string_equal(d->cmd[0].user, "");
	assert_string_equal(d->cmd[0].secret, "");
	free(d);
}

/* A SASL text is read only once its line is whole in the caller's buffer,
 * into the caller's cmd.ir: the parser holds none of it between calls. */
static void
sasl_text_waits_whole_in_the_callers_buffer(void **state)
{
	static const char head[] = "a AUTHENTICATE PLAIN ";
	static char ir[IMAP_SASL_MAX + 1];
	struct imap_parser p;
	struct imap_cmd cmd;
	size_t used = 99;
	(void)state;

	assert_true(sizeof(struct imap_parser) < 2048); /* was 13.9 KB with the text inside */
	imap_cmd_init(&cmd, ir);
	imap_parser_init(&p, NULL);
	assert_int_equal(
	    imap_parse(&p, (const uint8_t *)"a AUTHENTICATE PLAIN QUJD", 25, &used, &cmd),
	    IMAP_MORE);
	assert_int_equal(used, strlen(head)); /* the command word used, the text not */
	assert_string_equal(ir, "");          /* nothing written where the caller sees it */
	assert_int_equal(imap_parse(&p, (const uint8_t *)"QUJD", 4, &used, &cmd), IMAP_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(imap_parse(&p, (const uint8_t *)"QUJD\r\n", 6, &used, &cmd), IMAP_CMD);
	assert_int_equal(used, 6);
	assert_true(cmd.ir == ir && cmd.has_ir && cmd.ir_len == 4);
	assert_string_equal(cmd.ir, "QUJD");
	imap_cmd_wipe(&cmd);
	assert_int_equal(ir[0], 0);

	/* a continuation line the same way */
	imap_cmd_init(&cmd, ir);
	imap_parser_expect_sasl(&p);
	assert_int_equal(imap_parse(&p, (const uint8_t *)"QUJDRA", 6, &used, &cmd), IMAP_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(imap_parse(&p, (const uint8_t *)"QUJDRA==\n", 9, &used, &cmd), IMAP_CMD);
	assert_int_equal(cmd.verb, IMAP_V_SASL);
	assert_string_equal(cmd.ir, "QUJDRA==");

	/* a bad text read and then refused leaves nothing in the caller's buffer */
	imap_cmd_init(&cmd, ir);
	assert_int_equal(
	    imap_parse(&p, (const uint8_t *)"b AUTHENTICATE PLAIN QUJD!\r\n", 29, &used, &cmd),
	    IMAP_BAD);
	assert_string_equal(cmd.error, "invalid initial response");
	assert_memory_equal(ir, "\0\0\0\0", 4);

	/* no buffer for the text: refused, not written anywhere */
	imap_cmd_init(&cmd, NULL);
	assert_int_equal(
	    imap_parse(&p, (const uint8_t *)"c AUTHENTICATE PLAIN QUJD\r\n", 28, &used, &cmd),
	    IMAP_FATAL);
	assert_string_equal(cmd.error, "no room for a SASL response");
	/* nor for an empty response line */
	imap_parser_init(&p, NULL);
	imap_parser_expect_sasl(&p);
	assert_int_equal(imap_parse(&p, (const uint8_t *)"\r\n", 2, &used, &cmd), IMAP_FATAL);
	assert_string_equal(cmd.error, "no room for a SASL response");
}

static void
wipe_clears_credentials_in_command_and_parser(void **state)
{
	struct imap_parser p;
	struct imap_cmd cmd;
	size_t used;
	static const char zero[IMAP_SECRET_MAX + 1];
	(void)state;

	imap_cmd_init(&cmd, NULL);
	imap_parser_init(&p, NULL);
	assert_int_equal(imap_parse(&p, (const uint8_t *)"a LOGIN alice sec", 17, &used, &cmd),
	                 IMAP_MORE);
	assert_memory_equal(p.cmd.secret, "sec", 3);
	imap_parser_wipe(&p);
	assert_memory_equal(p.cmd.secret, zero, sizeof(p.cmd.secret));
	assert_memory_equal(p.cmd.user, zero, sizeof(p.cmd.user));

	imap_parser_init(&p, NULL);
	assert_int_equal(
	    imap_parse(&p, (const uint8_t *)"a LOGIN alice secret\r\n", 22, &used, &cmd), IMAP_CMD);
	/* the parser keeps no copy once the command is handed over */
	assert_memory_equal(p.cmd.secret, zero, sizeof(p.cmd.secret));
	imap_cmd_wipe(&cmd);
	assert_memory_equal(cmd.secret, zero, sizeof(cmd.secret));
	assert_memory_equal(cmd.user, zero, sizeof(cmd.user));
	assert_int_equal(cmd.secret_len, 0);
	assert_string_equal(cmd.tag, "a"); /* still there for the log line */
}

static void
quote_picks_quoted_string_when_safe_and_escapes(void **state)
{
	char out[64];
	bool lit = true;
	(void)state;

	assert_int_equal(imap_quote(out, sizeof(out), "alice", 5, true, &lit), 7);
	assert_false(lit);
	assert_string_equal(out, "\"alice\"");
	assert_int_equal(imap_quote(out, sizeof(out), "a\"b\\c", 5, true, &lit), 9);
	assert_false(lit);
	assert_string_equal(out, "\"a\\\"b\\\\c\"");
	assert_int_equal(imap_quote(out, sizeof(out), "", 0, false, &lit), 2);
	assert_string_equal(out, "\"\"");
	assert_int_equal(imap_quote(out, sizeof(out), "a b\t{5}", 7, false, &lit), 9);
	assert_false(lit);
}

static void
quote_uses_a_literal_for_crlf_nul_and_8bit(void **state)
{
	static const struct {
		const char *s;
		size_t len;
	} rows[] = {
	    {IN("a\rb")}, {IN("a\nb")}, {IN("a\0b")}, {IN("p\xc3\xa4ss")}, {IN("\x80")},
	};
	char out[64], want[64];
	bool lit = false;
	(void)state;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t hl = (size_t)snprintf(want, sizeof(want), "{%zu+}\r\n", rows[i].len);

		memcpy(want + hl, rows[i].s, rows[i].len);
		assert_int_equal(imap_quote(out, sizeof(out), rows[i].s, rows[i].len, true, &lit),
		                 hl + rows[i].len);
		assert_true(lit);
		assert_memory_equal(out, want, hl + rows[i].len);
		assert_int_equal(out[hl + rows[i].len], '\0');
		hl = (size_t)snprintf(want, sizeof(want), "{%zu}\r\n", rows[i].len);
		memcpy(want + hl, rows[i].s, rows[i].len);
		assert_int_equal(imap_quote(out, sizeof(out), rows[i].s, rows[i].len, false, &lit),
		                 hl + rows[i].len);
		assert_memory_equal(out, want, hl + rows[i].len);
	}
}

static void
quote_returns_zero_when_out_is_too_small(void **state)
{
	char out[16];
	bool lit;
	(void)state;

	/* the result and its NUL must fit */
	assert_int_equal(imap_quote(out, 8, "alice", 5, true, &lit), 7);
	assert_int_equal(imap_quote(out, 7, "alice", 5, true, &lit), 0);
	assert_int_equal(imap_quote(out, 5, "a\"\"", 3, true, &lit), 0);
	assert_int_equal(imap_quote(out, 10, "a\nb", 3, true, &lit), 9); /* {3+}CRLF a LF b */
	assert_int_equal(imap_quote(out, 9, "a\nb", 3, true, &lit), 0);
	assert_int_equal(imap_quote(out, 0, "", 0, true, &lit), 0);
	assert_int_equal(imap_quote(NULL, 0, "a\n", 2, true, &lit), 0);
}

/* What imap_quote() writes, our own parser reads back byte for byte. */
static void
quoted_then_parsed_gives_the_same_bytes(void **state)
{
	static const struct {
		const char *s;
		size_t len;
	} rows[] = {
	    {IN("alice")},   {IN("")},        {IN("\"\\\"")}, {IN("a\r\nb LOGOUT\r\n")},
	    {IN("\xff\0x")}, {IN("{5}\r\n")}, {IN("%*()")},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		for (int nonsync = 0; nonsync < 2; nonsync++) {
			char in[256], *o = in;
			size_t n;
			bool lit;
			struct drive *d;

			o += sprintf(o, "t LOGIN ");
			n = imap_quote(o, sizeof(in) - 32, rows[i].s, rows[i].len, nonsync, &lit);
			assert_true(n > 0);
			o += n;
			o += sprintf(o, " ");
			n = imap_quote(o, sizeof(in) - (size_t)(o - in), rows[i].s, rows[i].len,
			               nonsync, &lit);
			o += n;
			o += sprintf(o, "\r\n");
			d = run(in, (size_t)(o - in));
			assert_int_equal(d->rc[0], IMAP_CMD);
			assert_int_equal(d->cmd[0].user_len, rows[i].len);
			assert_memory_equal(d->cmd[0].user, rows[i].s, rows[i].len);
			assert_int_equal(d->cmd[0].secret_len, rows[i].len);
			assert_memory_equal(d->cmd[0].secret, rows[i].s, rows[i].len);
			free(d);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(well_formed_commands_parse_in_any_split),
	    cmocka_unit_test(malformed_commands_give_bad_with_reason_in_any_split),
	    cmocka_unit_test(over_budget_inputs_are_fatal_in_any_split),
	    cmocka_unit_test(login_with_literal_survives_any_split),
	    cmocka_unit_test(login_copies_atom_and_quoted_arguments),
	    cmocka_unit_test(quoted_strings_unescape_backslash_and_quote),
	    cmocka_unit_test(quoted_strings_carry_utf8_passwords),
	    cmocka_unit_test(sync_literal_asks_for_continuation_right_after_its_crlf),
	    cmocka_unit_test(nonsync_literal_needs_no_continuation),
	    cmocka_unit_test(zero_length_literals_give_empty_arguments),
	    cmocka_unit_test(literal_user_keeps_crlf_and_nul_bytes),
	    cmocka_unit_test(user_and_password_limits_apply_to_every_form),
	    cmocka_unit_test(bad_command_pipelined_before_good_one_is_answered_separately),
	    cmocka_unit_test(pipelined_commands_stop_used_right_after_each_line_end),
	    cmocka_unit_test(bad_line_ending_in_sync_literal_ends_there),
	    cmocka_unit_test(bad_line_ending_in_nonsync_literal_skips_its_bytes),
	    cmocka_unit_test(other_commands_are_skipped_whole_with_their_literals),
	    cmocka_unit_test(long_command_names_are_cut_for_logs),
	    cmocka_unit_test(id_accepts_nil_lists_and_literals),
	    cmocka_unit_test(id_enforces_rfc2971_limits),
	    cmocka_unit_test(id_at_its_full_rfc2971_size_passes_and_one_past_any_bound_is_bad),
	    cmocka_unit_test(id_cap_applies_to_id_only),
	    cmocka_unit_test(authenticate_carries_an_oauth_token_longer_than_a_command_line),
	    cmocka_unit_test(sasl_line_limits_are_exact_and_separate_from_the_line_limit),
	    cmocka_unit_test(authenticate_without_initial_response_reads_a_sasl_line),
	    cmocka_unit_test(authenticate_initial_response_and_equals_sign),
	    cmocka_unit_test(sasl_star_cancels_and_other_lines_pass_as_sent),
	    cmocka_unit_test(sasl_line_over_its_limit_is_fatal),
	    cmocka_unit_test(line_over_line_max_is_fatal_and_literals_do_not_count),
	    cmocka_unit_test(fatal_is_sticky_and_used_is_always_set),
	    cmocka_unit_test(limits_can_be_lowered),
	    cmocka_unit_test(bad_results_carry_no_credentials),
	    cmocka_unit_test(sasl_text_waits_whole_in_the_callers_buffer),
	    cmocka_unit_test(wipe_clears_credentials_in_command_and_parser),
	    cmocka_unit_test(quote_picks_quoted_string_when_safe_and_escapes),
	    cmocka_unit_test(quote_uses_a_literal_for_crlf_nul_and_8bit),
	    cmocka_unit_test(quote_returns_zero_when_out_is_too_small),
	    cmocka_unit_test(quoted_then_parsed_gives_the_same_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
