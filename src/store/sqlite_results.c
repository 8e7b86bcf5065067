/* sqlite_results.c - what one results file per batch (issue 13) asks the store: a file
 * recorded before its jobs, its duplicate lines, the files whose results are due or not
 * yet in place, and the file's lines streamed in its order (sql/sqlite/010_results.sql). */
#include "sqlite_int.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* --- files.remaining, counted in memory (sql/sqlite/012_remaining_counted.sql) ---- */

/* sq_files_count - one more change of file_id's count, until the next flush. */
void sq_files_count(struct store *st, int64_t file_id, int delta)
{
	size_t i = st->ncounts;
	/* a transaction's jobs come mostly from one file, or a few: the last first */
	while (i > 0 && st->counts[i - 1].file_id != file_id)
		i--;
	if (i > 0) {
		st->counts[i - 1].delta += delta;
		return;
	}
	if (st->ncounts == st->counts_alloc) {
		st->counts_alloc = st->counts_alloc ? 2 * st->counts_alloc : 8;
		st->counts = xrealloc(st->counts, st->counts_alloc * sizeof(*st->counts));
	}
	st->counts[st->ncounts].file_id = file_id;
	st->counts[st->ncounts++].delta = delta;
}

/* sq_files_flush - one UPDATE per file whose count changed; none left counted. */
int sq_files_flush(struct store *st)
{
	for (size_t i = 0; i < st->ncounts; i++) {
		if (!st->counts[i].delta)
			continue;
		sqlite3_stmt *s = sq_prep(st, S_FILE_REMAINING_ADD);
		if (!s)
			return -1;
		sqlite3_bind_int64(s, 1, st->counts[i].file_id);
		sqlite3_bind_int64(s, 2, st->counts[i].delta);
		if (sq_run(st, s, "count the ended jobs of a file") < 0)
			return -1;
	}
	st->ncounts = 0;
	return 0;
}

/* sq_files_discard - what was counted since the last flush, forgotten. */
void sq_files_discard(struct store *st)
{
	st->ncounts = 0;
	memset(st->file_of, 0, sizeof(st->file_of));
}

/* sq_file_of_note - kept in the job's slot, in place of the job there. */
void sq_file_of_note(struct store *st, int64_t job_id, int64_t file_id)
{
	struct file_of *f = &st->file_of[(uint64_t)job_id & (STORE_FILE_OF - 1)];
	f->job_id = job_id;
	f->file_id = file_id;
}

/* sq_file_of - from the claimed jobs kept, else from the job's row. */
int sq_file_of(struct store *st, int64_t job_id, int64_t *file_id)
{
	const struct file_of *f = &st->file_of[(uint64_t)job_id & (STORE_FILE_OF - 1)];
	if (f->job_id == job_id) {
		*file_id = f->file_id;
		return 0;
	}
	sqlite3_stmt *s = sq_prep(st, S_JOB_FILE);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, job_id);
	int rc = sq_step(st, s, "read a job's file");
	*file_id = rc == SQLITE_ROW ? sq_column_int64_or(s, 0, 0) : 0;
	sq_done(s);
	return rc < 0 ? -1 : 0;
}

/* --- files ----------------------------------------------------------------------- */

/* store_file_begin - the files row first, so the jobs can name it. */
int store_file_begin(struct store *st, const char *name, const char *hash,
                     const struct store_file_id *id, int64_t now_ms, int njobs, int results,
                     int64_t *file_id)
{
	enum op_wrap how;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_FILE_BEGIN);
	int rc = -1;
	if (s) {
		sq_bind_text(s, 1, name);
		sq_bind_text(s, 2, hash);
		sqlite3_bind_int64(s, 3, id->dev);
		sqlite3_bind_int64(s, 4, id->ino);
		sqlite3_bind_int64(s, 5, id->ctime_ns);
		sqlite3_bind_int64(s, 6, id->size);
		sqlite3_bind_int64(s, 7, now_ms);
		sqlite3_bind_int(s, 8, njobs);
		sqlite3_bind_int(s, 9, results != 0);
		rc = sq_run(st, s, "record an ingested file");
		if (rc == 0)
			*file_id = sqlite3_last_insert_rowid(st->db);
	}
	return sq_op_end(st, how, rc);
}

