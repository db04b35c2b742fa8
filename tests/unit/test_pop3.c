/*
 * test_pop3.c: the POP3 authorization-state parser (lib/pop3.c).  Every
 * input is also fed one byte at a time and cut at every point, and must give
 * the same transcript.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

#include "pop3.h"
#include "sasl.h"

#define RESULTS_MAX 16
#define LOG_MAX     65536

/* A pretend session: feeds bytes, answers AUTH with "+ ". */
struct drive {
	struct pop3_parser p;
	struct pop3_cmd cmd[RESULTS_MAX];        /* POP3_CMD, POP3_BAD, POP3_FATAL in order */
	char ir[RESULTS_MAX][POP3_SASL_MAX + 1]; /* each result's SASL text */
	enum pop3_rc rc[RESULTS_MAX];
	size_t n;
	size_t off; /* bytes consumed so far */
	bool fatal;
	uint8_t pend[65536]; /* bytes fed and not yet used, as a session keeps them */
	size_t pend_len;
	char log[LOG_MAX];
	size_t log_len;
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
drive_feed(struct drive *d, const uint8_t *in, size_t len)
{
	size_t off = 0;

	assert_true(len <= sizeof(d->pend) - d->pend_len);
	memcpy(d->pend + d->pend_len, in, len);
	d->pend_len += len;
	while (off < d->pend_len && !d->fatal) {
		struct pop3_cmd c;
		size_t used = (size_t)-1;
		enum pop3_rc rc;

		assert_true(d->n < RESULTS_MAX);
		pop3_cmd_init(&c, d->ir[d->n]);
		rc = pop3_parse(&d->p, d->pend + off, d->pend_len - off, &used, &c);

		assert_true(used <= d->pend_len - off);
		if (rc == POP3_MORE) {
			/* nothing used: no LF yet, and the line still within its limit */
			assert_int_equal(used, 0);
			assert_null(memchr(d->pend + off, '\n', d->pend_len - off));
			assert_true(d->pend_len - off <= POP3_AUTH_LINE_MAX);
			break;
		}
		off += used;
		d->off += used;
		assert_true(used > 0);
		assert_true(strnlen(c.name, sizeof(c.name)) < sizeof(c.name));
		assert_true(strnlen(c.mech, sizeof(c.mech)) < sizeof(c.mech));
		assert_true(c.user_len <= POP3_USER_MAX && c.user[c.user_len] == '\0');
		assert_true(c.secret_len <= POP3_SECRET_MAX && c.secret[c.secret_len] == '\0');
		assert_true(c.ir_len <= POP3_SASL_MAX && c.ir[c.ir_len] == '\0');
		assert_true(d->n < RESULTS_MAX);
		d->rc[d->n] = rc;
		d->cmd[d->n++] = c;
		if (rc == POP3_CMD) {
			assert_null(c.error);
			tr_printf(d, "CMD@%zu v=%d name=%s", d->off, c.verb, c.name);
			tr_hex(d, "user", c.user, c.user_len);
			tr_hex(d, "secret", c.secret, c.secret_len);
			tr_hex(d, "ir", c.ir, c.ir_len);
			tr_printf(d, " mech=%s has_mech=%d has_ir=%d cancelled=%d|", c.mech,
			          c.has_mech, c.has_ir, c.cancelled);
			if (c.verb == POP3_V_AUTH && c.has_mech && !c.has_ir)
				pop3_parser_expect_sasl(&d->p);
		} else {
			assert_non_null(c.error);
			assert_int_equal(c.user_len + c.secret_len + c.ir_len, 0);
			tr_printf(d, "%s@%zu name=%s error=%s|", rc == POP3_BAD ? "BAD" : "FATAL",
			          d->off, c.name, c.error);
			d->fatal = rc == POP3_FATAL;
		}
	}
	memmove(d->pend, d->pend + off, d->pend_len - off);
	d->pend_len -= off;
}

static struct drive *
run_split(const void *in, size_t len, size_t cut)
{
	struct drive *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	pop3_parser_init(&d->p);
	drive_feed(d, in, cut);
	drive_feed(d, (const uint8_t *)in + cut, len - cut);
	return d;
}

/* Whole, byte by byte, and cut at every point (or some 1500 points of a
 * long input): one transcript. */
static struct drive *
run(const void *in, size_t len)
{
	struct drive *whole = run_split(in, len, len);
	struct drive *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	pop3_parser_init(&d->p);
	for (size_t i = 0; i < len; i++)
		drive_feed(d, (const uint8_t *)in + i, 1);
	assert_string_equal(d->log, whole->log);
	free(d);
	/* long inputs (SASL lines of 12 KiB): some 1500 cuts, as test_imap.c */
	for (size_t cut = 0; cut <= len; cut += len > 3000 ? len / 1500 : 1) {
		d = run_split(in, len, cut);
		if (strcmp(d->log, whole->log) != 0)
			fail_msg("cut %zu: %s\n  whole: %s", cut, d->log, whole->log);
		free(d);
	}
	return whole;
}

#define IN(s) s, sizeof(s) - 1

struct row {
	const char *in;
	size_t len;
	enum pop3_rc rc; /* the first result */
	const char *error;
	enum pop3_verb verb; /* for POP3_CMD */
	const char *name;
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
		if (rows[i].rc == POP3_CMD)
			assert_int_equal(d->cmd[0].verb, rows[i].verb);
		if (rows[i].name != NULL)
			assert_string_equal(d->cmd[0].name, rows[i].name);
		free(d);
	}
}

