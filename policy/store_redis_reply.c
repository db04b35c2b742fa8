/*
 * store_redis_reply.c: Redis' replies to a worker's requests turned into
 * their answers (rc, err and the answer of each kind of request).  Never
 * guesses: an error, a lost link or anything unexpected fails the request.
 */
#include <string.h>

#include "store_redis_impl.h"

/*
 * A claim's reply -> r's answer (rc, err, claim_ans).  The script's own
 * errors and anything unexpected fail the request, never guess a lock.
 */
void
store_redis_claim_answer(struct store_req *r, const redisReply *rep)
{
	r->rc = -1;
	if (rep == NULL) {
		r->err = "the connection to the store was lost";
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		r->err = "the store refused the request";
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1) {
		r->err = "the store's answer was malformed";
		return;
	}
	if (store_redis_str_is(rep->element[0], "bad")) {
		r->err = "unreadable lock record";
		return;
	}
	for (int o = 0; o < STORE_CLAIM__COUNT; o++) {
		if (!store_redis_str_is(rep->element[0], store_claim_outcome_name[o]))
			continue;
		if (store_redis_parse_lock(rep, &r->claim_ans.lock) < 0)
			break;
		r->claim_ans.outcome = (enum store_claim_outcome)o;
		r->rc = 0;
		r->err = NULL;
		return;
	}
	r->err = "the store's answer was malformed";
}

/* A session registration's reply -> r's answer. */
void
store_redis_session_answer(struct store_req *r, const redisReply *rep)
{
	r->rc = -1;
	r->err = "the store's answer was malformed";
	if (rep == NULL) {
		r->err = "the connection to the store was lost";
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		r->err = "the store refused the request";
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1)
		return;
	if (store_redis_str_is(rep->element[0], "ok")) {
		r->sess_ans = STORE_SESS_OK;
	} else if (store_redis_str_is(rep->element[0], "full")) {
		r->sess_ans = STORE_SESS_USER_FULL;
	} else if (store_redis_str_is(rep->element[0], "other") && rep->elements == 2) {
		r->sess_ans = STORE_SESS_OTHER_PROTO;
		r->sess_other =
		    store_redis_str_is(rep->element[1], "pop3") ? PROTO_POP3 : PROTO_IMAP;
	} else {
		return;
	}
	r->rc = 0;
	r->err = NULL;
}

void
store_redis_throttle_answer(struct store_req *r, const redisReply *rep)
{
	r->rc = -1;
	r->err = rep == NULL ? "the connection to the store was lost"
	                     : "the store's answer was malformed";
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4)
		return;
	for (size_t i = 0; i < 4; i++)
		if (rep->element[i]->type != REDIS_REPLY_INTEGER || rep->element[i]->integer < 0)
			return;
	r->thr_ans.ip_user = (uint32_t)rep->element[0]->integer;
	r->thr_ans.ip_user_left_ms = (uint64_t)rep->element[1]->integer;
	r->thr_ans.ip = (uint32_t)rep->element[2]->integer;
	r->thr_ans.ip_left_ms = (uint64_t)rep->element[3]->integer;
	r->rc = 0;
	r->err = NULL;
}

void
store_redis_route_answer(struct store_req *r, const redisReply *rep)
{
	r->rc = -1;
	r->err = rep == NULL ? "the connection to the store was lost"
	                     : "the store's answer was malformed";
	if (rep == NULL)
		return;
	if (rep->type == REDIS_REPLY_NIL) {
		r->route_found = false;
	} else if (rep->type == REDIS_REPLY_STRING && rep->len > 0 &&
	           (size_t)rep->len <= STORE_BACKEND_MAX) {
		memcpy(r->route, rep->str, (size_t)rep->len);
		r->route[rep->len] = '\0';
		r->route_found = true;
	} else {
		return;
	}
	r->rc = 0;
	r->err = NULL;
}
