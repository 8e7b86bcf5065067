/* test_pg_pipe.c - the PostgreSQL store's pipeline (store_async_start), through store.h: a
 * commit is sent and answered later (durable, and seen by others, only then); a claim is
 * sent ahead and its rows handed out by a later call; a write whose check fails (the job
 * taken back, claimed by another node, an attempt gone) fails at its answer with the
 * reason, nothing of its transaction kept and every later call refused; an attempt begun
 * in the pipeline is named by a reference its end and references accept; the files a
 * commit left due and the cancels asked for arrive with later answers; a read in the
 * middle sees the writes sent before it. Needs a database (SEGSPOOL_TEST_PG or
 * SEGSPOOL_TEST_PG_FILE, as test_pg.c); skipped without one (exit 77). */
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "store_fixture.h"
#include "strbuf.h"
#include "testlib.h"
#include "util.h"

#include "pg_node_fixture.h"

#define LEASE_MS 30000

static struct strbuf schema = STRBUF_INIT; /* of the last fresh() store, for admin SQL */

/* has - s holds sub. */
static int has(const char *s, const char *sub)
{
	return s && strstr(s, sub) != NULL;
}

/* in_schema - sql with each '@' the store's schema. */
static void in_schema(const char *sql, struct strbuf *out)
{
	for (const char *p = sql; *p; p++)
		if (*p == '@')
			sb_adds(out, schema.buf);
		else
			sb_addch(out, *p);
}

/* admin_value - the first value of sql (in_schema) on the fixture's connection,
 * malloc'd ("" for no row, "(null)" for NULL). */
