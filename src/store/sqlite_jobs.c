/* sqlite_jobs.c - a job's way through the queue: read, claimed, its attempts recorded,
 * and every state change with its transitions row. */
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

/* --- reading jobs -------------------------------------------------------------------- */

/* the columns of JOB_COLS (sqlite_sql.c); S_DUE_AT_PRIORITY's next is the job's file */
#define JOB_NCOLS 19

/* read_job_row - a row of JOB_COLS into a job_row (strings malloc'd). */
static void read_job_row(sqlite3_stmt *s, struct job_row *row)
{
	row->id = sqlite3_column_int64(s, 0);
	row->parent_id = sq_column_int64_or(s, 1, 0);
	row->state = (enum job_state)sqlite3_column_int(s, 2);
	row->op_id = sq_column_dup(s, 3);
	row->spec_json = sq_column_dup(s, 4);
	row->key = sq_column_dup(s, 5);
	row->workspace = sq_column_dup(s, 6);
	row->output_path = sq_column_dup(s, 7);
	row->priority = sqlite3_column_int(s, 8);
	row->attempts = sqlite3_column_int(s, 9);
	row->created_ms = sqlite3_column_int64(s, 10);
	row->next_run_ms = sqlite3_column_int64(s, 11);
	row->cursor = sq_column_dup(s, 12);
	row->pages_done = sqlite3_column_int(s, 13);
	row->items_done = sqlite3_column_int64(s, 14);
	row->total_entries = sq_column_int64_or(s, 15, -1);
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
	sqlite3_stmt *s = sq_prep(st, S_JOB_GET);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	int rc = sq_step(st, s, "read a job");
	if (rc == SQLITE_ROW)
		read_job_row(s, out);
	sq_done(s);
	if (rc == SQLITE_DONE)
		sq_set_err(st, "no job %" PRId64, id);
	return rc < 0 ? -1 : rc == SQLITE_ROW ? 0 : 1;
}

/* job_state_get - a job's state: 0, 1 when there is no such job, -1. */
int sq_job_state_get(struct store *st, int64_t id, enum job_state *state)
{
	sqlite3_stmt *s = sq_prep(st, S_JOB_STATE);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	int rc = sq_step(st, s, "read a job's state");
	if (rc == SQLITE_ROW)
		*state = (enum job_state)sqlite3_column_int(s, 0);
	sq_done(s);
	return rc < 0 ? -1 : rc == SQLITE_ROW ? 0 : 1;
}

/* --- scheduling ------------------------------------------------------------------------ */

/* next_due_priority - the highest priority below bound that has a queued or waiting
 * job: 1 with *priority set, 0 when there is none, -1. */
static int next_due_priority(struct store *st, int64_t bound, int64_t *priority)
{
	sqlite3_stmt *s = sq_prep(st, S_DUE_NEXT_PRIORITY);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, bound);
	int rc = sq_step(st, s, "find due jobs");
	if (rc == SQLITE_ROW)
		*priority = sqlite3_column_int64(s, 0);
	sq_done(s);
	return rc < 0 ? -1 : rc == SQLITE_ROW;
}

/* due_at_priority - up to max due jobs of one priority into rows, in claim order;
 * returns how many, or -1. */
static int due_at_priority(struct store *st, int64_t priority, int64_t now_ms, struct job_row *rows,
                           int max)
{
	sqlite3_stmt *s = sq_prep(st, S_DUE_AT_PRIORITY);
	int n = 0, rc;
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, priority);
	sqlite3_bind_int64(s, 2, now_ms);
	sqlite3_bind_int(s, 3, max);
	while ((rc = sq_step(st, s, "read due jobs")) == SQLITE_ROW) {
		read_job_row(s, &rows[n]);
		sq_file_of_note(st, rows[n++].id, sq_column_int64_or(s, JOB_NCOLS, 0));
	}
	sq_done(s);
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

/* claim_rows - moves the selected jobs to running, with their transitions, in the
 * order selected: two statements for all of them. The update comes after the select
 * has finished: the rows leave the index it walked. */
