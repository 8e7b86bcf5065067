/* sqlite_int.h - what the files of the SQLite store share: the store's struct, the
 * statements by id, and the helpers that prepare, step and wrap them. Private to
 * src/store/; with the store's own files, the only ones that include sqlite3.h.
 *
 * The files, in the order a job meets them: sqlite.c (open, migrate, lock,
 * transactions, errors), sqlite_sql.c (every statement's text), sqlite_ingest.c (files,
 * outputs, keys, inserts), sqlite_jobs.c (claiming, attempts, state changes),
 * sqlite_runs.c (pages, recovery, children, control, buckets), sqlite_rows.c (the rows
 * the views read).
 */
#ifndef SEGSPOOL_SQLITE_INT_H
#define SEGSPOOL_SQLITE_INT_H

#include <sqlite3.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"
#include "store_ops.h"
#include "strbuf.h"

/* generated from sql/NNN_*.sql by cmake/embed_sql.cmake */
extern const char *const store_migrations[];
extern const size_t store_migration_count;

#define STORE_APPLICATION_ID 0x53475350 /* "SGSP", set by sql/sqlite/001_init.sql */
#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_CLI_WAIT_MS 60000 /* how long a daemon waits for a CLI command's store lock */
#define STORE_OWNER_MAX 512
#define STORE_ATTEMPT_BODY_MAX 4096 /* bytes of a non-2xx answer's body kept with it */
#define STORE_FILE_OF 64            /* claimed jobs whose file is kept (a power of 2) */

enum stmt_id {
	S_BEGIN,
	S_BEGIN_READ,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_OP_SAVEPOINT,
	S_OP_RELEASE,
	S_OP_ROLLBACK_TO,
	S_FILE_SEEN,
	S_FILE_RECORD,
	S_FILE_ADOPT,
	S_OUTPUT_TAKEN,
	S_OUTPUT_BELOW,
	S_JOB_BY_KEY,
	S_JOB_INSERT,
	S_TRANSITION_ADD,
	S_SUCCESS_ROW,
	S_JOB_STATE,
	S_JOB_GET,
	S_DUE_NEXT_PRIORITY,
	S_DUE_AT_PRIORITY,
	S_FIRST_RUN_AT_PRIORITY,
	S_JOB_CLAIM,
	S_CLAIM_TRANSITIONS,
	S_COUNT_ACTIVE,
	S_COUNT_WAITING_FOR,
	S_ATTEMPT_BEGIN,
	S_ATTEMPT_END,
	S_JOB_SUCCEED,
	S_JOB_SUCCEED_IN_STORE,
	S_JOB_WAIT,
	S_JOB_END,
	S_JOB_REQUEUE,
	S_JOB_COUNT_ATTEMPT,
	S_JOB_SET_RESULT,
	S_JOB_GET_RESULT,
	S_JOB_GET_ERROR,
	S_PAGE_INSERT,
	S_PAGE_ADVANCE,
	S_PAGES_OF,
	S_PAGE_CURSOR_SEEN,
	S_OPEN_ATTEMPTS,
	S_ATTEMPT_CLOSE,
	S_CHILD_COUNTS,
	S_CHILD_IDS,
	S_JOB_RETRY,
	S_JOB_CANCEL,
	S_JOB_CANCEL_REQUEST,
	S_IDS_IN_STATE,
	S_RUNNING_IDS,
	S_BUCKET_SAVE,
	S_BUCKETS,
	S_COUNTS,
	S_LIST,
	S_LIST_STATE,
	S_TOP_REASONS,
	S_SHOW_JOB,
	S_SHOW_TRANSITIONS,
	S_SHOW_ATTEMPTS,
	S_SHOW_PAGES,
	S_SHOW_CHILDREN,
	S_ATTEMPT_OUTCOMES,
	S_REQUESTS,
	S_WAKE_WAITERS,
	S_COUNT_LOST_ANSWERS,
	S_LAST_ATTEMPT,
	/* watch/status */
	S_WATCH_FIRST_DUE_AT_PRIORITY,
	S_WATCH_CHILDREN_PROGRESS,
	S_LAST_TOTAL,
	/* metrics */
	S_METRICS_ATTEMPTS,
	/* results files (issue 13) */
	S_FILE_BEGIN,
	S_FILE_DUP,
	S_FILE_DUP_COUNT,
	S_FILE_JOBS,
	S_JOB_INSERT_FILE,
	S_FILES_RESULTS_DUE,
	S_FILES_RESULTS_PENDING,
	S_RESULTS_NAME_TAKEN,
	S_FILE_RESULTS_SET,
	S_FILE_RESULTS_DONE,
	S_FILE_RESULT_JOBS,
	S_FILE_RESULT_DUPS,
	S_FILES_NAMED,
	S_FILE_OF_JOB,
	S_LIST_FILE,
	/* dependencies between jobs (issue #13, sqlite_deps.c) */
	S_DEPS_INSERT,
	S_DEP_INFO,
	S_DEPS_PARK,
	S_DEPS_FAIL,
	S_DEPS_RELEASE,
	S_DEPS_UNRELEASE,
	S_DEPS_WAITING_ON,
	S_DEPS_FAILED_ON,
	S_DEPS_FAILED_DEP,
	S_DEPS_LEFT,
	S_KEY_RESULT,
	S_ATTEMPT_RESOLVED,
	S_KEY_OP,
	S_DEPS_ANY,
	/* files.remaining counted in memory (sql/sqlite/012_remaining_counted.sql) */
	S_FILE_REMAINING_ADD,
	S_JOB_FILE,
	S_NSTMTS
};

