/* test_pg_nodes.c - several daemons (nodes) on one PostgreSQL store: claims from one
 * queue never hand a job to two nodes, even with one node's claim still uncommitted or
 * both claiming at once; a node whose lease ran out has its running jobs taken back by
 * another's rescue, its open attempts closed as store_recover closes them, and is then
 * refused ("lease lost"), and sweeps at once wait for nobody; a heartbeat keeps a lease;
 * a restarted node's earlier self gives its jobs back at once (one of that name still
 * running does not); the cancels a CLI asked for reach the node running the job; a
 * dependency's end meets a cancel of its dependant; two nodes insert one key. Needs a
 * database (SEGSPOOL_TEST_PG or SEGSPOOL_TEST_PG_FILE, as test_pg.c); skipped without
 * one (exit 77). */
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "store_fixture.h"
#include "strbuf.h"
#include "testlib.h"
#include "util.h"

#include "pg_node_fixture.h"

#define NODE_LEASE_MS 30000

/* has - s holds sub. */
static int has(const char *s, const char *sub)
{
	return s && strstr(s, sub) != NULL;
}

/* in_claim_order - rows are as store_claim_due orders them: priority first (highest),
 * then next run, then id. */
static int in_claim_order(const struct job_row *rows, int n)
{
	for (int i = 1; i < n; i++) {
		const struct job_row *a = &rows[i - 1], *b = &rows[i];
		if (a->priority != b->priority         ? a->priority < b->priority
		    : a->next_run_ms != b->next_run_ms ? a->next_run_ms > b->next_run_ms
		                                       : a->id > b->id)
			return 0;
	}
	return 1;
}

/* release_rows - the rows' strings. */
static void release_rows(struct job_row *rows, int n)
{
	for (int i = 0; i < n; i++)
		job_row_release(&rows[i]);
}

#define NJOBS 20

TEST(test_claim_skips_locked)
{
	struct store *a = node(open_fresh("claim_locked"), "host:a", NODE_LEASE_MS);
	struct store *b = node(second(), "host:b", NODE_LEASE_MS);
	struct job_row ra[5] = {0}, rb[5] = {0}, more[4];
	int64_t ids[NJOBS];
	int seen[NJOBS] = {0};
	for (int i = 0; i < NJOBS; i++) {
		struct job_new j = new_job("listSources", NULL, i % 3, 0);
		ids[i] = insert(a, &j, 1000 + i);
		CHECK(ids[i] > 0);
	}
	/* a's claim is not committed yet: b neither waits for its rows nor gets them */
	store_set_busy_timeout(b, 2000);
	CHECK_INT(store_begin(a), 0);
	int na = store_claim_due(a, 5000, ra, 5), nb = store_claim_due(b, 5000, rb, 5);
	CHECK_INT(na, 5);
	CHECK_INT(nb, 5);
	if (na != 5 || nb != 5) {
		fprintf(stderr, "b's claim: %s\n", store_errmsg(b));
		exit(1); /* the rows to compare are not there */
	}
	CHECK(in_claim_order(ra, 5));
	CHECK(in_claim_order(rb, 5));
	for (int i = 0; i < 5; i++) {
		CHECK_INT(ra[i].state, JS_RUNNING);
		CHECK_INT(ra[i].priority, 2); /* the first in the claim order: the highest */
		for (int k = 0; k < 5; k++)
			CHECK(ra[i].id != rb[k].id);
	}
	CHECK_INT(store_commit(a), 0);
	/* the rest, by turns, till none is left: every job claimed exactly once */
	for (int i = 0; i < 5; i++)
		for (int k = 0; k < NJOBS; k++)
			seen[k] += (ids[k] == ra[i].id) + (ids[k] == rb[i].id);
	release_rows(ra, 5);
	release_rows(rb, 5);
	int got, turn = 0, empty = 0;
	while (empty < 2) {
		struct store *st = turn++ % 2 ? b : a;
		got = store_claim_due(st, 5000, more, 4);
		CHECK(got >= 0);
		empty = got <= 0 ? empty + 1 : 0;
		for (int i = 0; i < got; i++)
			for (int k = 0; k < NJOBS; k++)
				seen[k] += ids[k] == more[i].id;
		release_rows(more, got > 0 ? got : 0);
	}
	for (int k = 0; k < NJOBS; k++)
		CHECK_INT(seen[k], 1);
	CHECK_INT(store_count_active(a), NJOBS); /* all running */
	store_close(a);
	store_close(b);
}

#define RACE_JOBS 300

