/* pg_runs.c - what a run leaves beside its job in the PostgreSQL store: pages and their
 * cursors, recovery after a crash (the rescue of expired leases), a fan-out's children,
 * retry and cancel from any machine. The SQLite store's sqlite_runs.c, translated. */
#include "pg_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* --- pages ----------------------------------------------------------------------------- */

static const char PAGE_INSERT[] =
    "INSERT INTO pages (job_id, page_no, cursor, next_cursor, items_json, nitems, "
    "total_entries, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
/* a page that arrived resets the attempts: the policy applies to each page */
static const char PAGE_ADVANCE[] =
    "UPDATE jobs SET cursor = $2, pages_done = $3, attempts = 0, items_done = items_done + $4, "
    "total_entries = coalesce($5, total_entries), updated_ms = $6 WHERE id = $1";
static const char PAGES_OF[] =
    "SELECT page_no, items_json FROM pages WHERE job_id = $1 ORDER BY page_no";
/* one seek in pages_cursor, however many pages the job has */
static const char PAGE_CURSOR_SEEN[] =
    "SELECT min(page_no) FROM pages WHERE job_id = $1 AND cursor = $2";

/* store_page_record - a fetched page and the job's new resume point, together: after a
 * crash the job's cursor is the page to fetch next, never one already stored. */
int store_page_record(struct store *st, int64_t job_id, int page_no, const char *cursor,
                      const char *next_cursor, const char *items_json, int64_t nitems,
                      int64_t total_entries, int64_t now_ms)
{
	enum pg_wrap how;
	struct pg_params p;
	int rc = -1;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_i64(&p, job_id);
	pg_param_i64(&p, page_no);
	pg_param_text(&p, cursor);
	pg_param_text(&p, next_cursor);
	pg_param_text(&p, items_json ? items_json : "[]");
	pg_param_i64(&p, nitems);
	pg_param_i64_or_null(&p, total_entries < 0 ? -1 : total_entries, -1);
	pg_param_i64(&p, now_ms);
	if (pg_run(st, PAGE_INSERT, &p, "record a page") >= 0) {
		pg_params_init(&p);
		pg_param_i64(&p, job_id);
		pg_param_text(&p, next_cursor);
		pg_param_i64(&p, page_no);
		pg_param_i64(&p, nitems);
		pg_param_i64_or_null(&p, total_entries < 0 ? -1 : total_entries, -1);
		pg_param_i64(&p, now_ms);
		rc = pg_run(st, PAGE_ADVANCE, &p, "advance a job's cursor") < 0 ? -1 : 0;
	}
	return pg_op_end(st, how, rc);
}

/* job_query - sql with the one parameter key: its result, or NULL after an error set. */
static PGresult *job_query(struct store *st, const char *sql, int64_t key, const char *what)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_i64(&p, key);
	return pg_query(st, sql, &p, what);
}

/* store_pages_foreach - the job's pages in order. */
int store_pages_foreach(struct store *st, int64_t job_id, store_page_fn fn, void *arg)
{
	PGresult *r = job_query(st, PAGES_OF, job_id, "read pages");
	if (!r)
		return -1;
	for (int i = 0, n = PQntuples(r); i < n; i++)
		if (fn((int)pg_get_i64(r, i, 0, 0), pg_get_text(r, i, 1), arg))
			break;
	PQclear(r);
	return 0;
}

/* store_page_cursor_seen - the first of the job's pages fetched with cursor, or 0. */
int store_page_cursor_seen(struct store *st, int64_t job_id, const char *cursor)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_i64(&p, job_id);
	pg_param_text(&p, cursor);
	PGresult *r = pg_query(st, PAGE_CURSOR_SEEN, &p, "look up a page's cursor");
	if (!r)
		return -1;
	int page = PQntuples(r) > 0 ? (int)pg_get_i64(r, 0, 0, 0) : 0;
	PQclear(r);
	return page;
}

/* --- recovery -------------------------------------------------------------------------- */

/* store_recover - after a crash. Other daemons may be running jobs of this store right
 * now: only the jobs of nodes whose lease ran out (this daemon's earlier self among
 * them, once its lease has, or at once when it is known dead) come back, and for a store
 * that is no node those of no node, as in SQLite: store_rescue's. */