static int claim_rows(struct store *st, int64_t now_ms, struct job_row *rows, int n)
{
	struct strbuf ids = STRBUF_INIT;
	sqlite3_stmt *tr = sq_prep(st, S_CLAIM_TRANSITIONS);
	sqlite3_stmt *upd = tr ? sq_prep(st, S_JOB_CLAIM) : NULL;
	int rc = -1;
	sb_addch(&ids, '[');
	for (int i = 0; i < n; i++) { /* a state is below 8 (enum job_state) */
		if (i)
			sb_addch(&ids, ',');
		sb_add_int(&ids, rows[i].id * 8 + (int64_t)rows[i].state);
	}
	sb_addch(&ids, ']');
	if (upd) {
		sqlite3_bind_text(tr, 1, ids.buf, (int)ids.len, SQLITE_STATIC);
		sqlite3_bind_int64(tr, 2, now_ms);
		rc = sq_run(st, tr, "record the claims of jobs");
	}
	if (rc == 0) {
		sqlite3_bind_text(upd, 1, ids.buf, (int)ids.len, SQLITE_STATIC);
		sqlite3_bind_int64(upd, 2, now_ms);
		rc = sq_run(st, upd, "claim jobs");
	}
	sb_release(&ids);
	for (int i = 0; rc == 0 && i < n; i++)
		rows[i].state = JS_RUNNING;
	return rc;
}

/* store_claim_due - up to max due jobs, moved to running; see store.h. */
int store_claim_due(struct store *st, int64_t now_ms, struct job_row *rows, int max)
{
	enum op_wrap how;
	int n;
	if (max <= 0)
		return 0;
	if (sq_op_begin_atomic(st, &how) < 0)
		return -1;
	n = select_due(st, now_ms, rows, max);
	if (n > 0 && claim_rows(st, now_ms, rows, n) < 0) {
		while (n > 0)
			job_row_release(&rows[--n]);
		n = -1;
	}
	int rc = sq_op_end(st, how, n);
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
	sqlite3_stmt *s = sq_prep(st, S_FIRST_RUN_AT_PRIORITY);
	if (!s)
		return -1;
	while ((rc = next_due_priority(st, bound, &priority)) > 0) {
		sqlite3_bind_int64(s, 1, priority);
		int r = sq_step(st, s, "find the next due job");
		if (r < 0)
			return -1;
		if (r == SQLITE_ROW) {
			int64_t at = sqlite3_column_int64(s, 0);
			if (!best || at < best)
				best = at;
		}
		sq_done(s);
		bound = priority;
	}
	return rc < 0 ? -1 : best;
}

/* count_query - the single integer a counting statement returns (bound by the caller). */
int64_t sq_count_query(struct store *st, sqlite3_stmt *s, const char *what)
{
	int64_t n = -1;
	if (sq_step(st, s, what) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sq_done(s);
	return n;
}

/* store_count_active - jobs queued, running or waiting. */
int64_t store_count_active(struct store *st)
{
	sqlite3_stmt *s = sq_prep(st, S_COUNT_ACTIVE);
	return s ? sq_count_query(st, s, "count active jobs") : -1;
}

/* store_count_waiting_for - waiting jobs that wait for `why`. */
int64_t store_count_waiting_for(struct store *st, enum job_wait why)
{
	sqlite3_stmt *s = sq_prep(st, S_COUNT_WAITING_FOR);
	if (!s)
		return -1;
	sqlite3_bind_int(s, 1, (int)why);
	return sq_count_query(st, s, "count waiting jobs");
}

/* --- attempts ---------------------------------------------------------------------------- */

/* store_count_lost_answers - the job's attempts recorded "unknown", or -1. */
int64_t store_count_lost_answers(struct store *st, int64_t job_id)
{
	sqlite3_stmt *s = sq_prep(st, S_COUNT_LOST_ANSWERS);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, job_id);
	return sq_count_query(st, s, "count a job's lost answers");
}

