/* sqlite_rows.c - the rows the views above the store read (views.h): summaries,
 * details, history, attempts, pages, children, tallies. */
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

/* --- reading, for the CLI ------------------------------------------------------------------ */

/* store_counts - jobs in each state. */
int store_counts(struct store *st, int64_t counts[JS_COUNT])
{
	sqlite3_stmt *s = sq_prep(st, S_COUNTS);
	int rc;
	memset(counts, 0, sizeof(int64_t) * JS_COUNT);
	if (!s)
		return -1;
	while ((rc = sq_step(st, s, "count jobs")) == SQLITE_ROW) {
		int state = sqlite3_column_int(s, 0);
		if (state >= 0 && state < JS_COUNT)
			counts[state] = sqlite3_column_int64(s, 1);
	}
	sq_done(s);
	return rc < 0 ? -1 : 0;
}

/* col_int - an integer column, STORE_NONE when NULL. */
static int64_t col_int(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? STORE_NONE : sqlite3_column_int64(s, i);
}

/* col_text - a text column, NULL when NULL; valid until the statement steps again. */
static const char *col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* rows_start - statement id prepared, ?1 bound to key; NULL after an error set. */
static sqlite3_stmt *rows_start(struct store *st, enum stmt_id id, int64_t key)
{
	sqlite3_stmt *s = sq_prep(st, id);
	if (s)
		sqlite3_bind_int64(s, 1, key);
	return s;
}

/* FOREACH_ROW - steps s, each row read into rec by readfn and handed to fn (fn is typed:
 * no function pointer is cast); out is then 0, or -1 after an error set. */
#define FOREACH_ROW(st, s, what, readfn, rec, fn, arg, out)                                        \
	do {                                                                                       \
		int rc_;                                                                           \
		while ((rc_ = sq_step(st, s, what)) == SQLITE_ROW) {                               \
			readfn(s, &(rec));                                                         \
			if (fn(&(rec), arg))                                                       \
				break;                                                             \
		}                                                                                  \
		sq_done(s);                                                                        \
		(out) = rc_ < 0 ? -1 : 0;                                                          \
	} while (0)

/* JOB_ROWS_FOREACH - defines name(st, key, fn, arg) of store.h: each row of statement
 * stmt for the job key, read into a struct rec_type by reader, handed to fn. */
#define JOB_ROWS_FOREACH(name, fn_type, rec_type, stmt, reader, what)                              \
	int name(struct store *st, int64_t key, fn_type fn, void *arg)                             \
	{                                                                                          \
		sqlite3_stmt *s = rows_start(st, stmt, key);                                       \
		struct rec_type rec;                                                               \
		int rc;                                                                            \
		if (!s)                                                                            \
			return -1;                                                                 \
		FOREACH_ROW(st, s, what, reader, rec, fn, arg, rc);                                \
		return rc;                                                                         \
	}

/* read_summary - a row of S_LIST / S_LIST_STATE. */
static void read_summary(sqlite3_stmt *s, struct job_summary *j)
{
	j->id = sqlite3_column_int64(s, 0);
	j->state = (enum job_state)sqlite3_column_int(s, 1);
	j->op_id = col_text(s, 2);
	j->key = col_text(s, 3);
	j->workspace = col_text(s, 4);
	j->priority = col_int(s, 5);
	j->attempts = col_int(s, 6);
	j->created_ms = col_int(s, 7);
	j->next_run_ms = col_int(s, 8);
	j->parent_id = col_int(s, 9);
	j->reason = col_text(s, 10);
}

/* store_list - jobs newest first, in one state or all; limit <= 0: no limit. */
int store_list(struct store *st, const enum job_state *state, int limit, store_summary_fn fn,
               void *arg)
{
	sqlite3_stmt *s = sq_prep(st, state ? S_LIST_STATE : S_LIST);
	int rc;
	if (!s)
		return -1;
	sqlite3_bind_int(s, 1, limit > 0 ? limit : -1);
	if (state)
		sqlite3_bind_int(s, 2, (int)*state);
	struct job_summary j;
	FOREACH_ROW(st, s, "list jobs", read_summary, j, fn, arg, rc);
	return rc;
}

