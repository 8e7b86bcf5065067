/* store.c - the job store on SQLite: schema migrations, prepared statements, and every
 * state change with its transitions row, in transactions. The only file that includes
 * sqlite3.h; see store.h for the contract.
 *
 * Concurrency: one writer (BEGIN IMMEDIATE, so a writer never has to upgrade a read
 * lock and deadlock) and any number of readers, which WAL lets run while it writes.
 */
#include "store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_vfs.h"
#include "strbuf.h"
#include "util.h"

/* generated from sql/NNN_*.sql by cmake/embed_sql.cmake */
extern const char *const store_migrations[];
extern const size_t store_migration_count;

#define STORE_APPLICATION_ID 0x53475350 /* "SGSP", set by sql/001_init.sql */
#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_CLI_WAIT_MS 60000 /* how long a daemon waits for a CLI command's store lock */
#define STORE_OWNER_MAX 512
#define STORE_ATTEMPT_BODY_MAX 4096 /* bytes of a non-2xx answer's body kept with it */

/* the columns of struct job_row, in the order read_job_row expects */
#define JOB_COLS                                                                                   \
	"id, parent_id, state, op_id, spec_json, key, workspace, output_path, priority, "          \
	"attempts, created_ms, next_run_ms, cursor, pages_done, items_done, "                      \
	"total_entries, cancel_requested, result_json IS NOT NULL, "                               \
	"(SELECT count(*) FROM attempts a WHERE a.job_id = jobs.id)"

/* the due jobs through the jobs_due partial index: its WHERE spelled exactly as in
 * sql/001_init.sql, and the index named, because without statistics the planner
 * may prefer another index plus a sort of the whole queue */
#define DUE_JOBS "jobs INDEXED BY jobs_due WHERE state IN (0, 2)"
/* the running jobs, through the jobs_running partial index (sql/003_running_index.sql) */
#define RUNNING_JOBS "jobs INDEXED BY jobs_running WHERE state = 1"

/* why a job was created, from its own row: a job's creation (into queued) has no
 * transitions row, as the jobs row already holds when (created_ms) and whence */
#define CREATION_REASON                                                                            \
	"CASE WHEN parent_id IS NOT NULL THEN 'child of ' || parent_id "                           \
	"WHEN source_file IS NOT NULL THEN 'ingested from ' || source_file ELSE 'submitted' END"

/* a job's reason: that of its last state change, or of its creation when it has none */
#define LAST_REASON                                                                                \
	"coalesce((SELECT reason FROM transitions t WHERE t.job_id = jobs.id "                     \
	"ORDER BY t.id DESC LIMIT 1), " CREATION_REASON ")"

/* list's reason: none for a succeeded job (its success may write no transitions row, so
 * the last one can be an earlier wait's) */
#define LIST_REASON "CASE WHEN state = 3 THEN NULL ELSE " LAST_REASON " END"

/* the WHERE of a state change: the job, and when ?9 is given, only from that state */
#define FROM_STATE "WHERE id = ?1 AND (?9 IS NULL OR state = ?9)"

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
	S_JOB_STATE,
	S_JOB_GET,
	S_DUE_NEXT_PRIORITY,
	S_DUE_AT_PRIORITY,
	S_FIRST_RUN_AT_PRIORITY,
	S_JOB_CLAIM,
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
	S_NSTMTS
};

static const char *const stmt_sql[S_NSTMTS] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_BEGIN_READ] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT store_file",
    [S_RELEASE] = "RELEASE store_file",
    [S_ROLLBACK_TO] = "ROLLBACK TO store_file",
    [S_OP_SAVEPOINT] = "SAVEPOINT store_op",
    [S_OP_RELEASE] = "RELEASE store_op",
    [S_OP_ROLLBACK_TO] = "ROLLBACK TO store_op",
    /* the rows of this name and content (usually none), compared in C: a plain index
     * lookup costs a third of one with the comparison, an aggregate or a sort in SQL */
    [S_FILE_SEEN] = "SELECT dev, ino, ctime_ns, size FROM files INDEXED BY files_name_hash "
                    "WHERE name = ?1 AND hash = ?2",
    [S_FILE_RECORD] = "INSERT INTO files (name, hash, dev, ino, ctime_ns, size, ingested_ms, "
                      "njobs, nduplicates) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [S_FILE_ADOPT] = "UPDATE files INDEXED BY files_name_hash SET dev = ?3, ino = ?4, "
                     "ctime_ns = ?5, size = ?6 WHERE name = ?1 AND hash = ?2 AND dev IS NULL",
    /* unfinished jobs' outputs (sql/005_file_identity.sql): the path itself or one
     * of its directories (?1 each in turn), and then what lies below it */
    [S_OUTPUT_TAKEN] = "SELECT id, output_path FROM jobs INDEXED BY jobs_output "
                       "WHERE state IN (0, 1, 2) AND output_path = ?1 LIMIT 1",
    [S_OUTPUT_BELOW] = "SELECT id, output_path FROM jobs INDEXED BY jobs_output "
                       "WHERE state IN (0, 1, 2) AND output_path >= ?1 || '/' "
                       "AND output_path < ?1 || '0' ORDER BY output_path LIMIT 1",
    [S_JOB_BY_KEY] = "SELECT id FROM jobs WHERE key = ?1",
    [S_JOB_INSERT] = "INSERT INTO jobs (parent_id, state, op_id, spec_json, key, workspace, "
                     "output_path, source_file, priority, not_before_ms, next_run_ms, "
                     "max_attempts, created_ms, updated_ms, paginated, mutates) "
                     "VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14)",
    [S_TRANSITION_ADD] = "INSERT INTO transitions (job_id, from_state, to_state, at_ms, "
                         "reason) VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_JOB_STATE] = "SELECT state FROM jobs WHERE id = ?1",
    [S_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    /* claiming walks the due index one priority at a time: a seek to the next lower
     * priority, then the due jobs at it in order. Jobs not yet due (a rate-limit hold
     * parks thousands) are skipped by the seek rather than read one by one. */
    [S_DUE_NEXT_PRIORITY] =
        "SELECT priority FROM " DUE_JOBS " AND priority < ?1 ORDER BY priority DESC LIMIT 1",
    [S_DUE_AT_PRIORITY] =
        "SELECT " JOB_COLS " FROM " DUE_JOBS " AND priority = ?1 AND next_run_ms <= ?2 "
        "ORDER BY next_run_ms, id LIMIT ?3",
    [S_FIRST_RUN_AT_PRIORITY] =
        "SELECT next_run_ms FROM " DUE_JOBS " AND priority = ?1 ORDER BY next_run_ms, id LIMIT 1",
    [S_JOB_CLAIM] = "UPDATE jobs SET state = 1, updated_ms = ?2 WHERE id = ?1",
    /* queued and waiting through jobs_due, running through jobs_running */
    [S_COUNT_ACTIVE] =
        "SELECT (SELECT count(*) FROM " DUE_JOBS ") + (SELECT count(*) FROM " RUNNING_JOBS ")",
    [S_COUNT_WAITING_FOR] = "SELECT count(*) FROM " DUE_JOBS " AND state = 2 AND "
                            "(SELECT reason FROM transitions t WHERE t.job_id = jobs.id "
                            "ORDER BY t.id DESC LIMIT 1) GLOB ?1 || '*'",
    [S_ATTEMPT_BEGIN] = "INSERT INTO attempts (job_id, attempt_no, started_ms, request) "
                        "VALUES (?1, ?4, ?2, ?3)",
    [S_ATTEMPT_END] = "UPDATE attempts SET duration_ms = ?2, http_status = ?3, outcome = ?4, "
                      "error = ?5, retry_after_ms = ?6, rl_remaining = ?7, rl_reset = ?8, "
                      "request = coalesce(?9, request), body = ?10 WHERE id = ?1",
    /* state changes: ?1 id, ?2 now, ?3 the new state, ?9 the one state the job must be
     * in (NULL when change_state read it first), then their own */
    [S_JOB_SUCCEED] = "UPDATE jobs SET state = ?3, updated_ms = ?2, finished_ms = ?2, "
                      "result_json = ?4, attempts = attempts + ?5, "
                      "output_path = coalesce(?6, output_path) " FROM_STATE,
    /* no output file: output_path is left alone, so the outputs index (sql/005) is not
     * looked at by an update that sets it to what it was */
    [S_JOB_SUCCEED_IN_STORE] = "UPDATE jobs SET state = ?3, updated_ms = ?2, finished_ms = ?2, "
                               "result_json = ?4, attempts = attempts + ?5 " FROM_STATE,
    [S_JOB_WAIT] = "UPDATE jobs SET state = ?3, updated_ms = ?2, next_run_ms = ?4, "
                   "attempts = attempts + ?5 " FROM_STATE,
    [S_JOB_END] = "UPDATE jobs SET state = ?3, updated_ms = ?2, finished_ms = ?2, "
                  "error_json = ?4 " FROM_STATE,
    [S_JOB_REQUEUE] = "UPDATE jobs SET state = ?3, updated_ms = ?2 " FROM_STATE,
    [S_JOB_RETRY] = "UPDATE jobs SET state = ?3, updated_ms = ?2, next_run_ms = ?2, "
                    "attempts = 0, cancel_requested = 0, finished_ms = NULL, "
                    "error_json = NULL " FROM_STATE,
    [S_JOB_CANCEL] = "UPDATE jobs SET state = ?3, updated_ms = ?2, finished_ms = ?2 " FROM_STATE,
    [S_JOB_CANCEL_REQUEST] = "UPDATE jobs SET cancel_requested = 1, updated_ms = ?2 "
                             "WHERE id = ?1",
    [S_JOB_COUNT_ATTEMPT] = "UPDATE jobs SET attempts = attempts + 1 WHERE id = ?1",
    [S_JOB_SET_RESULT] = "UPDATE jobs SET result_json = ?2 WHERE id = ?1",
    [S_JOB_GET_RESULT] = "SELECT result_json FROM jobs WHERE id = ?1",
    [S_PAGE_INSERT] = "INSERT INTO pages (job_id, page_no, cursor, next_cursor, items_json, "
                      "nitems, total_entries, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    /* a page that arrived resets the attempts: the policy applies to each page */
    [S_PAGE_ADVANCE] = "UPDATE jobs SET cursor = ?2, pages_done = ?3, attempts = 0, "
                       "items_done = items_done + ?4, "
                       "total_entries = coalesce(?5, total_entries), updated_ms = ?6 "
                       "WHERE id = ?1",
    [S_PAGES_OF] = "SELECT page_no, items_json FROM pages WHERE job_id = ?1 ORDER BY page_no",
    /* one seek in the index of sql/004_page_cursor.sql, however many pages the job has */
    [S_PAGE_CURSOR_SEEN] = "SELECT min(page_no) FROM pages INDEXED BY pages_cursor "
                           "WHERE job_id = ?1 AND cursor = ?2",
    /* an attempt without an outcome belongs to a running job (sql/002_lean_attempts.sql) */
    [S_OPEN_ATTEMPTS] =
        "SELECT a.id, j.op_id, j.spec_json, j.mutates FROM jobs j INDEXED BY jobs_running "
        "JOIN attempts a ON a.job_id = j.id WHERE j.state = 1 AND a.outcome IS NULL",
    [S_ATTEMPT_CLOSE] = "UPDATE attempts SET outcome = ?2 WHERE id = ?1",
    [S_CHILD_COUNTS] = "SELECT state, count(*) FROM jobs WHERE parent_id = ?1 GROUP BY state",
    [S_CHILD_IDS] = "SELECT id FROM jobs WHERE parent_id = ?1 ORDER BY id",
    [S_IDS_IN_STATE] = "SELECT id FROM jobs WHERE state = ?1 ORDER BY id",
    [S_RUNNING_IDS] = "SELECT id FROM " RUNNING_JOBS " ORDER BY id",
    [S_BUCKET_SAVE] = "INSERT INTO buckets (key, tokens, updated_ms, hold_until_ms) "
                      "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key) DO UPDATE SET "
                      "tokens = excluded.tokens, updated_ms = excluded.updated_ms, "
                      "hold_until_ms = excluded.hold_until_ms",
    [S_BUCKETS] = "SELECT key, tokens, updated_ms, hold_until_ms FROM buckets ORDER BY key",
    [S_COUNTS] = "SELECT state, count(*) FROM jobs GROUP BY state",
    [S_LIST] = "SELECT id, state, op_id, key, workspace, priority, attempts, created_ms, "
               "next_run_ms, parent_id, " LIST_REASON " FROM jobs ORDER BY id DESC LIMIT ?1",
    [S_LIST_STATE] = "SELECT id, state, op_id, key, workspace, priority, attempts, "
                     "created_ms, next_run_ms, parent_id, " LIST_REASON " FROM jobs "
                     "WHERE state = ?2 ORDER BY id DESC LIMIT ?1",
    /* failed and dead jobs: a scan, as for the counts by state (sql/006_attempt_body.sql) */
    [S_TOP_REASONS] = "SELECT reason, count(*) FROM (SELECT " LAST_REASON " AS reason "
                      "FROM jobs WHERE state IN (4, 5)) "
                      "GROUP BY reason ORDER BY 2 DESC, 1 LIMIT ?1",
    [S_SHOW_JOB] = "SELECT id, state, op_id, key, workspace, priority, attempts, "
                   "max_attempts, created_ms, updated_ms, next_run_ms, finished_ms, spec_json, "
                   "output_path, source_file, parent_id, cursor, pages_done, items_done, "
                   "total_entries, result_json, error_json, cancel_requested, paginated "
                   "FROM jobs WHERE id = ?1",
    /* the creation first: from the jobs row (CREATION_REASON), or from the transitions row
     * that databases written before that kept for it */
    [S_SHOW_TRANSITIONS] =
        "SELECT NULL, 0, created_ms, " CREATION_REASON ", 0, 0 FROM jobs WHERE id = ?1 AND "
        "NOT EXISTS (SELECT 1 FROM transitions WHERE job_id = ?1 AND from_state IS NULL) "
        "UNION ALL SELECT from_state, to_state, at_ms, reason, from_state IS NOT NULL, id "
        "FROM transitions WHERE job_id = ?1 ORDER BY 5, 6",
    [S_SHOW_ATTEMPTS] = "SELECT attempt_no, started_ms, duration_ms, http_status, outcome, "
                        "error, retry_after_ms, rl_remaining, rl_reset, request, body "
                        "FROM attempts WHERE job_id = ?1 ORDER BY id",
    [S_SHOW_PAGES] = "SELECT page_no, nitems, cursor, next_cursor, at_ms FROM pages "
                     "WHERE job_id = ?1 ORDER BY page_no",
    [S_SHOW_CHILDREN] = "SELECT id, state, pages_done, items_done, total_entries FROM jobs "
                        "WHERE parent_id = ?1 ORDER BY id",
    [S_ATTEMPT_OUTCOMES] = "SELECT coalesce(outcome, 'in_progress'), count(*) FROM attempts "
                           "GROUP BY 1 ORDER BY 1",
    [S_LAST_ATTEMPT] = "SELECT http_status, error, body FROM attempts WHERE job_id = ?1 "
                       "ORDER BY id DESC LIMIT 1",
    [S_COUNT_LOST_ANSWERS] =
        "SELECT count(*) FROM attempts WHERE job_id = ?1 AND outcome = 'unknown'",
    [S_WAKE_WAITERS] = "UPDATE jobs INDEXED BY jobs_due SET next_run_ms = ?1 WHERE state IN (0, 2) "
                       "AND state = 2 AND next_run_ms > ?1 "
                       "AND (SELECT reason FROM transitions t WHERE t.job_id = jobs.id "
                       "ORDER BY t.id DESC LIMIT 1) GLOB ?2 || '*'",
    [S_REQUESTS] = "SELECT count(*) FROM attempts "
                   "WHERE http_status IS NOT NULL OR error IS NOT NULL",
    /* watch/status */
    [S_WATCH_FIRST_DUE_AT_PRIORITY] = "SELECT id, next_run_ms FROM " DUE_JOBS
                                      " AND priority = ?1 ORDER BY next_run_ms, id LIMIT 1",
    [S_WATCH_CHILDREN_PROGRESS] = "SELECT count(*), coalesce(sum(pages_done), 0), "
                                  "coalesce(sum(items_done), 0) FROM jobs WHERE parent_id = ?1",
};

