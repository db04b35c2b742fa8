/*
 * fuzz_dialog.c: libFuzzer harness for lib/dialog.c, where a relayed
 * conversation stands.  The input is a list of records, each a byte (high
 * bit: the server's side; low bits: a length) and that many bytes.  The
 * same records are played whole and then one byte at a time: where the
 * reads split the stream must never change what the dialog concludes.
 * The first byte: bit 0 POP3, bit 2 ManageSieve (else IMAP), bit 1 strip_caps.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialog.h"
#include "fuzz_check.h"

static void
play(struct dialog *d, const uint8_t *data, size_t size, int bytewise)
{
	dialog_init(d, data[0] & 4 ? PROTO_SIEVE : data[0] & 1 ? PROTO_POP3 : PROTO_IMAP);
	d->strip_caps = data[0] & 2;
	for (size_t at = 1; at < size;) {
		size_t len = data[at] & 0x7f, server = data[at] & 0x80;
		at++;
		if (len > size - at)
			len = size - at;
		for (size_t i = 0; i < len;) {
			size_t k = bytewise ? 1 : len - i;
			if (server) {
				size_t used = 0;
				/* each "* CAPABILITY" line stops it: go on, as relay.c does */
				do {
					CHECK(dialog_caps_partial(d) <= DIALOG_CAPS_MAX);
					used += dialog_server(d, data + at + i + used, k - used);
					CHECK(used <= k);
					CHECK(d->caps_len <= DIALOG_CAPS_MAX + 0u);
					d->caps_len = 0;
				} while (used < k && !dialog_opaque(d));
			} else {
				dialog_client(d, data + at + i, k);
			}
			i += k;
		}
		at += len;
		CHECK(!(dialog_opaque(d) && dialog_at_rest(d)));
	}
}

static void
same_side(const struct dialog_side *a, const struct dialog_side *b)
{
	CHECK(a->lit == b->lit);
	CHECK(a->line_len == b->line_len);
	CHECK(a->in_msg == b->in_msg);
	CHECK(a->first_line == b->first_line);
	CHECK(a->sync_lit == b->sync_lit);
	CHECK(a->head_len == b->head_len);
	CHECK(memcmp(a->head, b->head, a->head_len) == 0);
	CHECK(a->tail_len == b->tail_len);
	CHECK(memcmp(a->tail, b->tail, a->tail_len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dialog whole, bytes;

	if (size == 0)
		return 0;
	play(&whole, data, size, 0);
	play(&bytes, data, size, 1);
	CHECK(whole.opaque == bytes.opaque);
	CHECK(dialog_at_rest(&whole) == dialog_at_rest(&bytes));
	if (whole.opaque)
		return 0; /* where each stopped reading may differ by a record */
	CHECK(whole.idling == bytes.idling);
	CHECK(whole.pop3_multi == bytes.pop3_multi);
	CHECK(whole.answered == bytes.answered);
	CHECK(whole.pending == bytes.pending);
	CHECK(whole.pop3_kind == bytes.pop3_kind);
	CHECK(whole.sieve_auth == bytes.sieve_auth);
	CHECK(whole.sieve_auth <= whole.pending);
	if (whole.proto == PROTO_SIEVE)
		CHECK(!whole.idling && !whole.pop3_multi && whole.caps_len == 0 &&
		      whole.ctag_len == 0);
	same_side(&whole.cs, &bytes.cs);
	same_side(&whole.ss, &bytes.ss);
	return 0;
}
