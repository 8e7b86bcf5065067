/* pg_deps.c - jobs that wait for other jobs, in the PostgreSQL store: the deps rows
 * written at ingest, a parked job's wait, and what a dependency's success, end or retry
 * does to the jobs waiting for it, in the same transaction (as sqlite_deps.c). Another
 * node may end a dependency while a job is being made to wait for it: the dependency's
 * row is read locked, so its change waits for the deps row to be committed, and then
 * finds it. */
#include "pg_int.h"

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

/* the jobs waiting on $1, and those that failed because it did */
static const char waiting_on_sql[] =
    "SELECT j.id, j.key FROM deps d JOIN jobs j ON j.id = d.job_id "
    "WHERE d.dep_id = $1 AND j.state = 2 AND j.waiting_for = 5 ORDER BY j.id";
static const char failed_on_sql[] =
    "SELECT j.id, j.key FROM deps d JOIN jobs j ON j.id = d.job_id "
    "WHERE d.dep_id = $1 AND j.state = 4 AND j.dep_failed = 1 ORDER BY j.id";

/* id_param - a statement's parameters when they are one id */
static const struct pg_params *id_param(struct pg_params *p, int64_t id)
{
	pg_params_init(p);
	pg_param_i64(p, id);
	return p;
}

/* dependants_into - the jobs waiting on id that sql selects, appended to out: read
 * whole before any is changed. */
static int dependants_into(struct store *st, const char *sql, int64_t id, struct dep_list *out)
{
	struct pg_params p;
	PGresult *r = pg_query(st, sql, id_param(&p, id), "read a job's dependants");
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++)
		dl_push(out, pg_get_i64(r, i, 0, 0), pg_get_text(r, i, 1));
	PQclear(r);
	return 0;
}

/* count_left - the dependencies of id not succeeded. */
static int64_t count_left(struct store *st, int64_t id)
{
	static const char sql[] = "SELECT count(*) FROM deps d JOIN jobs j ON j.id = d.dep_id "
	                          "WHERE d.job_id = $1 AND j.state <> 3";
	struct pg_params p;
	PGresult *r = pg_query(st, sql, id_param(&p, id), "count a job's dependencies");
	if (!r)
		return -1;
	int64_t n = PQntuples(r) ? pg_get_i64(r, 0, 0, 0) : 0;
	PQclear(r);
	return n;
}

/* park - id (in one of the allowed states) waits for its left dependencies. */
static int park(struct store *st, int64_t id, unsigned allowed, int64_t left, const char *reason,
                int64_t now_ms)
{
	static const char sql[] =
	    "UPDATE jobs SET state = $3, updated_ms = $2, owner = NULL, "
	    "waiting_for = 5, next_run_ms = $6, deps_left = $7, "
	    "dep_failed = 0, finished_ms = NULL, error_json = NULL " PG_FROM_STATE;
	struct pg_params p;
	pg_params_init(&p);
	pg_param_i64(&p, PG_DEPS_PARKED_MS);
	pg_param_i64(&p, left);
	return pg_strict(pg_change_state(st, id, allowed, JS_WAITING, sql, &p,
	                                 "put to wait for its dependencies", reason, now_ms));
}

/* fail_by_dep - id (in one of the allowed states) ends failed because key's job did:
 * 0, 1 when it is in none of them (nothing done), -1. */
static int fail_by_dep(struct store *st, int64_t id, unsigned allowed, const char *key,
                       int64_t now_ms)
{
	static const char sql[] = "UPDATE jobs SET state = $3, updated_ms = $2, finished_ms = $2, "
	                          "owner = NULL, error_json = $6, dep_failed = 1 " PG_FROM_STATE;
	struct strbuf why = STRBUF_INIT, ej = STRBUF_INIT;
	struct pg_params p;
	sb_addf(&why, "dependency %s failed", key ? key : "(without a key)");
	sb_adds(&ej, "{\"errors\":[{\"type\":\"DependencyFailed\",\"message\":");
	sb_add_json_string(&ej, why.buf);
	sb_adds(&ej, "}]}");
	pg_params_init(&p);
	pg_param_text(&p, ej.buf);
	int rc = pg_change_state(st, id, allowed, JS_FAILED, sql, &p, "fail", why.buf, now_ms);
	sb_release(&why);
	sb_release(&ej);
	return rc;
}

/* fail_dependants - the jobs of work from index first, read waiting for key's job, end
 * failed. One another node or a CLI ended meanwhile (cancelled, say) is left as it is,
 * and so are its dependants (its end saw to them): its id becomes 0. */
static int fail_dependants(struct store *st, struct dep_list *work, size_t first, const char *key,
                           int64_t now_ms)
{
	int rc = 0;
	for (size_t k = first; k < work->n && rc == 0; k++) {
		rc = fail_by_dep(st, work->v[k].id, PG_BIT(JS_WAITING), key, now_ms);
		if (rc > 0) {
			work->v[k].id = 0;
			rc = 0;
		}
	}
	return rc;
}