/* read_detail - the row of S_SHOW_JOB. */
static void read_detail(sqlite3_stmt *s, struct job_detail *j)
{
	j->id = sqlite3_column_int64(s, 0);
	j->state = (enum job_state)sqlite3_column_int(s, 1);
	j->op_id = col_text(s, 2);
	j->key = col_text(s, 3);
	j->workspace = col_text(s, 4);
	j->priority = col_int(s, 5);
	j->attempts_counted = col_int(s, 6);
	j->max_attempts = col_int(s, 7);
	j->created_ms = col_int(s, 8);
	j->updated_ms = col_int(s, 9);
	j->next_run_ms = col_int(s, 10);
	j->finished_ms = col_int(s, 11);
	j->spec_json = col_text(s, 12);
	j->output_path = col_text(s, 13);
	j->source_file = col_text(s, 14);
	j->parent_id = col_int(s, 15);
	j->cursor = col_text(s, 16);
	j->pages_done = col_int(s, 17);
	j->items_done = col_int(s, 18);
	j->total_entries = col_int(s, 19);
	j->result_json = col_text(s, 20);
	j->error_json = col_text(s, 21);
	j->cancel_requested = sqlite3_column_int(s, 22);
	j->paginated = sqlite3_column_int(s, 23);
}

/* store_job_detail - one job's row to fn; 1 when there is none. */
int store_job_detail(struct store *st, int64_t id, store_detail_fn fn, void *arg)
{
	sqlite3_stmt *s = rows_start(st, S_SHOW_JOB, id);
	if (!s)
		return -1;
	int rc = sq_step(st, s, "read a job");
	if (rc == SQLITE_ROW) {
		struct job_detail j;
		read_detail(s, &j);
		fn(&j, arg);
	} else if (rc == SQLITE_DONE) {
		sq_set_err(st, "no job %" PRId64, id);
	}
	sq_done(s);
	return rc < 0 ? -1 : rc == SQLITE_ROW ? 0 : 1;
}

/* read_transition - a row of S_SHOW_TRANSITIONS. */
static void read_transition(sqlite3_stmt *s, struct transition_rec *t)
{
	t->from_state = sqlite3_column_type(s, 0) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 0);
	t->to_state = (enum job_state)sqlite3_column_int(s, 1);
	t->at_ms = sqlite3_column_int64(s, 2);
	t->reason = col_text(s, 3);
}

/* store_transitions_foreach - a job's history, its creation first. */
JOB_ROWS_FOREACH(store_transitions_foreach, store_transition_fn, transition_rec, S_SHOW_TRANSITIONS,
                 read_transition, "read a job's history")

/* read_attempt - a row of S_SHOW_ATTEMPTS. */
static void read_attempt(sqlite3_stmt *s, struct attempt_rec *a)
{
	a->attempt_no = col_int(s, 0);
	a->started_ms = col_int(s, 1);
	a->duration_ms = col_int(s, 2);
	a->http_status = col_int(s, 3);
	a->outcome = col_text(s, 4);
	a->error = col_text(s, 5);
	a->retry_after_ms = col_int(s, 6);
	a->rl_remaining = col_int(s, 7);
	a->rl_reset = col_text(s, 8);
	a->request = col_text(s, 9);
	a->body = col_text(s, 10);
	a->resolved = col_text(s, 11);
}

/* store_attempts_foreach - a job's attempts in order. */
JOB_ROWS_FOREACH(store_attempts_foreach, store_attempt_fn, attempt_rec, S_SHOW_ATTEMPTS,
                 read_attempt, "read a job's attempts")

/* read_page_rec - a row of S_SHOW_PAGES. */
static void read_page_rec(sqlite3_stmt *s, struct page_rec *p)
{
	p->page_no = col_int(s, 0);
	p->nitems = col_int(s, 1);
	p->cursor = col_text(s, 2);
	p->next_cursor = col_text(s, 3);
	p->at_ms = col_int(s, 4);
}

/* store_page_recs_foreach - a job's pages, without items. */
JOB_ROWS_FOREACH(store_page_recs_foreach, store_page_rec_fn, page_rec, S_SHOW_PAGES, read_page_rec,
                 "read a job's pages")

/* read_child - a row of S_SHOW_CHILDREN. */
static void read_child(sqlite3_stmt *s, struct child_rec *c)
{
	c->id = sqlite3_column_int64(s, 0);
	c->state = (enum job_state)sqlite3_column_int(s, 1);
	c->pages_done = col_int(s, 2);
	c->items_done = col_int(s, 3);
	c->total_entries = col_int(s, 4);
}

