/* store.h - the job store. Its SQLite backend (src/store/sqlite*.c) alone includes sqlite3.h.
 *
 * The interface speaks of jobs, attempts, pages, files and buckets, never of SQL, so
 * another store (PostgreSQL with SKIP LOCKED) could stand behind it. One writer (the
 * daemon, or the CLI when no daemon holds the spool lock); readers may open the same
 * store at any time, while it writes.
 *
 * Write calls outside store_begin/store_commit run in a transaction of their own.
 * Inside, they join the open one; group commits are the caller's (the daemon commits
 * once per loop iteration).
 */
#ifndef SEGSPOOL_STORE_H
#define SEGSPOOL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "job_state.h"

struct store;

enum {
	STORE_READONLY = 1,
	STORE_WAIT_FOR_CLI = 2, /* a writer waits (a minute at most) while a CLI command writes */
};

/* store_open - opens (creating when writable) and migrates the schema to the latest
 * version (the backend's count of migrations). A writer owns the store: a second writer (another
 * daemon, whatever its spool) is refused before it reads anything, with the first one's pid, role
 * and spool in the reason. Returns 0, or -1 with the reason in err_out (malloc'd). */
int store_open(const char *path, int flags, struct store **out, char **err_out);
void store_close(struct store *st);
/* store_is_postgresql - path names a PostgreSQL database (a postgresql:// or postgres://
 * URI, or a conninfo string), which store_open opens with the PostgreSQL store; else it
 * is an SQLite file's path. */
int store_is_postgresql(const char *path);
/* store_set_owner - this process's role ("daemon", "cli:retry") and spool, written beside
 * the database by the next writable store_open for a second writer's message. */
void store_set_owner(const char *role, const char *spool);
/* store_errmsg - the last error, for messages. */
const char *store_errmsg(struct store *st);

int store_begin(struct store *st); /* a write transaction, its lock taken at once */
/* store_busy - the last failure was because another process holds the database's write
 * lock (a shell in BEGIN EXCLUSIVE, a backup tool): worth trying again later. */
int store_busy(const struct store *st);
/* store_set_busy_timeout - how long a call waits for another process's lock before it
 * fails busy (default 5 s; the daemon waits briefly and keeps its loop running). */
void store_set_busy_timeout(struct store *st, int ms);
int store_commit(struct store *st);
int store_rollback(struct store *st);
int store_savepoint(struct store *st); /* around one file inside a group commit */
int store_release(struct store *st);
int store_rollback_to(struct store *st); /* undo since the savepoint, and release it */

/* --- ingest ------------------------------------------------------------------- */

/* store_file_id - which file an ingest read: its inode (dev, ino) and that inode's state
 * (ctime in ns, size). A file still lying in incoming/ where it was read keeps all four;
 * a new file renamed in, even with the same name and content, does not. */
struct store_file_id {
	int64_t dev, ino, ctime_ns, size;
};

enum { STORE_FILE_NEW = 0, STORE_FILE_SAME = 1, STORE_FILE_LEGACY = 2 };
/* store_file_seen - STORE_FILE_SAME when this very file (name, hash and id) was ingested:
 * its jobs were committed and it never left incoming/; STORE_FILE_LEGACY when a row from
 * before identities were recorded has its name and hash (the old rule: seen); else
 * STORE_FILE_NEW, also for a later file with the same name and content; -1 error. */
int store_file_seen(struct store *st, const char *name, const char *hash,
                    const struct store_file_id *id);
/* store_file_record - one ingest of a file, with its identity and how many jobs it gave. */
int store_file_record(struct store *st, const char *name, const char *hash,
                      const struct store_file_id *id, int64_t now_ms, int njobs, int nduplicates);
/* store_file_adopt - gives the rows of name and hash that have no identity (STORE_FILE_LEGACY)
 * this one, so the old rule matches once: a later file of that name and content is new. */
int store_file_adopt(struct store *st, const char *name, const char *hash,
                     const struct store_file_id *id);

