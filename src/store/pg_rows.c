/* pg_rows.c - the rows the views above the store read (views.h) from the PostgreSQL
 * store: summaries, details, history, attempts, pages, children, tallies; and the
 * cursor that streams the long lists. The SQLite store's sqlite_rows.c, translated. */
#include "pg_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* --- streaming ------------------------------------------------------------------------- */

#define PG_CURSOR_CHUNK 256 /* rows fetched at a time: memory independent of the list */

/* cursor_exec - sql (not prepared: DECLARE, FETCH, CLOSE cannot be) on the main
 * connection: its result, or NULL with the error in st->err as pg_query says it. */
static PGresult *cursor_exec(struct store *st, const char *sql, const char *what)
{
	PGconn *conn = st->main.conn;
	if (st->pipe.on)
		return pg_pipe_wait_text(st, sql, what);
	PGresult *r = conn && PQstatus(conn) == CONNECTION_OK ? PQexec(conn, sql) : NULL;
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
		return r;
	st->busy = 0;
	if (!conn || PQstatus(conn) == CONNECTION_BAD) {
		pg_fail(st, "cannot %s: connection to the database %s lost", what, st->where);
	} else {
		const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
		st->busy = code && (!strcmp(code, "55P03") || !strcmp(code, "40P01") ||
		                    !strcmp(code, "40001"));
		msg = msg ? msg : PQerrorMessage(conn);
		size_t len = strcspn(msg, "\n");
		pg_fail(st, "cannot %s: %.*s", what, (int)len, msg);
	}
	PQclear(r);
	return NULL;
}

/* pg_cursor_foreach - see pg_int.h. A cursor lives in a transaction: the open one, or
 * one of its own, committed at the end (fn may have written in it). */
int pg_cursor_foreach(struct store *st, const char *sql, const char *what, pg_row_fn fn, void *arg)
{
	static unsigned serial; /* a name per call: fn may stream another list meanwhile */
	char name[32], fetch[64];
	struct strbuf sb = STRBUF_INIT;
	int own = st->pipe.on ? !st->pipe.txn : PQtransactionStatus(st->main.conn) == PQTRANS_IDLE;
	int rc = -1, stop = 0;
	if (own && pg_exec_text(st, "BEGIN", what) < 0)
		return -1;
	snprintf(name, sizeof(name), "segspool_rows_%u", ++serial);
	snprintf(fetch, sizeof(fetch), "FETCH %d FROM %s", PG_CURSOR_CHUNK, name);
	sb_addf(&sb, "DECLARE %s NO SCROLL CURSOR FOR %s", name, sql);
	PGresult *r = cursor_exec(st, sb.buf, what);
	if (r) {
		PQclear(r);
		for (;;) {
			if (!(r = cursor_exec(st, fetch, what)))
				break;
			int n = PQntuples(r);
			for (int i = 0; i < n && !stop; i++)
				stop = fn(r, i, arg);
			PQclear(r);
			if (stop || n < PG_CURSOR_CHUNK) {
				rc = 0;
				break;
			}
		}
		sb_reset(&sb);
		sb_addf(&sb, "CLOSE %s", name);
		if (rc == 0 && (r = cursor_exec(st, sb.buf, what)) == NULL)
			rc = -1;
		PQclear(r);
	}
	sb_release(&sb);
	if (own && rc == 0)
		rc = st->pipe.on ? pg_pipe_commit(st, 1) : pg_exec_text(st, "COMMIT", what);
	else if (own && st->pipe.on)
		pg_exec_text(st, "ROLLBACK", what); /* after a failure, refused: nothing to undo */
	else if (own)
		PQclear(PQexec(st->main.conn, "ROLLBACK")); /* the error above is the one to tell */
	return rc;
}

/* --- reading, for the CLI -------------------------------------------------------------- */

/* why a job was created, from its own row (a creation has no transitions row) */
#define CREATION_REASON                                                                            \
	"CASE WHEN parent_id IS NOT NULL THEN 'child of ' || parent_id "                           \
	"WHEN source_file IS NOT NULL THEN 'ingested from ' || source_file ELSE 'submitted' END"
/* a job's reason: that of its last state change, or of its creation when it has none */
#define LAST_REASON                                                                                \
	"coalesce((SELECT reason FROM transitions t WHERE t.job_id = jobs.id "                     \
	"ORDER BY t.id DESC LIMIT 1), " CREATION_REASON ")"
