/* test_store.c - the store API, whatever the backend: the state machine, history,
 * scheduling, recovery, pages, children, buckets and the views built on its rows. It
 * speaks only store.h; where the store lives is store_fixture.h's to say, so a second
 * backend runs this same file (the SQLite backend's own file-level checks are in
 * test_store_sqlite.c). */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "strbuf.h"
#include "store_fixture.h"
#include "testlib.h"
#include "views.h"
#include "util.h"

/* last_transition - the reason and states of a job's latest transition (from show). */
static cJSON *show(struct store *st, int64_t id)
{
	cJSON *o = view_show(st, id);
	CHECK(o != NULL);
	return o;
}

static const char *transition_field(cJSON *o, int index, const char *field)
{
	cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "transitions");
	int n = cJSON_GetArraySize(arr);
	cJSON *t = cJSON_GetArrayItem(arr, index < 0 ? n + index : index);
	cJSON *v = cJSON_GetObjectItemCaseSensitive(t, field);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

TEST(test_state_names)
{
	enum job_state s;
	CHECK_STR(job_state_name(JS_QUEUED), "queued");
	CHECK_STR(job_state_name(JS_CANCELLED), "cancelled");
	CHECK_INT(job_state_parse("waiting", &s), 0);
	CHECK_INT(s, JS_WAITING);
	CHECK_INT(job_state_parse("bogus", &s), -1);
	CHECK(!job_state_terminal(JS_RUNNING));
	CHECK(!job_state_terminal(JS_WAITING));
	CHECK(job_state_terminal(JS_DEAD));
	CHECK(job_state_terminal(JS_SUCCEEDED));
}

TEST(test_insert_duplicate)
{
	struct store *st = open_fresh("dup.db");
	struct job_new a = new_job("listSources", "same-key", 0, 0);
	int64_t id1 = 0, id2 = 0, id3 = 0;
	CHECK_INT(store_job_insert(st, &a, 1000, &id1), STORE_INSERTED);
	a.op_id = "getSource";
	CHECK_INT(store_job_insert(st, &a, 2000, &id2), STORE_DUPLICATE);
	CHECK_INT(id2, id1);
	struct job_row row;
	CHECK_INT(store_get(st, id1, &row), 0);
	CHECK_STR(row.op_id, "listSources"); /* the first one stays, untouched */
	CHECK_INT(row.created_ms, 1000);
	CHECK_INT(row.total_entries, -1);
	CHECK(row.cursor == NULL);
	CHECK_INT(row.parent_id, 0);
	job_row_release(&row);
	/* jobs without a key never clash */
	struct job_new b = new_job("listSources", NULL, 0, 0);
	CHECK_INT(store_job_insert(st, &b, 1000, &id2), STORE_INSERTED);
	CHECK_INT(store_job_insert(st, &b, 1000, &id3), STORE_INSERTED);
	CHECK(id2 != id3);
	int64_t counts[JS_COUNT];
	CHECK_INT(store_counts(st, counts), 0);
	CHECK_INT(counts[JS_QUEUED], 3);
	CHECK_INT(store_get(st, 9999, &row), 1);
	cJSON *o = show(st, id1);
	CHECK_STR(transition_field(o, 0, "to"), "queued");
	CHECK_STR(transition_field(o, 0, "reason"), "submitted");
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "transitions"), 0), "from")));
	cJSON_Delete(o);
	store_close(st);
}

TEST(test_claim_order)
{
	struct store *st = open_fresh("claim.db");
	struct job_new j = new_job("listSources", NULL, 0, 0);
	int64_t late = insert(st, &j, 1000); /* prio 0, due 1000 */
	int64_t early = insert(st, &j, 900); /* prio 0, due 900 */
	int64_t tie = insert(st, &j, 900);   /* prio 0, due 900, higher id */
	j.priority = 5;
	int64_t urgent = insert(st, &j, 1500); /* prio 5, due 1500 */
	j.priority = 9;
	j.not_before_ms = 5000;
	int64_t future = insert(st, &j, 1000); /* prio 9 but not before 5000 */
	j.priority = -3;
	j.not_before_ms = 0;
	int64_t low = insert(st, &j, 100);

	CHECK_INT(store_next_due_ms(st), 100);
	struct job_row rows[8];
	int n = store_claim_due(st, 2000, rows, 3); /* the limit */
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_INT(rows[0].id, urgent);
		CHECK_INT(rows[1].id, early);
		CHECK_INT(rows[2].id, tie);
		CHECK_INT(rows[0].state, JS_RUNNING);
		CHECK_STR(rows[0].op_id, "listSources");
		CHECK_STR(rows[0].workspace, "default");
	}
	for (int i = 0; i < n; i++)
		job_row_release(&rows[i]);
	CHECK_INT(state_of(st, urgent), JS_RUNNING);
	CHECK_INT(store_count_active(st), 6);

	n = store_claim_due(st, 2000, rows, 8);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(rows[0].id, late);
		CHECK_INT(rows[1].id, low);
	}
	for (int i = 0; i < n; i++)
		job_row_release(&rows[i]);
	/* not_before: the priority-9 job waits for its time */
	CHECK_INT(state_of(st, future), JS_QUEUED);
	CHECK_INT(store_next_due_ms(st), 5000);
	CHECK_INT(store_claim_due(st, 4999, rows, 8), 0);
	n = store_claim_due(st, 5000, rows, 8);
	CHECK_INT(n, 1);
	if (n == 1)
		CHECK_INT(rows[0].id, future);
	for (int i = 0; i < n; i++)
		job_row_release(&rows[i]);
	CHECK_INT(store_next_due_ms(st), 0);

	cJSON *o = show(st, urgent);
	CHECK_STR(transition_field(o, -1, "from"), "queued");
	CHECK_STR(transition_field(o, -1, "to"), "running");
	CHECK_STR(transition_field(o, -1, "reason"), "claimed");
	cJSON_Delete(o);
	store_close(st);
}

/* succeed - store_job_succeed with an empty result, no output, the attempt not counted. */
static int succeed(struct store *st, int64_t id, int64_t now)
{
	struct job_success ok = {.result_json = "{}"};
	return store_job_succeed(st, id, &ok, now);
}

/* claim_one - claims the job that the caller made the only due one. */
static void claim_one(struct store *st, int64_t id, int64_t now)
{
	struct job_row row;
	int n = store_claim_due(st, now, &row, 1);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_INT(row.id, id);
		job_row_release(&row);
	}
}

TEST(test_transitions)
{
	struct store *st = open_fresh("trans.db");
	struct job_new j = new_job("createSource", NULL, 0, 0);
	int64_t id = insert(st, &j, 1000);
	struct job_row row;

	claim_one(st, id, 1000);
	CHECK_INT(store_job_wait(st, id, 3000, 1, JW_BACKOFF, "retry after 503", 1100), 0);
	CHECK_INT(store_get(st, id, &row), 0);
	CHECK_INT(row.state, JS_WAITING);
	CHECK_INT(row.next_run_ms, 3000);
	CHECK_INT(row.attempts, 1);
	job_row_release(&row);
	CHECK_INT(store_claim_due(st, 2999, &row, 1), 0);
	claim_one(st, id, 3000);
	CHECK_INT(store_job_wait(st, id, 4000, 0, JW_BACKOFF, "rate limited", 3100),
	          0); /* not counted */
	CHECK_INT(store_get(st, id, &row), 0);
	CHECK_INT(row.attempts, 1);
	job_row_release(&row);
	claim_one(st, id, 4000);
	CHECK_INT(store_job_requeue(st, id, "daemon stopping", 4100), 0);
	CHECK_INT(state_of(st, id), JS_QUEUED);
	claim_one(st, id, 4200);
	CHECK_INT(row.has_result, 0);
	struct job_success ok = {.result_json = "{\"source\":{\"id\":\"s1\"}}",
	                         .output_path = "sources/s1.json",
	                         .count_attempt = 1};
	CHECK_INT(store_job_succeed(st, id, &ok, 4300), 0);
	CHECK_INT(state_of(st, id), JS_SUCCEEDED);
	/* one update recorded the result, the output and the attempt that ended it */
	CHECK_INT(store_get(st, id, &row), 0);
	CHECK_INT(row.attempts, 2);
	CHECK_STR(row.output_path, "sources/s1.json");
	CHECK_INT(row.has_result, 1);
	job_row_release(&row);

	cJSON *o = show(st, id);
	cJSON *tr = cJSON_GetObjectItemCaseSensitive(o, "transitions");
	CHECK_INT(cJSON_GetArraySize(tr), 9);
	CHECK_STR(transition_field(o, 2, "to"), "waiting");
	CHECK_STR(transition_field(o, 2, "reason"), "retry after 503");
	CHECK_STR(transition_field(o, 6, "reason"), "daemon stopping");
	CHECK_STR(transition_field(o, 8, "from"), "running");
	CHECK_STR(transition_field(o, 8, "to"), "succeeded");
	CHECK_STR(transition_field(o, 8, "at"), "1970-01-01T00:00:04.300Z");
	cJSON *result = cJSON_GetObjectItemCaseSensitive(o, "result");
	CHECK(cJSON_IsObject(result));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "finished")),
	          "1970-01-01T00:00:04.300Z");
	cJSON_Delete(o);

	/* failed, dead and cancelled from running, waiting and queued */
	int64_t f = insert(st, &j, 5000);
	claim_one(st, f, 5000);
	CHECK_INT(store_job_end(st, f, JS_FAILED, "{\"errors\":[{\"type\":\"NotFound\"}]}",
	                        "404 not found", 5100),
	          0);
	CHECK_INT(state_of(st, f), JS_FAILED);
	o = show(st, f);
	CHECK_STR(
	    cJSON_GetStringValue(
	        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "error")->child, 0)->child),
	    "NotFound");
	CHECK_STR(transition_field(o, -1, "reason"), "404 not found");
	cJSON_Delete(o);

	int64_t d = insert(st, &j, 5000);
	claim_one(st, d, 5000);
	CHECK_INT(store_job_wait(st, d, 9000, 1, JW_BACKOFF, "retry", 5100), 0);
	CHECK_INT(store_job_end(st, d, JS_DEAD, NULL, "attempts exhausted", 5200), 0);
	CHECK_INT(state_of(st, d), JS_DEAD);
	o = show(st, d);
	CHECK_STR(transition_field(o, -1, "from"), "waiting");
	CHECK_STR(transition_field(o, -1, "to"), "dead");
	cJSON_Delete(o);

	int64_t c = insert(st, &j, 5000);
	CHECK_INT(store_job_end(st, c, JS_CANCELLED, NULL, "parent cancelled", 5300), 0);
	CHECK_INT(state_of(st, c), JS_CANCELLED);
	store_close(st);
}

