/* sqlite_ingest.c - what ingest asks the store: which files were seen, whose outputs
 * and keys are taken, and the jobs inserted. */
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

/* --- ingest ------------------------------------------------------------------------- */

/* bind_file_id - a file's identity as ?3..?6. */
static void bind_file_id(sqlite3_stmt *s, const struct store_file_id *id)
{
	sqlite3_bind_int64(s, 3, id->dev);
	sqlite3_bind_int64(s, 4, id->ino);
	sqlite3_bind_int64(s, 5, id->ctime_ns);
	sqlite3_bind_int64(s, 6, id->size);
}

/* store_file_seen - whether this very file was ingested (or, for rows older than the
 * identities, a file of this name and content). */
int store_file_seen(struct store *st, const char *name, const char *hash,
                    const struct store_file_id *id)
{
	sqlite3_stmt *s = sq_prep(st, S_FILE_SEEN);
	if (!s)
		return -1;
	sq_bind_text(s, 1, name);
	sq_bind_text(s, 2, hash);
	int seen = STORE_FILE_NEW, rc;
	while ((rc = sq_step(st, s, "look up an ingested file")) == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) == SQLITE_NULL) {
			seen = STORE_FILE_LEGACY; /* this very file, if one matches, wins */
			continue;
		}
		if (sqlite3_column_int64(s, 0) == id->dev &&
		    sqlite3_column_int64(s, 1) == id->ino &&
		    sqlite3_column_int64(s, 2) == id->ctime_ns &&
		    sqlite3_column_int64(s, 3) == id->size) {
			seen = STORE_FILE_SAME;
			break;
		}
	}
	if (rc < 0)
		return -1;
	sq_done(s);
	return seen;
}

/* store_file_record - notes one ingest of a file, and how many jobs it gave. */
int store_file_record(struct store *st, const char *name, const char *hash,
                      const struct store_file_id *id, int64_t now_ms, int njobs, int nduplicates)
{
	enum op_wrap how;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_FILE_RECORD);
	int rc = -1;
	if (s) {
		sq_bind_text(s, 1, name);
		sq_bind_text(s, 2, hash);
		bind_file_id(s, id);
		sqlite3_bind_int64(s, 7, now_ms);
		sqlite3_bind_int(s, 8, njobs);
		sqlite3_bind_int(s, 9, nduplicates);
		rc = sq_run(st, s, "record an ingested file");
	}
	return sq_op_end(st, how, rc);
}

/* store_file_adopt - identity-less rows of name and hash take this file's identity. */
int store_file_adopt(struct store *st, const char *name, const char *hash,
                     const struct store_file_id *id)
{
	enum op_wrap how;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_FILE_ADOPT);
	int rc = -1;
	if (s) {
		sq_bind_text(s, 1, name);
		sq_bind_text(s, 2, hash);
		bind_file_id(s, id);
		rc = sq_run(st, s, "record an ingested file's identity");
	}
	return sq_op_end(st, how, rc);
}

/* output_query - one lookup of S_OUTPUT_TAKEN or S_OUTPUT_BELOW for n bytes of path:
 * 1 with the job found, 0 none, -1 error. */
static int output_query(struct store *st, enum stmt_id id, const char *path, size_t n,
                        int64_t *job_id, char **other)
{
	sqlite3_stmt *s = sq_prep(st, id);
	if (!s)
		return -1;
	sqlite3_bind_text(s, 1, path, (int)n, SQLITE_STATIC);
	int rc = sq_step(st, s, "look up the outputs of unfinished jobs");
	if (rc < 0)
		return -1;
	int found = rc == SQLITE_ROW;
	if (found) {
		*job_id = sqlite3_column_int64(s, 0);
		*other = sq_column_dup(s, 1);
	}
	sq_done(s);
	return found;
}

/* store_output_conflict - path itself, each of its directories, then below it: one index
 * seek each. */
int store_output_conflict(struct store *st, const char *path, int64_t *job_id, char **other)
{
	*other = NULL;
	int rc = output_query(st, S_OUTPUT_TAKEN, path, strlen(path), job_id, other);
	for (const char *p = path; rc == 0 && (p = strchr(p, '/')); p++)
		rc = output_query(st, S_OUTPUT_TAKEN, path, (size_t)(p - path), job_id, other);
	if (rc == 0)
		rc = output_query(st, S_OUTPUT_BELOW, path, strlen(path), job_id, other);
	return rc;
}

/* store_key_recorded - whether a job with this idempotency key is recorded. */
int store_key_recorded(struct store *st, const char *key)
{
	int64_t id;
	return store_job_id_by_key(st, key, &id);
}