/* cascade_fail - the waiting dependants of the jobs in work (from the one at index
 * `from`), then theirs: a worklist, as a chain may be 100,000 long. */
static int cascade_fail(struct store *st, struct dep_list *work, size_t from, int64_t now_ms)
{
	int rc = 0;
	for (size_t i = from; i < work->n && rc == 0; i++) {
		size_t first = work->n;
		if (!work->v[i].id)
			continue;
		rc = dependants_into(st, waiting_on_sql, work->v[i].id, work);
		if (rc == 0)
			rc = fail_dependants(st, work, first, work->v[i].key, now_ms);
	}
	return rc;
}

/* job_key - the key of job id (malloc'd, NULL without one) and its state; lock (FOR
 * SHARE) keeps its state as read until the commit. */
static int job_key(struct store *st, int64_t id, int lock, enum job_state *state, char **key)
{
	static const char sql[] = "SELECT state, key FROM jobs WHERE id = $1";
	static const char lock_sql[] = "SELECT state, key FROM jobs WHERE id = $1 FOR SHARE";
	struct pg_params p;
	*key = NULL;
	PGresult *r = pg_query(st, lock ? lock_sql : sql, id_param(&p, id), "read a dependency");
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found) {
		*state = (enum job_state)pg_get_i64(r, 0, 0, 0);
		*key = pg_get_dup(r, 0, 1);
	}
	PQclear(r);
	return found ? 0 : pg_fail(st, "no job %" PRId64, id);
}

/* pg_deps_succeeded - one dependency less for id's dependants; those left with none are
 * due (not before their not_before), which other nodes hear of. The dependants' rows are
 * locked in id order: another node releasing some of them for another dependency locks
 * them in the same order, so the two wait for each other rather than deadlock. */
int pg_deps_succeeded(struct store *st, int64_t id, int64_t now_ms)
{
#define RELEASE_DEPENDANTS                                                                         \
	"WITH d AS (SELECT id FROM jobs WHERE id IN (SELECT job_id FROM deps WHERE dep_id = $1) "  \
	"AND deps_left > 0 ORDER BY id FOR NO KEY UPDATE) "                                        \
	"UPDATE jobs SET deps_left = deps_left - 1, next_run_ms = CASE "                           \
	"WHEN deps_left = 1 AND state = 2 AND waiting_for = 5 "                                    \
	"THEN greatest($2::bigint, not_before_ms) ELSE next_run_ms END FROM d WHERE jobs.id = "    \
	"d.id"
	static const char sql[] = RELEASE_DEPENDANTS;
	/* in the pipeline: the same update, and the announcement when it released any (one
	 * per transaction however often: NOTIFY folds repeats of one payload) */
	static const char piped_sql[] = "WITH u AS (" RELEASE_DEPENDANTS " RETURNING 1) "
	                                "SELECT pg_notify($3, '') FROM (SELECT 1 FROM u LIMIT 1) x";
#undef RELEASE_DEPENDANTS
	struct pg_params p;
	id_param(&p, id);
	pg_param_i64(&p, now_ms);
	if (st->pipe.on) {
		pg_param_text(&p, st->channel);
		return pg_write(st, piped_sql, &p, "release a job's dependants");
	}
	int64_t n = pg_run(st, sql, &p, "release a job's dependants");
	if (n > 0)
		st->notify_pending = 1;
	return n < 0 ? -1 : 0;
}

/* pg_deps_ended - id's waiting dependants end failed, transitively: found first, so a
 * job nobody waits for costs one statement. */
int pg_deps_ended(struct store *st, int64_t id, int64_t now_ms)
{
	struct dep_list work = {0};
	enum job_state state;
	char *key = NULL;
	dl_push(&work, id, NULL);
	int rc = dependants_into(st, waiting_on_sql, id, &work);
	if (rc == 0 && work.n > 1)
		rc = job_key(st, id, 0, &state, &key);
	if (rc == 0 && work.n > 1) {
		work.v[0].key = key;
		rc = fail_dependants(st, &work, 1, key, now_ms);
		if (rc == 0)
			rc = cascade_fail(st, &work, 1, now_ms);
	}
	dl_release(&work);
	return rc;
}

