/* test_store_pg_buckets.c - what a store several daemons share must hold between them
 * (the PostgreSQL store, from store_fixture.h's SEGSPOOL_TEST_PG): two stores taking
 * from one bucket never get more than its rate and burst allow together, a hold by one
 * is seen by the other's take, and a file's results list its own lines in order when
 * another file's jobs were inserted between them; lists longer than the store's cursor
 * chunk stream whole, one stopped early leaves no transaction behind, one whose
 * connection is cut says so. A store that is not shared (SQLite) has none of this: the
 * test says so and passes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/store/pg_int.h"
#include "store.h"
#include "strbuf.h"
#include "store_fixture.h"
#include "testlib.h"
#include "util.h"

/* wall_ms - this machine's clock, which the test's database shares. */
static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sleep_ms - a short pause. */
static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
	                      .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* second_store - another connection to the last store opened, as a second daemon. */
static struct store *second_store(void)
{
	struct store *st = NULL;
	char *err = NULL;
	if (store_reopen_test(0, &st, &err) < 0) {
		fprintf(stderr, "cannot open the store again: %s\n", err);
		free(err);
		exit(1);
	}
	return st;
}

/* test_bucket_shared_rate - two nodes taking from one bucket in a loop for a second get
 * at most rate * t + burst tokens between them, and close to it. */
TEST(test_bucket_shared_rate)
{
	const double rate = 20, burst = 4;
	struct store *a = open_fresh("rate");
	struct store *b = second_store();
	CHECK_INT(store_node_start(a, "host-a:/spool", 30000, wall_ms()), 0);
	CHECK_INT(store_node_start(b, "host-b:/spool", 30000, wall_ms()), 0);
	struct store *both[2] = {a, b};
	int got[2] = {0, 0}, errors = 0;
	int64_t start = wall_ms(), end = start + 1000;
	while (wall_ms() < end && errors == 0) {
		int64_t least = 1000;
		for (int i = 0; i < 2; i++) {
			int64_t wait = -1;
			if (store_bucket_take(both[i], "ws:default", rate, burst, wall_ms(),
			                      &wait) < 0) {
				fprintf(stderr, "take: %s\n", store_errmsg(both[i]));
				errors++;
				break;
			}
			if (wait == 0)
				got[i]++;
			least = wait < least ? wait : least;
		}
		if (least > 0)
			sleep_ms(least < 5 ? least : 5);
	}
	double t = (double)(wall_ms() - start) / 1000.0;
	int total = got[0] + got[1];
	CHECK_INT(errors, 0);
	CHECK(total <= (int)(rate * t + burst));
	CHECK(total >= (int)(rate * t / 2 + burst)); /* it does give tokens at about the rate */
	CHECK(got[0] > 0 && got[1] > 0);
	if (total > (int)(rate * t + burst) || got[0] == 0 || got[1] == 0)
		fprintf(stderr, "in %.3f s: %d + %d tokens\n", t, got[0], got[1]);
	store_close(b);
	store_close(a);
}

/* take_wait - one take from key at 1000/s (no wait but a hold's): the wait, -1 error. */
static int64_t take_wait(struct store *st, const char *key)
{
	int64_t wait = -1;
	if (store_bucket_take(st, key, 1000, 100, wall_ms(), &wait) < 0)
		return -1;
	return wait;
}

/* test_bucket_hold_shared - a 429 seen by one node holds the bucket for the other; an
 * earlier hold does not shorten it; once it has passed, the other takes again. */
