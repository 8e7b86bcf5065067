/* job_policy.c - the fields that say how and when a job runs rather than what it asks:
 * paginate, retry (over the config's policy), not_before and priority, split. */
#include "job_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "retry.h"
#include "strbuf.h"
#include "util.h"

#define MAX_PAGES 1000000

static const char *const retry_fields[] = {
    "max_attempts", "initial_ms", "max_ms", "max_age", "max_age_ms",
};

/* parse_paginate_limit - {"max_pages": N (required), "count": 1..1000}. */
static void parse_paginate_limit(struct ctx *c, const cJSON *v, struct job *j)
{
	static const char *const keys[] = {"max_pages", "count"};
	struct strbuf rel = STRBUF_INIT, expected = STRBUF_INIT;
	char buf[SHOWN_BYTES + 4];
	const cJSON *m;
	int64_t n;

	cJSON_ArrayForEach(m, v)
	{
		pointer2(&rel, "paginate", m->string);
		if (!strcmp(m->string, "max_pages")) {
			if (!integer_field(c, m, rel.buf, "max_pages", 1, MAX_PAGES, &n))
				j->max_pages = (int)n;
		} else if (!strcmp(m->string, "count")) {
			if (!integer_field(c, m, rel.buf, "paginate count", 1, MAX_PAGE_COUNT, &n))
				j->page_count = (int)n;
		} else {
			sb_reset(&expected);
			suggestion(&expected, m->string, keys, ARRAY_SIZE(keys));
			ctx_problem(c, rel.buf, expected.buf, "unknown key \"%s\" in paginate",
			            shown(m->string, buf));
		}
	}
	if (!cJSON_GetObjectItemCaseSensitive(v, "max_pages"))
		ctx_problem(c, "/paginate/max_pages", "an integer from 1 to " STR(MAX_PAGES),
		            "missing max_pages in paginate");
	sb_release(&rel);
	sb_release(&expected);
}

/* parse_paginate - "all" | "none" | false | {"max_pages", "count"}; paginated ops fetch
 * every page unless told otherwise. */
void parse_paginate(struct ctx *c, const cJSON *obj, const struct op_def *op, struct job *j)
{
	static const char expected[] = "\"all\", \"none\", false, or "
	                               "{\"max_pages\": N, \"count\": 1.." STR(MAX_PAGE_COUNT) "}";
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "paginate");
	char buf[SHOWN_BYTES + 4];
	enum paginate_mode mode;

	j->paginate = op && op->paginated ? PAGINATE_ALL : PAGINATE_NONE;
	if (!v)
		return;
	if (cJSON_IsFalse(v) || (cJSON_IsString(v) && !strcmp(v->valuestring, "none"))) {
		mode = PAGINATE_NONE;
	} else if (cJSON_IsString(v) && !strcmp(v->valuestring, "all")) {
		mode = PAGINATE_ALL;
	} else if (cJSON_IsObject(v)) {
		mode = PAGINATE_LIMIT;
		parse_paginate_limit(c, v, j);
	} else if (cJSON_IsString(v)) {
		ctx_problem(c, "/paginate", expected, "invalid paginate \"%s\"",
		            shown(v->valuestring, buf));
		return;
	} else {
		wrong_type(c, "/paginate", "paginate", v, expected);
		return;
	}
	if (mode != PAGINATE_NONE && op && !op->paginated) {
		ctx_problem(c, "/paginate", "no paginate field, or \"none\"",
		            "paginate given for %s, which is not paginated", op->operation_id);
		return;
	}
	j->paginate = mode;
}

/* parse_retry_member - one key of the retry object. */
static void parse_retry_member(struct ctx *c, const cJSON *m, const char *rel, struct job *j)
{
	struct strbuf expected = STRBUF_INIT;
	char buf[SHOWN_BYTES + 4];
	int64_t n;

	if (!strcmp(m->string, "max_attempts")) {
		if (!integer_field(c, m, rel, "max_attempts", 1, RETRY_MAX_ATTEMPTS, &n))
			j->max_attempts = (int)n;
	} else if (!strcmp(m->string, "initial_ms")) {
		integer_field(c, m, rel, "initial_ms", 1, RETRY_MAX_INITIAL_MS, &j->initial_ms);
	} else if (!strcmp(m->string, "max_ms")) {
		integer_field(c, m, rel, "max_ms", 1, RETRY_MAX_BACKOFF_MS, &j->max_ms);
	} else if (!strcmp(m->string, "max_age_ms")) {
		integer_field(c, m, rel, "max_age_ms", 1, RETRY_MAX_AGE_MS, &j->max_age_ms);
	} else if (!strcmp(m->string, "max_age")) {
		static const char age_expected[] =
		    "a duration such as 2d, 6h or 30m, at most " STR(RETRY_MAX_AGE_DAYS) "d";
		if (!cJSON_IsString(m))
			wrong_type(c, rel, "max_age", m, age_expected);
		else if (parse_duration_ms(m->valuestring, &n) || n > RETRY_MAX_AGE_MS)
			ctx_problem(c, rel, age_expected, "invalid max_age \"%s\"",
			            shown(m->valuestring, buf));
		else
			j->max_age_ms = n;
	} else {
		suggestion(&expected, m->string, retry_fields, ARRAY_SIZE(retry_fields));
		ctx_problem(c, rel, expected.buf, "unknown key \"%s\" in retry",
		            shown(m->string, buf));
	}
	sb_release(&expected);
}

