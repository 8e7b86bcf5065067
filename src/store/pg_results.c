/* pg_results.c - what one results file per batch (issue 13) asks the PostgreSQL store:
 * a file recorded before its jobs, its duplicate lines, the files whose results are due
 * or not yet in place, and the file's lines streamed in its order. With several nodes
 * ingesting at once a file's jobs are not a range of ids: they are found by file_id and
 * ordered by line. A node writes the results files of the files it ingested (node_name). */
#include "pg_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char FILE_BEGIN[] =
    "INSERT INTO files (name, hash, dev, ino, ctime_ns, size, ingested_ms, njobs, "
    "nduplicates, remaining, node_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::integer, 0, "
    "CASE WHEN $9::integer <> 0 THEN $8::integer END, $10) RETURNING id";
static const char FILE_DUP[] = "INSERT INTO file_dups (file_id, line, job_id) VALUES ($1, $2, $3)";
static const char FILE_DUP_COUNT[] =
    "UPDATE files SET nduplicates = nduplicates + 1, remaining = remaining - 1 WHERE id = $1";
static const char FILE_JOBS[] =
    "UPDATE files SET first_job = $2, last_job = $3, njobs = $4, "
    "remaining = CASE WHEN remaining IS NOT NULL THEN $4 - nduplicates END WHERE id = $1";
#define FILE_COLS "id, name, njobs, nduplicates, remaining, results, results_done"
/* a node's own files, or every file for a store without a node (the CLI's) */
#define OWN_FILES "($1::text IS NULL OR node_name = $1)"
static const char FILES_RESULTS_DUE[] =
    "SELECT " FILE_COLS ", NULL FROM files WHERE remaining = 0 AND results IS NULL AND " OWN_FILES
    " ORDER BY id";
static const char FILES_RESULTS_PENDING[] =
    "SELECT " FILE_COLS
    ", NULL FROM files WHERE results IS NOT NULL AND results_done = 0 AND " OWN_FILES
    " ORDER BY id";
static const char RESULTS_NAME_TAKEN[] =
    "SELECT 1 FROM files WHERE results IS NOT NULL AND results = $1 LIMIT 1";
static const char FILE_RESULTS_SET[] =
    "UPDATE files SET results = $2 WHERE id = $1 AND results IS NULL";
static const char FILE_RESULTS_DONE[] = "UPDATE files SET results_done = 1 WHERE id = $1";
/* by name, or as `segspool submit` named it (its 29-character prefix, then the name) */
static const char FILES_NAMED[] =
    "SELECT " FILE_COLS ", NULL FROM files WHERE name = $1 OR "
    "(name ~ '^[0-9]{13}-[0-9]{7}-[0-9]{6}-' AND substr(name, 30) = $1) ORDER BY id";
static const char FILE_OF_JOB[] =
    "SELECT f.id, f.name, f.njobs, f.nduplicates, f.remaining, f.results, f.results_done, "
    "j.line FROM jobs j JOIN files f ON f.id = j.file_id WHERE j.id = $1";

/* store_file_begin - the files row first, so the jobs can name it; with the node that
 * ingested it, which writes its results file. */
int store_file_begin(struct store *st, const char *name, const char *hash,
                     const struct store_file_id *id, int64_t now_ms, int njobs, int results,
                     int64_t *file_id)
{
	enum pg_wrap how;
	struct pg_params p;
	int rc = -1;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_text(&p, name);
	pg_param_text(&p, hash);
	pg_param_i64(&p, id->dev);
	pg_param_i64(&p, id->ino);
	pg_param_i64(&p, id->ctime_ns);
	pg_param_i64(&p, id->size);
	pg_param_i64(&p, now_ms);
	pg_param_i64(&p, njobs);
	pg_param_i64(&p, results != 0);
	pg_param_text(&p, st->node_name);
	PGresult *r = pg_query(st, FILE_BEGIN, &p, "record an ingested file");
	if (r && PQntuples(r) == 1) {
		*file_id = pg_get_i64(r, 0, 0, 0);
		rc = 0;
	} else if (r) {
		pg_fail(st, "record an ingested file: no id returned");
	}
	PQclear(r);
	return pg_op_end(st, how, rc);
}

/* store_file_dup - the line, and one job fewer for the file to wait for. */
int store_file_dup(struct store *st, int64_t file_id, int line, int64_t job_id)
{
	enum pg_wrap how;
	struct pg_params p;
	int rc = -1;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_i64(&p, file_id);
	pg_param_i64(&p, line);
	pg_param_i64(&p, job_id);
	if (pg_run(st, FILE_DUP, &p, "record a duplicate line of a file") >= 0) {
		pg_params_init(&p);
		pg_param_i64(&p, file_id);
		rc =
		    pg_run(st, FILE_DUP_COUNT, &p, "count a duplicate line of a file") < 0 ? -1 : 0;
	}
	return pg_op_end(st, how, rc);
}