/* note_transition - "FROM>TO@AT:REASON;" for each state change (FROM -1: creation). */
static int note_transition(const struct transition_rec *t, void *arg)
{
	sb_addf(arg, "%d>%d@%lld:%s;", t->from_state, (int)t->to_state, (long long)t->at_ms,
	        t->reason ? t->reason : "-");
	return 0;
}

/* test_success_history - a job's successes are in its history in their place, the one
 * it is in last: one whose output is lost, then retried and succeeded again, shows both,
 * each at its time, and its history is the same when read inside the transaction that
 * lost the output. */
TEST(test_success_history)
{
	struct store *st = open_fresh("success_history.db");
	struct job_new j = new_job("createSource", NULL, 0, 0);
	int64_t id = insert(st, &j, 1000);
	struct strbuf h = STRBUF_INIT;
	claim_one(st, id, 1100);
	CHECK_INT(succeed(st, id, 1200), 0);
	CHECK_INT(store_transitions_foreach(st, id, note_transition, &h), 0);
	CHECK_STR(h.buf, "-1>0@1000:submitted;0>1@1100:claimed;1>3@1200:-;");
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_job_output_lost(st, id, NULL, "output lost", 1300), 0);
	sb_reset(&h);
	CHECK_INT(store_transitions_foreach(st, id, note_transition, &h), 0);
	CHECK_STR(h.buf, "-1>0@1000:submitted;0>1@1100:claimed;1>3@1200:-;3>4@1300:output lost;");
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(store_job_retry(st, id, 1400), 0);
	claim_one(st, id, 1500);
	CHECK_INT(succeed(st, id, 1600), 0);
	sb_reset(&h);
	CHECK_INT(store_transitions_foreach(st, id, note_transition, &h), 0);
	CHECK_STR(h.buf, "-1>0@1000:submitted;0>1@1100:claimed;1>3@1200:-;3>4@1300:output lost;"
	                 "4>0@1400:retry requested;0>1@1500:claimed;1>3@1600:-;");
	sb_release(&h);
	store_close(st);
}

TEST(test_disallowed)
{
	struct store *st = open_fresh("disallowed.db");
	struct job_new j = new_job("createSource", NULL, 0, 0);
	int64_t id = insert(st, &j, 1000);
	/* queued: only end/cancel are allowed */
	CHECK_INT(succeed(st, id, 1100), -1);
	CHECK(strstr(store_errmsg(st), "it is queued, not running") != NULL);
	CHECK_INT(store_job_wait(st, id, 2000, 1, JW_BACKOFF, "x", 1100), -1);
	CHECK_INT(store_job_requeue(st, id, "x", 1100), -1);
	CHECK_INT(store_job_retry(st, id, 1100), 1);
	CHECK(strstr(store_errmsg(st), "not failed, dead or cancelled") != NULL);
	CHECK_INT(store_job_end(st, id, JS_SUCCEEDED, NULL, "x", 1100), -1);
	CHECK_INT(store_job_end(st, id, JS_RUNNING, NULL, "x", 1100), -1);
	CHECK_INT(state_of(st, id), JS_QUEUED);
	CHECK_INT(succeed(st, 4242, 1100), -1);
	CHECK(strstr(store_errmsg(st), "no such job") != NULL);
	CHECK_INT(store_job_cancel(st, 4242, 1100), -1);

	claim_one(st, id, 1000);
	CHECK_INT(succeed(st, id, 1200), 0);
	CHECK_INT(store_job_end(st, id, JS_FAILED, NULL, "late", 1300), -1);
	CHECK(strstr(store_errmsg(st), "it is succeeded, not queued, running or waiting"));
	CHECK_INT(store_job_cancel(st, id, 1300), 1);
	CHECK_INT(store_job_retry(st, id, 1300), 1);
	CHECK_INT(state_of(st, id), JS_SUCCEEDED);
	cJSON *o = show(st, id);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "transitions")), 3);
	cJSON_Delete(o);
	store_close(st);
}

TEST(test_wake_waiters)
{
	struct store *st = open_fresh("wake.db");
	struct job_new j = new_job("getSource", NULL, 0, 0);
	int64_t limited = insert(st, &j, 1000), told = insert(st, &j, 1000);
	int64_t queued = insert(st, &j, 1000);
	claim_one(st, limited, 1000);
	CHECK_INT(
	    store_job_wait(st, limited, 90000, 0, JW_OUR_LIMIT, "waiting for the rate limit", 1000),
	    0);
	claim_one(st, told, 1000);
	CHECK_INT(store_job_wait(st, told, 90000, 0, JW_SERVER_LIMIT, "retry after 429", 1000), 0);
	/* only the jobs our own limit parked are due again; the server's wait stands */
	CHECK_INT(store_wake_waiters(st, JW_OUR_LIMIT, 2000), 1);
	struct job_row row;
	CHECK_INT(store_get(st, limited, &row), 0);
	CHECK_INT(row.next_run_ms, 2000);
	CHECK_INT(row.state, JS_WAITING);
	job_row_release(&row);
	CHECK_INT(store_get(st, told, &row), 0);
	CHECK_INT(row.next_run_ms, 90000);
	job_row_release(&row);
	CHECK_INT(state_of(st, queued), JS_QUEUED);
	CHECK_INT(store_wake_waiters(st, JW_OUR_LIMIT, 2000), 0); /* due already */
	/* a token waiter is counted and woken by its own wait, not by any other */
	int64_t tokenless = insert(st, &j, 500); /* due first */
	claim_one(st, tokenless, 1000);
	CHECK_INT(store_job_wait(st, tokenless, 90000, 0, JW_TOKEN,
	                         "waiting for a usable API token for workspace x", 1000),
	          0);
	CHECK_INT(store_count_waiting_for(st, JW_TOKEN), 1);
	CHECK_INT(store_count_waiting_for(st, JW_SERVER_LIMIT), 1);
	CHECK_INT(store_wake_waiters(st, JW_OUR_LIMIT, 3000), 0);
	CHECK_INT(store_wake_waiters(st, JW_TOKEN, 3000), 1);
	CHECK_INT(store_get(st, tokenless, &row), 0);
	CHECK_INT(row.next_run_ms, 3000);
	job_row_release(&row);
	CHECK_INT(store_get(st, told, &row), 0);
	CHECK_INT(row.next_run_ms, 90000);
	job_row_release(&row);
	store_close(st);
}

TEST(test_cancel)
{
	struct store *st = open_fresh("cancel.db");
	struct job_new j = new_job("createSource", NULL, 0, 0);
	int64_t running = insert(st, &j, 1000);
	claim_one(st, running, 1000);
	int64_t queued = insert(st, &j, 1000);
	int64_t waiting = insert(st, &j, 1000);
	/* a requeued job keeps its due time, so it is claimed again before the later one */
	claim_one(st, queued, 1000);
	CHECK_INT(store_job_requeue(st, queued, "put back", 1000), 0);
	claim_one(st, queued, 1000);
	CHECK_INT(store_job_requeue(st, queued, "put back", 1000), 0);
	CHECK_INT(store_job_cancel(st, queued, 1100), 0);
	CHECK_INT(state_of(st, queued), JS_CANCELLED);
	claim_one(st, waiting, 1000);
	CHECK_INT(store_job_wait(st, waiting, 9000, 1, JW_BACKOFF, "retry", 1000), 0);
	CHECK_INT(store_job_cancel(st, waiting, 1100), 0);
	CHECK_INT(state_of(st, waiting), JS_CANCELLED);
	CHECK_INT(store_job_cancel(st, waiting, 1100), 1); /* already cancelled */

	struct job_row row;
	/* running: flagged, the daemon aborts and ends it; a late success is refused */
	CHECK_INT(store_job_cancel(st, running, 1200), 2);
	CHECK_INT(store_get(st, running, &row), 0);
	CHECK_INT(row.state, JS_RUNNING);
	CHECK_INT(row.cancel_requested, 1);
	job_row_release(&row);
	CHECK_INT(store_job_end(st, running, JS_CANCELLED, NULL, "cancelled while running", 1300),
	          0);
	CHECK_INT(succeed(st, running, 1400), -1);
	CHECK(strstr(store_errmsg(st), "it is cancelled, not running") != NULL);
	CHECK_INT(state_of(st, running), JS_CANCELLED);

	/* a failed job can be cancelled too (any state but succeeded, per store.h) */
	int64_t failed = insert(st, &j, 2000);
	CHECK_INT(store_job_end(st, failed, JS_FAILED, NULL, "bad", 2000), 0);
	CHECK_INT(store_job_cancel(st, failed, 2100), 0);
	CHECK_INT(state_of(st, failed), JS_CANCELLED);
	store_close(st);
}