/* list's reason: none for a succeeded job (its success may write no transitions row) */
#define LIST_REASON "CASE WHEN state = 3 THEN NULL ELSE " LAST_REASON " END"
#define SUMMARY_COLS                                                                               \
	"id, state, op_id, key, workspace, priority, attempts, created_ms, next_run_ms, "          \
	"parent_id, " LIST_REASON

static const char COUNTS[] = "SELECT state, count(*) FROM jobs GROUP BY state";
static const char REQUESTS[] =
    "SELECT count(*) FROM attempts WHERE http_status IS NOT NULL OR error IS NOT NULL";
static const char SHOW_JOB[] =
    "SELECT id, state, op_id, key, workspace, priority, attempts, max_attempts, created_ms, "
    "updated_ms, next_run_ms, finished_ms, spec_json, output_path, source_file, parent_id, "
    "cursor, pages_done, items_done, total_entries, result_json, error_json, "
    "cancel_requested, paginated FROM jobs WHERE id = $1";
/* the creation first, from the jobs row */
static const char SHOW_TRANSITIONS[] =
    "SELECT NULL::integer, 0, created_ms, " CREATION_REASON ", 0, 0::bigint FROM jobs "
    "WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM transitions WHERE job_id = $1 "
    "AND from_state IS NULL) UNION ALL SELECT from_state, to_state, at_ms, reason, "
    "(from_state IS NOT NULL)::integer, id FROM transitions WHERE job_id = $1 ORDER BY 5, 6";
static const char SHOW_ATTEMPTS[] =
    "SELECT attempt_no, started_ms, duration_ms, http_status, outcome, error, retry_after_ms, "
    "rl_remaining, rl_reset, request, body, resolved FROM attempts WHERE job_id = $1 "
    "ORDER BY id";
static const char SHOW_PAGES[] = "SELECT page_no, nitems, cursor, next_cursor, at_ms FROM pages "
                                 "WHERE job_id = $1 ORDER BY page_no";
static const char SHOW_CHILDREN[] = "SELECT id, state, pages_done, items_done, total_entries "
                                    "FROM jobs WHERE parent_id = $1 ORDER BY id";
/* names in byte order, NULL first, as SQLite sorts them */
static const char ATTEMPT_OUTCOMES[] =
    "SELECT o, count(*) FROM (SELECT coalesce(outcome, 'in_progress') AS o FROM attempts) a "
    "GROUP BY o ORDER BY o COLLATE \"C\"";
static const char TOP_REASONS[] =
    "SELECT reason, count(*) FROM (SELECT " LAST_REASON " AS reason FROM jobs "
    "WHERE state IN (4, 5)) r GROUP BY reason "
    "ORDER BY 2 DESC, reason COLLATE \"C\" NULLS FIRST LIMIT $1";
static const char LAST_TOTAL[] = "SELECT total_entries FROM jobs WHERE op_id = $1 AND "
                                 "total_entries IS NOT NULL ORDER BY id DESC LIMIT 1";
/* the due index (priority DESC, next_run_ms, id) walked one priority at a time */
static const char DUE_NEXT_PRIORITY[] = "SELECT priority FROM jobs WHERE state IN (0, 2) "
                                        "AND priority < $1::bigint ORDER BY priority DESC LIMIT 1";
static const char FIRST_DUE_AT_PRIORITY[] =
    "SELECT id, next_run_ms FROM jobs WHERE state IN (0, 2) AND priority = $1 "
    "ORDER BY next_run_ms, id LIMIT 1";
static const char CHILDREN_PROGRESS[] =
    "SELECT count(*), coalesce(sum(pages_done), 0), coalesce(sum(items_done), 0) FROM jobs "
    "WHERE parent_id = $1";
static const char METRICS_ATTEMPTS[] =
    "SELECT outcome, coalesce(http_status, 0), coalesce(duration_ms, 0), count(*) "
    "FROM attempts WHERE outcome IS NOT NULL GROUP BY 1, 2, 3";

/* key_query - sql with the one integer parameter key; NULL after an error set. */
static PGresult *key_query(struct store *st, const char *sql, int64_t key, const char *what)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_i64(&p, key);
	return pg_query(st, sql, &p, what);
}

/* col_int - an integer column, STORE_NONE when NULL. */
static int64_t col_int(const PGresult *r, int row, int col)
{
	return pg_get_i64(r, row, col, STORE_NONE);
}

