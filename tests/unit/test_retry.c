/* test_retry - classification, backoff, server waits and retry decisions, exactly.
 *
 * Backoff numbering under test: failures = 1 is the delay after the first failed attempt
 * and its cap is initial_ms; each further failure doubles the cap up to max_ms.
 */
#include <stdint.h>
#include <string.h>

#include "retry.h"
#include "testlib.h"

/* 2026-11-26T03:00:00Z, a Thursday */
#define NOW 1795662000000LL
/* the longest server wait the parsers report: 100 years of 365 days */
#define CEILING (100LL * 365 * 86400000)

static const struct retry_policy policy = {
    .max_attempts = 8, .initial_ms = 1000, .max_ms = 300000, .max_age_ms = 0};

TEST(outcome_names)
{
	CHECK_STR(outcome_name(OUTCOME_SUCCESS), "ok");
	CHECK_STR(outcome_name(OUTCOME_RETRY), "retry");
	CHECK_STR(outcome_name(OUTCOME_RATE_LIMITED), "rate_limited");
	CHECK_STR(outcome_name(OUTCOME_PERMANENT), "failed");
	CHECK_STR(outcome_name(OUTCOME_UNKNOWN), "unknown");
	CHECK_STR(outcome_name(OUTCOME_CANCELLED), "cancelled");
}

TEST(classify_statuses)
{
	static const struct {
		int status;
		enum outcome read, mutation;
	} table[] = {
	    {200, OUTCOME_SUCCESS, OUTCOME_SUCCESS},
	    {201, OUTCOME_SUCCESS, OUTCOME_SUCCESS},
	    {204, OUTCOME_SUCCESS, OUTCOME_SUCCESS},
	    {100, OUTCOME_PERMANENT, OUTCOME_PERMANENT},
	    {301, OUTCOME_PERMANENT, OUTCOME_PERMANENT},
	    {400, OUTCOME_PERMANENT, OUTCOME_PERMANENT},
	    {401, OUTCOME_PERMANENT, OUTCOME_PERMANENT},
	    {403, OUTCOME_PERMANENT, OUTCOME_PERMANENT},
	    {404, OUTCOME_PERMANENT, OUTCOME_PERMANENT},
	    {408, OUTCOME_RETRY, OUTCOME_RETRY},
	    {409, OUTCOME_PERMANENT, OUTCOME_PERMANENT},
	    {413, OUTCOME_PERMANENT, OUTCOME_PERMANENT},
	    {422, OUTCOME_PERMANENT, OUTCOME_PERMANENT},
	    {429, OUTCOME_RATE_LIMITED, OUTCOME_RATE_LIMITED},
	    {500, OUTCOME_RETRY, OUTCOME_RETRY},
	    {501, OUTCOME_PERMANENT, OUTCOME_PERMANENT},
	    {502, OUTCOME_RETRY, OUTCOME_RETRY},
	    {503, OUTCOME_RETRY, OUTCOME_RETRY},
	    {504, OUTCOME_RETRY, OUTCOME_RETRY},
	    {505, OUTCOME_PERMANENT, OUTCOME_PERMANENT},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		/* request_sent is irrelevant once an answer came */
		CHECK_INT(retry_classify(table[i].status, 0, 1, 0), table[i].read);
		CHECK_INT(retry_classify(table[i].status, 0, 1, 1), table[i].mutation);
		CHECK_INT(retry_classify(table[i].status, 0, 0, 1), table[i].mutation);
	}
}

TEST(classify_transport_failures)
{
	/* not sent: nothing happened on the server, so anything may be retried */
	CHECK_INT(retry_classify(0, 1, 0, 0), OUTCOME_RETRY);
	CHECK_INT(retry_classify(0, 1, 0, 1), OUTCOME_RETRY);
	/* sent: a read is harmless to repeat, a mutation may already have happened */
	CHECK_INT(retry_classify(0, 1, 1, 0), OUTCOME_RETRY);
	CHECK_INT(retry_classify(0, 1, 1, 1), OUTCOME_UNKNOWN);
	/* a status left over from a partial response does not override the failure */
	CHECK_INT(retry_classify(200, 1, 1, 1), OUTCOME_UNKNOWN);
}

