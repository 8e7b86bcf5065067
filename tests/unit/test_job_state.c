/* test_job_state - the states' names and the table of allowed transitions. */
#include "job_state.h"

#include "testlib.h"

TEST(names_round_trip)
{
	static const char *const want[JS_COUNT] = {"queued", "running", "waiting",  "succeeded",
	                                           "failed", "dead",    "cancelled"};
	for (int i = 0; i < JS_COUNT; i++) {
		enum job_state s = JS_COUNT;
		CHECK_STR(job_state_name((enum job_state)i), want[i]);
		CHECK_INT(job_state_parse(want[i], &s), 0);
		CHECK_INT(s, i);
	}
	enum job_state s = JS_QUEUED;
	CHECK_INT(job_state_parse("Queued", &s), -1);
	CHECK_INT(job_state_parse("", &s), -1);
	CHECK_INT(job_state_parse("unknown", &s), -1);
	CHECK_INT(s, JS_QUEUED);
	CHECK_STR(job_state_name(JS_COUNT), "unknown");
	CHECK_STR(job_state_name((enum job_state) - 1), "unknown");
}

TEST(terminal_states)
{
	CHECK(!job_state_terminal(JS_QUEUED));
	CHECK(!job_state_terminal(JS_RUNNING));
	CHECK(!job_state_terminal(JS_WAITING));
	CHECK(job_state_terminal(JS_SUCCEEDED));
	CHECK(job_state_terminal(JS_FAILED));
	CHECK(job_state_terminal(JS_DEAD));
	CHECK(job_state_terminal(JS_CANCELLED));
}

/* the whole table, as the store's state changes make it: row from, column to
 * (q r w s f d c); any change to the rules shows here */
TEST(transition_table)
{
	static const char *const rows[JS_COUNT] = {
	    /*           qrwsfdc */
	    [JS_QUEUED] = ".xx.xxx",    /* claim; park for dependencies; end; cancel */
	    [JS_RUNNING] = "x.xxxxx",   /* requeue; wait; succeed; end (cancel included) */
	    [JS_WAITING] = ".x..xxx",   /* claim when due; end; cancel */
	    [JS_SUCCEEDED] = "....x..", /* output lost */
	    [JS_FAILED] = "x.x...x",    /* retry; a dependency's retry; cancel */
	    [JS_DEAD] = "x.....x",      /* retry; cancel */
	    [JS_CANCELLED] = "x......", /* retry */
	};
	for (int from = 0; from < JS_COUNT; from++)
		for (int to = 0; to < JS_COUNT; to++) {
			int want = rows[from][to] == 'x';
			int got = job_state_can((enum job_state)from, (enum job_state)to);
			if (got != want)
				fprintf(stderr, "%s -> %s: got %d\n",
				        job_state_name((enum job_state)from),
				        job_state_name((enum job_state)to), got);
			CHECK_INT(got, want);
		}
	/* a terminal state is left only towards queued (retry), waiting (a failed dependency
	 * retried), cancelled or, for a success whose output was lost, failed: never straight
	 * back to running */
	for (int s = 0; s < JS_COUNT; s++)
		if (job_state_terminal((enum job_state)s))
			CHECK(!job_state_can((enum job_state)s, JS_RUNNING));
	CHECK(!job_state_can(JS_COUNT, JS_QUEUED));
	CHECK(!job_state_can(JS_QUEUED, JS_COUNT));
	CHECK(!job_state_can((enum job_state) - 1, JS_QUEUED));
}

int main(void)
{
	RUN(names_round_trip);
	RUN(terminal_states);
	RUN(transition_table);
	return tl_finish();
}