TEST(test_bucket_hold_shared)
{
	struct store *a = open_fresh("hold");
	struct store *b = second_store();
	CHECK_INT(store_node_start(a, "host-a:/spool", 30000, wall_ms()), 0);
	CHECK_INT(store_node_start(b, "host-b:/spool", 30000, wall_ms()), 0);
	CHECK_INT(take_wait(b, "ep:createSource"), 0);
	int64_t until = wall_ms() + 1500;
	CHECK_INT(store_bucket_hold(a, "ep:createSource", until), 0);
	CHECK_INT(store_bucket_hold(a, "ep:createSource", until - 1000), 0); /* the later wins */
	int64_t wait = take_wait(b, "ep:createSource");
	CHECK(wait > 700 && wait <= 1600); /* plus the time a call takes */
	/* the other's daemon saving its own bucket (no hold) in its group transaction:
	 * the hold stays, and the row is not locked till that transaction ends */
	CHECK_INT(store_begin(b), 0);
	CHECK_INT(store_bucket_save(b, "ep:createSource", 3, wall_ms(), 0), 0);
	int64_t before = wall_ms();
	wait = take_wait(a, "ep:createSource");
	CHECK(wait > 700 && wait <= 1600); /* plus the time a call takes */
	CHECK(wall_ms() - before < 1000);  /* a row locked by b would hold it for seconds */
	CHECK_INT(store_rollback(b), 0);
	/* a bucket nobody took from yet can be held too */
	CHECK_INT(store_bucket_hold(b, "ws:other", wall_ms() + 1500), 0);
	wait = take_wait(a, "ws:other");
	CHECK(wait > 700 && wait <= 1600); /* plus the time a call takes */
	if (wait <= 700 || wait > 1600)
		fprintf(stderr, "waited %lld ms\n", (long long)wait);
	int64_t left = until - wall_ms();
	if (left > 0)
		sleep_ms(left + 20);
	CHECK_INT(take_wait(b, "ep:createSource"), 0);
	store_close(b);
	store_close(a);
}

struct lines {
	struct strbuf text;
	int n;
	int64_t last_line;
	int in_order;
};

/* note_result - "line:key" per line, checked to come in order. */
static int note_result(const struct result_rec *r, void *arg)
{
	struct lines *l = arg;
	if (r->line <= l->last_line)
		l->in_order = 0;
	l->last_line = r->line;
	l->n++;
	sb_addf(&l->text, "%lld:%s%s;", (long long)r->line, r->key ? r->key : "-",
	        r->duplicate ? ":dup" : "");
	return 0;
}

/* note_summary - the keys of a file's jobs as listed. */
static int note_summary(const struct job_summary *j, void *arg)
{
	struct lines *l = arg;
	l->n++;
	sb_addf(&l->text, "%s;", j->key ? j->key : "-");
	return 0;
}

#define INTERLEAVED 300 /* lines per file: more than one chunk of the store's cursor */

/* test_results_interleaved - two files ingested at once (two daemons), their jobs' ids
 * alternating: each file's results list its own lines, in order, its duplicate line among
 * them, and its job list only its jobs. */
