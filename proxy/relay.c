/*
 * relay.c: after login, bytes flow untouched between client and backend
 * (see relay.h).  A full buffer stops reading the side that fills it; an
 * empty one gives its memory back while idle.
 */
#include <string.h>
#include <strings.h>

#include "imap_resp.h"
#include "relay.h"

#define RELAY_ROUNDS 32 /* bounded work per wakeup, so one busy session cannot starve others */

void
relay_init(struct relay *r, enum proto_kind proto, bool strip_compress, struct link *cl,
           struct link *bl, struct buf *up, struct buf *down)
{
	memset(r, 0, sizeof(*r));
	r->proto = proto;
	r->cl = cl;
	r->bl = bl;
	r->up = up;
	r->down = down;
	dialog_init(&r->dlg, proto);
	/* What is already here: the login reply (and whatever the backend
	 * sent after it), then what the client sent after its login. */
	(void)dialog_server(&r->dlg, buf_head(down), buf_len(down));
	dialog_client(&r->dlg, buf_head(up), buf_len(up));
	r->dlg.strip_caps = strip_compress && proto == PROTO_IMAP;
}

bool
relay_idle(const struct relay *r)
{
	return buf_len(r->up) == 0 && buf_len(r->down) == 0;
}

bool
relay_at_rest(const struct relay *r)
{
	return relay_idle(r) && dialog_at_rest(&r->dlg);
}

bool
relay_opaque(const struct relay *r)
{
	return dialog_opaque(&r->dlg);
}

/* Did the client's last command end the session: "tag LOGOUT" (IMAP),
 * "QUIT" (POP3) or "LOGOUT" (ManageSieve) as the last line it sent? */
static bool
client_logged_out(const struct relay *r)
{
	static const char imap[] = " LOGOUT\r\n", pop3[] = "QUIT\r\n", sieve[] = "LOGOUT\r\n";
	const char *w = r->proto == PROTO_IMAP ? imap : r->proto == PROTO_POP3 ? pop3 : sieve;
	size_t wl = strlen(w);

	if (r->tail_len < wl || strncasecmp(r->tail + r->tail_len - wl, w, wl) != 0)
		return false;
	if (r->proto == PROTO_IMAP)
		return true;
	/* POP3 and ManageSieve: the command is the whole line. */
	return r->tail_len == wl ? r->up_bytes == wl : r->tail[r->tail_len - wl - 1] == '\n';
}

/* The backend's new bytes, from offset at of b to its end: read by the
 * dialog; with strip_caps each "* CAPABILITY" line, held back until whole,
 * loses its COMPRESS= words (RFC 4978) in place. */
static void
server_bytes(struct relay *r, struct buf *b, size_t at)
{
	while (at < buf_len(b)) {
		at += dialog_server(&r->dlg, buf_head(b) + at, buf_len(b) - at);
		if (r->dlg.caps_len == 0)
			break;
		size_t len = r->dlg.caps_len, keep;
		r->dlg.caps_len = 0;
		if (len > at)
			continue; /* cannot be (its start was held): left as it is */
		keep = imap_caps_drop((char *)b->data + b->off + at - len, len, "COMPRESS=");
		buf_cut(b, at - len + keep, len - keep);
		at -= len - keep;
	}
	r->hold = dialog_caps_partial(&r->dlg);
}

/* One direction: read from src into b (when not at EOF and b has room);
 * client: the client's side (its bytes are counted and its tail kept).
 * Either way the bytes go past the dialog.
 * Returns 1 progress, 0 none, -1 error, -2 out of memory. */
static int
pull(struct relay *r, struct link *src, struct buf *b, bool *eof, bool client)
{
	size_t space;
	uint8_t *t;
	ssize_t n;

	if (*eof || buf_space(b) == 0)
		return 0;
	t = buf_tail(b, &space);
	if (t == NULL)
		return -2;
	n = link_read(src, t, space);
	if (n > 0) {
		if (client) {
			/* the client's last bytes: did it log out? */
			buf_keep_last(r->tail, &r->tail_len, RELAY_TAIL, t, (size_t)n);
			r->up_bytes += (uint64_t)n;
			dialog_client(&r->dlg, t, (size_t)n);
			buf_produce(b, (size_t)n);
		} else {
			buf_produce(b, (size_t)n);
			server_bytes(r, b, buf_len(b) - (size_t)n);
		}
		return 1;
	}
	if (n == 0) {
		*eof = true;
		if (!client)
			r->hold = 0; /* no end will come: what is held goes as it is */
		return 1;
	}
	if (n == LINK_ERR)
		return -1;
	if (buf_len(b) == 0)
		buf_consume(b, 0); /* nothing to read, nothing held: give the memory back */
	return 0;
}

