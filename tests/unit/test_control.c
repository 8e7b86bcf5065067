/* test_control.c - retry and cancel over a real store in a temp dir: fan-out cascades,
 * the running hook, refusals, requests by state, control file round trips. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "store.h"
#include "strbuf.h"
#include "testlib.h"
#include "util.h"

#define NOW 1764547200000LL
#define LATER (NOW + 3600000LL)

static char tmpdir[64] = "/tmp/test_control.XXXXXX";
static int ndb;

/* open_fresh - a new writable store in the temp dir, or the test run stops. */
static struct store *open_fresh(void)
{
	struct strbuf path = STRBUF_INIT;
	struct store *st = NULL;
	char *err = NULL;
	sb_addf(&path, "%s/c%d.db", tmpdir, ++ndb);
	if (store_open(path.buf, 0, &st, &err) < 0) {
		fprintf(stderr, "cannot open %s: %s\n", path.buf, err);
		exit(1);
	}
	sb_release(&path);
	return st;
}

/* make - a job (child of parent when non-zero) brought into state s. */
static int64_t make(struct store *st, int64_t parent, enum job_state s)
{
	struct job_new j = {0};
	j.op_id = "listSources";
	j.spec_json = "{\"op\":\"listSources\",\"params\":{}}";
	j.workspace = "default";
	j.parent_id = parent;
	j.max_attempts = 5;
	j.priority = s == JS_QUEUED ? 0 : 100; /* claimed before every queued one */
	j.not_before_ms = NOW;
	int64_t id = 0;
	CHECK_INT(store_job_insert(st, &j, NOW, &id), STORE_INSERTED);
	if (s == JS_QUEUED)
		return id;
	struct job_row row;
	CHECK_INT(store_claim_due(st, NOW, &row, 1), 1);
	CHECK_INT(row.id, id);
	job_row_release(&row);
	struct job_success ok = {.result_json = "{}", .count_attempt = 1};
	switch (s) {
	case JS_RUNNING:
		break;
	case JS_WAITING:
		CHECK_INT(store_job_wait(st, id, LATER, 0, JW_CHILDREN,
		                         "waiting for its child jobs", NOW),
		          0);
		break;
	case JS_SUCCEEDED:
		CHECK_INT(store_job_succeed(st, id, &ok, NOW), 0);
		break;
	default:
		CHECK_INT(store_job_end(st, id, s, NULL, "made for the test", NOW), 0);
	}
	return id;
}

/* state_of - a job's state, or -1. */
static int state_of(struct store *st, int64_t id)
{
	struct job_row row;
	if (store_get(st, id, &row) != 0)
		return -1;
	int s = (int)row.state;
	job_row_release(&row);
	return s;
}

struct seen {
	int64_t running[8];
	int nrunning;
	int64_t id[64];
	enum control_outcome outcome[64];
	size_t nchildren[64];
	char why[64][128];
	int n;
};

static void on_running(int64_t id, void *arg)
{
	struct seen *s = arg;
	if (s->nrunning < 8)
		s->running[s->nrunning++] = id;
}

static void on_report(int64_t id, enum control_outcome o, size_t nchildren, const char *why,
                      void *arg)
{
	struct seen *s = arg;
	if (s->n >= 64)
		return;
	s->id[s->n] = id;
	s->outcome[s->n] = o;
	s->nchildren[s->n] = nchildren;
	snprintf(s->why[s->n], sizeof(s->why[0]), "%s", why ? why : "");
	s->n++;
}

/* apply_ids - one request over ids; returns control_apply's result. */
static int apply_ids(struct store *st, enum control_action action, int64_t *ids, size_t n,
                     struct seen *seen, int with_hook)
{
	struct control_request req = {.action = action, .ids = ids, .nids = n};
	struct control_hooks h = {with_hook ? on_running : NULL, on_report, seen};
	memset(seen, 0, sizeof(*seen));
	return control_apply(st, &req, NOW + 1000, &h);
}

TEST(cancel_follows_fan_out)
{
	struct store *st = open_fresh();
	int64_t parent = make(st, 0, JS_WAITING);
	int64_t queued = make(st, parent, JS_QUEUED);
	int64_t waiting = make(st, parent, JS_WAITING);
	int64_t done = make(st, parent, JS_SUCCEEDED);
	int64_t other = make(st, 0, JS_QUEUED);
	struct seen seen;
	int64_t ids[] = {parent};
	CHECK_INT(apply_ids(st, CONTROL_CANCEL, ids, 1, &seen, 0), 0);
	CHECK_INT(state_of(st, parent), JS_CANCELLED);
	CHECK_INT(state_of(st, queued), JS_CANCELLED);
	CHECK_INT(state_of(st, waiting), JS_CANCELLED);
	CHECK_INT(state_of(st, done), JS_SUCCEEDED); /* its pages stay */
	CHECK_INT(state_of(st, other), JS_QUEUED);
	CHECK_INT(seen.n, 1);
	CHECK_INT(seen.outcome[0], CONTROL_DONE);
	CHECK_INT(seen.nchildren[0], 2);
	store_close(st);
}