/* store_file_dup - the line, and one job fewer for the file to wait for. */
int store_file_dup(struct store *st, int64_t file_id, int line, int64_t job_id)
{
	enum op_wrap how;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_FILE_DUP);
	int rc = -1;
	if (s) {
		sqlite3_bind_int64(s, 1, file_id);
		sqlite3_bind_int(s, 2, line);
		sqlite3_bind_int64(s, 3, job_id);
		rc = sq_run(st, s, "record a duplicate line of a file");
	}
	if (rc == 0 && (s = sq_prep(st, S_FILE_DUP_COUNT)) != NULL) {
		sqlite3_bind_int64(s, 1, file_id);
		rc = sq_run(st, s, "count a duplicate line of a file");
	} else if (rc == 0) {
		rc = -1;
	}
	return sq_op_end(st, how, rc);
}

/* store_file_jobs - the range of rowids the file's jobs took, and their count. */
int store_file_jobs(struct store *st, int64_t file_id, int64_t first, int64_t last, int njobs)
{
	enum op_wrap how;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	if (sq_files_flush(st) < 0) /* it sets remaining outright */
		return sq_op_end(st, how, -1);
	sqlite3_stmt *s = sq_prep(st, S_FILE_JOBS);
	int rc = -1;
	if (s) {
		sqlite3_bind_int64(s, 1, file_id);
		sq_bind_int64_or_null(s, 2, first, 0);
		sq_bind_int64_or_null(s, 3, last, 0);
		sqlite3_bind_int(s, 4, njobs);
		rc = sq_run(st, s, "record the jobs of a file");
	}
	return sq_op_end(st, how, rc);
}

/* read_file_rec - a row of FILE_COLS and a line (sqlite_sql.c). */
static void read_file_rec(sqlite3_stmt *s, struct file_rec *f)
{
	f->id = sqlite3_column_int64(s, 0);
	f->name = (const char *)sqlite3_column_text(s, 1);
	f->njobs = sqlite3_column_int64(s, 2);
	f->nduplicates = sqlite3_column_int64(s, 3);
	f->remaining = sq_column_int64_or(s, 4, STORE_NONE);
	f->results = (const char *)sqlite3_column_text(s, 5);
	f->results_done = sqlite3_column_int(s, 6);
	f->line = sq_column_int64_or(s, 7, STORE_NONE);
}

/* files_foreach - each row of s to fn; 0 (1 when there was none), -1. */
static int files_foreach(struct store *st, sqlite3_stmt *s, store_file_fn fn, void *arg)
{
	struct file_rec f;
	int rc, any = 0;
	while ((rc = sq_step(st, s, "read the files")) == SQLITE_ROW) {
		any = 1;
		read_file_rec(s, &f);
		if (fn(&f, arg))
			break;
	}
	sq_done(s);
	return rc < 0 ? -1 : !any;
}

/* store_files_results_due - files whose jobs have all ended, without a results name. */
int store_files_results_due(struct store *st, store_file_fn fn, void *arg)
{
	if (sq_files_flush(st) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_FILES_RESULTS_DUE);
	return s && files_foreach(st, s, fn, arg) >= 0 ? 0 : -1;
}

/* store_files_results_pending - files whose results file is named but not in place. */
int store_files_results_pending(struct store *st, store_file_fn fn, void *arg)
{
	sqlite3_stmt *s = sq_prep(st, S_FILES_RESULTS_PENDING);
	return s && files_foreach(st, s, fn, arg) >= 0 ? 0 : -1;
}

/* store_results_name_taken - whether a file's results file has this path. */
int store_results_name_taken(struct store *st, const char *path)
{
	sqlite3_stmt *s = sq_prep(st, S_RESULTS_NAME_TAKEN);
	if (!s)
		return -1;
	sq_bind_text(s, 1, path);
	int rc = sq_step(st, s, "look up a results file's name");
	sq_done(s);
	return rc < 0 ? -1 : rc == SQLITE_ROW;
}

