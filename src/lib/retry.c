/* retry.c - outcome classification and backoff policy.
 *
 * Pure: no clock reads, no global randomness, no I/O. The scheduler passes the time and a
 * random value in, so every decision here can be reproduced exactly by a test.
 *
 * Backoff numbering: failures counts the failed attempts so far, this one included, so
 * the delay after the first failure uses failures = 1. Its cap is initial_ms (2^0), the
 * second's 2 * initial_ms, and so on: DESIGN's "initial_ms x 2^attempt" with the attempt
 * counted from 0, so a job's first retry waits at most initial_ms.
 */
#include "retry.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util.h"

/* the longest wait the parsers report (about 100 years): what the server asked, so the
 * daemon can say so when it cuts the wait to max_server_wait, within a range where adding
 * it to a time cannot overflow */
#define WAIT_CAP_MS (100LL * 365 * 24 * 60 * 60 * 1000)
/* the least a 429 waits, whatever the server said ("Retry-After: 0", a date in the past):
 * the daemon raises it while 429s continue (rl_note_429) */
#define RATE_LIMIT_MIN_MS 1000

/* outcome_name - the word the store records as an attempt's outcome. */
const char *outcome_name(enum outcome o)
{
	switch (o) {
	case OUTCOME_SUCCESS:
		return "ok";
	case OUTCOME_RETRY:
		return "retry";
	case OUTCOME_RATE_LIMITED:
		return "rate_limited";
	case OUTCOME_PERMANENT:
		return "failed";
	case OUTCOME_UNKNOWN:
		return "unknown";
	case OUTCOME_CANCELLED:
		return "cancelled";
	}
	return "unknown";
}

/* status_is_transient - statuses where the API answered that it could not do it now. */
static int status_is_transient(int status)
{
	switch (status) {
	case 408:
	case 500:
	case 502:
	case 503:
	case 504:
		return 1;
	default:
		return 0;
	}
}

/* retry_classify - what an attempt's result means for the job. */
enum outcome retry_classify(int http_status, int transport_failed, int request_sent, int mutates)
{
	if (transport_failed) {
		/* a mutation that may have arrived cannot be resent blindly: it may have run */
		if (request_sent && mutates)
			return OUTCOME_UNKNOWN;
		return OUTCOME_RETRY;
	}
	if (http_status >= 200 && http_status <= 299)
		return OUTCOME_SUCCESS;
	if (http_status == 429)
		return OUTCOME_RATE_LIMITED;
	/*
	 * A 502 or 504 on a mutation might mean the gateway forwarded it, but the API did
	 * answer, and Segment documents these as retryable; other 5xx (501, 505) say the
	 * request itself is not supported, which a retry cannot change.
	 */
	if (status_is_transient(http_status))
		return OUTCOME_RETRY;
	return OUTCOME_PERMANENT;
}

/* sat_add - a + b for non-negative b, stopping at INT64_MAX instead of wrapping. */
static int64_t sat_add(int64_t a, int64_t b)
{
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	return a + b;
}

/* backoff_cap - min(max_ms, initial_ms * 2^(failures - 1)) without overflow; a max_ms
 * of 0 or less sets no limit (the product then saturates at INT64_MAX). */
static int64_t backoff_cap(const struct retry_policy *p, int failures)
{
	int64_t cap = p->initial_ms;
	if (cap <= 0)
		return 0;
	for (int i = 1; i < failures; i++) {
		if (cap > INT64_MAX / 2) {
			cap = INT64_MAX;
			break;
		}
		cap *= 2;
		if (p->max_ms > 0 && cap >= p->max_ms)
			break;
	}
	if (p->max_ms > 0 && cap > p->max_ms)
		cap = p->max_ms;
	return cap;
}

/* retry_backoff_ms - full jitter: uniform in [0, cap]; failures below 1 count as 1. */
int64_t retry_backoff_ms(const struct retry_policy *p, int failures, uint64_t rnd)
{
	if (failures < 1)
		failures = 1;
	uint64_t cap = (uint64_t)backoff_cap(p, failures);
	/* cap <= INT64_MAX, so cap + 1 cannot wrap and the result fits an int64_t */
	return (int64_t)(rnd % (cap + 1));
}