/* store_counts - jobs in each state. */
int store_counts(struct store *st, int64_t counts[JS_COUNT])
{
	memset(counts, 0, sizeof(int64_t) * JS_COUNT);
	PGresult *r = pg_query(st, COUNTS, NULL, "count jobs");
	if (!r)
		return -1;
	for (int i = 0, n = PQntuples(r); i < n; i++) {
		int64_t state = pg_get_i64(r, i, 0, -1);
		if (state >= 0 && state < JS_COUNT)
			counts[state] = pg_get_i64(r, i, 1, 0);
	}
	PQclear(r);
	return 0;
}

/* store_count_requests - attempts with an answer or a transport error. */
int64_t store_count_requests(struct store *st)
{
	PGresult *r = pg_query(st, REQUESTS, NULL, "count requests");
	if (!r)
		return -1;
	int64_t n = PQntuples(r) > 0 ? pg_get_i64(r, 0, 0, 0) : 0;
	PQclear(r);
	return n;
}

/* read_summary - a row of SUMMARY_COLS. */
static void read_summary(const PGresult *r, int i, struct job_summary *j)
{
	j->id = pg_get_i64(r, i, 0, 0);
	j->state = (enum job_state)pg_get_i64(r, i, 1, 0);
	j->op_id = pg_get_text(r, i, 2);
	j->key = pg_get_text(r, i, 3);
	j->workspace = pg_get_text(r, i, 4);
	j->priority = col_int(r, i, 5);
	j->attempts = col_int(r, i, 6);
	j->created_ms = col_int(r, i, 7);
	j->next_run_ms = col_int(r, i, 8);
	j->parent_id = col_int(r, i, 9);
	j->reason = pg_get_text(r, i, 10);
}

struct summary_arg {
	store_summary_fn fn;
	void *arg;
};

/* summary_row - a streamed row of SUMMARY_COLS to the caller's fn. */
static int summary_row(const PGresult *r, int row, void *arg)
{
	struct summary_arg *a = arg;
	struct job_summary j;
	read_summary(r, row, &j);
	return a->fn(&j, a->arg);
}

/* pg_summaries_foreach - see pg_int.h. */
int pg_summaries_foreach(struct store *st, const char *sql, const char *what, store_summary_fn fn,
                         void *arg)
{
	struct summary_arg a = {fn, arg};
	return pg_cursor_foreach(st, sql, what, summary_row, &a);
}

/* store_list - jobs newest first, in one state or all; limit <= 0: no limit. Streamed:
 * a list of every job holds one chunk of them. */
int store_list(struct store *st, const enum job_state *state, int limit, store_summary_fn fn,
               void *arg)
{
	struct strbuf sql = STRBUF_INIT;
	sb_adds(&sql, "SELECT " SUMMARY_COLS " FROM jobs");
	if (state)
		sb_addf(&sql, " WHERE state = %d", (int)*state);
	sb_adds(&sql, " ORDER BY id DESC");
	if (limit > 0)
		sb_addf(&sql, " LIMIT %d", limit);
	int rc = pg_summaries_foreach(st, sql.buf, "list jobs", fn, arg);
	sb_release(&sql);
	return rc;
}

/* read_detail - the row of SHOW_JOB. */
static void read_detail(const PGresult *r, struct job_detail *j)
{
	j->id = pg_get_i64(r, 0, 0, 0);
	j->state = (enum job_state)pg_get_i64(r, 0, 1, 0);
	j->op_id = pg_get_text(r, 0, 2);
	j->key = pg_get_text(r, 0, 3);
	j->workspace = pg_get_text(r, 0, 4);
	j->priority = col_int(r, 0, 5);
	j->attempts_counted = col_int(r, 0, 6);
	j->max_attempts = col_int(r, 0, 7);
	j->created_ms = col_int(r, 0, 8);
	j->updated_ms = col_int(r, 0, 9);
	j->next_run_ms = col_int(r, 0, 10);
	j->finished_ms = col_int(r, 0, 11);
	j->spec_json = pg_get_text(r, 0, 12);
	j->output_path = pg_get_text(r, 0, 13);
	j->source_file = pg_get_text(r, 0, 14);
	j->parent_id = col_int(r, 0, 15);
	j->cursor = pg_get_text(r, 0, 16);
	j->pages_done = col_int(r, 0, 17);
	j->items_done = col_int(r, 0, 18);
	j->total_entries = col_int(r, 0, 19);
	j->result_json = pg_get_text(r, 0, 20);
	j->error_json = pg_get_text(r, 0, 21);
	j->cancel_requested = (int)pg_get_i64(r, 0, 22, 0);
	j->paginated = (int)pg_get_i64(r, 0, 23, 0);
}

