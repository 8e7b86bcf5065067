/* reconcile.c - exactly-once mutations: look before sending again after a lost answer.
 *
 * A mutation whose answer was lost (recorded "unknown": a dropped connection after the
 * body went out, or an attempt a kill -9 left open) may have been applied. Sent again, a
 * create meets 409 and a delete 404, and the job would fail although what it asked for
 * is done. For operations whose table entry has a "reconcile" rule (reconcile_rule.h;
 * data/operations.json documents it in createSource's notes), the daemon looks first:
 *
 * - At the claim (reconcile_start), a job whose last mutation attempt was lost, with no
 *   lookup deciding since (reconcile_track over its attempts), sends the rule's lookup
 *   instead: a GET through the same admission (rate limits, in-flight cap), recorded as
 *   an attempt of its own, page by page ("lookup") until it decides.
 * - Found (or, for done_when "absent", not found): the job succeeds with the rule's
 *   result as its data, shaped as the mutation's answer ({"source": {...}}), and the
 *   attempt is recorded "reconciled"; nothing is sent again. Else it is recorded
 *   "absent" and the mutation is sent, from the next dispatch (so, as every mutation,
 *   only after its attempt is committed).
 * - A lookup that fails (transport, 5xx, 429) takes the usual retry path and leaves the
 *   job pending a lookup, which starts again at its next claim; so does one a crash
 *   cuts off.
 * - gone_is_done (deletes): a 404 to a resend after a lost answer is a success, recorded
 *   "reconciled".
 * - A 409 to a resend after a lost answer (the lost request applied after the lookup,
 *   the server still working on it then) is recorded "conflict" and looked up again:
 *   found, reconciled; still not listed, the job fails with the 409, as before.
 * on_unknown still decides whether an unknown outcome is retried at all: "fail" fails the
 * job at once, as without a rule; the default "retry" now looks before it sends.
 * Operations without a rule keep on_unknown's plain resend.
 */
#include "daemon_int.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "job.h"
#include "paginate.h"
#include "reconcile_rule.h"
#include "retry.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"

struct reconcile {
	struct reconcile_rule rule;
	const struct op_def *lookup; /* NULL: no lookup, a 404 taken as done */
	cJSON *params;               /* the lookup's */
	char *cursor;                /* the next page's, NULL for the first */
	int pages;
	int decided; /* the answer being recorded decided verdict */
	enum reconcile_verdict verdict;
	cJSON *result;  /* {"data": ...} when done */
	char *conflict; /* the 409's error (JSON) when looking after one, else NULL */
};

/* reconcile_free - a run's reconciliation, if any. */
void reconcile_free(struct run *r)
{
	struct reconcile *rc = r->rc;
	if (!rc)
		return;
	reconcile_rule_release(&rc->rule);
	cJSON_Delete(rc->params);
	cJSON_Delete(rc->result);
	free(rc->cursor);
	free(rc->conflict);
	free(rc);
	r->rc = NULL;
}

/* note_attempt - store_attempts_foreach: each attempt into the tracker. */
static int note_attempt(const struct attempt_rec *a, void *arg)
{
	reconcile_track_note(arg, a->request, a->outcome);
	return 0;
}

/* start_lookup - the run looks, from the first page, by rule (taken over); 0 (rule left
 * to the caller) when the table names no such lookup. */
static int start_lookup(struct run *r, struct reconcile_rule *rule)
{
	const struct op_def *lookup = catalog_find(rule->lookup);
	if (!lookup)
		return 0;
	struct reconcile *rc = xcalloc(1, sizeof(*rc));
	rc->rule = *rule;
	rc->lookup = lookup;
	rc->params = reconcile_lookup_params(rule, r->job.params);
	r->rc = rc;
	return 1;
}

/* reconcile_start - at the claim: a lookup first when the job's last mutation attempt
 * lost its answer and no lookup has decided since. */