/* is_http_space - the optional whitespace around a header value. */
static int is_http_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* delay_seconds_ms - Retry-After's delay-seconds: digits only, up to WAIT_CAP_MS. */
static int64_t delay_seconds_ms(const char *s, size_t len)
{
	int64_t sec = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (sec < WAIT_CAP_MS)
			sec = sec * 10 + (s[i] - '0');
	}
	int64_t ms = sec * 1000;
	return ms > WAIT_CAP_MS ? WAIT_CAP_MS : ms;
}

/* retry_after_ms - a Retry-After value as a wait in ms from now_wall_ms, or -1. */
int64_t retry_after_ms(const char *header, int64_t now_wall_ms)
{
	if (!header)
		return -1;
	while (is_http_space(*header))
		header++;
	size_t len = strlen(header);
	while (len > 0 && is_http_space(header[len - 1]))
		len--;
	if (len == 0)
		return -1;
	if (header[0] >= '0' && header[0] <= '9')
		return delay_seconds_ms(header, len);

	char date[64];
	if (len >= sizeof(date))
		return -1;
	memcpy(date, header, len);
	date[len] = '\0';
	int64_t when;
	if (parse_http_date(date, &when))
		return -1;
	if (when <= now_wall_ms)
		return 0;
	/* a date is as much the server's wait as delay-seconds are: the same cap applies */
	int64_t wait = when - now_wall_ms;
	return wait > WAIT_CAP_MS ? WAIT_CAP_MS : wait;
}

/* ms_from_json - a JSON number as whole milliseconds (rounded up), or -1. */
static int64_t ms_from_json(const cJSON *n)
{
	if (!cJSON_IsNumber(n))
		return -1;
	double d = n->valuedouble;
	if (!(d >= 0))
		return -1;
	if (d >= (double)WAIT_CAP_MS)
		return WAIT_CAP_MS;
	int64_t ms = (int64_t)d;
	if ((double)ms < d)
		ms++;
	return ms;
}

/* retry_ms_before_next - errors[0].data.msBeforeNext of a 429 body, or -1. */
int64_t retry_ms_before_next(const char *body, size_t len)
{
	if (!body || len == 0)
		return -1;
	cJSON *root = cJSON_ParseWithLength(body, len);
	if (!root)
		return -1;
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(root, "errors");
	const cJSON *first = cJSON_IsArray(errors) ? cJSON_GetArrayItem(errors, 0) : NULL;
	const cJSON *data =
	    cJSON_IsObject(first) ? cJSON_GetObjectItemCaseSensitive(first, "data") : NULL;
	const cJSON *wait =
	    cJSON_IsObject(data) ? cJSON_GetObjectItemCaseSensitive(data, "msBeforeNext") : NULL;
	int64_t ms = ms_from_json(wait);
	cJSON_Delete(root);
	return ms;
}

/* exceeds_age - whether running at next_ms would be past the job's max age. */
static int exceeds_age(const struct retry_policy *p, int64_t created_ms, int64_t next_ms)
{
	if (p->max_age_ms <= 0)
		return 0;
	return next_ms > sat_add(created_ms, p->max_age_ms);
}

/* retry_format_duration - the largest unit that says ms exactly ("1d", "90m", "250ms"),
 * else the nearest whole count of the largest unit it reaches, at most hours ("8760h"). */
void retry_format_duration(int64_t ms, char out[32])
{
	static const struct {
		const char *name;
		int64_t ms;
	} units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
	if (ms < 0)
		ms = 0;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (ms >= units[i].ms && ms % units[i].ms == 0) {
			snprintf(out, 32, "%lld%s", (long long)(ms / units[i].ms), units[i].name);
			return;
		}
	}
	/* days only when exact: 8760h reads better than a rounded 365d for a server's date */
	for (size_t i = 1; i < ARRAY_SIZE(units); i++) {
		if (ms >= units[i].ms) {
			int64_t n = ms / units[i].ms + (ms % units[i].ms >= units[i].ms / 2);
			snprintf(out, 32, "%lld%s", (long long)n, units[i].name);
			return;
		}
	}
	snprintf(out, 32, "%lldms", (long long)ms);
}

/* retry_cap_wait - a server's wait cut to max_ms; -1 (no wait given) stays -1. */
int64_t retry_cap_wait(int64_t asked_ms, int64_t max_ms)
{
	if (asked_ms < 0)
		return -1;
	return max_ms > 0 && asked_ms > max_ms ? max_ms : asked_ms;
}

