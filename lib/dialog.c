/*
 * dialog.c: where a relayed conversation stands (see dialog.h).  Each
 * side is scanned line by line with memchr; a literal's bytes are
 * skipped by count, so a message body costs nothing to pass.  Only the
 * first bytes of a message (tag, command, status) and the last bytes of
 * each line (a literal's announcement, POP3's ".") are kept.
 */
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "chars.h"
#include "dialog.h"

#define POP3_KIND_MAX 64 /* bits in pop3_kind: pipelined commands tracked */

void
dialog_init(struct dialog *d, enum proto_kind proto)
{
	memset(d, 0, sizeof(*d));
	d->proto = proto;
	d->cs.first_line = d->ss.first_line = true;
}

/* k bytes of the current line arrived. */
static void
line_add(struct dialog_side *s, const uint8_t *p, size_t k)
{
	s->in_msg = true;
	if (s->first_line && s->head_len < DIALOG_HEAD) {
		size_t m = k < (size_t)(DIALOG_HEAD - s->head_len)
		               ? k
		               : (size_t)(DIALOG_HEAD - s->head_len);
		memcpy(s->head + s->head_len, p, m);
		s->head_len = (uint8_t)(s->head_len + m);
	}
	s->line_len = k > UINT32_MAX - s->line_len ? UINT32_MAX : s->line_len + (uint32_t)k;
	buf_keep_last(s->tail, &s->tail_len, DIALOG_TAIL, p, k);
}

static void
line_reset(struct dialog_side *s)
{
	s->line_len = 0;
	s->tail_len = 0;
}

static void
msg_reset(struct dialog_side *s)
{
	line_reset(s);
	s->in_msg = false;
	s->first_line = true;
	s->head_len = 0;
}

/* Does the line that just ended (its last bytes in s->tail) announce a
 * literal: "{n}", "{n+}", "{n-}" or literal8's "~{n}" right before its
 * CRLF (RFC 9051 §4.3, RFC 7888, RFC 3516)?  *n_out: its size; *sync_out:
 * a synchronizing one (no + or -: the client waits for "+" first). */
static bool
literal_announced(const struct dialog_side *s, uint64_t *n_out, bool *sync_out)
{
	const char *t = s->tail;
	size_t i = s->tail_len, end;
	uint64_t n = 0;

	if (i == 0 || t[--i] != '\n')
		return false;
	if (i > 0 && t[i - 1] == '\r')
		i--;
	if (i == 0 || t[i - 1] != '}')
		return false;
	i--;
	*sync_out = !(i > 0 && (t[i - 1] == '+' || t[i - 1] == '-'));
	if (!*sync_out)
		i--;
	end = i;
	while (i > 0 && t[i - 1] >= '0' && t[i - 1] <= '9')
		i--;
	/* 19 digits always fit in 64 bits */
	if (i == end || end - i > 19 || i == 0 || t[i - 1] != '{')
		return false;
	for (; i < end; i++)
		n = n * 10 + (uint64_t)(t[i] - '0');
	*n_out = n;
	return true;
}

/* The word at h[*at..len): up to SP, CR or LF; *at moves past it and one
 * SP.  Returns its length. */
static size_t
word(const char *h, size_t len, size_t *at, const char **w)
{
	size_t i = *at;

	*w = h + i;
	while (i < len && h[i] != ' ' && h[i] != '\r' && h[i] != '\n')
		i++;
	size_t n = i - *at;
	*at = i < len && h[i] == ' ' ? i + 1 : i;
	return n;
}

static void
pending_add(struct dialog *d)
{
	if (d->pending < UINT32_MAX)
		d->pending++;
}

/* IMAP: the client finished a command (or IDLE's DONE). */
static void
imap_client_msg(struct dialog *d)
{
	const struct dialog_side *s = &d->cs;
	const char *tag, *name;
	size_t at = 0, tl = word(s->head, s->head_len, &at, &tag);
	size_t nl = word(s->head, s->head_len, &at, &name);

	if (d->idling && d->pending > 0) {
		d->idling = false; /* RFC 2177: the line that ends IDLE is "DONE" */
		return;
	}
	if (tl == 0 && nl == 0)
		return; /* an empty line: no command, no answer to wait for */
	if (d->answered) {
		d->answered = false; /* answered before its end: nothing waits */
		return;
	}
	pending_add(d);
	if (chars_word_eq(name, nl, "IDLE")) {
		d->idling = true;
	} else if (chars_word_eq(name, nl, "COMPRESS")) {
		/* RFC 4978 §3: both sides compress from the end of its OK. */
		memcpy(d->ctag, tag, tl);
		d->ctag_len = (uint8_t)tl;
	} else if (s->head_len == DIALOG_HEAD && at >= DIALOG_HEAD && nl <= 8 &&
	           strncasecmp(name, "COMPRESS", nl) == 0) {
		d->opaque = true; /* a tag too long to see the name: assume the worst */
	}
}