/* pg_deps_unsucceeded - id's dependants count it again, then fail with it. */
int pg_deps_unsucceeded(struct store *st, int64_t id, int64_t now_ms)
{
	static const char sql[] =
	    "WITH d AS (SELECT id FROM jobs WHERE id IN (SELECT job_id FROM deps WHERE dep_id = "
	    "$1) "
	    "AND state = 2 AND waiting_for = 5 ORDER BY id FOR NO KEY UPDATE) "
	    "UPDATE jobs SET deps_left = deps_left + 1, next_run_ms = $2 FROM d "
	    "WHERE jobs.id = d.id";
	struct pg_params p;
	id_param(&p, id);
	pg_param_i64(&p, PG_DEPS_PARKED_MS);
	if (pg_run(st, sql, &p, "hold a job's dependants again") < 0)
		return -1;
	return pg_deps_ended(st, id, now_ms);
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

/* pg_deps_requeued - a retried job waits again if it has dependencies to wait for. */
int pg_deps_requeued(struct store *st, int64_t id, int64_t now_ms)
{
	int64_t left = count_left(st, id);
	if (left <= 0)
		return left < 0 ? -1 : 0;
	struct strbuf why = STRBUF_INIT;
	struct dep_list none = {0};
	waiting_reason(&why, left, &none);
	int rc = park(st, id, PG_BIT(JS_QUEUED), left, why.buf, now_ms);
	sb_release(&why);
	return rc;
}

/* store_deps_add - see store.h. */
int store_deps_add(struct store *st, int64_t id, const int64_t *dep_ids, size_t n, int64_t now_ms)
{
	static const char sql[] =
	    "INSERT INTO deps (dep_id, job_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
	struct dep_list pending = {0};
	char *failed = NULL;
	enum pg_wrap how;
	int rc = 0;
	if (!n)
		return 0;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		enum job_state state = JS_QUEUED;
		struct pg_params p;
		char *key = NULL;
		if (dep_ids[i] == id) {
			rc = pg_fail(st, "cannot make job %" PRId64 " wait for itself", id);
			break;
		}
		id_param(&p, dep_ids[i]);
		pg_param_i64(&p, id);
		rc = pg_run(st, sql, &p, "record a dependency") < 0 ? -1 : 0;
		if (rc == 0)
			rc = job_key(st, dep_ids[i], 1, &state, &key);
		if (rc == 0 && state != JS_SUCCEEDED)
			dl_push(&pending, dep_ids[i], key);
		if (rc == 0 && !failed &&
		    (state == JS_FAILED || state == JS_DEAD || state == JS_CANCELLED))
			failed = xstrdup(key ? key : "?");
		free(key);
	}
	if (rc == 0 && failed) {
		rc = pg_strict(fail_by_dep(st, id, PG_BIT(JS_QUEUED), failed, now_ms));
		if (rc == 0) /* jobs of the file recorded before it may wait for it already */
			rc = pg_deps_ended(st, id, now_ms);
	} else if (rc == 0 && pending.n) {
		struct strbuf why = STRBUF_INIT;
		waiting_reason(&why, (int64_t)pending.n, &pending);
		rc = park(st, id, PG_BIT(JS_QUEUED), (int64_t)pending.n, why.buf, now_ms);
		sb_release(&why);
	}
	free(failed);
	dl_release(&pending);
	return pg_op_end(st, how, rc);
}

/* store_deps_revive - see store.h. */
int store_deps_revive(struct store *st, int64_t id, int64_t now_ms, int64_t **ids, size_t *nids)
{
	struct dep_list work = {0};
	enum job_state state;
	enum pg_wrap how;
	char *key = NULL;
	int rc;
	*ids = NULL;
	*nids = 0;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	rc = job_key(st, id, 0, &state, &key);
	if (rc == 0)
		dl_push(&work, id, key);
	free(key);
	for (size_t i = 0; i < work.n && rc == 0; i++) {
		struct dep_list found = {0};
		rc = dependants_into(st, failed_on_sql, work.v[i].id, &found);
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
			rc = park(st, found.v[k].id, PG_BIT(JS_FAILED), left, why.buf, now_ms);
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
	rc = pg_op_end(st, how, rc);
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
	static const char sql[] =
	    "SELECT j.key FROM deps d JOIN jobs j ON j.id = d.dep_id "
	    "WHERE d.job_id = $1 AND j.state IN (4, 5, 6) ORDER BY j.id LIMIT 1";
	struct pg_params p;
	*key = NULL;
	PGresult *r = pg_query(st, sql, id_param(&p, id), "read a job's dependencies");
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found) {
		const char *k = pg_get_text(r, 0, 0);
		*key = xstrdup(k ? k : "?");
	}
	PQclear(r);
	return found;
}

/* store_key_result - the state and stored result of the job keyed key. */
int store_key_result(struct store *st, const char *key, int64_t *id, enum job_state *state,
                     char **result_json)
{
	static const char sql[] = "SELECT id, state, result_json FROM jobs WHERE key = $1";
	struct pg_params p;
	*result_json = NULL;
	pg_params_init(&p);
	pg_param_text(&p, key);
	PGresult *r = pg_query(st, sql, &p, "read a job's result by its key");
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found) {
		*id = pg_get_i64(r, 0, 0, 0);
		*state = (enum job_state)pg_get_i64(r, 0, 1, 0);
		*result_json = pg_get_dup(r, 0, 2);
	}
	PQclear(r);
	return found ? 0 : 1;
}

/* store_key_op - the operation of the job keyed key. */
int store_key_op(struct store *st, const char *key, char **op_id)
{
	static const char sql[] = "SELECT op_id FROM jobs WHERE key = $1";
	struct pg_params p;
	*op_id = NULL;
	pg_params_init(&p);
	pg_param_text(&p, key);
	PGresult *r = pg_query(st, sql, &p, "read a job's operation by its key");
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found)
		*op_id = pg_get_dup(r, 0, 0);
	PQclear(r);
	return found;
}