/* store_attempt_begin - a started attempt; see store.h. */
int store_attempt_begin(struct store *st, int64_t job_id, int attempt_no, int64_t now_ms,
                        const char *request, int64_t *attempt_id)
{
	enum op_wrap how;
	int rc = -1;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_ATTEMPT_BEGIN);
	if (s) {
		sqlite3_bind_int64(s, 1, job_id);
		sqlite3_bind_int64(s, 2, now_ms);
		sq_bind_text(s, 3, request);
		sqlite3_bind_int(s, 4, attempt_no);
		rc = sq_run(st, s, "record an attempt");
		if (rc == 0)
			*attempt_id = sqlite3_last_insert_rowid(st->db);
	}
	return sq_op_end(st, how, rc);
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
		sq_set_err(st, "cannot end attempt %" PRId64 ": no outcome given", attempt_id);
		return -1;
	}
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_ATTEMPT_END);
	if (s) {
		sqlite3_bind_int64(s, 1, attempt_id);
		sqlite3_bind_int64(s, 2, end->duration_ms);
		sq_bind_int64_or_null(s, 3, end->http_status, 0);
		sq_bind_text(s, 4, end->outcome);
		sq_bind_text(s, 5, end->error);
		sq_bind_int64_or_null(s, 6, end->retry_after_ms < 0 ? -1 : end->retry_after_ms, -1);
		sq_bind_int64_or_null(s, 7, end->rl_remaining < 0 ? -1 : end->rl_remaining, -1);
		sq_bind_text(s, 8, end->rl_reset);
		sq_bind_text(s, 9, end->request);
		struct strbuf body = STRBUF_INIT;
		if (end->body && end->body_len) {
			keep_body(&body, end->body, end->body_len);
			sqlite3_bind_text(s, 10, body.buf, (int)body.len, SQLITE_STATIC);
		} else {
			sqlite3_bind_null(s, 10);
		}
		rc = sq_run(st, s, "record an attempt's outcome");
		sb_release(&body);
		if (rc == 0 && sqlite3_changes(st->db) == 0) {
			sq_set_err(st, "cannot end attempt %" PRId64 ": no such attempt",
			           attempt_id);
			rc = -1;
		}
	}
	return sq_op_end(st, how, rc);
}

/* store_last_attempt - the job's last attempt: its status, error and kept body. */
int store_last_attempt(struct store *st, int64_t job_id, int *status, char **error, char **body)
{
	*status = 0;
	*error = *body = NULL;
	sqlite3_stmt *s = sq_prep(st, S_LAST_ATTEMPT);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, job_id);
	int rc = sq_step(st, s, "read a job's last attempt");
	if (rc == SQLITE_ROW) {
		*status = sqlite3_column_int(s, 0);
		*error = sq_column_dup(s, 1);
		*body = sq_column_dup(s, 2);
	}
	sq_done(s);
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

/* count_crossing - a change between not ended and ended counted for the job's file. */
static int count_crossing(struct store *st, int64_t id, int from, enum job_state to)
{
	int64_t file_id;
	if ((from >= JS_SUCCEEDED) == (to >= JS_SUCCEEDED))
		return 0;
	if (sq_file_of(st, id, &file_id) < 0)
		return -1;
	if (file_id > 0)
		sq_files_count(st, file_id, to >= JS_SUCCEEDED ? -1 : 1);
	return 0;
}

/* record_change - the transitions row of a state change; none for a success, which the
 * jobs row holds until the job leaves succeeded (SUCCESS_UNWRITTEN in sqlite_sql.c): a row
 * less for every job. */
static int record_change(struct store *st, int64_t id, int from, enum job_state to, int64_t now_ms,
                         const char *reason)
{
	if (to == JS_SUCCEEDED && !reason)
		return 0;
	return sq_record_transition(st, id, from, to, now_ms, reason);
}

/* change_state - a job in one of the allowed states moves to `to` by the update upd
 * (?1 id, ?2 now, ?3 state, ?9 from; the caller has bound the rest), with its transition
 * row (record_change), and its file's count of jobs not ended kept (sq_files_count). When
 * one state is allowed the update checks it itself and the job is read only to explain a
 * refusal: that is the scheduler's every success and wait.
 * Returns 0, 1 when the job is in a state that does not allow it (nothing done, the
 * reason in store_errmsg), -1 on error or when there is no such job. */
