/* job_state.h - a job's states, their names, and the moves between them.
 *
 * A job is created queued. The scheduler claims it (running); a request's outcome makes
 * it succeeded, waiting (a retry or a rate limit later), queued again (put back without
 * an attempt) or failed/dead; retry and cancel move it out of the terminal states. The
 * numbers are stored in databases and written in SQL (the migrations in sql/sqlite/, the store's
 * statements): job_state.c holds them fixed with _Static_assert. */
#ifndef SEGSPOOL_JOB_STATE_H
#define SEGSPOOL_JOB_STATE_H

enum job_state {
	JS_QUEUED,    /* due at next_run_ms, waiting for a slot */
	JS_RUNNING,   /* claimed: a request is being sent or its outcome recorded */
	JS_WAITING,   /* due again at next_run_ms: a retry's backoff or a rate limit's reset */
	JS_SUCCEEDED, /* result stored (and its output written) */
	JS_FAILED,    /* a permanent error, or attempts or max_age used up */
	JS_DEAD,      /* retries exhausted on a retryable error */
	JS_CANCELLED, /* by `segspool cancel` or a cancel control file */
	JS_COUNT
};

/* why a waiting job waits, stored with it (sql/sqlite/008_waiting_for.sql): a change that
 * concerns some of them (a raised limit, a token after SIGHUP) wakes those by this, not by
 * the text of their reason */
enum job_wait {
	JW_BACKOFF,      /* a retry's backoff, or anything else that simply passes */
	JW_OUR_LIMIT,    /* our own rate-limit buckets */
	JW_SERVER_LIMIT, /* the API's 429 and its hold */
	JW_TOKEN,        /* its workspace has no usable token */
	JW_CHILDREN,     /* a fan-out parent, for its children */
	JW_DEPS,         /* the jobs it waits for ("after", $ref) to succeed (sql/sqlite/011) */
	JW_COUNT
};

/* job_state_name - the lowercase name of a state ("queued"), "unknown" out of range. */
const char *job_state_name(enum job_state s);
/* job_state_parse - the state named name; 0, or -1 if there is none. */
int job_state_parse(const char *name, enum job_state *out);
/* job_state_terminal - 1 for states a job leaves only by an explicit retry or cancel
 * (succeeded, failed, dead, cancelled), else 0. */
int job_state_terminal(enum job_state s);
/* job_state_can - 1 when a job may move from `from` to `to`, else 0 (also out of range,
 * and for staying put): the transitions of the store's state changes, in one table. */
int job_state_can(enum job_state from, enum job_state to);

#endif