TEST(test_retry)
{
	struct store *st = open_fresh("retry.db");
	struct job_new j = new_job("listSources", NULL, 0, 0);
	int64_t id = insert(st, &j, 1000);
	claim_one(st, id, 1000);
	CHECK_INT(store_job_wait(st, id, 1500, 1, JW_BACKOFF, "retry", 1100), 0);
	claim_one(st, id, 1500);
	CHECK_INT(store_job_end(st, id, JS_DEAD, "{\"errors\":[]}", "attempts exhausted", 1600), 0);
	CHECK_INT(store_job_retry(st, id, 7000), 0);
	struct job_row row;
	CHECK_INT(store_get(st, id, &row), 0);
	CHECK_INT(row.state, JS_QUEUED);
	CHECK_INT(row.attempts, 0);
	CHECK_INT(row.next_run_ms, 7000);
	CHECK_INT(row.cancel_requested, 0);
	job_row_release(&row);
	cJSON *o = show(st, id);
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "finished")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "error")));
	CHECK_STR(transition_field(o, -1, "from"), "dead");
	CHECK_STR(transition_field(o, -1, "reason"), "retry requested");
	cJSON_Delete(o);
	CHECK_INT(store_claim_due(st, 6999, &row, 1), 0);
	claim_one(st, id, 7000);
	/* a cancelled running job: retry clears the cancel flag */
	CHECK_INT(store_job_cancel(st, id, 7100), 2);
	CHECK_INT(store_job_end(st, id, JS_CANCELLED, NULL, "cancelled", 7200), 0);
	CHECK_INT(store_job_retry(st, id, 8000), 0);
	CHECK_INT(store_get(st, id, &row), 0);
	CHECK_INT(row.cancel_requested, 0);
	job_row_release(&row);
	int64_t *ids = NULL;
	size_t n = 0;
	CHECK_INT(store_ids_in_state(st, JS_QUEUED, &ids, &n), 0);
	CHECK_INT(n, 1);
	CHECK(n == 1 && ids[0] == id);
	free(ids);
	store_close(st);
}

TEST(test_attempts)
{
	struct store *st = open_fresh("attempts.db");
	struct job_new j = new_job("getSource", NULL, 0, 0);
	int64_t id = insert(st, &j, 1000);
	int64_t a1 = 0, a2 = 0;
	claim_one(st, id, 1000);
	CHECK_INT(store_attempt_begin(st, id, 1, 1000, NULL, &a1), 0);
	/* a 503's body is kept: its first 4 KiB, as UTF-8 text (a stray byte and a NUL as
	 * \xNN), with a line saying it was cut */
	struct strbuf big = STRBUF_INIT;
	sb_adds(&big, "{\"errors\":[{\"message\":\"caf\xc3\xa9 \xff\"}]}");
	sb_add(&big, "\0", 1);
	while (big.len < 5000)
		sb_adds(&big, "0123456789");
	struct attempt_end e = {.http_status = 503,
	                        .error = "service unavailable",
	                        .outcome = "retry",
	                        .duration_ms = 120,
	                        .retry_after_ms = 2000,
	                        .rl_remaining = 17,
	                        .rl_reset = "Thu, 26 Nov 2026 03:00:00 GMT",
	                        .request = "GET /sources/abc",
	                        .body = big.buf,
	                        .body_len = big.len};
	CHECK_INT(store_attempt_end(st, a1, &e), 0);
	CHECK_INT(store_attempt_begin(st, id, 2, 3000, NULL, &a2), 0);
	CHECK(a2 > a1);
	struct attempt_end ok = {.http_status = 200,
	                         .outcome = "ok",
	                         .duration_ms = 80,
	                         .retry_after_ms = -1,
	                         .rl_remaining = -1,
	                         .request = "GET /sources/abc"};
	CHECK_INT(store_attempt_end(st, a2, &ok), 0);
	CHECK_INT(store_attempt_end(st, 9999, &ok), -1);
	CHECK(strstr(store_errmsg(st), "no such attempt") != NULL);
	CHECK_INT(store_attempt_begin(st, 9999, 1, 3000, NULL, &a2), -1); /* no such job */

	cJSON *o = show(st, id);
	cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "attempts");
	CHECK_INT(cJSON_GetArraySize(arr), 2);
	cJSON *first = cJSON_GetArrayItem(arr, 0), *second = cJSON_GetArrayItem(arr, 1);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(first, "attempt")->valuedouble, 1);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(second, "attempt")->valuedouble, 2);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(first, "http_status")->valuedouble, 503);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(first, "retry_after_ms")->valuedouble, 2000);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(first, "rl_remaining")->valuedouble, 17);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "error")),
	          "service unavailable");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "request")),
	          "GET /sources/abc");
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(second, "retry_after_ms")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(second, "rl_remaining")));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(second, "outcome")), "ok");
	const char *kept = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "body"));
	const char *cut = "\n[segspool: cut: the first 4096 of 5005 bytes kept]";
	CHECK(kept &&
	      strncmp(kept, "{\"errors\":[{\"message\":\"caf\xc3\xa9 \\xff\"}]}\\x00012", 40) == 0);
	CHECK(kept && strstr(kept, cut) != NULL);
	CHECK(kept && strlen(kept) == 4096 + 6 + strlen(cut)); /* two bytes became \xNN */
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(second, "body")));
	cJSON_Delete(o);
	sb_release(&big);

	o = view_stats(st);
	CHECK(o != NULL);
	cJSON *jobs = cJSON_GetObjectItemCaseSensitive(o, "jobs");
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(jobs, "running")->valuedouble, 1);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(jobs, "dead")->valuedouble, 0);
	cJSON *att = cJSON_GetObjectItemCaseSensitive(o, "attempts");
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(att, "retry")->valuedouble, 1);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(att, "ok")->valuedouble, 1);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(o, "requests")->valuedouble, 2);
	cJSON_Delete(o);
	store_close(st);
}

struct page_seen {
	int n;
	int last_page;
	char items[256];
};

static int collect_page(int page_no, const char *items_json, void *arg)
{
	struct page_seen *seen = arg;
	seen->n++;
	seen->last_page = page_no;
	strncat(seen->items, items_json, sizeof(seen->items) - strlen(seen->items) - 1);
	return 0;
}

static int stop_at_first(int page_no, const char *items_json, void *arg)
{
	(void)page_no;
	(void)items_json;
	(*(int *)arg)++;
	return 1;
}

TEST(test_pages_resume)
{
	struct store *st = open_fresh("pages.db");
	struct job_new j = new_job("listSources", NULL, 0, 0);
	j.paginated = 1;
	int64_t id = insert(st, &j, 1000);
	claim_one(st, id, 1000);
	CHECK_INT(store_page_record(st, id, 1, NULL, "MQ==", "[1,2]", 2, 5, 1100), 0);
	CHECK_INT(store_page_record(st, id, 2, "MQ==", "Mg==", "[3,4]", 2, -1, 1200), 0);
	/* the same page twice would count its items twice: refused */
	CHECK_INT(store_page_record(st, id, 2, "MQ==", "Mg==", "[3,4]", 2, -1, 1200), -1);
	struct job_row row;
	CHECK_INT(store_get(st, id, &row), 0);
	CHECK_STR(row.cursor, "Mg==");
	CHECK_INT(row.pages_done, 2);
	CHECK_INT(row.items_done, 4);
	CHECK_INT(row.total_entries, 5); /* kept when a page does not say */
	job_row_release(&row);
	store_close(st);

	/* a crash here: the reopened store resumes at page 3 with cursor Mg== */
	char *err = NULL;
	CHECK_INT(store_reopen_test(0, &st, &err), 0);
	CHECK_INT(store_recover(st, 2000), 1);
	claim_one(st, id, 2000);
	CHECK_INT(store_get(st, id, &row), 0);
	CHECK_STR(row.cursor, "Mg==");
	CHECK_INT(row.pages_done, 2);
	job_row_release(&row);
	CHECK_INT(store_page_record(st, id, 3, "Mg==", NULL, "[5]", 1, 5, 2100), 0);
	CHECK_INT(store_get(st, id, &row), 0);
	CHECK(row.cursor == NULL);
	CHECK_INT(row.pages_done, 3);
	CHECK_INT(row.items_done, 5);
	job_row_release(&row);

	struct page_seen seen = {0};
	CHECK_INT(store_pages_foreach(st, id, collect_page, &seen), 0);
	CHECK_INT(seen.n, 3);
	CHECK_INT(seen.last_page, 3);
	CHECK_STR(seen.items, "[1,2][3,4][5]");
	int calls = 0;
	CHECK_INT(store_pages_foreach(st, id, stop_at_first, &calls), 0);
	CHECK_INT(calls, 1);

	cJSON *o = show(st, id);
	cJSON *pages = cJSON_GetObjectItemCaseSensitive(o, "pages");
	CHECK_INT(cJSON_GetArraySize(pages), 3);
	cJSON *p2 = cJSON_GetArrayItem(pages, 1);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(p2, "page_no")->valuedouble, 2);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(p2, "nitems")->valuedouble, 2);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p2, "cursor")), "MQ==");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p2, "next_cursor")),
	          "Mg==");
	CHECK(cJSON_GetObjectItemCaseSensitive(p2, "items") == NULL);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(o, "items_done")->valuedouble, 5);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(o, "total_entries")->valuedouble, 5);
	cJSON_Delete(o);
	store_close(st);
}

