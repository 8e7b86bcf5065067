/* pg_ingest.c - what ingest asks the PostgreSQL store: which files were seen, whose
 * outputs and keys are taken, and the jobs inserted. Several nodes may ingest at once:
 * a key is taken by the first insert to commit (ON CONFLICT), never by a lookup first. */
#include "pg_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* params_file_id - name, hash and a file's identity as $1..$6. */
static void params_file_id(struct pg_params *p, const char *name, const char *hash,
                           const struct store_file_id *id)
{
	pg_params_init(p);
	pg_param_text(p, name);
	pg_param_text(p, hash);
	pg_param_i64(p, id->dev);
	pg_param_i64(p, id->ino);
	pg_param_i64(p, id->ctime_ns);
	pg_param_i64(p, id->size);
}

/* store_file_seen - whether this very file was ingested (or, for rows older than the
 * identities, a file of this name and content); the rows compared in C, as in SQLite. */
int store_file_seen(struct store *st, const char *name, const char *hash,
                    const struct store_file_id *id)
{
	static const char sql[] =
	    "SELECT dev, ino, ctime_ns, size FROM files WHERE name = $1 AND hash = $2";
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, name);
	pg_param_text(&p, hash);
	PGresult *r = pg_query(st, sql, &p, "look up an ingested file");
	if (!r)
		return -1;
	int seen = STORE_FILE_NEW;
	for (int i = 0; i < PQntuples(r); i++) {
		if (PQgetisnull(r, i, 0)) {
			seen = STORE_FILE_LEGACY; /* this very file, if one matches, wins */
			continue;
		}
		if (pg_get_i64(r, i, 0, 0) == id->dev && pg_get_i64(r, i, 1, 0) == id->ino &&
		    pg_get_i64(r, i, 2, 0) == id->ctime_ns && pg_get_i64(r, i, 3, 0) == id->size) {
			seen = STORE_FILE_SAME;
			break;
		}
	}
	PQclear(r);
	return seen;
}

/* store_file_record - notes one ingest of a file, and how many jobs it gave; the node
 * that ingested it is named with it. */
int store_file_record(struct store *st, const char *name, const char *hash,
                      const struct store_file_id *id, int64_t now_ms, int njobs, int nduplicates)
{
	static const char sql[] =
	    "INSERT INTO files (name, hash, dev, ino, ctime_ns, size, ingested_ms, njobs, "
	    "nduplicates, node_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
	enum pg_wrap how;
	struct pg_params p;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	params_file_id(&p, name, hash, id);
	pg_param_i64(&p, now_ms);
	pg_param_i64(&p, njobs);
	pg_param_i64(&p, nduplicates);
	pg_param_text(&p, st->node_name);
	int rc = pg_run(st, sql, &p, "record an ingested file") < 0 ? -1 : 0;
	return pg_op_end(st, how, rc);
}

/* store_file_adopt - identity-less rows of name and hash take this file's identity. */
int store_file_adopt(struct store *st, const char *name, const char *hash,
                     const struct store_file_id *id)
{
	static const char sql[] = "UPDATE files SET dev = $3, ino = $4, ctime_ns = $5, size = $6 "
	                          "WHERE name = $1 AND hash = $2 AND dev IS NULL";
	enum pg_wrap how;
	struct pg_params p;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	params_file_id(&p, name, hash, id);
	int rc = pg_run(st, sql, &p, "record an ingested file's identity") < 0 ? -1 : 0;
	return pg_op_end(st, how, rc);
}

/* unfinished jobs' outputs: the path itself or one of its directories ($1 each in
 * turn), and then what lies below it, in byte order (COLLATE "C", as the jobs_output
 * index: in a language's collation '/' and '0' need not be neighbours) */
static const char output_taken_sql[] =
    "SELECT id, output_path FROM jobs WHERE state IN (0, 1, 2) AND "
    "output_path COLLATE \"C\" = $1 LIMIT 1";
static const char output_below_sql[] =
    "SELECT id, output_path FROM jobs WHERE state IN (0, 1, 2) AND "
    "output_path COLLATE \"C\" >= $1 || '/' AND output_path COLLATE \"C\" < $1 || '0' "
    "ORDER BY output_path COLLATE \"C\" LIMIT 1";

/* output_query - one lookup of sql for n bytes of path: 1 with the job found, 0 none,
 * -1 error. */