/* store_output_conflict - an unfinished job (queued, running, waiting) whose explicit
 * output is path, a directory of path, or inside path as a directory: 1 with its id in
 * *job_id and its output in *other (malloc'd), 0 none, -1 error. Independent of the
 * number of jobs. */
int store_output_conflict(struct store *st, const char *path, int64_t *job_id, char **other);

/* store_key_recorded - 1 if a job with this key is recorded (a job with it would not be
 * inserted again), 0 if not, -1 error. */
int store_key_recorded(struct store *st, const char *key);

/* store_check_file - the store's files (for SQLite the database and its -wal) are still
 * the ones open: the paths name the same inodes, and the open file is not unlinked. 0,
 * or -1 with what vanished or was replaced in *err_out (malloc'd): a writer carrying on
 * would commit into a file nobody will see. */
int store_check_file(struct store *st, char **err_out);

struct job_new {
	const char *op_id;
	const char *spec_json; /* the job's canonical JSON (job_to_json) */
	const char *key;       /* idempotency key or NULL */
	const char *workspace;
	const char *output_path; /* relative to the output directory, or NULL */
	const char *source_file; /* spool file name, or NULL */
	int priority;
	int64_t not_before_ms; /* first run time */
	int64_t parent_id;     /* 0 for top-level jobs */
	int max_attempts;
	int paginated;   /* pages will be recorded */
	int mutates;     /* the request may change state (job_mutates): recovery records an
	                  * attempt left open as "unknown", not "interrupted" */
	int64_t file_id; /* the file's row (store_file_begin), 0 for none */
	int line;        /* the job's line in it (JSON Lines) or its position from 1 */
};

enum { STORE_INSERTED = 0, STORE_DUPLICATE = 1 };
/* store_job_insert - STORE_INSERTED with *id set, or STORE_DUPLICATE when the key is
 * already recorded (*id is then the existing job), or -1. */
int store_job_insert(struct store *st, const struct job_new *job, int64_t now_ms, int64_t *id);

/* --- scheduling --------------------------------------------------------------- */

struct job_row {
	int64_t id;
	int64_t parent_id;
	enum job_state state;
	char *op_id;
	char *spec_json;
	char *key;
	char *workspace;
	char *output_path;
	int priority;
	int attempts; /* attempts that counted against max_attempts */
	int64_t created_ms;
	int64_t next_run_ms;
	char *cursor; /* next page's cursor for a paginated job, or NULL */
	int pages_done;
	int64_t items_done;
	int64_t total_entries; /* -1 when unknown */
	int cancel_requested;
	int has_result; /* a stored result: the request succeeded, its output did not */
	int tries;      /* attempts recorded, counted or not: the next is tries + 1 */
};

void job_row_release(struct job_row *row);

/* store_claim_due - up to max jobs in state queued or waiting whose next run is due,
 * highest priority first, then earliest due, then id; each is moved to running.
 * Independent of the queue's size.
 * Returns the number claimed, or -1. */
int store_claim_due(struct store *st, int64_t now_ms, struct job_row *rows, int max);
/* store_next_due_ms - when the next queued/waiting job is due; 0 if none, -1 error. */
int64_t store_next_due_ms(struct store *st);
/* store_count_active - jobs not in a terminal state (queued, running, waiting). */
int64_t store_count_active(struct store *st);
/* store_count_waiting_for - waiting jobs that wait for `why` (for JW_DEPS, those whose
 * dependencies have not all succeeded yet); -1 on error. */
int64_t store_count_waiting_for(struct store *st, enum job_wait why);
int store_get(struct store *st, int64_t id, struct job_row *out); /* 0, 1 not found, -1 */

struct attempt_end {
	int http_status;     /* 0 when no response */
	const char *error;   /* transport or API error message, or NULL */
	const char *outcome; /* "ok", "retry", "rate_limited", "failed", "unknown",
	                        "cancelled", "interrupted" */
	int64_t duration_ms;
	int64_t retry_after_ms; /* the wait the server asked for, -1 if none */
	int64_t rl_remaining;   /* X-RateLimit-Remaining, -1 if absent */
	const char *rl_reset;   /* X-RateLimit-Reset as sent, or NULL */
	const char *request;    /* "GET /sources?..." (no host, no token) */
	const char *body;       /* a non-2xx answer's body (redacted), or NULL: its first */
	size_t body_len;        /* 4 KiB are kept, marked when cut; never a 2xx's */
};