/* file_update - S_FILE_RESULTS_SET or _DONE on one file. */
static int file_update(struct store *st, enum stmt_id id, int64_t file_id, const char *path)
{
	enum op_wrap how;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	/* a name chosen stops the count: what was counted before it is written first */
	if (sq_files_flush(st) < 0)
		return sq_op_end(st, how, -1);
	sqlite3_stmt *s = sq_prep(st, id);
	int rc = -1;
	if (s) {
		sqlite3_bind_int64(s, 1, file_id);
		if (path)
			sq_bind_text(s, 2, path);
		rc = sq_run(st, s, "record a results file");
	}
	return sq_op_end(st, how, rc);
}

/* store_file_results_set - the chosen path. */
int store_file_results_set(struct store *st, int64_t file_id, const char *path)
{
	return file_update(st, S_FILE_RESULTS_SET, file_id, path);
}

/* store_file_results_done - the file is in place. */
int store_file_results_done(struct store *st, int64_t file_id)
{
	return file_update(st, S_FILE_RESULTS_DONE, file_id, NULL);
}

/* read_result - a row of S_FILE_RESULT_JOBS / _DUPS. */
static void read_result(sqlite3_stmt *s, struct result_rec *r, int duplicate)
{
	r->line = sq_column_int64_or(s, 0, 0);
	r->id = sqlite3_column_int64(s, 1);
	r->key = (const char *)sqlite3_column_text(s, 2);
	r->op_id = (const char *)sqlite3_column_text(s, 3);
	r->state = (enum job_state)sqlite3_column_int(s, 4);
	r->result_json = (const char *)sqlite3_column_text(s, 5);
	r->error_json = (const char *)sqlite3_column_text(s, 6);
	r->duplicate = duplicate;
}

/* store_file_results_foreach - the file's jobs (by rowid, which is the file's order) and
 * its duplicate lines (by line), merged by line: two ordered scans, no sort, so nothing
 * is held but the current row of each. */
int store_file_results_foreach(struct store *st, int64_t file_id, store_result_fn fn, void *arg)
{
	sqlite3_stmt *jobs = sq_prep(st, S_FILE_RESULT_JOBS);
	sqlite3_stmt *dups = jobs ? sq_prep(st, S_FILE_RESULT_DUPS) : NULL;
	if (!dups)
		return -1;
	sqlite3_bind_int64(jobs, 1, file_id);
	sqlite3_bind_int64(dups, 1, file_id);
	int jrc = sq_step(st, jobs, "read the jobs of a file");
	int drc = jrc < 0 ? -1 : sq_step(st, dups, "read the duplicate lines of a file");
	int stop = 0;
	struct result_rec r;
	while (!stop && jrc == SQLITE_ROW && drc >= 0) {
		if (drc == SQLITE_ROW &&
		    sqlite3_column_int64(dups, 0) < sqlite3_column_int64(jobs, 0)) {
			read_result(dups, &r, 1);
			stop = fn(&r, arg);
			drc = sq_step(st, dups, "read the duplicate lines of a file");
		} else {
			read_result(jobs, &r, 0);
			stop = fn(&r, arg);
			jrc = sq_step(st, jobs, "read the jobs of a file");
		}
	}
	while (!stop && jrc == SQLITE_DONE && drc == SQLITE_ROW) {
		read_result(dups, &r, 1);
		stop = fn(&r, arg);
		drc = sq_step(st, dups, "read the duplicate lines of a file");
	}
	sq_done(jobs);
	sq_done(dups);
	return jrc < 0 || drc < 0 ? -1 : 0;
}

/* store_files_named - by name as given, or as submitted under it. */
int store_files_named(struct store *st, const char *name, store_file_fn fn, void *arg)
{
	if (sq_files_flush(st) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_FILES_NAMED);
	if (!s)
		return -1;
	sq_bind_text(s, 1, name);
	return files_foreach(st, s, fn, arg) < 0 ? -1 : 0;
}

/* store_file_of_job - the job's file and line. */
int store_file_of_job(struct store *st, int64_t job_id, store_file_fn fn, void *arg)
{
	if (sq_files_flush(st) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_FILE_OF_JOB);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, job_id);
	return files_foreach(st, s, fn, arg);
}
