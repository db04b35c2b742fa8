/*
 * relay.c: after login, bytes flow untouched between client and backend.
 * Two fixed buffers (c->in: client -> backend, c->out: backend -> client);
 * a full buffer stops reading the side that fills it.  Never parses.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "relay.h"

#define RELAY_ROUNDS 32 /* bounded work per wakeup, so one busy session cannot starve others */

void
relay_start(struct conn *c)
{
	if (backend_take_leftover(c) < 0) {
		conn_close(c, "backend_sent_too_much");
		return;
	}
	backend_free(c);
	c->logged_in = true;
	conn_set_state(c, CS_RELAY);
	conn_set_timeout(c, (ev_tstamp)c->cfg->timeouts.idle_ms / 1000.0);
	relay_run(c);
}

void
relay_run(struct conn *c)
{
	bool moved_any = false, progress = false;

	for (int round = 0; round < RELAY_ROUNDS; round++) {
		progress = false;
		size_t space;
		uint8_t *t;
		ssize_t n;

		/* client -> c->in */
		if (!c->c_eof && buf_space(&c->in) > 0) {
			t = buf_tail(&c->in, &space);
			if (t == NULL) {
				conn_close(c, "out_of_memory");
				return;
			}
			n = conn_client_read(c, t, space);
			if (n > 0) {
				buf_produce(&c->in, (size_t)n);
				c->bytes_in += (uint64_t)n;
				progress = true;
			} else if (n == 0) {
				c->c_eof = true;
				progress = true;
			} else if (n == CIO_ERR) {
				conn_close(c, "client_read_error");
				return;
			} else if (buf_len(&c->in) == 0) {
				buf_consume(&c->in, 0); /* give the memory back while idle */
			}
		}
		/* c->in -> backend */
		if (buf_len(&c->in) > 0) {
			n = conn_backend_write(c, buf_head(&c->in), buf_len(&c->in));
			if (n > 0) {
				buf_consume(&c->in, (size_t)n);
				progress = true;
			} else if (n != CIO_AGAIN) {
				conn_close(c, "backend_write_error");
				return;
			}
		}
		/* Half-close: the client is done and everything it sent is out. */
		if (c->c_eof && buf_len(&c->in) == 0 && !c->b_shut_wr) {
			if (c->bssl != NULL)
				(void)SSL_shutdown(c->bssl); /* close_notify; no wait */
			shutdown(c->bfd, SHUT_WR);
			c->b_shut_wr = true;
		}
		/* backend -> c->out */
		if (!c->b_eof && buf_space(&c->out) > 0) {
			t = buf_tail(&c->out, &space);
			if (t == NULL) {
				conn_close(c, "out_of_memory");
				return;
			}
			n = conn_backend_read(c, t, space);
			if (n > 0) {
				buf_produce(&c->out, (size_t)n);
				progress = true;
			} else if (n == 0) {
				c->b_eof = true;
				progress = true;
			} else if (n == CIO_ERR) {
				conn_close(c, "backend_read_error");
				return;
			} else if (buf_len(&c->out) == 0) {
				buf_consume(&c->out, 0);
			}
		}
		/* c->out -> client */
		if (buf_len(&c->out) > 0) {
			n = conn_client_write(c, buf_head(&c->out), buf_len(&c->out));
			if (n > 0) {
				c->bytes_out += (uint64_t)n;
				buf_consume(&c->out, (size_t)n);
				progress = true;
			} else if (n == CIO_ERR || n == 0) {
				conn_close(c, "client_write_error");
				return;
			}
		}
		/* The backend ended the session (LOGOUT, QUIT, shutdown) and all it
		 * said reached the client: nothing more can happen. */
		if (c->b_eof && buf_len(&c->out) == 0) {
			conn_close(c, c->c_eof ? "client_closed" : "backend_closed");
			return;
		}
		/* The client left and the backend has nothing left to say. */
		if (c->c_eof && c->b_eof) {
			conn_close(c, "client_closed");
			return;
		}
		if (!progress)
			break;
		moved_any = true;
	}
	if (moved_any)
		ev_timer_again(c->w->loop, &c->timer); /* idle timeout counts from now */
	conn_update_io(c);
	/* Out of rounds with work left (perhaps bytes OpenSSL already decrypted,
	 * which no socket event will announce): come back on the next iteration. */
	if (progress)
		ev_feed_event(c->w->loop, &c->io, EV_READ);
}