static void
well_formed_commands_parse_in_any_split(void **state)
{
	static const struct row rows[] = {
	    {IN("CAPA\r\n"), POP3_CMD, NULL, POP3_V_CAPA, "CAPA"},
	    {IN("capa\r\n"), POP3_CMD, NULL, POP3_V_CAPA, "CAPA"},
	    {IN("CaPa\n"), POP3_CMD, NULL, POP3_V_CAPA, "CAPA"},
	    {IN("CAPA  \r\n"), POP3_CMD, NULL, POP3_V_CAPA, NULL},
	    {IN("QUIT\r\n"), POP3_CMD, NULL, POP3_V_QUIT, "QUIT"},
	    {IN("stls\r\n"), POP3_CMD, NULL, POP3_V_STLS, "STLS"},
	    {IN("NOOP\r\n"), POP3_CMD, NULL, POP3_V_NOOP, "NOOP"},
	    {IN("USER alice\r\n"), POP3_CMD, NULL, POP3_V_USER, "USER"},
	    {IN("user   alice  \r\n"), POP3_CMD, NULL, POP3_V_USER, NULL},
	    {IN("PASS secret\r\n"), POP3_CMD, NULL, POP3_V_PASS, "PASS"},
	    {IN("PASS  s e c \r\n"), POP3_CMD, NULL, POP3_V_PASS, NULL},
	    {IN("AUTH\r\n"), POP3_CMD, NULL, POP3_V_AUTH, "AUTH"},
	    {IN("AUTH \r\n"), POP3_CMD, NULL, POP3_V_AUTH, NULL},
	    {IN("auth plain\r\n"), POP3_CMD, NULL, POP3_V_AUTH, NULL},
	    {IN("AUTH PLAIN =\r\n"), POP3_CMD, NULL, POP3_V_AUTH, NULL},
	    {IN("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"), POP3_CMD, NULL, POP3_V_AUTH, NULL},
	    {IN("STAT\r\n"), POP3_CMD, NULL, POP3_V_OTHER, "STAT"},
	    {IN("list 1\r\n"), POP3_CMD, NULL, POP3_V_OTHER, "LIST"},
	    {IN("RETR 1\r\n"), POP3_CMD, NULL, POP3_V_OTHER, "RETR"},
	    {IN("DELE 1\r\n"), POP3_CMD, NULL, POP3_V_OTHER, "DELE"},
	    {IN("RSET\r\n"), POP3_CMD, NULL, POP3_V_OTHER, "RSET"},
	    {IN("TOP 1 10\r\n"), POP3_CMD, NULL, POP3_V_OTHER, "TOP"},
	    {IN("UIDL\r\n"), POP3_CMD, NULL, POP3_V_OTHER, "UIDL"},
	    {IN("LAST\r\n"), POP3_CMD, NULL, POP3_V_OTHER, "LAST"},
	    {IN("APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"), POP3_CMD, NULL, POP3_V_OTHER,
	     "APOP"},
	    {IN("xclient ADDR=192.0.2.1\r\n"), POP3_CMD, NULL, POP3_V_OTHER, "XCLIENT"},
	};
	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void
malformed_commands_give_bad_with_reason_in_any_split(void **state)
{
	static const struct row rows[] = {
	    {IN("\r\n"), POP3_BAD, "empty command", 0, ""},
	    {IN("\n"), POP3_BAD, "empty command", 0, ""},
	    {IN(" USER alice\r\n"), POP3_BAD, "empty command", 0, ""},
	    {IN("FOO\r\n"), POP3_BAD, "unknown command", 0, "FOO"},
	    {IN("CAPABILITY\r\n"), POP3_BAD, "unknown command", 0, "CAPABILI"},
	    {IN("USERalice\r\n"), POP3_BAD, "unknown command", 0, "USERALIC"},
	    {IN("LOGIN a b\r\n"), POP3_BAD, "unknown command", 0, "LOGIN"},
	    {IN("CAPA x\r\n"), POP3_BAD, "unexpected arguments", 0, "CAPA"},
	    {IN("QUIT now\r\n"), POP3_BAD, "unexpected arguments", 0, "QUIT"},
	    {IN("USER\r\n"), POP3_BAD, "missing user name", 0, "USER"},
	    {IN("USER   \r\n"), POP3_BAD, "missing user name", 0, "USER"},
	    {IN("PASS\r\n"), POP3_BAD, "missing password", 0, "PASS"},
	    {IN("PASS \r\n"), POP3_BAD, "missing password", 0, "PASS"},
	    {IN("AUTH  PLAIN\r\n"), POP3_BAD, "invalid arguments", 0, "AUTH"},
	    {IN("AUTH PL@IN\r\n"), POP3_BAD, "invalid mechanism", 0, "AUTH"},
	    {IN("AUTH ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\r\n"), POP3_BAD, "mechanism name too long",
	     0, "AUTH"},
	    {IN("AUTH PLAIN  x\r\n"), POP3_BAD, "invalid arguments", 0, "AUTH"},
	    {IN("AUTH PLAIN a b\r\n"), POP3_BAD, "too many arguments", 0, "AUTH"},
	    {IN("AUTH PLAIN ab!=\r\n"), POP3_BAD, "invalid initial response", 0, "AUTH"},
	    {IN("USER al\0ice\r\n"), POP3_BAD, "NUL in command", 0, "USER"},
	    {IN("PASS s\0\r\n"), POP3_BAD, "NUL in command", 0, "PASS"},
	    {IN("\0\r\n"), POP3_BAD, "NUL in command", 0, NULL},
	    {IN("USER al\rice\r\n"), POP3_BAD, "CR not followed by LF", 0, "USER"},
	    {IN("QUIT\r\r\n"), POP3_BAD, "CR not followed by LF", 0, NULL},
	};
	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void
arguments_are_copied_as_rfc1939_says(void **state)
{
	struct drive *d = run(IN("USER   alice@example.org \r\nPASS  s e c \r\nuser a b\r\n"));
	(void)state;
	assert_int_equal(d->n, 3);
	assert_string_equal(d->cmd[0].user, "alice@example.org");
	assert_int_equal(d->cmd[0].user_len, 17);
	/* PASS takes the rest of the line after one SP (RFC 1939 §7) */
	assert_string_equal(d->cmd[1].secret, " s e c ");
	assert_int_equal(d->cmd[1].secret_len, 7);
	assert_string_equal(d->cmd[2].user, "a b");
	free(d);
}

static void
auth_mechanism_and_initial_response(void **state)
{
	struct drive *d = run(IN("AUTH\r\nAUTH plain AGFsaWNlAHNlY3JldA==\r\nAUTH PLAIN =\r\n"));
	(void)state;
	assert_int_equal(d->n, 3);
	assert_false(d->cmd[0].has_mech); /* list the mechanisms */
	assert_true(d->cmd[1].has_mech);
	assert_string_equal(d->cmd[1].mech, "PLAIN");
	assert_true(d->cmd[1].has_ir);
	assert_string_equal(d->cmd[1].ir, "AGFsaWNlAHNlY3JldA==");
	assert_int_equal(d->cmd[1].ir_len, 20);
	/* RFC 5034 §4: "=" is an empty initial response */
	assert_true(d->cmd[2].has_ir);
	assert_int_equal(d->cmd[2].ir_len, 0);
	free(d);
}

static void
auth_without_initial_response_reads_one_sasl_line(void **state)
{
	struct drive *d = run(IN("AUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nCAPA\r\n"
	                         "AUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n\r\nAUTH X\r\nQUIT\r\n"));
	(void)state;
	assert_int_equal(d->n, 9);
	assert_int_equal(d->cmd[1].verb, POP3_V_SASL);
	assert_true(d->cmd[1].has_ir);
	assert_string_equal(d->cmd[1].ir, "AGFsaWNlAHNlY3JldA==");
	assert_int_equal(d->cmd[2].verb, POP3_V_CAPA);
	assert_int_equal(d->cmd[4].verb, POP3_V_SASL);
	assert_true(d->cmd[4].cancelled);
	assert_int_equal(d->cmd[4].ir_len, 0);
	/* an empty line is an empty response */
	assert_int_equal(d->cmd[6].verb, POP3_V_SASL);
	assert_false(d->cmd[6].cancelled);
	assert_true(d->cmd[6].has_ir);
	assert_int_equal(d->cmd[6].ir_len, 0);
	/* a line that looks like a command is still the response */
	assert_int_equal(d->cmd[8].verb, POP3_V_SASL);
	assert_string_equal(d->cmd[8].ir, "QUIT");
	free(d);
}

static void
line_over_255_octets_is_fatal(void **state)
{
	char in[600];
	struct drive *d;
	(void)state;

	/* 255 octets with CRLF pass (RFC 2449 §4) */
	memcpy(in, "USER ", 5);
	memset(in + 5, 'u', 248);
	memcpy(in + 253, "\r\n", 2);
	d = run(in, 255);
	assert_int_equal(d->rc[0], POP3_CMD);
	assert_int_equal(d->cmd[0].user_len, 248);
	free(d);
	/* and with a bare LF, 254 + LF */
	in[253] = 'u';
	in[254] = '\n';
	d = run(in, 255);
	assert_int_equal(d->rc[0], POP3_CMD);
	assert_int_equal(d->cmd[0].user_len, 249);
	free(d);
	/* 256 do not; FATAL comes before the line end */
	memcpy(in + 253, "u\r\n", 3);
	d = run(in, 256);
	assert_int_equal(d->n, 1);
	assert_int_equal(d->rc[0], POP3_FATAL);
	assert_string_equal(d->cmd[0].error, "line too long");
	assert_int_equal(d->off, 256);
	free(d);
	memset(in, 'x', sizeof(in));
	d = run(in, sizeof(in));
	assert_int_equal(d->rc[0], POP3_FATAL);
	assert_int_equal(d->off, 256);
	free(d);
}

static void
sasl_lines_may_exceed_255_octets_up_to_their_own_cap(void **state)
{
	static char in[POP3_SASL_MAX + 64];
	size_t o = (size_t)snprintf(in, sizeof(in), "AUTH PLAIN\r\n");
	struct drive *d;
	(void)state;

	memset(in + o, 'A', POP3_SASL_MAX);
	memcpy(in + o + POP3_SASL_MAX, "\r\nCAPA\r\n", 8);
	d = run(in, o + POP3_SASL_MAX + 8);
	assert_int_equal(d->n, 3);
	assert_int_equal(d->cmd[1].verb, POP3_V_SASL);
	assert_int_equal(d->cmd[1].ir_len, POP3_SASL_MAX);
	assert_int_equal(d->cmd[2].verb, POP3_V_CAPA); /* back to 255 */
	free(d);
	/* one more, with CRLF or with a bare LF, is fatal */
	memcpy(in + o + POP3_SASL_MAX, "A\r\n", 3);
	d = run(in, o + POP3_SASL_MAX + 3);
	assert_int_equal(d->rc[1], POP3_FATAL);
	free(d);
	memcpy(in + o + POP3_SASL_MAX, "A\n", 2);
	d = run(in, o + POP3_SASL_MAX + 2);
	assert_int_equal(d->rc[1], POP3_FATAL);
	assert_string_equal(d->cmd[1].error, "line too long");
	free(d);
	/* the limit is back to 255 after the SASL line */
	o = (size_t)snprintf(in, sizeof(in), "AUTH PLAIN\r\n*\r\nUSER ");
	memset(in + o, 'u', 300);
	memcpy(in + o + 300, "\r\n", 2);
	d = run(in, o + 302);
	assert_int_equal(d->rc[2], POP3_FATAL);
	free(d);
}

static void
auth_line_may_carry_an_oauth_initial_response(void **state)
{
	static char in[2 * POP3_AUTH_LINE_MAX], token[SASL_TOKEN_MAX], b64[SASL_OAUTH_B64_MAX + 1];
	char user[SASL_USER_MAX + 1], tok[SASL_TOKEN_MAX + 1];
	size_t o, bl, ul, tl;
	struct drive *d;
	(void)state;

	memset(token, 'T', sizeof(token));
	bl = sasl_xoauth2_encode("bob@example.org", 15, token, sizeof(token), b64, sizeof(b64));
	assert_true(bl > POP3_LINE_MAX);
	o = (size_t)snprintf(in, sizeof(in), "AUTH XOAUTH2 %s\r\nCAPA\r\n", b64);
	d = run(in, o);
	assert_int_equal(d->n, 2);
	assert_int_equal(d->rc[0], POP3_CMD);
	assert_int_equal(d->cmd[0].verb, POP3_V_AUTH);
	assert_string_equal(d->cmd[0].mech, "XOAUTH2");
	assert_int_equal(d->cmd[0].ir_len, bl);
	assert_int_equal(sasl_xoauth2_decode(d->cmd[0].ir, d->cmd[0].ir_len, user, &ul, tok, &tl),
	                 SASL_OK);
	assert_string_equal(user, "bob@example.org");
	assert_int_equal(tl, SASL_TOKEN_MAX);
	assert_int_equal(d->cmd[1].verb, POP3_V_CAPA);
	free(d);
}

static void
auth_line_limits_are_exact_and_other_lines_keep_255(void **state)
{
	static char in[2 * POP3_AUTH_LINE_MAX];
	size_t o;
	struct drive *d;
	(void)state;

	/* an initial response of POP3_SASL_MAX passes, one more is BAD */
	o = (size_t)snprintf(in, sizeof(in), "auth X ");
	memset(in + o, 'A', POP3_SASL_MAX);
	memcpy(in + o + POP3_SASL_MAX, "\r\nNOOP\r\n", 8);
	d = run(in, o + POP3_SASL_MAX + 8);
	assert_int_equal(d->rc[0], POP3_CMD);
	assert_int_equal(d->cmd[0].ir_len, POP3_SASL_MAX);
	assert_int_equal(d->cmd[1].verb, POP3_V_NOOP);
	free(d);
	memcpy(in + o + POP3_SASL_MAX, "A\r\nNOOP\r\n", 9);
	d = run(in, o + POP3_SASL_MAX + 9);
	assert_int_equal(d->rc[0], POP3_BAD);
	assert_string_equal(d->cmd[0].error, "initial response too long");
	assert_int_equal(d->cmd[1].verb, POP3_V_NOOP);
	free(d);
	/* the AUTH line itself: POP3_AUTH_LINE_MAX octets, then fatal */
	o = (size_t)snprintf(in, sizeof(in), "AUTH ");
	memset(in + o, 'A', POP3_AUTH_LINE_MAX - o - 2);
	memcpy(in + POP3_AUTH_LINE_MAX - 2, "\r\n", 2);
	d = run(in, POP3_AUTH_LINE_MAX);
	assert_int_equal(d->rc[0], POP3_BAD); /* a 12321-octet mechanism name */
	free(d);
	memcpy(in + POP3_AUTH_LINE_MAX - 2, "A\r\n", 3);
	d = run(in, POP3_AUTH_LINE_MAX + 1);
	assert_int_equal(d->rc[0], POP3_FATAL);
	assert_int_equal(d->off, POP3_AUTH_LINE_MAX + 1);
	free(d);
	/* only "AUTH " lines: not AUTHX, not USER, and not the line after */
	static const char *const heads[] = {"AUTHX ", "USER ", "XAUTH ", "AUTH\t"};
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		o = (size_t)snprintf(in, sizeof(in), "%s", heads[i]);
		memset(in + o, 'A', 300);
		memcpy(in + o + 300, "\r\n", 2);
		d = run(in, o + 302);
		assert_int_equal(d->rc[0], POP3_FATAL);
		assert_int_equal(d->off, POP3_LINE_MAX + 1);
		free(d);
	}
	o = (size_t)snprintf(in, sizeof(in), "AUTH X ");
	memset(in + o, 'A', 300);
	o += 300;
	o += (size_t)snprintf(in + o, sizeof(in) - o, "\r\nUSER ");
	memset(in + o, 'u', 300);
	d = run(in, o + 300);
	assert_int_equal(d->rc[0], POP3_CMD);
	assert_int_equal(d->rc[1], POP3_FATAL);
	free(d);
}

static void
pipelined_commands_stop_used_right_after_each_lf(void **state)
{
	static const char in[] = "CAPA\r\nUSER a\nPASS b\r\nQUIT\r\n";
	static const size_t want[] = {6, 7, 8, 6};
	struct pop3_parser p;
	struct pop3_cmd cmd;
	size_t off = 0, used;
	(void)state;

	pop3_parser_init(&p);
	pop3_cmd_init(&cmd, NULL); /* no SASL text here */
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(
		    pop3_parse(&p, (const uint8_t *)in + off, sizeof(in) - 1 - off, &used, &cmd),
		    POP3_CMD);
		assert_int_equal(used, want[i]);
		off += used;
	}
	used = 99;
	assert_int_equal(pop3_parse(&p, (const uint8_t *)in, 0, &used, &cmd), POP3_MORE);
	assert_int_equal(used, 0);
	free(run(IN(in)));
}