int sq_change_state(struct store *st, int64_t id, unsigned allowed, enum job_state to,
                    sqlite3_stmt *upd, const char *verb, const char *reason, int64_t now_ms)
{
	enum job_state from = JS_QUEUED;
	int only = only_state(allowed);
	sqlite3_bind_int64(upd, 1, id);
	sqlite3_bind_int64(upd, 2, now_ms);
	sqlite3_bind_int(upd, 3, (int)to);
	if (only >= 0) {
		sqlite3_bind_int(upd, 9, only);
		if (sq_run(st, upd, "change a job's state") < 0)
			return -1;
		if (sqlite3_changes(st->db) == 1)
			return count_crossing(st, id, only, to) < 0
			           ? -1
			           : record_change(st, id, only, to, now_ms, reason);
		/* not changed: say why below; the statement is reset and unbound */
	}
	int rc = sq_job_state_get(st, id, &from);
	if (rc != 0) {
		sq_done(upd);
		if (rc > 0)
			sq_set_err(st, "cannot %s job %" PRId64 ": no such job", verb, id);
		return -1;
	}
	if (!(allowed & BIT(from))) {
		sq_done(upd);
		sq_set_err(st, "cannot %s job %" PRId64 ": it is %s, not ", verb, id,
		           job_state_name(from));
		describe_states(&st->err, allowed);
		return 1;
	}
	if (only >= 0) { /* it is in the state the update looked for, yet nothing changed */
		sq_set_err(st, "cannot %s job %" PRId64 ": the update changed nothing", verb, id);
		return -1;
	}
	sqlite3_bind_null(upd, 9);
	if (sq_run(st, upd, "change a job's state") < 0 ||
	    count_crossing(st, id, (int)from, to) < 0)
		return -1;
	return record_change(st, id, (int)from, to, now_ms, reason);
}

/* strict - a state change the scheduler asked for: being in the wrong state is an
 * error (-1) for it, not a "no" as for the CLI's retry and cancel. */
int sq_strict(int rc)
{
	return rc > 0 ? -1 : rc;
}

/* store_job_succeed - running -> succeeded; see store.h. */
int store_job_succeed(struct store *st, int64_t id, const struct job_success *ok, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, ok->output_path ? S_JOB_SUCCEED : S_JOB_SUCCEED_IN_STORE);
	if (s) {
		sq_bind_text(s, 4, ok->result_json);
		sqlite3_bind_int(s, 5, ok->count_attempt ? 1 : 0);
		if (ok->output_path)
			sq_bind_text(s, 6, ok->output_path);
		rc = sq_strict(sq_change_state(st, id, BIT(JS_RUNNING), JS_SUCCEEDED, s,
		                               "mark succeeded", NULL, now_ms));
	}
	if (rc == 0)
		rc = sq_deps_succeeded(st, id, now_ms);
	return sq_op_end(st, how, rc);
}

/* store_job_wait - running -> waiting until next_run_ms. */
int store_job_wait(struct store *st, int64_t id, int64_t next_run_ms, int count_attempt,
                   enum job_wait why, const char *reason, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_JOB_WAIT);
	if (s) {
		sqlite3_bind_int64(s, 4, next_run_ms);
		sqlite3_bind_int(s, 5, count_attempt ? 1 : 0);
		sqlite3_bind_int(s, 6, (int)why);
		rc = sq_strict(sq_change_state(st, id, BIT(JS_RUNNING), JS_WAITING, s,
		                               "put to wait", reason, now_ms));
	}
	return sq_op_end(st, how, rc);
}

/* store_job_end - running|waiting|queued -> failed, dead or cancelled. */
int store_job_end(struct store *st, int64_t id, enum job_state to, const char *error_json,
                  const char *reason, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (to != JS_FAILED && to != JS_DEAD && to != JS_CANCELLED) {
		sq_set_err(st, "cannot end job %" PRId64 " as %s: only failed, dead or cancelled",
		           id, job_state_name(to));
		return -1;
	}
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_JOB_END);
	if (s) {
		sq_bind_text(s, 4, error_json);
		rc = sq_strict(sq_change_state(st, id,
		                               BIT(JS_RUNNING) | BIT(JS_WAITING) | BIT(JS_QUEUED),
		                               to, s, "end", reason, now_ms));
	}
	if (rc == 0)
		rc = sq_deps_ended(st, id, now_ms);
	return sq_op_end(st, how, rc);
}