/* store_file_jobs - the first and last of the file's jobs (for the record: with several
 * nodes ingesting, others' jobs may lie between), and their count. */
int store_file_jobs(struct store *st, int64_t file_id, int64_t first, int64_t last, int njobs)
{
	enum pg_wrap how;
	struct pg_params p;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_i64(&p, file_id);
	pg_param_i64_or_null(&p, first, 0);
	pg_param_i64_or_null(&p, last, 0);
	pg_param_i64(&p, njobs);
	int rc = pg_run(st, FILE_JOBS, &p, "record the jobs of a file") < 0 ? -1 : 0;
	return pg_op_end(st, how, rc);
}

/* read_file_rec - a row of FILE_COLS and a line. */
static void read_file_rec(const PGresult *r, int i, struct file_rec *f)
{
	f->id = pg_get_i64(r, i, 0, 0);
	f->name = pg_get_text(r, i, 1);
	f->njobs = pg_get_i64(r, i, 2, 0);
	f->nduplicates = pg_get_i64(r, i, 3, 0);
	f->remaining = pg_get_i64(r, i, 4, STORE_NONE);
	f->results = pg_get_text(r, i, 5);
	f->results_done = (int)pg_get_i64(r, i, 6, 0);
	f->line = pg_get_i64(r, i, 7, STORE_NONE);
}

/* files_foreach - each row of r to fn, r cleared; 0 (1 when there was none), -1. */
static int files_foreach(PGresult *r, store_file_fn fn, void *arg)
{
	struct file_rec f;
	if (!r)
		return -1;
	int n = PQntuples(r);
	for (int i = 0; i < n; i++) {
		read_file_rec(r, i, &f);
		if (fn(&f, arg))
			break;
	}
	PQclear(r);
	return n == 0;
}

/* own_files - sql ($1 the node's name, NULL for every node's) on the files. */
static PGresult *own_files(struct store *st, const char *sql)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, st->node_name);
	return pg_query(st, sql, &p, "read the files");
}

/* settle_counts - inside a transaction, the files' counts of ended jobs as it left them:
 * the deferred trigger (sql/postgresql/001_init.sql) runs now for the changes so far
 * rather than at the commit, for a read that must see them. The daemon reads just before
 * its commit, so the files' rows are locked from then, as the commit would lock them. */
static int settle_counts(struct store *st)
{
	if (st->pipe.on && !st->pipe.txn)
		return 0;
	if (!st->pipe.on && PQtransactionStatus(st->main.conn) != PQTRANS_INTRANS)
		return 0;
	if (pg_exec_text(st, "SET CONSTRAINTS jobs_file_remaining IMMEDIATE",
	                 "count the files' ended jobs") < 0)
		return -1;
	return pg_exec_text(st, "SET CONSTRAINTS jobs_file_remaining DEFERRED",
	                    "defer the files' counts again");
}

/* pg_files_due_send - see pg_int.h: after the transaction's last change, so it sees
 * them all (names reserved in it too: those files are not due again). */
int pg_files_due_send(struct store *st)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, st->node_name);
	if (settle_counts(st) < 0)
		return -1;
	return pg_pipe_send(st, FILES_RESULTS_DUE, &p, PG_PEND_FILES_DUE, "read the files");
}

/* store_files_results_due - this node's files whose jobs have all ended, unnamed; in the
 * pipeline, those the last commit's probe found (pg_files_due_send). */
int store_files_results_due(struct store *st, store_file_fn fn, void *arg)
{
	if (st->pipe.on) {
		PGresult *r = st->pipe.files_due;
		st->pipe.files_due = NULL;
		if (st->pipe.failed) {
			PQclear(r);
			return -1;
		}
		return r ? (files_foreach(r, fn, arg) < 0 ? -1 : 0) : 0;
	}
	if (settle_counts(st) < 0)
		return -1;
	return files_foreach(own_files(st, FILES_RESULTS_DUE), fn, arg) < 0 ? -1 : 0;
}

/* store_files_results_pending - this node's files whose results file is named but not
 * in place. */
int store_files_results_pending(struct store *st, store_file_fn fn, void *arg)
{
	return files_foreach(own_files(st, FILES_RESULTS_PENDING), fn, arg) < 0 ? -1 : 0;
}

/* store_results_name_taken - whether a file's results file has this path. */
int store_results_name_taken(struct store *st, const char *path)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, path);
	PGresult *r = pg_query(st, RESULTS_NAME_TAKEN, &p, "look up a results file's name");
	if (!r)
		return -1;
	int taken = PQntuples(r) > 0;
	PQclear(r);
	return taken;
}