TEST(test_page_cursor_seen)
{
	struct store *st = open_fresh("cursors.db");
	struct job_new j = new_job("listSources", NULL, 0, 0);
	j.paginated = 1;
	int64_t id = insert(st, &j, 1000);
	int64_t other = insert(st, &j, 1000);
	claim_one(st, id, 1000);
	claim_one(st, other, 1000);
	CHECK_INT(store_page_record(st, id, 1, NULL, "c1", "[]", 0, -1, 1100), 0);
	CHECK_INT(store_page_record(st, id, 2, "c1", "c2", "[]", 0, -1, 1200), 0);
	CHECK_INT(store_page_record(st, other, 1, NULL, "c9", "[]", 0, -1, 1200), 0);
	CHECK_INT(store_page_record(st, other, 2, "c9", "c1", "[]", 0, -1, 1200), 0);
	/* a cursor a page was fetched with: that page; one only handed out as next: none */
	CHECK_INT(store_page_cursor_seen(st, id, "c1"), 2);
	CHECK_INT(store_page_cursor_seen(st, id, "c2"), 0);
	CHECK_INT(store_page_cursor_seen(st, id, "c0"), 0);
	/* a cycle back to c1: the first page fetched with it */
	CHECK_INT(store_page_record(st, id, 3, "c2", "c1", "[]", 0, -1, 1300), 0);
	CHECK_INT(store_page_record(st, id, 4, "c1", "c2", "[]", 0, -1, 1400), 0);
	CHECK_INT(store_page_cursor_seen(st, id, "c1"), 2);
	CHECK_INT(store_page_cursor_seen(st, id, "c2"), 3);
	/* another job's cursors are its own */
	CHECK_INT(store_page_cursor_seen(st, other, "c9"), 2);
	CHECK_INT(store_page_cursor_seen(st, other, "c2"), 0);
	CHECK_INT(store_page_cursor_seen(st, 999, "c1"), 0);
	store_close(st);
}

TEST(test_recover)
{
	struct store *st = open_fresh("recover.db");
	struct job_new read = new_job("listSources", NULL, 0, 0);
	struct job_new write = new_job("createSource", NULL, 0, 0);
	write.mutates = 1;
	struct job_new raw_get = new_job("raw", NULL, 0, 0);
	raw_get.spec_json =
	    "{\"op\":\"raw\",\"params\":{\"method\":\"get\",\"path\":\"/sources\"}}";
	struct job_new raw_post = new_job("raw", NULL, 0, 0);
	raw_post.spec_json = "{\"op\":\"raw\",\"params\":{\"method\":\"POST\",\"path\":\"/x\"}}";
	raw_post.mutates = 1;
	int64_t ids[4] = {insert(st, &read, 1000), insert(st, &write, 1000),
	                  insert(st, &raw_get, 1000), insert(st, &raw_post, 1000)};
	int64_t idle = insert(st, &read, 1000);
	struct job_row rows[4];
	int n = store_claim_due(st, 1000, rows, 4);
	CHECK_INT(n, 4);
	for (int i = 0; i < n; i++) {
		int64_t aid;
		CHECK_INT(rows[i].tries, 0);
		CHECK_INT(store_attempt_begin(st, rows[i].id, 1, 1000, "POST /sources", &aid), 0);
		job_row_release(&rows[i]);
	}
	store_close(st); /* the crash: running jobs and open attempts left behind */

	char *err = NULL;
	CHECK_INT(store_reopen_test(0, &st, &err), 0);
	CHECK_INT(store_recover(st, 5000), 4);
	static const char *const outcomes[4] = {"interrupted", "unknown", "interrupted", "unknown"};
	for (int i = 0; i < 4; i++) {
		CHECK_INT(state_of(st, ids[i]), JS_QUEUED);
		cJSON *o = show(st, ids[i]);
		CHECK_STR(transition_field(o, -1, "reason"), "daemon restarted; was running");
		CHECK_STR(transition_field(o, -1, "from"), "running");
		cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "attempts"), 0);
		CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "outcome")),
		          outcomes[i]);
		/* what went out is known even though the attempt never ended */
		CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "request")),
		          "POST /sources");
		cJSON_Delete(o);
	}
	CHECK_INT(state_of(st, idle), JS_QUEUED);
	CHECK_INT(store_recover(st, 6000), 0); /* nothing left to do */
	/* claimed again, each knows its one attempt so far: the next is number 2 */
	CHECK_INT(store_claim_due(st, 6000, rows, 4), 4);
	for (int i = 0; i < 4; i++) {
		CHECK_INT(rows[i].tries, rows[i].id == idle ? 0 : 1);
		job_row_release(&rows[i]);
	}
	store_close(st);
}

TEST(test_recover_by_mutates)
{
	/* the recorded flag decides, not the operation's name: names chosen to contradict it */
	struct store *st = open_fresh("recover-mutates.db");
	struct job_new read = new_job("createSource", NULL, 0, 0);
	read.mutates = 0;
	struct job_new write = new_job("getSource", NULL, 0, 0);
	write.mutates = 1;
	int64_t ids[2] = {insert(st, &read, 1000), insert(st, &write, 1000)};
	struct job_row rows[2];
	CHECK_INT(store_claim_due(st, 1000, rows, 2), 2);
	for (int i = 0; i < 2; i++) {
		int64_t aid;
		CHECK_INT(store_attempt_begin(st, rows[i].id, 1, 1000, "GET /sources/s", &aid), 0);
		job_row_release(&rows[i]);
	}
	store_close(st);

	char *err = NULL;
	CHECK_INT(store_reopen_test(0, &st, &err), 0);
	CHECK_INT(store_recover(st, 5000), 2);
	static const char *const outcomes[2] = {"interrupted", "unknown"};
	for (int i = 0; i < 2; i++) {
		CHECK_INT(state_of(st, ids[i]), JS_QUEUED);
		cJSON *o = show(st, ids[i]);
		cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "attempts"), 0);
		CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "outcome")),
		          outcomes[i]);
		cJSON_Delete(o);
	}
	store_close(st);
}

TEST(test_children)
{
	struct store *st = open_fresh("children.db");
	struct job_new p = new_job("getEventsVolumeFromWorkspace", NULL, 0, 0);
	int64_t parent = insert(st, &p, 1000);
	int64_t kids[4];
	for (int i = 0; i < 4; i++) {
		struct job_new c = p;
		c.parent_id = parent;
		kids[i] = insert(st, &c, 1000 + i);
	}
	struct job_new orphan = p;
	orphan.parent_id = 777777; /* no such parent: refused by the foreign key */
	int64_t oid = 0;
	CHECK_INT(store_job_insert(st, &orphan, 1000, &oid), -1);

	struct child_counts cc;
	CHECK_INT(store_children_counts(st, parent, &cc), 0);
	CHECK_INT(cc.total, 4);
	CHECK_INT(cc.active, 4);
	CHECK_INT(store_job_end(st, kids[1], JS_FAILED, NULL, "x", 2000), 0);
	CHECK_INT(store_job_end(st, kids[2], JS_CANCELLED, NULL, "x", 2000), 0);
	CHECK_INT(store_job_end(st, kids[3], JS_DEAD, NULL, "x", 2000), 0);
	CHECK_INT(store_children_counts(st, parent, &cc), 0);
	CHECK_INT(cc.total, 4);
	CHECK_INT(cc.active, 1);
	CHECK_INT(cc.failed, 1);
	CHECK_INT(cc.cancelled, 1);
	CHECK_INT(cc.dead, 1);
	CHECK_INT(cc.succeeded, 0);
	int64_t *ids = NULL;
	size_t n = 0;
	CHECK_INT(store_children_ids(st, parent, &ids, &n), 0);
	CHECK_INT(n, 4);
	for (size_t i = 0; i < n && i < 4; i++)
		CHECK_INT(ids[i], kids[i]);
	free(ids);
	CHECK_INT(store_children_ids(st, kids[0], &ids, &n), 0);
	CHECK_INT(n, 0);
	free(ids);

	cJSON *o = show(st, parent);
	cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "children");
	CHECK(cJSON_IsObject(ch));
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(ch, "total")->valuedouble, 4);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(ch, "active")->valuedouble, 1);
	cJSON *jobs = cJSON_GetObjectItemCaseSensitive(ch, "jobs");
	CHECK_INT(cJSON_GetArraySize(jobs), 4);
	CHECK_STR(cJSON_GetStringValue(
	              cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(jobs, 1), "state")),
	          "failed");
	cJSON_Delete(o);
	o = show(st, kids[0]);
	CHECK(cJSON_GetObjectItemCaseSensitive(o, "children") == NULL);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(o, "parent")->valuedouble, parent);
	char want[64];
	snprintf(want, sizeof(want), "child of %lld", (long long)parent);
	CHECK_STR(transition_field(o, 0, "reason"), want);
	cJSON_Delete(o);
	store_close(st);
}

/* count_tally - counts the rows of a tally. */
static int count_tally(const char *name, int64_t n, void *arg)
{
	(void)name;
	(void)n;
	++*(int *)arg;
	return 0;
}

