/* pg_jobs.c - a job's way through the PostgreSQL store's queue: read, claimed (by one
 * node of several: SKIP LOCKED), its attempts recorded under the node's lease, and every
 * state change with its transitions row. The statements are sqlite_sql.c's, translated;
 * a running job is changed only by the node that owns it. */
#include "pg_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* the columns of struct job_row, in the order read_job_row expects */
#define JOB_COLS                                                                                   \
	"id, parent_id, state, op_id, spec_json, key, workspace, output_path, priority, "          \
	"attempts, created_ms, next_run_ms, cursor, pages_done, items_done, total_entries, "       \
	"cancel_requested, (result_json IS NOT NULL)::int AS has_result, "                         \
	"(SELECT count(*) FROM attempts a WHERE a.job_id = jobs.id) AS tries"

/* the due jobs: the WHERE of the jobs_due partial index (sql/postgresql/001_init.sql) */
#define DUE_JOBS "jobs WHERE state IN (0, 2)"

#define PARKED_TEXT "253402300799999" /* PG_DEPS_PARKED_MS, in statements */

/* --- reading jobs -------------------------------------------------------------------- */

/* read_job_row - row i of a result with JOB_COLS from column c into a job_row (strings
 * malloc'd). */
static void read_job_row(const PGresult *r, int i, int c, struct job_row *row)
{
	row->id = pg_get_i64(r, i, c, 0);
	row->parent_id = pg_get_i64(r, i, c + 1, 0);
	row->state = (enum job_state)pg_get_i64(r, i, c + 2, 0);
	row->op_id = pg_get_dup(r, i, c + 3);
	row->spec_json = pg_get_dup(r, i, c + 4);
	row->key = pg_get_dup(r, i, c + 5);
	row->workspace = pg_get_dup(r, i, c + 6);
	row->output_path = pg_get_dup(r, i, c + 7);
	row->priority = (int)pg_get_i64(r, i, c + 8, 0);
	row->attempts = (int)pg_get_i64(r, i, c + 9, 0);
	row->created_ms = pg_get_i64(r, i, c + 10, 0);
	row->next_run_ms = pg_get_i64(r, i, c + 11, 0);
	row->cursor = pg_get_dup(r, i, c + 12);
	row->pages_done = (int)pg_get_i64(r, i, c + 13, 0);
	row->items_done = pg_get_i64(r, i, c + 14, 0);
	row->total_entries = pg_get_i64(r, i, c + 15, -1);
	row->cancel_requested = (int)pg_get_i64(r, i, c + 16, 0);
	row->has_result = (int)pg_get_i64(r, i, c + 17, 0);
	row->tries = (int)pg_get_i64(r, i, c + 18, 0);
}

/* one_id - a statement's parameters when they are one id */
static const struct pg_params *one_id(struct pg_params *p, int64_t id)
{
	pg_params_init(p);
	pg_param_i64(p, id);
	return p;
}

/* count_query - the single integer sql returns, or -1. */
static int64_t count_query(struct store *st, const char *sql, const struct pg_params *p,
                           const char *what)
{
	PGresult *r = pg_query(st, sql, p, what);
	if (!r)
		return -1;
	int64_t n = PQntuples(r) ? pg_get_i64(r, 0, 0, 0) : 0;
	PQclear(r);
	return n;
}

/* store_get - one job: 0, 1 when there is no such job, -1 on error. */
int store_get(struct store *st, int64_t id, struct job_row *out)
{
	static const char sql[] = "SELECT " JOB_COLS " FROM jobs WHERE id = $1";
	struct pg_params p;
	PGresult *r = pg_query(st, sql, one_id(&p, id), "read a job");
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found)
		read_job_row(r, 0, 0, out);
	PQclear(r);
	if (!found)
		pg_fail(st, "no job %" PRId64, id);
	return found ? 0 : 1;
}

/* pg_job_state_get - a job's state: 0, 1 when there is no such job, -1. */
int pg_job_state_get(struct store *st, int64_t id, enum job_state *state)
{
	static const char sql[] = "SELECT state FROM jobs WHERE id = $1";
	struct pg_params p;
	PGresult *r = pg_query(st, sql, one_id(&p, id), "read a job's state");
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found)
		*state = (enum job_state)pg_get_i64(r, 0, 0, 0);
	PQclear(r);
	return found ? 0 : 1;
}

/* --- scheduling ------------------------------------------------------------------------ */