/* store_attempt_begin - records attempt number attempt_no (the claimed row's tries + 1,
 * and so on) as started, with the request line it sends ("POST /sources", no host, no
 * token), so a crash leaves a trace of what went out. */
int store_attempt_begin(struct store *st, int64_t job_id, int attempt_no, int64_t now_ms,
                        const char *request, int64_t *attempt_id);
int store_attempt_end(struct store *st, int64_t attempt_id, const struct attempt_end *end);
/* store_count_lost_answers - attempts of the job recorded "unknown" (the request may have
 * been applied, its answer was lost); -1 on error. */
int64_t store_count_lost_answers(struct store *st, int64_t job_id);

struct job_success {
	const char *result_json; /* the data object, or a summary of pages */
	const char *output_path; /* where the output file went; NULL keeps what is recorded */
	int count_attempt;       /* the attempt that ended the job counts against max_attempts */
};

/* store_job_succeed - running -> succeeded with the stored result, in one update. */
int store_job_succeed(struct store *st, int64_t id, const struct job_success *ok, int64_t now_ms);
/* store_job_wait - running -> waiting until next_run_ms, for `why` (what may wake it
 * sooner: store_wake_waiters), with reason for the history; count_attempt says whether
 * the attempt counts against max_attempts (a rate-limit wait does not). */
int store_job_wait(struct store *st, int64_t id, int64_t next_run_ms, int count_attempt,
                   enum job_wait why, const char *reason, int64_t now_ms);
/* store_job_end - running|waiting|queued -> failed, dead or cancelled, with the error
 * (the API's error envelope when there was one). */
int store_job_end(struct store *st, int64_t id, enum job_state to, const char *error_json,
                  const char *reason, int64_t now_ms);
/* store_job_output_lost - a job recorded succeeded in the open transaction whose output
 * file could not be put in place after all: failed instead, its result kept, so a retry
 * writes the output from it without sending the request again. */
int store_job_output_lost(struct store *st, int64_t id, const char *error_json, const char *reason,
                          int64_t now_ms);
/* store_wake_waiters - waiting jobs that wait for `why` become due now, e.g. those parked
 * by the daemon's own rate limit once it is raised. Returns how many, or -1. */
int64_t store_wake_waiters(struct store *st, enum job_wait why, int64_t now_ms);
/* store_job_requeue - running -> queued, e.g. when the daemon stops mid-request. */
int store_job_requeue(struct store *st, int64_t id, const char *reason, int64_t now_ms);
/* store_job_count_attempt - adds the attempt that ended a job (succeeded, failed, dead)
 * to its count; store_job_wait counts the others. */
int store_job_count_attempt(struct store *st, int64_t id);
/* store_job_set_result - keeps a response's data object on the job (when the request
 * succeeded but the output could not be written: a retry rewrites the output from it
 * instead of sending the request again). */
int store_job_set_result(struct store *st, int64_t id, const char *result_json);
/* store_job_result - the stored result, malloc'd, or NULL if none. 0, or -1. */
int store_job_result(struct store *st, int64_t id, char **result_json);

/* store_page_record - one page done: its items (a JSON array), the cursor it was fetched
 * with and the next cursor (NULL at the end). Updates the job's resume point. */
int store_page_record(struct store *st, int64_t job_id, int page_no, const char *cursor,
                      const char *next_cursor, const char *items_json, int64_t nitems,
                      int64_t total_entries, int64_t now_ms);
typedef int (*store_page_fn)(int page_no, const char *items_json, void *arg);
/* store_pages_foreach - every recorded page of a job in order; stops when fn returns non-zero. */
int store_pages_foreach(struct store *st, int64_t job_id, store_page_fn fn, void *arg);
/* store_page_cursor_seen - the first recorded page of the job that was fetched with cursor
 * (a cursor the API handed out before), 0 if none, -1 on error. Independent of the
 * number of pages. */
