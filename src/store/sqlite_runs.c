/* sqlite_runs.c - what a run leaves beside its job: pages and their cursors, recovery
 * after a crash, a fan-out's children, retry and cancel, the rate-limit buckets. */
#include "sqlite_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_vfs.h"
#include "util.h"

/* --- pages ----------------------------------------------------------------------------- */

/* advance_cursor - the job's resume point moves past the page just stored. */
static int advance_cursor(struct store *st, int64_t job_id, int page_no, const char *next_cursor,
                          int64_t nitems, int64_t total_entries, int64_t now_ms)
{
	sqlite3_stmt *s = sq_prep(st, S_PAGE_ADVANCE);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, job_id);
	sq_bind_text(s, 2, next_cursor);
	sqlite3_bind_int(s, 3, page_no);
	sqlite3_bind_int64(s, 4, nitems);
	sq_bind_int64_or_null(s, 5, total_entries < 0 ? -1 : total_entries, -1);
	sqlite3_bind_int64(s, 6, now_ms);
	return sq_run(st, s, "advance a job's cursor");
}

/* store_page_record - a fetched page and the job's new resume point, together: after a
 * crash the job's cursor is the page to fetch next, never one already stored. */
int store_page_record(struct store *st, int64_t job_id, int page_no, const char *cursor,
                      const char *next_cursor, const char *items_json, int64_t nitems,
                      int64_t total_entries, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_PAGE_INSERT);
	if (s) {
		sqlite3_bind_int64(s, 1, job_id);
		sqlite3_bind_int(s, 2, page_no);
		sq_bind_text(s, 3, cursor);
		sq_bind_text(s, 4, next_cursor);
		sq_bind_text(s, 5, items_json ? items_json : "[]");
		sqlite3_bind_int64(s, 6, nitems);
		sq_bind_int64_or_null(s, 7, total_entries < 0 ? -1 : total_entries, -1);
		sqlite3_bind_int64(s, 8, now_ms);
		rc = sq_run(st, s, "record a page");
		if (rc == 0)
			rc = advance_cursor(st, job_id, page_no, next_cursor, nitems, total_entries,
			                    now_ms);
	}
	return sq_op_end(st, how, rc);
}

/* store_pages_foreach - the job's pages in order. fn must not call this function again
 * (its statement is in use). */
int store_pages_foreach(struct store *st, int64_t job_id, store_page_fn fn, void *arg)
{
	sqlite3_stmt *s = sq_prep(st, S_PAGES_OF);
	int rc, stop = 0;
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, job_id);
	while (!stop && (rc = sq_step(st, s, "read pages")) == SQLITE_ROW)
		stop = fn(sqlite3_column_int(s, 0), (const char *)sqlite3_column_text(s, 1), arg);
	sq_done(s);
	return !stop && rc < 0 ? -1 : 0;
}

/* store_page_cursor_seen - the first of the job's pages fetched with cursor, or 0. */
int store_page_cursor_seen(struct store *st, int64_t job_id, const char *cursor)
{
	sqlite3_stmt *s = sq_prep(st, S_PAGE_CURSOR_SEEN);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, job_id);
	sq_bind_text(s, 2, cursor);
	int rc = sq_step(st, s, "look up a page's cursor");
	int page = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
	sq_done(s);
	return rc < 0 ? -1 : page;
}

/* --- recovery ------------------------------------------------------------------------------ */

/* op_is_read - the guess for a job recorded before 007_job_mutates.sql, whose mutates is
 * NULL: get* and list* operations, and raw requests with method GET, are reads. Only
 * those old rows use it; a job inserted since carries the decision made from its method. */
static int op_is_read(const char *op_id, const char *spec_json)
{
	if (!op_id)
		return 0;
	if (strncmp(op_id, "get", 3) == 0 || strncmp(op_id, "list", 4) == 0)
		return 1;
	if (strcmp(op_id, "raw") != 0 || !spec_json)
		return 0;
	cJSON *spec = cJSON_Parse(spec_json);
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(spec, "params");
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(params, "method");
	int read = cJSON_IsString(method) && strcasecmp(method->valuestring, "GET") == 0;
	cJSON_Delete(spec);
	return read;
}

struct open_attempt {
	int64_t id;
	int read;
};