TEST(test_results_interleaved)
{
	struct store *a = open_fresh("interleaved");
	struct store *b = second_store();
	struct store_file_id fid = {.dev = 1, .ino = 2, .ctime_ns = 3, .size = 4};
	int64_t file[2] = {0, 0}, first[2] = {0, 0}, last[2] = {0, 0};
	struct store *by[2] = {a, b};
	char key[32];
	CHECK_INT(store_file_begin(a, "a.jsonl", "ha", &fid, 1000, INTERLEAVED + 1, 1, &file[0]),
	          0);
	CHECK_INT(store_file_begin(b, "b.jsonl", "hb", &fid, 1000, INTERLEAVED, 1, &file[1]), 0);
	for (int line = 1; line <= INTERLEAVED; line++) {
		for (int f = 0; f < 2; f++) {
			snprintf(key, sizeof(key), "%c%03d", 'a' + f, line);
			struct job_new j = new_job("createSource", key, 0, 0);
			j.file_id = file[f];
			/* file a's line 2 is a duplicate: its jobs sit at lines 1, 3, 4, ... */
			j.line = f == 0 && line >= 2 ? line + 1 : line;
			int64_t id = insert(by[f], &j, 1000);
			CHECK(id > 0);
			if (!first[f])
				first[f] = id;
			last[f] = id;
		}
	}
	CHECK_INT(store_file_dup(a, file[0], 2, first[1]), 0); /* b001's key */
	CHECK_INT(store_file_jobs(a, file[0], first[0], last[0], INTERLEAVED + 1), 0);
	CHECK_INT(store_file_jobs(b, file[1], first[1], last[1], INTERLEAVED), 0);

	struct strbuf want = STRBUF_INIT;
	struct lines got = {STRBUF_INIT, 0, 0, 1};
	CHECK_INT(store_file_results_foreach(b, file[0], note_result, &got), 0);
	sb_adds(&want, "1:a001;2:b001:dup;");
	for (int line = 2; line <= INTERLEAVED; line++)
		sb_addf(&want, "%d:a%03d;", line + 1, line);
	CHECK_INT(got.n, INTERLEAVED + 1);
	CHECK(got.in_order);
	CHECK_STR(got.text.buf, want.buf);

	sb_reset(&got.text);
	got.n = 0;
	CHECK_INT(store_list_file(a, file[1], 0, note_summary, &got), 0);
	sb_reset(&want);
	for (int line = 1; line <= INTERLEAVED; line++)
		sb_addf(&want, "b%03d;", line);
	CHECK_INT(got.n, INTERLEAVED);
	CHECK_STR(got.text.buf, want.buf);
	sb_reset(&got.text);
	got.n = 0;
	CHECK_INT(store_list_file(a, file[1], 3, note_summary, &got), 0);
	CHECK_STR(got.text.buf, "b001;b002;b003;");

	sb_release(&want);
	sb_release(&got.text);
	store_close(b);
	store_close(a);
}

struct due_names {
	struct strbuf names;
};

/* note_due - a due file's name. */
static int note_due(const struct file_rec *f, void *arg)
{
	struct due_names *d = arg;
	sb_addf(&d->names, "%s;", f->name);
	return 0;
}

/* test_results_own_files - a node writes the results of the files it ingested: each
 * node's due files are its own, and a store without a node sees them all. */
TEST(test_results_own_files)
{
	struct store *a = open_fresh("own");
	struct store *b = second_store();
	struct store *cli = second_store();
	struct store_file_id fid = {.dev = 1, .ino = 2, .ctime_ns = 3, .size = 4};
	int64_t fa = 0, fb = 0;
	CHECK_INT(store_node_start(a, "host-a:/spool", 30000, wall_ms()), 0);
	CHECK_INT(store_node_start(b, "host-b:/spool", 30000, wall_ms()), 0);
	/* files without jobs left: due at once */
	CHECK_INT(store_file_begin(a, "from-a.jsonl", "h", &fid, 1000, 0, 1, &fa), 0);
	CHECK_INT(store_file_begin(b, "from-b.jsonl", "h", &fid, 1000, 0, 1, &fb), 0);
	struct due_names d = {STRBUF_INIT};
	CHECK_INT(store_files_results_due(a, note_due, &d), 0);
	CHECK_STR(d.names.buf, "from-a.jsonl;");
	sb_reset(&d.names);
	CHECK_INT(store_files_results_due(b, note_due, &d), 0);
	CHECK_STR(d.names.buf, "from-b.jsonl;");
	sb_reset(&d.names);
	CHECK_INT(store_files_results_due(cli, note_due, &d), 0);
	CHECK_STR(d.names.buf, "from-a.jsonl;from-b.jsonl;");
	CHECK_INT(store_file_results_set(b, fb, "results/from-b.results.jsonl"), 0);
	sb_reset(&d.names);
	CHECK_INT(store_files_results_pending(a, note_due, &d), 0);
	CHECK_INT((int)d.names.len, 0);
	CHECK_INT(store_files_results_pending(b, note_due, &d), 0);
	CHECK_STR(d.names.buf, "from-b.jsonl;");
	sb_release(&d.names);
	store_close(cli);
	store_close(b);
	store_close(a);
}

struct listed {
	int n, stop_at, descending;
	int64_t last_id;
};

/* note_listed - counts the jobs listed, checks they come newest first, stops at stop_at. */
static int note_listed(const struct job_summary *j, void *arg)
{
	struct listed *l = arg;
	if (l->n > 0 && j->id >= l->last_id)
		l->descending = 0;
	l->last_id = j->id;
	return ++l->n == l->stop_at;
}

