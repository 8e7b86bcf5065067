/* sqlite_deps.c - jobs that wait for other jobs (sql/sqlite/011_deps.sql): the deps rows
 * written at ingest, a parked job's wait, and what a dependency's success, end or retry
 * does to the jobs waiting for it, in the same transaction. A parked job is never looked
 * at while it waits: its dependencies' state changes find it through deps. */
#include "sqlite_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SHOWN_KEYS 3 /* keys a parked job's reason names */

/* a job and its key, for the walks below */
struct dep_job {
	int64_t id;
	char *key;
};

struct dep_list {
	struct dep_job *v;
	size_t n, alloc;
};

/* dl_push - appends (id, key); the key is copied. */
static void dl_push(struct dep_list *l, int64_t id, const char *key)
{
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? 2 * l->alloc : 16;
		l->v = xrealloc(l->v, l->alloc * sizeof(*l->v));
	}
	l->v[l->n].id = id;
	l->v[l->n++].key = key ? xstrdup(key) : NULL;
}

/* dl_release - frees the keys and the array. */
static void dl_release(struct dep_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].key);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* dependants_into - the jobs waiting on id that stmt (S_DEPS_WAITING_ON or
 * S_DEPS_FAILED_ON) selects, appended to out: read whole before any is changed. */
static int dependants_into(struct store *st, enum stmt_id stmt, int64_t id, struct dep_list *out)
{
	sqlite3_stmt *s = sq_prep(st, stmt);
	int rc;
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	while ((rc = sq_step(st, s, "read a job's dependants")) == SQLITE_ROW)
		dl_push(out, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1));
	sq_done(s);
	return rc < 0 ? -1 : 0;
}

/* count_left - the dependencies of id not succeeded. */
static int64_t count_left(struct store *st, int64_t id)
{
	sqlite3_stmt *s = sq_prep(st, S_DEPS_LEFT);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	return sq_count_query(st, s, "count a job's dependencies");
}

/* park - id (in one of the allowed states) waits for its left dependencies. */
static int park(struct store *st, int64_t id, unsigned allowed, int64_t left, const char *reason,
                int64_t now_ms)
{
	sqlite3_stmt *s = sq_prep(st, S_DEPS_PARK);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 4, STORE_DEPS_PARKED_MS);
	sqlite3_bind_int64(s, 5, left);
	return sq_strict(sq_change_state(st, id, allowed, JS_WAITING, s,
	                                 "put to wait for its dependencies", reason, now_ms));
}

/* fail_by_dep - id (in one of the allowed states) ends failed because key's job did. */
static int fail_by_dep(struct store *st, int64_t id, unsigned allowed, const char *key,
                       int64_t now_ms)
{
	struct strbuf why = STRBUF_INIT, ej = STRBUF_INIT;
	sb_addf(&why, "dependency %s failed", key ? key : "(without a key)");
	sb_adds(&ej, "{\"errors\":[{\"type\":\"DependencyFailed\",\"message\":");
	sb_add_json_string(&ej, why.buf);
	sb_adds(&ej, "}]}");
	sqlite3_stmt *s = sq_prep(st, S_DEPS_FAIL);
	int rc = -1;
	if (s) {
		sqlite3_bind_text(s, 4, ej.buf, (int)ej.len, SQLITE_TRANSIENT);
		rc = sq_strict(
		    sq_change_state(st, id, allowed, JS_FAILED, s, "fail", why.buf, now_ms));
	}
	sb_release(&why);
	sb_release(&ej);
	return rc;
}

/* cascade_fail - the waiting dependants of the jobs in work (the first not yet done),
 * then theirs: a worklist, as a chain may be 100,000 long. */
static int cascade_fail(struct store *st, struct dep_list *work, int64_t now_ms)
{
	int rc = 0;
	for (size_t i = 0; i < work->n && rc == 0; i++) {
		size_t from = work->n;
		rc = dependants_into(st, S_DEPS_WAITING_ON, work->v[i].id, work);
		for (size_t k = from; k < work->n && rc == 0; k++)
			rc =
			    fail_by_dep(st, work->v[k].id, BIT(JS_WAITING), work->v[i].key, now_ms);
	}
	return rc;
}