/* retry_policy_merge - the job's own settings (0 = not set) over the defaults. */
struct retry_policy retry_policy_merge(const struct retry_policy *defaults,
                                       const struct retry_policy *job)
{
	struct retry_policy p = *defaults;
	if (job->max_attempts)
		p.max_attempts = job->max_attempts;
	if (job->initial_ms)
		p.initial_ms = job->initial_ms;
	if (job->max_ms)
		p.max_ms = job->max_ms;
	if (job->max_age_ms)
		p.max_age_ms = job->max_age_ms;
	/* a job that raises initial_ms alone must not have it cut by the default max_ms */
	if (p.max_ms < p.initial_ms)
		p.max_ms = p.initial_ms;
	return p;
}

/* policy_source_name - "job", "config" or "default". */
const char *policy_source_name(enum policy_source s)
{
	switch (s) {
	case POLICY_FROM_JOB:
		return "job";
	case POLICY_FROM_CONFIG:
		return "config";
	case POLICY_FROM_DEFAULT:
		break;
	}
	return "default";
}

/* source_of - the job's when it set the value, else the config's when it differs from
 * the built-in default (a config that repeats a default changes nothing). */
static enum policy_source source_of(int64_t job, int64_t config, int64_t builtin)
{
	if (job)
		return POLICY_FROM_JOB;
	return config != builtin ? POLICY_FROM_CONFIG : POLICY_FROM_DEFAULT;
}

/* retry_policy_effective - retry_policy_merge with where each value came from. */
struct retry_policy retry_policy_effective(const struct retry_policy *builtin,
                                           const struct retry_policy *config,
                                           const struct retry_policy *job,
                                           struct retry_policy_sources *from)
{
	struct retry_policy p = retry_policy_merge(config, job);
	from->max_attempts =
	    source_of(job->max_attempts, config->max_attempts, builtin->max_attempts);
	from->initial_ms = source_of(job->initial_ms, config->initial_ms, builtin->initial_ms);
	from->max_ms = source_of(job->max_ms, config->max_ms, builtin->max_ms);
	from->max_age_ms = source_of(job->max_age_ms, config->max_age_ms, builtin->max_age_ms);
	/* max_ms raised by the merge is initial_ms's value, and comes from where it does */
	if (p.max_ms == p.initial_ms && p.max_ms != (job->max_ms ? job->max_ms : config->max_ms))
		from->max_ms = from->initial_ms;
	return p;
}

/*
 * retry_limit_wait - a job that cannot be sent for wait_ms, held by a rate limit (ours
 * or a 429's). It waits, but not past its max age: it is woken at the deadline instead,
 * and if it is still held then, it is dead. Deciding at the deadline, not ahead of it,
 * keeps a job that a shorter hold (a raised rate, a restart) would let through.
 */
void retry_limit_wait(const struct retry_policy *p, int64_t created_ms, int64_t now_ms,
                      int64_t wait_ms, struct retry_decision *out)
{
	out->count_attempt = 0;
	out->next_run_ms = 0;
	if (wait_ms < 0)
		wait_ms = 0;
	int64_t next = sat_add(now_ms, wait_ms);
	if (p->max_age_ms > 0 && wait_ms > 0) {
		int64_t deadline = sat_add(created_ms, p->max_age_ms);
		if (now_ms >= deadline) {
			char age[32];
			retry_format_duration(p->max_age_ms, age);
			snprintf(out->text, sizeof(out->text),
			         "max_age %s passed while waiting for the rate limit", age);
			out->action = RETRY_DEAD;
			out->reason = out->text;
			return;
		}
		if (next > deadline)
			next = deadline;
	}
	out->action = RETRY_WAIT;
	out->next_run_ms = next;
	out->reason = RETRY_RATE_LIMITED_REASON;
}

/* decide_rate_limited - a 429 waits for the server without using up an attempt. */
static void decide_rate_limited(const struct retry_policy *p, int64_t created_ms, int64_t now_ms,
                                int64_t floor_ms, uint64_t rnd, struct retry_decision *out)
{
	int64_t wait = floor_ms > RATE_LIMIT_MIN_MS ? floor_ms : RATE_LIMIT_MIN_MS;
	/* up to 10% more, so jobs released by the same hold do not all arrive at once */
	wait = sat_add(wait, (int64_t)(rnd % ((uint64_t)wait / 10 + 1)));
	retry_limit_wait(p, created_ms, now_ms, wait, out);
}