struct store {
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
};

/* who this process is, written beside the database for a second writer's message */
static char owner_role[64] = "cli";
static char owner_spool[STORE_OWNER_MAX];

#define BIT(s) (1u << (s))

/* --- errors and statements ------------------------------------------------------- */

static void set_err(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* set_err - replaces the message store_errmsg returns. */
static void set_err(struct store *st, const char *fmt, ...)
{
	va_list ap;
	sb_reset(&st->err);
	va_start(ap, fmt);
	sb_vaddf(&st->err, fmt, ap);
	va_end(ap);
}

/* fail - "WHAT: sqlite's message" as the last error; returns -1. */
static int fail(struct store *st, const char *fmt, ...)
{
	va_list ap;
	sb_reset(&st->err);
	va_start(ap, fmt);
	sb_vaddf(&st->err, fmt, ap);
	va_end(ap);
	sb_addf(&st->err, ": %s", sqlite3_errmsg(st->db));
	st->busy = (sqlite3_errcode(st->db) & 0xff) == SQLITE_BUSY;
	return -1;
}

/* store_busy - see store.h. */
int store_busy(const struct store *st)
{
	return st->busy;
}

/* store_set_busy_timeout - see store.h. */
void store_set_busy_timeout(struct store *st, int ms)
{
	sqlite3_busy_timeout(st->db, ms);
}

/* store_errmsg - the last error, "" if none yet. */
const char *store_errmsg(struct store *st)
{
	return st->err.buf;
}

/* prep - the statement, prepared on first use and reused afterwards. */
static sqlite3_stmt *prep(struct store *st, enum stmt_id id)
{
	if (st->stmts[id])
		return st->stmts[id];
	if (sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st->stmts[id],
	                       NULL) != SQLITE_OK) {
		fail(st, "cannot prepare \"%.40s\"", stmt_sql[id]);
		return NULL;
	}
	return st->stmts[id];
}

/* done - makes a statement ready for its next use. */
static void done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* step - one step: SQLITE_ROW or SQLITE_DONE, else -1 with "cannot WHAT: ..." (and the
 * statement reset). */
static int step(struct store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return rc;
	fail(st, "cannot %s", what);
	done(s);
	return -1;
}

/* run - steps a statement to its end (a row some PRAGMAs return is ignored) and
 * resets it; 0 or -1. */
static int run(struct store *st, sqlite3_stmt *s, const char *what)
{
	if (step(st, s, what) < 0)
		return -1;
	done(s);
	return 0;
}

/* run_id - prepares and runs a statement without parameters. */
static int run_id(struct store *st, enum stmt_id id, const char *what)
{
	sqlite3_stmt *s = prep(st, id);
	return s ? run(st, s, what) : -1;
}

/* quiet_run_id - runs a statement for cleanup, keeping the error already recorded. */
static void quiet_run_id(struct store *st, enum stmt_id id)
{
	sqlite3_stmt *s = prep(st, id);
	if (s) {
		sqlite3_step(s);
		done(s);
	}
}

/* bind_text - a C string, or NULL as SQL NULL. The text must outlive the step. */
static void bind_text(sqlite3_stmt *s, int i, const char *text)
{
	if (text)
		sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* bind_int64_or_null - v, or NULL when v is the "unknown" value none. */
static void bind_int64_or_null(sqlite3_stmt *s, int i, int64_t v, int64_t none)
{
	if (v == none)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_int64(s, i, v);
}

/* column_dup - a malloc'd copy of a text column, NULL for SQL NULL. */
static char *column_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? xstrdup((const char *)t) : NULL;
}

/* column_int64_or - the column's value, or dflt for SQL NULL. */
static int64_t column_int64_or(sqlite3_stmt *s, int i, int64_t dflt)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return dflt;
	return sqlite3_column_int64(s, i);
}

/* --- transactions ------------------------------------------------------------------ */

/* in_transaction - whether a transaction (the caller's or ours) is open. */
static int in_transaction(struct store *st)
{
	return !sqlite3_get_autocommit(st->db);
}

/* store_begin - starts the caller's write transaction (a group commit). */
int store_begin(struct store *st)
{
	if (in_transaction(st)) {
		set_err(st, "cannot begin a transaction: one is already open");
		return -1;
	}
	st->busy = 0;
	if (run_id(st, S_BEGIN, "begin a transaction") < 0)
		return -1;
	st->caller_txn = 1;
	return 0;
}

/* store_commit - commits the caller's transaction; on failure it is rolled back. */
int store_commit(struct store *st)
{
	st->caller_txn = 0;
	if (!in_transaction(st)) {
		set_err(st, "cannot commit: no transaction is open");
		return -1;
	}
	if (run_id(st, S_COMMIT, "commit") < 0) {
		if (in_transaction(st))
			quiet_run_id(st, S_ROLLBACK);
		return -1;
	}
	return 0;
}

/* store_rollback - undoes the caller's transaction; a no-op when SQLite already did. */
int store_rollback(struct store *st)
{
	st->caller_txn = 0;
	if (!in_transaction(st))
		return 0;
	return run_id(st, S_ROLLBACK, "roll back");
}

/* store_savepoint - marks where store_rollback_to returns to (one file's jobs). */
int store_savepoint(struct store *st)
{
	if (!in_transaction(st)) {
		set_err(st, "cannot set a savepoint: no transaction is open");
		return -1;
	}
	return run_id(st, S_SAVEPOINT, "set a savepoint");
}

/* store_release - keeps what was done since the savepoint (within the transaction). */
int store_release(struct store *st)
{
	return run_id(st, S_RELEASE, "release the savepoint");
}