/* the claim at one priority, in one statement: the highest priority below $4 that has
 * queued or waiting jobs, its due jobs no other node holds locked (claimed in another
 * node's open transaction) moved to running under this node ($3, NULL for none; a node
 * marked dead claims nothing), each with its transitions row. Returned in the claim
 * order, after the priority (a row of NULLs when none of it was claimed; no row when
 * there is no such priority). One priority at a time, as SQLite's walk of the due index:
 * jobs not yet due at one priority (a rate-limit hold parks thousands) are seeked past,
 * not read, as they would be by one walk in (priority, next run) order. */
static const char claim_sql[] =
    "WITH pr AS (SELECT priority FROM " DUE_JOBS " AND priority < $4::bigint "
    "ORDER BY priority DESC LIMIT 1), "
    "due AS (SELECT id AS due_id, state AS from_state FROM " DUE_JOBS
    " AND priority = (SELECT priority FROM pr) AND next_run_ms <= $1 "
    "AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM nodes WHERE nodes.id = $3::bigint "
    "AND dead = 0)) ORDER BY next_run_ms, id LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED), "
    "claimed AS (UPDATE jobs SET state = 1, owner = $3::bigint, updated_ms = $1 FROM due "
    "WHERE id = due_id RETURNING " JOB_COLS ", from_state), "
    "t AS (INSERT INTO transitions (job_id, from_state, to_state, at_ms, reason) "
    "SELECT id, from_state, 1, $1::bigint, 'claimed' FROM claimed) "
    "SELECT pr.priority AS at_priority, c.* FROM pr LEFT JOIN claimed c ON true "
    "ORDER BY c.next_run_ms, c.id";

/* claim_at - claims up to max due jobs of the highest priority below *bound into rows,
 * which becomes the next bound: how many (0 when none is due at it), -1 for no such
 * priority, -2 on error. */
static int claim_at(struct store *st, int64_t now_ms, int64_t *bound, struct job_row *rows, int max)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_i64(&p, now_ms);
	pg_param_i64(&p, max);
	pg_param_i64_or_null(&p, st->node_id, 0);
	pg_param_i64(&p, *bound);
	PGresult *r = pg_query(st, claim_sql, &p, "claim due jobs");
	if (!r)
		return -2;
	int n = 0, rows_got = PQntuples(r);
	if (rows_got == 0) {
		PQclear(r);
		return -1;
	}
	*bound = pg_get_i64(r, 0, 0, 0);
	for (int i = 0; i < rows_got && n < max; i++)
		if (!PQgetisnull(r, i, 1))
			read_job_row(r, i, 1, &rows[n++]);
	PQclear(r);
	return n;
}

/* the next due time, as store_next_due_ms reads it (sent after each pipelined claim) */
static const char next_due_sql[] =
    "WITH RECURSIVE p(priority) AS ((SELECT priority FROM " DUE_JOBS
    " ORDER BY priority DESC LIMIT 1) UNION ALL SELECT (SELECT j.priority FROM jobs j "
    "WHERE j.state IN (0, 2) AND j.priority < p.priority ORDER BY j.priority DESC "
    "LIMIT 1) FROM p WHERE p.priority IS NOT NULL) "
    "SELECT coalesce(min((SELECT j.next_run_ms FROM jobs j WHERE j.state IN (0, 2) "
    "AND j.priority = p.priority ORDER BY j.next_run_ms, j.id LIMIT 1)), 0) "
    "FROM p WHERE p.priority IS NOT NULL";

/* pg_claim_arrived - see pg_int.h: the claimed rows join the stash; a priority that had
 * fewer due jobs than asked for is looked below by the next claim (as the synchronous
 * claim's walk goes on below it), anything else starts again from the top. */
void pg_claim_arrived(struct store *st, const PGresult *r)
{
	struct pg_pipe *pp = &st->pipe;
	int rows_got = PQntuples(r), n = 0;
	pp->claiming = 0;
	if (pp->claim_dropped) {
		pp->claim_dropped = 0;
		pp->claim_bound = INT64_MAX;
		return;
	}
	if (rows_got == 0) {
		pp->claim_bound = INT64_MAX; /* no priority below the bound: none due */
		return;
	}
	if (pp->nclaimed + rows_got > pp->claimed_cap) {
		pp->claimed_cap = pp->nclaimed + rows_got;
		pp->claimed = xrealloc(pp->claimed, (size_t)pp->claimed_cap * sizeof(*pp->claimed));
	}
	for (int i = 0; i < rows_got; i++)
		if (!PQgetisnull(r, i, 1)) {
			read_job_row(r, i, 1, &pp->claimed[pp->nclaimed++]);
			n++;
		}
	if (pp->claim_in_txn)
		pp->nfresh += n;
	pp->claim_bound = n < pp->claim_max ? pg_get_i64(r, 0, 0, 0) : INT64_MAX;
}

