/* dispatch.c - claiming and admission: held runs whose wait is over and newly due jobs
 * start while there is room; a request goes only when the in-flight cap and both rate-limit
 * buckets let it, with its workspace's token (read once, cached until a SIGHUP). */
#include "daemon_int.h"

#include "output.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "config.h"
#include "http.h"
#include "job.h"
#include "paginate.h"
#include "ratelimit.h"
#include "retry.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

/* token_for - see daemon_int.h: the workspace's token, read once (again after SIGHUP). */
struct token *token_for(struct daemon *d, const char *workspace)
{
	for (size_t i = 0; i < d->ntokens; i++)
		if (strcmp(d->tokens[i].workspace, workspace) == 0)
			return &d->tokens[i];
	d->tokens = xrealloc(d->tokens, (d->ntokens + 1) * sizeof(*d->tokens));
	struct token *t = &d->tokens[d->ntokens++];
	memset(t, 0, sizeof(*t));
	t->workspace = xstrdup(workspace);
	sb_init(&t->value, 0);
	struct strbuf err = STRBUF_INIT;
	t->ok = config_token(d->cfg, workspace, &t->value, &err) == 0;
	if (!t->ok) {
		t->error = sb_detach(&err, NULL);
		logmsg(LOG_ERROR, "%s", t->error);
	}
	sb_release(&err);
	return t;
}

/* tokens_forget - wipes and frees the cached tokens. */
void tokens_forget(struct daemon *d)
{
	for (size_t i = 0; i < d->ntokens; i++) {
		if (d->tokens[i].value.alloc)
			explicit_bzero(d->tokens[i].value.buf, d->tokens[i].value.alloc);
		sb_release(&d->tokens[i].value);
		free(d->tokens[i].workspace);
		free(d->tokens[i].error);
	}
	free(d->tokens);
	d->tokens = NULL;
	d->ntokens = 0;
}

/* shared_wait_of - the time before which bucket key is known to have no token. */
static int64_t *shared_wait_of(struct daemon *d, const char *key)
{
	for (size_t i = 0; i < d->nshared_waits; i++)
		if (strcmp(d->shared_waits[i].key, key) == 0)
			return &d->shared_waits[i].until_ms;
	d->shared_waits =
	    xrealloc(d->shared_waits, (d->nshared_waits + 1) * sizeof(*d->shared_waits));
	d->shared_waits[d->nshared_waits].key = xstrdup(key);
	d->shared_waits[d->nshared_waits].until_ms = 0;
	return &d->shared_waits[d->nshared_waits++].until_ms;
}

/* shared_waits_forget - at exit, or at a new start. */
void shared_waits_forget(struct daemon *d)
{
	for (size_t i = 0; i < d->nshared_waits; i++)
		free(d->shared_waits[i].key);
	free(d->shared_waits);
	d->shared_waits = NULL;
	d->nshared_waits = 0;
}

/* shared_take - a shared store: one token of the workspace's bucket, then of the
 * endpoint's, from the buckets every node takes from (the same keys and rates as the
 * local ones). 0 taken, else the wait in ms (nothing more taken) with its bucket's key in
 * *holder, or -1 (node_lost said why). */
static int64_t shared_take(struct run *r, double rate, double burst, const char **holder)
{
	struct daemon *d = r->d;
	struct rl_bucket *b[2] = {r->ws_bucket, r->op_bucket};
	double rates[2] = {rate, r->job.op->rate_per_min / 60.0};
	double bursts[2] = {burst, rl_endpoint_burst(r->job.op->rate_per_min)};
	for (int i = 0; i < 2 && b[i]; i++) {
		int64_t wait = 0, now = clock_wall_ms();
		if (rates[i] <= 0)
			continue; /* unlimited */
		int64_t *until = shared_wait_of(d, rl_bucket_key(b[i]));
		if (*until > now) {
			*holder = rl_bucket_key(b[i]);
			return *until - now;
		}
		if (store_bucket_take(d->st, rl_bucket_key(b[i]), rates[i], bursts[i], now, &wait) <
		    0) {
			node_lost(d, "cannot take from the shared rate-limit bucket %s: %s",
			          rl_bucket_key(b[i]), store_errmsg(d->st));
			return -1;
		}
		if (wait > 0) {
			*until = now + wait;
			*holder = rl_bucket_key(b[i]);
			return wait;
		}
	}
	return 0;
}

#define TAKE_PENDING (-2) /* shared_take_async: an answer is awaited */

/* on_take - see daemon_int.h: the run looks at it in its next admission. One whose run
 * has ended meanwhile is dropped (a token taken and not used: the rate is only kept). */
void on_take(int64_t cookie, int64_t wait_ms, void *arg)
{
	struct daemon *d = arg;
	struct run *r = run_find(d, cookie / 2);
	if (!r || !r->taking || r->take_next != (int)(cookie % 2))
		return;
	r->taking = 0;
	r->take_answered = 1;
	r->take_wait = wait_ms;
	r->hold_until_ms = clock_wall_ms(); /* admitted again by the next dispatch */
}

