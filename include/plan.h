/* plan.h - what a batch would do, before it runs: each job's request (method and path,
 * references left unresolved), the requests it is expected to take, and the time they
 * need under the workspace's rate limit and Segment's documented endpoint limits. Pure:
 * what the store knows (totals seen before) comes in as arguments. */
#ifndef SEGSPOOL_PLAN_H
#define SEGSPOOL_PLAN_H

#include <stddef.h>
#include <stdint.h>

struct job;
struct strbuf;

struct plan_limits {
	double rate_per_sec; /* the workspace's bucket; <= 0: unlimited */
	double burst;
	int endpoint_limits; /* the documented per-endpoint limits apply (the config's) */
};

struct plan_requests {
	int64_t n;    /* requests expected */
	int at_least; /* pages nobody has counted yet: n is a floor */
};

/* plan_job_requests - the requests a job is expected to take: one, or for a paginated job
 * its pages (ceil(total_entries / page size) when a total is known, else at least one;
 * paginate.max_pages caps them), times its windows for a split job. total_entries is the
 * last total the store saw for the job's operation, -1 when it saw none. */
struct plan_requests plan_job_requests(const struct job *job, int64_t total_entries);

/* plan_request_line - "METHOD /path" of the job's request, its path parameters filled in
 * (a reference shown as {$ref KEY#/pointer}, one not given as {name}). */
void plan_request_line(const struct job *job, struct strbuf *out);

/* the requests of one layer (jobs that can run together) to one rate-limit group */
struct plan_tally {
	const char *group; /* catalog_rate_group: an operationId, or "default" */
	int rate_per_min;  /* its documented limit, 0 none */
	int64_t requests;
};

/* plan_add - counts n requests of the job's operation into tallies (*ntallies of them,
 * room for max); a group not yet there is added. Returns 0, or -1 when full. */
int plan_add(struct plan_tally *tallies, size_t *ntallies, size_t max, const struct job *job,
             int64_t n);
/* plan_group_seconds - the time n requests need from a bucket of rate per second and
 * burst tokens, full at the start: 0 within the burst, (n - burst) / rate after it. */
double plan_group_seconds(int64_t n, double rate_per_sec, double burst);
/* plan_tally_seconds - the time a group's requests need at its documented limit (burst
 * rl_endpoint_burst), -1 when none applies (no limit, or limits->endpoint_limits off). */
double plan_tally_seconds(const struct plan_limits *limits, const struct plan_tally *t);
/* plan_layer_seconds - the time a layer's requests need: the slowest of the workspace's
 * bucket (all of them) and each group's documented limit (when limits->endpoint_limits). */
double plan_layer_seconds(const struct plan_limits *limits, const struct plan_tally *tallies,
                          size_t n);

#endif