/* Is tag[0..tl) the tag of the command the client is still sending? */
static bool
client_tag_is(const struct dialog *d, const char *tag, size_t tl)
{
	const char *ct;
	size_t at = 0, cl = word(d->cs.head, d->cs.head_len, &at, &ct);

	return cl == tl && tl > 0 && memcmp(ct, tag, tl) == 0;
}

/* IMAP: the server finished a response. */
static void
imap_server_msg(struct dialog *d)
{
	const struct dialog_side *s = &d->ss;
	const char *tag, *status;
	size_t at = 0, tl, sl;

	/* "* BAD": the answer to a command whose tag could not be read
	 * (RFC 9051 §7.1.3), so one command less waits */
	if (s->head_len >= 6 && strncasecmp(s->head, "* BAD ", 6) == 0 && d->pending > 0 &&
	    --d->pending == 0)
		d->idling = false;
	if (s->head_len == 0 || s->head[0] == '*' || s->head[0] == '+')
		return; /* untagged data, or a continuation request */
	tl = word(s->head, s->head_len, &at, &tag);
	if (d->cs.in_msg && client_tag_is(d, tag, tl)) {
		/* The answer to the command the client is still sending: it was
		 * never counted as waiting.  Before the "+" a synchronizing
		 * literal waits for (APPEND too big, say), the literal never
		 * comes and the command is over; otherwise its end is near. */
		if (d->cs.sync_lit && d->cs.lit > 0) {
			d->cs.lit = 0;
			d->cs.sync_lit = false;
			msg_reset(&d->cs);
		} else {
			d->answered = true;
		}
		return;
	}
	if (d->pending > 0 && --d->pending == 0)
		d->idling = false; /* a refused IDLE ends it too */
	if (d->ctag_len == 0)
		return;
	if (tl != d->ctag_len || memcmp(tag, d->ctag, tl) != 0)
		return;
	sl = word(s->head, s->head_len, &at, &status);
	d->ctag_len = 0;
	/* its OK, or a status cut off with the kept head: assume the worst */
	if (chars_word_eq(status, sl, "OK") || (s->head_len == DIALOG_HEAD && at >= DIALOG_HEAD))
		d->opaque = true;
}

/* ManageSieve: the client finished a command (RFC 5804 §2: one command,
 * one response).  AUTHENTICATE's SASL exchange (§2.1) goes on with client
 * lines that answer the server's challenges, until its own OK/NO/BYE:
 * those lines are no commands. */
static void
sieve_client_msg(struct dialog *d)
{
	const struct dialog_side *s = &d->cs;
	const char *name;
	size_t at = 0, nl = word(s->head, s->head_len, &at, &name);

	if (d->sieve_auth > 0)
		return; /* a SASL response string */
	if (nl == 0 && s->head_len > 0 && (s->head[0] == '\r' || s->head[0] == '\n'))
		return; /* an empty line: no command, as for IMAP */
	pending_add(d);
	if (chars_word_eq(name, nl, "AUTHENTICATE"))
		d->sieve_auth = d->pending; /* responses up to and with its own */
}

/* ManageSieve: the server finished a message.  A response ends with a line
 * that starts OK, NO or BYE (RFC 5804 §4 response-*); anything else (the
 * capability lines, LISTSCRIPTS' lines, GETSCRIPT's literal, a SASL
 * challenge) is within a response. */
static void
sieve_server_msg(struct dialog *d)
{
	const struct dialog_side *s = &d->ss;
	const char *st;
	size_t at = 0, sl = word(s->head, s->head_len, &at, &st);

	/* "OK(" or "NO\"x\"" are not what servers send, but end a word too */
	for (size_t i = 0; i < sl; i++)
		if (st[i] == '(' || st[i] == '"' || st[i] == '{')
			sl = i;
	if (!chars_word_eq(st, sl, "OK") && !chars_word_eq(st, sl, "NO") &&
	    !chars_word_eq(st, sl, "BYE"))
		return;
	if (d->pending > 0)
		d->pending--;
	if (d->sieve_auth > 0)
		d->sieve_auth--;
}

/* POP3: the client finished a command: will its +OK be multi-line
 * (RFC 1939, RFC 2449 CAPA)? */
