/* retry.h - outcome classification and backoff policy. Pure: time and randomness are
 * arguments, so tests drive them exactly. */
#ifndef SEGSPOOL_RETRY_H
#define SEGSPOOL_RETRY_H

#include <stddef.h>
#include <stdint.h>

struct retry_policy {
	int max_attempts;   /* attempts that count, including the first */
	int64_t initial_ms;
	int64_t max_ms;
	int64_t max_age_ms; /* 0 = no limit; from the job's creation */
};

enum outcome {
	OUTCOME_SUCCESS,      /* 2xx */
	OUTCOME_RETRY,        /* transport error before sending, 408, 500, 502, 503, 504 */
	OUTCOME_RATE_LIMITED, /* 429: waits, does not use an attempt */
	OUTCOME_PERMANENT,    /* any other 4xx (and 3xx, 1xx): retrying cannot fix it */
	OUTCOME_UNKNOWN,      /* a mutation that may have reached the server, no answer */
	OUTCOME_CANCELLED,
};

const char *outcome_name(enum outcome o);

/* retry_classify - transport: 0 when a response came; request_sent: the request may have
 * reached the server; mutates: not a GET. A transport failure of a GET is OUTCOME_RETRY. */
enum outcome retry_classify(int http_status, int transport_failed, int request_sent, int mutates);

/* retry_backoff_ms - "full jitter": uniform in [0, min(max_ms, initial_ms * 2^(failures-1))],
 * failures >= 1 (so the first retry's cap is initial_ms); rnd is a uniformly random
 * 64-bit value. */
int64_t retry_backoff_ms(const struct retry_policy *p, int failures, uint64_t rnd);

/* retry_after_ms - a Retry-After header (delay-seconds or HTTP date) as a wait from
 * now_wall_ms; -1 if absent or unparsable. A date in the past gives 0. */
int64_t retry_after_ms(const char *header, int64_t now_wall_ms);

/* retry_ms_before_next - errors[0].data.msBeforeNext from an error body; -1 if absent. */
int64_t retry_ms_before_next(const char *body, size_t len);

enum retry_action { RETRY_SUCCEED, RETRY_WAIT, RETRY_FAIL, RETRY_DEAD };

struct retry_decision {
	enum retry_action action;
	int64_t next_run_ms;  /* RETRY_WAIT: when */
	int count_attempt;    /* RETRY_WAIT: whether this attempt used one up */
	const char *reason;   /* static text for the state change */
};

/* retry_decide - what happens to a job after an attempt. attempts_used counts earlier
 * counted attempts (not this one); floor_ms is the server's wait (Retry-After or
 * msBeforeNext), -1 if none; unknown_retry: retry OUTCOME_UNKNOWN (at least once) or fail
 * it (at most once). */
void retry_decide(const struct retry_policy *p, enum outcome o, int attempts_used,
		  int64_t created_ms, int64_t now_ms, int64_t floor_ms, int unknown_retry,
		  uint64_t rnd, struct retry_decision *out);

/* rng_next - xorshift64*: the daemon's random source (seeded from the clock and pid). */
uint64_t rng_next(uint64_t *state);

#endif