/* decide_retry - a transient failure: back off, unless out of attempts or time. */
static void decide_retry(const struct retry_policy *p, enum outcome o, int attempts_used,
                         int64_t created_ms, int64_t now_ms, int64_t floor_ms, uint64_t rnd,
                         struct retry_decision *out)
{
	out->count_attempt = 1;
	/* in 64 bits: neither count can overflow whatever the caller passes */
	if ((int64_t)attempts_used + 1 >= (int64_t)p->max_attempts) {
		out->action = RETRY_DEAD;
		out->reason = "out of attempts: every attempt the policy allows was used";
		return;
	}
	int64_t wait = retry_backoff_ms(p, attempts_used + 1, rnd);
	if (floor_ms > wait)
		wait = floor_ms;
	int64_t next = sat_add(now_ms, wait);
	if (exceeds_age(p, created_ms, next)) {
		out->action = RETRY_DEAD;
		out->reason = "out of time: the next attempt would pass the job's max age";
		return;
	}
	out->action = RETRY_WAIT;
	out->next_run_ms = next;
	out->reason = o == OUTCOME_UNKNOWN
	                  ? "no answer to a request that may have reached the server; retrying"
	                  : "transient failure; retrying after a backoff";
}

/*
 * retry_decide - the job's next state after an attempt. count_attempt is set for every
 * action (whether this attempt used one up), not only for RETRY_WAIT; next_run_ms is 0
 * unless the action is RETRY_WAIT.
 */
void retry_decide(const struct retry_policy *p, enum outcome o, int attempts_used,
                  int64_t created_ms, int64_t now_ms, int64_t floor_ms, int unknown_retry,
                  uint64_t rnd, struct retry_decision *out)
{
	out->next_run_ms = 0;
	out->count_attempt = 1;
	switch (o) {
	case OUTCOME_SUCCESS:
		out->action = RETRY_SUCCEED;
		out->reason = "succeeded";
		return;
	case OUTCOME_PERMANENT:
		out->action = RETRY_FAIL;
		out->reason = "the API refused the request, retrying cannot fix it";
		return;
	case OUTCOME_CANCELLED:
		out->action = RETRY_FAIL;
		out->count_attempt = 0;
		out->reason = "cancelled";
		return;
	case OUTCOME_RATE_LIMITED:
		decide_rate_limited(p, created_ms, now_ms, floor_ms, rnd, out);
		return;
	case OUTCOME_UNKNOWN:
		if (!unknown_retry) {
			out->action = RETRY_FAIL;
			out->reason = "the request may have reached the server and the job says "
			              "on_unknown=fail";
			return;
		}
		decide_retry(p, o, attempts_used, created_ms, now_ms, floor_ms, rnd, out);
		return;
	case OUTCOME_RETRY:
		decide_retry(p, o, attempts_used, created_ms, now_ms, floor_ms, rnd, out);
		return;
	}
	out->action = RETRY_FAIL;
	out->reason = "unknown outcome";
}

/* retry_lost_answer_matters - a 409 or 404 on a retried mutation; see retry.h. */
int retry_lost_answer_matters(int status, int mutates, int tries)
{
	return (status == 409 || status == 404) && mutates && tries >= 2;
}

/* retry_after_lost_answer - the reason of such an answer after a lost one; see retry.h. */
const char *retry_after_lost_answer(int status, int mutates, int tries, int64_t lost_answers,
                                    char *buf, size_t size)
{
	if (!retry_lost_answer_matters(status, mutates, tries) || lost_answers <= 0)
		return NULL;
	snprintf(buf, size,
	         "HTTP %d after an earlier attempt whose answer was lost: that "
	         "request was probably applied (see the attempts); not retried",
	         status);
	return buf;
}

/* retry_attempt_outcome - an attempt's recorded outcome; see retry.h. */
const char *retry_attempt_outcome(enum outcome o, int interrupted, int mutates)
{
	if (o == OUTCOME_CANCELLED && interrupted)
		return mutates ? "unknown" : "interrupted";
	return outcome_name(o);
}

/* retry_429_wait - the longer of the two waits a 429 may give; see retry.h. */
int64_t retry_429_wait(int64_t retry_after_ms, int64_t ms_before_next, const char **source)
{
	*source = retry_after_ms > ms_before_next ? "Retry-After" : "msBeforeNext";
	return retry_after_ms > ms_before_next ? retry_after_ms : ms_before_next;
}

/* rng_next - xorshift64* (Vigna); a zero state would stay zero, so it is replaced. */
uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;
	if (x == 0)
		x = 0x9E3779B97F4A7C15ULL;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}