static void
bad_command_pipelined_before_good_one_is_answered_separately(void **state)
{
	struct drive *d = run(IN("FOO bar\r\nUSER alice\r\n"));
	(void)state;
	assert_int_equal(d->n, 2);
	assert_int_equal(d->rc[0], POP3_BAD);
	assert_int_equal(d->rc[1], POP3_CMD);
	assert_string_equal(d->cmd[1].user, "alice");
	free(d);
}

static void
fatal_is_sticky_and_used_is_always_set(void **state)
{
	static char in[300];
	struct pop3_parser p;
	struct pop3_cmd cmd;
	size_t used = 1234;
	(void)state;

	memset(in, 'x', sizeof(in));
	pop3_parser_init(&p);
	pop3_cmd_init(&cmd, NULL);
	assert_int_equal(pop3_parse(&p, (const uint8_t *)in, sizeof(in), &used, &cmd), POP3_FATAL);
	assert_int_equal(used, 256);
	used = 1234;
	assert_int_equal(pop3_parse(&p, (const uint8_t *)"CAPA\r\n", 6, &used, &cmd), POP3_FATAL);
	assert_int_equal(used, 0);
	assert_string_equal(cmd.error, "line too long");
}

static void
wipe_clears_credentials_in_command_and_parser(void **state)
{
	static const char zero[POP3_AUTH_LINE_MAX + 1];
	struct pop3_parser p;
	struct pop3_cmd cmd;
	static char ir[POP3_SASL_MAX + 1];
	size_t used;
	(void)state;

	pop3_parser_init(&p);
	pop3_cmd_init(&cmd, ir);
	/* a line not yet whole is left where it is: nothing used, no copy */
	assert_int_equal(pop3_parse(&p, (const uint8_t *)"PASS hunter2", 12, &used, &cmd),
	                 POP3_MORE);
	assert_int_equal(used, 0);
	assert_true(sizeof(p) <= 16);
	assert_int_equal(pop3_parse(&p, (const uint8_t *)"PASS hunter2\r\n", 14, &used, &cmd),
	                 POP3_CMD);
	assert_int_equal(used, 14);
	assert_string_equal(cmd.secret, "hunter2");
	pop3_cmd_wipe(&cmd);
	assert_memory_equal(cmd.secret, zero, sizeof(cmd.secret));
	assert_int_equal(cmd.secret_len, 0);
	assert_string_equal(cmd.name, "PASS");
	/* a SASL text goes to the caller's buffer, NUL-terminated; the wipe
	 * clears it and the command stays small however long it was */
	assert_true(sizeof(cmd) < 2048);
	assert_int_equal(
	    pop3_parse(&p, (const uint8_t *)"AUTH PLAIN AGEAYg==\r\n", 21, &used, &cmd), POP3_CMD);
	assert_ptr_equal(cmd.ir, ir);
	assert_string_equal(ir, "AGEAYg==");
	pop3_cmd_wipe(&cmd);
	assert_memory_equal(ir, zero, sizeof(ir));
	assert_int_equal(cmd.ir_len, 0);
	/* the next line, good or bad, wipes what an earlier one left there */
	assert_int_equal(
	    pop3_parse(&p, (const uint8_t *)"AUTH PLAIN AGEAYg==\r\n", 21, &used, &cmd), POP3_CMD);
	assert_int_equal(pop3_parse(&p, (const uint8_t *)"AUTH PLAIN a b\r\n", 16, &used, &cmd),
	                 POP3_BAD);
	assert_memory_equal(ir, zero, sizeof(ir));
	assert_int_equal(
	    pop3_parse(&p, (const uint8_t *)"AUTH PLAIN AGEAYg==\r\n", 21, &used, &cmd), POP3_CMD);
	assert_int_equal(pop3_parse(&p, (const uint8_t *)"CAPA\r\n", 6, &used, &cmd), POP3_CMD);
	assert_memory_equal(ir, zero, sizeof(ir));
	assert_ptr_equal(cmd.ir, ir);
}