void reconcile_start(struct run *r)
{
	const struct op_def *op = r->job.op;
	if (!op->reconcile || r->row.tries == 0)
		return;
	struct reconcile_rule rule;
	if (reconcile_rule_parse(op->reconcile, &rule) < 0 || !rule.lookup) {
		reconcile_rule_release(&rule);
		return;
	}
	struct reconcile_track t = {0};
	if (store_attempts_foreach(r->d->st, r->row.id, note_attempt, &t) < 0)
		t.pending = 1; /* when unsure, looking costs a read; not looking, a duplicate */
	if (!t.pending || !start_lookup(r, &rule)) {
		reconcile_rule_release(&rule);
		return;
	}
	log_job(LOG_INFO, r->row.id, r->row.op_id, NULL,
	        "job %lld (%s): an earlier attempt's answer was lost; looking (%s) before "
	        "sending it again",
	        (long long)r->row.id, r->row.op_id, r->rc->lookup->operation_id);
}

/* reconcile_build - the request to send: the lookup's page while the run looks, else
 * the job's own (catalog_build's arguments as send_now passes them). */
int reconcile_build(struct run *r, const char *base, const char *cursor, int count,
                    struct built_request *req, struct strbuf *err)
{
	struct reconcile *rc = r->rc;
	if (!rc || !rc->lookup)
		return catalog_build(r->job.op, r->job.params, base, cursor, count, req, err);
	return catalog_build(rc->lookup, rc->params, base, rc->cursor, PAGINATE_DEFAULT_COUNT, req,
	                     err);
}

/* done_with - the run reconciled: its result made from the rule and the item found. */
static void done_with(struct reconcile *rc, const cJSON *item)
{
	rc->verdict = RECONCILE_DONE;
	rc->decided = 1;
	rc->result = cJSON_CreateObject();
	cJSON_AddItemToObject(rc->result, "data", reconcile_result(&rc->rule, item));
}

/* lookup_answered - a 2xx to the lookup: what its page says. */
static const char *lookup_answered(struct run *r, const struct http_response *resp, enum outcome *o)
{
	struct reconcile *rc = r->rc;
	cJSON *body = cJSON_ParseWithLength(resp->body.buf, resp->body.len);
	struct page_result page;
	const char *why;
	if (paginate_extract(rc->lookup, body, &page, &why) < 0) {
		cJSON_Delete(body);
		*o = OUTCOME_RETRY; /* a page without items decides nothing: look again */
		return outcome_name(*o);
	}
	const cJSON *item;
	enum reconcile_verdict v =
	    reconcile_page(&rc->rule, page.items, page.next, r->job.params, &item);
	if (v == RECONCILE_DONE) {
		done_with(rc, item);
	} else {
		rc->verdict = v;
		rc->decided = 1;
		free(rc->cursor);
		rc->cursor = v == RECONCILE_NEXT ? xstrdup(page.next) : NULL;
	}
	rc->pages++;
	cJSON_Delete(body);
	return reconcile_verdict_outcome(v);
}

/* conflict_error - the 409's body when it is the API's envelope (JSON), else one made. */
static char *conflict_error(const struct http_response *resp)
{
	cJSON *j = cJSON_ParseWithLength(resp->body.buf, resp->body.len);
	char *text = cJSON_IsObject(j) ? cJSON_PrintUnformatted(j)
	                               : error_json("HttpError", "HTTP 409", resp->status);
	cJSON_Delete(j);
	return text;
}

/* reconcile_outcome - the outcome an answer is recorded with: what a lookup's page says,
 * "reconciled" for a 404 that means done, "conflict" for a 409 worth another look (both
 * make *o a success, reconcile_answered going on from there); else outcome. */