/* store_rollback_to - undoes everything since the savepoint and forgets it. */
int store_rollback_to(struct store *st)
{
	if (run_id(st, S_ROLLBACK_TO, "roll back to the savepoint") < 0)
		return -1;
	return run_id(st, S_RELEASE, "release the savepoint");
}

/* how a write call is wrapped: in a transaction of its own when none is open, else
 * joined to the caller's. Calls check before they write, so one refused for a reason
 * (wrong state, duplicate, missing job) has changed nothing; after an I/O error the
 * caller rolls back its transaction or file savepoint anyway. Calls that change many
 * rows (claim, recover) also run in a savepoint of their own when joined: a half
 * done claim must not be committed with the caller's work. */
enum op_wrap { OP_JOINED, OP_OWN_TXN, OP_SAVEPOINT };

/* op_begin - starts a transaction unless the caller has one open. */
static int op_begin(struct store *st, enum op_wrap *how)
{
	if (st->caller_txn && !in_transaction(st)) {
		/* SQLite rolled the caller's batch back by itself (disk full, I/O error): a
		 * write now would commit on its own, keeping the rest of a half-undone batch */
		set_err(st, "the batch's transaction was rolled back by SQLite after an earlier "
		            "error; nothing more of it is written");
		return -1;
	}
	*how = in_transaction(st) ? OP_JOINED : OP_OWN_TXN;
	return *how == OP_OWN_TXN ? run_id(st, S_BEGIN, "begin a transaction") : 0;
}

/* op_begin_atomic - as op_begin, with a savepoint when joining. */
static int op_begin_atomic(struct store *st, enum op_wrap *how)
{
	if (op_begin(st, how) < 0)
		return -1;
	if (*how == OP_OWN_TXN)
		return 0;
	*how = OP_SAVEPOINT;
	return run_id(st, S_OP_SAVEPOINT, "set a savepoint");
}

/* op_end - commits (or releases) when rc >= 0, else undoes what op_begin* opened;
 * returns rc, or -1 when the commit itself failed. The first error's message is kept. */
static int op_end(struct store *st, enum op_wrap how, int rc)
{
	if (how == OP_JOINED)
		return rc;
	if (rc >= 0) {
		if (run_id(st, how == OP_OWN_TXN ? S_COMMIT : S_OP_RELEASE, "commit") == 0)
			return rc;
		rc = -1;
	}
	if (!in_transaction(st))
		return rc; /* SQLite rolled back by itself (I/O error, disk full) */
	if (how == OP_OWN_TXN) {
		quiet_run_id(st, S_ROLLBACK);
	} else {
		quiet_run_id(st, S_OP_ROLLBACK_TO);
		quiet_run_id(st, S_OP_RELEASE);
	}
	return rc;
}

/* --- open, migrate, close --------------------------------------------------------- */

/* pragma_int - the integer a PRAGMA (or any one-value query) returns. */
static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return sqlite3_extended_errcode(db);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? SQLITE_OK : sqlite3_extended_errcode(db);
}

/* add_io_reason - SQLite's message with the system's reason (a full disk says so). */
static void add_io_reason(struct store *st, struct strbuf *why, const char *what)
{
	int sys = sqlite3_system_errno(st->db);
	sb_addf(why, "%s %s: %s", what, st->path, sqlite3_errmsg(st->db));
	if (sys == ENOSPC)
		sb_adds(why, " (No space left on device: free space on that filesystem and start "
		             "again; nothing is lost, incoming/ is untouched)");
	else if (sys)
		sb_addf(why, " (%s)", strerror(sys));
}

/* add_corrupt_reason - the message for a file SQLite cannot read as ours, with what to do. */
static void add_corrupt_reason(struct strbuf *why, const char *path, const char *detail)
{
	sb_addf(why,
	        "database %s is not a segspool database or is corrupt: %s; move it aside "
	        "(with its -wal and -shm files) and start again: a new, empty database is "
	        "created and incoming/ is ingested; files already in archive/ are not run "
	        "again unless you move them back into incoming/ (their mutations would then be "
	        "sent again)",
	        path, detail);
}

/* is_corrupt_code - SQLite's codes for "this file is not a (sound) database". */
static int is_corrupt_code(int rc)
{
	rc &= 0xff;
	return rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT;
}

/* check_identity - the file's schema version, after checking it is ours: a fresh
 * database, or one marked with our application id. */
static int check_identity(struct store *st, int64_t *version, struct strbuf *why)
{
	int64_t appid = 0, nobjects = 0;
	int rc = pragma_int(st->db, "PRAGMA user_version", version);
	if (rc == SQLITE_OK)
		rc = pragma_int(st->db, "PRAGMA application_id", &appid);
	if (rc == SQLITE_OK)
		rc = pragma_int(st->db, "SELECT count(*) FROM sqlite_master", &nobjects);
	if (rc != SQLITE_OK) {
		if (is_corrupt_code(rc))
			add_corrupt_reason(why, st->path, sqlite3_errmsg(st->db));
		else
			add_io_reason(st, why, "cannot read database");
		return -1;
	}
	if (*version == 0 && nobjects > 0) {
		add_corrupt_reason(why, st->path, "it holds tables of another program");
		return -1;
	}
	if (*version > 0 && appid != STORE_APPLICATION_ID) {
		add_corrupt_reason(why, st->path, "its application id is not segspool's");
		return -1;
	}
	if (*version > (int64_t)store_migration_count) {
		sb_addf(why,
		        "database %s has schema version %" PRId64 ", newer than this segspool "
		        "knows (%zu): it was written by a newer segspool; run that one",
		        st->path, *version, store_migration_count);
		return -1;
	}
	return 0;
}

/* exec_sql - runs SQL text (several statements) once, as in a migration. */
static int exec_sql(struct store *st, const char *sql, struct strbuf *why, const char *what)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		return 0;
	if (is_corrupt_code(rc))
		add_corrupt_reason(why, st->path, msg ? msg : sqlite3_errstr(rc));
	else
		sb_addf(why, "cannot %s in database %s: %s", what, st->path,
		        msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return -1;
}

/* apply_migration - one migration and its user_version bump, in one transaction.
 * The version is read again under the write lock: another process may have migrated
 * the file since we looked. Returns 1 when nothing was left to do. */
static int apply_migration(struct store *st, struct strbuf *why)
{
	struct strbuf what = STRBUF_INIT;
	char bump[64];
	int64_t version = 0;
	if (exec_sql(st, "BEGIN IMMEDIATE", why, "begin the schema upgrade") < 0)
		return -1;
	int rc = pragma_int(st->db, "PRAGMA user_version", &version);
	if (rc != SQLITE_OK) {
		sb_addf(why, "cannot read the schema version of %s: %s", st->path,
		        sqlite3_errmsg(st->db));
		goto undo;
	}
	if (version >= (int64_t)store_migration_count) {
		sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
		return 1;
	}
	sb_addf(&what, "apply migration %" PRId64, version + 1);
	rc = exec_sql(st, store_migrations[version], why, what.buf);
	sb_release(&what);
	if (rc < 0)
		goto undo;
	snprintf(bump, sizeof(bump), "PRAGMA user_version = %" PRId64, version + 1);
	if (exec_sql(st, bump, why, "set the schema version") < 0 ||
	    exec_sql(st, "COMMIT", why, "commit the schema upgrade") < 0)
		goto undo;
	logmsg(LOG_INFO, "database %s: schema upgraded to version %" PRId64, st->path, version + 1);
	return 0;
undo:
	if (in_transaction(st))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* configure_writer - WAL (readers never block the writer), and synchronous=FULL: the
 * daemon deletes spool files once their jobs are committed, so a commit must be on
 * disk when COMMIT returns. */
static int configure_writer(struct store *st, struct strbuf *why)
{
	sqlite3_stmt *s;
	int ok = 0;
	/* A new database gets 2 KiB pages: a commit changes a few small rows in each of a
	 * dozen B-trees, and every changed page goes to the WAL whole, so smaller pages
	 * write (and copy) less. An existing database keeps its page size (the pragma is
	 * then ignored). */
	if (exec_sql(st, "PRAGMA page_size = 2048", why, "set the page size") < 0)
		return -1;
	if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW) {
			const unsigned char *mode = sqlite3_column_text(s, 0);
			ok = mode && strcasecmp((const char *)mode, "wal") == 0;
			if (!ok)
				sb_addf(why, "cannot put database %s in WAL mode (it stays in %s)",
				        st->path, mode ? (const char *)mode : "?");
		} else {
			sb_addf(why, "cannot put database %s in WAL mode: %s", st->path,
			        sqlite3_errmsg(st->db));
		}
		sqlite3_finalize(s);
	} else {
		sb_addf(why, "cannot put database %s in WAL mode: %s", st->path,
		        sqlite3_errmsg(st->db));
	}
	if (!ok)
		return -1;
	if (exec_sql(st, "PRAGMA synchronous = FULL", why, "set synchronous mode") < 0)
		return -1;
	/* 2 MiB of page cache (used only as needed): a group commit of a big spool file
	 * fits in it, and the daemon's peak RSS stays under its 16 MiB target (4 MiB saved
	 * no reads: the reads left are the checkpoint's, of the WAL) */
	return exec_sql(st, "PRAGMA cache_size = -2048", why, "set the cache size");
}

/* store_set_owner - see store.h. */
void store_set_owner(const char *role, const char *spool)
{
	snprintf(owner_role, sizeof(owner_role), "%s", role ? role : "cli");
	snprintf(owner_spool, sizeof(owner_spool), "%s", spool ? spool : "");
}