/* store_job_output_lost - succeeded -> failed in the same transaction, result kept. */
int store_job_output_lost(struct store *st, int64_t id, const char *error_json, const char *reason,
                          int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	/* the success's transitions row first, in its place before the failure's */
	sqlite3_stmt *s = sq_prep(st, S_SUCCESS_ROW);
	if (s) {
		sqlite3_bind_int64(s, 1, id);
		s = sq_run(st, s, "record a job's success") < 0 ? NULL : sq_prep(st, S_JOB_END);
	}
	if (s) {
		sq_bind_text(s, 4, error_json);
		rc = sq_strict(sq_change_state(st, id, BIT(JS_SUCCEEDED), JS_FAILED, s, "fail",
		                               reason, now_ms));
	}
	if (rc == 0)
		rc = sq_deps_unsucceeded(st, id, now_ms);
	return sq_op_end(st, how, rc);
}

/* store_wake_waiters - waiting jobs that wait for `why` are due now; how many, or -1. */
int64_t store_wake_waiters(struct store *st, enum job_wait why, int64_t now_ms)
{
	enum op_wrap how;
	int64_t n = -1;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_WAKE_WAITERS);
	if (s) {
		sqlite3_bind_int64(s, 1, now_ms);
		sqlite3_bind_int(s, 2, (int)why);
		if (sq_run(st, s, "wake waiting jobs") == 0)
			n = sqlite3_changes(st->db);
	}
	return sq_op_end(st, how, n < 0 ? -1 : 0) < 0 ? -1 : n;
}

/* store_job_requeue - running -> queued, keeping its place (next_run_ms) in the queue. */
int store_job_requeue(struct store *st, int64_t id, const char *reason, int64_t now_ms)
{
	enum op_wrap how;
	int rc = -1;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_JOB_REQUEUE);
	if (s)
		rc = sq_strict(sq_change_state(st, id, BIT(JS_RUNNING), JS_QUEUED, s, "requeue",
		                               reason, now_ms));
	return sq_op_end(st, how, rc);
}

/* store_job_count_attempt - the attempt that ended the job counts against max_attempts. */
int store_job_count_attempt(struct store *st, int64_t id)
{
	enum op_wrap how;
	int rc = -1;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_JOB_COUNT_ATTEMPT);
	if (s) {
		sqlite3_bind_int64(s, 1, id);
		rc = sq_run(st, s, "count an attempt");
	}
	return sq_op_end(st, how, rc);
}

/* store_job_set_result - keeps a response's data without changing the job's state. */
int store_job_set_result(struct store *st, int64_t id, const char *result_json)
{
	enum op_wrap how;
	int rc = -1;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_JOB_SET_RESULT);
	if (s) {
		sqlite3_bind_int64(s, 1, id);
		sq_bind_text(s, 2, result_json);
		rc = sq_run(st, s, "record a job's result");
	}
	return sq_op_end(st, how, rc);
}

/* store_job_result - the stored result (malloc'd, NULL if none). 0, or -1. */
int store_job_result(struct store *st, int64_t id, char **result_json)
{
	*result_json = NULL;
	sqlite3_stmt *s = sq_prep(st, S_JOB_GET_RESULT);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		*result_json = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_set_err(st, "cannot read the result of job %" PRId64 ": %s", id,
		           sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

/* store_oldest_due - the queued or waiting job due first: the first entry of each
 * priority's stretch of the due index, as store_next_due_ms walks it. */
int store_oldest_due(struct store *st, int64_t *id, int64_t *next_run_ms)
{
	int64_t bound = INT64_MAX, priority;
	int rc, found = 0;
	sqlite3_stmt *s = sq_prep(st, S_WATCH_FIRST_DUE_AT_PRIORITY);
	if (!s)
		return -1;
	while ((rc = next_due_priority(st, bound, &priority)) > 0) {
		sqlite3_bind_int64(s, 1, priority);
		int r = sq_step(st, s, "find the oldest due job");
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
		sq_done(s);
		bound = priority;
	}
	return rc < 0 ? -1 : found;
}