static char *admin_value(const char *text)
{
	struct strbuf sql = STRBUF_INIT;
	in_schema(text, &sql);
	PGresult *r = PQexec(pg_admin, sql.buf);
	char *v;
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		v = xstrdup(PQerrorMessage(pg_admin));
	else if (PQntuples(r) == 0)
		v = xstrdup("");
	else
		v = xstrdup(PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
	PQclear(r);
	sb_release(&sql);
	return v;
}

/* admin_is - admin_value(text) is want. */
static int admin_is(const char *text, const char *want)
{
	char *v = admin_value(text);
	int same = strcmp(v, want) == 0;
	if (!same)
		fprintf(stderr, "admin: %s gave \"%s\", expected \"%s\"\n", text, v, want);
	free(v);
	return same;
}

/* admin_run - sql (in_schema) on the fixture's connection, or the test exits. */
static void admin_run(const char *text)
{
	struct strbuf sql = STRBUF_INIT;
	in_schema(text, &sql);
	pg_admin_exec(sql.buf);
	sb_release(&sql);
}

/* fresh - a new store named name, its schema remembered for admin_*. */
static struct store *fresh(const char *name)
{
	sb_reset(&schema);
	pg_schema_of(name, &schema);
	return open_fresh(name);
}

/* piped - st with its pipeline started. */
static struct store *piped(struct store *st)
{
	int rc = store_async_start(st);
	CHECK_INT(rc, 0);
	if (rc) {
		fprintf(stderr, "store_async_start: %s\n", store_errmsg(st));
		exit(1);
	}
	CHECK(store_async_fd(st) >= 0);
	return st;
}

/* await_events - polls st (its socket watched meanwhile) until one of mask has come or
 * 5 s passed: the events seen in all, or -1 when a poll failed. */
static int await_events(struct store *st, int mask)
{
	int seen = 0;
	for (int i = 0; i < 100; i++) {
		int ev = store_async_poll(st);
		if (ev < 0)
			return -1;
		seen |= ev;
		if (seen & mask)
			return seen;
		struct pollfd p = {.fd = store_async_fd(st), .events = POLLIN};
		poll(&p, 1, 50);
	}
	return seen;
}

/* claim_rows - store_claim_due in the pipeline: the first call sends the claim (0), its
 * rows come (STORE_ASYNC_CLAIMED), the next call hands them out. How many, or -1. */
static int claim_rows(struct store *st, int64_t now_ms, struct job_row *rows, int max)
{
	CHECK_INT(store_claim_due(st, now_ms, rows, max), 0);
	int ev = await_events(st, STORE_ASYNC_CLAIMED);
	CHECK(ev > 0 && (ev & STORE_ASYNC_CLAIMED));
	return store_claim_due(st, now_ms, rows, max);
}

/* release_rows - the rows' strings. */
static void release_rows(struct job_row *rows, int n)
{
	for (int i = 0; i < n; i++)
		job_row_release(&rows[i]);
}

/* outcomes - a job's attempts as "NO:OUTCOME", joined by "," ("-" while open) */
static int add_outcome(const struct attempt_rec *a, void *arg)
{
	struct strbuf *sb = arg;
	sb_addf(sb, "%s%" PRId64 ":%s", sb->len ? "," : "", a->attempt_no,
	        a->outcome ? a->outcome : "-");
	return 0;
}

static char *outcomes(struct store *st, int64_t id)
{
	struct strbuf sb = STRBUF_INIT;
	CHECK_INT(store_attempts_foreach(st, id, add_outcome, &sb), 0);
	return sb_detach(&sb, NULL);
}

/* outcomes_are - outcomes(st, id) is want. */
static int outcomes_are(struct store *st, int64_t id, const char *want)
{
	char *o = outcomes(st, id);
	int same = strcmp(o, want) == 0;
	if (!same)
		fprintf(stderr, "job %" PRId64 "'s attempts: \"%s\", expected \"%s\"\n", id, o,
		        want);
	free(o);
	return same;
}

/* commit_answered - a commit sent, pending, then answered (STORE_ASYNC_COMMITTED): the
 * events seen since the last poll, or -1. */
static int commit_answered(struct store *st)
{
	if (store_commit(st) < 0) {
		fprintf(stderr, "commit: %s\n", store_errmsg(st));
		return -1;
	}
	CHECK_INT(store_commits_pending(st), 1);
	int rc = store_async_wait(st);
	CHECK_INT(rc, 0);
	if (rc) {
		fprintf(stderr, "wait: %s\n", store_errmsg(st));
		return -1;
	}
	CHECK_INT(store_commits_pending(st), 0);
	int ev = store_async_poll(st);
	CHECK(ev >= 0 && (ev & STORE_ASYNC_COMMITTED));
	return ev;
}

/* keep_resolved - the resolved references of a job's first attempt, into *arg (malloc'd,
 * "" for none) */
static int keep_resolved(const struct attempt_rec *a, void *arg)
{
	char **out = arg;
	if (!*out)
		*out = xstrdup(a->resolved ? a->resolved : "");
	return 0;
}

static const struct attempt_end ended_ok = {200, NULL, "ok", 12, -1, -1, NULL, NULL, NULL, 0};

TEST(test_commit_answered_later)
{
	struct store *a = piped(node(fresh("commit_later"), "host:a", LEASE_MS));
	struct store *b = second();
	struct job_new j = new_job("listSources", "k1", 0, 0);
	struct job_row row;
	int64_t id = 0, att = 0;

	/* an ingest: the commit goes out and is pending until its answer is read */
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_job_insert(a, &j, 1000, &id), STORE_INSERTED);
	CHECK(id > 0);
	CHECK_INT(store_commit(a), 0);
	CHECK_INT(store_commits_pending(a), 1);
	int ev = await_events(a, STORE_ASYNC_COMMITTED);
	CHECK(ev > 0 && (ev & STORE_ASYNC_COMMITTED));
	CHECK_INT(store_commits_pending(a), 0);
	CHECK_INT(state_of(b, id), JS_QUEUED);

	/* a commit the server cannot answer yet (another session holds the job's row): sent,
	 * pending, unseen by others, and durable once answered */
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(claim_rows(a, 2000, &row, 1), 1);
	CHECK_INT(row.id, id);
	job_row_release(&row);
	CHECK(commit_answered(a) >= 0);
	admin_run("BEGIN; SELECT 1 FROM @.jobs FOR UPDATE");
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_attempt_begin(a, id, 1, 2100, "GET /sources", &att), 0);
	CHECK_INT(store_attempt_end(a, att, &ended_ok), 0);
	struct job_success ok = {"{\"n\":1}", NULL, 1};
	CHECK_INT(store_job_succeed(a, id, &ok, 2200), 0);
	CHECK_INT(store_commit(a), 0);
	CHECK_INT(store_commits_pending(a), 1);
	usleep(200 * 1000);
	ev = store_async_poll(a);
	CHECK(ev >= 0 && !(ev & STORE_ASYNC_COMMITTED));
	CHECK_INT(store_commits_pending(a), 1);
	CHECK_INT(state_of(b, id), JS_RUNNING);
	CHECK(outcomes_are(b, id, ""));
	pg_admin_exec("COMMIT");
	CHECK_INT(store_async_wait(a), 0);
	CHECK_INT(store_commits_pending(a), 0);
	CHECK_INT(state_of(b, id), JS_SUCCEEDED);
	CHECK(outcomes_are(b, id, "1:ok"));
	CHECK_INT(store_async_poll(a) & STORE_ASYNC_COMMITTED, STORE_ASYNC_COMMITTED);
	CHECK_INT(store_async_poll(a), 0); /* said once */

	/* two commits in flight at once (the first held up as above): both counted, the
	 * second transaction begun and written meanwhile, both answered in turn */
	char *resolved = NULL;
	admin_run("BEGIN; SELECT 1 FROM @.attempts FOR UPDATE");
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_attempt_resolved(a, att, "{\"x\":1}"), 0);
	CHECK_INT(store_commit(a), 0);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_attempt_resolved(a, att, "{\"x\":2}"), 0);
	CHECK_INT(store_commit(a), 0);
	CHECK_INT(store_commits_pending(a), 2);
	usleep(100 * 1000);
	ev = store_async_poll(a);
	CHECK(ev >= 0 && !(ev & STORE_ASYNC_COMMITTED));
	CHECK_INT(store_commits_pending(a), 2);
	pg_admin_exec("COMMIT");
	CHECK_INT(store_async_wait(a), 0);
	CHECK_INT(store_commits_pending(a), 0);
	CHECK_INT(store_attempts_foreach(b, id, keep_resolved, &resolved), 0);
	CHECK_STR(resolved, "{\"x\":2}");
	free(resolved);
	store_close(b);
	store_close(a);
}