int store_page_cursor_seen(struct store *st, int64_t job_id, const char *cursor);

/* store_recover - after a crash: running jobs back to queued, unfinished attempts marked
 * "interrupted" (or "unknown" for mutations). Returns how many jobs were requeued. */
int store_recover(struct store *st, int64_t now_ms);

/* --- parents and children (fan-out) ---------------------------------------------- */

struct child_counts {
	int total, succeeded, failed, dead, cancelled, active;
};
int store_children_counts(struct store *st, int64_t parent_id, struct child_counts *out);
/* store_children_ids - ids of a parent's children in creation order; caller frees *ids. */
int store_children_ids(struct store *st, int64_t parent_id, int64_t **ids, size_t *n);

/* --- control ---------------------------------------------------------------- */

/* store_job_retry - failed|dead|cancelled -> queued, attempts reset. 0, 1 not allowed, -1. */
int store_job_retry(struct store *st, int64_t id, int64_t now_ms);
/* store_job_cancel - any state but succeeded (and cancelled) -> cancelled; for a running
 * job, sets cancel_requested and returns 2 so the caller aborts the request. 0, 1 not
 * allowed (already succeeded), 2 running, -1 error. */
int store_job_cancel(struct store *st, int64_t id, int64_t now_ms);
/* store_ids_in_state - ids of jobs in a state, oldest first; caller frees *ids. */
int store_ids_in_state(struct store *st, enum job_state s, int64_t **ids, size_t *n);

/* --- rate-limit buckets survive restarts ----------------------------------------- */

int store_bucket_save(struct store *st, const char *key, double tokens, int64_t updated_ms,
                      int64_t hold_until_ms);
typedef void (*store_bucket_fn)(const char *key, double tokens, int64_t updated_ms,
                                int64_t hold_until_ms, void *arg);
int store_bucket_foreach(struct store *st, store_bucket_fn fn, void *arg);

/* --- reading: rows for the views above the store (views.h) -------------------------- */

/* a number the store does not have (a column left empty): views show it as null */
#define STORE_NONE INT64_MIN

int store_counts(struct store *st, int64_t counts[JS_COUNT]);
/* store_count_requests - attempts that reached the wire: an answer or a transport error. */
int64_t store_count_requests(struct store *st);

/* Each *_foreach calls fn with one record per row, in order, the strings valid during
 * the call only; fn returning non-zero stops it (the call then returns 0). -1 on error. */

struct job_summary {
	int64_t id, parent_id; /* parent_id STORE_NONE for a top-level job */
	enum job_state state;
	const char *op_id, *key, *workspace;
	int64_t priority, attempts, created_ms, next_run_ms;
	const char *reason; /* of its last state change or its creation; NULL once succeeded */
};
typedef int (*store_summary_fn)(const struct job_summary *job, void *arg);
/* store_list - jobs newest first, in one state (state non-NULL) or all; limit <= 0: all. */
int store_list(struct store *st, const enum job_state *state, int limit, store_summary_fn fn,
               void *arg);

struct job_detail {
	int64_t id, parent_id;
	enum job_state state;
	const char *op_id, *key, *workspace, *spec_json, *output_path, *source_file, *cursor;
	const char *result_json, *error_json; /* as stored: JSON text, or NULL */
	int64_t priority, attempts_counted, max_attempts;
	int64_t created_ms, updated_ms, next_run_ms, finished_ms;
	int64_t pages_done, items_done, total_entries;
	int cancel_requested, paginated;
};
typedef int (*store_detail_fn)(const struct job_detail *job, void *arg);
/* store_job_detail - one job's row, to fn; 0, 1 when there is no such job, -1 on error. */
int store_job_detail(struct store *st, int64_t id, store_detail_fn fn, void *arg);

struct transition_rec {
	int64_t at_ms;
	int from_state; /* -1 for its creation */
	enum job_state to_state;
	const char *reason;
};
typedef int (*store_transition_fn)(const struct transition_rec *t, void *arg);
/* store_transitions_foreach - a job's history, its creation first. */
int store_transitions_foreach(struct store *st, int64_t job_id, store_transition_fn fn, void *arg);