/* the text of each statement, by id (sqlite_sql.c) */
extern const char *const sq_stmt_sql[S_NSTMTS];

struct store {
	struct store_head head; /* first: the dispatcher's (store_ops.h) */
	sqlite3 *db;
	char *path;
	int readonly;
	sqlite3_stmt *stmts[S_NSTMTS]; /* prepared on first use, kept until close */
	struct strbuf err;
	/* the writer's flock on the database file itself, and the fd store_check_file
	 * fstats; closed only after SQLite's, whose POSIX locks a close would drop. -1 for
	 * readers */
	int db_fd;
	int busy;       /* the last failure was SQLITE_BUSY: another process holds the lock */
	int caller_txn; /* store_begin's transaction is meant to be open (till commit/rollback) */
	/* the writer's files as opened, for store_check_file */
	dev_t db_dev, wal_dev;
	ino_t db_ino, wal_ino;
	int have_wal;
	int own_read; /* store_read_begin opened the read transaction */
	/* whether the deps table may have rows: -1 not yet asked; 0 lets a job's end skip
	 * its dependants' statements (a store without references has none) */
	int deps_any;
	/* jobs of each file that ended (-1 each) or came back (+1) in the open transaction
	 * since the last sq_files_flush: written to files.remaining before anything reads
	 * it, at a savepoint and at the commit; dropped by a rollback */
	struct file_count *counts;
	size_t ncounts, counts_alloc;
	/* the files of jobs claimed lately, by id modulo STORE_FILE_OF (job_id 0: none),
	 * so that their end need not read it: a job's file never changes, and an id is
	 * given again only after a rollback, which empties it */
	struct file_of {
		int64_t job_id, file_id;
	} file_of[STORE_FILE_OF];
};

/* a file's change of files.remaining not yet written */
struct file_count {
	int64_t file_id;
	int64_t delta;
};

#define BIT(s) (1u << (s))

/* next_run_ms of a job parked for its dependencies (9999-12-31T23:59:59.999Z): beyond
 * every claim's now, so it costs the due index's walks nothing (sql/sqlite/011_deps.sql) */
#define STORE_DEPS_PARKED_MS INT64_C(253402300799999)
#define STORE_DEPS_PARKED_TEXT "253402300799999" /* the same, in statements */