/* read_owner - the owner line a lock holder wrote beside the database, or "". */
static void read_owner(const char *owner_path, char *buf, size_t size)
{
	buf[0] = '\0';
	int fd = open(owner_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/* lock_store - the writer's lock: an flock on the database file itself, so it holds
 * whatever happens to lock files (a spool's .lock removed as "stale", two spools whose
 * config names the same db). SQLite's own locks are fcntl locks, which Linux keeps apart
 * from flock. The holder's pid, role and spool go to PATH.lock for the loser's message;
 * a daemon (STORE_WAIT_FOR_CLI) waits a while for a CLI command instead of failing. */
static int lock_store(struct store *st, int flags, struct strbuf *why)
{
	struct strbuf owner_path = STRBUF_INIT;
	sb_addf(&owner_path, "%s.lock", st->path);
	int fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		sb_addf(why, "cannot open database %s: %s", st->path, strerror(errno));
		sb_release(&owner_path);
		return -1;
	}
	int64_t deadline = clock_mono_ms() + STORE_CLI_WAIT_MS;
	int told = 0;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		char owner[STORE_OWNER_MAX];
		int saved = errno;
		read_owner(owner_path.buf, owner, sizeof(owner));
		struct lock_owner who;
		int cli = lock_owner_parse(owner, strlen(owner), &who) == 0 &&
		          lock_owner_command(&who) != NULL;
		if (saved != EWOULDBLOCK || !(flags & STORE_WAIT_FOR_CLI) || !cli ||
		    clock_mono_ms() > deadline) {
			if (saved != EWOULDBLOCK)
				sb_addf(why, "cannot lock database %s: %s", st->path,
				        strerror(saved));
			else
				sb_addf(why,
				        "database %s is in use by another segspool process (%s); "
				        "only one daemon or command may write a store at a time",
				        st->path, owner[0] ? owner : "its pid is not recorded yet");
			close(fd);
			sb_release(&owner_path);
			return -1;
		}
		if (!told++)
			logmsg(LOG_INFO,
			       "database %s is held by a segspool command (%s); waiting up "
			       "to %d s for it to finish",
			       st->path, owner, STORE_CLI_WAIT_MS / 1000);
		usleep(100 * 1000);
	}
	int ofd = open(owner_path.buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (ofd >= 0) {
		struct strbuf line = STRBUF_INIT;
		lock_owner_line(&line, (long)getpid(), owner_role, "spool",
		                owner_spool[0] ? owner_spool : "-");
		if (write(ofd, line.buf, line.len) < 0)
			logmsg(LOG_DEBUG, "cannot write %s: %s", owner_path.buf, strerror(errno));
		sb_release(&line);
		close(ofd);
	}
	sb_release(&owner_path);
	st->db_fd = fd;
	return 0;
}

/* open_checked - the body of store_open; the reason for a failure goes to why. */
static int open_checked(struct store *st, int flags, struct strbuf *why)
{
	/* one connection, one thread: SQLite's own mutexes would only cost time */
	int oflags =
	    SQLITE_OPEN_NOMUTEX |
	    (st->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	struct stat sb;
	int64_t version = 0;

	if (st->readonly && stat(st->path, &sb) < 0) {
		if (errno == ENOENT)
			sb_addf(why, "database %s does not exist", st->path);
		else
			sb_addf(why, "cannot open database %s: %s", st->path, strerror(errno));
		return -1;
	}
	if (!st->readonly && lock_store(st, flags, why) < 0)
		return -1;
	/* the writer's WAL writes are gathered into one per commit (store_vfs.c) */
	const char *vfs =
	    !st->readonly && store_vfs_register() == SQLITE_OK ? STORE_VFS_NAME : NULL;
	if (sqlite3_open_v2(st->path, &st->db, oflags, vfs) != SQLITE_OK) {
		sb_addf(why, "cannot open database %s: %s", st->path,
		        st->db ? sqlite3_errmsg(st->db) : "out of memory");
		return -1;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	if (exec_sql(st, "PRAGMA foreign_keys = ON", why, "enable foreign keys") < 0)
		return -1;
	/* the first read of the file: a non-database shows up here */
	if (check_identity(st, &version, why) < 0)
		return -1;
	if (st->readonly) {
		if (version < (int64_t)store_migration_count) {
			sb_addf(why,
			        "database %s has schema version %" PRId64 ", this segspool needs "
			        "%zu: start the daemon once to upgrade it",
			        st->path, version, store_migration_count);
			return -1;
		}
		return 0;
	}
	if (configure_writer(st, why) < 0)
		return -1;
	for (;;) {
		int rc = apply_migration(st, why);
		if (rc < 0)
			return -1;
		if (rc > 0)
			return 0;
	}
}

/* note_files - which inodes the writer's database and -wal are, for store_check_file. */
static int note_files(struct store *st, struct strbuf *why)
{
	struct stat sb;
	if (fstat(st->db_fd, &sb) < 0) { /* the fd lock_store opened and locked */
		sb_addf(why, "cannot open database %s: %s", st->path, strerror(errno));
		return -1;
	}
	st->db_dev = sb.st_dev;
	st->db_ino = sb.st_ino;
	struct strbuf wal = STRBUF_INIT;
	sb_addf(&wal, "%s-wal", st->path);
	/* WAL mode and the migrations' writes made it; SQLite keeps it while it is open */
	if (stat(wal.buf, &sb) == 0) {
		st->have_wal = 1;
		st->wal_dev = sb.st_dev;
		st->wal_ino = sb.st_ino;
	}
	sb_release(&wal);
	return 0;
}

/* configure_library - SQLite's process-wide settings, before its first use: segspool
 * uses each connection from one thread, and never asks for memory statistics, so the
 * library's mutexes and its per-allocation accounting would only cost time. A call after
 * SQLite was initialized (a second store in the same process) is refused harmlessly. */
static void configure_library(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	(void)sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* store_open - opens (creating if writable) and migrates; see store.h. */
int store_open(const char *path, int flags, struct store **out, char **err_out)
{
	struct store *st = xcalloc(1, sizeof(*st));
	struct strbuf why = STRBUF_INIT;

	configure_library();

	st->path = xstrdup(path);
	st->readonly = (flags & STORE_READONLY) != 0;
	sb_init(&st->err, 0);
	*out = NULL;
	if (err_out)
		*err_out = NULL;
	st->db_fd = -1;
	if (open_checked(st, flags, &why) < 0 || (!st->readonly && note_files(st, &why) < 0)) {
		store_close(st);
		if (err_out)
			*err_out = sb_detach(&why, NULL);
		sb_release(&why);
		return -1;
	}
	sb_release(&why);
	*out = st;
	return 0;
}

/* store_close - finalizes the statements and closes the file; NULL is fine. */
void store_close(struct store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < S_NSTMTS; i++)
		sqlite3_finalize(st->stmts[i]);
	if (st->db && sqlite3_close(st->db) != SQLITE_OK)
		logmsg(LOG_WARN, "cannot close database %s: %s", st->path, sqlite3_errmsg(st->db));
	/* after SQLite's close: closing any fd of the file would drop its fcntl locks */
	if (st->db_fd >= 0)
		close(st->db_fd);
	sb_release(&st->err);
	free(st->path);
	free(st);
}

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
	sqlite3_stmt *s = prep(st, S_FILE_SEEN);
	if (!s)
		return -1;
	bind_text(s, 1, name);
	bind_text(s, 2, hash);
	int seen = STORE_FILE_NEW, rc;
	while ((rc = step(st, s, "look up an ingested file")) == SQLITE_ROW) {
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
	done(s);
	return seen;
}

/* store_file_record - notes one ingest of a file, and how many jobs it gave. */
int store_file_record(struct store *st, const char *name, const char *hash,
                      const struct store_file_id *id, int64_t now_ms, int njobs, int nduplicates)
{
	enum op_wrap how;
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_FILE_RECORD);
	int rc = -1;
	if (s) {
		bind_text(s, 1, name);
		bind_text(s, 2, hash);
		bind_file_id(s, id);
		sqlite3_bind_int64(s, 7, now_ms);
		sqlite3_bind_int(s, 8, njobs);
		sqlite3_bind_int(s, 9, nduplicates);
		rc = run(st, s, "record an ingested file");
	}
	return op_end(st, how, rc);
}

/* store_file_adopt - identity-less rows of name and hash take this file's identity. */
int store_file_adopt(struct store *st, const char *name, const char *hash,
                     const struct store_file_id *id)
{
	enum op_wrap how;
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_FILE_ADOPT);
	int rc = -1;
	if (s) {
		bind_text(s, 1, name);
		bind_text(s, 2, hash);
		bind_file_id(s, id);
		rc = run(st, s, "record an ingested file's identity");
	}
	return op_end(st, how, rc);
}

/* output_query - one lookup of S_OUTPUT_TAKEN or S_OUTPUT_BELOW for n bytes of path:
 * 1 with the job found, 0 none, -1 error. */
static int output_query(struct store *st, enum stmt_id id, const char *path, size_t n,
                        int64_t *job_id, char **other)
{
	sqlite3_stmt *s = prep(st, id);
	if (!s)
		return -1;
	sqlite3_bind_text(s, 1, path, (int)n, SQLITE_STATIC);
	int rc = step(st, s, "look up the outputs of unfinished jobs");
	if (rc < 0)
		return -1;
	int found = rc == SQLITE_ROW;
	if (found) {
		*job_id = sqlite3_column_int64(s, 0);
		*other = column_dup(s, 1);
	}
	done(s);
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

static int job_by_key(struct store *st, const char *key, int64_t *id);

/* store_key_recorded - whether a job with this idempotency key is recorded. */
int store_key_recorded(struct store *st, const char *key)
{
	int64_t id;
	return job_by_key(st, key, &id);
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
static int record_transition(struct store *st, int64_t id, int from, enum job_state to,
                             int64_t now_ms, const char *reason)
{
	sqlite3_stmt *s = prep(st, S_TRANSITION_ADD);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (from >= 0)
		sqlite3_bind_int(s, 2, from);
	sqlite3_bind_int(s, 3, (int)to);
	sqlite3_bind_int64(s, 4, now_ms);
	bind_text(s, 5, reason);
	return run(st, s, "record a state change");
}

/* job_by_key - the id of the job holding an idempotency key: 1 found, 0 not, -1. */
static int job_by_key(struct store *st, const char *key, int64_t *id)
{
	sqlite3_stmt *s = prep(st, S_JOB_BY_KEY);
	if (!s)
		return -1;
	bind_text(s, 1, key);
	int rc = step(st, s, "look up a job key");
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(s, 0);
	done(s);
	return rc < 0 ? -1 : rc == SQLITE_ROW;
}

/* insert_job - the jobs row, which is also its creation's history (CREATION_REASON). */
static int insert_job(struct store *st, const struct job_new *job, int64_t now_ms, int64_t *id)
{
	sqlite3_stmt *s = prep(st, S_JOB_INSERT);
	if (!s)
		return -1;
	bind_int64_or_null(s, 1, job->parent_id, 0);
	bind_text(s, 2, job->op_id);
	bind_text(s, 3, job->spec_json);
	bind_text(s, 4, job->key);
	bind_text(s, 5, job->workspace);
	bind_text(s, 6, job->output_path);
	bind_text(s, 7, job->source_file);
	sqlite3_bind_int(s, 8, job->priority);
	sqlite3_bind_int64(s, 9, job->not_before_ms);
	sqlite3_bind_int64(s, 10, job->not_before_ms > now_ms ? job->not_before_ms : now_ms);
	sqlite3_bind_int(s, 11, job->max_attempts);
	sqlite3_bind_int64(s, 12, now_ms);
	sqlite3_bind_int(s, 13, job->paginated != 0);
	sqlite3_bind_int(s, 14, job->mutates != 0);
	if (run(st, s, "insert a job") < 0)
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
		set_err(st, "cannot insert a job without an operation and a spec");
		return -1;
	}
	if (op_begin(st, &how) < 0)
		return -1;
	/* looked up under the write lock, so no other writer can slip the key in between */
	rc = job->key ? job_by_key(st, job->key, id) : 0;
	if (rc == 0)
		rc = insert_job(st, job, now_ms, id) < 0 ? -1 : STORE_INSERTED;
	else if (rc > 0)
		rc = STORE_DUPLICATE;
	return op_end(st, how, rc);
}

/* --- reading jobs -------------------------------------------------------------------- */

/* read_job_row - a row of JOB_COLS into a job_row (strings malloc'd). */
static void read_job_row(sqlite3_stmt *s, struct job_row *row)
{
	row->id = sqlite3_column_int64(s, 0);
	row->parent_id = column_int64_or(s, 1, 0);
	row->state = (enum job_state)sqlite3_column_int(s, 2);
	row->op_id = column_dup(s, 3);
	row->spec_json = column_dup(s, 4);
	row->key = column_dup(s, 5);
	row->workspace = column_dup(s, 6);
	row->output_path = column_dup(s, 7);
	row->priority = sqlite3_column_int(s, 8);
	row->attempts = sqlite3_column_int(s, 9);
	row->created_ms = sqlite3_column_int64(s, 10);
	row->next_run_ms = sqlite3_column_int64(s, 11);
	row->cursor = column_dup(s, 12);
	row->pages_done = sqlite3_column_int(s, 13);
	row->items_done = sqlite3_column_int64(s, 14);
	row->total_entries = column_int64_or(s, 15, -1);
	row->cancel_requested = sqlite3_column_int(s, 16);
	row->has_result = sqlite3_column_int(s, 17);
	row->tries = sqlite3_column_int(s, 18);
}

/* job_row_release - frees the row's strings; the row itself is the caller's. */
void job_row_release(struct job_row *row)
{
	free(row->op_id);
	free(row->spec_json);
	free(row->key);
	free(row->workspace);
	free(row->output_path);
	free(row->cursor);
	row->op_id = row->spec_json = row->key = row->workspace = row->output_path = NULL;
	row->cursor = NULL;
}

/* store_get - one job: 0, 1 when there is no such job, -1 on error. */
int store_get(struct store *st, int64_t id, struct job_row *out)
{
	sqlite3_stmt *s = prep(st, S_JOB_GET);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	int rc = step(st, s, "read a job");
	if (rc == SQLITE_ROW)
		read_job_row(s, out);
	done(s);
	if (rc == SQLITE_DONE)
		set_err(st, "no job %" PRId64, id);
	return rc < 0 ? -1 : rc == SQLITE_ROW ? 0 : 1;
}

/* job_state_get - a job's state: 0, 1 when there is no such job, -1. */
static int job_state_get(struct store *st, int64_t id, enum job_state *state)
{
	sqlite3_stmt *s = prep(st, S_JOB_STATE);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	int rc = step(st, s, "read a job's state");
	if (rc == SQLITE_ROW)
		*state = (enum job_state)sqlite3_column_int(s, 0);
	done(s);
	return rc < 0 ? -1 : rc == SQLITE_ROW ? 0 : 1;
}

/* --- scheduling ------------------------------------------------------------------------ */

/* next_due_priority - the highest priority below bound that has a queued or waiting
 * job: 1 with *priority set, 0 when there is none, -1. */
static int next_due_priority(struct store *st, int64_t bound, int64_t *priority)
{
	sqlite3_stmt *s = prep(st, S_DUE_NEXT_PRIORITY);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, bound);
	int rc = step(st, s, "find due jobs");
	if (rc == SQLITE_ROW)
		*priority = sqlite3_column_int64(s, 0);
	done(s);
	return rc < 0 ? -1 : rc == SQLITE_ROW;
}

/* due_at_priority - up to max due jobs of one priority into rows, in claim order;
 * returns how many, or -1. */
static int due_at_priority(struct store *st, int64_t priority, int64_t now_ms, struct job_row *rows,
                           int max)
{
	sqlite3_stmt *s = prep(st, S_DUE_AT_PRIORITY);
	int n = 0, rc;
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, priority);
	sqlite3_bind_int64(s, 2, now_ms);
	sqlite3_bind_int(s, 3, max);
	while ((rc = step(st, s, "read due jobs")) == SQLITE_ROW)
		read_job_row(s, &rows[n++]);
	done(s);
	if (rc < 0) {
		while (n > 0)
			job_row_release(&rows[--n]);
		return -1;
	}
	return n;
}