TEST(test_claim_sent_ahead)
{
	struct store *a = node(fresh("claim_ahead"), "host:a", LEASE_MS);
	struct store *b = node(second(), "host:b", LEASE_MS);
	struct job_row rows[4] = {0};
	int64_t ids[4];
	for (int i = 0; i < 4; i++) {
		struct job_new j = new_job("listSources", NULL, i < 3, 0);
		ids[i] = insert(a, &j, 1000);
		CHECK(ids[i] > 0);
	}
	piped(a);

	/* outside a transaction: refused, and the store still works */
	CHECK_INT(store_claim_due(a, 2000, rows, 4), -1);
	CHECK_STR(store_errmsg(a), "cannot claim jobs: no transaction is open");

	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_claim_due(a, 2000, rows, 4), 0); /* sent */
	CHECK_INT(store_claim_due(a, 2000, rows, 4), 0); /* one claim at a time */
	int ev = await_events(a, STORE_ASYNC_CLAIMED);
	CHECK(ev > 0 && (ev & STORE_ASYNC_CLAIMED));
	/* the highest priority's jobs, handed out in the claim's order, fewer than asked
	 * when so */
	CHECK_INT(store_claim_due(a, 2000, rows, 2), 2);
	CHECK_INT(rows[0].id, ids[0]);
	CHECK_INT(rows[1].id, ids[1]);
	CHECK_INT(rows[0].state, JS_RUNNING);
	CHECK_INT(rows[1].state, JS_RUNNING);
	release_rows(rows, 2);
	CHECK_INT(store_claim_due(a, 2000, rows, 4), 1);
	CHECK_INT(rows[0].id, ids[2]);
	CHECK_INT(rows[0].priority, 1);
	release_rows(rows, 1);
	/* the rows are a's till it commits: b finds only the one left */
	CHECK_INT(store_claim_due(b, 2000, rows, 4), 1);
	CHECK_INT(rows[0].id, ids[3]);
	release_rows(rows, 1);
	CHECK_INT(store_job_requeue(b, ids[3], "given back", 2000), 0);
	/* that priority had fewer than asked: the next claim looks below it */
	CHECK_INT(store_claim_due(a, 2000, rows, 4), 0);
	ev = await_events(a, STORE_ASYNC_CLAIMED);
	CHECK(ev > 0 && (ev & STORE_ASYNC_CLAIMED));
	CHECK_INT(store_claim_due(a, 2000, rows, 4), 1);
	CHECK_INT(rows[0].id, ids[3]);
	CHECK_INT(rows[0].priority, 0);
	release_rows(rows, 1);
	/* none left: the claims come back empty */
	for (int round = 0; round < 2; round++) {
		CHECK_INT(store_claim_due(a, 2000, rows, 4), 0);
		ev = await_events(a, STORE_ASYNC_CLAIMED);
		CHECK(ev > 0 && (ev & STORE_ASYNC_CLAIMED));
		CHECK_INT(store_claim_due(a, 2000, rows, 4), 0);
	}
	CHECK(commit_answered(a) >= 0);
	CHECK(admin_is("SELECT count(*) FROM @.jobs j JOIN @.nodes n ON n.id = j.owner "
	               "WHERE j.state = 1 AND n.name = 'host:a' AND n.dead = 0",
	               "4"));
	for (int i = 0; i < 4; i++)
		CHECK_INT(state_of(b, ids[i]), JS_RUNNING);
	CHECK_INT(store_claim_due(b, 2000, rows, 4), 0);

	/* the next due time comes with each claim's answer */
	struct job_new later = new_job("listSources", NULL, 0, 5000);
	CHECK(insert(a, &later, 3000) > 0);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_claim_due(a, 3000, rows, 4), 0);
	CHECK_INT(store_next_due_ms(a), 0); /* not known while the claim is out */
	ev = await_events(a, STORE_ASYNC_CLAIMED);
	CHECK(ev > 0 && (ev & STORE_ASYNC_CLAIMED));
	CHECK_INT(store_next_due_ms(a), 5000);
	CHECK_INT(store_claim_due(a, 3000, rows, 4), 0); /* none due */
	CHECK(commit_answered(a) >= 0);
	store_close(b);
	store_close(a);
}