/* parse_retry - per-job overrides of the config's retry policy; 0 keeps the default. */
void parse_retry(struct ctx *c, const cJSON *obj, struct job *j)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "retry");
	struct strbuf rel = STRBUF_INIT;
	const cJSON *m;
	char expected[64];

	if (!v)
		return;
	if (!cJSON_IsObject(v)) {
		wrong_type(c, "/retry", "retry", v,
		           "an object {max_attempts, initial_ms, max_ms, max_age}");
		return;
	}
	cJSON_ArrayForEach(m, v) parse_retry_member(c, m, pointer2(&rel, "retry", m->string), j);
	if (cJSON_GetObjectItemCaseSensitive(v, "max_age") &&
	    cJSON_GetObjectItemCaseSensitive(v, "max_age_ms"))
		ctx_problem(c, "/retry/max_age_ms", "max_age or max_age_ms, not both",
		            "both max_age and max_age_ms given");
	if (j->initial_ms && j->max_ms && j->max_ms < j->initial_ms) {
		snprintf(expected, sizeof(expected), "at least initial_ms (%lld)",
		         (long long)j->initial_ms);
		ctx_problem(c, "/retry/max_ms", expected, "max_ms is less than initial_ms");
	}
	sb_release(&rel);
}

/* parse_schedule - not_before and priority. */
void parse_schedule(struct ctx *c, const cJSON *obj, struct job *j)
{
	static const char time_expected[] = "an RFC 3339 time such as 2026-11-27T03:00:00Z";
	const cJSON *v;
	const char *s;
	char buf[SHOWN_BYTES + 4];
	int64_t n;

	if ((s = string_field(c, obj, "not_before", time_expected)) &&
	    parse_iso8601(s, &j->not_before_ms))
		ctx_problem(c, "/not_before", time_expected, "invalid not_before \"%s\"",
		            shown(s, buf));
	v = cJSON_GetObjectItemCaseSensitive(obj, "priority");
	if (v && !integer_field(c, v, "/priority", "priority", -1000, 1000, &n))
		j->priority = (int)n;
}

/* parse_split - the event-volume window fan-out: a duration that cuts
 * [startTime, endTime) into at most JOB_MAX_SPLIT_WINDOWS windows. */
void parse_split(struct ctx *c, const cJSON *obj, const struct op_def *op, struct job *j)
{
	static const char expected[] = "a duration such as 1d, 6h or 30m";
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(obj, "params");
	const char *s = string_field(c, obj, "split", expected);
	char buf[SHOWN_BYTES + 4], why[96];
	int64_t ms, start, end;

	if (!s)
		return;
	if (parse_duration_ms(s, &ms)) {
		ctx_problem(c, "/split", expected, "invalid split \"%s\"", shown(s, buf));
		return;
	}
	if (op && strcmp(op->operation_id, EVENTS_VOLUME_OP)) {
		ctx_problem(c, "/split", "split only with " EVENTS_VOLUME_OP, "split given for %s",
		            op->operation_id);
		return;
	}
	if (op && cJSON_IsObject(params) && !param_time(params, "startTime", &start) &&
	    !param_time(params, "endTime", &end) && start < end) {
		int64_t span = end - start;
		int64_t windows = span / ms + (span % ms != 0);
		if (windows > JOB_MAX_SPLIT_WINDOWS) {
			snprintf(why, sizeof(why), "at most %d windows: a coarser split",
			         JOB_MAX_SPLIT_WINDOWS);
			ctx_problem(c, "/split", why, "split \"%s\" is too fine: %lld windows",
			            shown(s, buf), (long long)windows);
			return;
		}
	}
	j->split_ms = ms;
}