/* check_path - path still names the inode dev/ino: 0, or -1 with what happened in why. */
static int check_path(const char *path, dev_t dev, ino_t ino, const char *what, struct strbuf *why)
{
	struct stat sb;
	if (stat(path, &sb) < 0) {
		if (errno == ENOENT)
			sb_addf(why, "%s %s was removed while it was open", what, path);
		else
			sb_addf(why, "cannot check %s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (sb.st_dev != dev || sb.st_ino != ino) {
		sb_addf(why, "%s %s was replaced by another file while it was open", what, path);
		return -1;
	}
	return 0;
}

/* store_check_file - the database and its WAL are still where they were opened. */
int store_check_file(struct store *st, char **err_out)
{
	struct strbuf why = STRBUF_INIT, wal = STRBUF_INIT;
	struct stat sb;
	int rc = 0;
	*err_out = NULL;
	if (st->db_fd < 0)
		return 0;
	if (fstat(st->db_fd, &sb) == 0 && sb.st_nlink == 0) {
		sb_addf(&why, "database %s was removed while it was open", st->path);
		rc = -1;
	} else if (check_path(st->path, st->db_dev, st->db_ino, "database", &why) < 0) {
		rc = -1;
	} else if (st->have_wal) {
		sb_addf(&wal, "%s-wal", st->path);
		/* its commits live there until a checkpoint copies them into the database */
		rc = check_path(wal.buf, st->wal_dev, st->wal_ino, "the write-ahead log", &why);
	}
	sb_release(&wal);
	if (rc == 0) {
		sb_release(&why);
		return 0;
	}
	*err_out = sb_detach(&why, NULL);
	return -1;
}

/* record_transition - the history row of a state change (from < 0: none). */
int sq_record_transition(struct store *st, int64_t id, int from, enum job_state to, int64_t now_ms,
                         const char *reason)
{
	sqlite3_stmt *s = sq_prep(st, S_TRANSITION_ADD);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (from >= 0)
		sqlite3_bind_int(s, 2, from);
	sqlite3_bind_int(s, 3, (int)to);
	sqlite3_bind_int64(s, 4, now_ms);
	sq_bind_text(s, 5, reason);
	return sq_run(st, s, "record a state change");
}

/* store_job_id_by_key - the id of the job holding an idempotency key: 1 found, 0 not, -1. */
int store_job_id_by_key(struct store *st, const char *key, int64_t *id)
{
	sqlite3_stmt *s = sq_prep(st, S_JOB_BY_KEY);
	if (!s)
		return -1;
	sq_bind_text(s, 1, key);
	int rc = sq_step(st, s, "look up a job key");
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(s, 0);
	sq_done(s);
	return rc < 0 ? -1 : rc == SQLITE_ROW;
}

/* insert_job - the jobs row, which is also its creation's history (CREATION_REASON). */
static int insert_job(struct store *st, const struct job_new *job, int64_t now_ms, int64_t *id)
{
	/* a file's job also names its file and line (sql/sqlite/010_results.sql) */
	sqlite3_stmt *s = sq_prep(st, job->file_id ? S_JOB_INSERT_FILE : S_JOB_INSERT);
	if (!s)
		return -1;
	sq_bind_int64_or_null(s, 1, job->parent_id, 0);
	sq_bind_text(s, 2, job->op_id);
	sq_bind_text(s, 3, job->spec_json);
	sq_bind_text(s, 4, job->key);
	sq_bind_text(s, 5, job->workspace);
	sq_bind_text(s, 6, job->output_path);
	sq_bind_text(s, 7, job->source_file);
	sqlite3_bind_int(s, 8, job->priority);
	sqlite3_bind_int64(s, 9, job->not_before_ms);
	sqlite3_bind_int64(s, 10, job->not_before_ms > now_ms ? job->not_before_ms : now_ms);
	sqlite3_bind_int(s, 11, job->max_attempts);
	sqlite3_bind_int64(s, 12, now_ms);
	sqlite3_bind_int(s, 13, job->paginated != 0);
	sqlite3_bind_int(s, 14, job->mutates != 0);
	if (job->file_id) {
		sqlite3_bind_int64(s, 15, job->file_id);
		sqlite3_bind_int(s, 16, job->line);
	}
	if (sq_run(st, s, "insert a job") < 0)
		return -1;
	*id = sqlite3_last_insert_rowid(st->db);
	return 0;
}

/* store_job_insert - a new queued job, unless its key is already recorded. */
int store_job_insert(struct store *st, const struct job_new *job, int64_t now_ms, int64_t *id)
{
	enum op_wrap how;
	int rc;
	if (!job->op_id || !job->spec_json) {
		sq_set_err(st, "cannot insert a job without an operation and a spec");
		return -1;
	}
	if (sq_op_begin(st, &how) < 0)
		return -1;
	/* looked up under the write lock, so no other writer can slip the key in between */
	rc = job->key ? store_job_id_by_key(st, job->key, id) : 0;
	if (rc == 0)
		rc = insert_job(st, job, now_ms, id) < 0 ? -1 : STORE_INSERTED;
	else if (rc > 0)
		rc = STORE_DUPLICATE;
	return sq_op_end(st, how, rc);
}