/* failed_for_good - st's pipeline failed with the first failure's message holding why,
 * and every later call fails, keeping it. */
static void failed_for_good(struct store *st, const char *why, int64_t id)
{
	struct job_row row;
	int64_t att = 0;
	struct job_success ok = {"{}", NULL, 1};
	CHECK(has(store_errmsg(st), why));
	CHECK_INT(store_async_poll(st), -1);
	CHECK_INT(store_async_wait(st), -1);
	CHECK_INT(store_begin(st), -1);
	CHECK_INT(store_claim_due(st, 9000, &row, 1), -1);
	CHECK_INT(store_get(st, id, &row), -1);
	CHECK_INT(store_attempt_begin(st, id, 9, 9000, "GET /x", &att), -1);
	CHECK_INT(store_job_succeed(st, id, &ok, 9000), -1);
	CHECK(has(store_errmsg(st), why));
	if (!has(store_errmsg(st), why))
		fprintf(stderr, "after the failure: %s\n", store_errmsg(st));
}

TEST(test_fence_taken_back)
{
	struct store *a = node(fresh("fence_taken"), "host:a", 200);
	struct store *b = node(second(), "host:b", LEASE_MS);
	struct job_new m = new_job("createSource", NULL, 0, 0),
	               r = new_job("listSources", NULL, 0, 0);
	struct job_row rows[2] = {0};
	int64_t att[2] = {0, 0};
	m.mutates = 1;
	int64_t mid = insert(a, &m, 1000), rid = insert(a, &r, 1000);
	piped(a);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(claim_rows(a, 2000, rows, 2), 2);
	CHECK_INT(rows[0].id, mid);
	CHECK_INT(rows[1].id, rid);
	release_rows(rows, 2);
	CHECK_INT(store_attempt_begin(a, mid, 1, 2000, "POST /sources", &att[0]), 0);
	CHECK_INT(store_attempt_begin(a, rid, 1, 2000, "GET /sources", &att[1]), 0);
	CHECK(commit_answered(a) >= 0);
	CHECK(outcomes_are(b, mid, "1:-"));

	usleep(400 * 1000); /* a's lease runs out: b takes its jobs back */
	CHECK_INT(store_heartbeat(b, 3000), 0);
	CHECK_INT(store_rescue(b, 3000), 2);
	CHECK_INT(state_of(b, mid), JS_QUEUED);
	CHECK(outcomes_are(b, mid, "1:unknown"));

	/* a, not knowing, records r's answer and m's success in one transaction: sent, the
	 * commit too, and refused at the answer */
	struct job_new late = new_job("listSources", "late", 0, 0);
	int64_t lid = 0;
	struct job_success ok = {"{}", NULL, 1};
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_job_insert(a, &late, 3100, &lid), STORE_INSERTED);
	CHECK_INT(store_attempt_end(a, att[1], &ended_ok), 0);
	CHECK_INT(store_attempt_end(a, att[0], &ended_ok), 0);
	CHECK_INT(store_job_succeed(a, mid, &ok, 3100), 0);
	CHECK_INT(store_commit(a), 0);
	CHECK_INT(store_async_wait(a), -1);
	struct strbuf want = STRBUF_INIT;
	sb_addf(&want, "lease lost: job %" PRId64 " was taken back from this daemon", mid);
	CHECK(has(store_errmsg(a), want.buf));
	if (!has(store_errmsg(a), want.buf))
		fprintf(stderr, "the failure: %s\n", store_errmsg(a));
	failed_for_good(a, want.buf, mid);

	/* nothing of that transaction is kept */
	CHECK_INT(state_of(b, mid), JS_QUEUED);
	CHECK(outcomes_are(b, mid, "1:unknown"));
	CHECK(outcomes_are(b, rid, "1:interrupted"));
	CHECK_INT(store_key_recorded(b, "late"), 0);
	CHECK_INT(store_count_active(b), 2);
	sb_release(&want);
	store_close(a);
	store_close(b);
}