struct attempt_rec {
	int64_t attempt_no, started_ms, duration_ms, http_status, retry_after_ms, rl_remaining;
	const char *outcome, *error, *rl_reset, *request, *body; /* NULL when not recorded */
	const char *resolved; /* its references' values (JSON), NULL for a job without any */
};
typedef int (*store_attempt_fn)(const struct attempt_rec *a, void *arg);
/* store_attempts_foreach - a job's attempts in the order they were made. */
int store_attempts_foreach(struct store *st, int64_t job_id, store_attempt_fn fn, void *arg);

struct page_rec {
	int64_t page_no, nitems, at_ms;
	const char *cursor, *next_cursor;
};
typedef int (*store_page_rec_fn)(const struct page_rec *p, void *arg);
/* store_page_recs_foreach - a job's recorded pages, without their items. */
int store_page_recs_foreach(struct store *st, int64_t job_id, store_page_rec_fn fn, void *arg);

struct child_rec {
	int64_t id, pages_done, items_done, total_entries;
	enum job_state state;
};
typedef int (*store_child_fn)(const struct child_rec *c, void *arg);
/* store_children_foreach - a parent's children in creation order, with their progress. */
int store_children_foreach(struct store *st, int64_t parent_id, store_child_fn fn, void *arg);

typedef int (*store_tally_fn)(const char *name, int64_t n, void *arg);
/* store_attempt_outcomes_foreach - attempts by outcome, "in_progress" for those without
 * one yet, by name. */
int store_attempt_outcomes_foreach(struct store *st, store_tally_fn fn, void *arg);
#define STORE_TOP_REASONS 5
/* store_top_reasons_foreach - the max most common reasons (the last state change's) of
 * failed and dead jobs, most jobs first; a NULL name for jobs without one. */
int store_top_reasons_foreach(struct store *st, int max, store_tally_fn fn, void *arg);

/* store_read_begin - the reads until store_read_end share one snapshot (a job the daemon
 * is moving along reads consistently); inside a write transaction, that one. */
int store_read_begin(struct store *st);
void store_read_end(struct store *st);

/* store_last_total - the totalEntries the pages of the operation's latest job that
 * recorded one said (what `plan` estimates pages from): -1 none, -2 error. */
int64_t store_last_total(struct store *st, const char *op_id);

/* store_job_error - the stored error (JSON text), malloc'd, or NULL if none. 0, or -1. */
int store_job_error(struct store *st, int64_t id, char **error_json);

/* store_last_attempt - the job's last recorded attempt: its HTTP status (0 if none), error
 * and kept body (malloc'd, NULL when none; see struct attempt_end). 0, 1 when the job has
 * no attempt, or -1. */
int store_last_attempt(struct store *st, int64_t job_id, int *status, char **error, char **body);

/* --- watch/status -------------------------------------------------------------------- */

/* store_oldest_due - the queued or waiting job whose next run comes first (the most
 * overdue, when it is past): 1 with *id and *next_run_ms set, 0 when none, -1 error. */
int store_oldest_due(struct store *st, int64_t *id, int64_t *next_run_ms);
/* store_children_progress - how many children a fan-out parent has, and their pages and
 * items summed (the parent records its own only at the merge). 0, or -1. */
int store_children_progress(struct store *st, int64_t parent_id, int64_t *children, int64_t *pages,
                            int64_t *items);

/* store_owner - the process that last took the writer's lock of the database at path,
 * from the owner line written beside it (PATH.lock): pid, role ("daemon", "cli:retry"),
 * spool, and since when (the line's mtime, written as the lock was taken). The lock
 * itself is an flock(2) on the database file, held for as long as the writer runs: the
 * line stays after it exits. 0, or 1 when no line is recorded. */
struct store_owner {
	long pid;
	char role[32];
	char spool[512];
	int64_t since_ms;
};
int store_owner(const char *path, struct store_owner *out);

/* metrics */