/* select_due - the claim order, without claiming: highest priority first, then
 * earliest due, then oldest. Returns how many rows were filled, or -1. */
static int select_due(struct store *st, int64_t now_ms, struct job_row *rows, int max)
{
	int64_t bound = INT64_MAX, priority;
	int n = 0;
	while (n < max) {
		int rc = next_due_priority(st, bound, &priority);
		if (rc == 0)
			break;
		int got = rc < 0 ? -1 : due_at_priority(st, priority, now_ms, rows + n, max - n);
		if (got < 0) {
			while (n > 0)
				job_row_release(&rows[--n]);
			return -1;
		}
		n += got;
		bound = priority;
	}
	return n;
}

/* claim_rows - moves the selected jobs to running, each with its transition. The
 * updates come after the select has finished: the rows leave the index it walked. */
static int claim_rows(struct store *st, int64_t now_ms, struct job_row *rows, int n)
{
	for (int i = 0; i < n; i++) {
		sqlite3_stmt *s = prep(st, S_JOB_CLAIM);
		if (!s)
			return -1;
		sqlite3_bind_int64(s, 1, rows[i].id);
		sqlite3_bind_int64(s, 2, now_ms);
		if (run(st, s, "claim a job") < 0 ||
		    record_transition(st, rows[i].id, (int)rows[i].state, JS_RUNNING, now_ms,
		                      "claimed") < 0)
			return -1;
		rows[i].state = JS_RUNNING;
	}
	return 0;
}

/* store_claim_due - up to max due jobs, moved to running; see store.h. */
int store_claim_due(struct store *st, int64_t now_ms, struct job_row *rows, int max)
{
	enum op_wrap how;
	int n;
	if (max <= 0)
		return 0;
	if (op_begin_atomic(st, &how) < 0)
		return -1;
	n = select_due(st, now_ms, rows, max);
	if (n > 0 && claim_rows(st, now_ms, rows, n) < 0) {
		while (n > 0)
			job_row_release(&rows[--n]);
		n = -1;
	}
	int rc = op_end(st, how, n);
	while (rc < 0 && n > 0) /* the commit failed: none of them was claimed */
		job_row_release(&rows[--n]);
	return rc;
}

/* store_next_due_ms - the earliest next run among queued and waiting jobs: the first
 * entry of each priority's stretch of the due index. */
int64_t store_next_due_ms(struct store *st)
{
	int64_t bound = INT64_MAX, priority, best = 0;
	int rc;
	sqlite3_stmt *s = prep(st, S_FIRST_RUN_AT_PRIORITY);
	if (!s)
		return -1;
	while ((rc = next_due_priority(st, bound, &priority)) > 0) {
		sqlite3_bind_int64(s, 1, priority);
		int r = step(st, s, "find the next due job");
		if (r < 0)
			return -1;
		if (r == SQLITE_ROW) {
			int64_t at = sqlite3_column_int64(s, 0);
			if (!best || at < best)
				best = at;
		}
		done(s);
		bound = priority;
	}
	return rc < 0 ? -1 : best;
}

/* count_query - the single integer a counting statement returns (bound by the caller). */
static int64_t count_query(struct store *st, sqlite3_stmt *s, const char *what)
{
	int64_t n = -1;
	if (step(st, s, what) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	done(s);
	return n;
}

/* store_count_active - jobs queued, running or waiting. */
int64_t store_count_active(struct store *st)
{
	sqlite3_stmt *s = prep(st, S_COUNT_ACTIVE);
	return s ? count_query(st, s, "count active jobs") : -1;
}

/* store_count_waiting_for - waiting jobs whose last wait's reason begins with reason. */
int64_t store_count_waiting_for(struct store *st, const char *reason)
{
	sqlite3_stmt *s = prep(st, S_COUNT_WAITING_FOR);
	if (!s)
		return -1;
	bind_text(s, 1, reason);
	return count_query(st, s, "count waiting jobs");
}

/* --- attempts ---------------------------------------------------------------------------- */

/* store_count_lost_answers - the job's attempts recorded "unknown", or -1. */
int64_t store_count_lost_answers(struct store *st, int64_t job_id)
{
	sqlite3_stmt *s = prep(st, S_COUNT_LOST_ANSWERS);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, job_id);
	return count_query(st, s, "count a job's lost answers");
}

/* store_attempt_begin - a started attempt; see store.h. */
int store_attempt_begin(struct store *st, int64_t job_id, int attempt_no, int64_t now_ms,
                        const char *request, int64_t *attempt_id)
{
	enum op_wrap how;
	int rc = -1;
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_ATTEMPT_BEGIN);
	if (s) {
		sqlite3_bind_int64(s, 1, job_id);
		sqlite3_bind_int64(s, 2, now_ms);
		bind_text(s, 3, request);
		sqlite3_bind_int(s, 4, attempt_no);
		rc = run(st, s, "record an attempt");
		if (rc == 0)
			*attempt_id = sqlite3_last_insert_rowid(st->db);
	}
	return op_end(st, how, rc);
}

/* utf8_seq - the length of the well-formed UTF-8 sequence at s (of n bytes), 0 if none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned min;
	unsigned cp;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, min = 0x80, cp = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, min = 0x800, cp = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, min = 0x10000, cp = s[0] & 0x07u;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* keep_body - the first STORE_ATTEMPT_BODY_MAX bytes of an answer's body as text: bytes
 * that are not UTF-8, and NUL, as \xNN (show prints it, --json too); a cut body ends
 * with a line saying so. */
static void keep_body(struct strbuf *out, const char *body, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *b = (const unsigned char *)body;
	size_t keep = len < STORE_ATTEMPT_BODY_MAX ? len : STORE_ATTEMPT_BODY_MAX, i = 0;
	while (i < keep) {
		size_t n = b[i] ? utf8_seq(b + i, keep - i) : 0;
		if (n) {
			sb_add(out, b + i, n);
			i += n;
			continue;
		}
		char esc[4] = {'\\', 'x', hex[b[i] >> 4], hex[b[i] & 15]};
		sb_add(out, esc, sizeof(esc));
		i++;
	}
	if (keep < len)
		sb_addf(out, "\n[segspool: cut: the first %zu of %zu bytes kept]", keep, len);
}

/* store_attempt_end - the outcome of a started attempt. */
int store_attempt_end(struct store *st, int64_t attempt_id, const struct attempt_end *end)
{
	enum op_wrap how;
	int rc = -1;
	if (!end->outcome) {
		set_err(st, "cannot end attempt %" PRId64 ": no outcome given", attempt_id);
		return -1;
	}
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_ATTEMPT_END);
	if (s) {
		sqlite3_bind_int64(s, 1, attempt_id);
		sqlite3_bind_int64(s, 2, end->duration_ms);
		bind_int64_or_null(s, 3, end->http_status, 0);
		bind_text(s, 4, end->outcome);
		bind_text(s, 5, end->error);
		bind_int64_or_null(s, 6, end->retry_after_ms < 0 ? -1 : end->retry_after_ms, -1);
		bind_int64_or_null(s, 7, end->rl_remaining < 0 ? -1 : end->rl_remaining, -1);
		bind_text(s, 8, end->rl_reset);
		bind_text(s, 9, end->request);
		struct strbuf body = STRBUF_INIT;
		if (end->body && end->body_len) {
			keep_body(&body, end->body, end->body_len);
			sqlite3_bind_text(s, 10, body.buf, (int)body.len, SQLITE_STATIC);
		} else {
			sqlite3_bind_null(s, 10);
		}
		rc = run(st, s, "record an attempt's outcome");
		sb_release(&body);
		if (rc == 0 && sqlite3_changes(st->db) == 0) {
			set_err(st, "cannot end attempt %" PRId64 ": no such attempt", attempt_id);
			rc = -1;
		}
	}
	return op_end(st, how, rc);
}