TEST(test_fence_claimed_by_another)
{
	struct store *a = node(fresh("fence_other"), "host:a", LEASE_MS);
	struct store *b = node(second(), "host:b", LEASE_MS);
	struct job_new j = new_job("listSources", NULL, 0, 0);
	struct job_row row;
	int64_t att = 0, id = insert(a, &j, 1000);
	piped(a);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(claim_rows(a, 2000, &row, 1), 1);
	CHECK_INT(row.id, id);
	job_row_release(&row);
	CHECK(commit_answered(a) >= 0);
	/* the row says b runs it now */
	admin_run("UPDATE @.jobs SET owner = (SELECT id FROM @.nodes WHERE name = 'host:b')");
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_attempt_begin(a, id, 1, 2100, "GET /sources", &att), 0); /* sent */
	CHECK_INT(store_commit(a), 0);
	CHECK_INT(store_commits_pending(a), 1);
	int ev = await_events(a, STORE_ASYNC_COMMITTED);
	CHECK_INT(ev, -1);
	struct strbuf want = STRBUF_INIT;
	sb_addf(&want, "lease lost: job %" PRId64 " is claimed by another daemon", id);
	CHECK(has(store_errmsg(a), want.buf));
	if (!has(store_errmsg(a), want.buf))
		fprintf(stderr, "the failure: %s\n", store_errmsg(a));
	failed_for_good(a, want.buf, id);
	CHECK(outcomes_are(b, id, ""));
	CHECK_INT(state_of(b, id), JS_RUNNING);
	sb_release(&want);
	store_close(a);
	store_close(b);
}

TEST(test_attempt_refs)
{
	struct store *a = piped(node(fresh("attempt_refs"), "host:a", LEASE_MS));
	struct store *b = second();
	struct job_new j = new_job("listSources", NULL, 0, 0),
	               k = new_job("listSources", NULL, 0, 0);
	struct job_row rows[2] = {0};
	int64_t att = 0, att2 = 0;
	int64_t id = insert(a, &j, 1000), kid = insert(a, &k, 1000);
	CHECK(id > 0 && kid > 0);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(claim_rows(a, 2000, rows, 2), 2);
	release_rows(rows, 2);
	/* begun, ended, its references recorded, all before any answer */
	CHECK_INT(store_attempt_begin(a, id, 1, 2000, "GET /sources", &att), 0);
	CHECK_INT(store_attempt_begin(a, kid, 1, 2000, "GET /sources", &att2), 0);
	CHECK(att != 0 && att2 != 0 && att != att2);
	CHECK_INT(store_attempt_resolved(a, att, "{\"$ref\":\"x\"}"), 0);
	struct attempt_end retry = {503, "unavailable", "retry", 30, 1000, 7, NULL, NULL, NULL, 0};
	CHECK_INT(store_attempt_end(a, att, &retry), 0);
	CHECK_INT(store_job_wait(a, id, 5000, 1, JW_BACKOFF, "503", 2100), 0);
	CHECK(commit_answered(a) >= 0);
	CHECK(outcomes_are(b, id, "1:retry"));
	CHECK(outcomes_are(b, kid, "1:-")); /* att2 not ended: only its own attempt changed */
	int status = 0;
	char *error = NULL, *body = NULL, *resolved = NULL;
	CHECK_INT(store_last_attempt(b, id, &status, &error, &body), 0);
	CHECK_INT(status, 503);
	CHECK_STR(error, "unavailable");
	free(error);
	free(body);
	CHECK_INT(store_attempts_foreach(b, id, keep_resolved, &resolved), 0);
	CHECK_STR(resolved, "{\"$ref\":\"x\"}");
	free(resolved);

	/* a reference kept across commits still names its attempt */
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_attempt_end(a, att2, &ended_ok), 0);
	CHECK(commit_answered(a) >= 0);
	CHECK(outcomes_are(b, kid, "1:ok"));

	/* outside a transaction an attempt is recorded at once: its id works as well */
	int64_t own = 0;
	CHECK_INT(store_attempt_begin(a, kid, 2, 2200, "GET /sources", &own), 0);
	CHECK(own > 0);
	CHECK_INT(store_attempt_end(a, own, &ended_ok), 0);
	CHECK_INT(store_commits_pending(a), 0);
	CHECK(outcomes_are(b, kid, "1:ok,2:ok"));

	/* a reference to an attempt no longer there fails at its answer, said */
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(claim_rows(a, 6000, rows, 1), 1);
	CHECK_INT(rows[0].id, id);
	release_rows(rows, 1);
	CHECK_INT(store_attempt_begin(a, id, 2, 6000, "GET /sources", &att), 0);
	CHECK(commit_answered(a) >= 0);
	CHECK(outcomes_are(b, id, "1:retry,2:-"));
	admin_run("DELETE FROM @.attempts WHERE attempt_no = 2");
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_attempt_end(a, att, &ended_ok), 0);
	CHECK_INT(store_commit(a), 0);
	CHECK_INT(store_async_wait(a), -1);
	struct strbuf want = STRBUF_INIT;
	sb_addf(&want, "cannot end attempt 2 of job %" PRId64 ": no such attempt", id);
	CHECK(has(store_errmsg(a), want.buf));
	if (!has(store_errmsg(a), want.buf))
		fprintf(stderr, "the failure: %s\n", store_errmsg(a));
	sb_release(&want);
	store_close(b);
	store_close(a);
}