TEST(test_list_show_json)
{
	struct store *st = open_fresh("json.db");
	struct job_new j = new_job("listSources", "nightly-1", 3, 0);
	j.source_file = "batch.json";
	j.output_path = "sources.jsonl";
	int64_t a = insert(st, &j, 1764126000000LL); /* 2025-11-26T03:00:00Z */
	j.key = NULL;
	int64_t b = insert(st, &j, 1764126000500LL);
	CHECK_INT(store_job_end(st, b, JS_FAILED, "not json {", "x", 1764126001000LL), 0);

	cJSON *list = view_list(st, NULL, 0);
	CHECK(cJSON_IsArray(list));
	CHECK_INT(cJSON_GetArraySize(list), 2);
	cJSON *first = cJSON_GetArrayItem(list, 0);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(first, "id")->valuedouble, b); /* newest */
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "state")), "failed");
	cJSON *second = cJSON_GetArrayItem(list, 1);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(second, "key")),
	          "nightly-1");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(second, "op")),
	          "listSources");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(second, "created")),
	          "2025-11-26T03:00:00Z");
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(second, "priority")->valuedouble, 3);
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(second, "parent")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(first, "key")));
	cJSON_Delete(list);
	enum job_state queued = JS_QUEUED;
	list = view_list(st, &queued, 10);
	CHECK_INT(cJSON_GetArraySize(list), 1);
	cJSON_Delete(list);
	list = view_list(st, NULL, 1);
	CHECK_INT(cJSON_GetArraySize(list), 1);
	cJSON_Delete(list);

	cJSON *o = show(st, a);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "state")), "queued");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "workspace")),
	          "default");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "output")),
	          "sources.jsonl");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "next_run")),
	          "2025-11-26T03:00:00Z");
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "finished")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "total_entries")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "cursor")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "result")));
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(o, "max_attempts")->valuedouble, 5);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(o, "attempts_counted")->valuedouble, 0);
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
	CHECK(cJSON_IsObject(spec));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(spec, "op")),
	          "listSources");
	CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "transitions")));
	CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "attempts")));
	CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "pages")));
	CHECK_STR(transition_field(o, 0, "reason"), "ingested from batch.json");
	cJSON_Delete(o);
	/* an error that is not JSON is shown as the text it is */
	o = show(st, b);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "error")), "not json {");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "finished")),
	          "2025-11-26T03:00:01Z");
	cJSON_Delete(o);
	CHECK(view_show(st, 424242) == NULL);
	/* show's read snapshot is closed again: a write transaction can begin */
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_commit(st), 0);

	/* each job's reason is its last state change's (its creation's when none) */
	list = view_list(st, NULL, 0);
	CHECK_STR(cJSON_GetStringValue(
	              cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(list, 0), "reason")),
	          "x");
	CHECK_STR(cJSON_GetStringValue(
	              cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(list, 1), "reason")),
	          "ingested from batch.json");
	cJSON_Delete(list);
	/* the top reasons: of failed and dead jobs only, the most common first */
	int64_t more[4];
	for (int i = 0; i < 4; i++)
		more[i] = insert(st, &j, 1764126002000LL);
	CHECK_INT(store_job_end(st, more[0], JS_DEAD, NULL, "y", 1764126003000LL), 0);
	CHECK_INT(store_job_end(st, more[1], JS_FAILED, NULL, "y", 1764126003000LL), 0);
	CHECK_INT(store_job_end(st, more[2], JS_CANCELLED, NULL, "y", 1764126003000LL), 0);
	CHECK_INT(store_job_end(st, more[3], JS_FAILED, NULL, "x", 1764126003000LL), 0);
	CHECK_INT(store_job_retry(st, more[3], 1764126004000LL), 0); /* queued: not counted */
	o = view_stats(st);
	cJSON *top = cJSON_GetObjectItemCaseSensitive(o, "top_reasons");
	CHECK_INT(cJSON_GetArraySize(top), 2);
	CHECK_STR(cJSON_GetStringValue(
	              cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(top, 0), "reason")),
	          "y");
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(top, 0), "jobs")->valuedouble,
	          2);
	CHECK_STR(cJSON_GetStringValue(
	              cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(top, 1), "reason")),
	          "x");
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(top, 1), "jobs")->valuedouble,
	          1);
	cJSON_Delete(o);
	int ntop = 0;
	CHECK_INT(store_top_reasons_foreach(st, 1, count_tally, &ntop), 0);
	CHECK_INT(ntop, 1);
	store_close(st);
}

struct bucket_seen {
	int n;
	char keys[128];
	double tokens_sum;
	int64_t hold_sum;
};

static void collect_bucket(const char *key, double tokens, int64_t updated_ms,
                           int64_t hold_until_ms, void *arg)
{
	struct bucket_seen *b = arg;
	b->n++;
	strncat(b->keys, key, sizeof(b->keys) - strlen(b->keys) - 1);
	strncat(b->keys, ";", sizeof(b->keys) - strlen(b->keys) - 1);
	b->tokens_sum += tokens;
	b->hold_sum += hold_until_ms + updated_ms;
}

TEST(test_buckets)
{
	struct store *st = open_fresh("buckets.db");
	CHECK_INT(store_bucket_save(st, "ws:default", 12.5, 1000, 0), 0);
	CHECK_INT(store_bucket_save(st, "ep:createInvites", 0.25, 1000, 60000), 0);
	CHECK_INT(store_bucket_save(st, "ws:default", 3.5, 2000, 5000), 0); /* upsert */
	store_close(st);
	char *err = NULL;
	CHECK_INT(store_reopen_test(STORE_READONLY, &st, &err), 0);
	struct bucket_seen b = {0};
	CHECK_INT(store_bucket_foreach(st, collect_bucket, &b), 0);
	CHECK_INT(b.n, 2);
	CHECK_STR(b.keys, "ep:createInvites;ws:default;");
	CHECK(b.tokens_sum > 3.74 && b.tokens_sum < 3.76);
	CHECK_INT(b.hold_sum, 60000 + 1000 + 5000 + 2000);
	store_close(st);
}

TEST(test_readonly_while_writing)
{
	struct store *w = open_fresh("shared.db");
	struct job_new j = new_job("listSources", NULL, 0, 0);
	int64_t first = insert(w, &j, 1000);
	struct store *r = NULL;
	char *err = NULL;
	CHECK_INT(store_reopen_test(STORE_READONLY, &r, &err), 0);
	if (!r) {
		fprintf(stderr, "%s\n", err);
		free(err);
		store_close(w);
		return;
	}
	CHECK_INT(store_begin(w), 0);
	int64_t second = insert(w, &j, 1100);
	CHECK_INT(state_of(r, first), JS_QUEUED); /* reads while the writer holds the lock */
	CHECK_INT(state_of(r, second), -1);       /* and does not see uncommitted work */
	CHECK_INT(store_commit(w), 0);
	CHECK_INT(state_of(r, second), JS_QUEUED);
	CHECK_INT(store_count_active(r), 2);
	cJSON *o = view_show(r, first);
	CHECK(o != NULL);
	cJSON_Delete(o);
	/* the reader cannot write */
	CHECK(store_job_insert(r, &j, 1200, &second) == -1);
	CHECK(strstr(store_errmsg(r), "readonly database") != NULL);
	store_close(r);
	store_close(w);
}

TEST(test_group_commit_savepoint)
{
	struct store *st = open_fresh("group.db");
	struct job_new j = new_job("listSources", NULL, 0, 0);
	struct store_file_id fid = {.dev = 1, .ino = 2, .ctime_ns = 3, .size = 4};
	int64_t a1, a2, b1, c1;

	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_begin(st), -1); /* no nesting */
	CHECK_INT(store_savepoint(st), 0);
	j.source_file = "a.json";
	a1 = insert(st, &j, 1000);
	a2 = insert(st, &j, 1000);
	CHECK_INT(store_file_record(st, "a.json", "aaaa", &fid, 1000, 2, 0), 0);
	CHECK_INT(store_release(st), 0);

	CHECK_INT(store_savepoint(st), 0);
	j.source_file = "b.json";
	b1 = insert(st, &j, 1000);
	CHECK_INT(store_file_record(st, "b.json", "bbbb", &fid, 1000, 1, 0), 0);
	CHECK_INT(store_rollback_to(st), 0); /* b.json turned out bad */

	CHECK_INT(store_savepoint(st), 0);
	j.source_file = "c.json";
	c1 = insert(st, &j, 1000);
	/* a failing call inside the group leaves the rest of it alone */
	CHECK_INT(succeed(st, c1, 1000), -1);
	CHECK_INT(store_file_record(st, "c.json", "cccc", &fid, 1000, 1, 0), 0);
	CHECK_INT(store_release(st), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(store_commit(st), -1); /* nothing open */

	CHECK(a1 > 0 && a2 > 0 && b1 > 0 && c1 > 0);
	CHECK_INT(state_of(st, a1), JS_QUEUED);
	CHECK_INT(state_of(st, a2), JS_QUEUED);
	CHECK_INT(state_of(st, c1), JS_QUEUED);
	/* b1's id may be handed out again (to c1): what matters is that nothing of b is left */
	cJSON *o = show(st, c1);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "source_file")),
	          "c.json");
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "transitions")), 1);
	CHECK_STR(transition_field(o, 0, "reason"), "ingested from c.json");
	cJSON_Delete(o);
	CHECK_INT(store_file_seen(st, "a.json", "aaaa", &fid), STORE_FILE_SAME);
	CHECK_INT(store_file_seen(st, "a.json", "other", &fid), STORE_FILE_NEW);
	CHECK_INT(store_file_seen(st, "b.json", "bbbb", &fid), STORE_FILE_NEW);
	CHECK_INT(store_file_seen(st, "c.json", "cccc", &fid), STORE_FILE_SAME);
	CHECK_INT(store_count_active(st), 3);

	/* rollback of a whole group */
	CHECK_INT(store_begin(st), 0);
	insert(st, &j, 2000);
	CHECK_INT(store_rollback(st), 0);
	CHECK_INT(store_count_active(st), 3);
	CHECK_INT(store_savepoint(st), -1); /* only inside a transaction */
	store_close(st);
}

