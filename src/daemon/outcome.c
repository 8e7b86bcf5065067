/* outcome.c - answers: classified, the rate-limit buckets told, the attempt recorded and
 * the retry decision taken; answers that arrive while another process locks the store are
 * held, and recorded in arrival order once it is free. */
#include "daemon_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "http.h"
#include "job.h"
#include "ratelimit.h"
#include "retry.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

/* TOO_DEEP - why a 2xx body json_too_deep flags is refused (STR: a macro's value as a
 * string literal). */
#define STR_(x) #x
#define STR(x) STR_(x)
#define TOO_DEEP "response body nests deeper than " STR(JSON_MAX_DEPTH) " levels (the limit)"

/* body_error - the response body when it is JSON (the API's envelope), else a made one;
 * a redirect (never followed) says where it pointed. */
static char *body_error(const struct http_response *resp, const char *fallback_type)
{
	char msg[700];
	if (resp->error == HTTP_OK && resp->status >= 300 && resp->status <= 399) {
		int n =
		    snprintf(msg, sizeof(msg), "HTTP %d: redirects are not followed", resp->status);
		if (resp->location[0] && n > 0)
			snprintf(msg + n, sizeof(msg) - (size_t)n, " (Location: %s)",
			         resp->location);
		return error_json(fallback_type, msg, resp->status);
	}
	cJSON *j = cJSON_ParseWithLength(resp->body.buf, resp->body.len);
	if (j && cJSON_IsObject(j)) {
		char *text = cJSON_PrintUnformatted(j);
		cJSON_Delete(j);
		return text;
	}
	cJSON_Delete(j);
	if (resp->error != HTTP_OK)
		snprintf(msg, sizeof(msg), "%s", resp->errmsg);
	else
		snprintf(msg, sizeof(msg), "HTTP %d with a body that is not JSON", resp->status);
	return error_json(fallback_type, msg, resp->status);
}

/* limiting_bucket - the bucket a 429 is charged to: the operation's own, when it has a
 * documented limit, else the workspace's. */
static struct rl_bucket *limiting_bucket(const struct run *r)
{
	return r->op_bucket ? r->op_bucket : r->ws_bucket;
}

/* shared_hold - a shared store: the bucket is held for every node, not only this one. */
static void shared_hold(struct run *r, const struct rl_bucket *b, int64_t until)
{
	struct daemon *d = r->d;
	if (d->shared && store_bucket_hold(d->st, rl_bucket_key(b), until) < 0)
		node_lost(d, "cannot hold the shared rate-limit bucket %s: %s", rl_bucket_key(b),
		          store_errmsg(d->st));
}

/* hold_bucket - a 429 holds the bucket that limited us. */
static void hold_bucket(struct run *r, int64_t until)
{
	rl_hold(limiting_bucket(r), until);
	shared_hold(r, limiting_bucket(r), until);
	r->d->buckets_dirty = 1;
}

/* server_wait - a wait the server asked of the run's requests on bucket b, cut to
 * max_server_wait; a cut is logged once per hold of the bucket, not once per job. */
static int64_t server_wait(struct run *r, struct rl_bucket *b, int64_t asked, const char *source,
                           int64_t now)
{
	int warn;
	int64_t wait = rl_cap_wait(b, asked, r->d->cfg->max_server_wait_ms, now, &warn);
	if (warn) {
		char want[32], cap[32];
		retry_format_duration(asked, want);
		retry_format_duration(wait, cap);
		log_job(LOG_WARN, r->row.id, r->row.op_id, NULL,
		        "server asked job %lld (%s) to wait %s (%s); waiting %s, the "
		        "max_server_wait",
		        (long long)r->row.id, r->row.op_id, want, source, cap);
	}
	return wait;
}

/* run_mutates - whether the request in flight may change state: its method, as the HTTP
 * module judges it (the catalog marks raw as mutating whatever method it is given). */
static int run_mutates(const struct run *r)
{
	return http_method_mutates(r->method);
}

/* after_lost_answer - the reason for a mutation refused with 409 or 404 after an attempt
 * whose answer was lost (retry_after_lost_answer), else reason. The store is asked only
 * when the answer is one that could follow a lost one. */
static const char *after_lost_answer(struct run *r, int status, const char *reason, char *buf,
                                     size_t size)
{
	int mutates = run_mutates(r);
	if (!retry_lost_answer_matters(status, mutates, r->row.tries))
		return reason;
	const char *why =
	    retry_after_lost_answer(status, mutates, r->row.tries,
	                            store_count_lost_answers(r->d->st, r->row.id), buf, size);
	return why ? why : reason;
}

/* record_response - an answer, with the iteration's transaction open: classify, record,
 * decide. */