int store_recover(struct store *st, int64_t now_ms)
{
	return (int)store_rescue(st, now_ms);
}

/* --- parents and children -------------------------------------------------------------- */

static const char CHILD_COUNTS[] =
    "SELECT state, count(*) FROM jobs WHERE parent_id = $1 GROUP BY state";
static const char CHILD_IDS[] = "SELECT id FROM jobs WHERE parent_id = $1 ORDER BY id";
static const char IDS_IN_STATE[] = "SELECT id FROM jobs WHERE state = $1 ORDER BY id";

/* store_children_counts - a fan-out parent's children by state. */
int store_children_counts(struct store *st, int64_t parent_id, struct child_counts *out)
{
	memset(out, 0, sizeof(*out));
	PGresult *r = job_query(st, CHILD_COUNTS, parent_id, "count child jobs");
	if (!r)
		return -1;
	for (int i = 0, rows = PQntuples(r); i < rows; i++) {
		enum job_state state = (enum job_state)pg_get_i64(r, i, 0, 0);
		int n = (int)pg_get_i64(r, i, 1, 0);
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
	PQclear(r);
	return 0;
}

/* collect_ids - the first column of r's rows; r is cleared; caller frees *ids. */
static int collect_ids(PGresult *r, int64_t **ids, size_t *n)
{
	*ids = NULL;
	*n = 0;
	if (!r)
		return -1;
	int rows = PQntuples(r);
	if (rows > 0) {
		*ids = xrealloc(NULL, (size_t)rows * sizeof(**ids));
		for (int i = 0; i < rows; i++)
			(*ids)[i] = pg_get_i64(r, i, 0, 0);
		*n = (size_t)rows;
	}
	PQclear(r);
	return 0;
}

/* store_children_ids - a parent's children, oldest first. */
int store_children_ids(struct store *st, int64_t parent_id, int64_t **ids, size_t *n)
{
	return collect_ids(job_query(st, CHILD_IDS, parent_id, "list jobs"), ids, n);
}

/* store_ids_in_state - ids of the jobs in a state, oldest first. */
int store_ids_in_state(struct store *st, enum job_state state, int64_t **ids, size_t *n)
{
	return collect_ids(job_query(st, IDS_IN_STATE, (int64_t)state, "list jobs"), ids, n);
}

/* --- control --------------------------------------------------------------------------- */

/* the job's row locked for the change: a daemon elsewhere cannot claim or end it between
 * the look and the update. NO KEY UPDATE, as the store's other locks: the foreign keys'
 * checks of its node's attempts and transitions meanwhile are not blocked by it */
static const char JOB_STATE_LOCK[] = "SELECT state FROM jobs WHERE id = $1 FOR NO KEY UPDATE";
static const char JOB_RETRY[] =
    "UPDATE jobs SET state = 0, updated_ms = $2, next_run_ms = $2, attempts = 0, "
    "cancel_requested = 0, finished_ms = NULL, error_json = NULL, owner = NULL WHERE id = $1";
static const char JOB_CANCEL[] =
    "UPDATE jobs SET state = 6, updated_ms = $2, finished_ms = $2, owner = NULL WHERE id = $1";
/* a running job is only flagged: its node (store_cancels_pending) aborts the request
 * and ends it cancelled itself */
static const char JOB_CANCEL_REQUEST[] =
    "UPDATE jobs SET cancel_requested = 1, updated_ms = $2 WHERE id = $1";
static const char TRANSITION_ADD[] = "INSERT INTO transitions (job_id, from_state, to_state, "
                                     "at_ms, reason) VALUES ($1, $2, $3, $4, $5)";

/* lock_state - the job's state, its row locked till the transaction ends: 0, 1 when
 * there is no such job (the error says so, for verb), -1. */
static int lock_state(struct store *st, int64_t id, const char *verb, enum job_state *state)
{
	PGresult *r = job_query(st, JOB_STATE_LOCK, id, "read a job's state");
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found)
		*state = (enum job_state)pg_get_i64(r, 0, 0, 0);
	PQclear(r);
	if (!found)
		pg_fail(st, "cannot %s job %" PRId64 ": no such job", verb, id);
	return found ? 0 : 1;
}

