/* retry.h - outcome classification and backoff policy. Pure: time and randomness are
 * arguments, so tests drive them exactly. */
#ifndef SEGSPOOL_RETRY_H
#define SEGSPOOL_RETRY_H

#include <stddef.h>
#include <stdint.h>

/* the bounds of a retry policy, in job documents and the config alike */
#define RETRY_MAX_ATTEMPTS 100
#define RETRY_MAX_INITIAL_DAYS 1
#define RETRY_MAX_BACKOFF_DAYS 7
#define RETRY_MAX_AGE_DAYS 3650 /* keeps now + max_age far from overflow */
#define RETRY_DAY_MS 86400000LL
#define RETRY_MAX_INITIAL_MS (RETRY_MAX_INITIAL_DAYS * RETRY_DAY_MS)
#define RETRY_MAX_BACKOFF_MS (RETRY_MAX_BACKOFF_DAYS * RETRY_DAY_MS)
#define RETRY_MAX_AGE_MS (RETRY_MAX_AGE_DAYS * RETRY_DAY_MS)

struct retry_policy {
	int max_attempts; /* attempts that count, including the first */
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
 * now_wall_ms; -1 if absent or unparsable. A date in the past gives 0. What the server
 * asked, up to about 100 years: the caller caps it (retry_cap_wait). */
int64_t retry_after_ms(const char *header, int64_t now_wall_ms);

/* retry_ms_before_next - errors[0].data.msBeforeNext from an error body; -1 if absent.
 * Uncapped as retry_after_ms is. */
int64_t retry_ms_before_next(const char *body, size_t len);

/* retry_cap_wait - a server-given wait (Retry-After, msBeforeNext, X-RateLimit-Reset)
 * cut to max_ms (the config's max_server_wait; 0 or less: no cap); -1 stays -1. */
int64_t retry_cap_wait(int64_t asked_ms, int64_t max_ms);

/* retry_format_duration - ms as the config writes durations: "1d", "90m", "250ms"
 * when exact, else rounded to the largest unit up to hours ("8760h"). */
void retry_format_duration(int64_t ms, char out[32]);

/* retry_policy_merge - the job's own settings (fields 0 when the job sets none) over the
 * defaults (the config's); max_ms is raised to initial_ms when below it. */
struct retry_policy retry_policy_merge(const struct retry_policy *defaults,
                                       const struct retry_policy *job);

enum policy_source { POLICY_FROM_DEFAULT, POLICY_FROM_CONFIG, POLICY_FROM_JOB };

/* policy_source_name - "default", "config" or "job". */
const char *policy_source_name(enum policy_source s);

struct retry_policy_sources {
	enum policy_source max_attempts, initial_ms, max_ms, max_age_ms;
};

/* retry_policy_effective - the policy a job runs with (retry_policy_merge of job over
 * config) and where each value came from: the job when it sets it, else the config when
 * the config's differs from builtin (the built-in defaults, config_init's), else the
 * default. A max_ms the merge raised to initial_ms comes from where initial_ms does. */
struct retry_policy retry_policy_effective(const struct retry_policy *builtin,
                                           const struct retry_policy *config,
                                           const struct retry_policy *job,
                                           struct retry_policy_sources *from);

/* the reason of a wait after a 429, as the job's transitions record it */
#define RETRY_RATE_LIMITED_REASON "rate limited by the API"

enum retry_action { RETRY_SUCCEED, RETRY_WAIT, RETRY_FAIL, RETRY_DEAD };

struct retry_decision {
	enum retry_action action;
	int64_t next_run_ms; /* RETRY_WAIT: when */
	int count_attempt;   /* RETRY_WAIT: whether this attempt used one up */
	const char *reason;  /* for the state change: static text, or this decision's text */
	char text[96];
};

/* retry_decide - what happens to a job after an attempt. attempts_used counts earlier
 * counted attempts (not this one); floor_ms is the server's wait (Retry-After or
 * msBeforeNext, capped), -1 if none; unknown_retry: retry OUTCOME_UNKNOWN (at least once)
 * or fail it (at most once). A 429 waits at least a second, and as retry_limit_wait says. */
void retry_decide(const struct retry_policy *p, enum outcome o, int attempts_used,
                  int64_t created_ms, int64_t now_ms, int64_t floor_ms, int unknown_retry,
                  uint64_t rnd, struct retry_decision *out);

/* retry_limit_wait - a job held wait_ms by a rate limit (ours, or a 429's hold): RETRY_WAIT
 * until now + wait_ms or its max-age deadline (created_ms + max_age_ms), whichever is
 * first; RETRY_DEAD when it is held (wait_ms > 0) and the deadline has come, with the
 * reason "max_age 1d passed while waiting for the rate limit". Never counts an attempt. */
void retry_limit_wait(const struct retry_policy *p, int64_t created_ms, int64_t now_ms,
                      int64_t wait_ms, struct retry_decision *out);

/* retry_lost_answer_matters - whether a failed answer may follow an applied request whose
 * answer was lost: a 409 or 404 on a mutation (mutates) of a job with tries >= 2 attempts
 * recorded. Only then is it worth counting the job's lost answers. */
int retry_lost_answer_matters(int status, int mutates, int tries);
/* retry_after_lost_answer - when retry_lost_answer_matters and lost_answers (earlier
 * attempts whose answer was lost) > 0, the reason the job ends with, written to buf
 * (naming the status: that earlier request was probably applied, a create that now
 * conflicts or a delete of what is gone, which the bare status would hide); else NULL. */
const char *retry_after_lost_answer(int status, int mutates, int tries, int64_t lost_answers,
                                    char *buf, size_t size);

/* retry_attempt_outcome - the outcome an attempt is recorded with: outcome_name(o), but an
 * OUTCOME_CANCELLED cut off by the daemon's own stop (interrupted) is "unknown" for a
 * mutation (it may have been applied) and "interrupted" for a GET. */
const char *retry_attempt_outcome(enum outcome o, int interrupted, int mutates);
/* retry_429_wait - the wait a 429 asked for: the longer of Retry-After and msBeforeNext
 * (each -1 if absent), -1 when neither; *source names the header or field it came from. */
int64_t retry_429_wait(int64_t retry_after_ms, int64_t ms_before_next, const char **source);

/* rng_next - xorshift64*: the daemon's random source (seeded from the clock and pid). */
uint64_t rng_next(uint64_t *state);

#endif