TEST(test_claim_inside_transaction)
{
	struct store *st = open_fresh("claimtx.db");
	struct job_new j = new_job("listSources", NULL, 0, 0);
	int64_t id = insert(st, &j, 1000);
	struct job_row row;
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_claim_due(st, 1000, &row, 1), 1);
	job_row_release(&row);
	CHECK_INT(store_rollback(st), 0); /* the claim was part of the caller's transaction */
	CHECK_INT(state_of(st, id), JS_QUEUED);
	store_close(st);
}

/* speed - printed, not asserted: bulk insert rate and claim time on a big queue. */
TEST(test_speed)
{
	struct store *st = open_fresh("speed.db");
	struct job_new j = new_job("listSources", NULL, 0, 0);
	const int total = 200000, timed = 50000;
	int64_t id, t0 = clock_mono_ms(), t1 = t0;
	int ok = 1;

	CHECK_INT(store_begin(st), 0);
	for (int i = 0; i < total && ok; i++) {
		/* every tenth job is urgent but parked far in the future (a rate-limit
		 * hold): the claim must seek past them, not read them */
		j.priority = i % 10 == 0 ? 5 : i % 3;
		j.not_before_ms = i % 10 == 0 ? 4000000000000LL : 0;
		ok = store_job_insert(st, &j, 1000 + i % 1000, &id) == STORE_INSERTED;
		if (i + 1 == timed)
			t1 = clock_mono_ms();
	}
	CHECK(ok);
	CHECK_INT(store_commit(st), 0);
	int64_t t2 = clock_mono_ms();
	printf("speed: %d inserts in one transaction: %lld ms (%.0f jobs/s); %d in %lld ms\n",
	       timed, (long long)(t1 - t0), timed * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1), total,
	       (long long)(t2 - t0));

	struct job_row *rows = xcalloc(1000, sizeof(*rows));
	int64_t c0 = clock_mono_ms();
	int n = store_claim_due(st, 10000, rows, 1000);
	int64_t c1 = clock_mono_ms();
	CHECK_INT(n, 1000);
	CHECK(n == 1000 && rows[0].priority == 2 && rows[999].priority == 2);
	for (int i = 0; i < n; i++)
		job_row_release(&rows[i]);
	free(rows);
	int64_t d0 = clock_mono_ms();
	int64_t due = store_next_due_ms(st);
	int64_t d1 = clock_mono_ms();
	CHECK_INT(due, 1001); /* 1000 went to a parked job (i = 0) */
	printf("speed: claim 1000 of a %d-job queue (%d parked ahead): %lld ms; "
	       "next due: %lld ms\n",
	       total, total / 10, (long long)(c1 - c0), (long long)(d1 - d0));
	store_close(st);
}
/* test_file_identity - "already ingested" holds for the very file recorded (name, hash
 * and identity), not for a later file of the same name and content, which is recorded
 * again (no unique (name, hash) to trip over). */
TEST(test_file_identity)
{
	struct store *st = open_fresh("ident.db");
	struct store_file_id first = {
	    .dev = 8, .ino = 100, .ctime_ns = 1700000000123456789LL, .size = 42};
	struct store_file_id later = first;
	later.ino = 101;
	CHECK_INT(store_file_seen(st, "nightly.json", "abcd", &first), STORE_FILE_NEW);
	CHECK_INT(store_file_record(st, "nightly.json", "abcd", &first, 1000, 1, 0), 0);
	CHECK_INT(store_file_seen(st, "nightly.json", "abcd", &first), STORE_FILE_SAME);
	CHECK_INT(store_file_seen(st, "nightly.json", "abcd", &later), STORE_FILE_NEW);
	/* the same inode, changed since (ctime, size): a rewritten file, not the one read */
	struct store_file_id touched = first;
	touched.ctime_ns++;
	CHECK_INT(store_file_seen(st, "nightly.json", "abcd", &touched), STORE_FILE_NEW);
	touched = first;
	touched.size++;
	CHECK_INT(store_file_seen(st, "nightly.json", "abcd", &touched), STORE_FILE_NEW);
	touched = first;
	touched.dev++;
	CHECK_INT(store_file_seen(st, "nightly.json", "abcd", &touched), STORE_FILE_NEW);
	CHECK_INT(store_file_seen(st, "other.json", "abcd", &first), STORE_FILE_NEW);
	CHECK_INT(store_file_record(st, "nightly.json", "abcd", &later, 2000, 1, 1), 0);
	CHECK_INT(store_file_seen(st, "nightly.json", "abcd", &later), STORE_FILE_SAME);
	CHECK_INT(store_file_seen(st, "nightly.json", "abcd", &first), STORE_FILE_SAME);
	/* adopting touches only rows without an identity: none here */
	struct store_file_id third = later;
	third.ino = 102;
	CHECK_INT(store_file_adopt(st, "nightly.json", "abcd", &third), 0);
	CHECK_INT(store_file_seen(st, "nightly.json", "abcd", &third), STORE_FILE_NEW);
	store_close(st);
}

/* test_output_conflict - unfinished jobs' explicit outputs: the same path, a directory of
 * it, or a path inside it; finished jobs and near-miss names do not count. */
TEST(test_output_conflict)
{
	struct store *st = open_fresh("outputs.db");
	struct job_new j = new_job("listSources", NULL, 0, 0);
	j.output_path = "d1/y.json";
	int64_t y = insert(st, &j, 1000);
	j.output_path = "exports/a.json";
	int64_t a = insert(st, &j, 1000);
	j.output_path = NULL;
	insert(st, &j, 1000);
	int64_t id = 0;
	char *other = NULL;
	CHECK_INT(store_output_conflict(st, "d1/y.json", &id, &other), 1);
	CHECK_INT(id, y);
	CHECK_STR(other, "d1/y.json");
	free(other);
	CHECK_INT(store_output_conflict(st, "d1", &id, &other), 1); /* d1 is y's directory */
	CHECK_INT(id, y);
	free(other);
	CHECK_INT(store_output_conflict(st, "d1/y.json/z", &id, &other), 1); /* inside y */
	CHECK_STR(other, "d1/y.json");
	free(other);
	static const char *const free_paths[] = {"d1/y.jso", "d1/y.json2",     "d",        "d1-x",
	                                         "d1.json",  "exports/b.json", "d2/y.json"};
	for (size_t i = 0; i < ARRAY_SIZE(free_paths); i++) {
		other = (char *)"unset";
		CHECK_INT(store_output_conflict(st, free_paths[i], &id, &other), 0);
		CHECK(other == NULL);
	}
	/* a running job holds its output; a finished one frees it */
	claim_one(st, y, 1100);
	CHECK_INT(store_output_conflict(st, "d1", &id, &other), 1);
	free(other);
	struct job_success ok = {.result_json = "{}"};
	CHECK_INT(store_job_succeed(st, y, &ok, 1200), 0);
	CHECK_INT(store_output_conflict(st, "d1/y.json", &id, &other), 0);
	CHECK_INT(store_output_conflict(st, "d1", &id, &other), 0);
	/* a waiting one holds it */
	claim_one(st, a, 1300);
	CHECK_INT(store_job_wait(st, a, 5000, 1, JW_BACKOFF, "retry", 1400), 0);
	CHECK_INT(store_output_conflict(st, "exports", &id, &other), 1);
	CHECK_INT(id, a);
	free(other);
	CHECK_INT(store_key_recorded(st, "k-out"), 0);
	j.key = "k-out";
	insert(st, &j, 1500);
	CHECK_INT(store_key_recorded(st, "k-out"), 1);
	store_close(st);
}

/* --- results files (issue 13) ---------------------------------------------------------- */

struct file_seen {
	int64_t id, remaining;
	char results[64];
	int n;
};

static int note_file(const struct file_rec *f, void *arg)
{
	struct file_seen *fs = arg;
	fs->id = f->id;
	fs->remaining = f->remaining;
	snprintf(fs->results, sizeof(fs->results), "%s", f->results ? f->results : "");
	fs->n++;
	return 0;
}

/* due_files - how many files store_files_results_due lists (their last in *fs). */
static int due_files(struct store *st, struct file_seen *fs)
{
	memset(fs, 0, sizeof(*fs));
	CHECK_INT(store_files_results_due(st, note_file, fs), 0);
	return fs->n;
}

struct lines_seen {
	struct strbuf text;
};

static int note_line(const struct result_rec *r, void *arg)
{
	struct lines_seen *ls = arg;
	sb_addf(&ls->text, "%lld:%lld:%s:%s:%s%s;", (long long)r->line, (long long)r->id,
	        r->key ? r->key : "-", job_state_name(r->state),
	        r->state == JS_SUCCEEDED ? (r->result_json ? r->result_json : "null")
	                                 : (r->error_json ? r->error_json : "null"),
	        r->duplicate ? ":dup" : "");
	return 0;
}

static int note_summary(const struct job_summary *j, void *arg)
{
	sb_addf(arg, "%lld,", (long long)j->id);
	return 0;
}

/* test_results_file - a file's jobs not yet ended are counted as their states change
 * (a retry before the results file is named counts again), the file is due when none is
 * left, its lines stream in the file's order with a duplicate line naming the key's job,
 * and once named nothing moves it any more. */