/* file_seen - the files store_files_results_due listed */
struct file_seen {
	int64_t id, remaining;
	int n;
};

static int note_file(const struct file_rec *f, void *arg)
{
	struct file_seen *fs = arg;
	fs->id = f->id;
	fs->remaining = f->remaining;
	fs->n++;
	return 0;
}

/* due_files - how many files store_files_results_due gives now (the last in *fs). */
static int due_files(struct store *st, struct file_seen *fs)
{
	memset(fs, 0, sizeof(*fs));
	CHECK_INT(store_files_results_due(st, note_file, fs), 0);
	return fs->n;
}

TEST(test_files_due_arrive)
{
	struct store *a = piped(node(fresh("files_due"), "host:a", LEASE_MS));
	struct store_file_id fid = {.dev = 1, .ino = 2, .ctime_ns = 3, .size = 4};
	struct file_seen fs;
	struct job_row rows[2] = {0};
	int64_t file = 0, ids[2], att = 0;
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_file_begin(a, "batch.jsonl", "hash", &fid, 1000, 2, 1, &file), 0);
	CHECK(file > 0);
	for (int i = 0; i < 2; i++) {
		struct job_new j = new_job("listSources", NULL, 0, 0);
		j.file_id = file;
		j.line = i + 1;
		ids[i] = insert(a, &j, 1000);
		CHECK(ids[i] > 0);
	}
	CHECK_INT(store_file_jobs(a, file, ids[0], ids[1], 2), 0);
	CHECK(commit_answered(a) >= 0);
	CHECK_INT(due_files(a, &fs), 0);

	CHECK_INT(store_begin(a), 0);
	CHECK_INT(claim_rows(a, 2000, rows, 2), 2);
	release_rows(rows, 2);
	struct job_success ok = {"{}", NULL, 1};
	CHECK_INT(store_attempt_begin(a, ids[0], 1, 2000, "GET /sources", &att), 0);
	CHECK_INT(store_attempt_end(a, att, &ended_ok), 0);
	CHECK_INT(store_job_succeed(a, ids[0], &ok, 2100), 0);
	CHECK_INT(commit_answered(a) & STORE_ASYNC_FILES, 0); /* one job left */
	CHECK_INT(due_files(a, &fs), 0);

	/* the commit that ends its last job brings the file */
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_attempt_begin(a, ids[1], 1, 2200, "GET /sources", &att), 0);
	CHECK_INT(store_attempt_end(a, att, &ended_ok), 0);
	CHECK_INT(store_job_succeed(a, ids[1], &ok, 2300), 0);
	CHECK_INT(due_files(a, &fs), 0); /* not before that commit's answer */
	CHECK_INT(commit_answered(a) & STORE_ASYNC_FILES, STORE_ASYNC_FILES);
	CHECK_INT(due_files(a, &fs), 1);
	CHECK_INT(fs.id, file);
	CHECK_INT(fs.remaining, 0);
	CHECK_INT(due_files(a, &fs), 0); /* handed out once */
	store_close(a);
}

/* ids_are - *ids (n of them) are exactly want (nwant); frees *ids. */
static int ids_are(int64_t *ids, size_t n, const int64_t *want, size_t nwant)
{
	int same = n == nwant;
	for (size_t i = 0; same && i < n; i++)
		same = ids[i] == want[i];
	free(ids);
	return same;
}