/* pg_claims_drop - see pg_int.h: the rows went back to queued with the rollback. */
void pg_claims_drop(struct store *st)
{
	struct pg_pipe *pp = &st->pipe;
	for (; pp->nfresh > 0; pp->nfresh--)
		job_row_release(&pp->claimed[--pp->nclaimed]);
	pp->claim_dropped = pp->claiming && pp->claim_in_txn;
	pp->claim_in_txn = 0;
	pp->claim_bound = INT64_MAX;
}

/* claim_piped - the pipeline's claim: the rows of one sent before, else a claim sent (with
 * the next due time after it) whose rows a later call hands out. Only in a transaction:
 * outside one, the pipeline would run it in an implicit one until the next sync. */
static int claim_piped(struct store *st, int64_t now_ms, struct job_row *rows, int max)
{
	struct pg_pipe *pp = &st->pipe;
	struct pg_params p;
	int n = max < pp->nclaimed ? max : pp->nclaimed;
	if (pp->failed)
		return -1;
	if (n > 0) {
		memcpy(rows, pp->claimed, (size_t)n * sizeof(*rows));
		memmove(pp->claimed, pp->claimed + n, (size_t)(pp->nclaimed - n) * sizeof(*rows));
		pp->nclaimed -= n;
		if (pp->nfresh > pp->nclaimed) /* the committed rows go first */
			pp->nfresh = pp->nclaimed;
		return n;
	}
	if (pp->claiming)
		return 0;
	if (!pp->txn)
		return pg_fail(st, "cannot claim jobs: no transaction is open");
	pg_params_init(&p);
	pg_param_i64(&p, now_ms);
	pg_param_i64(&p, max);
	pg_param_i64_or_null(&p, st->node_id, 0);
	pg_param_i64(&p, pp->claim_bound ? pp->claim_bound : INT64_MAX);
	if (pg_pipe_send(st, claim_sql, &p, PG_PEND_CLAIM, "claim due jobs") < 0 ||
	    pg_pipe_send(st, next_due_sql, NULL, PG_PEND_NEXT_DUE, "find the next due job") < 0 ||
	    pg_pipe_flush_request(st) < 0)
		return -1;
	pp->claiming = 1;
	pp->claim_in_txn = 1;
	pp->claim_max = max;
	return 0;
}

/* store_claim_due - up to max due jobs, moved to running; see store.h. */
int store_claim_due(struct store *st, int64_t now_ms, struct job_row *rows, int max)
{
	enum pg_wrap how;
	int64_t bound = INT64_MAX;
	int n = 0, got = 0;
	if (max <= 0)
		return 0;
	if (st->pipe.on)
		return claim_piped(st, now_ms, rows, max);
	if (pg_op_begin_atomic(st, &how) < 0)
		return -1;
	while (n < max && (got = claim_at(st, now_ms, &bound, rows + n, max - n)) >= 0)
		n += got;
	if (got < -1) {
		while (n > 0)
			job_row_release(&rows[--n]);
		n = -1;
	}
	int rc = pg_op_end(st, how, n);
	while (rc < 0 && n > 0) /* the commit failed: none of them was claimed */
		job_row_release(&rows[--n]);
	return rc;
}

/* store_next_due_ms - the earliest next run among queued and waiting jobs: the first
 * entry of each priority's stretch of the due index (a loose index scan), so jobs
 * parked or held at one priority are not read one by one. */
int64_t store_next_due_ms(struct store *st)
{
	if (st->pipe.on) /* what the last claim saw; its answer wakes the loop anyway */
		return st->pipe.claiming ? 0 : st->pipe.next_due_ms;
	return count_query(st, next_due_sql, NULL, "find the next due job");
}

/* store_count_active - jobs queued, running or waiting. */
int64_t store_count_active(struct store *st)
{
	static const char sql[] = "SELECT count(*) FROM jobs WHERE state IN (0, 1, 2)";
	return count_query(st, sql, NULL, "count active jobs");
}

/* store_count_waiting_for - waiting jobs that wait for `why`; for JW_DEPS (5) the jobs
 * still parked, not those their last dependency made due. */
int64_t store_count_waiting_for(struct store *st, enum job_wait why)
{
	static const char sql[] =
	    "SELECT count(*) FROM " DUE_JOBS " AND state = 2 AND waiting_for = $1::int AND "
	    "(CASE WHEN $1::int = 5 THEN next_run_ms >= " PARKED_TEXT
	    " ELSE next_run_ms < " PARKED_TEXT " END)";
	struct pg_params p;
	return count_query(st, sql, one_id(&p, (int64_t)why), "count waiting jobs");
}