TEST(test_results_file)
{
	struct store *st = open_fresh("results.db");
	struct store_file_id fid = {.dev = 1, .ino = 2, .ctime_ns = 3, .size = 4};
	struct job_new j = new_job("createSource", "old", 0, 0);
	int64_t old = insert(st, &j, 900);
	claim_one(st, old, 950);
	struct job_success ok = {.result_json = "{\"old\":1}"};
	CHECK_INT(store_job_succeed(st, old, &ok, 960), 0);

	const char *name = "1764633600000-0001234-000001-batch.jsonl"; /* as submit names it */
	int64_t file = 0, dup = 0;
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_savepoint(st), 0);
	CHECK_INT(store_file_begin(st, name, "hash", &fid, 1000, 3, 1, &file), 0);
	CHECK(file > 0);
	j = new_job("createSource", "a", 0, 0);
	j.file_id = file;
	j.line = 1;
	int64_t a = insert(st, &j, 1000);
	j.key = "old"; /* line 3: recorded already, by old */
	CHECK_INT(store_job_insert(st, &j, 1000, &dup), STORE_DUPLICATE);
	CHECK_INT(dup, old);
	CHECK_INT(store_file_dup(st, file, 3, dup), 0);
	j.key = "b";
	j.line = 4;
	int64_t b = insert(st, &j, 1000);
	CHECK_INT(store_file_jobs(st, file, a, b, 3), 0);
	CHECK_INT(store_release(st), 0);
	CHECK_INT(store_commit(st), 0);

	struct file_seen fs;
	CHECK_INT(due_files(st, &fs), 0);
	claim_one(st, a, 1100);
	ok.result_json = "{\"a\":1}";
	CHECK_INT(store_job_succeed(st, a, &ok, 1200), 0);
	CHECK_INT(due_files(st, &fs), 0); /* b has not ended */
	claim_one(st, b, 1300);
	CHECK_INT(store_job_end(st, b, JS_FAILED, "{\"e\":1}", "no", 1400), 0);
	CHECK_INT(due_files(st, &fs), 1);
	CHECK_INT(fs.id, file);
	CHECK_INT(fs.remaining, 0);
	/* retried before its file's results are named: waited for again */
	CHECK_INT(store_job_retry(st, b, 1500), 0);
	CHECK_INT(due_files(st, &fs), 0);
	claim_one(st, b, 1600);
	ok.result_json = "{\"b\":1}";
	CHECK_INT(store_job_succeed(st, b, &ok, 1700), 0);
	CHECK_INT(due_files(st, &fs), 1);

	struct lines_seen ls = {STRBUF_INIT};
	CHECK_INT(store_file_results_foreach(st, file, note_line, &ls), 0);
	struct strbuf want = STRBUF_INIT;
	sb_addf(&want,
	        "1:%lld:a:succeeded:{\"a\":1};3:%lld:old:succeeded:{\"old\":1}:dup;"
	        "4:%lld:b:succeeded:{\"b\":1};",
	        (long long)a, (long long)old, (long long)b);
	CHECK_STR(ls.text.buf, want.buf);

	CHECK_INT(store_results_name_taken(st, "results/batch.results.jsonl"), 0);
	CHECK_INT(store_file_results_set(st, file, "results/batch.results.jsonl"), 0);
	CHECK_INT(store_results_name_taken(st, "results/batch.results.jsonl"), 1);
	CHECK_INT(due_files(st, &fs), 0);
	memset(&fs, 0, sizeof(fs));
	CHECK_INT(store_files_results_pending(st, note_file, &fs), 0);
	CHECK_INT(fs.n, 1);
	CHECK_STR(fs.results, "results/batch.results.jsonl");
	/* named: a later retry and end leave the count (and so the file) alone */
	CHECK_INT(store_job_cancel(st, b, 1800), 1); /* succeeded: not cancellable */
	CHECK_INT(store_job_end(st, a, JS_FAILED, NULL, "x", 1800), -1);
	CHECK_INT(store_file_results_done(st, file), 0);
	memset(&fs, 0, sizeof(fs));
	CHECK_INT(store_files_results_pending(st, note_file, &fs), 0);
	CHECK_INT(fs.n, 0);

	/* found by the name the user gave, its jobs in the file's order, and each job's file */
	memset(&fs, 0, sizeof(fs));
	CHECK_INT(store_files_named(st, "batch.jsonl", note_file, &fs), 0);
	CHECK_INT(fs.n, 1);
	CHECK_INT(fs.id, file);
	memset(&fs, 0, sizeof(fs));
	CHECK_INT(store_files_named(st, name, note_file, &fs), 0);
	CHECK_INT(fs.n, 1);
	struct strbuf ids = STRBUF_INIT;
	CHECK_INT(store_list_file(st, file, 0, note_summary, &ids), 0);
	sb_reset(&want);
	sb_addf(&want, "%lld,%lld,", (long long)a, (long long)b);
	CHECK_STR(ids.buf, want.buf);
	memset(&fs, 0, sizeof(fs));
	CHECK_INT(store_file_of_job(st, b, note_file, &fs), 0);
	CHECK_INT(fs.id, file);
	CHECK_INT(store_file_of_job(st, old, note_file, &fs), 1); /* inserted without a file */

	/* a file without a results file (one job) is never due */
	int64_t single = 0;
	CHECK_INT(store_file_begin(st, "one.json", "h1", &fid, 2000, 1, 0, &single), 0);
	j = new_job("createSource", NULL, 0, 0);
	j.file_id = single;
	j.line = 1;
	int64_t c1 = insert(st, &j, 2000);
	claim_one(st, c1, 2100);
	CHECK_INT(succeed(st, c1, 2200), 0);
	CHECK_INT(due_files(st, &fs), 0);
	sb_release(&ls.text);
	sb_release(&want);
	sb_release(&ids);
	store_close(st);
}

/* remaining_of - the count of not yet ended jobs of job's file, as st sees it (inside
 * its open transaction, if any). */
static int64_t remaining_of(struct store *st, int64_t job)
{
	struct file_seen fs;
	memset(&fs, 0, sizeof(fs));
	CHECK_INT(store_file_of_job(st, job, note_file, &fs), 0);
	return fs.remaining;
}

/* remaining_committed - the same count as a second, read-only store sees it: what is
 * committed. */
static int64_t remaining_committed(int64_t job)
{
	struct store *ro = NULL;
	char *err = NULL;
	int64_t n = -1;
	CHECK_INT(store_reopen_test(STORE_READONLY, &ro, &err), 0);
	if (ro)
		n = remaining_of(ro, job);
	free(err);
	store_close(ro);
	return n;
}

/* test_results_count_rollback - a file's count of jobs not ended follows the states
 * that are committed: a job's end undone by a savepoint's rollback or the transaction's
 * is not counted (whether or not the count was read in between), a retry after the end
 * counts the job again, and the count is committed with the state changes. */
TEST(test_results_count_rollback)
{
	struct store *st = open_fresh("results_count.db");
	struct store_file_id fid = {.dev = 1, .ino = 2, .ctime_ns = 3, .size = 4};
	int64_t file = 0, id[3];
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_savepoint(st), 0);
	CHECK_INT(store_file_begin(st, "three.jsonl", "h3", &fid, 1000, 3, 1, &file), 0);
	for (int i = 0; i < 3; i++) {
		struct job_new j = new_job("createSource", NULL, 0, 0);
		j.file_id = file;
		j.line = i + 1;
		id[i] = insert(st, &j, 1000 + i);
	}
	CHECK_INT(store_file_jobs(st, file, id[0], id[2], 3), 0);
	CHECK_INT(store_release(st), 0);
	CHECK_INT(store_commit(st), 0);
	struct job_row rows[3];
	CHECK_INT(store_claim_due(st, 1100, rows, 3), 3);
	for (int i = 0; i < 3; i++)
		job_row_release(&rows[i]);
	CHECK_INT(remaining_committed(id[0]), 3);

	/* one batch: the first job's end kept, the third's and the second's rolled back to
	 * their savepoints (the count read in between for the second, not for the third) */
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(succeed(st, id[0], 1200), 0);
	CHECK_INT(store_savepoint(st), 0);
	CHECK_INT(store_job_end(st, id[2], JS_FAILED, "{}", "no", 1210), 0);
	CHECK_INT(store_rollback_to(st), 0);
	CHECK_INT(remaining_of(st, id[0]), 2);
	CHECK_INT(store_savepoint(st), 0);
	CHECK_INT(succeed(st, id[1], 1220), 0);
	CHECK_INT(remaining_of(st, id[0]), 1);
	CHECK_INT(store_rollback_to(st), 0);
	CHECK_INT(state_of(st, id[1]), JS_RUNNING);
	CHECK_INT(remaining_of(st, id[0]), 2);
	CHECK_INT(remaining_committed(id[0]), 3); /* nothing of the batch yet */
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(state_of(st, id[2]), JS_RUNNING);
	CHECK_INT(remaining_committed(id[0]), 2);

	/* a batch rolled back whole counts nothing */
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(succeed(st, id[1], 1300), 0);
	CHECK_INT(store_rollback(st), 0);
	CHECK_INT(state_of(st, id[1]), JS_RUNNING);
	CHECK_INT(remaining_of(st, id[0]), 2);

	/* an end and its retry, each in its own transaction, then both in one batch */
	CHECK_INT(store_job_end(st, id[2], JS_FAILED, "{}", "no", 1400), 0);
	CHECK_INT(remaining_committed(id[0]), 1);
	CHECK_INT(store_job_retry(st, id[2], 1500), 0);
	CHECK_INT(remaining_committed(id[0]), 2);
	CHECK_INT(store_begin(st), 0);
	claim_one(st, id[2], 1600);
	CHECK_INT(store_job_end(st, id[2], JS_DEAD, "{}", "tired", 1700), 0);
	CHECK_INT(store_job_retry(st, id[2], 1800), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(remaining_committed(id[0]), 2);

	/* the last two end in one batch: due, with the count 0 committed */
	struct file_seen fs;
	CHECK_INT(due_files(st, &fs), 0);
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(succeed(st, id[1], 1900), 0);
	claim_one(st, id[2], 1900);
	CHECK_INT(succeed(st, id[2], 2000), 0);
	CHECK_INT(due_files(st, &fs), 1);
	CHECK_INT(fs.id, file);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(remaining_committed(id[0]), 0);

	/* a job claimed in a batch rolled back is gone with it: a job inserted after (the
	 * same rowid, in SQLite) and ended unclaimed counts for its own file */
	int64_t other = 0, gone, again;
	struct store_file_id fid2 = {.dev = 1, .ino = 5, .ctime_ns = 3, .size = 4};
	CHECK_INT(store_begin(st), 0);
	struct job_new j = new_job("createSource", NULL, 0, 0);
	j.file_id = file;
	j.line = 4;
	gone = insert(st, &j, 2100);
	claim_one(st, gone, 2100);
	CHECK_INT(store_rollback(st), 0);
	CHECK_INT(store_file_begin(st, "two.jsonl", "h2", &fid2, 2200, 2, 1, &other), 0);
	j.file_id = other;
	j.line = 1;
	again = insert(st, &j, 2200);
	CHECK_INT(store_file_jobs(st, other, again, again, 1), 0);
	CHECK_INT(store_job_end(st, again, JS_CANCELLED, NULL, "not wanted", 2300), 0);
	CHECK_INT(remaining_committed(again), 0);
	CHECK_INT(remaining_committed(id[0]), 0);
	store_close(st);
}