/* store_job_detail - one job's row to fn; 1 when there is none. */
int store_job_detail(struct store *st, int64_t id, store_detail_fn fn, void *arg)
{
	PGresult *r = key_query(st, SHOW_JOB, id, "read a job");
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found) {
		struct job_detail j;
		read_detail(r, &j);
		fn(&j, arg);
	} else {
		pg_fail(st, "no job %" PRId64, id);
	}
	PQclear(r);
	return found ? 0 : 1;
}

/* JOB_ROWS_FOREACH - defines name(st, key, fn, arg) of store.h: each row of sql for the
 * job key, read into a struct rec_type by reader, handed to fn. A job's rows are few
 * enough to be read at once. */
#define JOB_ROWS_FOREACH(name, fn_type, rec_type, sql, reader, what)                               \
	int name(struct store *st, int64_t key, fn_type fn, void *arg)                             \
	{                                                                                          \
		PGresult *r = key_query(st, sql, key, what);                                       \
		struct rec_type rec;                                                               \
		if (!r)                                                                            \
			return -1;                                                                 \
		for (int i = 0, n = PQntuples(r); i < n; i++) {                                    \
			reader(r, i, &rec);                                                        \
			if (fn(&rec, arg))                                                         \
				break;                                                             \
		}                                                                                  \
		PQclear(r);                                                                        \
		return 0;                                                                          \
	}

/* read_transition - a row of SHOW_TRANSITIONS. */
static void read_transition(const PGresult *r, int i, struct transition_rec *t)
{
	t->from_state = (int)pg_get_i64(r, i, 0, -1);
	t->to_state = (enum job_state)pg_get_i64(r, i, 1, 0);
	t->at_ms = pg_get_i64(r, i, 2, 0);
	t->reason = pg_get_text(r, i, 3);
}

/* store_transitions_foreach - a job's history, its creation first. */
JOB_ROWS_FOREACH(store_transitions_foreach, store_transition_fn, transition_rec, SHOW_TRANSITIONS,
                 read_transition, "read a job's history")

/* read_attempt - a row of SHOW_ATTEMPTS. */
static void read_attempt(const PGresult *r, int i, struct attempt_rec *a)
{
	a->attempt_no = col_int(r, i, 0);
	a->started_ms = col_int(r, i, 1);
	a->duration_ms = col_int(r, i, 2);
	a->http_status = col_int(r, i, 3);
	a->outcome = pg_get_text(r, i, 4);
	a->error = pg_get_text(r, i, 5);
	a->retry_after_ms = col_int(r, i, 6);
	a->rl_remaining = col_int(r, i, 7);
	a->rl_reset = pg_get_text(r, i, 8);
	a->request = pg_get_text(r, i, 9);
	a->body = pg_get_text(r, i, 10);
	a->resolved = pg_get_text(r, i, 11);
}

/* store_attempts_foreach - a job's attempts in order. */
JOB_ROWS_FOREACH(store_attempts_foreach, store_attempt_fn, attempt_rec, SHOW_ATTEMPTS, read_attempt,
                 "read a job's attempts")

/* read_page_rec - a row of SHOW_PAGES. */
static void read_page_rec(const PGresult *r, int i, struct page_rec *p)
{
	p->page_no = col_int(r, i, 0);
	p->nitems = col_int(r, i, 1);
	p->cursor = pg_get_text(r, i, 2);
	p->next_cursor = pg_get_text(r, i, 3);
	p->at_ms = col_int(r, i, 4);
}

/* store_page_recs_foreach - a job's pages, without items. */
JOB_ROWS_FOREACH(store_page_recs_foreach, store_page_rec_fn, page_rec, SHOW_PAGES, read_page_rec,
                 "read a job's pages")

/* read_child - a row of SHOW_CHILDREN. */
static void read_child(const PGresult *r, int i, struct child_rec *c)
{
	c->id = pg_get_i64(r, i, 0, 0);
	c->state = (enum job_state)pg_get_i64(r, i, 1, 0);
	c->pages_done = col_int(r, i, 2);
	c->items_done = col_int(r, i, 3);
	c->total_entries = col_int(r, i, 4);
}