/* collect_open_attempts - attempts a crash left without an outcome. */
static int collect_open_attempts(struct store *st, struct open_attempt **out, size_t *n)
{
	sqlite3_stmt *s = sq_prep(st, S_OPEN_ATTEMPTS);
	size_t alloc = 0;
	int rc;
	*out = NULL;
	*n = 0;
	if (!s)
		return -1;
	while ((rc = sq_step(st, s, "find unfinished attempts")) == SQLITE_ROW) {
		if (*n == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			*out = xrealloc(*out, alloc * sizeof(**out));
		}
		(*out)[*n].id = sqlite3_column_int64(s, 0);
		if (sqlite3_column_type(s, 3) != SQLITE_NULL)
			(*out)[*n].read = sqlite3_column_int(s, 3) == 0;
		else /* a job from before 007: its method was not recorded */
			(*out)[*n].read = op_is_read((const char *)sqlite3_column_text(s, 1),
			                             (const char *)sqlite3_column_text(s, 2));
		(*n)++;
	}
	sq_done(s);
	return rc < 0 ? -1 : 0;
}

/* close_open_attempts - "interrupted" for reads (safe to repeat), "unknown" for
 * mutations (the server may have applied them). */
static int close_open_attempts(struct store *st)
{
	struct open_attempt *open;
	size_t n;
	int rc = collect_open_attempts(st, &open, &n);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		sqlite3_stmt *s = sq_prep(st, S_ATTEMPT_CLOSE);
		if (!s) {
			rc = -1;
			break;
		}
		sqlite3_bind_int64(s, 1, open[i].id);
		sq_bind_text(s, 2, open[i].read ? "interrupted" : "unknown");
		rc = sq_run(st, s, "close an unfinished attempt");
	}
	free(open);
	return rc;
}

/* collect_ids - the ids a statement (bound by the caller) returns; caller frees *ids. */
static int collect_ids(struct store *st, sqlite3_stmt *s, int64_t **ids, size_t *n)
{
	size_t alloc = 0;
	int rc;
	*ids = NULL;
	*n = 0;
	while ((rc = sq_step(st, s, "list jobs")) == SQLITE_ROW) {
		if (*n == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			*ids = xrealloc(*ids, alloc * sizeof(**ids));
		}
		(*ids)[(*n)++] = sqlite3_column_int64(s, 0);
	}
	sq_done(s);
	if (rc < 0) {
		free(*ids);
		*ids = NULL;
		*n = 0;
		return -1;
	}
	return 0;
}

/* requeue_running - every running job back to queued; returns how many, or -1. */
static int requeue_running(struct store *st, int64_t now_ms)
{
	int64_t *ids;
	size_t n;
	sqlite3_stmt *s = sq_prep(st, S_RUNNING_IDS);
	if (!s)
		return -1;
	if (collect_ids(st, s, &ids, &n) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		sqlite3_stmt *upd = sq_prep(st, S_JOB_REQUEUE);
		rc = upd ? sq_strict(sq_change_state(st, ids[i], BIT(JS_RUNNING), JS_QUEUED, upd,
		                                     "requeue", "daemon restarted; was running",
		                                     now_ms))
		         : -1;
	}
	free(ids);
	return rc < 0 ? -1 : (int)n;
}

/* store_recover - after a crash: running jobs requeued, open attempts closed. */
int store_recover(struct store *st, int64_t now_ms)
{
	enum op_wrap how;
	int rc;
	if (sq_op_begin_atomic(st, &how) < 0)
		return -1;
	/* attempts first: they are found through their jobs, which are still running */
	rc = close_open_attempts(st) < 0 ? -1 : requeue_running(st, now_ms);
	return sq_op_end(st, how, rc);
}

/* --- parents and children ------------------------------------------------------------------ */

/* store_children_counts - a fan-out parent's children by state. */
int store_children_counts(struct store *st, int64_t parent_id, struct child_counts *out)
{
	sqlite3_stmt *s = sq_prep(st, S_CHILD_COUNTS);
	int rc;
	memset(out, 0, sizeof(*out));
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, parent_id);
	while ((rc = sq_step(st, s, "count child jobs")) == SQLITE_ROW) {
		enum job_state state = (enum job_state)sqlite3_column_int(s, 0);
		int n = sqlite3_column_int(s, 1);
		out->total += n;
		if (state == JS_SUCCEEDED)
			out->succeeded += n;
		else if (state == JS_FAILED)
			out->failed += n;
		else if (state == JS_DEAD)
			out->dead += n;
		else if (state == JS_CANCELLED)
			out->cancelled += n;
		else
			out->active += n;
	}
	sq_done(s);
	return rc < 0 ? -1 : 0;
}

/* store_children_ids - a parent's children, oldest first. */
int store_children_ids(struct store *st, int64_t parent_id, int64_t **ids, size_t *n)
{
	sqlite3_stmt *s = sq_prep(st, S_CHILD_IDS);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, parent_id);
	return collect_ids(st, s, ids, n);
}