/* store_attempt_groups - the attempts that ended (an outcome is recorded), one call per
 * (outcome, HTTP status or 0, duration in ms or 0) with how many there are; for
 * `segspool metrics` (it reads every attempt: not for the daemon's loop). 0, or -1. */
typedef void (*store_attempt_group_fn)(const char *outcome, int http_status, int64_t duration_ms,
                                       int64_t n, void *arg);
int store_attempt_groups(struct store *st, store_attempt_group_fn fn, void *arg);

/* --- results files (issue 13: one results file per batch) --------------------------- */

/* store_file_begin - one ingest of a file, recorded before its jobs are inserted (they
 * name it: job_new.file_id): njobs jobs, of which those not yet ended are counted as the
 * store records their state changes; results says the file gets a results file once the
 * count reaches 0. The same transaction (savepoint) holds the file and its jobs. */
int store_file_begin(struct store *st, const char *name, const char *hash,
                     const struct store_file_id *id, int64_t now_ms, int njobs, int results,
                     int64_t *file_id);
/* store_file_dup - line of the file had a key already recorded by job_id: not a job of
 * the file (not counted), listed in its results with that job. */
int store_file_dup(struct store *st, int64_t file_id, int line, int64_t job_id);
/* store_file_jobs - the ids of the file's jobs, first and last (inserted in its order;
 * 0 when none was), and how many lines it had in all (a file read in parts counts them as
 * it goes), before its transaction ends. */
int store_file_jobs(struct store *st, int64_t file_id, int64_t first, int64_t last, int njobs);

struct file_rec {
	int64_t id;
	const char *name;           /* as ingested (with submit's prefix) */
	int64_t njobs, nduplicates; /* lines of it, and those whose key was recorded */
	int64_t remaining;          /* its jobs not yet ended, STORE_NONE: no results */
	const char *results;        /* the results file's path, NULL until chosen */
	int results_done;           /* that file is in place */
	int64_t line;               /* store_file_of_job: the job's line, else STORE_NONE */
};
typedef int (*store_file_fn)(const struct file_rec *f, void *arg);
/* store_files_results_due - files whose jobs have all ended and whose results file has no
 * name yet; store_files_results_pending - those with a name whose file is not yet in
 * place. Both independent of the number of files and jobs. */
int store_files_results_due(struct store *st, store_file_fn fn, void *arg);
int store_files_results_pending(struct store *st, store_file_fn fn, void *arg);
/* store_results_name_taken - 1 when a file's results file has this path, 0 if not, -1. */
int store_results_name_taken(struct store *st, const char *path);
/* store_file_results_set - the results file's path, chosen; store_file_results_done - it
 * is in place (never written again). */
int store_file_results_set(struct store *st, int64_t file_id, const char *path);
int store_file_results_done(struct store *st, int64_t file_id);

struct result_rec {
	int64_t line, id; /* its line in the file, the job (for a duplicate: the key's job) */
	const char *key, *op_id;
	enum job_state state;
	const char *result_json, *error_json; /* as stored, or NULL */
	int duplicate;                        /* the line's key was recorded: not run for it */
};
typedef int (*store_result_fn)(const struct result_rec *r, void *arg);
/* store_file_results_foreach - one record per line of the file, in the file's order,
 * streamed from the store (memory independent of the number of jobs). */
int store_file_results_foreach(struct store *st, int64_t file_id, store_result_fn fn, void *arg);

/* store_files_named - the files ingested as name, or as name with `segspool submit`'s
 * prefix, oldest first; store_file_of_job - the file of a job, with its line. 0 (1: the
 * job has no file), -1 on error. */
int store_files_named(struct store *st, const char *name, store_file_fn fn, void *arg);
int store_file_of_job(struct store *st, int64_t job_id, store_file_fn fn, void *arg);
/* store_list_file - the jobs of a file in its order; limit <= 0: all. */
int store_list_file(struct store *st, int64_t file_id, int limit, store_summary_fn fn, void *arg);

/* --- jobs that wait for jobs (issue #13: "after" and {"$ref"}) ---------------------- */

