/* ratelimit.h - token buckets keyed by name ("ws:default", "ws:default/op:createInvites").
 * Pure: the time is an argument. A hold (429, Retry-After, X-RateLimit-Reset with nothing
 * remaining) stops the whole bucket until it ends, not just the one job. */
#ifndef SEGSPOOL_RATELIMIT_H
#define SEGSPOOL_RATELIMIT_H

#include <stdint.h>

struct ratelimit;
struct rl_bucket;

struct ratelimit *rl_new(void);
void rl_free(struct ratelimit *rl);

/* rl_bucket_get - the bucket of this key, created full (tokens = burst) when new.
 * rate_per_sec <= 0 means unlimited. An existing bucket takes the new rate and burst. */
struct rl_bucket *rl_bucket_get(struct ratelimit *rl, const char *key, double rate_per_sec,
                                double burst, int64_t now_ms);

/* rl_wait_ms - 0 if a token is available now, else how long until one is (or the hold ends). */
int64_t rl_wait_ms(struct rl_bucket *b, int64_t now_ms);
/* rl_take - takes one token (call only after rl_wait_ms gave 0 for every bucket needed). */
void rl_take(struct rl_bucket *b, int64_t now_ms);
/* rl_hold - nothing passes until until_ms; tokens are emptied. */
void rl_hold(struct rl_bucket *b, int64_t until_ms);
/* rl_observe - the server's view: remaining requests and when its window resets.
 * remaining 0 holds the bucket until reset; fewer than our tokens lowers them. */
void rl_observe(struct rl_bucket *b, int64_t remaining, int64_t reset_ms, int64_t now_ms);

/* rl_reset_ms - X-RateLimit-Reset as a time: an HTTP date (Segment's), epoch seconds, or
 * seconds from now_ms; 0 when absent or unreadable. Uncapped: see rl_cap_wait. */
int64_t rl_reset_ms(const char *v, int64_t now_ms);
/* rl_cap_wait - a server-given wait for this bucket (Retry-After, msBeforeNext, the time to
 * X-RateLimit-Reset), cut to max_ms (max_server_wait; 0 or less: no cap). *warn is set when
 * it was cut and the bucket has not reported a cut wait since its current hold began: the
 * caller logs it once per hold, not once per job. */
int64_t rl_cap_wait(struct rl_bucket *b, int64_t wait_ms, int64_t max_ms, int64_t now_ms,
                    int *warn);
/* rl_note_429 - counts a 429 on the bucket and returns the least it must wait: 1 s, 2 s,
 * 4 s ... while 429s continue, at most 60 s or max_ms, whichever is lower. A 429 that
 * comes while the bucket is held (the other answers of requests in flight with the one
 * that set the hold) is not counted again: the floor grows when a wait did not help. */
int64_t rl_note_429(struct rl_bucket *b, int64_t now_ms, int64_t max_ms);
/* rl_note_answer - an answer other than 429: the 429 count starts again. */
void rl_note_answer(struct rl_bucket *b);
/* rl_hold_clamp - hold_until_ms, but no later than now_ms + max_ms: a hold saved by an
 * earlier run (under a larger max_server_wait, or none) is cut as a new one would be. */
int64_t rl_hold_clamp(int64_t hold_until_ms, int64_t now_ms, int64_t max_ms);

/* rl_endpoint_burst - the burst of an endpoint's bucket, from its documented limit per
 * minute: a tenth of the minute's allowance may go at once (whole requests: 6 for 60/min,
 * 6 for 65/min), and at least one (1 for 5/min). */
double rl_endpoint_burst(int rate_per_min);

/* persistence: a bucket's state, and restoring it after a restart */
const char *rl_bucket_key(const struct rl_bucket *b);
void rl_bucket_state(const struct rl_bucket *b, double *tokens, int64_t *updated_ms,
                     int64_t *hold_until_ms);
void rl_restore(struct ratelimit *rl, const char *key, double tokens, int64_t updated_ms,
                int64_t hold_until_ms);
typedef void (*rl_bucket_fn)(const struct rl_bucket *b, void *arg);
void rl_foreach(struct ratelimit *rl, rl_bucket_fn fn, void *arg);

/* rl_parse_rate - "100/s", "5/min", "60/m", "3600/h", "20" (per second) to per-second. */
int rl_parse_rate(const char *s, double *per_sec);

#endif