TEST(backoff_caps_and_jitter)
{
	static const int64_t caps[] = {1000,  2000,   4000,   8000,   16000, 32000,
	                               64000, 128000, 256000, 300000, 300000};
	/* UINT64_MAX % (cap + 1) and 0xDEADBEEFCAFEBABE % (cap + 1), computed outside C */
	static const int64_t at_max[] = {15,   603,  2498,   1779,   3488,  11769,
	                                 1163, 6870, 187565, 102390, 102390};
	static const int64_t at_beef[] = {128,   1605,  3545,   5469,  9851, 2766,
	                                  57003, 25221, 134689, 67897, 67897};
	for (int f = 1; f <= 11; f++) {
		int64_t cap = caps[f - 1];
		CHECK_INT(retry_backoff_ms(&policy, f, 0), 0);
		CHECK_INT(retry_backoff_ms(&policy, f, UINT64_MAX), at_max[f - 1]);
		CHECK_INT(retry_backoff_ms(&policy, f, 0xDEADBEEFCAFEBABEULL), at_beef[f - 1]);
		/* the cap itself is reachable and cap + 1 wraps to 0: the range is [0, cap] */
		CHECK_INT(retry_backoff_ms(&policy, f, (uint64_t)cap), cap);
		CHECK_INT(retry_backoff_ms(&policy, f, (uint64_t)cap + 1), 0);
	}
	/* failures below 1 are treated as the first failure */
	CHECK_INT(retry_backoff_ms(&policy, 0, 1000), 1000);
	CHECK_INT(retry_backoff_ms(&policy, -5, 1001), 0);
}

TEST(backoff_no_overflow)
{
	struct retry_policy day = {.max_attempts = 300, .initial_ms = 86400000, .max_ms = 0};
	/* no limit: the cap saturates at INT64_MAX, so the result is rnd % 2^63 */
	CHECK_INT(retry_backoff_ms(&day, 200, UINT64_MAX), INT64_MAX);
	CHECK_INT(retry_backoff_ms(&day, 200, 12345), 12345);
	CHECK_INT(retry_backoff_ms(&day, 200, (uint64_t)INT64_MAX + 1), 0);
	day.max_ms = INT64_MAX;
	CHECK_INT(retry_backoff_ms(&day, 200, UINT64_MAX), INT64_MAX);
	day.max_ms = 86400000LL * 7;
	CHECK_INT(retry_backoff_ms(&day, 200, 86400000ULL * 7), 86400000LL * 7);
	CHECK_INT(retry_backoff_ms(&day, 2000000000, 86400000ULL * 7 + 1), 0);
	struct retry_policy zero = {.max_attempts = 3, .initial_ms = 0, .max_ms = 1000};
	CHECK_INT(retry_backoff_ms(&zero, 5, UINT64_MAX), 0);
}

TEST(retry_after_header)
{
	CHECK_INT(retry_after_ms("120", NOW), 120000);
	CHECK_INT(retry_after_ms("0", NOW), 0);
	CHECK_INT(retry_after_ms(" 7\r\n", NOW), 7000);
	/* what the server asked, however long (the daemon cuts it to max_server_wait), up to
	 * a ceiling of 100 years, however many digits */
	CHECK_INT(retry_after_ms("86401", NOW), 86401000);
	CHECK_INT(retry_after_ms("31536000", NOW), 31536000000LL);
	CHECK_INT(retry_after_ms("99999999999999999999999999", NOW), CEILING);
	CHECK_INT(retry_after_ms("Thu, 26 Nov 2026 03:00:30 GMT", NOW), 30000);
	CHECK_INT(retry_after_ms("Thu, 26 Nov 2026 03:00:00 GMT", NOW), 0);
	CHECK_INT(retry_after_ms("Wed, 25 Nov 2026 03:00:00 GMT", NOW), 0);
	/* ten years and three leap days */
	CHECK_INT(retry_after_ms("Wed, 26 Nov 2036 03:00:00 GMT", NOW), 3653LL * 86400000);
	CHECK_INT(retry_after_ms("Sat, 26 Nov 2216 03:00:00 GMT", NOW), CEILING);
	CHECK_INT(retry_after_ms("soon", NOW), -1);
	CHECK_INT(retry_after_ms("", NOW), -1);
	CHECK_INT(retry_after_ms("   ", NOW), -1);
	CHECK_INT(retry_after_ms(NULL, NOW), -1);
	CHECK_INT(retry_after_ms("12s", NOW), -1);
	CHECK_INT(retry_after_ms("-5", NOW), -1);
	CHECK_INT(retry_after_ms("1.5", NOW), -1);
	CHECK_INT(retry_after_ms("Thu, 26 Nov 2026 03:00:30 GMT and then some more text "
	                         "long enough to overflow a small buffer",
	                         NOW),
	          -1);
}