/* store_last_attempt - the job's last attempt: its status, error and kept body. */
int store_last_attempt(struct store *st, int64_t job_id, int *status, char **error, char **body)
{
	*status = 0;
	*error = *body = NULL;
	sqlite3_stmt *s = prep(st, S_LAST_ATTEMPT);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, job_id);
	int rc = step(st, s, "read a job's last attempt");
	if (rc == SQLITE_ROW) {
		*status = sqlite3_column_int(s, 0);
		*error = column_dup(s, 1);
		*body = column_dup(s, 2);
	}
	done(s);
	return rc < 0 ? -1 : rc == SQLITE_ROW ? 0 : 1;
}

/* --- state changes --------------------------------------------------------------------- */

/* describe_states - "running", "running or waiting", "queued, running or waiting". */
static void describe_states(struct strbuf *sb, unsigned mask)
{
	int total = 0, seen = 0;
	for (int i = 0; i < JS_COUNT; i++)
		total += (mask & BIT(i)) != 0;
	for (int i = 0; i < JS_COUNT; i++) {
		if (!(mask & BIT(i)))
			continue;
		if (seen)
			sb_adds(sb, seen == total - 1 ? " or " : ", ");
		sb_adds(sb, job_state_name((enum job_state)i));
		seen++;
	}
}

/* only_state - the state when mask allows exactly one, else -1. */
static int only_state(unsigned mask)
{
	for (int i = 0; i < JS_COUNT; i++)
		if (mask == BIT(i))
			return i;
	return -1;
}

/* change_state - a job in one of the allowed states moves to `to` by the update upd
 * (?1 id, ?2 now, ?3 state, ?9 from; the caller has bound the rest), with its transition
 * row. When one state is allowed the update checks it itself and the job is read only to
 * explain a refusal: that is the scheduler's every success and wait.
 * Returns 0, 1 when the job is in a state that does not allow it (nothing done, the
 * reason in store_errmsg), -1 on error or when there is no such job. */
static int change_state(struct store *st, int64_t id, unsigned allowed, enum job_state to,
                        sqlite3_stmt *upd, const char *verb, const char *reason, int64_t now_ms)
{
	enum job_state from = JS_QUEUED;
	int only = only_state(allowed);
	sqlite3_bind_int64(upd, 1, id);
	sqlite3_bind_int64(upd, 2, now_ms);
	sqlite3_bind_int(upd, 3, (int)to);
	if (only >= 0) {
		sqlite3_bind_int(upd, 9, only);
		if (run(st, upd, "change a job's state") < 0)
			return -1;
		if (sqlite3_changes(st->db) == 1)
			return record_transition(st, id, only, to, now_ms, reason);
		/* not changed: say why below; the statement is reset and unbound */
	}
	int rc = job_state_get(st, id, &from);
	if (rc != 0) {
		done(upd);
		if (rc > 0)
			set_err(st, "cannot %s job %" PRId64 ": no such job", verb, id);
		return -1;
	}
	if (!(allowed & BIT(from))) {
		done(upd);
		set_err(st, "cannot %s job %" PRId64 ": it is %s, not ", verb, id,
		        job_state_name(from));
		describe_states(&st->err, allowed);
		return 1;
	}
	if (only >= 0) { /* it is in the state the update looked for, yet nothing changed */
		set_err(st, "cannot %s job %" PRId64 ": the update changed nothing", verb, id);
		return -1;
	}
	sqlite3_bind_null(upd, 9);
	if (run(st, upd, "change a job's state") < 0)
		return -1;
	return record_transition(st, id, (int)from, to, now_ms, reason);
}

/* strict - a state change the scheduler asked for: being in the wrong state is an
 * error (-1) for it, not a "no" as for the CLI's retry and cancel. */
static int strict(int rc)
{
	return rc > 0 ? -1 : rc;
}

/* store_job_succeed - running -> succeeded; see store.h. */
int store_job_succeed(struct store *st, int64_t id, const struct job_success *ok, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, ok->output_path ? S_JOB_SUCCEED : S_JOB_SUCCEED_IN_STORE);
	if (s) {
		bind_text(s, 4, ok->result_json);
		sqlite3_bind_int(s, 5, ok->count_attempt ? 1 : 0);
		if (ok->output_path)
			bind_text(s, 6, ok->output_path);
		rc = strict(change_state(st, id, BIT(JS_RUNNING), JS_SUCCEEDED, s, "mark succeeded",
		                         NULL, now_ms));
	}
	return op_end(st, how, rc);
}

/* store_job_wait - running -> waiting until next_run_ms. */
int store_job_wait(struct store *st, int64_t id, int64_t next_run_ms, int count_attempt,
                   const char *reason, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_JOB_WAIT);
	if (s) {
		sqlite3_bind_int64(s, 4, next_run_ms);
		sqlite3_bind_int(s, 5, count_attempt ? 1 : 0);
		rc = strict(change_state(st, id, BIT(JS_RUNNING), JS_WAITING, s, "put to wait",
		                         reason, now_ms));
	}
	return op_end(st, how, rc);
}

/* store_job_end - running|waiting|queued -> failed, dead or cancelled. */
int store_job_end(struct store *st, int64_t id, enum job_state to, const char *error_json,
                  const char *reason, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (to != JS_FAILED && to != JS_DEAD && to != JS_CANCELLED) {
		set_err(st, "cannot end job %" PRId64 " as %s: only failed, dead or cancelled", id,
		        job_state_name(to));
		return -1;
	}
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_JOB_END);
	if (s) {
		bind_text(s, 4, error_json);
		rc = strict(change_state(st, id, BIT(JS_RUNNING) | BIT(JS_WAITING) | BIT(JS_QUEUED),
		                         to, s, "end", reason, now_ms));
	}
	return op_end(st, how, rc);
}

/* store_job_output_lost - succeeded -> failed in the same transaction, result kept. */
int store_job_output_lost(struct store *st, int64_t id, const char *error_json, const char *reason,
                          int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_JOB_END);
	if (s) {
		bind_text(s, 4, error_json);
		rc = strict(
		    change_state(st, id, BIT(JS_SUCCEEDED), JS_FAILED, s, "fail", reason, now_ms));
	}
	return op_end(st, how, rc);
}

/* store_wake_waiters - waiting jobs whose last wait gave `reason` are due now; how many,
 * or -1. */
int64_t store_wake_waiters(struct store *st, const char *reason, int64_t now_ms)
{
	enum op_wrap how;
	int64_t n = -1;
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_WAKE_WAITERS);
	if (s) {
		sqlite3_bind_int64(s, 1, now_ms);
		bind_text(s, 2, reason);
		if (run(st, s, "wake waiting jobs") == 0)
			n = sqlite3_changes(st->db);
	}
	return op_end(st, how, n < 0 ? -1 : 0) < 0 ? -1 : n;
}

/* store_job_requeue - running -> queued, keeping its place (next_run_ms) in the queue. */
int store_job_requeue(struct store *st, int64_t id, const char *reason, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_JOB_REQUEUE);
	if (s)
		rc = strict(
		    change_state(st, id, BIT(JS_RUNNING), JS_QUEUED, s, "requeue", reason, now_ms));
	return op_end(st, how, rc);
}

/* store_job_count_attempt - the attempt that ended the job counts against max_attempts. */
int store_job_count_attempt(struct store *st, int64_t id)
{
	enum op_wrap how;
	int rc = -1;
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_JOB_COUNT_ATTEMPT);
	if (s) {
		sqlite3_bind_int64(s, 1, id);
		rc = run(st, s, "count an attempt");
	}
	return op_end(st, how, rc);
}

/* store_job_set_result - keeps a response's data without changing the job's state. */
int store_job_set_result(struct store *st, int64_t id, const char *result_json)
{
	enum op_wrap how;
	int rc = -1;
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_JOB_SET_RESULT);
	if (s) {
		sqlite3_bind_int64(s, 1, id);
		bind_text(s, 2, result_json);
		rc = run(st, s, "record a job's result");
	}
	return op_end(st, how, rc);
}

/* store_job_result - the stored result (malloc'd, NULL if none). 0, or -1. */
int store_job_result(struct store *st, int64_t id, char **result_json)
{
	*result_json = NULL;
	sqlite3_stmt *s = prep(st, S_JOB_GET_RESULT);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		*result_json = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		set_err(st, "cannot read the result of job %" PRId64 ": %s", id,
		        sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

/* --- pages ----------------------------------------------------------------------------- */

/* advance_cursor - the job's resume point moves past the page just stored. */
static int advance_cursor(struct store *st, int64_t job_id, int page_no, const char *next_cursor,
                          int64_t nitems, int64_t total_entries, int64_t now_ms)
{
	sqlite3_stmt *s = prep(st, S_PAGE_ADVANCE);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, job_id);
	bind_text(s, 2, next_cursor);
	sqlite3_bind_int(s, 3, page_no);
	sqlite3_bind_int64(s, 4, nitems);
	bind_int64_or_null(s, 5, total_entries < 0 ? -1 : total_entries, -1);
	sqlite3_bind_int64(s, 6, now_ms);
	return run(st, s, "advance a job's cursor");
}

/* store_page_record - a fetched page and the job's new resume point, together: after a
 * crash the job's cursor is the page to fetch next, never one already stored. */
int store_page_record(struct store *st, int64_t job_id, int page_no, const char *cursor,
                      const char *next_cursor, const char *items_json, int64_t nitems,
                      int64_t total_entries, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_PAGE_INSERT);
	if (s) {
		sqlite3_bind_int64(s, 1, job_id);
		sqlite3_bind_int(s, 2, page_no);
		bind_text(s, 3, cursor);
		bind_text(s, 4, next_cursor);
		bind_text(s, 5, items_json ? items_json : "[]");
		sqlite3_bind_int64(s, 6, nitems);
		bind_int64_or_null(s, 7, total_entries < 0 ? -1 : total_entries, -1);
		sqlite3_bind_int64(s, 8, now_ms);
		rc = run(st, s, "record a page");
		if (rc == 0)
			rc = advance_cursor(st, job_id, page_no, next_cursor, nitems, total_entries,
			                    now_ms);
	}
	return op_end(st, how, rc);
}

/* store_pages_foreach - the job's pages in order. fn must not call this function again
 * (its statement is in use). */