static int output_query(struct store *st, const char *sql, const char *path, size_t n,
                        int64_t *job_id, char **other)
{
	struct pg_params p;
	char *part = xstrndup(path, n);
	pg_params_init(&p);
	pg_param_text(&p, part);
	PGresult *r = pg_query(st, sql, &p, "look up the outputs of unfinished jobs");
	free(part);
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found) {
		*job_id = pg_get_i64(r, 0, 0, 0);
		*other = pg_get_dup(r, 0, 1);
	}
	PQclear(r);
	return found;
}

/* store_output_conflict - path itself, each of its directories, then below it. */
int store_output_conflict(struct store *st, const char *path, int64_t *job_id, char **other)
{
	*other = NULL;
	int rc = output_query(st, output_taken_sql, path, strlen(path), job_id, other);
	for (const char *s = path; rc == 0 && (s = strchr(s, '/')); s++)
		rc = output_query(st, output_taken_sql, path, (size_t)(s - path), job_id, other);
	if (rc == 0)
		rc = output_query(st, output_below_sql, path, strlen(path), job_id, other);
	return rc;
}

/* store_key_recorded - whether a job with this idempotency key is recorded. */
int store_key_recorded(struct store *st, const char *key)
{
	int64_t id;
	return store_job_id_by_key(st, key, &id);
}

/* store_job_id_by_key - the id of the job holding an idempotency key: 1 found, 0 not, -1. */
int store_job_id_by_key(struct store *st, const char *key, int64_t *id)
{
	static const char sql[] = "SELECT id FROM jobs WHERE key = $1";
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, key);
	PGresult *r = pg_query(st, sql, &p, "look up a job key");
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found)
		*id = pg_get_i64(r, 0, 0, 0);
	PQclear(r);
	return found;
}

/* store_job_insert - a new queued job, unless its key is already recorded: the insert
 * does nothing then (another node's insert of the key, still open, is waited for), and
 * the job holding it is read. A job of a file names its file and line. */
int store_job_insert(struct store *st, const struct job_new *job, int64_t now_ms, int64_t *id)
{
	static const char sql[] =
	    "INSERT INTO jobs (parent_id, state, op_id, spec_json, key, workspace, output_path, "
	    "source_file, priority, not_before_ms, next_run_ms, max_attempts, created_ms, "
	    "updated_ms, paginated, mutates, file_id, line) VALUES ($1, 0, $2, $3, $4, $5, $6, "
	    "$7, $8, $9, $10, $11, $12, $12, $13, $14, $15, $16) "
	    "ON CONFLICT (key) DO NOTHING RETURNING id";
	enum pg_wrap how;
	struct pg_params p;
	int rc = -1;
	if (!job->op_id || !job->spec_json)
		return pg_fail(st, "cannot insert a job without an operation and a spec");
	if (pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_i64_or_null(&p, job->parent_id, 0);
	pg_param_text(&p, job->op_id);
	pg_param_text(&p, job->spec_json);
	pg_param_text(&p, job->key);
	pg_param_text(&p, job->workspace);
	pg_param_text(&p, job->output_path);
	pg_param_text(&p, job->source_file);
	pg_param_i64(&p, job->priority);
	pg_param_i64(&p, job->not_before_ms);
	pg_param_i64(&p, job->not_before_ms > now_ms ? job->not_before_ms : now_ms);
	pg_param_i64(&p, job->max_attempts);
	pg_param_i64(&p, now_ms);
	pg_param_i64(&p, job->paginated != 0);
	pg_param_i64(&p, job->mutates != 0);
	pg_param_i64_or_null(&p, job->file_id, 0);
	if (job->file_id)
		pg_param_i64(&p, job->line);
	else
		pg_param_text(&p, NULL);
	PGresult *r = pg_query(st, sql, &p, "insert a job");
	if (r) {
		if (PQntuples(r) > 0) {
			*id = pg_get_i64(r, 0, 0, 0);
			st->notify_pending = 1;
			rc = STORE_INSERTED;
		} else {
			rc = store_job_id_by_key(st, job->key, id);
			if (rc == 0) /* its job is in a snapshot this transaction cannot see */
				rc = pg_fail(st,
				             "cannot insert a job: key %s is taken by a job "
				             "not yet visible",
				             job->key ? job->key : "(none)");
			else if (rc > 0)
				rc = STORE_DUPLICATE;
		}
		PQclear(r);
	}
	return pg_op_end(st, how, rc);
}