#define LISTED 600 /* jobs: more than two chunks of the store's cursor */

/* test_stream_lists - a list longer than the cursor's chunk comes whole and in order;
 * stopped early it leaves no transaction open, and inside the caller's transaction it
 * leaves that one usable. */
TEST(test_stream_lists)
{
	struct store *st = open_fresh("stream");
	struct job_new j = new_job("listSources", NULL, 0, 0);
	CHECK_INT(store_begin(st), 0);
	for (int i = 0; i < LISTED; i++)
		CHECK(insert(st, &j, 1000) > 0);
	CHECK_INT(store_commit(st), 0);
	struct listed l = {0, 0, 1, 0};
	CHECK_INT(store_list(st, NULL, 0, note_listed, &l), 0);
	CHECK_INT(l.n, LISTED);
	CHECK(l.descending);
	enum job_state queued = JS_QUEUED;
	l = (struct listed){0, 300, 1, 0};
	CHECK_INT(store_list(st, &queued, 0, note_listed, &l), 0);
	CHECK_INT(l.n, 300);
	CHECK_INT(store_begin(st), 0); /* none left open by the list */
	l = (struct listed){0, 10, 1, 0};
	CHECK_INT(store_list(st, NULL, 0, note_listed, &l), 0);
	CHECK_INT(l.n, 10);
	CHECK(insert(st, &j, 2000) > 0); /* the caller's transaction goes on */
	CHECK_INT(store_commit(st), 0);
	l = (struct listed){0, 0, 1, 0};
	CHECK_INT(store_list(st, NULL, 5, note_listed, &l), 0);
	CHECK_INT(l.n, 5);
	int64_t counts[JS_COUNT];
	CHECK_INT(store_counts(st, counts), 0);
	CHECK_INT(counts[JS_QUEUED], LISTED + 1);
	store_close(st);
}

struct cutting {
	struct store *st;
	int n;
};

/* cut_at_100 - at the 100th job listed, the store's connection is cut under it. */
static int cut_at_100(const struct job_summary *j, void *arg)
{
	struct cutting *c = arg;
	(void)j;
	if (++c->n == 100) {
		char sql[64];
		snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)",
		         PQbackendPID(c->st->main.conn));
		PQclear(PQexec(pg_admin, sql));
	}
	return 0;
}

/* test_stream_cut - a list whose connection is lost between two chunks fails, saying so
 * (the daemon reconnects on it), after the rows it had. */
TEST(test_stream_cut)
{
	struct store *st = open_fresh("cut");
	struct job_new j = new_job("listSources", NULL, 0, 0);
	CHECK_INT(store_begin(st), 0);
	for (int i = 0; i < LISTED; i++)
		CHECK(insert(st, &j, 1000) > 0);
	CHECK_INT(store_commit(st), 0);
	struct cutting c = {st, 0};
	CHECK_INT(store_list(st, NULL, 0, cut_at_100, &c), -1);
	CHECK(c.n >= 100 && c.n < LISTED);
	CHECK(strstr(store_errmsg(st), "cannot list jobs: connection to the database ") != NULL);
	CHECK(strstr(store_errmsg(st), " lost") != NULL);
	store_close(st);
}

int main(void)
{
	log_set_level(LOG_WARN);
	fixture_begin("test_store_pg_buckets");
	struct store *probe = open_fresh("probe");
	int shared = store_shared(probe);
	store_close(probe);
	if (shared != 1) {
		printf("the store is not shared (set SEGSPOOL_TEST_PG for a PostgreSQL one): "
		       "nothing to test\n");
		fixture_end();
		return tl_finish();
	}
	RUN(test_bucket_shared_rate);
	RUN(test_bucket_hold_shared);
	RUN(test_results_interleaved);
	RUN(test_results_own_files);
	RUN(test_stream_lists);
	RUN(test_stream_cut);
	fixture_end();
	return tl_finish();
}