static void record_response(struct run *r, struct http_response *resp)
{
	struct daemon *d = r->d;
	int64_t now = clock_wall_ms();
	enum outcome o;
	cJSON *body = NULL;
	size_t data_off = 0, data_len = 0;
	const char *errmsg = resp->errmsg[0] ? resp->errmsg : NULL;
	if (resp->error == HTTP_ERR_CANCELLED) {
		o = OUTCOME_CANCELLED;
	} else {
		o = retry_classify(resp->status, resp->error != HTTP_OK, resp->request_sent,
		                   run_mutates(r));
		if (o == OUTCOME_SUCCESS) {
			int is_object;
			if (needs_tree(r)) {
				body = cJSON_ParseWithLength(resp->body.buf, resp->body.len);
				is_object = cJSON_IsObject(body);
			} else {
				is_object = json_object_check(resp->body.buf, resp->body.len,
				                              "data", &data_off, &data_len);
			}
			if (!is_object) {
				o = run_mutates(r) ? OUTCOME_UNKNOWN : OUTCOME_RETRY;
				errmsg = json_too_deep(resp->body.buf, resp->body.len)
				             ? TOO_DEEP
				             : "response body is not JSON";
			}
		}
	}
	struct rl_bucket *limited = limiting_bucket(r);
	/* "Retry-After: 0" or a date gone by is no wait: a 429 always waits, longer while
	 * they continue. Counted before this answer's own X-RateLimit-Reset holds the bucket. */
	int64_t least =
	    o == OUTCOME_RATE_LIMITED ? rl_note_429(limited, now, d->cfg->max_server_wait_ms) : 0;
	if (resp->rl_remaining >= 0 || resp->rl_reset[0]) {
		int64_t reset = rl_reset_ms(resp->rl_reset, now);
		if (resp->rl_remaining == 0 && reset > now)
			reset = now +
			        server_wait(r, r->ws_bucket, reset - now, "X-RateLimit-Reset", now);
		rl_observe(r->ws_bucket, resp->rl_remaining, reset, now);
		if (resp->rl_remaining == 0 && reset > now)
			shared_hold(r, r->ws_bucket, reset);
		d->buckets_dirty = 1;
	}
	int64_t floor_ms = -1;
	if (o == OUTCOME_RATE_LIMITED) {
		int64_t ra = retry_after_ms(resp->retry_after, now);
		int64_t mb = retry_ms_before_next(resp->body.buf, resp->body.len);
		const char *source;
		int64_t asked = retry_429_wait(ra, mb, &source);
		if (asked >= 0)
			floor_ms = server_wait(r, limited, asked, source, now);
		if (floor_ms < least)
			floor_ms = least;
		hold_bucket(r, now + floor_ms);
	} else {
		if (o == OUTCOME_RETRY || o == OUTCOME_UNKNOWN) {
			int64_t ra = retry_after_ms(resp->retry_after, now);
			if (ra >= 0)
				floor_ms = server_wait(r, limited, ra, "Retry-After", now);
		}
		if (resp->error == HTTP_OK && resp->status > 0) {
			rl_note_answer(r->ws_bucket);
			if (r->op_bucket)
				rl_note_answer(r->op_bucket);
		}
	}
	const char *outcome =
	    reconcile_outcome(r, resp, &o, retry_attempt_outcome(o, r->interrupt, run_mutates(r)));
	char status_msg[64];
	if (!errmsg && resp->status >= 300) {
		snprintf(status_msg, sizeof(status_msg), "HTTP %d", resp->status);
		errmsg = status_msg;
	}
	/* a non-2xx answer's body says why (a proxy's violations, a gateway's message); a
	 * 2xx keeps its result elsewhere, so the success path stores nothing more */
	int keep_body = resp->status > 0 && (resp->status < 200 || resp->status > 299);
	struct attempt_end ae = {
	    .body = keep_body ? resp->body.buf : NULL,
	    .body_len = keep_body ? resp->body.len : 0,
	    .http_status = resp->status,
	    .error = errmsg,
	    .outcome = outcome,
	    .duration_ms = resp->duration_ms,
	    .retry_after_ms = floor_ms,
	    .rl_remaining = resp->rl_remaining,
	    .rl_reset = resp->rl_reset[0] ? resp->rl_reset : NULL,
	    .request = r->request.buf,
	};
	txn(d);
	if (store_attempt_end(d->st, r->attempt_id, &ae) < 0)
		write_failed(d, r->row.id, "record an attempt");
	metrics_attempt(d->metrics, outcome, resp->status, resp->duration_ms, 1);
	if (o == OUTCOME_CANCELLED) {
		if (r->interrupt) {
			if (store_job_requeue(
			        d->st, r->row.id,
			        "daemon stopped during the request; will be sent again", now) < 0)
				write_failed(d, r->row.id, "requeue");
			run_free(r);
		} else {
			end_job(r, JS_CANCELLED, NULL, "cancelled by the user during a request");
		}
		cJSON_Delete(body);
		return;
	}
	struct retry_policy p = policy_of(d, &r->job);
	struct retry_decision dec;
	retry_decide(&p, o, r->row.attempts, r->row.created_ms, now, floor_ms,
	             r->job.on_unknown == ON_UNKNOWN_RETRY, rng_next(&d->rng), &dec);
	if (dec.action == RETRY_SUCCEED && !multi_page(r))
		r->count_on_end = dec.count_attempt; /* folded into the success (or end) update */
	else if (dec.action != RETRY_WAIT && dec.count_attempt &&
	         store_job_count_attempt(d->st, r->row.id) < 0)
		write_failed(d, r->row.id, "count an attempt");
	if (dec.action == RETRY_SUCCEED) {
		if (!reconcile_answered(r))
			on_success(r, body, &resp->body, data_off, data_len);
	} else if (dec.action == RETRY_WAIT) {
		int failures = r->row.attempts + 1; /* in a row: a success or a page resets them */
		if (dec.count_attempt && failures >= RETRY_WARN_FAILURES) {
			/* failing again and again: the API's answer, at warn level */
			char *ej =
			    body_error(resp, o == OUTCOME_UNKNOWN ? "UnknownOutcome" : "HttpError");
			struct strbuf answer = STRBUF_INIT;
			api_answer(&answer, resp->status, ej);
			log_job(LOG_WARN, r->row.id, r->row.op_id, job_state_name(JS_WAITING),
			        "job %lld (%s): attempt %d failed: %s; %s; next try in %lld ms",
			        (long long)r->row.id, r->row.op_id, failures, answer.buf,
			        dec.reason, (long long)(dec.next_run_ms - now));
			sb_release(&answer);
			free(ej);
		} else {
			log_job(LOG_DEBUG, r->row.id, r->row.op_id, job_state_name(JS_WAITING),
			        "job %lld: %s; next try in %lld ms", (long long)r->row.id,
			        dec.reason, (long long)(dec.next_run_ms - now));
		}
		wait_job(r, dec.next_run_ms, dec.count_attempt,
		         o == OUTCOME_RATE_LIMITED ? JW_SERVER_LIMIT : JW_BACKOFF, dec.reason);
	} else {
		char *ej = body_error(resp, o == OUTCOME_UNKNOWN ? "UnknownOutcome" : "HttpError");
		char why[512];
		const char *after =
		    after_lost_answer(r, resp->status, dec.reason, why, sizeof(why));
		/* the reason (logged, listed, in the history) carries the API's own answer */
		struct strbuf reason = STRBUF_INIT;
		if (after == why) { /* names the status itself */
			sb_addf(&reason, "%s; the API said: ", after);
			api_answer(&reason, 0, ej);
		} else {
			api_answer(&reason, resp->status, ej);
			sb_addf(&reason, "; %s", after);
		}
		end_job(r, dec.action == RETRY_DEAD ? JS_DEAD : JS_FAILED, ej, reason.buf);
		sb_release(&reason);
		free(ej);
	}
	cJSON_Delete(body);
}