TEST(cancel_of_a_running_job)
{
	struct store *st = open_fresh();
	int64_t parent = make(st, 0, JS_WAITING);
	int64_t run1 = make(st, parent, JS_RUNNING);
	int64_t lone = make(st, 0, JS_RUNNING);
	struct seen seen;
	int64_t ids[] = {parent, lone};
	/* the daemon: the hook aborts the requests; the store only flags them */
	CHECK_INT(apply_ids(st, CONTROL_CANCEL, ids, 2, &seen, 1), 0);
	CHECK_INT(seen.nrunning, 2);
	CHECK_INT(seen.running[0], run1);
	CHECK_INT(seen.running[1], lone);
	CHECK_INT(state_of(st, run1), JS_RUNNING);
	struct job_row row;
	CHECK_INT(store_get(st, run1, &row), 0);
	CHECK_INT(row.cancel_requested, 1);
	job_row_release(&row);
	CHECK_INT(seen.outcome[0], CONTROL_DONE);
	CHECK_INT(seen.nchildren[0], 1);
	CHECK_INT(seen.outcome[1], CONTROL_ABORTED);
	store_close(st);

	/* the CLI, no daemon: a job a crash left running is ended at once */
	st = open_fresh();
	lone = make(st, 0, JS_RUNNING);
	ids[0] = lone;
	CHECK_INT(apply_ids(st, CONTROL_CANCEL, ids, 1, &seen, 0), 0);
	CHECK_INT(seen.nrunning, 0);
	CHECK_INT(state_of(st, lone), JS_CANCELLED);
	CHECK_INT(seen.outcome[0], CONTROL_DONE);
	store_close(st);
}

TEST(cancel_of_a_cancelled_parent_takes_its_children)
{
	struct store *st = open_fresh();
	int64_t parent = make(st, 0, JS_CANCELLED);
	int64_t kid = make(st, parent, JS_QUEUED);
	struct seen seen;
	int64_t ids[] = {parent};
	CHECK_INT(apply_ids(st, CONTROL_CANCEL, ids, 1, &seen, 0), 0);
	CHECK_INT(state_of(st, kid), JS_CANCELLED);
	CHECK_INT(seen.outcome[0], CONTROL_DONE);
	CHECK_INT(seen.nchildren[0], 1);
	/* again: nothing left to cancel, so it is refused, and says why */
	CHECK_INT(apply_ids(st, CONTROL_CANCEL, ids, 1, &seen, 0), 1);
	CHECK_INT(seen.outcome[0], CONTROL_REFUSED);
	CHECK_STR(seen.why[0], "it is already cancelled");
	store_close(st);
}

TEST(retry_follows_fan_out)
{
	struct store *st = open_fresh();
	int64_t parent = make(st, 0, JS_FAILED);
	int64_t failed = make(st, parent, JS_FAILED);
	int64_t dead = make(st, parent, JS_DEAD);
	int64_t cancelled = make(st, parent, JS_CANCELLED);
	int64_t done = make(st, parent, JS_SUCCEEDED);
	int64_t other = make(st, 0, JS_FAILED);
	struct seen seen;
	int64_t ids[] = {parent};
	CHECK_INT(apply_ids(st, CONTROL_RETRY, ids, 1, &seen, 0), 0);
	CHECK_INT(state_of(st, parent), JS_QUEUED);
	CHECK_INT(state_of(st, failed), JS_QUEUED);
	CHECK_INT(state_of(st, dead), JS_QUEUED);
	CHECK_INT(state_of(st, cancelled), JS_QUEUED);
	CHECK_INT(state_of(st, done), JS_SUCCEEDED);
	CHECK_INT(state_of(st, other), JS_FAILED);
	CHECK_INT(seen.outcome[0], CONTROL_DONE);
	CHECK_INT(seen.nchildren[0], 3);
	store_close(st);
}