/* mbn - retry_ms_before_next of a C string. */
static int64_t mbn(const char *body)
{
	return retry_ms_before_next(body, strlen(body));
}

TEST(ms_before_next)
{
	const char *envelope = "{\"errors\":[{\"type\":\"RateLimited\",\"message\":\"Rate limit "
	                       "exceeded\",\"data\":{\"msBeforeNext\":1234,"
	                       "\"remainingPoints\":0,\"consumedPoints\":61}}]}";
	CHECK_INT(mbn(envelope), 1234);
	/* only the given length is read */
	CHECK_INT(retry_ms_before_next(envelope, 10), -1);
	CHECK_INT(mbn("{\"errors\":[{\"data\":{\"msBeforeNext\":0}}]}"), 0);
	CHECK_INT(mbn("{\"errors\":[{\"data\":{\"msBeforeNext\":12.2}}]}"), 13);
	CHECK_INT(mbn("{\"errors\":[{\"data\":{\"msBeforeNext\":1e300}}]}"), CEILING);
	CHECK_INT(mbn("{\"errors\":[{\"data\":{\"msBeforeNext\":31536000000}}]}"), 31536000000LL);
	CHECK_INT(mbn("{\"errors\":[{\"data\":{\"msBeforeNext\":-3}}]}"), -1);
	CHECK_INT(mbn("{\"errors\":[{\"data\":{\"msBeforeNext\":\"1234\"}}]}"), -1);
	CHECK_INT(mbn("{\"errors\":[{\"data\":{\"msBeforeNext\":null}}]}"), -1);
	CHECK_INT(mbn("{\"errors\":[{\"data\":[1234]}]}"), -1);
	CHECK_INT(mbn("{\"errors\":[\"x\"]}"), -1);
	CHECK_INT(mbn("{\"errors\":[]}"), -1);
	CHECK_INT(mbn("{\"errors\":{\"data\":{\"msBeforeNext\":5}}}"), -1);
	CHECK_INT(mbn("[1,2,3]"), -1);
	CHECK_INT(mbn("<html>429 Too Many Requests</html>"), -1);
	CHECK_INT(mbn("{\"errors\":[{\"data\":{\"msBeforeNext\":"), -1);
	CHECK_INT(retry_ms_before_next(NULL, 0), -1);
	CHECK_INT(retry_ms_before_next("\0\0\0", 3), -1);

	/* deep nesting and a large body: must neither crash nor find anything */
	char deep[20001];
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	CHECK_INT(mbn(deep), -1);
}

TEST(decide_success_and_refusals)
{
	struct retry_decision d;
	retry_decide(&policy, OUTCOME_SUCCESS, 3, NOW, NOW, -1, 1, 0, &d);
	CHECK_INT(d.action, RETRY_SUCCEED);
	retry_decide(&policy, OUTCOME_PERMANENT, 0, NOW, NOW, -1, 1, 0, &d);
	CHECK_INT(d.action, RETRY_FAIL);
	CHECK_STR(d.reason, "the API refused the request, retrying cannot fix it");
	retry_decide(&policy, OUTCOME_CANCELLED, 0, NOW, NOW, -1, 1, 0, &d);
	CHECK_INT(d.action, RETRY_FAIL);
	CHECK_STR(d.reason, "cancelled");
	CHECK_INT(d.count_attempt, 0);
}