int store_pages_foreach(struct store *st, int64_t job_id, store_page_fn fn, void *arg)
{
	sqlite3_stmt *s = prep(st, S_PAGES_OF);
	int rc, stop = 0;
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, job_id);
	while (!stop && (rc = step(st, s, "read pages")) == SQLITE_ROW)
		stop = fn(sqlite3_column_int(s, 0), (const char *)sqlite3_column_text(s, 1), arg);
	done(s);
	return !stop && rc < 0 ? -1 : 0;
}

/* store_page_cursor_seen - the first of the job's pages fetched with cursor, or 0. */
int store_page_cursor_seen(struct store *st, int64_t job_id, const char *cursor)
{
	sqlite3_stmt *s = prep(st, S_PAGE_CURSOR_SEEN);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, job_id);
	bind_text(s, 2, cursor);
	int rc = step(st, s, "look up a page's cursor");
	int page = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
	done(s);
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
	sqlite3_stmt *s = prep(st, S_OPEN_ATTEMPTS);
	size_t alloc = 0;
	int rc;
	*out = NULL;
	*n = 0;
	if (!s)
		return -1;
	while ((rc = step(st, s, "find unfinished attempts")) == SQLITE_ROW) {
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
	done(s);
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
		sqlite3_stmt *s = prep(st, S_ATTEMPT_CLOSE);
		if (!s) {
			rc = -1;
			break;
		}
		sqlite3_bind_int64(s, 1, open[i].id);
		bind_text(s, 2, open[i].read ? "interrupted" : "unknown");
		rc = run(st, s, "close an unfinished attempt");
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
	while ((rc = step(st, s, "list jobs")) == SQLITE_ROW) {
		if (*n == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			*ids = xrealloc(*ids, alloc * sizeof(**ids));
		}
		(*ids)[(*n)++] = sqlite3_column_int64(s, 0);
	}
	done(s);
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
	sqlite3_stmt *s = prep(st, S_RUNNING_IDS);
	if (!s)
		return -1;
	if (collect_ids(st, s, &ids, &n) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		sqlite3_stmt *upd = prep(st, S_JOB_REQUEUE);
		rc = upd ? strict(change_state(st, ids[i], BIT(JS_RUNNING), JS_QUEUED, upd,
		                               "requeue", "daemon restarted; was running", now_ms))
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
	if (op_begin_atomic(st, &how) < 0)
		return -1;
	/* attempts first: they are found through their jobs, which are still running */
	rc = close_open_attempts(st) < 0 ? -1 : requeue_running(st, now_ms);
	return op_end(st, how, rc);
}

/* --- parents and children ------------------------------------------------------------------ */

/* store_children_counts - a fan-out parent's children by state. */
int store_children_counts(struct store *st, int64_t parent_id, struct child_counts *out)
{
	sqlite3_stmt *s = prep(st, S_CHILD_COUNTS);
	int rc;
	memset(out, 0, sizeof(*out));
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, parent_id);
	while ((rc = step(st, s, "count child jobs")) == SQLITE_ROW) {
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
	done(s);
	return rc < 0 ? -1 : 0;
}

/* store_children_ids - a parent's children, oldest first. */
int store_children_ids(struct store *st, int64_t parent_id, int64_t **ids, size_t *n)
{
	sqlite3_stmt *s = prep(st, S_CHILD_IDS);
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
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_JOB_RETRY);
	if (s)
		rc = change_state(st, id, BIT(JS_FAILED) | BIT(JS_DEAD) | BIT(JS_CANCELLED),
		                  JS_QUEUED, s, "retry", "retry requested", now_ms);
	return op_end(st, how, rc);
}

/* request_cancel - a running job is only flagged: the daemon aborts its request and
 * ends it cancelled itself. */
static int request_cancel(struct store *st, int64_t id, int64_t now_ms)
{
	sqlite3_stmt *s = prep(st, S_JOB_CANCEL_REQUEST);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, now_ms);
	return run(st, s, "request a cancel") < 0 ? -1 : 2;
}

/* store_job_cancel - 0 cancelled, 1 not allowed (succeeded or already cancelled),
 * 2 running (flagged, the caller aborts it), -1 error or no such job. */
int store_job_cancel(struct store *st, int64_t id, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	enum job_state state = JS_QUEUED;
	if (op_begin(st, &how) < 0)
		return -1;
	int found = job_state_get(st, id, &state);
	if (found > 0)
		set_err(st, "cannot cancel job %" PRId64 ": no such job", id);
	if (found != 0)
		return op_end(st, how, -1);
	if (state == JS_RUNNING) {
		rc = request_cancel(st, id, now_ms);
	} else {
		sqlite3_stmt *s = prep(st, S_JOB_CANCEL);
		if (s)
			rc = change_state(st, id,
			                  BIT(JS_QUEUED) | BIT(JS_WAITING) | BIT(JS_FAILED) |
			                      BIT(JS_DEAD),
			                  JS_CANCELLED, s, "cancel", "cancel requested", now_ms);
	}
	return op_end(st, how, rc);
}

/* store_ids_in_state - ids of the jobs in a state, oldest first. */
int store_ids_in_state(struct store *st, enum job_state state, int64_t **ids, size_t *n)
{
	sqlite3_stmt *s = prep(st, S_IDS_IN_STATE);
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
	if (op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = prep(st, S_BUCKET_SAVE);
	if (s) {
		bind_text(s, 1, key);
		sqlite3_bind_double(s, 2, tokens);
		sqlite3_bind_int64(s, 3, updated_ms);
		sqlite3_bind_int64(s, 4, hold_until_ms);
		rc = run(st, s, "save a rate-limit bucket");
	}
	return op_end(st, how, rc);
}

/* store_bucket_foreach - every saved bucket, by key. */
int store_bucket_foreach(struct store *st, store_bucket_fn fn, void *arg)
{
	sqlite3_stmt *s = prep(st, S_BUCKETS);
	int rc;
	if (!s)
		return -1;
	while ((rc = step(st, s, "read rate-limit buckets")) == SQLITE_ROW)
		fn((const char *)sqlite3_column_text(s, 0), sqlite3_column_double(s, 1),
		   sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3), arg);
	done(s);
	return rc < 0 ? -1 : 0;
}

/* --- reading, for the CLI ------------------------------------------------------------------ */

/* store_counts - jobs in each state. */
int store_counts(struct store *st, int64_t counts[JS_COUNT])
{
	sqlite3_stmt *s = prep(st, S_COUNTS);
	int rc;
	memset(counts, 0, sizeof(int64_t) * JS_COUNT);
	if (!s)
		return -1;
	while ((rc = step(st, s, "count jobs")) == SQLITE_ROW) {
		int state = sqlite3_column_int(s, 0);
		if (state >= 0 && state < JS_COUNT)
			counts[state] = sqlite3_column_int64(s, 1);
	}
	done(s);
	return rc < 0 ? -1 : 0;
}

/* json_add_int - an integer column, or null. */
static void json_add_int(cJSON *obj, const char *name, sqlite3_stmt *s, int i)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		cJSON_AddNullToObject(obj, name);
	else
		cJSON_AddNumberToObject(obj, name, (double)sqlite3_column_int64(s, i));
}

/* json_add_text - a text column, or null. */
static void json_add_text(cJSON *obj, const char *name, sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	if (t)
		cJSON_AddStringToObject(obj, name, (const char *)t);
	else
		cJSON_AddNullToObject(obj, name);
}

/* json_add_time - a millisecond column as RFC 3339 text, or null. */
static void json_add_time(cJSON *obj, const char *name, sqlite3_stmt *s, int i)
{
	char when[48];
	if (sqlite3_column_type(s, i) == SQLITE_NULL) {
		cJSON_AddNullToObject(obj, name);
		return;
	}
	format_iso8601(sqlite3_column_int64(s, i), when);
	cJSON_AddStringToObject(obj, name, when);
}

/* json_add_state - a state column by name; null when the column is NULL. */
static void json_add_state(cJSON *obj, const char *name, sqlite3_stmt *s, int i)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		cJSON_AddNullToObject(obj, name);
	else
		cJSON_AddStringToObject(obj, name,
		                        job_state_name((enum job_state)sqlite3_column_int(s, i)));
}

/* json_add_parsed - a column holding JSON text, parsed; kept as a string if it does
 * not parse (it was stored by us, so that means damage worth seeing), null if NULL. */
static void json_add_parsed(cJSON *obj, const char *name, sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);
	cJSON *v = t ? cJSON_Parse(t) : NULL;
	if (v)
		cJSON_AddItemToObject(obj, name, v);
	else
		json_add_text(obj, name, s, i);
}

/* list_entry - one job of store_list_json. */
static cJSON *list_entry(sqlite3_stmt *s)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(s, 0));
	json_add_state(o, "state", s, 1);
	json_add_text(o, "op", s, 2);
	json_add_text(o, "key", s, 3);
	json_add_text(o, "workspace", s, 4);
	json_add_int(o, "priority", s, 5);
	json_add_int(o, "attempts", s, 6);
	json_add_time(o, "created", s, 7);
	json_add_time(o, "next_run", s, 8);
	json_add_int(o, "parent", s, 9);
	json_add_text(o, "reason", s, 10);
	return o;
}

/* store_list_json - jobs newest first, in one state or all; limit <= 0: no limit. */
cJSON *store_list_json(struct store *st, const enum job_state *state, int limit)
{
	sqlite3_stmt *s = prep(st, state ? S_LIST_STATE : S_LIST);
	int rc;
	if (!s)
		return NULL;
	sqlite3_bind_int(s, 1, limit > 0 ? limit : -1);
	if (state)
		sqlite3_bind_int(s, 2, (int)*state);
	cJSON *list = cJSON_CreateArray();
	while ((rc = step(st, s, "list jobs")) == SQLITE_ROW)
		cJSON_AddItemToArray(list, list_entry(s));
	done(s);
	if (rc < 0) {
		cJSON_Delete(list);
		return NULL;
	}
	return list;
}

/* show_job_fields - the jobs row of store_show_json. */
static void show_job_fields(cJSON *o, sqlite3_stmt *s)
{
	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(s, 0));
	json_add_state(o, "state", s, 1);
	json_add_text(o, "op", s, 2);
	json_add_text(o, "key", s, 3);
	json_add_text(o, "workspace", s, 4);
	json_add_int(o, "priority", s, 5);
	/* "attempts" is the history array (store.h); this is the count against the max */
	json_add_int(o, "attempts_counted", s, 6);
	json_add_int(o, "max_attempts", s, 7);
	json_add_time(o, "created", s, 8);
	json_add_time(o, "updated", s, 9);
	json_add_time(o, "next_run", s, 10);
	json_add_time(o, "finished", s, 11);
	json_add_parsed(o, "spec", s, 12);
	json_add_text(o, "output", s, 13);
	json_add_text(o, "source_file", s, 14);
	json_add_int(o, "parent", s, 15);
	json_add_text(o, "cursor", s, 16);
	json_add_int(o, "pages_done", s, 17);
	json_add_int(o, "items_done", s, 18);
	json_add_int(o, "total_entries", s, 19);
	json_add_parsed(o, "result", s, 20);
	json_add_parsed(o, "error", s, 21);
	cJSON_AddBoolToObject(o, "cancel_requested", sqlite3_column_int(s, 22));
	cJSON_AddBoolToObject(o, "paginated", sqlite3_column_int(s, 23));
}