/* A job waits for its dependencies without costing the scheduler anything: it is waiting
 * (JW_DEPS) and not due until the last of them succeeds, which makes it due in the same
 * transaction. A dependency that ends failed, dead or cancelled (store_job_end,
 * store_job_cancel, store_job_output_lost) ends the jobs waiting for it failed with the
 * reason "dependency KEY failed", and theirs after them; a retried job whose dependencies
 * have not all succeeded waits for them again (store_job_retry). */

/* store_job_id_by_key - 1 with the id of the job keyed key, 0 when there is none, -1. */
int store_job_id_by_key(struct store *st, const char *key, int64_t *id);
/* store_deps_add - job id, just inserted (queued), waits for dep_ids (ids of jobs already
 * recorded, not id): recorded with it. It waits when some has not succeeded, or ends
 * failed at once when one is failed, dead or cancelled. 0 or -1. */
int store_deps_add(struct store *st, int64_t id, const int64_t *dep_ids, size_t n, int64_t now_ms);
/* store_deps_revive - id was retried: the jobs that failed because it did, and theirs,
 * wait for their dependencies again (unless another one of theirs is still failed);
 * their ids in *ids (caller frees). 0 or -1. */
int store_deps_revive(struct store *st, int64_t id, int64_t now_ms, int64_t **ids, size_t *nids);
/* store_dep_failed - 1 with the key (malloc'd) of a dependency of id that is failed, dead
 * or cancelled, 0 when none is, -1. */
int store_dep_failed(struct store *st, int64_t id, char **key);
/* store_key_result - the job keyed key: 0 with its id, state and stored result (malloc'd,
 * NULL when none), 1 when there is no such job, -1. */
int store_key_result(struct store *st, const char *key, int64_t *id, enum job_state *state,
                     char **result_json);
/* store_key_op - the operation of the job keyed key: 1 with it in *op_id (malloc'd), 0
 * when there is no such job, -1. */
int store_key_op(struct store *st, const char *key, char **op_id);
/* store_attempt_resolved - the values an attempt's references were resolved to (a JSON
 * object by params pointer), shown with the attempt. */
int store_attempt_resolved(struct store *st, int64_t attempt_id, const char *resolved_json);

/* --- several daemons on one store (issue #15: the PostgreSQL store) ------------------- */

/* The SQLite store has one writer; a PostgreSQL store is worked by several daemons
 * (nodes), each claiming jobs under a lease its heartbeat renews. Leases and shared
 * buckets go by the database's clock (nodes' clocks may disagree); now_ms is for SQLite. */

/* store_shared - 1 when other daemons may claim from this store at the same time. */
int store_shared(struct store *st);
/* store_node_start - this daemon joins as a node named name (stable across restarts:
 * hostname:spool; its results files are its own), its lease lease_ms from now. */
int store_node_start(struct store *st, const char *name, int64_t lease_ms, int64_t now_ms);
/* store_nodes_foreach - the nodes not marked dead, oldest first, with what is left of
 * each lease (0 or less: it ran out, its jobs not yet rescued); for status and for the
 * rescue's log. SQLite: none. */
struct node_rec {
	int64_t id, pid, started_ms, lease_left_ms;
	const char *name, *host; /* host NULL when not recorded */
};
typedef int (*store_node_fn)(const struct node_rec *n, void *arg);
int store_nodes_foreach(struct store *st, store_node_fn fn, void *arg);
/* store_heartbeat - renews this node's lease: 0, 1 when the lease was lost (others took
 * its jobs back: send nothing more under it), -1 error. */
int store_heartbeat(struct store *st, int64_t now_ms);
/* store_rescue - jobs running on nodes whose lease ran out go back to queued, their open
 * attempts closed "unknown" (mutations) or "interrupted", the nodes marked dead. How
 * many jobs, or -1. */
int64_t store_rescue(struct store *st, int64_t now_ms);
/* store_bucket_take - one token from the shared bucket key (GCRA: rate per second, burst):
 * 0 with *wait_ms 0 when taken, else *wait_ms > 0 until one may be (nothing taken); -1. */
int store_bucket_take(struct store *st, const char *key, double rate, double burst, int64_t now_ms,
                      int64_t *wait_ms);