TEST(test_cancels_arrive)
{
	struct store *a = node(fresh("cancels"), "host:a", LEASE_MS);
	struct store *cli = second(); /* no node: a CLI elsewhere */
	struct job_row rows[2] = {0};
	int64_t id[2], *ids = NULL;
	size_t n = 0;
	for (int i = 0; i < 2; i++) {
		struct job_new j = new_job("listSources", NULL, 0, 0);
		id[i] = insert(a, &j, 1000);
	}
	piped(a);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(claim_rows(a, 2000, rows, 2), 2);
	release_rows(rows, 2);
	CHECK(commit_answered(a) >= 0);
	CHECK_INT(store_job_cancel(cli, id[1], 2100), 2); /* running: only asked */

	/* the first call asks; its answer is the next call's */
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_cancels_pending(a, &ids, &n), 0);
	CHECK(ids_are(ids, n, NULL, 0));
	CHECK_INT(commit_answered(a) & STORE_ASYNC_CANCELS, STORE_ASYNC_CANCELS);
	CHECK_INT(store_cancels_pending(a, &ids, &n), 0);
	CHECK(ids_are(ids, n, &id[1], 1));

	/* ended as asked: asked again, none any more */
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_job_end(a, id[1], JS_CANCELLED, NULL, "cancelled", 2200), 0);
	CHECK_INT(store_cancels_pending(a, &ids, &n), 0);
	CHECK(ids_are(ids, n, NULL, 0));
	CHECK_INT(commit_answered(a) & STORE_ASYNC_CANCELS, 0);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_cancels_pending(a, &ids, &n), 0);
	CHECK(ids_are(ids, n, NULL, 0));
	CHECK(commit_answered(a) >= 0);
	CHECK_INT(state_of(cli, id[1]), JS_CANCELLED);
	store_close(cli);
	store_close(a);
}

TEST(test_cancel_of_stashed)
{
	/* a cancel asked for a job still in the claim's stash is not among the cancels to
	 * abort (it has no run yet): the row handed out says it, and the daemon ends it */
	struct store *a = piped(node(fresh("cancel_stashed"), "host:a", LEASE_MS));
	struct store *cli = second();
	struct job_row rows[1] = {0};
	int64_t *ids = NULL;
	size_t n = 0;
	struct job_new j = new_job("listSources", NULL, 0, 0);
	int64_t id = insert(a, &j, 1000);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_claim_due(a, 2000, rows, 1), 0);
	int ev = await_events(a, STORE_ASYNC_CLAIMED);
	CHECK(ev > 0 && (ev & STORE_ASYNC_CLAIMED));
	CHECK(commit_answered(a) >= 0);
	CHECK_INT(store_job_cancel(cli, id, 2100), 2); /* running under a: only asked */
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_cancels_pending(a, &ids, &n), 0); /* asks */
	CHECK(ids_are(ids, n, NULL, 0));
	CHECK_INT(commit_answered(a) & STORE_ASYNC_CANCELS, 0);
	CHECK_INT(store_cancels_pending(a, &ids, &n), 0);
	CHECK(ids_are(ids, n, NULL, 0));
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_claim_due(a, 2000, rows, 1), 1);
	CHECK_INT(rows[0].id, id);
	CHECK_INT(rows[0].cancel_requested, 1);
	release_rows(rows, 1);
	CHECK(commit_answered(a) >= 0);
	store_close(cli);
	store_close(a);
}