static void
pop3_client_msg(struct dialog *d)
{
	const struct dialog_side *s = &d->cs;
	const char *name, *arg;
	size_t at = 0, nl = word(s->head, s->head_len, &at, &name);
	bool has_arg = word(s->head, s->head_len, &at, &arg) > 0;
	bool multi = chars_word_eq(name, nl, "RETR") || chars_word_eq(name, nl, "TOP") ||
	             chars_word_eq(name, nl, "CAPA") ||
	             (chars_word_eq(name, nl, "LIST") && !has_arg) ||
	             (chars_word_eq(name, nl, "UIDL") && !has_arg);

	if (d->pending >= POP3_KIND_MAX) {
		d->opaque = true; /* more pipelined than we track: stop reading */
		return;
	}
	if (multi)
		d->pop3_kind |= (uint64_t)1 << d->pending;
	d->pending++;
}

/* POP3: a server line ended; false while a multi-line answer goes on. */
static bool
pop3_server_line(struct dialog *d)
{
	const struct dialog_side *s = &d->ss;
	bool multi;

	if (d->pop3_multi) {
		/* The answer ends with a line that is "." alone (RFC 1939 §3). */
		if ((s->line_len == 3 && s->tail[0] == '.' && s->tail[1] == '\r') ||
		    (s->line_len == 2 && s->tail[0] == '.'))
			d->pop3_multi = false;
		return !d->pop3_multi;
	}
	if (d->pending == 0)
		return true; /* unasked: a single line */
	multi = d->pop3_kind & 1;
	d->pop3_kind >>= 1;
	d->pending--;
	if (multi && s->head_len >= 3 && memcmp(s->head, "+OK", 3) == 0)
		d->pop3_multi = true;
	return !d->pop3_multi;
}

static const char caps_head[] = "* CAPABILITY ";

/* Could the server's line under way be (or is it) a "* CAPABILITY" line? */
static bool
caps_line(const struct dialog *d)
{
	const struct dialog_side *s = &d->ss;
	size_t n = s->head_len < sizeof(caps_head) - 1 ? s->head_len : sizeof(caps_head) - 1;

	return d->strip_caps && d->proto == PROTO_IMAP && s->first_line && s->lit == 0 &&
	       s->line_len <= DIALOG_CAPS_MAX && strncasecmp(s->head, caps_head, n) == 0;
}

uint32_t
dialog_caps_partial(const struct dialog *d)
{
	return caps_line(d) ? d->ss.line_len : 0;
}

static void
line_end(struct dialog *d, struct dialog_side *s)
{
	bool server = s == &d->ss;
	uint64_t n;
	bool sync;

	if (d->proto == PROTO_POP3) {
		if (server ? pop3_server_line(d) : (pop3_client_msg(d), true))
			msg_reset(s);
		else
			line_reset(s), s->first_line = false;
		return;
	}
	if (literal_announced(s, &n, &sync)) {
		s->lit = n;
		s->sync_lit = sync && n > 0;
		s->first_line = false;
		line_reset(s);
		return;
	}
	if (server && caps_line(d) && s->head_len >= sizeof(caps_head) - 1)
		d->caps_len = s->line_len;
	if (d->proto == PROTO_SIEVE)
		server ? sieve_server_msg(d) : sieve_client_msg(d);
	else if (server)
		imap_server_msg(d);
	else
		imap_client_msg(d);
	msg_reset(s);
}

/* Read n bytes of one side; stops early when the stream turns opaque. */
static size_t
scan(struct dialog *d, struct dialog_side *s, const uint8_t *p, size_t n)
{
	size_t done = 0;

	while (done < n && !d->opaque) {
		if (s->lit > 0) {
			size_t k = n - done < s->lit ? n - done : (size_t)s->lit;
			s->sync_lit = false; /* it comes: the "+" was sent */
			s->lit -= k;
			done += k;
			continue;
		}
		const uint8_t *q = p + done, *nl = memchr(q, '\n', n - done);
		size_t k = nl != NULL ? (size_t)(nl - q) + 1 : n - done;

		line_add(s, q, k);
		done += k;
		if (nl != NULL)
			line_end(d, s);
		if (d->caps_len != 0)
			break; /* the caller edits it, then goes on */
	}
	return done;
}

void
dialog_client(struct dialog *d, const uint8_t *p, size_t n)
{
	(void)scan(d, &d->cs, p, n);
}

size_t
dialog_server(struct dialog *d, const uint8_t *p, size_t n)
{
	return scan(d, &d->ss, p, n);
}

bool
dialog_at_rest(const struct dialog *d)
{
	if (d->opaque || d->cs.in_msg || d->ss.in_msg)
		return false;
	if (d->proto == PROTO_POP3)
		return d->pending == 0 && !d->pop3_multi;
	if (d->proto == PROTO_SIEVE)
		return d->pending == 0;
	return d->pending == 0 || (d->pending == 1 && d->idling);
}
