/* sqlite_sql.c - the text of every statement of the SQLite store, by id: each is
 * prepared once, on first use, and kept until the store closes (sq_prep). */
#include "sqlite_int.h"

/* the columns of struct job_row, in the order read_job_row expects */
#define JOB_COLS                                                                                   \
	"id, parent_id, state, op_id, spec_json, key, workspace, output_path, priority, "          \
	"attempts, created_ms, next_run_ms, cursor, pages_done, items_done, "                      \
	"total_entries, cancel_requested, result_json IS NOT NULL, "                               \
	"(SELECT count(*) FROM attempts a WHERE a.job_id = jobs.id)"

/* the due jobs through the jobs_due partial index: its WHERE spelled exactly as in
 * sql/sqlite/001_init.sql, and the index named, because without statistics the planner
 * may prefer another index plus a sort of the whole queue */
#define DUE_JOBS "jobs INDEXED BY jobs_due WHERE state IN (0, 2)"
/* below the next_run_ms of jobs parked for their dependencies (STORE_DEPS_PARKED_MS,
 * sql/sqlite/011_deps.sql): a walk of the due index for other waits stops before them
 * without reading their rows (100,000 parked jobs cost a start's wake of token waiters
 * 0.1 s otherwise) */
#define NOT_PARKED "next_run_ms < " STORE_DEPS_PARKED_TEXT
/* the running jobs, through the jobs_running partial index (sql/sqlite/003_running_index.sql) */
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

/* a succeeded job whose success has no transitions row: its success (running ->
 * succeeded at finished_ms, without a reason) is read from its jobs row, as its creation
 * is, and written as a row only when the job leaves succeeded (S_SUCCESS_ROW). Databases
 * written before that have the row: its last one is then the success. */
#define SUCCESS_UNWRITTEN                                                                          \
	"state = 3 AND coalesce((SELECT to_state FROM transitions t WHERE t.job_id = jobs.id "     \
	"ORDER BY t.id DESC LIMIT 1), -1) <> 3"

/* list's reason: none for a succeeded job (its success may write no transitions row, so
 * the last one can be an earlier wait's) */
#define LIST_REASON "CASE WHEN state = 3 THEN NULL ELSE " LAST_REASON " END"

/* the WHERE of a state change: the job, and when ?9 is given, only from that state */
#define FROM_STATE "WHERE id = ?1 AND (?9 IS NULL OR state = ?9)"