/* shared_take_async - shared_take with the store's pipeline: each take is sent, and the
 * run waits for its answer (TAKE_PENDING) rather than the loop. 0 when both were taken,
 * else the wait in ms with its bucket's key in *holder (the next try starts again from
 * the first bucket, as shared_take's), or -1 (node_lost said why). */
static int64_t shared_take_async(struct run *r, double rate, double burst, const char **holder)
{
	struct daemon *d = r->d;
	struct rl_bucket *b[2] = {r->ws_bucket, r->op_bucket};
	double rates[2] = {rate, r->job.op->rate_per_min / 60.0};
	double bursts[2] = {burst, rl_endpoint_burst(r->job.op->rate_per_min)};
	for (int i = r->take_next; i < 2 && b[i]; i = ++r->take_next) {
		int64_t now = clock_wall_ms();
		if (rates[i] <= 0)
			continue; /* unlimited */
		int64_t *until = shared_wait_of(d, rl_bucket_key(b[i]));
		if (r->take_answered) {
			r->take_answered = 0;
			if (r->take_wait == 0)
				continue;
			*until = now + r->take_wait;
		}
		if (*until > now) {
			*holder = rl_bucket_key(b[i]);
			r->take_next = 0;
			return *until - now;
		}
		if (!r->taking && store_bucket_take_async(d->st, rl_bucket_key(b[i]), rates[i],
		                                          bursts[i], r->row.id * 2 + i) < 0) {
			node_lost(d, "cannot take from the shared rate-limit bucket %s: %s",
			          rl_bucket_key(b[i]), store_errmsg(d->st));
			return -1;
		}
		r->taking = 1;
		return TAKE_PENDING;
	}
	r->take_next = 0;
	return 0;
}

/* hold_for_limit - a wait the limits ask for: until then (back to the store when it is
 * long), or dead when the job's max age comes first. */
static void hold_for_limit(struct run *r, int64_t wait, const char *holder, int64_t now)
{
	struct daemon *d = r->d;
	struct retry_policy p = policy_of(d, &r->job);
	struct retry_decision dec;
	retry_limit_wait(&p, r->row.created_ms, now, wait, &dec);
	if (dec.action != RETRY_DEAD)
		metrics_rate_wait(d->metrics, holder, dec.next_run_ms - now);
	if (dec.action == RETRY_DEAD) {
		char *ej = error_json("MaxAgePassed", dec.reason, 0);
		struct strbuf reason = STRBUF_INIT;
		sb_adds(&reason, dec.reason);
		add_last_answer(r, &reason);
		end_job(r, JS_DEAD, ej, reason.buf);
		sb_release(&reason);
		free(ej);
	} else if (wait > LOCAL_HOLD_MAX_MS) {
		wait_job(r, dec.next_run_ms, 0, JW_OUR_LIMIT, LIMIT_WAIT_REASON);
	} else {
		r->hold_until_ms = dec.next_run_ms;
	}
}

/* send_or_hold - admission: the in-flight cap and both rate-limit buckets (and, on a
 * shared store, the buckets all its nodes take from). */
void send_or_hold(struct run *r)
{
	struct daemon *d = r->d;
	int64_t now = clock_wall_ms();
	if (d->reset_needed) {
		r->hold_until_ms = now + 1; /* nothing more under this node: dropped at the reset */
		return;
	}
	struct token *tok = token_for(d, r->job.workspace);
	if (!tok->ok) {
		/* not the job's fault: it waits, burning no attempt, for the SIGHUP that
		 * brings a token (token_for said why, once, at error level) */
		struct strbuf why = STRBUF_INIT;
		sb_addf(&why, "%s for workspace %s: %s (fix it, then send SIGHUP)",
		        TOKEN_WAIT_REASON, r->job.workspace, tok->error);
		wait_job(r, now + TOKEN_RECHECK_MS, 0, JW_TOKEN, why.buf);
		sb_release(&why);
		return;
	}
	double rate, burst;
	config_workspace_rate(d->cfg, r->job.workspace, &rate, &burst);
	char key[256];
	snprintf(key, sizeof(key), "ws:%s", r->job.workspace);
	r->ws_bucket = rl_bucket_get(d->rl, key, rate, burst, now);
	r->op_bucket = NULL;
	if (d->cfg->endpoint_limits && r->job.op->rate_per_min > 0) {
		snprintf(key, sizeof(key), "ws:%s/op:%s", r->job.workspace,
		         catalog_rate_group(r->job.op));
		r->op_bucket = rl_bucket_get(d->rl, key, r->job.op->rate_per_min / 60.0,
		                             rl_endpoint_burst(r->job.op->rate_per_min), now);
	}
	int64_t wait = rl_wait_ms(r->ws_bucket, now);
	struct rl_bucket *holder = r->ws_bucket; /* the bucket that holds it longest */
	if (r->op_bucket) {
		int64_t w2 = rl_wait_ms(r->op_bucket, now);
		if (w2 > wait) {
			wait = w2;
			holder = r->op_bucket;
		}
	}
	if (wait > 0) {
		/* held: until the limit lets it go, or its max age has come (then dead) */
		hold_for_limit(r, wait, rl_bucket_key(holder), now);
		return;
	}
	if (send_room(d) <= 0) {
		r->hold_until_ms = now + 1;
		return;
	}
	if (d->shared) {
		const char *shared_holder = NULL;
		wait = d->async ? shared_take_async(r, rate, burst, &shared_holder)
		                : shared_take(r, rate, burst, &shared_holder);
		if (wait == TAKE_PENDING) {
			r->hold_until_ms = 0; /* till on_take */
			return;
		}
		if (wait < 0) {
			r->hold_until_ms = now + 1; /* dropped by the reset that follows */
			return;
		}
		if (wait > 0) {
			hold_for_limit(r, wait, shared_holder, now);
			return;
		}
	}
	rl_take(r->ws_bucket, now);
	if (r->op_bucket)
		rl_take(r->op_bucket, now);
	d->buckets_dirty = 1;
	send_now(r, tok);
}