/* Write what b holds to dst but its last hold bytes (counted in *count
 * when given).  1 progress, 0 none, -1 error. */
static int
push(struct link *dst, struct buf *b, size_t hold, uint64_t *count)
{
	ssize_t n;

	if (buf_len(b) <= hold)
		return 0;
	n = link_write(dst, buf_head(b), buf_len(b) - hold);
	if (n > 0) {
		buf_consume_keep(b, (size_t)n); /* the next read reuses it */
		if (count != NULL)
			*count += (uint64_t)n;
		return 1;
	}
	return n == LINK_AGAIN ? 0 : -1;
}

static void
watch(struct relay *r)
{
	int cw = 0, bw = 0;

	if (!r->c_eof && buf_space(r->up) > 0)
		cw |= r->cl->rd_wants;
	if (buf_len(r->down) > r->hold)
		cw |= r->cl->wr_wants;
	if (!r->b_eof && buf_space(r->down) > 0)
		bw |= r->bl->rd_wants;
	if (buf_len(r->up) > 0)
		bw |= r->bl->wr_wants;
	link_watch(r->cl, cw);
	link_watch(r->bl, bw);
}

enum relay_rc
relay_run(struct relay *r, enum close_reason *reason_out)
{
	bool progress = false;
	int k;

	r->moved = false;
	for (int round = 0; round < RELAY_ROUNDS; round++) {
		progress = false;
		/* client -> up -> backend */
		if ((k = pull(r, r->cl, r->up, &r->c_eof, true)) < 0) {
			*reason_out = k == -2 ? CLOSE_OUT_OF_MEMORY : CLOSE_CLIENT_READ_ERROR;
			return RELAY_END;
		}
		progress |= k > 0;
		if ((k = push(r->bl, r->up, 0, NULL)) < 0) {
			*reason_out = CLOSE_BACKEND_WRITE_ERROR;
			return RELAY_END;
		}
		progress |= k > 0;
		/* Half-close: the client is done and everything it sent is out. */
		if (r->c_eof && buf_len(r->up) == 0 && !r->b_shut_wr) {
			link_shutdown_write(r->bl);
			r->b_shut_wr = true;
		}
		/* backend -> down -> client */
		if ((k = pull(r, r->bl, r->down, &r->b_eof, false)) < 0) {
			*reason_out = k == -2 ? CLOSE_OUT_OF_MEMORY : CLOSE_BACKEND_READ_ERROR;
			return RELAY_END;
		}
		progress |= k > 0;
		if ((k = push(r->cl, r->down, r->hold, &r->down_bytes)) < 0) {
			*reason_out = CLOSE_CLIENT_WRITE_ERROR;
			return RELAY_END;
		}
		progress |= k > 0;
		/* The backend ended the session (LOGOUT, QUIT, shutdown) and all it
		 * said reached the client: nothing more can happen. */
		if (r->b_eof && buf_len(r->down) == 0) {
			*reason_out = client_logged_out(r) ? CLOSE_CLIENT_LOGOUT
			              : r->c_eof           ? CLOSE_CLIENT_CLOSED
			                                   : CLOSE_BACKEND_CLOSED;
			return RELAY_END;
		}
		/* The client left and the backend has nothing left to say. */
		if (r->c_eof && r->b_eof) {
			*reason_out = CLOSE_CLIENT_CLOSED;
			return RELAY_END;
		}
		if (!progress)
			break;
		r->moved = true;
	}
	watch(r);
	/* Out of rounds with work left (perhaps bytes OpenSSL already decrypted,
	 * which no socket event will announce): come back on the next iteration. */
	return progress ? RELAY_MORE : RELAY_WAIT;
}