/* store_children_foreach - a parent's children with their progress. */
JOB_ROWS_FOREACH(store_children_foreach, store_child_fn, child_rec, S_SHOW_CHILDREN, read_child,
                 "read a job's children")

/* tallies - (name, count) rows of statement id to fn. */
static int tallies(struct store *st, sqlite3_stmt *s, const char *what, store_tally_fn fn,
                   void *arg)
{
	int rc;
	while ((rc = sq_step(st, s, what)) == SQLITE_ROW)
		if (fn(col_text(s, 0), sqlite3_column_int64(s, 1), arg))
			break;
	sq_done(s);
	return rc < 0 ? -1 : 0;
}

/* store_attempt_outcomes_foreach - attempts by outcome. */
int store_attempt_outcomes_foreach(struct store *st, store_tally_fn fn, void *arg)
{
	sqlite3_stmt *s = sq_prep(st, S_ATTEMPT_OUTCOMES);
	return s ? tallies(st, s, "count attempts", fn, arg) : -1;
}

/* store_top_reasons_foreach - the most common reasons of failed and dead jobs. */
int store_top_reasons_foreach(struct store *st, int max, store_tally_fn fn, void *arg)
{
	sqlite3_stmt *s = sq_prep(st, S_TOP_REASONS);
	if (!s)
		return -1;
	sqlite3_bind_int(s, 1, max);
	return tallies(st, s, "count failure reasons", fn, arg);
}

/* store_count_requests - attempts with an answer or a transport error. */
int64_t store_count_requests(struct store *st)
{
	sqlite3_stmt *s = sq_prep(st, S_REQUESTS);
	return s ? sq_count_query(st, s, "count requests") : -1;
}

/* store_read_begin - one snapshot for the reads up to store_read_end. */
int store_read_begin(struct store *st)
{
	st->own_read = !sq_in_transaction(st);
	return st->own_read ? sq_run_id(st, S_BEGIN_READ, "begin a read") : 0;
}

/* store_read_end - ends store_read_begin's snapshot, if it opened one. */
void store_read_end(struct store *st)
{
	if (st->own_read && sq_in_transaction(st))
		sq_quiet_run_id(st, S_ROLLBACK); /* only read: ending it either way is the same */
	st->own_read = 0;
}

/* store_job_error - the stored error, malloc'd, or NULL. */
int store_job_error(struct store *st, int64_t id, char **error_json)
{
	sqlite3_stmt *s = sq_prep(st, S_JOB_GET_ERROR);
	*error_json = NULL;
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	int rc = sq_step(st, s, "read a job's error");
	if (rc == SQLITE_ROW)
		*error_json = sq_column_dup(s, 0);
	sq_done(s);
	return rc < 0 ? -1 : 0;
}

/* store_last_total - the totalEntries last recorded for an operation's pages. */
int64_t store_last_total(struct store *st, const char *op_id)
{
	sqlite3_stmt *s = sq_prep(st, S_LAST_TOTAL);
	if (!s)
		return -2;
	sq_bind_text(s, 1, op_id);
	int rc = sq_step(st, s, "read an operation's last total");
	int64_t total = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
	sq_done(s);
	return rc < 0 ? -2 : total;
}

/* metrics */

/* store_attempt_groups - the ended attempts, grouped by outcome, status and duration. */
int store_attempt_groups(struct store *st, store_attempt_group_fn fn, void *arg)
{
	sqlite3_stmt *s = sq_prep(st, S_METRICS_ATTEMPTS);
	int rc;
	if (!s)
		return -1;
	while ((rc = sq_step(st, s, "count attempts")) == SQLITE_ROW)
		fn((const char *)sqlite3_column_text(s, 0), sqlite3_column_int(s, 1),
		   sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3), arg);
	sq_done(s);
	return rc < 0 ? -1 : 0;
}

/* --- results files (issue 13) ------------------------------------------------------------- */

/* store_list_file - the jobs of one file, in its order. */
int store_list_file(struct store *st, int64_t file_id, int limit, store_summary_fn fn, void *arg)
{
	sqlite3_stmt *s = rows_start(st, S_LIST_FILE, file_id);
	int rc;
	if (!s)
		return -1;
	sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
	struct job_summary j;
	FOREACH_ROW(st, s, "list the jobs of a file", read_summary, j, fn, arg, rc);
	return rc;
}