/* hold_response - keeps an answer that cannot be recorded yet (the store is locked by
 * another process): it is recorded, in arrival order, once the lock is free. Losing it
 * would mean sending a mutation again after a restart. */
static void hold_response(struct daemon *d, struct run *r, struct http_response *resp)
{
	r->held = xmalloc(sizeof(*r->held));
	*r->held = *resp;
	sb_init(&resp->body, 0); /* the body now belongs to the held copy */
	r->held_next = NULL;
	if (d->held_tail)
		d->held_tail->held_next = r;
	else
		d->held_head = r;
	d->held_tail = r;
	d->nheld++;
}

/* record_held - the answers held while the store was locked, oldest first. */
void record_held(struct daemon *d)
{
	while (d->held_head && make_room(d) == 0) {
		struct run *r = d->held_head;
		struct http_response *resp = r->held;
		d->held_head = r->held_next;
		if (!d->held_head)
			d->held_tail = NULL;
		d->nheld--;
		r->held = NULL;
		record_response(r, resp);
		sb_release(&resp->body);
		free(resp);
	}
}

/* on_response - the completion callback: recorded now, or held while the store is
 * locked by another process (and behind answers already held, to keep their order). */
void on_response(struct http_response *resp, void *arg)
{
	struct run *r = arg;
	struct daemon *d = r->d;
	r->xfer = NULL;
	d->ninflight--;
	d->requests++;
	if (d->reset_needed)
		return; /* the node starts again: the run is dropped with the others */
	if (d->held_head || make_room(d) < 0) {
		hold_response(d, r, resp);
		return;
	}
	record_response(r, resp);
	/* other daemons' transactions lock the same rows (a file's count, the jobs waiting
	 * for this one): one answer per transaction takes them one at a time, so two daemons
	 * never wait for each other (a deadlock would cost one of them a new start) */
	if (d->shared)
		commit(d);
}