/* last_reason - the reason of a job's latest transition, copied into buf. */
static const char *last_reason(struct store *st, int64_t id, char *buf, size_t size)
{
	cJSON *o = show(st, id);
	const char *r = o ? transition_field(o, -1, "reason") : NULL;
	snprintf(buf, size, "%s", r ? r : "(none)");
	cJSON_Delete(o);
	return buf;
}

/* due_count - how many jobs a claim at now finds (claimed, then put back to wait). */
static int due_count(struct store *st, int64_t now)
{
	struct job_row rows[8];
	int n = store_claim_due(st, now, rows, 8);
	for (int i = 0; i < n; i++) {
		CHECK_INT(store_job_wait(st, rows[i].id, now, 0, JW_BACKOFF, "put back", now), 0);
		job_row_release(&rows[i]);
	}
	return n;
}

TEST(test_dependencies)
{
	struct store *st = open_fresh("deps.db");
	struct job_new j = new_job("getSource", NULL, 0, 0);
	char buf[256];
	j.key = "a";
	int64_t a = insert(st, &j, 1000);
	j.key = "b";
	int64_t b = insert(st, &j, 1000);
	j.key = "c";
	int64_t c = insert(st, &j, 1000);
	j.key = "d";
	int64_t d = insert(st, &j, 1000);
	int64_t id = 0;
	CHECK_INT(store_job_id_by_key(st, "c", &id), 1);
	CHECK_INT(id, c);
	CHECK_INT(store_job_id_by_key(st, "zz", &id), 0);
	/* c waits for a and b, d for c: parked, not due, not counted as token waiters */
	int64_t ab[] = {a, b}, cc[] = {c};
	CHECK_INT(store_deps_add(st, c, ab, 2, 1000), 0);
	CHECK_INT(store_deps_add(st, d, cc, 1, 1000), 0);
	CHECK_INT(state_of(st, c), JS_WAITING);
	CHECK_STR(last_reason(st, c, buf, sizeof(buf)), "waiting for 2 dependencies: a, b");
	CHECK_INT(store_count_waiting_for(st, JW_DEPS), 2);
	CHECK_INT(store_count_waiting_for(st, JW_TOKEN), 0);
	CHECK_INT(store_wake_waiters(st, JW_DEPS, 2000), 0);
	CHECK_INT(store_count_active(st), 4);
	CHECK_INT(due_count(st, 5000), 2);                             /* a and b only */
	CHECK_INT(store_deps_add(st, a, (int64_t[]){a}, 1, 1000), -1); /* itself */
	/* a succeeds: c still waits for b; b succeeds: c is due, d still waits */
	claim_one(st, a, 6000);
	CHECK_INT(succeed(st, a, 6000), 0);
	CHECK_INT(due_count(st, 7000), 1);
	CHECK(store_next_due_ms(st) < 100000); /* b's; the parked ones are not */
	claim_one(st, b, 7000);
	CHECK_INT(succeed(st, b, 7000), 0);
	struct job_row row;
	CHECK_INT(store_get(st, c, &row), 0);
	CHECK_INT(row.state, JS_WAITING);
	CHECK_INT(row.next_run_ms, 7000);
	job_row_release(&row);
	CHECK_INT(store_count_waiting_for(st, JW_DEPS), 1); /* d: c is due now */
	CHECK_INT(state_of(st, d), JS_WAITING);
	/* c fails: d fails with it, and a job added later waiting for c fails at once */
	claim_one(st, c, 8000);
	CHECK_INT(store_job_end(st, c, JS_FAILED, NULL, "not found", 8000), 0);
	CHECK_INT(state_of(st, d), JS_FAILED);
	CHECK_STR(last_reason(st, d, buf, sizeof(buf)), "dependency c failed");
	j.key = "e";
	int64_t e = insert(st, &j, 8000);
	CHECK_INT(store_deps_add(st, e, (int64_t[]){d}, 1, 8000), 0);
	CHECK_INT(state_of(st, e), JS_FAILED);
	CHECK_STR(last_reason(st, e, buf, sizeof(buf)), "dependency d failed");
	char *key = NULL;
	CHECK_INT(store_dep_failed(st, e, &key), 1);
	CHECK_STR(key, "d");
	free(key);
	CHECK_INT(store_dep_failed(st, c, &key), 0);
	/* c retried: d and e wait again (c counted), reported as revived */
	CHECK_INT(store_job_retry(st, c, 9000), 0);
	int64_t *ids = NULL;
	size_t n = 0;
	CHECK_INT(store_deps_revive(st, c, 9000, &ids, &n), 0);
	CHECK_INT(n, 2);
	if (n == 2)
		CHECK(ids[0] == d && ids[1] == e);
	free(ids);
	CHECK_INT(state_of(st, c), JS_QUEUED);
	CHECK_INT(state_of(st, d), JS_WAITING);
	CHECK_INT(state_of(st, e), JS_WAITING);
	CHECK_INT(due_count(st, 10000), 1);
	/* c succeeds, its output then lost in the same transaction: d waits for it again and
	 * fails with it; the result kept */
	claim_one(st, c, 11000);
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(succeed(st, c, 11000), 0);
	CHECK_INT(store_job_output_lost(st, c, NULL, "output lost", 11000), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(state_of(st, d), JS_FAILED);
	CHECK_INT(state_of(st, e), JS_FAILED);
	/* a retried job whose dependency has not succeeded waits, it does not run */
	CHECK_INT(store_job_retry(st, c, 12000), 0);
	CHECK_INT(store_deps_revive(st, c, 12000, &ids, &n), 0);
	free(ids);
	CHECK_INT(store_job_cancel(st, d, 12000), 0); /* e fails with it */
	CHECK_INT(state_of(st, e), JS_FAILED);
	CHECK_INT(store_job_retry(st, d, 13000), 0);
	CHECK_INT(state_of(st, d), JS_WAITING);
	CHECK_STR(last_reason(st, d, buf, sizeof(buf)), "waiting for 1 dependency");
	/* c succeeds: d is due; a result by key for the references */
	claim_one(st, c, 14000);
	CHECK_INT(succeed(st, c, 14000), 0);
	CHECK_INT(store_get(st, d, &row), 0);
	CHECK_INT(row.next_run_ms, 14000);
	job_row_release(&row);
	enum job_state state;
	char *result = NULL;
	CHECK_INT(store_key_result(st, "c", &id, &state, &result), 0);
	CHECK(id == c && state == JS_SUCCEEDED && result && !strcmp(result, "{}"));
	free(result);
	CHECK_INT(store_key_result(st, "zz", &id, &state, &result), 1);
	store_close(st);
}

int main(void)
{
	log_set_level(LOG_WARN);
	fixture_begin("test_store");
	RUN(test_state_names);
	RUN(test_insert_duplicate);
	RUN(test_claim_order);
	RUN(test_transitions);
	RUN(test_success_history);
	RUN(test_disallowed);
	RUN(test_wake_waiters);
	RUN(test_cancel);
	RUN(test_retry);
	RUN(test_attempts);
	RUN(test_pages_resume);
	RUN(test_page_cursor_seen);
	RUN(test_recover);
	RUN(test_recover_by_mutates);
	RUN(test_children);
	RUN(test_list_show_json);
	RUN(test_buckets);
	RUN(test_readonly_while_writing);
	RUN(test_group_commit_savepoint);
	RUN(test_claim_inside_transaction);
	RUN(test_file_identity);
	RUN(test_dependencies);
	RUN(test_output_conflict);
	RUN(test_results_file);
	RUN(test_results_count_rollback);
	RUN(test_speed);

	fixture_end();
	return tl_finish();
}