/* transition_entry - {from, to, at, reason}. */
static cJSON *transition_entry(sqlite3_stmt *s)
{
	cJSON *o = cJSON_CreateObject();
	json_add_state(o, "from", s, 0);
	json_add_state(o, "to", s, 1);
	json_add_time(o, "at", s, 2);
	json_add_text(o, "reason", s, 3);
	return o;
}

/* attempt_entry - one attempt, as recorded. */
static cJSON *attempt_entry(sqlite3_stmt *s)
{
	cJSON *o = cJSON_CreateObject();
	json_add_int(o, "attempt", s, 0);
	json_add_time(o, "started", s, 1);
	json_add_int(o, "duration_ms", s, 2);
	json_add_int(o, "http_status", s, 3);
	json_add_text(o, "outcome", s, 4);
	json_add_text(o, "error", s, 5);
	json_add_int(o, "retry_after_ms", s, 6);
	json_add_int(o, "rl_remaining", s, 7);
	json_add_text(o, "rl_reset", s, 8);
	json_add_text(o, "request", s, 9);
	json_add_text(o, "body", s, 10);
	return o;
}

/* page_entry - one page without its items. */
static cJSON *page_entry(sqlite3_stmt *s)
{
	cJSON *o = cJSON_CreateObject();
	json_add_int(o, "page_no", s, 0);
	json_add_int(o, "nitems", s, 1);
	json_add_text(o, "cursor", s, 2);
	json_add_text(o, "next_cursor", s, 3);
	json_add_time(o, "at", s, 4);
	return o;
}

/* child_entry - one child's progress. */
static cJSON *child_entry(sqlite3_stmt *s)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(s, 0));
	json_add_state(o, "state", s, 1);
	json_add_int(o, "pages_done", s, 2);
	json_add_int(o, "items_done", s, 3);
	json_add_int(o, "total_entries", s, 4);
	return o;
}

/* json_rows - an array of the job's rows of one statement, each made by entry. */
static cJSON *json_rows(struct store *st, enum stmt_id id, int64_t job_id,
                        cJSON *(*entry)(sqlite3_stmt *))
{
	sqlite3_stmt *s = prep(st, id);
	int rc;
	if (!s)
		return NULL;
	sqlite3_bind_int64(s, 1, job_id);
	cJSON *arr = cJSON_CreateArray();
	while ((rc = step(st, s, "read a job's history")) == SQLITE_ROW)
		cJSON_AddItemToArray(arr, entry(s));
	done(s);
	if (rc < 0) {
		cJSON_Delete(arr);
		return NULL;
	}
	return arr;
}

/* show_children - {total, succeeded, ..., jobs: [...]}, or NULL (without error) when
 * the job has no children; *err set on failure. */
static cJSON *show_children(struct store *st, int64_t id, int *err)
{
	struct child_counts c;
	*err = 0;
	if (store_children_counts(st, id, &c) < 0) {
		*err = 1;
		return NULL;
	}
	if (!c.total)
		return NULL;
	cJSON *jobs = json_rows(st, S_SHOW_CHILDREN, id, child_entry);
	if (!jobs) {
		*err = 1;
		return NULL;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "total", c.total);
	cJSON_AddNumberToObject(o, "succeeded", c.succeeded);
	cJSON_AddNumberToObject(o, "failed", c.failed);
	cJSON_AddNumberToObject(o, "dead", c.dead);
	cJSON_AddNumberToObject(o, "cancelled", c.cancelled);
	cJSON_AddNumberToObject(o, "active", c.active);
	cJSON_AddItemToObject(o, "jobs", jobs);
	return o;
}

/* show_history - transitions, attempts, pages and children added to o; 0 or -1. */
static int show_history(struct store *st, int64_t id, cJSON *o)
{
	static const struct {
		const char *name;
		enum stmt_id stmt;
		cJSON *(*entry)(sqlite3_stmt *);
	} parts[] = {
	    {"transitions", S_SHOW_TRANSITIONS, transition_entry},
	    {"attempts", S_SHOW_ATTEMPTS, attempt_entry},
	    {"pages", S_SHOW_PAGES, page_entry},
	};
	int err;
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		cJSON *arr = json_rows(st, parts[i].stmt, id, parts[i].entry);
		if (!arr)
			return -1;
		cJSON_AddItemToObject(o, parts[i].name, arr);
	}
	cJSON *children = show_children(st, id, &err);
	if (err)
		return -1;
	if (children)
		cJSON_AddItemToObject(o, "children", children);
	return 0;
}

/* show_json - the body of store_show_json, within one read snapshot. */
static cJSON *show_json(struct store *st, int64_t id)
{
	sqlite3_stmt *s = prep(st, S_SHOW_JOB);
	if (!s)
		return NULL;
	sqlite3_bind_int64(s, 1, id);
	int rc = step(st, s, "read a job");
	if (rc != SQLITE_ROW) {
		done(s);
		if (rc == SQLITE_DONE)
			set_err(st, "no job %" PRId64, id);
		return NULL;
	}
	cJSON *o = cJSON_CreateObject();
	show_job_fields(o, s);
	done(s);
	if (show_history(st, id, o) < 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* store_show_json - one job whole; NULL if there is no such job or on error. The reads
 * share one snapshot so a job the daemon is moving along shows consistently. */
cJSON *store_show_json(struct store *st, int64_t id)
{
	int own = !in_transaction(st);
	if (own && run_id(st, S_BEGIN_READ, "begin a read") < 0)
		return NULL;
	cJSON *o = show_json(st, id);
	if (own && in_transaction(st))
		quiet_run_id(st, S_ROLLBACK); /* only read: ending it either way is the same */
	return o;
}

/* stats_attempts - {outcome: n}, "in_progress" for attempts without one yet. */
static cJSON *stats_attempts(struct store *st)
{
	sqlite3_stmt *s = prep(st, S_ATTEMPT_OUTCOMES);
	int rc;
	if (!s)
		return NULL;
	cJSON *o = cJSON_CreateObject();
	while ((rc = step(st, s, "count attempts")) == SQLITE_ROW)
		cJSON_AddNumberToObject(o, (const char *)sqlite3_column_text(s, 0),
		                        (double)sqlite3_column_int64(s, 1));
	done(s);
	if (rc < 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* store_top_reasons_json - [{"reason": r, "jobs": n}], the most common first. */
cJSON *store_top_reasons_json(struct store *st, int max)
{
	sqlite3_stmt *s = prep(st, S_TOP_REASONS);
	int rc;
	if (!s)
		return NULL;
	sqlite3_bind_int(s, 1, max);
	cJSON *arr = cJSON_CreateArray();
	while ((rc = step(st, s, "count failure reasons")) == SQLITE_ROW) {
		cJSON *o = cJSON_CreateObject();
		json_add_text(o, "reason", s, 0);
		cJSON_AddNumberToObject(o, "jobs", (double)sqlite3_column_int64(s, 1));
		cJSON_AddItemToArray(arr, o);
	}
	done(s);
	if (rc < 0) {
		cJSON_Delete(arr);
		return NULL;
	}
	return arr;
}

/* store_stats_json - {"jobs": {state: n}, "attempts": {outcome: n}, "requests": n,
 * "top_reasons": [...]}. */
cJSON *store_stats_json(struct store *st)
{
	int64_t counts[JS_COUNT];
	if (store_counts(st, counts) < 0)
		return NULL;
	cJSON *attempts = stats_attempts(st);
	if (!attempts)
		return NULL;
	sqlite3_stmt *s = prep(st, S_REQUESTS);
	int64_t requests = s ? count_query(st, s, "count requests") : -1;
	if (requests < 0) {
		cJSON_Delete(attempts);
		return NULL;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON *jobs = cJSON_AddObjectToObject(o, "jobs");
	for (int i = 0; i < JS_COUNT; i++)
		cJSON_AddNumberToObject(jobs, job_state_name((enum job_state)i), (double)counts[i]);
	cJSON_AddItemToObject(o, "attempts", attempts);
	cJSON_AddNumberToObject(o, "requests", (double)requests);
	cJSON *top = store_top_reasons_json(st, STORE_TOP_REASONS);
	if (!top) {
		cJSON_Delete(o);
		return NULL;
	}
	cJSON_AddItemToObject(o, "top_reasons", top);
	return o;
}

/* --- watch/status ---------------------------------------------------------------------- */

/* store_oldest_due - the queued or waiting job due first: the first entry of each
 * priority's stretch of the due index, as store_next_due_ms walks it. */
int store_oldest_due(struct store *st, int64_t *id, int64_t *next_run_ms)
{
	int64_t bound = INT64_MAX, priority;
	int rc, found = 0;
	sqlite3_stmt *s = prep(st, S_WATCH_FIRST_DUE_AT_PRIORITY);
	if (!s)
		return -1;
	while ((rc = next_due_priority(st, bound, &priority)) > 0) {
		sqlite3_bind_int64(s, 1, priority);
		int r = step(st, s, "find the oldest due job");
		if (r < 0)
			return -1;
		if (r == SQLITE_ROW) {
			int64_t at = sqlite3_column_int64(s, 1);
			if (!found || at < *next_run_ms) {
				*id = sqlite3_column_int64(s, 0);
				*next_run_ms = at;
				found = 1;
			}
		}
		done(s);
		bound = priority;
	}
	return rc < 0 ? -1 : found;
}

/* store_children_progress - a fan-out parent's children, their pages and items summed. */
int store_children_progress(struct store *st, int64_t parent_id, int64_t *children, int64_t *pages,
                            int64_t *items)
{
	sqlite3_stmt *s = prep(st, S_WATCH_CHILDREN_PROGRESS);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, parent_id);
	int rc = step(st, s, "sum the children's pages");
	if (rc == SQLITE_ROW) {
		*children = sqlite3_column_int64(s, 0);
		*pages = sqlite3_column_int64(s, 1);
		*items = sqlite3_column_int64(s, 2);
	}
	done(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* store_owner - the owner line lock_store wrote beside the database, parsed, and when. */
int store_owner(const char *path, struct store_owner *out)
{
	memset(out, 0, sizeof(*out));
	struct strbuf owner_path = STRBUF_INIT;
	sb_addf(&owner_path, "%s.lock", path);
	char line[STORE_OWNER_MAX];
	struct stat sb;
	read_owner(owner_path.buf, line, sizeof(line));
	int rc = stat(owner_path.buf, &sb);
	sb_release(&owner_path);
	struct lock_owner who;
	if (rc < 0 || lock_owner_parse(line, strlen(line), &who) < 0)
		return 1;
	out->pid = who.pid;
	snprintf(out->role, sizeof(out->role), "%s", who.role);
	const char *spool = strstr(line, " spool=");
	snprintf(out->spool, sizeof(out->spool), "%s", spool ? spool + 7 : "");
	out->since_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
	return 0;
}