TEST(decide_retry_backoff_and_attempts)
{
	struct retry_decision d;
	/* after the first attempt (attempts_used 0) the backoff cap is initial_ms */
	retry_decide(&policy, OUTCOME_RETRY, 0, NOW, NOW, -1, 1, 1000, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.count_attempt, 1);
	CHECK_INT(d.next_run_ms, NOW + 1000);
	retry_decide(&policy, OUTCOME_RETRY, 0, NOW, NOW, -1, 1, 1001, &d);
	CHECK_INT(d.next_run_ms, NOW);
	/* attempts_used 3 means this is the 4th failure: cap 8000 */
	retry_decide(&policy, OUTCOME_RETRY, 3, NOW, NOW, -1, 1, 8000, &d);
	CHECK_INT(d.next_run_ms, NOW + 8000);
	/* 8 attempts: after the 7th (attempts_used 6) one is left */
	retry_decide(&policy, OUTCOME_RETRY, 6, NOW, NOW, -1, 1, 0, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	/* after the 8th (attempts_used 7) none is */
	retry_decide(&policy, OUTCOME_RETRY, 7, NOW, NOW, -1, 1, 0, &d);
	CHECK_INT(d.action, RETRY_DEAD);
	CHECK_INT(d.count_attempt, 1);
	CHECK(strncmp(d.reason, "out of attempts", 15) == 0);
	struct retry_policy once = policy;
	once.max_attempts = 1;
	retry_decide(&once, OUTCOME_RETRY, 0, NOW, NOW, -1, 1, 0, &d);
	CHECK_INT(d.action, RETRY_DEAD);
}

TEST(decide_server_floor)
{
	struct retry_decision d;
	/* backoff would be 500 ms; the server asked for 5 s */
	retry_decide(&policy, OUTCOME_RETRY, 0, NOW, NOW, 5000, 1, 500, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.next_run_ms, NOW + 5000);
	/* a floor below the backoff changes nothing */
	retry_decide(&policy, OUTCOME_RETRY, 0, NOW, NOW, 100, 1, 500, &d);
	CHECK_INT(d.next_run_ms, NOW + 500);
}

TEST(decide_max_age)
{
	struct retry_policy aged = policy;
	aged.max_age_ms = 60000;
	struct retry_decision d;
	/* created 59 s ago: a 1 s backoff lands exactly on the limit, which is allowed */
	retry_decide(&aged, OUTCOME_RETRY, 0, NOW - 59000, NOW, -1, 1, 1000, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.next_run_ms, NOW + 1000);
	/* one ms more is past it */
	retry_decide(&aged, OUTCOME_RETRY, 0, NOW - 59001, NOW, -1, 1, 1000, &d);
	CHECK_INT(d.action, RETRY_DEAD);
	CHECK(strncmp(d.reason, "out of time", 11) == 0);
	/* a server floor can push it past the limit too */
	retry_decide(&aged, OUTCOME_RETRY, 0, NOW, NOW, 61000, 1, 0, &d);
	CHECK_INT(d.action, RETRY_DEAD);
	/* a rate-limit wait past the limit waits until it, not beyond, and is decided then */
	retry_decide(&aged, OUTCOME_RATE_LIMITED, 0, NOW - 59500, NOW, 1000, 1, 0, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.count_attempt, 0);
	CHECK_INT(d.next_run_ms, NOW + 500);
	/* a 429 once the limit has come: dead, saying why */
	retry_decide(&aged, OUTCOME_RATE_LIMITED, 0, NOW - 60000, NOW, 1000, 1, 0, &d);
	CHECK_INT(d.action, RETRY_DEAD);
	CHECK_INT(d.count_attempt, 0);
	CHECK_STR(d.reason, "max_age 1m passed while waiting for the rate limit");
	/* huge values saturate instead of wrapping into the past */
	aged.max_age_ms = INT64_MAX;
	retry_decide(&aged, OUTCOME_RETRY, 0, NOW, NOW, INT64_MAX, 1, 0, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.next_run_ms, INT64_MAX);
}

TEST(decide_rate_limited)
{
	struct retry_decision d;
	/* does not count, even with every attempt used */
	retry_decide(&policy, OUTCOME_RATE_LIMITED, 7, NOW, NOW, 2500, 1, 0, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.count_attempt, 0);
	CHECK_INT(d.next_run_ms, NOW + 2500);
	/* no hint: one second, plus up to 10% jitter */
	retry_decide(&policy, OUTCOME_RATE_LIMITED, 0, NOW, NOW, -1, 1, 0, &d);
	CHECK_INT(d.next_run_ms, NOW + 1000);
	retry_decide(&policy, OUTCOME_RATE_LIMITED, 0, NOW, NOW, -1, 1, 100, &d);
	CHECK_INT(d.next_run_ms, NOW + 1100);
	retry_decide(&policy, OUTCOME_RATE_LIMITED, 0, NOW, NOW, -1, 1, 101, &d);
	CHECK_INT(d.next_run_ms, NOW + 1000);
	retry_decide(&policy, OUTCOME_RATE_LIMITED, 0, NOW, NOW, 2500, 1, 250, &d);
	CHECK_INT(d.next_run_ms, NOW + 2750);
	/* "Retry-After: 0" (or a date gone by) still waits: a second at least */
	retry_decide(&policy, OUTCOME_RATE_LIMITED, 0, NOW, NOW, 0, 1, 0, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.next_run_ms, NOW + 1000);
	retry_decide(&policy, OUTCOME_RATE_LIMITED, 0, NOW, NOW, 999, 1, 0, &d);
	CHECK_INT(d.next_run_ms, NOW + 1000);
	CHECK_STR(d.reason, "rate limited by the API");
	/* the server's floor is never undercut */
	for (uint64_t r = 0; r < 1000; r += 37) {
		retry_decide(&policy, OUTCOME_RATE_LIMITED, 0, NOW, NOW, 2500, 1, r, &d);
		CHECK(d.next_run_ms >= NOW + 2500 && d.next_run_ms <= NOW + 2750);
	}
}

TEST(limit_wait)
{
	struct retry_policy aged = policy;
	aged.max_age_ms = 86400000;
	struct retry_decision d;
	/* no max age: waits as long as it is held */
	retry_limit_wait(&policy, NOW - 10LL * 86400000, NOW, 5000, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.next_run_ms, NOW + 5000);
	CHECK_INT(d.count_attempt, 0);
	/* within its age: the whole wait */
	retry_limit_wait(&aged, NOW - 3600000, NOW, 5000, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.next_run_ms, NOW + 5000);
	/* a wait past its age: woken at the deadline instead */
	retry_limit_wait(&aged, NOW - 86400000 + 2000, NOW, 3600000, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.next_run_ms, NOW + 2000);
	/* held at the deadline, or after it: dead, with the age as the job wrote it */
	retry_limit_wait(&aged, NOW - 86400000, NOW, 1, &d);
	CHECK_INT(d.action, RETRY_DEAD);
	CHECK_INT(d.count_attempt, 0);
	CHECK_STR(d.reason, "max_age 1d passed while waiting for the rate limit");
	retry_limit_wait(&aged, NOW - 2 * 86400000LL, NOW, 3600000, &d);
	CHECK_INT(d.action, RETRY_DEAD);
	/* not held: an old job may still go (the attempt's own rules judge it) */
	retry_limit_wait(&aged, NOW - 2 * 86400000LL, NOW, 0, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.next_run_ms, NOW);
	/* the reason is the decision's own: a second decision does not change the first */
	struct retry_decision e;
	struct retry_policy hours = policy;
	hours.max_age_ms = 90 * 60000;
	retry_limit_wait(&aged, NOW - 86400000, NOW, 1, &d);
	retry_limit_wait(&hours, NOW - hours.max_age_ms, NOW, 10, &e);
	CHECK_STR(e.reason, "max_age 90m passed while waiting for the rate limit");
	CHECK_STR(d.reason, "max_age 1d passed while waiting for the rate limit");
	/* huge values saturate */
	aged.max_age_ms = INT64_MAX;
	retry_limit_wait(&aged, NOW, NOW, INT64_MAX, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.next_run_ms, INT64_MAX);
}

TEST(cap_wait)
{
	CHECK_INT(retry_cap_wait(-1, 3600000), -1);
	CHECK_INT(retry_cap_wait(0, 3600000), 0);
	CHECK_INT(retry_cap_wait(3600000, 3600000), 3600000);
	CHECK_INT(retry_cap_wait(3600001, 3600000), 3600000);
	CHECK_INT(retry_cap_wait(CEILING, 1000), 1000);
	/* no cap */
	CHECK_INT(retry_cap_wait(CEILING, 0), CEILING);
}

TEST(format_duration)
{
	char buf[32];
	static const struct {
		int64_t ms;
		const char *text;
	} table[] = {
	    {0, "0ms"},
	    {250, "250ms"},
	    {1000, "1s"},
	    {1500, "2s"},
	    {45000, "45s"},
	    {90000, "90s"},
	    {60000, "1m"},
	    {90 * 60000, "90m"},
	    {3600000, "1h"},
	    {86400000, "1d"},
	    {7 * 86400000LL, "7d"},
	    {36 * 3600000LL, "36h"},
	    /* a server's date a year away, not exact: rounded hours */
	    {31536000000LL - 1234, "8760h"},
	    {31536000000LL, "365d"},
	    {3600000 + 1799999, "1h"},
	    {3600000 + 1800001, "2h"},
	    {3600000 + 1800000, "90m"},
	    {-5, "0ms"},
	    {INT64_MAX, "2562047788015h"},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		retry_format_duration(table[i].ms, buf);
		CHECK_STR(buf, table[i].text);
	}
}

TEST(policy_merge)
{
	const struct retry_policy defaults = {
	    .max_attempts = 8, .initial_ms = 1000, .max_ms = 300000, .max_age_ms = 86400000};
	const struct retry_policy none = {0};
	struct retry_policy p = retry_policy_merge(&defaults, &none);
	CHECK_INT(p.max_attempts, 8);
	CHECK_INT(p.initial_ms, 1000);
	CHECK_INT(p.max_ms, 300000);
	CHECK_INT(p.max_age_ms, 86400000);
	const struct retry_policy own = {
	    .max_attempts = 3, .initial_ms = 50, .max_ms = 400, .max_age_ms = 60000};
	p = retry_policy_merge(&defaults, &own);
	CHECK_INT(p.max_attempts, 3);
	CHECK_INT(p.initial_ms, 50);
	CHECK_INT(p.max_ms, 400);
	CHECK_INT(p.max_age_ms, 60000);
	/* one setting of the job's, the rest the defaults' */
	const struct retry_policy age_only = {.max_age_ms = 5000};
	p = retry_policy_merge(&defaults, &age_only);
	CHECK_INT(p.max_attempts, 8);
	CHECK_INT(p.max_age_ms, 5000);
	/* a job's initial_ms above the default max_ms raises max_ms with it */
	const struct retry_policy slow = {.initial_ms = 600000};
	p = retry_policy_merge(&defaults, &slow);
	CHECK_INT(p.initial_ms, 600000);
	CHECK_INT(p.max_ms, 600000);
	/* and one below a job's own max_ms leaves it */
	const struct retry_policy both = {.initial_ms = 600000, .max_ms = 900000};
	p = retry_policy_merge(&defaults, &both);
	CHECK_INT(p.max_ms, 900000);
}

TEST(policy_effective_sources)
{
	const struct retry_policy builtin = {
	    .max_attempts = 8, .initial_ms = 1000, .max_ms = 300000, .max_age_ms = 86400000};
	/* the config changes max_attempts and max_ms, and repeats the default initial_ms */
	const struct retry_policy config = {
	    .max_attempts = 6, .initial_ms = 1000, .max_ms = 400, .max_age_ms = 86400000};
	const struct retry_policy none = {0};
	struct retry_policy_sources from;
	struct retry_policy p = retry_policy_effective(&builtin, &config, &none, &from);
	CHECK_INT(p.max_attempts, 6);
	CHECK_STR(policy_source_name(from.max_attempts), "config");
	CHECK_INT(p.initial_ms, 1000);
	CHECK_STR(policy_source_name(from.initial_ms), "default");
	CHECK_INT(p.max_ms, 1000); /* raised to initial_ms by the merge */
	CHECK_STR(policy_source_name(from.max_ms), "default");
	CHECK_INT(p.max_age_ms, 86400000);
	CHECK_STR(policy_source_name(from.max_age_ms), "default");
	/* the job's own values win; a job's initial_ms above max_ms raises it as the job's */
	const struct retry_policy own = {
	    .max_attempts = 3, .initial_ms = 5000, .max_age_ms = 60000};
	p = retry_policy_effective(&builtin, &config, &own, &from);
	CHECK_INT(p.max_attempts, 3);
	CHECK_STR(policy_source_name(from.max_attempts), "job");
	CHECK_INT(p.initial_ms, 5000);
	CHECK_STR(policy_source_name(from.initial_ms), "job");
	CHECK_INT(p.max_ms, 5000);
	CHECK_STR(policy_source_name(from.max_ms), "job");
	CHECK_INT(p.max_age_ms, 60000);
	CHECK_STR(policy_source_name(from.max_age_ms), "job");
	/* a max_ms that was not raised keeps its own source */
	const struct retry_policy wide = {
	    .max_attempts = 6, .initial_ms = 50, .max_ms = 400, .max_age_ms = 86400000};
	const struct retry_policy ms_only = {.max_ms = 900};
	p = retry_policy_effective(&builtin, &wide, &ms_only, &from);
	CHECK_INT(p.max_ms, 900);
	CHECK_STR(policy_source_name(from.max_ms), "job");
	CHECK_STR(policy_source_name(from.initial_ms), "config");
	p = retry_policy_effective(&builtin, &wide, &none, &from);
	CHECK_INT(p.max_ms, 400);
	CHECK_STR(policy_source_name(from.max_ms), "config");
}

TEST(decide_unknown)
{
	struct retry_decision d;
	retry_decide(&policy, OUTCOME_UNKNOWN, 0, NOW, NOW, -1, 0, 0, &d);
	CHECK_INT(d.action, RETRY_FAIL);
	CHECK_STR(d.reason,
	          "the request may have reached the server and the job says on_unknown=fail");
	retry_decide(&policy, OUTCOME_UNKNOWN, 0, NOW, NOW, -1, 1, 700, &d);
	CHECK_INT(d.action, RETRY_WAIT);
	CHECK_INT(d.count_attempt, 1);
	CHECK_INT(d.next_run_ms, NOW + 700);
	retry_decide(&policy, OUTCOME_UNKNOWN, 7, NOW, NOW, -1, 1, 0, &d);
	CHECK_INT(d.action, RETRY_DEAD);
}

TEST(rng)
{
	uint64_t s = 1;
	CHECK(rng_next(&s) == 0x47e4ce4b896cdd1dULL);
	CHECK(rng_next(&s) == 0xabcfa6a8e079651dULL);
	CHECK(rng_next(&s) == 0xb9d10d8feb731f57ULL);
	uint64_t z = 0;
	CHECK(rng_next(&z) == 0x0d83b3e29a21487aULL);
	CHECK(z != 0);
	/* a zero state never comes back: xorshift is a permutation of the non-zero values */
	for (int i = 0; i < 100000; i++) {
		rng_next(&z);
		if (z == 0)
			break;
	}
	CHECK(z != 0);
}

/* after_lost_answer - a 409 or 404 on a mutation tried before, after a lost answer, says
 * the earlier request was probably applied; any other case keeps the plain reason. */
TEST(after_lost_answer)
{
	char buf[256];
	CHECK(retry_lost_answer_matters(409, 1, 2));
	CHECK(retry_lost_answer_matters(404, 1, 5));
	CHECK(!retry_lost_answer_matters(400, 1, 2));
	CHECK(!retry_lost_answer_matters(410, 1, 2));
	CHECK(!retry_lost_answer_matters(409, 0, 2)); /* a GET: nothing was applied */
	CHECK(!retry_lost_answer_matters(404, 1, 1)); /* the first attempt: nothing earlier */

	const char *why = retry_after_lost_answer(409, 1, 2, 1, buf, sizeof(buf));
	CHECK(why == buf);
	CHECK_STR(buf, "HTTP 409 after an earlier attempt whose answer was lost: that request "
	               "was probably applied (see the attempts); not retried");
	CHECK(retry_after_lost_answer(404, 1, 3, 2, buf, sizeof(buf)) == buf);
	CHECK(strncmp(buf, "HTTP 404 after", 14) == 0);
	CHECK(retry_after_lost_answer(409, 1, 2, 0, buf, sizeof(buf)) == NULL); /* none lost */
	CHECK(retry_after_lost_answer(409, 0, 2, 1, buf, sizeof(buf)) == NULL);
	CHECK(retry_after_lost_answer(404, 1, 1, 1, buf, sizeof(buf)) == NULL);
	CHECK(retry_after_lost_answer(500, 1, 2, 1, buf, sizeof(buf)) == NULL);
}

/* attempt_outcome - a stop of the daemon cuts a mutation off with its fate unknown, a GET
 * merely interrupted; a user's cancel and every other outcome keep their names. */
TEST(attempt_outcome)
{
	CHECK_STR(retry_attempt_outcome(OUTCOME_CANCELLED, 1, 1), "unknown");
	CHECK_STR(retry_attempt_outcome(OUTCOME_CANCELLED, 1, 0), "interrupted");
	CHECK_STR(retry_attempt_outcome(OUTCOME_CANCELLED, 0, 1), "cancelled");
	CHECK_STR(retry_attempt_outcome(OUTCOME_RETRY, 1, 1), "retry");
	CHECK_STR(retry_attempt_outcome(OUTCOME_SUCCESS, 0, 0), "ok");
}

/* wait_429 - the longer of Retry-After and msBeforeNext, named; -1 when neither came. */
TEST(wait_429)
{
	const char *source = NULL;
	CHECK_INT(retry_429_wait(5000, 2000, &source), 5000);
	CHECK_STR(source, "Retry-After");
	CHECK_INT(retry_429_wait(1000, 2000, &source), 2000);
	CHECK_STR(source, "msBeforeNext");
	CHECK_INT(retry_429_wait(-1, 300, &source), 300);
	CHECK_STR(source, "msBeforeNext");
	CHECK_INT(retry_429_wait(0, -1, &source), 0); /* "Retry-After: 0" is a wait of 0 */
	CHECK_STR(source, "Retry-After");
	CHECK_INT(retry_429_wait(-1, -1, &source), -1);
}

int main(void)
{
	RUN(outcome_names);
	RUN(classify_statuses);
	RUN(classify_transport_failures);
	RUN(backoff_caps_and_jitter);
	RUN(backoff_no_overflow);
	RUN(retry_after_header);
	RUN(ms_before_next);
	RUN(decide_success_and_refusals);
	RUN(decide_retry_backoff_and_attempts);
	RUN(decide_server_floor);
	RUN(decide_max_age);
	RUN(decide_rate_limited);
	RUN(limit_wait);
	RUN(cap_wait);
	RUN(format_duration);
	RUN(policy_merge);
	RUN(policy_effective_sources);
	RUN(decide_unknown);
	RUN(rng);
	RUN(after_lost_answer);
	RUN(attempt_outcome);
	RUN(wait_429);
	return tl_finish();
}