TEST(test_rollback_drops_claim)
{
	/* a claim's rows, come or still coming, are the rolled back transaction's: none of
	 * them is handed out after it */
	struct store *a = piped(node(fresh("rollback_claim"), "host:a", LEASE_MS));
	struct store *b = second();
	struct job_row rows[2] = {0};
	struct job_new j = new_job("listSources", NULL, 0, 0);
	int64_t id = insert(a, &j, 1000);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_claim_due(a, 2000, rows, 1), 0);
	int ev = await_events(a, STORE_ASYNC_CLAIMED);
	CHECK(ev > 0 && (ev & STORE_ASYNC_CLAIMED));
	CHECK_INT(store_rollback(a), 0);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_claim_due(a, 2000, rows, 1), 0); /* sent again, not the stale row */
	release_rows(rows, 1);
	CHECK(commit_answered(a) >= 0);
	CHECK_INT(store_claim_due(a, 2000, rows, 1), 1);
	CHECK_INT(rows[0].id, id);
	release_rows(rows, 1);
	CHECK_INT(store_async_wait(a), 0);
	/* one still coming when the rollback is sent */
	struct job_new k = new_job("listSources", NULL, 0, 0);
	int64_t kid = insert(a, &k, 1000);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_claim_due(a, 2000, rows, 1), 0);
	CHECK_INT(store_rollback(a), 0);
	CHECK_INT(state_of(a, kid), JS_QUEUED); /* waits for every answer before it */
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_claim_due(a, 2000, rows, 1), 0);
	CHECK(commit_answered(a) >= 0);
	CHECK_INT(store_claim_due(a, 2000, rows, 1), 1);
	CHECK_INT(rows[0].id, kid);
	release_rows(rows, 1);
	CHECK_INT(state_of(b, kid), JS_RUNNING);
	/* rows an earlier transaction claimed and committed, not yet handed out, stay: those
	 * come before its commit, and those of its claim still out */
	int64_t more[3];
	for (int i = 0; i < 3; i++) {
		struct job_new m = new_job("listSources", NULL, 0, 0);
		more[i] = insert(a, &m, 1000);
	}
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_claim_due(a, 2000, rows, 2), 0);
	ev = await_events(a, STORE_ASYNC_CLAIMED);
	CHECK(ev > 0 && (ev & STORE_ASYNC_CLAIMED));
	CHECK_INT(store_claim_due(a, 2000, rows, 1), 1); /* more[1] stays in the stash */
	CHECK_INT(rows[0].id, more[0]);
	release_rows(rows, 1);
	CHECK(commit_answered(a) >= 0);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_rollback(a), 0);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_claim_due(a, 2000, rows, 1), 1);
	CHECK_INT(rows[0].id, more[1]);
	release_rows(rows, 1);
	CHECK_INT(store_claim_due(a, 2000, rows, 1), 0); /* sent: more[2] */
	CHECK_INT(store_commit(a), 0);                   /* before its rows are read */
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_rollback(a), 0);
	CHECK_INT(store_async_wait(a), 0);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_claim_due(a, 2000, rows, 1), 1);
	CHECK_INT(rows[0].id, more[2]);
	release_rows(rows, 1);
	CHECK(commit_answered(a) >= 0);
	for (int i = 0; i < 3; i++)
		CHECK_INT(state_of(b, more[i]), JS_RUNNING);
	store_close(b);
	store_close(a);
}

TEST(test_read_in_the_middle)
{
	struct store *a = piped(node(fresh("read_middle"), "host:a", LEASE_MS));
	struct store *b = second();
	struct job_new j = new_job("listSources", NULL, 0, 0);
	struct job_row rows[1], got;
	int64_t att = 0, id = insert(a, &j, 1000);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(claim_rows(a, 2000, rows, 1), 1);
	release_rows(rows, 1);
	CHECK_INT(store_attempt_begin(a, id, 1, 2000, "GET /sources", &att), 0);
	CHECK_INT(store_attempt_end(a, att, &ended_ok), 0);
	struct job_success ok = {"{\"r\":1}", NULL, 1};
	CHECK_INT(store_job_succeed(a, id, &ok, 2100), 0);
	/* the reads wait for the writes sent before them, inside the open transaction */
	CHECK_INT(store_get(a, id, &got), 0);
	CHECK_INT(got.state, JS_SUCCEEDED);
	CHECK_INT(got.attempts, 1);
	job_row_release(&got);
	CHECK(outcomes_are(a, id, "1:ok"));
	CHECK_INT(store_commits_pending(a), 0); /* nothing committed by them */
	CHECK_INT(state_of(b, id), JS_QUEUED);  /* not even the claim */
	CHECK(commit_answered(a) >= 0);
	CHECK_INT(state_of(b, id), JS_SUCCEEDED);
	/* and after a commit not yet answered, a read waits for it too */
	struct job_new k = new_job("listSources", "k", 0, 0);
	int64_t kid = 0;
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_job_insert(a, &k, 3000, &kid), STORE_INSERTED);
	CHECK_INT(store_commit(a), 0);
	CHECK_INT(store_get(a, kid, &got), 0);
	CHECK_INT(got.state, JS_QUEUED);
	job_row_release(&got);
	CHECK_INT(store_commits_pending(a), 0);
	CHECK_INT(state_of(b, kid), JS_QUEUED);
	CHECK_INT(store_async_poll(a) & STORE_ASYNC_COMMITTED, STORE_ASYNC_COMMITTED);
	store_close(b);
	store_close(a);
}

int main(void)
{
	log_set_level(LOG_WARN);
	fixture_begin("test_pg_pipe");
	if (!fixture_pg()) {
		fprintf(stderr, "skipped: no database (set SEGSPOOL_TEST_PG to a libpq URI)\n");
		fixture_end();
		return 77;
	}
	RUN(test_commit_answered_later);
	RUN(test_claim_sent_ahead);
	RUN(test_fence_taken_back);
	RUN(test_fence_claimed_by_another);
	RUN(test_attempt_refs);
	RUN(test_files_due_arrive);
	RUN(test_cancels_arrive);
	RUN(test_read_in_the_middle);
	RUN(test_cancel_of_stashed);
	RUN(test_rollback_drops_claim);
	sb_release(&schema);
	fixture_end();
	return tl_finish();
}