/* store_bucket_hold - nobody takes from key before until_ms (a 429, or
 * X-RateLimit-Remaining: 0, seen by one node holds it for all); the later hold wins. */
int store_bucket_hold(struct store *st, const char *key, int64_t until_ms);
/* store_wakeup_fd - a descriptor that becomes readable when another node announces work
 * (jobs inserted, retried or released), -1 when the store has none; store_wakeup_drain
 * consumes it: 1 when work was announced, 0 when not, -1 on error. */
int store_wakeup_fd(struct store *st);
int store_wakeup_drain(struct store *st);
/* store_cancels_pending - running jobs of this node that a user asked to cancel
 * (cancel_requested, set from any machine); caller frees *ids. */
int store_cancels_pending(struct store *st, int64_t **ids, size_t *n);

/* --- an asynchronous store: PostgreSQL's pipeline on the daemon's loop ---------------- */

/* After store_async_start, the store's writes go out without waiting for the database:
 * a write's answer, and the check it carries (a job still ours, an attempt still open),
 * is read when it comes, and a failure fails the open transaction and every later call
 * (store_errmsg says what failed first: the daemon's node starts again). store_commit
 * then only sends the commit: it is durable once store_async_poll has said
 * STORE_ASYNC_COMMITTED for it and store_commits_pending is back to 0; a transaction may
 * be begun and written meanwhile, its commit sent once the one before is answered.
 * store_claim_due hands out the rows of the claim it sent at an earlier call, and sends
 * the next one when it has none (store_async_poll says STORE_ASYNC_CLAIMED when they
 * come); store_next_due_ms is what that claim saw; store_files_results_due the files the
 * last commit left due; store_cancels_pending the answer to its previous call
 * (STORE_ASYNC_CANCELS when it names any); store_rescue sends its sweep and says how
 * many jobs it took back in the log when the answer comes (it returns 0). Reads that remain (rare
 * ones: a stored result, references) wait for their answer, and for every one before it. The SQLite
 * store has no pipeline: store_async_start returns -1 and nothing changes. */
enum {
	STORE_ASYNC_COMMITTED = 1,   /* a commit was answered: it is durable */
	STORE_ASYNC_CLAIMED = 2,     /* rows of a claim came */
	STORE_ASYNC_FILES = 4,       /* a commit left files whose jobs have all ended */
	STORE_ASYNC_CANCELS = 8,     /* a user asked to cancel jobs this node runs */
	STORE_ASYNC_LEASE_LOST = 16, /* a heartbeat found this node taken for dead */
};
int store_async_start(struct store *st);       /* 0, or -1 when the store has no pipeline */
int store_async_fd(struct store *st);          /* the socket to watch, -1 without a pipeline */
int store_async_wants_write(struct store *st); /* 1 while what was sent is not all out */
/* store_async_poll - reads what has come and sends what it can, never waiting: the
 * STORE_ASYNC_* seen since the last call (also those a waiting read came across), or -1
 * when something failed (store_errmsg). */
int store_async_poll(struct store *st);
/* store_async_wait - waits until every commit sent is answered: 0, or -1. */
int store_async_wait(struct store *st);
int store_commits_pending(struct store *st); /* commits sent, not answered (SQLite: 0) */
/* With the pipeline, the side connection (takes from shared buckets, holds, heartbeats)
 * has one too: store_async_side_fd is its socket; store_heartbeat sends the renewal and
 * returns 0 (a lease found lost is STORE_ASYNC_LEASE_LOST); store_bucket_hold sends its
 * hold; store_bucket_take_async sends a take, whose wait (as store_bucket_take's) goes
 * to the function store_async_takes set, with its cookie, from store_async_poll. */
typedef void (*store_take_fn)(int64_t cookie, int64_t wait_ms, void *arg);
void store_async_takes(struct store *st, store_take_fn fn, void *arg);
int store_bucket_take_async(struct store *st, const char *key, double rate, double burst,
                            int64_t cookie); /* 0, or -1 (no pipeline: take it at once) */
int store_async_side_fd(struct store *st);

#endif