/* --- attempts ---------------------------------------------------------------------------- */

/* store_count_lost_answers - the job's attempts recorded "unknown", or -1. */
int64_t store_count_lost_answers(struct store *st, int64_t job_id)
{
	static const char sql[] =
	    "SELECT count(*) FROM attempts WHERE job_id = $1 AND outcome = 'unknown'";
	struct pg_params p;
	return count_query(st, sql, one_id(&p, job_id), "count a job's lost answers");
}

/* store_attempt_begin - a started attempt; see store.h. A node records one only for a
 * job it runs under a lease still held: the job's row is locked (FOR SHARE) until the
 * commit, so a rescue by another node waits for it and closes this attempt too, or
 * came first and this one is refused. */
int store_attempt_begin(struct store *st, int64_t job_id, int attempt_no, int64_t now_ms,
                        const char *request, int64_t *attempt_id)
{
	static const char sql[] = "INSERT INTO attempts (job_id, attempt_no, started_ms, request) "
	                          "VALUES ($1, $4, $2, $3) RETURNING id";
#define OWNED_ATTEMPT                                                                              \
	"INSERT INTO attempts (job_id, attempt_no, started_ms, request, node_id) "                 \
	"SELECT j.id, $4, $2, $3, j.owner FROM jobs j WHERE j.id = $1 AND j.state = 1 "            \
	"AND j.owner = $5 AND EXISTS (SELECT 1 FROM nodes n WHERE n.id = $5 AND n.dead = 0) "      \
	"FOR SHARE OF j"
	static const char owned_sql[] = OWNED_ATTEMPT " RETURNING id";
	/* in the pipeline: the same insert, its check raised by the server, and the attempt
	 * named by its job and number (its id would take a round trip) */
	static const char piped_sql[] =
	    "WITH a AS (" OWNED_ATTEMPT " RETURNING 1) SELECT segspool_expect((SELECT count(*) "
	    "FROM a), 'lease lost: job ' || $1 || ' is claimed by another daemon')";
#undef OWNED_ATTEMPT
	enum pg_wrap how;
	struct pg_params p;
	int rc = -1;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_i64(&p, job_id);
	pg_param_i64(&p, now_ms);
	pg_param_text(&p, request);
	pg_param_i64(&p, attempt_no);
	if (st->node_id)
		pg_param_i64(&p, st->node_id);
	if (st->pipe.on && st->node_id && how == PG_JOINED) {
		*attempt_id = PG_REF(job_id, attempt_no);
		return pg_pipe_send(st, piped_sql, &p, PG_PEND_WRITE, "record an attempt");
	}
	PGresult *r = pg_query(st, st->node_id ? owned_sql : sql, &p, "record an attempt");
	if (r) {
		if (PQntuples(r) > 0) {
			*attempt_id = pg_get_i64(r, 0, 0, 0);
			rc = 0;
		} else {
			rc = pg_fail(st, "lease lost: job %" PRId64 " is claimed by another daemon",
			             job_id);
		}
		PQclear(r);
	}
	return pg_op_end(st, how, rc);
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

/* keep_body - the first PG_ATTEMPT_BODY_MAX bytes of an answer's body as text: bytes
 * that are not UTF-8, and NUL (which a text column cannot hold), as \xNN; a cut body
 * ends with a line saying so. As the SQLite store keeps it. */
static void keep_body(struct strbuf *out, const char *body, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *b = (const unsigned char *)body;
	size_t keep = len < PG_ATTEMPT_BODY_MAX ? len : PG_ATTEMPT_BODY_MAX, i = 0;
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
#define END_ATTEMPT                                                                                \
	"UPDATE attempts SET duration_ms = $2, http_status = $3, outcome = $4, error = $5, "       \
	"retry_after_ms = $6, rl_remaining = $7, rl_reset = $8, "                                  \
	"request = coalesce($9, request), body = $10 "
	static const char sql[] = END_ATTEMPT "WHERE id = $1";
	/* an attempt named by its job and number ($1, $11), checked by the server */
	static const char ref_sql[] =
	    "WITH u AS (" END_ATTEMPT "WHERE job_id = $1 AND attempt_no = $11 RETURNING 1) "
	    "SELECT segspool_expect((SELECT count(*) FROM u), 'cannot end attempt ' || $11 || "
	    "' of job ' || $1 || ': no such attempt')";
#undef END_ATTEMPT
	enum pg_wrap how;
	struct pg_params p;
	struct strbuf body = STRBUF_INIT;
	if (!end->outcome)
		return pg_fail(st, "cannot end attempt %" PRId64 ": no outcome given", attempt_id);
	if (pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_i64(&p, attempt_id & PG_REF_FLAG ? PG_REF_JOB(attempt_id) : attempt_id);
	pg_param_i64(&p, end->duration_ms);
	pg_param_i64_or_null(&p, end->http_status, 0);
	pg_param_text(&p, end->outcome);
	pg_param_text(&p, end->error);
	pg_param_i64_or_null(&p, end->retry_after_ms < 0 ? -1 : end->retry_after_ms, -1);
	pg_param_i64_or_null(&p, end->rl_remaining < 0 ? -1 : end->rl_remaining, -1);
	pg_param_text(&p, end->rl_reset);
	pg_param_text(&p, end->request);
	if (end->body && end->body_len)
		keep_body(&body, end->body, end->body_len);
	pg_param_text(&p, body.len ? body.buf : NULL);
	if (attempt_id & PG_REF_FLAG) {
		pg_param_i64(&p, PG_REF_NO(attempt_id));
		int rc = pg_write(st, ref_sql, &p, "record an attempt's outcome");
		sb_release(&body);
		return pg_op_end(st, how, rc);
	}
	int64_t n = pg_run(st, sql, &p, "record an attempt's outcome");
	sb_release(&body);
	int rc = n < 0 ? -1 : 0;
	if (n == 0)
		rc = pg_fail(st, "cannot end attempt %" PRId64 ": no such attempt", attempt_id);
	return pg_op_end(st, how, rc);
}

/* store_last_attempt - the job's last attempt: its status, error and kept body. */
int store_last_attempt(struct store *st, int64_t job_id, int *status, char **error, char **body)
{
	static const char sql[] = "SELECT http_status, error, body FROM attempts "
	                          "WHERE job_id = $1 ORDER BY id DESC LIMIT 1";
	struct pg_params p;
	*status = 0;
	*error = *body = NULL;
	PGresult *r = pg_query(st, sql, one_id(&p, job_id), "read a job's last attempt");
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found) {
		*status = (int)pg_get_i64(r, 0, 0, 0);
		*error = pg_get_dup(r, 0, 1);
		*body = pg_get_dup(r, 0, 2);
	}
	PQclear(r);
	return found ? 0 : 1;
}

/* store_attempt_resolved - what the attempt's references were resolved to. */
int store_attempt_resolved(struct store *st, int64_t attempt_id, const char *resolved_json)
{
	static const char sql[] = "UPDATE attempts SET resolved = $2 WHERE id = $1";
	static const char ref_sql[] =
	    "UPDATE attempts SET resolved = $2 WHERE job_id = $1 AND attempt_no = $3";
	enum pg_wrap how;
	struct pg_params p;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	one_id(&p, attempt_id & PG_REF_FLAG ? PG_REF_JOB(attempt_id) : attempt_id);
	pg_param_text(&p, resolved_json);
	if (attempt_id & PG_REF_FLAG)
		pg_param_i64(&p, PG_REF_NO(attempt_id));
	int rc = pg_write(st, attempt_id & PG_REF_FLAG ? ref_sql : sql, &p,
	                  "record an attempt's references");
	return pg_op_end(st, how, rc);
}

/* --- state changes --------------------------------------------------------------------- */

/* describe_states - "running", "running or waiting", "queued, running or waiting". */
static void describe_states(struct strbuf *sb, unsigned mask)
{
	int total = 0, seen = 0;
	for (int i = 0; i < JS_COUNT; i++)
		total += (mask & PG_BIT(i)) != 0;
	for (int i = 0; i < JS_COUNT; i++) {
		if (!(mask & PG_BIT(i)))
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
		if (mask == PG_BIT(i))
			return i;
	return -1;
}

/* pg_record_transition - the history row of a state change (from < 0: none). */
int pg_record_transition(struct store *st, int64_t id, int from, enum job_state to, int64_t now_ms,
                         const char *reason)
{
	static const char sql[] = "INSERT INTO transitions (job_id, from_state, to_state, at_ms, "
	                          "reason) VALUES ($1, $2, $3, $4, $5)";
	struct pg_params p;
	one_id(&p, id);
	pg_param_i64_or_null(&p, from, -1);
	pg_param_i64(&p, (int64_t)to);
	pg_param_i64(&p, now_ms);
	pg_param_text(&p, reason);
	return pg_write(st, sql, &p, "record a state change");
}

/* change_params - a state change's parameters (PG_FROM_STATE's $1..$5: from -1 is any),
 * then extra's values, leaving room for keep more after them. */
static void change_params(struct store *st, struct pg_params *p, int64_t id, int from,
                          enum job_state to, const struct pg_params *extra, int64_t now_ms,
                          int keep)
{
	one_id(p, id);
	pg_param_i64(p, now_ms);
	pg_param_i64(p, (int64_t)to);
	pg_param_i64_or_null(p, from, -1);
	pg_param_i64_or_null(p, st->node_id, 0);
	for (int i = 0; extra && i < extra->n && p->n < PG_PARAMS_MAX - keep; i++)
		p->v[p->n++] = extra->v[i];
}

/* run_change - the update of a state change from `from` (-1: any), with extra's values. */
static int64_t run_change(struct store *st, int64_t id, int from, enum job_state to,
                          const char *sql, const struct pg_params *extra, int64_t now_ms)
{
	struct pg_params p;
	change_params(st, &p, id, from, to, extra, now_ms, 0);
	return pg_run(st, sql, &p, "change a job's state");
}

/* fenced_sql - sql (an update ending in PG_FROM_STATE, its own values from $6 on) as one
 * statement that also writes the transitions row and raises segspool_fence's error
 * unless it changed the job: the pipeline cannot wait for its row count. Built once per
 * statement (the callers' texts are static), kept for good: pg_query finds a statement
 * by its text's address. */
static const char *fenced_sql(const char *sql, int nextra)
{
	static struct {
		const char *sql;
		char *fenced;
	} made[16];
	static size_t nmade;
	for (size_t i = 0; i < nmade; i++)
		if (made[i].sql == sql)
			return made[i].fenced;
	struct strbuf sb = STRBUF_INIT;
	int reason = 6 + nextra, verb = reason + 1;
	sb_addf(&sb,
	        "WITH c AS (%s RETURNING id), t AS (INSERT INTO transitions (job_id, from_state, "
	        "to_state, at_ms, reason) SELECT id, $4::int, $3::int, $2::bigint, $%d::text "
	        "FROM c) SELECT segspool_fence((SELECT count(*) FROM c), $1::bigint, "
	        "$5::bigint, $%d::text)",
	        sql, reason, verb);
	if (nmade == ARRAY_SIZE(made))
		die("pg_jobs.c: more fenced statements than fenced_sql keeps (%zu)", nmade);
	made[nmade].sql = sql;
	made[nmade].fenced = sb_detach(&sb, NULL);
	return made[nmade++].fenced;
}

/* change_piped - pg_change_state from the one state `from`, in the pipeline: sent, its
 * check and transitions row in the statement itself. */
static int change_piped(struct store *st, int64_t id, int from, enum job_state to, const char *sql,
                        const struct pg_params *extra, const char *verb, const char *reason,
                        int64_t now_ms)
{
	struct pg_params p;
	int nextra = extra ? extra->n : 0;
	change_params(st, &p, id, from, to, extra, now_ms, 2);
	pg_param_text(&p, reason);
	pg_param_text(&p, verb);
	return pg_pipe_send(st, fenced_sql(sql, nextra), &p, PG_PEND_WRITE, "change a job's state");
}

/* pg_change_state - see pg_int.h. When one state is allowed the update checks it itself
 * and the job is read only to explain a refusal: that is the scheduler's every success
 * and wait. Else the job's row is read locked, so the state it moves from is the one
 * its transitions row records. */
int pg_change_state(struct store *st, int64_t id, unsigned allowed, enum job_state to,
                    const char *sql, const struct pg_params *extra, const char *verb,
                    const char *reason, int64_t now_ms)
{
	static const char read_sql[] = "SELECT state, owner FROM jobs WHERE id = $1";
	static const char lock_sql[] =
	    "SELECT state, owner FROM jobs WHERE id = $1 FOR NO KEY UPDATE";
	int only = only_state(allowed);
	struct pg_params p;
	if (only == JS_RUNNING && st->pipe.on && st->node_id) /* this node's own job */
		return change_piped(st, id, only, to, sql, extra, verb, reason, now_ms);
	if (only >= 0) {
		int64_t n = run_change(st, id, only, to, sql, extra, now_ms);
		if (n < 0)
			return -1;
		if (n == 1)
			return pg_record_transition(st, id, only, to, now_ms, reason);
		/* not changed: say why below */
	}
	PGresult *r =
	    pg_query(st, only >= 0 ? read_sql : lock_sql, one_id(&p, id), "read a job's state");
	if (!r)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return pg_fail(st, "cannot %s job %" PRId64 ": no such job", verb, id);
	}
	enum job_state from = (enum job_state)pg_get_i64(r, 0, 0, 0);
	int64_t owner = pg_get_i64(r, 0, 1, 0);
	PQclear(r);
	/* a node's running job found queued was taken back by a rescue: nothing else
	 * queues a running job */
	if (only == JS_RUNNING && from == JS_QUEUED && st->node_id)
		return pg_fail(st, "lease lost: job %" PRId64 " was taken back from this daemon",
		               id);
	if (!(allowed & PG_BIT(from))) {
		pg_fail(st, "cannot %s job %" PRId64 ": it is %s, not ", verb, id,
		        job_state_name(from));
		describe_states(&st->err, allowed);
		return 1;
	}
	if (from == JS_RUNNING && st->node_id && owner != st->node_id)
		return pg_fail(st, "lease lost: job %" PRId64 " is claimed by another daemon", id);
	if (only >= 0) /* it is in the state the update looked for, yet nothing changed */
		return pg_fail(st, "cannot %s job %" PRId64 ": the update changed nothing", verb,
		               id);
	int64_t n = run_change(st, id, (int)from, to, sql, extra, now_ms);
	if (n < 0)
		return -1;
	if (n != 1)
		return pg_fail(st, "cannot %s job %" PRId64 ": the update changed nothing", verb,
		               id);
	return pg_record_transition(st, id, (int)from, to, now_ms, reason);
}

/* pg_strict - a state change the scheduler asked for: being in the wrong state is an
 * error (-1) for it, not a "no" as for the CLI's retry and cancel. */
int pg_strict(int rc)
{
	return rc > 0 ? -1 : rc;
}

/* store_job_succeed - running -> succeeded; see store.h. */
int store_job_succeed(struct store *st, int64_t id, const struct job_success *ok, int64_t now_ms)
{
	static const char sql[] = "UPDATE jobs SET state = $3, updated_ms = $2, finished_ms = $2, "
	                          "owner = NULL, result_json = $6, attempts = attempts + $7, "
	                          "output_path = coalesce($8, output_path) " PG_FROM_STATE;
	enum pg_wrap how;
	struct pg_params p;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_text(&p, ok->result_json);
	pg_param_i64(&p, ok->count_attempt ? 1 : 0);
	pg_param_text(&p, ok->output_path);
	int rc = pg_strict(pg_change_state(st, id, PG_BIT(JS_RUNNING), JS_SUCCEEDED, sql, &p,
	                                   "mark succeeded", NULL, now_ms));
	if (rc == 0)
		rc = pg_deps_succeeded(st, id, now_ms);
	return pg_op_end(st, how, rc);
}

/* store_job_wait - running -> waiting until next_run_ms. */
int store_job_wait(struct store *st, int64_t id, int64_t next_run_ms, int count_attempt,
                   enum job_wait why, const char *reason, int64_t now_ms)
{
	static const char sql[] = "UPDATE jobs SET state = $3, updated_ms = $2, owner = NULL, "
	                          "next_run_ms = $6, attempts = attempts + $7, "
	                          "waiting_for = $8 " PG_FROM_STATE;
	enum pg_wrap how;
	struct pg_params p;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_i64(&p, next_run_ms);
	pg_param_i64(&p, count_attempt ? 1 : 0);
	pg_param_i64(&p, (int64_t)why);
	int rc = pg_strict(pg_change_state(st, id, PG_BIT(JS_RUNNING), JS_WAITING, sql, &p,
	                                   "put to wait", reason, now_ms));
	struct pg_pipe *pp = &st->pipe;
	if (pp->on && rc == 0 && (!pp->next_due_ms || next_run_ms < pp->next_due_ms))
		pp->next_due_ms = next_run_ms; /* no claim asks before it is due */
	return pg_op_end(st, how, rc);
}

/* the update of a job's end (failed, dead, cancelled; and a lost output's failure) */
static const char job_end_sql[] = "UPDATE jobs SET state = $3, updated_ms = $2, "
                                  "finished_ms = $2, owner = NULL, error_json = $6 " PG_FROM_STATE;

/* store_job_end - running|waiting|queued -> failed, dead or cancelled. */
int store_job_end(struct store *st, int64_t id, enum job_state to, const char *error_json,
                  const char *reason, int64_t now_ms)
{
	enum pg_wrap how;
	struct pg_params p;
	if (to != JS_FAILED && to != JS_DEAD && to != JS_CANCELLED)
		return pg_fail(st,
		               "cannot end job %" PRId64 " as %s: only failed, dead or cancelled",
		               id, job_state_name(to));
	if (pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_text(&p, error_json);
	int rc = pg_strict(
	    pg_change_state(st, id, PG_BIT(JS_RUNNING) | PG_BIT(JS_WAITING) | PG_BIT(JS_QUEUED), to,
	                    job_end_sql, &p, "end", reason, now_ms));
	if (rc == 0)
		rc = pg_deps_ended(st, id, now_ms);
	return pg_op_end(st, how, rc);
}

/* store_job_output_lost - succeeded -> failed in the same transaction, result kept. */
int store_job_output_lost(struct store *st, int64_t id, const char *error_json, const char *reason,
                          int64_t now_ms)
{
	enum pg_wrap how;
	struct pg_params p;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	pg_params_init(&p);
	pg_param_text(&p, error_json);
	int rc = pg_strict(pg_change_state(st, id, PG_BIT(JS_SUCCEEDED), JS_FAILED, job_end_sql, &p,
	                                   "fail", reason, now_ms));
	if (rc == 0)
		rc = pg_deps_unsucceeded(st, id, now_ms);
	return pg_op_end(st, how, rc);
}

/* store_wake_waiters - waiting jobs that wait for `why` are due now; how many, or -1.
 * Other nodes hear of them (NOTIFY at the commit). */
int64_t store_wake_waiters(struct store *st, enum job_wait why, int64_t now_ms)
{
	static const char sql[] =
	    "UPDATE jobs SET next_run_ms = $1 WHERE state = 2 "
	    "AND next_run_ms > $1 AND next_run_ms < " PARKED_TEXT " AND waiting_for = $2";
	enum pg_wrap how;
	struct pg_params p;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	one_id(&p, now_ms);
	pg_param_i64(&p, (int64_t)why);
	int64_t n = pg_run(st, sql, &p, "wake waiting jobs");
	if (n > 0)
		st->notify_pending = 1;
	return pg_op_end(st, how, n < 0 ? -1 : 0) < 0 ? -1 : n;
}

/* store_job_requeue - running -> queued, keeping its place (next_run_ms) in the queue. */
int store_job_requeue(struct store *st, int64_t id, const char *reason, int64_t now_ms)
{
	static const char sql[] =
	    "UPDATE jobs SET state = $3, updated_ms = $2, owner = NULL " PG_FROM_STATE;
	enum pg_wrap how;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	int rc = pg_strict(pg_change_state(st, id, PG_BIT(JS_RUNNING), JS_QUEUED, sql, NULL,
	                                   "requeue", reason, now_ms));
	if (rc == 0)
		st->notify_pending = 1;
	return pg_op_end(st, how, rc);
}

/* one_update - an update of one job's row by id ($1) and value ($2, unless NULL is
 * not wanted: has_value 0), in the call's own transaction or the caller's. */
static int one_update(struct store *st, const char *sql, int64_t id, int has_value,
                      const char *value, const char *what)
{
	enum pg_wrap how;
	struct pg_params p;
	if (pg_op_begin(st, &how) < 0)
		return -1;
	one_id(&p, id);
	if (has_value)
		pg_param_text(&p, value);
	int rc = pg_write(st, sql, &p, what);
	return pg_op_end(st, how, rc);
}

/* store_job_count_attempt - the attempt that ended the job counts against max_attempts. */
int store_job_count_attempt(struct store *st, int64_t id)
{
	static const char sql[] = "UPDATE jobs SET attempts = attempts + 1 WHERE id = $1";
	return one_update(st, sql, id, 0, NULL, "count an attempt");
}

/* store_job_set_result - keeps a response's data without changing the job's state. */
int store_job_set_result(struct store *st, int64_t id, const char *result_json)
{
	static const char sql[] = "UPDATE jobs SET result_json = $2 WHERE id = $1";
	return one_update(st, sql, id, 1, result_json, "record a job's result");
}

/* one_text - the text column a statement reads of job id (malloc'd, NULL if none). */
static int one_text(struct store *st, const char *sql, int64_t id, char **out, const char *what)
{
	struct pg_params p;
	*out = NULL;
	PGresult *r = pg_query(st, sql, one_id(&p, id), what);
	if (!r)
		return -1;
	if (PQntuples(r) > 0)
		*out = pg_get_dup(r, 0, 0);
	PQclear(r);
	return 0;
}

/* store_job_result - the stored result (malloc'd, NULL if none). 0, or -1. */
int store_job_result(struct store *st, int64_t id, char **result_json)
{
	static const char sql[] = "SELECT result_json FROM jobs WHERE id = $1";
	return one_text(st, sql, id, result_json, "read a job's result");
}

/* store_job_error - the stored error, malloc'd, or NULL. */
int store_job_error(struct store *st, int64_t id, char **error_json)
{
	static const char sql[] = "SELECT error_json FROM jobs WHERE id = $1";
	return one_text(st, sql, id, error_json, "read a job's error");
}