/* --- control ------------------------------------------------------------------------------- */

/* store_job_retry - failed|dead|cancelled -> queued, due now, attempts reset. The
 * cursor is kept: a paginated job resumes after its last stored page. */
int store_job_retry(struct store *st, int64_t id, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_JOB_RETRY);
	if (s)
		rc = sq_change_state(st, id, BIT(JS_FAILED) | BIT(JS_DEAD) | BIT(JS_CANCELLED),
		                     JS_QUEUED, s, "retry", "retry requested", now_ms);
	if (rc == 0)
		rc = sq_deps_requeued(st, id, now_ms);
	return sq_op_end(st, how, rc);
}

/* request_cancel - a running job is only flagged: the daemon aborts its request and
 * ends it cancelled itself. */
static int request_cancel(struct store *st, int64_t id, int64_t now_ms)
{
	sqlite3_stmt *s = sq_prep(st, S_JOB_CANCEL_REQUEST);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, now_ms);
	return sq_run(st, s, "request a cancel") < 0 ? -1 : 2;
}

/* store_job_cancel - 0 cancelled, 1 not allowed (succeeded or already cancelled),
 * 2 running (flagged, the caller aborts it), -1 error or no such job. */
int store_job_cancel(struct store *st, int64_t id, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	enum job_state state = JS_QUEUED;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	int found = sq_job_state_get(st, id, &state);
	if (found > 0)
		sq_set_err(st, "cannot cancel job %" PRId64 ": no such job", id);
	if (found != 0)
		return sq_op_end(st, how, -1);
	if (state == JS_RUNNING) {
		rc = request_cancel(st, id, now_ms);
	} else {
		sqlite3_stmt *s = sq_prep(st, S_JOB_CANCEL);
		if (s)
			rc = sq_change_state(st, id,
			                     BIT(JS_QUEUED) | BIT(JS_WAITING) | BIT(JS_FAILED) |
			                         BIT(JS_DEAD),
			                     JS_CANCELLED, s, "cancel", "cancel requested", now_ms);
	}
	if (rc == 0)
		rc = sq_deps_ended(st, id, now_ms);
	return sq_op_end(st, how, rc);
}

/* store_ids_in_state - ids of the jobs in a state, oldest first. */
int store_ids_in_state(struct store *st, enum job_state state, int64_t **ids, size_t *n)
{
	sqlite3_stmt *s = sq_prep(st, S_IDS_IN_STATE);
	if (!s)
		return -1;
	sqlite3_bind_int(s, 1, (int)state);
	return collect_ids(st, s, ids, n);
}

/* --- buckets --------------------------------------------------------------------------------- */

/* store_bucket_save - a rate-limit bucket's state, inserted or replaced. */
int store_bucket_save(struct store *st, const char *key, double tokens, int64_t updated_ms,
                      int64_t hold_until_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_BUCKET_SAVE);
	if (s) {
		sq_bind_text(s, 1, key);
		sqlite3_bind_double(s, 2, tokens);
		sqlite3_bind_int64(s, 3, updated_ms);
		sqlite3_bind_int64(s, 4, hold_until_ms);
		rc = sq_run(st, s, "save a rate-limit bucket");
	}
	return sq_op_end(st, how, rc);
}

/* store_bucket_foreach - every saved bucket, by key. */
int store_bucket_foreach(struct store *st, store_bucket_fn fn, void *arg)
{
	sqlite3_stmt *s = sq_prep(st, S_BUCKETS);
	int rc;
	if (!s)
		return -1;
	while ((rc = sq_step(st, s, "read rate-limit buckets")) == SQLITE_ROW)
		fn((const char *)sqlite3_column_text(s, 0), sqlite3_column_double(s, 1),
		   sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3), arg);
	sq_done(s);
	return rc < 0 ? -1 : 0;
}

/* store_children_progress - a fan-out parent's children, their pages and items summed. */
int store_children_progress(struct store *st, int64_t parent_id, int64_t *children, int64_t *pages,
                            int64_t *items)
{
	sqlite3_stmt *s = sq_prep(st, S_WATCH_CHILDREN_PROGRESS);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, parent_id);
	int rc = sq_step(st, s, "sum the children's pages");
	if (rc == SQLITE_ROW) {
		*children = sqlite3_column_int64(s, 0);
		*pages = sqlite3_column_int64(s, 1);
		*items = sqlite3_column_int64(s, 2);
	}
	sq_done(s);
	return rc == SQLITE_ROW ? 0 : -1;
}