static void
sasl_text_without_a_callers_buffer_is_fatal_not_a_write(void **state)
{
	struct pop3_parser p;
	struct pop3_cmd cmd;
	size_t used;
	(void)state;

	/* an initial response on the AUTH line */
	pop3_parser_init(&p);
	pop3_cmd_init(&cmd, NULL);
	assert_int_equal(
	    pop3_parse(&p, (const uint8_t *)"AUTH PLAIN AGEAYg==\r\n", 21, &used, &cmd),
	    POP3_FATAL);
	assert_int_equal(used, 21);
	assert_string_equal(cmd.error, "no room for a SASL response");
	assert_null(cmd.ir);
	/* "=" (empty) and no initial response at all need no room */
	pop3_parser_init(&p);
	assert_int_equal(pop3_parse(&p, (const uint8_t *)"AUTH PLAIN =\r\n", 14, &used, &cmd),
	                 POP3_CMD);
	assert_true(cmd.has_ir && cmd.ir_len == 0);
	assert_int_equal(pop3_parse(&p, (const uint8_t *)"AUTH PLAIN\r\n", 12, &used, &cmd),
	                 POP3_CMD);
	/* a response line; "*" (a cancel) needs no room either */
	pop3_parser_expect_sasl(&p);
	assert_int_equal(pop3_parse(&p, (const uint8_t *)"*\r\n", 3, &used, &cmd), POP3_CMD);
	assert_true(cmd.cancelled);
	pop3_parser_expect_sasl(&p);
	assert_int_equal(pop3_parse(&p, (const uint8_t *)"AGEAYg==\r\n", 10, &used, &cmd),
	                 POP3_FATAL);
	assert_string_equal(cmd.error, "no room for a SASL response");
	pop3_cmd_wipe(&cmd); /* and a wipe without a buffer is harmless */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(well_formed_commands_parse_in_any_split),
	    cmocka_unit_test(malformed_commands_give_bad_with_reason_in_any_split),
	    cmocka_unit_test(arguments_are_copied_as_rfc1939_says),
	    cmocka_unit_test(auth_mechanism_and_initial_response),
	    cmocka_unit_test(auth_without_initial_response_reads_one_sasl_line),
	    cmocka_unit_test(line_over_255_octets_is_fatal),
	    cmocka_unit_test(sasl_lines_may_exceed_255_octets_up_to_their_own_cap),
	    cmocka_unit_test(auth_line_may_carry_an_oauth_initial_response),
	    cmocka_unit_test(auth_line_limits_are_exact_and_other_lines_keep_255),
	    cmocka_unit_test(pipelined_commands_stop_used_right_after_each_lf),
	    cmocka_unit_test(bad_command_pipelined_before_good_one_is_answered_separately),
	    cmocka_unit_test(fatal_is_sticky_and_used_is_always_set),
	    cmocka_unit_test(wipe_clears_credentials_in_command_and_parser),
	    cmocka_unit_test(sasl_text_without_a_callers_buffer_is_fatal_not_a_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
