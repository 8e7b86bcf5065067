/* job_state.c - the job states' names and allowed transitions; see job_state.h. */
#include "job_state.h"

#include <string.h>

/* The numbers are on disk and in SQL text: renumbering breaks every existing database
 * and the statements and indexes below, so each place that spells one is named here. */
_Static_assert(
    JS_QUEUED == 0 && JS_WAITING == 2,
    "sql/sqlite/001_init.sql's jobs_due index and sqlite_sql.c's DUE_JOBS: state IN (0, 2)");
_Static_assert(JS_RUNNING == 1,
               "sql/sqlite/003_running_index.sql's jobs_running index, sqlite_sql.c's "
               "RUNNING_JOBS, S_JOB_CLAIM and S_OPEN_ATTEMPTS: state = 1");
_Static_assert(JS_WAITING == 2, "sqlite_sql.c's S_COUNT_WAITING_FOR and S_WAKE_WAITERS: state = 2");
_Static_assert(JS_QUEUED == 0, "sqlite_sql.c's S_JOB_INSERT: a new job's state is 0");
_Static_assert(JS_SUCCEEDED == 3 && JS_FAILED == 4 && JS_DEAD == 5 && JS_CANCELLED == 6,
               "states stored in existing databases (sql/sqlite/001_init.sql's comment)");
_Static_assert(JS_COUNT == 7, "sql/sqlite/001_init.sql's CHECK (state BETWEEN 0 AND 6)");
_Static_assert(JW_BACKOFF == 0 && JW_OUR_LIMIT == 1 && JW_SERVER_LIMIT == 2 && JW_TOKEN == 3 &&
                   JW_CHILDREN == 4,
               "the waits numbered as sql/sqlite/008_waiting_for.sql derives them for old rows");
_Static_assert(JW_DEPS == 5, "sql/sqlite/011_deps.sql's comment, sqlite_sql.c's S_DEPS_* and "
                             "S_COUNT_WAITING_FOR: waiting_for = 5");

static const char *const names[JS_COUNT] = {
    [JS_QUEUED] = "queued",       [JS_RUNNING] = "running", [JS_WAITING] = "waiting",
    [JS_SUCCEEDED] = "succeeded", [JS_FAILED] = "failed",   [JS_DEAD] = "dead",
    [JS_CANCELLED] = "cancelled",
};

#define TO(s) (1u << (s))
#define ENDS (TO(JS_FAILED) | TO(JS_DEAD) | TO(JS_CANCELLED))

/* where each state may go, and which store call moves it there */
static const unsigned transitions[JS_COUNT] = {
    /* claimed; parked for its dependencies (ingest, retry); ended (store_job_end), cancelled */
    [JS_QUEUED] = TO(JS_RUNNING) | TO(JS_WAITING) | ENDS,
    /* succeeded, put to wait, requeued (no attempt, or found running at start), ended */
    [JS_RUNNING] = TO(JS_SUCCEEDED) | TO(JS_WAITING) | TO(JS_QUEUED) | ENDS,
    /* claimed when due; ended, cancelled */
    [JS_WAITING] = TO(JS_RUNNING) | ENDS,
    /* its output could not be written: failed, the result kept (store_job_output_lost) */
    [JS_SUCCEEDED] = TO(JS_FAILED),
    /* retried; back to wait for a dependency retried; cancelled */
    [JS_FAILED] = TO(JS_QUEUED) | TO(JS_WAITING) | TO(JS_CANCELLED),
    [JS_DEAD] = TO(JS_QUEUED) | TO(JS_CANCELLED),
    /* retried */
    [JS_CANCELLED] = TO(JS_QUEUED),
};

/* job_state_name - the state's name, "unknown" out of range. */
const char *job_state_name(enum job_state s)
{
	if ((unsigned)s >= JS_COUNT)
		return "unknown";
	return names[s];
}

/* job_state_parse - the state named name; 0, or -1 if there is none. */
int job_state_parse(const char *name, enum job_state *out)
{
	for (int i = 0; i < JS_COUNT; i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum job_state)i;
			return 0;
		}
	}
	return -1;
}

/* job_state_terminal - 1 for the states only a retry or cancel leaves. */
int job_state_terminal(enum job_state s)
{
	return s == JS_SUCCEEDED || s == JS_FAILED || s == JS_DEAD || s == JS_CANCELLED;
}

/* job_state_can - whether the table allows from -> to. */
int job_state_can(enum job_state from, enum job_state to)
{
	if ((unsigned)from >= JS_COUNT || (unsigned)to >= JS_COUNT)
		return 0;
	return (transitions[from] & TO(to)) != 0;
}