TEST(retry_by_state_reports_each_job_once)
{
	struct store *st = open_fresh();
	int64_t parent = make(st, 0, JS_FAILED);
	int64_t k1 = make(st, parent, JS_FAILED);
	int64_t k2 = make(st, parent, JS_FAILED);
	int64_t lone = make(st, 0, JS_FAILED);
	int64_t dead = make(st, 0, JS_DEAD);
	struct control_request req = {.action = CONTROL_RETRY, .by_state = 1, .state = JS_FAILED};
	struct seen seen = {0};
	struct control_hooks h = {NULL, on_report, &seen};
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(control_apply(st, &req, NOW, &h), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(seen.n, 4);
	for (int i = 0; i < seen.n; i++)
		CHECK_INT(seen.outcome[i], CONTROL_DONE);
	CHECK_INT(seen.id[0], parent);
	CHECK_INT(seen.nchildren[0], 2);
	CHECK_INT(seen.nchildren[1], 0); /* the children, listed after it, went with it */
	CHECK_INT(state_of(st, k1), JS_QUEUED);
	CHECK_INT(state_of(st, k2), JS_QUEUED);
	CHECK_INT(state_of(st, lone), JS_QUEUED);
	CHECK_INT(state_of(st, dead), JS_DEAD);
	store_close(st);
}

TEST(refusals_say_why)
{
	struct store *st = open_fresh();
	int64_t queued = make(st, 0, JS_QUEUED);
	int64_t done = make(st, 0, JS_SUCCEEDED);
	struct seen seen;
	int64_t ids[] = {queued, done, 999};
	CHECK_INT(apply_ids(st, CONTROL_RETRY, ids, 3, &seen, 0), 3);
	CHECK_INT(seen.outcome[0], CONTROL_REFUSED);
	CHECK_STR(seen.why[0], "it is queued; only failed, dead or cancelled jobs can be retried");
	CHECK_INT(seen.outcome[2], CONTROL_ERROR);
	CHECK_STR(seen.why[2], "no such job");
	CHECK_INT(apply_ids(st, CONTROL_CANCEL, ids + 1, 1, &seen, 0), 1);
	CHECK_INT(seen.outcome[0], CONTROL_REFUSED);
	CHECK_STR(seen.why[0], "it has already succeeded");
	CHECK_INT(state_of(st, queued), JS_QUEUED);
	CHECK_INT(state_of(st, done), JS_SUCCEEDED);
	store_close(st);
}

TEST(many_jobs_in_one_transaction)
{
	struct store *st = open_fresh();
	CHECK_INT(store_begin(st), 0);
	for (int i = 0; i < 2000; i++)
		make(st, 0, JS_DEAD);
	CHECK_INT(store_commit(st), 0);
	struct control_request req = {.action = CONTROL_RETRY, .by_state = 1, .state = JS_DEAD};
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(control_apply(st, &req, NOW, NULL), 0);
	CHECK_INT(store_rollback(st), 0); /* one transaction: undone whole */
	int64_t counts[JS_COUNT];
	CHECK_INT(store_counts(st, counts), 0);
	CHECK_INT(counts[JS_DEAD], 2000);
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(control_apply(st, &req, NOW, NULL), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(store_counts(st, counts), 0);
	CHECK_INT(counts[JS_QUEUED], 2000);
	store_close(st);
}

TEST(request_round_trip)
{
	struct control_request req = {0}, back;
	struct strbuf why = STRBUF_INIT;
	int64_t ids[] = {3, 9007199254740991LL};
	req.action = CONTROL_CANCEL;
	req.ids = ids;
	req.nids = 2;
	char *text = control_request_to_json(&req);
	CHECK_STR(text, "{\"action\":\"cancel\",\"ids\":[3,9007199254740991]}");
	CHECK_INT(control_request_parse(text, &back, &why), 0);
	CHECK_INT(back.action, CONTROL_CANCEL);
	CHECK_INT(back.nids, 2);
	CHECK(back.nids == 2 && back.ids[1] == ids[1]);
	control_request_release(&back);
	free(text);
	req = (struct control_request){.action = CONTROL_RETRY, .by_state = 1, .state = JS_DEAD};
	text = control_request_to_json(&req);
	CHECK_STR(text, "{\"action\":\"retry\",\"state\":\"dead\"}");
	CHECK_INT(control_request_parse(text, &back, &why), 0);
	CHECK(back.by_state && back.state == JS_DEAD && back.action == CONTROL_RETRY);
	free(text);
	const char *bad[] = {"",
	                     "[]",
	                     "{\"ids\":[1]}",
	                     "{\"action\":\"delete\",\"ids\":[1]}",
	                     "{\"action\":\"retry\"}",
	                     "{\"action\":\"retry\",\"state\":\"gone\"}",
	                     "{\"action\":\"retry\",\"ids\":[0]}",
	                     "{\"action\":\"retry\",\"ids\":[1.5]}",
	                     "{\"action\":\"retry\",\"ids\":[\"1\"]}"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		sb_reset(&why);
		CHECK_INT(control_request_parse(bad[i], &back, &why), -1);
		CHECK(why.len > 0);
		CHECK(back.ids == NULL);
	}
	sb_release(&why);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	log_set_level(LOG_ERROR);
	RUN(cancel_follows_fan_out);
	RUN(cancel_of_a_running_job);
	RUN(cancel_of_a_cancelled_parent_takes_its_children);
	RUN(retry_follows_fan_out);
	RUN(retry_by_state_reports_each_job_once);
	RUN(refusals_say_why);
	RUN(many_jobs_in_one_transaction);
	RUN(request_round_trip);
	int rc = tl_finish();
	for (int i = 1; i <= ndb; i++) {
		char path[128];
		const char *ext[] = {"", "-wal", "-shm"};
		for (size_t e = 0; e < ARRAY_SIZE(ext); e++) {
			snprintf(path, sizeof(path), "%s/c%d.db%s", tmpdir, i, ext[e]);
			unlink(path);
		}
	}
	rmdir(tmpdir);
	return rc;
}
