/* plan.c - the estimates of `segspool plan`; see plan.h. */
#include "plan.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "job.h"
#include "paginate.h"
#include "ratelimit.h"
#include "strbuf.h"
#include "util.h"

/* job_windows - the time windows of a split job (at least one), 1 for any other job. */
static int64_t job_windows(const struct job *job)
{
	if (!job->split_ms)
		return 1;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(job->params, "startTime");
	const cJSON *en = cJSON_GetObjectItemCaseSensitive(job->params, "endTime");
	int64_t start, end;
	if (!cJSON_IsString(st) || !cJSON_IsString(en) || parse_iso8601(st->valuestring, &start) ||
	    parse_iso8601(en->valuestring, &end) || end <= start)
		return 1;
	return (end - start + job->split_ms - 1) / job->split_ms;
}

/* page_size - the items a page of the job asks for. */
static int64_t page_size(const struct job *job)
{
	if (job->page_count > 0)
		return job->page_count;
	const cJSON *pg = cJSON_GetObjectItemCaseSensitive(job->params, "pagination");
	const cJSON *count = cJSON_GetObjectItemCaseSensitive(pg, "count");
	if (cJSON_IsNumber(count) && count->valuedouble >= 1)
		return (int64_t)count->valuedouble;
	return PAGINATE_DEFAULT_COUNT;
}

/* plan_job_requests - the requests a job is expected to take. */
struct plan_requests plan_job_requests(const struct job *job, int64_t total_entries)
{
	struct plan_requests r = {1, 0};
	int pages = job->op->paginated && (job->paginate != PAGINATE_NONE || job->split_ms);
	if (pages) {
		if (total_entries >= 0) {
			int64_t size = page_size(job);
			r.n = total_entries ? (total_entries + size - 1) / size : 1;
		} else {
			r.at_least = 1;
		}
		if (job->paginate == PAGINATE_LIMIT && r.n >= job->max_pages) {
			r.n = job->max_pages;
			r.at_least = 0;
		}
	}
	r.n *= job_windows(job);
	return r;
}

/* add_path_value - one path parameter's value as the request would carry it, or its
 * reference, or {name} when the job gives none. */
static void add_path_value(struct strbuf *out, const cJSON *params, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
	const cJSON *ref = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "$ref") : NULL;
	if (cJSON_IsString(v))
		sb_adds(out, v->valuestring);
	else if (cJSON_IsNumber(v))
		sb_addf(out, "%.17g", v->valuedouble);
	else if (cJSON_IsString(ref))
		sb_addf(out, "{$ref %s}", ref->valuestring);
	else
		sb_addf(out, "{%s}", name);
}

/* plan_request_line - "METHOD /path", parameters filled in. */
void plan_request_line(const struct job *job, struct strbuf *out)
{
	const struct op_def *op = job->op;
	if (op->is_raw) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(job->params, "method");
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(job->params, "path");
		sb_addf(out, "%s %s", cJSON_IsString(m) ? m->valuestring : "GET",
		        cJSON_IsString(p) ? p->valuestring : "/");
		return;
	}
	sb_addf(out, "%s ", op->method);
	for (const char *s = op->path; *s;) {
		const char *open = strchr(s, '{');
		const char *close = open ? strchr(open, '}') : NULL;
		if (!close) {
			sb_adds(out, s);
			break;
		}
		sb_add(out, s, (size_t)(open - s));
		char name[128];
		size_t len = (size_t)(close - open - 1);
		snprintf(name, sizeof(name), "%.*s",
		         (int)(len < sizeof(name) ? len : sizeof(name) - 1), open + 1);
		add_path_value(out, job->params, name);
		s = close + 1;
	}
}

/* plan_add - n requests of the job's operation counted into its group. */
int plan_add(struct plan_tally *tallies, size_t *ntallies, size_t max, const struct job *job,
             int64_t n)
{
	const char *group = catalog_rate_group(job->op);
	for (size_t i = 0; i < *ntallies; i++)
		if (strcmp(tallies[i].group, group) == 0) {
			tallies[i].requests += n;
			return 0;
		}
	if (*ntallies >= max)
		return -1;
	tallies[*ntallies] = (struct plan_tally){group, job->op->rate_per_min, n};
	++*ntallies;
	return 0;
}

/* plan_group_seconds - n requests from a full bucket of rate and burst. */
double plan_group_seconds(int64_t n, double rate_per_sec, double burst)
{
	if (rate_per_sec <= 0 || (double)n <= burst)
		return 0;
	return ((double)n - burst) / rate_per_sec;
}

/* plan_tally_seconds - a group's requests at its documented limit, -1 if none applies. */
double plan_tally_seconds(const struct plan_limits *limits, const struct plan_tally *t)
{
	if (!limits->endpoint_limits || t->rate_per_min <= 0)
		return -1;
	return plan_group_seconds(t->requests, t->rate_per_min / 60.0,
	                          rl_endpoint_burst(t->rate_per_min));
}

/* plan_layer_seconds - the slowest of the workspace's bucket and each group's limit. */
double plan_layer_seconds(const struct plan_limits *limits, const struct plan_tally *tallies,
                          size_t n)
{
	int64_t all = 0;
	double worst = 0;
	for (size_t i = 0; i < n; i++) {
		all += tallies[i].requests;
		worst = fmax(worst, plan_tally_seconds(limits, &tallies[i]));
	}
	return fmax(worst, plan_group_seconds(all, limits->rate_per_sec, limits->burst));
}