/* job_key - the key of job id (malloc'd, NULL without one) and its state. */
static int job_key(struct store *st, int64_t id, enum job_state *state, char **key)
{
	sqlite3_stmt *s = sq_prep(st, S_DEP_INFO);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	int rc = sq_step(st, s, "read a dependency");
	*key = NULL;
	if (rc == SQLITE_ROW) {
		*state = (enum job_state)sqlite3_column_int(s, 0);
		*key = sq_column_dup(s, 1);
	}
	sq_done(s);
	if (rc == SQLITE_DONE)
		sq_set_err(st, "no job %" PRId64, id);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* sq_deps_succeeded - one dependency less for id's dependants; see sqlite_int.h. */
/* sq_deps_none - whether the deps table is empty, asked once. */
int sq_deps_none(struct store *st)
{
	if (st->deps_any < 0) {
		sqlite3_stmt *s = sq_prep(st, S_DEPS_ANY);
		if (!s || sq_step(st, s, "look for dependencies") != SQLITE_ROW) {
			if (s)
				sq_done(s);
			return 0; /* unknown: do the work */
		}
		st->deps_any = sqlite3_column_int(s, 0);
		sq_done(s);
	}
	return !st->deps_any;
}

int sq_deps_succeeded(struct store *st, int64_t id, int64_t now_ms)
{
	if (sq_deps_none(st))
		return 0;
	sqlite3_stmt *s = sq_prep(st, S_DEPS_RELEASE);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, now_ms);
	return sq_run(st, s, "release a job's dependants");
}

/* sq_deps_ended - id's waiting dependants end failed, transitively. */
int sq_deps_ended(struct store *st, int64_t id, int64_t now_ms)
{
	if (sq_deps_none(st))
		return 0;
	struct dep_list work = {0};
	enum job_state state;
	char *key;
	if (job_key(st, id, &state, &key) < 0)
		return -1;
	dl_push(&work, id, key);
	free(key);
	int rc = cascade_fail(st, &work, now_ms);
	dl_release(&work);
	return rc;
}

/* sq_deps_unsucceeded - id's dependants count it again, then fail with it. */
int sq_deps_unsucceeded(struct store *st, int64_t id, int64_t now_ms)
{
	if (sq_deps_none(st))
		return 0;
	sqlite3_stmt *s = sq_prep(st, S_DEPS_UNRELEASE);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, STORE_DEPS_PARKED_MS);
	if (sq_run(st, s, "hold a job's dependants again") < 0)
		return -1;
	return sq_deps_ended(st, id, now_ms);
}

/* waiting_reason - "waiting for N dependencies: a, b, c and N more". */
static void waiting_reason(struct strbuf *sb, int64_t left, const struct dep_list *pending)
{
	sb_addf(sb, "waiting for %" PRId64 " %s", left, left == 1 ? "dependency" : "dependencies");
	for (size_t i = 0; i < pending->n && i < SHOWN_KEYS; i++)
		sb_addf(sb, "%s%s", i ? ", " : ": ", pending->v[i].key ? pending->v[i].key : "?");
	if (pending->n > SHOWN_KEYS)
		sb_addf(sb, " and %zu more", pending->n - SHOWN_KEYS);
}

/* sq_deps_requeued - a retried job waits again if it has dependencies to wait for. */
int sq_deps_requeued(struct store *st, int64_t id, int64_t now_ms)
{
	if (sq_deps_none(st))
		return 0;
	int64_t left = count_left(st, id);
	if (left <= 0)
		return left < 0 ? -1 : 0;
	struct strbuf why = STRBUF_INIT;
	struct dep_list none = {0};
	waiting_reason(&why, left, &none);
	int rc = park(st, id, BIT(JS_QUEUED), left, why.buf, now_ms);
	sb_release(&why);
	return rc;
}

/* store_deps_add - see store.h. */
int store_deps_add(struct store *st, int64_t id, const int64_t *dep_ids, size_t n, int64_t now_ms)
{
	struct dep_list pending = {0};
	char *failed = NULL;
	enum op_wrap how;
	int rc = 0;
	if (!n)
		return 0;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	st->deps_any = 1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		sqlite3_stmt *s = sq_prep(st, S_DEPS_INSERT);
		enum job_state state = JS_QUEUED;
		char *key = NULL;
		if (!s || dep_ids[i] == id) {
			if (s)
				sq_set_err(st, "cannot make job %" PRId64 " wait for itself", id);
			rc = -1;
			break;
		}
		sqlite3_bind_int64(s, 1, dep_ids[i]);
		sqlite3_bind_int64(s, 2, id);
		rc = sq_run(st, s, "record a dependency");
		if (rc == 0)
			rc = job_key(st, dep_ids[i], &state, &key);
		if (rc == 0 && state != JS_SUCCEEDED)
			dl_push(&pending, dep_ids[i], key);
		if (rc == 0 && !failed &&
		    (state == JS_FAILED || state == JS_DEAD || state == JS_CANCELLED))
			failed = xstrdup(key ? key : "?");
		free(key);
	}
	if (rc == 0 && failed) {
		rc = fail_by_dep(st, id, BIT(JS_QUEUED), failed, now_ms);
		if (rc == 0) /* jobs of the file recorded before it may wait for it already */
			rc = sq_deps_ended(st, id, now_ms);
	} else if (rc == 0 && pending.n) {
		struct strbuf why = STRBUF_INIT;
		waiting_reason(&why, (int64_t)pending.n, &pending);
		rc = park(st, id, BIT(JS_QUEUED), (int64_t)pending.n, why.buf, now_ms);
		sb_release(&why);
	}
	free(failed);
	dl_release(&pending);
	return sq_op_end(st, how, rc);
}