const char *const sq_stmt_sql[S_NSTMTS] = {
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
    /* unfinished jobs' outputs (sql/sqlite/005_file_identity.sql): the path itself or one
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
    /* a job leaving succeeded: its success's row, if it has none yet (SUCCESS_UNWRITTEN) */
    [S_SUCCESS_ROW] =
        "INSERT INTO transitions (job_id, from_state, to_state, at_ms, reason) "
        "SELECT id, 1, 3, finished_ms, NULL FROM jobs WHERE id = ?1 AND " SUCCESS_UNWRITTEN,
    [S_JOB_STATE] = "SELECT state FROM jobs WHERE id = ?1",
    [S_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    /* claiming walks the due index one priority at a time: a seek to the next lower
     * priority, then the due jobs at it in order. Jobs not yet due (a rate-limit hold
     * parks thousands) are skipped by the seek rather than read one by one. The job's
     * file comes along for its end (sq_file_of_note). */
    [S_DUE_NEXT_PRIORITY] =
        "SELECT priority FROM " DUE_JOBS " AND priority < ?1 ORDER BY priority DESC LIMIT 1",
    [S_DUE_AT_PRIORITY] =
        "SELECT " JOB_COLS ", file_id FROM " DUE_JOBS " AND priority = ?1 AND next_run_ms <= ?2 "
        "ORDER BY next_run_ms, id LIMIT ?3",
    [S_FIRST_RUN_AT_PRIORITY] =
        "SELECT next_run_ms FROM " DUE_JOBS " AND priority = ?1 ORDER BY next_run_ms, id LIMIT 1",
    /* the claimed jobs at once, as a JSON array of id * 8 + state (the state they leave):
     * one statement for all rather than one each saves 3,500 instructions a job */
    [S_JOB_CLAIM] = "UPDATE jobs SET state = 1, updated_ms = ?2 "
                    "WHERE id IN (SELECT value >> 3 FROM json_each(?1))",
    [S_CLAIM_TRANSITIONS] = "INSERT INTO transitions (job_id, from_state, to_state, at_ms, "
                            "reason) SELECT value >> 3, value & 7, 1, ?2, 'claimed' "
                            "FROM json_each(?1)",
    /* queued and waiting through jobs_due, running through jobs_running */
    [S_COUNT_ACTIVE] =
        "SELECT (SELECT count(*) FROM " DUE_JOBS ") + (SELECT count(*) FROM " RUNNING_JOBS ")",
    /* for JW_DEPS (5) the jobs still parked, not those their last dependency made due */
    [S_COUNT_WAITING_FOR] = "SELECT count(*) FROM " DUE_JOBS " AND state = 2 AND (CASE "
                            "WHEN ?1 = 5 THEN NOT (" NOT_PARKED ") ELSE " NOT_PARKED " END) "
                            "AND waiting_for = ?1",
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
    /* no output file: output_path is left alone, so the outputs index (sql/sqlite/005) is not
     * looked at by an update that sets it to what it was */
    [S_JOB_SUCCEED_IN_STORE] = "UPDATE jobs SET state = ?3, updated_ms = ?2, finished_ms = ?2, "
                               "result_json = ?4, attempts = attempts + ?5 " FROM_STATE,
    [S_JOB_WAIT] = "UPDATE jobs SET state = ?3, updated_ms = ?2, next_run_ms = ?4, "
                   "attempts = attempts + ?5, waiting_for = ?6 " FROM_STATE,
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
    [S_JOB_GET_ERROR] = "SELECT error_json FROM jobs WHERE id = ?1",
    [S_PAGE_INSERT] = "INSERT INTO pages (job_id, page_no, cursor, next_cursor, items_json, "
                      "nitems, total_entries, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    /* a page that arrived resets the attempts: the policy applies to each page */
    [S_PAGE_ADVANCE] = "UPDATE jobs SET cursor = ?2, pages_done = ?3, attempts = 0, "
                       "items_done = items_done + ?4, "
                       "total_entries = coalesce(?5, total_entries), updated_ms = ?6 "
                       "WHERE id = ?1",
    [S_PAGES_OF] = "SELECT page_no, items_json FROM pages WHERE job_id = ?1 ORDER BY page_no",
    /* one seek in the index of sql/sqlite/004_page_cursor.sql, however many pages the job has */
    [S_PAGE_CURSOR_SEEN] = "SELECT min(page_no) FROM pages INDEXED BY pages_cursor "
                           "WHERE job_id = ?1 AND cursor = ?2",
    /* an attempt without an outcome belongs to a running job (sql/sqlite/002_lean_attempts.sql) */
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
    /* failed and dead jobs: a scan, as for the counts by state (sql/sqlite/006_attempt_body.sql) */
    [S_TOP_REASONS] = "SELECT reason, count(*) FROM (SELECT " LAST_REASON " AS reason "
                      "FROM jobs WHERE state IN (4, 5)) "
                      "GROUP BY reason ORDER BY 2 DESC, 1 LIMIT ?1",
    [S_SHOW_JOB] = "SELECT id, state, op_id, key, workspace, priority, attempts, "
                   "max_attempts, created_ms, updated_ms, next_run_ms, finished_ms, spec_json, "
                   "output_path, source_file, parent_id, cursor, pages_done, items_done, "
                   "total_entries, result_json, error_json, cancel_requested, paginated "
                   "FROM jobs WHERE id = ?1",
    /* the creation first: from the jobs row (CREATION_REASON), or from the transitions row
     * that databases written before that kept for it; a success last, from the jobs row
     * while it has no row of its own (SUCCESS_UNWRITTEN) */
    [S_SHOW_TRANSITIONS] =
        "SELECT NULL, 0, created_ms, " CREATION_REASON ", 0, 0 FROM jobs WHERE id = ?1 AND "
        "NOT EXISTS (SELECT 1 FROM transitions WHERE job_id = ?1 AND from_state IS NULL) "
        "UNION ALL SELECT from_state, to_state, at_ms, reason, from_state IS NOT NULL, id "
        "FROM transitions WHERE job_id = ?1 "
        "UNION ALL SELECT 1, 3, finished_ms, NULL, 2, 0 FROM jobs WHERE id = ?1 "
        "AND " SUCCESS_UNWRITTEN " ORDER BY 5, 6",
    [S_SHOW_ATTEMPTS] = "SELECT attempt_no, started_ms, duration_ms, http_status, outcome, "
                        "error, retry_after_ms, rl_remaining, rl_reset, request, body, "
                        "resolved FROM attempts WHERE job_id = ?1 ORDER BY id",
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
    [S_WAKE_WAITERS] = "UPDATE jobs INDEXED BY jobs_due SET next_run_ms = ?1 "
                       "WHERE state IN (0, 2) AND state = 2 AND next_run_ms > ?1 "
                       "AND " NOT_PARKED " AND waiting_for = ?2",
    [S_REQUESTS] = "SELECT count(*) FROM attempts "
                   "WHERE http_status IS NOT NULL OR error IS NOT NULL",
    /* watch/status */
    [S_WATCH_FIRST_DUE_AT_PRIORITY] = "SELECT id, next_run_ms FROM " DUE_JOBS
                                      " AND priority = ?1 ORDER BY next_run_ms, id LIMIT 1",
    [S_WATCH_CHILDREN_PROGRESS] = "SELECT count(*), coalesce(sum(pages_done), 0), "
                                  "coalesce(sum(items_done), 0) FROM jobs WHERE parent_id = ?1",
    /* plan: a scan of the jobs, once per operation a batch uses */
    [S_LAST_TOTAL] = "SELECT total_entries FROM jobs WHERE op_id = ?1 AND "
                     "total_entries IS NOT NULL ORDER BY id DESC LIMIT 1",
    /* metrics: ended attempts grouped as the formatter counts them (a scan, for the CLI) */
    [S_METRICS_ATTEMPTS] = "SELECT outcome, coalesce(http_status, 0), coalesce(duration_ms, 0), "
                           "count(*) FROM attempts WHERE outcome IS NOT NULL GROUP BY 1, 2, 3",
    /* results files (issue 13, sql/sqlite/010_results.sql) */
    [S_FILE_BEGIN] = "INSERT INTO files (name, hash, dev, ino, ctime_ns, size, ingested_ms, "
                     "njobs, nduplicates, remaining) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, "
                     "CASE WHEN ?9 THEN ?8 END)",
    [S_FILE_DUP] = "INSERT INTO file_dups (file_id, line, job_id) VALUES (?1, ?2, ?3)",
    [S_FILE_DUP_COUNT] = "UPDATE files SET nduplicates = nduplicates + 1, "
                         "remaining = remaining - 1 WHERE id = ?1",
    [S_FILE_JOBS] = "UPDATE files SET first_job = ?2, last_job = ?3, njobs = ?4, "
                    "remaining = CASE WHEN remaining IS NOT NULL THEN ?4 - nduplicates END "
                    "WHERE id = ?1",
    [S_JOB_INSERT_FILE] =
        "INSERT INTO jobs (parent_id, state, op_id, spec_json, key, workspace, "
        "output_path, source_file, priority, not_before_ms, next_run_ms, "
        "max_attempts, created_ms, updated_ms, paginated, mutates, file_id, line) "
        "VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14, ?15, ?16)",
#define FILE_COLS "id, name, njobs, nduplicates, remaining, results, results_done"
    [S_FILES_RESULTS_DUE] = "SELECT " FILE_COLS ", NULL FROM files INDEXED BY files_results_due "
                            "WHERE remaining = 0 AND results IS NULL ORDER BY id",
    [S_FILES_RESULTS_PENDING] =
        "SELECT " FILE_COLS ", NULL FROM files INDEXED BY files_results_pending "
        "WHERE results IS NOT NULL AND results_done = 0 ORDER BY id",
    [S_RESULTS_NAME_TAKEN] = "SELECT 1 FROM files INDEXED BY files_results "
                             "WHERE results IS NOT NULL AND results = ?1 LIMIT 1",
    [S_FILE_RESULTS_SET] = "UPDATE files SET results = ?2 WHERE id = ?1 AND results IS NULL",
    [S_FILE_RESULTS_DONE] = "UPDATE files SET results_done = 1 WHERE id = ?1",
    /* the file's jobs: a range of rowids, in the file's order; then its duplicate lines */
    [S_FILE_RESULT_JOBS] = "SELECT j.line, j.id, j.key, j.op_id, j.state, j.result_json, "
                           "j.error_json FROM files f JOIN jobs j ON j.id BETWEEN f.first_job "
                           "AND f.last_job AND j.file_id = f.id WHERE f.id = ?1 ORDER BY j.id",
    [S_FILE_RESULT_DUPS] = "SELECT d.line, j.id, j.key, j.op_id, j.state, j.result_json, "
                           "j.error_json FROM file_dups d JOIN jobs j ON j.id = d.job_id "
                           "WHERE d.file_id = ?1 ORDER BY d.line",
    /* a scan of the files, one row per ingest: what a CLI command may afford */
    [S_FILES_NAMED] = "SELECT " FILE_COLS ", NULL FROM files WHERE name = ?1 OR "
                      "(name GLOB '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]"
                      "[0-9][0-9]-[0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9]"
                      "[0-9][0-9]-*' AND substr(name, 30) = ?1) ORDER BY id",
    [S_FILE_OF_JOB] = "SELECT f.id, f.name, f.njobs, f.nduplicates, f.remaining, f.results, "
                      "f.results_done, j.line FROM jobs j JOIN files f ON f.id = j.file_id "
                      "WHERE j.id = ?1",
    [S_LIST_FILE] = "SELECT j.id, j.state, j.op_id, j.key, j.workspace, j.priority, "
                    "j.attempts, j.created_ms, j.next_run_ms, j.parent_id, "
                    "CASE WHEN j.state = 3 THEN NULL ELSE coalesce((SELECT reason FROM "
                    "transitions t WHERE t.job_id = j.id ORDER BY t.id DESC LIMIT 1), "
                    "'ingested from ' || j.source_file) END FROM files f JOIN jobs j "
                    "ON j.id BETWEEN f.first_job AND f.last_job AND j.file_id = f.id "
                    "WHERE f.id = ?1 ORDER BY j.id LIMIT ?2",
#undef FILE_COLS
    /* dependencies between jobs (issue #13, sql/sqlite/011_deps.sql): a parked job is
     * waiting (2) for JW_DEPS (5), next_run_ms STORE_DEPS_PARKED_MS (?4) */
    [S_DEPS_INSERT] = "INSERT OR IGNORE INTO deps (dep_id, job_id) VALUES (?1, ?2)",
    [S_DEP_INFO] = "SELECT state, key FROM jobs WHERE id = ?1",
    [S_DEPS_PARK] = "UPDATE jobs SET state = ?3, updated_ms = ?2, waiting_for = 5, "
                    "next_run_ms = ?4, deps_left = ?5, dep_failed = 0, finished_ms = NULL, "
                    "error_json = NULL " FROM_STATE,
    [S_DEPS_FAIL] = "UPDATE jobs SET state = ?3, updated_ms = ?2, finished_ms = ?2, "
                    "error_json = ?4, dep_failed = 1 " FROM_STATE,
    /* the last dependency's success makes a parked job due (not before its not_before) */
    [S_DEPS_RELEASE] = "UPDATE jobs SET deps_left = deps_left - 1, next_run_ms = CASE "
                       "WHEN deps_left = 1 AND state = 2 AND waiting_for = 5 "
                       "THEN max(?2, not_before_ms) ELSE next_run_ms END "
                       "WHERE id IN (SELECT job_id FROM deps WHERE dep_id = ?1) "
                       "AND deps_left > 0",
    [S_DEPS_UNRELEASE] = "UPDATE jobs SET deps_left = deps_left + 1, next_run_ms = ?2 "
                         "WHERE id IN (SELECT job_id FROM deps WHERE dep_id = ?1) "
                         "AND state = 2 AND waiting_for = 5",
    [S_DEPS_WAITING_ON] = "SELECT j.id, j.key FROM deps d JOIN jobs j ON j.id = d.job_id "
                          "WHERE d.dep_id = ?1 AND j.state = 2 AND j.waiting_for = 5 "
                          "ORDER BY j.id",
    [S_DEPS_FAILED_ON] = "SELECT j.id, j.key FROM deps d JOIN jobs j ON j.id = d.job_id "
                         "WHERE d.dep_id = ?1 AND j.state = 4 AND j.dep_failed = 1 "
                         "ORDER BY j.id",
    [S_DEPS_FAILED_DEP] = "SELECT j.key FROM deps d INDEXED BY deps_job "
                          "JOIN jobs j ON j.id = d.dep_id "
                          "WHERE d.job_id = ?1 AND j.state IN (4, 5, 6) ORDER BY j.id LIMIT 1",
    [S_DEPS_LEFT] = "SELECT count(*) FROM deps d INDEXED BY deps_job "
                    "JOIN jobs j ON j.id = d.dep_id WHERE d.job_id = ?1 AND j.state <> 3",
    [S_KEY_RESULT] = "SELECT id, state, result_json FROM jobs WHERE key = ?1",
    [S_ATTEMPT_RESOLVED] = "UPDATE attempts SET resolved = ?2 WHERE id = ?1",
    [S_KEY_OP] = "SELECT op_id FROM jobs WHERE key = ?1",
    [S_DEPS_ANY] = "SELECT EXISTS (SELECT 1 FROM deps)",
    /* the jobs of a file that ended or came back in a transaction, at once: the rule of
     * 010_results.sql's trigger (sql/sqlite/012_remaining_counted.sql) */
    [S_FILE_REMAINING_ADD] = "UPDATE files SET remaining = remaining + ?2 "
                             "WHERE id = ?1 AND remaining IS NOT NULL AND results IS NULL",
    /* the file of a job that ended or came back, when its claim did not note it
     * (sq_file_of): a seek by rowid, 3,700 instructions where the update's RETURNING
     * file_id costs 25,000 (SQLite 3.40 buffers its rows) */
    [S_JOB_FILE] = "SELECT file_id FROM jobs WHERE id = ?1",
};