/* store_children_foreach - a parent's children with their progress. */
JOB_ROWS_FOREACH(store_children_foreach, store_child_fn, child_rec, SHOW_CHILDREN, read_child,
                 "read a job's children")

/* tallies - (name, count) rows of r to fn; r is cleared. */
static int tallies(PGresult *r, store_tally_fn fn, void *arg)
{
	if (!r)
		return -1;
	for (int i = 0, n = PQntuples(r); i < n; i++)
		if (fn(pg_get_text(r, i, 0), pg_get_i64(r, i, 1, 0), arg))
			break;
	PQclear(r);
	return 0;
}

/* store_attempt_outcomes_foreach - attempts by outcome. */
int store_attempt_outcomes_foreach(struct store *st, store_tally_fn fn, void *arg)
{
	return tallies(pg_query(st, ATTEMPT_OUTCOMES, NULL, "count attempts"), fn, arg);
}

/* store_top_reasons_foreach - the most common reasons of failed and dead jobs. */
int store_top_reasons_foreach(struct store *st, int max, store_tally_fn fn, void *arg)
{
	return tallies(key_query(st, TOP_REASONS, max, "count failure reasons"), fn, arg);
}

/* store_last_total - the totalEntries last recorded for an operation's pages. */
int64_t store_last_total(struct store *st, const char *op_id)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, op_id);
	PGresult *r = pg_query(st, LAST_TOTAL, &p, "read an operation's last total");
	if (!r)
		return -2;
	int64_t total = PQntuples(r) > 0 ? pg_get_i64(r, 0, 0, -1) : -1;
	PQclear(r);
	return total;
}

/* --- watch/status ---------------------------------------------------------------------- */

/* store_oldest_due - the queued or waiting job due first: the first entry of each
 * priority's stretch of the due index, a seek each. */
int store_oldest_due(struct store *st, int64_t *id, int64_t *next_run_ms)
{
	int64_t bound = INT64_MAX;
	int found = 0;
	for (;;) {
		PGresult *r = key_query(st, DUE_NEXT_PRIORITY, bound, "find due jobs");
		if (!r)
			return -1;
		int any = PQntuples(r) > 0;
		int64_t priority = any ? pg_get_i64(r, 0, 0, 0) : 0;
		PQclear(r);
		if (!any)
			return found;
		r = key_query(st, FIRST_DUE_AT_PRIORITY, priority, "find the oldest due job");
		if (!r)
			return -1;
		if (PQntuples(r) > 0) {
			int64_t at = pg_get_i64(r, 0, 1, 0);
			if (!found || at < *next_run_ms) {
				*id = pg_get_i64(r, 0, 0, 0);
				*next_run_ms = at;
				found = 1;
			}
		}
		PQclear(r);
		bound = priority;
	}
}

/* store_children_progress - a fan-out parent's children, their pages and items summed. */
int store_children_progress(struct store *st, int64_t parent_id, int64_t *children, int64_t *pages,
                            int64_t *items)
{
	PGresult *r = key_query(st, CHILDREN_PROGRESS, parent_id, "sum the children's pages");
	if (!r)
		return -1;
	int rc = PQntuples(r) > 0 ? 0 : -1;
	if (rc == 0) {
		*children = pg_get_i64(r, 0, 0, 0);
		*pages = pg_get_i64(r, 0, 1, 0);
		*items = pg_get_i64(r, 0, 2, 0);
	} else {
		pg_fail(st, "sum the children's pages: no row");
	}
	PQclear(r);
	return rc;
}

/* --- metrics --------------------------------------------------------------------------- */

/* store_attempt_groups - the ended attempts, grouped by outcome, status and duration. */
int store_attempt_groups(struct store *st, store_attempt_group_fn fn, void *arg)
{
	PGresult *r = pg_query(st, METRICS_ATTEMPTS, NULL, "count attempts");
	if (!r)
		return -1;
	for (int i = 0, n = PQntuples(r); i < n; i++)
		fn(pg_get_text(r, i, 0), (int)pg_get_i64(r, i, 1, 0), pg_get_i64(r, i, 2, 0),
		   pg_get_i64(r, i, 3, 0), arg);
	PQclear(r);
	return 0;
}