/* refuse - "cannot retry job 7: it is running, not failed, dead or cancelled"; 1. */
static int refuse(struct store *st, int64_t id, const char *verb, enum job_state from,
                  unsigned allowed)
{
	struct strbuf sb = STRBUF_INIT;
	int total = 0, seen = 0;
	for (int i = 0; i < JS_COUNT; i++)
		total += (allowed & PG_BIT(i)) != 0;
	for (int i = 0; i < JS_COUNT; i++) {
		if (!(allowed & PG_BIT(i)))
			continue;
		if (seen)
			sb_adds(&sb, seen == total - 1 ? " or " : ", ");
		sb_adds(&sb, job_state_name((enum job_state)i));
		seen++;
	}
	pg_fail(st, "cannot %s job %" PRId64 ": it is %s, not %s", verb, id, job_state_name(from),
	        sb.buf);
	sb_release(&sb);
	return 1;
}

/* change_locked - the update sql ($1 id, $2 now) of a job locked in state from, and its
 * transition row. 0 or -1. */
static int change_locked(struct store *st, int64_t id, const char *sql, enum job_state from,
                         enum job_state to, const char *reason, int64_t now_ms)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_i64(&p, id);
	pg_param_i64(&p, now_ms);
	if (pg_run(st, sql, &p, "change a job's state") < 0)
		return -1;
	pg_params_init(&p);
	pg_param_i64(&p, id);
	pg_param_i64(&p, (int64_t)from);
	pg_param_i64(&p, (int64_t)to);
	pg_param_i64(&p, now_ms);
	pg_param_text(&p, reason);
	return pg_run(st, TRANSITION_ADD, &p, "record a state change") < 0 ? -1 : 0;
}

/* store_job_retry - failed|dead|cancelled -> queued, due now, attempts reset: 0, 1 not
 * allowed, -1. The cursor is kept: a paginated job resumes after its last stored page.
 * Every node hears of the job (NOTIFY at the commit). */
int store_job_retry(struct store *st, int64_t id, int64_t now_ms)
{
	const unsigned allowed = PG_BIT(JS_FAILED) | PG_BIT(JS_DEAD) | PG_BIT(JS_CANCELLED);
	enum pg_wrap how;
	enum job_state from = JS_QUEUED;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	int rc = lock_state(st, id, "retry", &from);
	if (rc > 0)
		rc = -1;
	else if (rc == 0 && !(allowed & PG_BIT(from)))
		rc = refuse(st, id, "retry", from, allowed);
	else if (rc == 0)
		rc = change_locked(st, id, JOB_RETRY, from, JS_QUEUED, "retry requested", now_ms);
	if (rc == 0)
		rc = pg_deps_requeued(st, id, now_ms);
	if (rc == 0)
		st->notify_pending = 1;
	return pg_op_end(st, how, rc);
}

/* store_job_cancel - 0 cancelled, 1 not allowed (succeeded or already cancelled),
 * 2 running (flagged: the node running it aborts it), -1 error or no such job. */
int store_job_cancel(struct store *st, int64_t id, int64_t now_ms)
{
	const unsigned allowed =
	    PG_BIT(JS_QUEUED) | PG_BIT(JS_WAITING) | PG_BIT(JS_FAILED) | PG_BIT(JS_DEAD);
	enum pg_wrap how;
	enum job_state from = JS_QUEUED;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	int rc = lock_state(st, id, "cancel", &from);
	if (rc != 0)
		return pg_op_end(st, how, -1);
	if (from == JS_RUNNING) {
		struct pg_params p;
		pg_params_init(&p);
		pg_param_i64(&p, id);
		pg_param_i64(&p, now_ms);
		rc = pg_run(st, JOB_CANCEL_REQUEST, &p, "request a cancel") < 0 ? -1 : 2;
	} else if (!(allowed & PG_BIT(from))) {
		rc = refuse(st, id, "cancel", from, allowed);
	} else {
		rc = change_locked(st, id, JOB_CANCEL, from, JS_CANCELLED, "cancel requested",
		                   now_ms);
	}
	if (rc == 0)
		rc = pg_deps_ended(st, id, now_ms);
	return pg_op_end(st, how, rc);
}