/* how a write call is wrapped: in a transaction of its own when none is open, else
 * joined to the caller's. Calls check before they write, so one refused for a reason
 * (wrong state, duplicate, missing job) has changed nothing; after an I/O error the
 * caller rolls back its transaction or file savepoint anyway. Calls that change many
 * rows (claim, recover) also run in a savepoint of their own when joined: a half
 * done claim must not be committed with the caller's work. */
enum op_wrap { OP_JOINED, OP_OWN_TXN, OP_SAVEPOINT };

void sq_bind_int64_or_null(sqlite3_stmt *s, int i, int64_t v, int64_t none);
void sq_bind_text(sqlite3_stmt *s, int i, const char *text);
int sq_change_state(struct store *st, int64_t id, unsigned allowed, enum job_state to,
                    sqlite3_stmt *upd, const char *verb, const char *reason, int64_t now_ms);
char *sq_column_dup(sqlite3_stmt *s, int i);
int64_t sq_column_int64_or(sqlite3_stmt *s, int i, int64_t dflt);
int64_t sq_count_query(struct store *st, sqlite3_stmt *s, const char *what);
void sq_done(sqlite3_stmt *s);
int sq_fail(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sq_in_transaction(struct store *st);
int sq_job_state_get(struct store *st, int64_t id, enum job_state *state);
int sq_op_begin(struct store *st, enum op_wrap *how);
int sq_op_begin_atomic(struct store *st, enum op_wrap *how);
int sq_op_end(struct store *st, enum op_wrap how, int rc);
sqlite3_stmt *sq_prep(struct store *st, enum stmt_id id);
void sq_quiet_run_id(struct store *st, enum stmt_id id);
int sq_record_transition(struct store *st, int64_t id, int from, enum job_state to, int64_t now_ms,
                         const char *reason);
int sq_run(struct store *st, sqlite3_stmt *s, const char *what);
int sq_run_id(struct store *st, enum stmt_id id, const char *what);
void sq_set_err(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sq_step(struct store *st, sqlite3_stmt *s, const char *what);
int sq_strict(int rc);

/* sqlite_results.c: files.remaining (sql/sqlite/012_remaining_counted.sql) */

/* sq_files_count - a job of file_id ended (delta -1) or came back (+1), in memory. */
void sq_files_count(struct store *st, int64_t file_id, int delta);
/* sq_files_flush - the counted changes written, one UPDATE per file: before a statement
 * reads or sets files.remaining or files.results, at a savepoint and before a commit. */
int sq_files_flush(struct store *st);
/* sq_files_discard - the counted changes dropped, and the files of claimed jobs
 * forgotten: the transaction or the savepoint they were counted in was rolled back. */
void sq_files_discard(struct store *st);
/* sq_file_of_note - the file of a claimed job (0: none), for sq_file_of. */
void sq_file_of_note(struct store *st, int64_t job_id, int64_t file_id);
/* sq_file_of - the file of job id (0: none): 0, or -1. */
int sq_file_of(struct store *st, int64_t job_id, int64_t *file_id);

/* sqlite_deps.c: what a job's state change means for the jobs that wait for it, inside
 * the change's own transaction */

/* sq_deps_none - 1 when no job of the store waits for another (nothing to release or
 * fail): asked once, then kept, as only this writer adds dependencies. */
int sq_deps_none(struct store *st);
/* sq_deps_succeeded - id succeeded: its dependants have one dependency less; those left
 * with none become due. */
int sq_deps_succeeded(struct store *st, int64_t id, int64_t now_ms);
/* sq_deps_ended - id ended failed, dead or cancelled: its waiting dependants, and theirs,
 * end failed ("dependency KEY failed"). */
int sq_deps_ended(struct store *st, int64_t id, int64_t now_ms);
/* sq_deps_unsucceeded - id's success was undone (its output lost): its waiting dependants
 * wait for it again; then as sq_deps_ended. */
int sq_deps_unsucceeded(struct store *st, int64_t id, int64_t now_ms);
/* sq_deps_requeued - id was put back to queued by a retry: parked if some dependency of
 * it has not succeeded. */
int sq_deps_requeued(struct store *st, int64_t id, int64_t now_ms);

#endif