/* claimer - a child process: joins as node name on the store of the last open_fresh
 * and claims (1 to 3 at a time) till the queue is empty, an attempt begun for each
 * job; writes each job's id to fd. Exit 0, or 1 on a store error. */
static void claimer(const char *name, int fd)
{
	struct store *st = NULL;
	char *err = NULL;
	struct job_row rows[3];
	int idle = 0;
	if (store_reopen_test(0, &st, &err) < 0 || store_node_start(st, name, NODE_LEASE_MS, 0))
		_exit(1);
	for (int round = 0; idle < 3; round++) {
		int n = store_claim_due(st, 5000, rows, 1 + round % 3);
		if (n < 0)
			_exit(1);
		idle = n ? 0 : idle + 1;
		for (int i = 0; i < n; i++) {
			int64_t attempt;
			if (store_attempt_begin(st, rows[i].id, rows[i].tries + 1, 5000, "GET /x",
			                        &attempt) < 0 ||
			    write(fd, &rows[i].id, sizeof(rows[i].id)) !=
			        (ssize_t)sizeof(rows[i].id))
				_exit(1);
			job_row_release(&rows[i]);
		}
	}
	store_close(st);
	_exit(0);
}

TEST(test_claim_race)
{
	struct store *st = open_fresh("claim_race");
	static int64_t ids[RACE_JOBS];
	static int seen[RACE_JOBS];
	int fds[2][2];
	pid_t pid[2];
	CHECK_INT(store_begin(st), 0);
	for (int i = 0; i < RACE_JOBS; i++) {
		struct job_new j = new_job("listSources", NULL, i % 4, 0);
		ids[i] = insert(st, &j, 1000 + i % 7);
	}
	CHECK_INT(store_commit(st), 0);
	for (int c = 0; c < 2; c++) {
		if (pipe(fds[c]) < 0)
			exit(1);
		fflush(NULL);
		pid[c] = fork();
		if (pid[c] == 0) {
			close(fds[c][0]);
			claimer(c ? "host:b" : "host:a", fds[c][1]);
		}
		close(fds[c][1]);
	}
	int total = 0, per[2] = {0, 0};
	for (int c = 0; c < 2; c++) {
		int64_t id;
		while (read(fds[c][0], &id, sizeof(id)) == (ssize_t)sizeof(id)) {
			per[c]++;
			total++;
			for (int k = 0; k < RACE_JOBS; k++)
				seen[k] += ids[k] == id;
		}
		close(fds[c][0]);
		int status = -1;
		waitpid(pid[c], &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	CHECK_INT(total, RACE_JOBS);
	int once = 0;
	for (int k = 0; k < RACE_JOBS; k++)
		once += seen[k] == 1;
	CHECK_INT(once, RACE_JOBS);
	fprintf(stderr, "claim race: %d and %d jobs\n", per[0], per[1]);
	CHECK_INT(store_count_active(st), RACE_JOBS);
	store_close(st);
}

/* the last transition's reason of a job */
struct last_reason {
	char *reason;
	int to;
};

static int keep_last(const struct transition_rec *t, void *arg)
{
	struct last_reason *l = arg;
	free(l->reason);
	l->reason = t->reason ? xstrdup(t->reason) : NULL;
	l->to = (int)t->to_state;
	return 0;
}

/* outcomes - a job's attempts' outcomes, joined by "," ("-" for none yet) */
static int add_outcome(const struct attempt_rec *a, void *arg)
{
	struct strbuf *sb = arg;
	sb_addf(sb, "%s%s", sb->len ? "," : "", a->outcome ? a->outcome : "-");
	return 0;
}

static char *outcomes(struct store *st, int64_t id)
{
	struct strbuf sb = STRBUF_INIT;
	CHECK_INT(store_attempts_foreach(st, id, add_outcome, &sb), 0);
	return sb_detach(&sb, NULL);
}

TEST(test_rescue_expired_lease)
{
	struct store *a = node(open_fresh("rescue"), "host:a", 200);
	struct store *b = node(second(), "host:b", NODE_LEASE_MS);
	struct job_new m = new_job("createSource", "m", 2, 0),
	               r = new_job("listSources", "r", 1, 0);
	struct job_new q = new_job("listSources", "q", 0, 0);
	struct job_row rows[3];
	int64_t att;
	m.mutates = 1;
	int64_t mid = insert(a, &m, 1000), rid = insert(a, &r, 1000), qid = insert(a, &q, 1000);
	CHECK_INT(store_claim_due(a, 2000, rows, 2), 2);
	CHECK_INT(rows[0].id, mid);
	CHECK_INT(rows[1].id, rid);
	release_rows(rows, 2);
	CHECK_INT(store_attempt_begin(a, mid, 1, 2000, "POST /sources", &att), 0);
	CHECK_INT(store_attempt_begin(a, rid, 1, 2000, "GET /sources", &att), 0);
	CHECK_INT(store_rescue(b, 2000), 0); /* a's lease holds still */
	CHECK_INT(state_of(b, mid), JS_RUNNING);

	usleep(400 * 1000); /* a sends no heartbeat: its lease runs out */
	CHECK_INT(store_heartbeat(b, 3000), 0);
	CHECK_INT(store_rescue(b, 3000), 2);
	CHECK_INT(state_of(b, mid), JS_QUEUED);
	CHECK_INT(state_of(b, rid), JS_QUEUED);
	CHECK_INT(state_of(b, qid), JS_QUEUED);
	CHECK_INT(store_count_lost_answers(b, mid), 1);
	CHECK_INT(store_count_lost_answers(b, rid), 0);
	char *o = outcomes(b, mid);
	CHECK_STR(o, "unknown");
	free(o);
	o = outcomes(b, rid);
	CHECK_STR(o, "interrupted");
	free(o);
	struct last_reason last = {NULL, -1};
	CHECK_INT(store_transitions_foreach(b, mid, keep_last, &last), 0);
	CHECK_STR(last.reason, "rescued: daemon host:a stopped renewing its lease");
	CHECK_INT(last.to, JS_QUEUED);
	free(last.reason);
	CHECK_INT(store_rescue(b, 3000), 0); /* once */

	/* a learns it lost its lease; nothing it sends under it is recorded */
	CHECK_INT(store_heartbeat(a, 3000), 1);
	CHECK(has(store_errmsg(a), "lease lost"));
	CHECK_INT(store_attempt_begin(a, mid, 2, 3000, "POST /sources", &att), -1);
	struct strbuf want = STRBUF_INIT;
	sb_addf(&want, "lease lost: job %" PRId64 " is claimed by another daemon", mid);
	CHECK_STR(store_errmsg(a), want.buf);
	CHECK_INT(store_claim_due(a, 3000, rows, 3), 0); /* a dead node claims nothing */
	struct job_success ok = {"{}", NULL, 1};
	CHECK_INT(store_job_succeed(a, mid, &ok, 3000), -1); /* queued again, not a's */
	sb_reset(&want);
	sb_addf(&want, "lease lost: job %" PRId64 " was taken back from this daemon", mid);
	CHECK_STR(store_errmsg(a), want.buf);

	/* b runs them now: a's late success of one is refused */
	CHECK_INT(store_claim_due(b, 3000, rows, 2), 2);
	CHECK_INT(rows[0].id, mid);
	CHECK_INT(rows[0].tries, 1); /* the next attempt is number 2 */
	release_rows(rows, 2);
	CHECK_INT(store_job_succeed(a, mid, &ok, 3100), -1);
	CHECK(has(store_errmsg(a), "lease lost"));
	CHECK_INT(store_attempt_begin(b, mid, 2, 3100, "POST /sources", &att), 0);
	CHECK_INT(store_job_succeed(b, mid, &ok, 3200), 0);
	CHECK_INT(store_rescue(b, 3300), 0);
	sb_release(&want);
	store_close(a);
	store_close(b);
}

TEST(test_rescues_at_once)
{
	/* two sweeps at once, and the dead node's transaction still open: neither waits */
	struct store *a = node(open_fresh("rescues"), "host:a", 200);
	struct store *b = node(second(), "host:b", NODE_LEASE_MS);
	struct store *c = node(second(), "host:c", NODE_LEASE_MS);
	struct job_new m = new_job("createSource", NULL, 1, 0),
	               r = new_job("listSources", NULL, 0, 0);
	struct job_row rows[2];
	int64_t att;
	m.mutates = 1;
	int64_t mid = insert(a, &m, 1000), rid = insert(a, &r, 1000);
	CHECK_INT(store_claim_due(a, 2000, rows, 2), 2);
	release_rows(rows, 2);
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_attempt_begin(a, mid, 1, 2000, "POST /sources", &att), 0);
	usleep(400 * 1000);
	store_set_busy_timeout(c, 1000);
	CHECK_INT(store_begin(b), 0);
	CHECK_INT(store_rescue(b, 3000), 1); /* r; m's row is a's till it commits */
	CHECK_INT(store_rescue(c, 3000), 0); /* b has a's row and r's: skipped, not waited for */
	CHECK_INT(store_commit(b), 0);
	CHECK_INT(state_of(c, rid), JS_QUEUED);
	CHECK_INT(state_of(c, mid), JS_RUNNING);
	CHECK_INT(store_commit(a), 0); /* its attempt, begun under its lease, is recorded */
	CHECK_INT(store_rescue(c, 3100), 1);
	CHECK_INT(state_of(c, mid), JS_QUEUED);
	CHECK_INT(store_count_lost_answers(c, mid), 1);
	store_close(a);
	store_close(b);
	store_close(c);
}

TEST(test_heartbeat_keeps_lease)
{
	struct store *a = node(open_fresh("heartbeat"), "host:a", 300);
	struct store *b = node(second(), "host:b", NODE_LEASE_MS);
	struct job_new j = new_job("listSources", NULL, 0, 0);
	struct job_row row;
	int64_t id = insert(a, &j, 1000);
	CHECK_INT(store_claim_due(a, 2000, &row, 1), 1);
	job_row_release(&row);
	for (int i = 0; i < 8; i++) { /* 800 ms in all, well past one lease */
		usleep(100 * 1000);
		CHECK_INT(store_heartbeat(a, 0), 0);
		CHECK_INT(store_rescue(b, 0), 0);
	}
	CHECK_INT(state_of(b, id), JS_RUNNING);
	store_close(a);
	store_close(b);
}

TEST(test_restart_buries_earlier_self)
{
	struct store *a = node(open_fresh("restart"), "host:a", NODE_LEASE_MS);
	struct store *b = node(second(), "host:b", NODE_LEASE_MS);
	struct job_new m = new_job("createSource", NULL, 0, 0);
	struct job_row row;
	int64_t att;
	m.mutates = 1;
	int64_t id = insert(a, &m, 1000);
	CHECK_INT(store_claim_due(a, 2000, &row, 1), 1);
	job_row_release(&row);
	CHECK_INT(store_attempt_begin(a, id, 1, 2000, "POST /sources", &att), 0);
	store_close(a); /* a's requests aborted, the store reopened: a lease of 30 s to go */
	CHECK_INT(store_rescue(b, 2100), 0);
	struct store *a2 = node(second(), "host:a", NODE_LEASE_MS);
	CHECK_INT(store_rescue(b, 2200), 1); /* at once: a's row was this process's */
	CHECK_INT(state_of(b, id), JS_QUEUED);
	CHECK_INT(store_count_lost_answers(b, id), 1);
	CHECK_INT(store_heartbeat(a2, 0), 0);

	/* a node of that name still running elsewhere (here: a child) is left to its lease */
	int go[2], ready[2];
	CHECK_INT(pipe(go), 0);
	CHECK_INT(pipe(ready), 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct store *c = NULL;
		char *err = NULL, x = 0;
		if (store_reopen_test(0, &c, &err) < 0 ||
		    store_node_start(c, "host:c", NODE_LEASE_MS, 0) < 0 ||
		    store_claim_due(c, 3000, &row, 1) != 1 || write(ready[1], "r", 1) != 1)
			_exit(1);
		_exit(read(go[0], &x, 1) == 1 ? 0 : 2); /* killed before */
	}
	char x = 0;
	CHECK_INT(read(ready[0], &x, 1), 1);
	struct store *c2 = node(second(), "host:c", NODE_LEASE_MS);
	CHECK_INT(store_rescue(b, 3100), 0);
	CHECK_INT(state_of(b, id), JS_RUNNING);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	store_close(c2);
	c2 = node(second(), "host:c", NODE_LEASE_MS); /* its pid is gone now */
	CHECK_INT(store_rescue(b, 3200), 1);
	CHECK_INT(state_of(b, id), JS_QUEUED);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
	store_close(c2);
	store_close(a2);
	store_close(b);
}

TEST(test_cascade_meets_cancel)
{
	/* d waits for x; a CLI cancels d, not yet committed, as x ends: x's end, which read
	 * d waiting, finds it cancelled once it may look, and leaves it so */
	struct store *st = open_fresh("cascade_cancel");
	struct store *cli = second();
	struct job_new jx = new_job("listSources", "x", 0, 0),
	               jd = new_job("listSources", "d", 0, 0);
	int64_t x = insert(st, &jx, 1000), d = insert(st, &jd, 1000);
	CHECK_INT(store_deps_add(st, d, &x, 1, 1000), 0);
	CHECK_INT(state_of(st, d), JS_WAITING);
	CHECK_INT(store_begin(cli), 0);
	CHECK_INT(store_job_cancel(cli, d, 1100), 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct store *c = NULL;
		char *err = NULL;
		if (store_reopen_test(0, &c, &err) < 0)
			_exit(2);
		int rc = store_job_end(c, x, JS_FAILED, NULL, "given up", 1200);
		if (rc)
			fprintf(stderr, "child: %s\n", store_errmsg(c));
		_exit(rc ? 1 : 0);
	}
	usleep(300 * 1000); /* the child's end of x waits for d's row */
	CHECK_INT(store_commit(cli), 0);
	int status = -1;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_INT(state_of(st, x), JS_FAILED);
	CHECK_INT(state_of(st, d), JS_CANCELLED);
	store_close(cli);
	store_close(st);
}

TEST(test_same_key_two_nodes)
{
	/* a inserts key k, not yet committed, as b ingests a file with the same key: b's
	 * insert waits for a's commit and finds a's job, a duplicate and no error */
	struct store *a = open_fresh("same_key");
	struct job_new j = new_job("createSource", "k", 0, 0);
	int64_t id = 0, other = 0;
	int fds[2];
	CHECK_INT(store_begin(a), 0);
	CHECK_INT(store_job_insert(a, &j, 1000, &id), STORE_INSERTED);
	CHECK_INT(pipe(fds), 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct store *b = NULL;
		char *err = NULL;
		int64_t got = 0;
		close(fds[0]);
		if (store_reopen_test(0, &b, &err) < 0)
			_exit(2);
		int rc = store_job_insert(b, &j, 1100, &got);
		if (rc < 0)
			fprintf(stderr, "child: %s\n", store_errmsg(b));
		if (write(fds[1], &got, sizeof(got)) != (ssize_t)sizeof(got))
			_exit(3);
		_exit(rc == STORE_DUPLICATE ? 0 : 1);
	}
	close(fds[1]);
	usleep(300 * 1000);
	CHECK_INT(store_commit(a), 0);
	CHECK_INT(read(fds[0], &other, sizeof(other)), (ssize_t)sizeof(other));
	close(fds[0]);
	int status = -1;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_INT(other, id);
	CHECK_INT(store_count_active(a), 1);
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

TEST(test_cancels_pending)
{
	struct store *a = node(open_fresh("cancels"), "host:a", NODE_LEASE_MS);
	struct store *b = node(second(), "host:b", NODE_LEASE_MS);
	struct store *cli = second(); /* no node: a CLI on another machine */
	struct job_row rows[2];
	int64_t id[3], *ids;
	size_t n;
	for (int i = 0; i < 3; i++) {
		struct job_new j = new_job("listSources", NULL, 3 - i, 0);
		id[i] = insert(a, &j, 1000);
	}
	CHECK_INT(store_claim_due(a, 2000, rows, 2), 2);
	release_rows(rows, 2);
	CHECK_INT(store_claim_due(b, 2000, rows, 1), 1);
	release_rows(rows, 1);
	CHECK_INT(store_cancels_pending(a, &ids, &n), 0);
	CHECK(ids_are(ids, n, NULL, 0));
	CHECK_INT(store_job_cancel(cli, id[1], 2100), 2); /* running: only asked */
	CHECK_INT(store_job_cancel(cli, id[2], 2100), 2);
	CHECK_INT(store_cancels_pending(a, &ids, &n), 0);
	CHECK(ids_are(ids, n, &id[1], 1));
	CHECK_INT(store_cancels_pending(b, &ids, &n), 0);
	CHECK(ids_are(ids, n, &id[2], 1));
	CHECK_INT(store_cancels_pending(cli, &ids, &n), 0);
	CHECK(ids_are(ids, n, NULL, 0));
	/* a ends it as asked: nothing pending any more */
	CHECK_INT(store_job_end(a, id[1], JS_CANCELLED, NULL, "cancelled", 2200), 0);
	CHECK_INT(store_cancels_pending(a, &ids, &n), 0);
	CHECK(ids_are(ids, n, NULL, 0));
	store_close(cli);
	store_close(a);
	store_close(b);
}

int main(void)
{
	log_set_level(LOG_WARN);
	fixture_begin("test_pg_nodes");
	if (!fixture_pg()) {
		fprintf(stderr, "skipped: no database (set SEGSPOOL_TEST_PG to a libpq URI)\n");
		fixture_end();
		return 77;
	}
	RUN(test_claim_skips_locked);
	RUN(test_claim_race);
	RUN(test_rescue_expired_lease);
	RUN(test_rescues_at_once);
	RUN(test_heartbeat_keeps_lease);
	RUN(test_restart_buries_earlier_self);
	RUN(test_cancels_pending);
	RUN(test_cascade_meets_cancel);
	RUN(test_same_key_two_nodes);
	fixture_end();
	return tl_finish();
}