const char *reconcile_outcome(struct run *r, const struct http_response *resp, enum outcome *o,
                              const char *outcome)
{
	if (r->rc && r->rc->lookup)
		return *o == OUTCOME_SUCCESS ? lookup_answered(r, resp, o) : outcome;
	if (*o != OUTCOME_PERMANENT || (resp->status != 404 && resp->status != 409) ||
	    !r->job.op->reconcile || !http_method_mutates(r->method) || r->row.tries < 2)
		return outcome;
	struct reconcile_rule rule;
	if (reconcile_rule_parse(r->job.op->reconcile, &rule) < 0)
		return outcome;
	int64_t lost = store_count_lost_answers(r->d->st, r->row.id);
	if (reconcile_gone(&rule, resp->status, r->row.tries, lost)) {
		struct reconcile *rc = xcalloc(1, sizeof(*rc));
		rc->rule = rule;
		r->rc = rc;
		done_with(rc, NULL);
		*o = OUTCOME_SUCCESS;
		return RECONCILE_RECONCILED;
	}
	if (reconcile_conflict(&rule, resp->status, r->row.tries, lost) && start_lookup(r, &rule)) {
		r->rc->conflict = conflict_error(resp);
		r->rc->verdict = RECONCILE_NEXT; /* from its first page */
		r->rc->decided = 1;
		*o = OUTCOME_SUCCESS;
		return RECONCILE_CONFLICT;
	}
	reconcile_rule_release(&rule);
	return outcome;
}

/* go_on - the run sends again: the next page of its lookup now (a read), or its
 * mutation from the next dispatch; at a stop, back to the queue. */
static void go_on(struct run *r, int mutation)
{
	struct daemon *d = r->d;
	r->count_on_end = 0; /* the lookup's success is not the job's end */
	if (d->stopping) {
		txn(d);
		if (store_job_requeue(d->st, r->row.id, "daemon stopping during a lookup",
		                      clock_wall_ms()) < 0)
			write_failed(d, r->row.id, "requeue");
		run_free(r);
	} else if (mutation) {
		r->hold_until_ms = clock_wall_ms();
	} else {
		r->hold_until_ms = 0;
		send_or_hold(r);
	}
}

/* reconcile_answered - a success reconcile_outcome decided: the job done with the rule's
 * result, or the next page looked at, or the mutation sent. 0 when the success is the
 * job's own answer (on_success takes it). */
int reconcile_answered(struct run *r)
{
	struct reconcile *rc = r->rc;
	if (!rc || !rc->decided)
		return 0;
	rc->decided = 0;
	if (rc->verdict == RECONCILE_NEXT) {
		go_on(r, 0);
		return 1;
	}
	if (rc->verdict == RECONCILE_SEND && rc->conflict) {
		/* the key is taken, by nothing the lookup lists: the 409 stands */
		struct strbuf reason = STRBUF_INIT;
		sb_addf(&reason,
		        "HTTP 409 after an earlier attempt whose answer was lost, and %s does not "
		        "list it; not retried; the API said: ",
		        rc->lookup->operation_id);
		api_answer(&reason, 0, rc->conflict);
		char *ej = rc->conflict;
		rc->conflict = NULL;
		reconcile_free(r);
		end_job(r, JS_FAILED, ej, reason.buf);
		free(ej);
		sb_release(&reason);
		return 1;
	}
	if (rc->verdict == RECONCILE_SEND) {
		log_job(LOG_INFO, r->row.id, r->row.op_id, NULL,
		        "job %lld (%s): not applied (%s, %d page(s)); sending it again",
		        (long long)r->row.id, r->row.op_id, rc->lookup->operation_id, rc->pages);
		reconcile_free(r);
		go_on(r, 1);
		return 1;
	}
	cJSON *body = rc->result;
	rc->result = NULL;
	log_job(LOG_INFO, r->row.id, r->row.op_id, NULL,
	        "job %lld (%s): reconciled: the request whose answer was lost was applied (%s); "
	        "not sent again",
	        (long long)r->row.id, r->row.op_id,
	        rc->lookup ? rc->lookup->operation_id : "404 to the resend");
	reconcile_free(r);
	struct strbuf raw = STRBUF_INIT;
	char *text = cJSON_PrintUnformatted(body);
	sb_adds(&raw, text);
	free(text);
	on_success(r, body, &raw, 0, 0);
	sb_release(&raw);
	cJSON_Delete(body);
	return 1;
}