/* rewrite_stored_result - a job whose request already succeeded (its output failed):
 * write the output from the stored data, send nothing. 1 if it was such a job. */
static int rewrite_stored_result(struct run *r)
{
	char *stored = NULL;
	if (store_job_result(r->d->st, r->row.id, &stored) < 0) {
		/* its request succeeded already: never sent again for want of a read */
		write_failed(r->d, r->row.id, "read the stored result");
		run_free(r);
		return 1;
	}
	if (!stored)
		return 0;
	cJSON *data = cJSON_Parse(stored);
	struct strbuf where = STRBUF_INIT, err = STRBUF_INIT;
	if (write_result_output(r, data, &where, &err) < 0) {
		char *ej = error_json("OutputError", err.buf, 0);
		end_job(r, JS_FAILED, ej, "the output file could not be written");
		free(ej);
	} else {
		log_job(LOG_INFO, r->row.id, r->row.op_id, NULL,
		        "job %lld: output written from the stored result; the request "
		        "had already succeeded and is not sent again",
		        (long long)r->row.id);
		succeed_job(r, stored, where.buf);
	}
	cJSON_Delete(data);
	free(stored);
	sb_release(&where);
	sb_release(&err);
	return 1;
}

/* start_run - a claimed job: parse its spec and take the path its kind needs. */
static void start_run(struct daemon *d, struct job_row *row)
{
	struct run *r = xcalloc(1, sizeof(*r));
	r->d = d;
	r->row = *row;
	sb_init(&r->request, 0);
	run_link(d, r);
	if (job_from_json(r->row.spec_json, &r->job) < 0) {
		char *ej = error_json("BadSpec", "the stored job spec cannot be read", 0);
		end_job(r, JS_FAILED, ej, "the stored job spec cannot be read");
		free(ej);
		return;
	}
	r->job_parsed = 1;
	if (r->row.cancel_requested) {
		end_job(r, JS_CANCELLED, NULL, "cancelled by the user");
		return;
	}
	if (r->job.nrefs && refs_resolve(r) < 0)
		return; /* a reference did not resolve: ended failed */
	if (r->job.split_ms && r->row.parent_id == 0) {
		run_parent(r);
		return;
	}
	if (!multi_page(r) && r->row.has_result && rewrite_stored_result(r))
		return;
	if (multi_page(r) && r->row.pages_done > 0 &&
	    !paginate_more(r->row.cursor, r->row.pages_done, r->job.max_pages)) {
		finish_pages(r); /* every page was recorded before a restart */
		return;
	}
	reconcile_start(r);
	send_or_hold(r);
}

/* dispatch - held runs whose wait is over, then newly due jobs, while there is room. */
void dispatch(struct daemon *d)
{
	if (d->stopping)
		return;
	int64_t now = clock_wall_ms();
	for (struct run *r = d->runs, *next; r; r = next) {
		next = r->next;
		if (!r->xfer && r->hold_until_ms && r->hold_until_ms <= now) {
			if (txn_try(d) < 0)
				return; /* the store is locked: nothing new is sent */
			r->hold_until_ms = 0;
			send_or_hold(r);
		}
	}
	struct job_row rows[64];
	for (;;) {
		int room = d->cfg->max_in_flight - d->nruns;
		if (room <= 0 || send_room(d) <= 0)
			break;
		if (room > (int)ARRAY_SIZE(rows))
			room = (int)ARRAY_SIZE(rows);
		/* each claimed job stages at most one output: room for all before the claim,
		 * so none is claimed without being started */
		if (output_batch_count(d->outputs) + (size_t)room > (size_t)OUTPUT_BATCH_MAX)
			commit_now(d);
		if (txn_try(d) < 0)
			break;
		int n = store_claim_due(d->st, now, rows, room);
		if (n < 0) {
			write_failed(d, 0, "claim jobs");
			break;
		}
		for (int i = 0; i < n; i++)
			start_run(d, &rows[i]);
		if (n < room)
			break;
	}
}