/* file_update - sql ($1 the file, $2 path when given) on one file. */
static int file_update(struct store *st, const char *sql, int64_t file_id, const char *path)
{
	enum pg_wrap how;
	struct pg_params p;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_i64(&p, file_id);
	if (path)
		pg_param_text(&p, path);
	int rc = pg_run(st, sql, &p, "record a results file") < 0 ? -1 : 0;
	return pg_op_end(st, how, rc);
}

/* store_file_results_set - the chosen path. */
int store_file_results_set(struct store *st, int64_t file_id, const char *path)
{
	return file_update(st, FILE_RESULTS_SET, file_id, path);
}

/* store_file_results_done - the file is in place. */
int store_file_results_done(struct store *st, int64_t file_id)
{
	return file_update(st, FILE_RESULTS_DONE, file_id, NULL);
}

struct results_arg {
	store_result_fn fn;
	void *arg;
};

/* result_row - a streamed row of the file's lines to the caller's fn. */
static int result_row(const PGresult *r, int i, void *arg)
{
	struct results_arg *a = arg;
	struct result_rec rec;
	rec.line = pg_get_i64(r, i, 0, 0);
	rec.id = pg_get_i64(r, i, 1, 0);
	rec.key = pg_get_text(r, i, 2);
	rec.op_id = pg_get_text(r, i, 3);
	rec.state = (enum job_state)pg_get_i64(r, i, 4, 0);
	rec.result_json = pg_get_text(r, i, 5);
	rec.error_json = pg_get_text(r, i, 6);
	rec.duplicate = (int)pg_get_i64(r, i, 7, 0);
	return a->fn(&rec, a->arg);
}

/* store_file_results_foreach - the file's jobs and its duplicate lines, merged by line
 * (both indexes are in (file_id, line) order: the planner merges them without a sort of
 * the file), streamed from a cursor a chunk at a time. */
int store_file_results_foreach(struct store *st, int64_t file_id, store_result_fn fn, void *arg)
{
	struct strbuf sql = STRBUF_INIT;
	struct results_arg a = {fn, arg};
	sb_addf(&sql,
	        "SELECT line, id, key, op_id, state, result_json, error_json, 0 AS dup "
	        "FROM jobs WHERE file_id = %" PRId64 " UNION ALL "
	        "SELECT d.line, j.id, j.key, j.op_id, j.state, j.result_json, j.error_json, 1 "
	        "FROM file_dups d JOIN jobs j ON j.id = d.job_id WHERE d.file_id = %" PRId64
	        " ORDER BY 1, 8, 2",
	        file_id, file_id);
	int rc = pg_cursor_foreach(st, sql.buf, "read the lines of a file", result_row, &a);
	sb_release(&sql);
	return rc;
}

/* store_files_named - by name as given, or as submitted under it. */
int store_files_named(struct store *st, const char *name, store_file_fn fn, void *arg)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, name);
	if (settle_counts(st) < 0)
		return -1;
	return files_foreach(pg_query(st, FILES_NAMED, &p, "read the files"), fn, arg) < 0 ? -1 : 0;
}

/* store_file_of_job - the job's file and line; 1 when it has none. */
int store_file_of_job(struct store *st, int64_t job_id, store_file_fn fn, void *arg)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_i64(&p, job_id);
	if (settle_counts(st) < 0)
		return -1;
	return files_foreach(pg_query(st, FILE_OF_JOB, &p, "read the files"), fn, arg);
}

/* store_list_file - the jobs of one file in its order (by line); limit <= 0: all. */
int store_list_file(struct store *st, int64_t file_id, int limit, store_summary_fn fn, void *arg)
{
	struct strbuf sql = STRBUF_INIT;
	sb_addf(&sql,
	        "SELECT j.id, j.state, j.op_id, j.key, j.workspace, j.priority, j.attempts, "
	        "j.created_ms, j.next_run_ms, j.parent_id, CASE WHEN j.state = 3 THEN NULL "
	        "ELSE coalesce((SELECT reason FROM transitions t WHERE t.job_id = j.id "
	        "ORDER BY t.id DESC LIMIT 1), 'ingested from ' || j.source_file) END "
	        "FROM jobs j WHERE j.file_id = %" PRId64 " ORDER BY j.line, j.id",
	        file_id);
	if (limit > 0)
		sb_addf(&sql, " LIMIT %d", limit);
	int rc = pg_summaries_foreach(st, sql.buf, "list the jobs of a file", fn, arg);
	sb_release(&sql);
	return rc;
}