/* store_deps_revive - see store.h. */
int store_deps_revive(struct store *st, int64_t id, int64_t now_ms, int64_t **ids, size_t *nids)
{
	struct dep_list work = {0};
	enum job_state state;
	enum op_wrap how;
	char *key = NULL;
	int rc;
	*ids = NULL;
	*nids = 0;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	rc = job_key(st, id, &state, &key);
	if (rc == 0)
		dl_push(&work, id, key);
	free(key);
	for (size_t i = 0; i < work.n && rc == 0; i++) {
		struct dep_list found = {0};
		rc = dependants_into(st, S_DEPS_FAILED_ON, work.v[i].id, &found);
		for (size_t k = 0; k < found.n && rc == 0; k++) {
			char *other = NULL;
			int64_t left;
			rc = store_dep_failed(st, found.v[k].id, &other);
			free(other);
			if (rc != 0) { /* another dependency still failed: it stays failed */
				rc = rc < 0 ? -1 : 0;
				continue;
			}
			left = count_left(st, found.v[k].id);
			if (left < 0) {
				rc = -1;
				break;
			}
			struct strbuf why = STRBUF_INIT;
			sb_addf(&why, "dependency %s retried; ",
			        work.v[i].key ? work.v[i].key : "(without a key)");
			waiting_reason(&why, left, &(struct dep_list){0});
			rc = park(st, found.v[k].id, BIT(JS_FAILED), left, why.buf, now_ms);
			sb_release(&why);
			if (rc == 0) {
				dl_push(&work, found.v[k].id, found.v[k].key);
				*ids = xrealloc(*ids, (*nids + 1) * sizeof(**ids));
				(*ids)[(*nids)++] = found.v[k].id;
			}
		}
		dl_release(&found);
	}
	dl_release(&work);
	rc = sq_op_end(st, how, rc);
	if (rc < 0) {
		free(*ids);
		*ids = NULL;
		*nids = 0;
	}
	return rc;
}

/* store_dep_failed - a dependency of id that is failed, dead or cancelled. */
int store_dep_failed(struct store *st, int64_t id, char **key)
{
	sqlite3_stmt *s = sq_prep(st, S_DEPS_FAILED_DEP);
	*key = NULL;
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	int rc = sq_step(st, s, "read a job's dependencies");
	if (rc == SQLITE_ROW) {
		const unsigned char *k = sqlite3_column_text(s, 0);
		*key = xstrdup(k ? (const char *)k : "?");
	}
	sq_done(s);
	return rc < 0 ? -1 : rc == SQLITE_ROW;
}

/* store_key_result - the state and stored result of the job keyed key. */
int store_key_result(struct store *st, const char *key, int64_t *id, enum job_state *state,
                     char **result_json)
{
	sqlite3_stmt *s = sq_prep(st, S_KEY_RESULT);
	*result_json = NULL;
	if (!s)
		return -1;
	sq_bind_text(s, 1, key);
	int rc = sq_step(st, s, "read a job's result by its key");
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		*state = (enum job_state)sqlite3_column_int(s, 1);
		*result_json = sq_column_dup(s, 2);
	}
	sq_done(s);
	return rc < 0 ? -1 : rc == SQLITE_ROW ? 0 : 1;
}

/* store_attempt_resolved - what the attempt's references were resolved to. */
int store_attempt_resolved(struct store *st, int64_t attempt_id, const char *resolved_json)
{
	enum op_wrap how;
	int rc = -1;
	if (sq_op_begin(st, &how) < 0)
		return -1;
	sqlite3_stmt *s = sq_prep(st, S_ATTEMPT_RESOLVED);
	if (s) {
		sqlite3_bind_int64(s, 1, attempt_id);
		sq_bind_text(s, 2, resolved_json);
		rc = sq_run(st, s, "record an attempt's references");
	}
	return sq_op_end(st, how, rc);
}

/* store_key_op - the operation of the job keyed key. */
int store_key_op(struct store *st, const char *key, char **op_id)
{
	sqlite3_stmt *s = sq_prep(st, S_KEY_OP);
	*op_id = NULL;
	if (!s)
		return -1;
	sq_bind_text(s, 1, key);
	int rc = sq_step(st, s, "read a job's operation by its key");
	if (rc == SQLITE_ROW)
		*op_id = sq_column_dup(s, 0);
	sq_done(s);
	return rc < 0 ? -1 : rc == SQLITE_ROW;
}
