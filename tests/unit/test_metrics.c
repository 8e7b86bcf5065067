/* test_metrics.c - the Prometheus text formatter: families, labels, the histogram, the
 * oldest due job, the two sources, and the counts read back from a store. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "store.h"
#include "store_fixture.h"
#include "strbuf.h"
#include "testlib.h"
#include "util.h"

/* format - the text of m at now_ms, malloc'd. */
static char *format(const struct metrics *m, int64_t now_ms)
{
	struct strbuf out = STRBUF_INIT;
	metrics_format(m, now_ms, &out);
	return sb_detach(&out, NULL);
}

/* has_line - text holds line as one whole line. */
static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	fprintf(stderr, "missing line: %s\n", line);
	return 0;
}

/* family_of - the family a sample's name belongs to (a histogram's suffixes dropped), in
 * out; the name ends at '{' or ' '. */
static void family_of(const char *line, const char *histogram, char *out, size_t size)
{
	size_t n = strcspn(line, "{ ");
	snprintf(out, size, "%.*s", (int)n, line);
	size_t h = strlen(histogram);
	if (strncmp(out, histogram, h) == 0 &&
	    (!strcmp(out + h, "_bucket") || !strcmp(out + h, "_sum") || !strcmp(out + h, "_count")))
		out[h] = '\0';
}

/* well_formed - every sample's family had its # HELP then # TYPE before it, each family
 * once, and every sample line is "name{labels} value" or "name value". */
static int well_formed(const char *text)
{
	char help[128] = "", type[128] = "", fam[128];
	char seen[2048] = " ";
	int ok = 1;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			return 0; /* the last line ends with a newline too */
		char line[512];
		snprintf(line, sizeof(line), "%.*s", (int)(nl - p), p);
		p = nl + 1;
		if (strncmp(line, "# HELP ", 7) == 0) {
			snprintf(help, sizeof(help), "%.*s", (int)strcspn(line + 7, " "), line + 7);
			char key[140];
			snprintf(key, sizeof(key), " %s ", help);
			if (strstr(seen, key))
				ok = 0; /* a family twice */
			strncat(seen, key + 1, sizeof(seen) - strlen(seen) - 1);
			type[0] = '\0';
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			snprintf(type, sizeof(type), "%.*s", (int)strcspn(line + 7, " "), line + 7);
			if (strcmp(type, help))
				ok = 0;
		} else {
			family_of(line, "segspool_request_duration_seconds", fam, sizeof(fam));
			if (strcmp(fam, type) || strcmp(fam, help))
				ok = 0;
			const char *sp = strrchr(line, ' ');
			char *end;
			if (!sp || (strtod(sp + 1, &end), *end != '\0' || end == sp + 1))
				ok = 0;
		}
	}
	return ok;
}

TEST(test_empty_store_source)
{
	struct metrics *m = metrics_new(METRICS_STORE);
	char *t = format(m, 1000);
	CHECK(well_formed(t));
	CHECK(has_line(t, "# TYPE segspool_jobs gauge"));
	for (int s = 0; s < JS_COUNT; s++) {
		char line[96];
		snprintf(line, sizeof(line), "segspool_jobs{state=\"%s\"} 0",
		         job_state_name((enum job_state)s));
		CHECK(has_line(t, line));
	}
	CHECK(has_line(t, "# TYPE segspool_attempts_total counter"));
	CHECK(has_line(t, "segspool_attempts_total{outcome=\"ok\"} 0"));
	CHECK(has_line(t, "segspool_attempts_total{outcome=\"rate_limited\"} 0"));
	CHECK(has_line(t, "segspool_attempts_total{outcome=\"interrupted\"} 0"));
	CHECK(has_line(t, "# TYPE segspool_http_responses_total counter"));
	CHECK(!strstr(t, "segspool_http_responses_total{"));
	CHECK(has_line(t, "# TYPE segspool_request_duration_seconds histogram"));
	CHECK(has_line(t, "segspool_request_duration_seconds_bucket{le=\"+Inf\"} 0"));
	CHECK(has_line(t, "segspool_request_duration_seconds_sum 0.000"));
	CHECK(has_line(t, "segspool_request_duration_seconds_count 0"));
	CHECK(has_line(t, "segspool_queue_oldest_due_seconds 0.000"));
	/* the store has no start time and keeps no rate-limit waits */
	CHECK(!strstr(t, "segspool_start_time_seconds"));
	CHECK(!strstr(t, "segspool_rate_limit_wait_seconds_total"));
	CHECK(strstr(t, "recorded in the store") != NULL);
	free(t);
	metrics_free(m);
}

TEST(test_attempts_and_histogram)
{
	struct metrics *m = metrics_new(METRICS_STORE);
	metrics_attempt(m, "ok", 200, 3, 2);
	metrics_attempt(m, "retry", 503, 7, 1);
	metrics_attempt(m, "retry", 0, 10000, 1); /* no response: no code, not timed */
	metrics_attempt(m, "failed", 404, 1500, 1);
	metrics_attempt(m, "ok", 200, 5, 1); /* on a bound: le is "less or equal" */
	metrics_attempt(m, "later_outcome", 201, 120000, 1);
	int64_t jobs[JS_COUNT] = {0};
	jobs[JS_QUEUED] = 4;
	jobs[JS_SUCCEEDED] = 2;
	metrics_set_jobs(m, jobs);
	char *t = format(m, 1000);
	CHECK(well_formed(t));
	CHECK(has_line(t, "segspool_jobs{state=\"queued\"} 4"));
	CHECK(has_line(t, "segspool_jobs{state=\"succeeded\"} 2"));
	CHECK(has_line(t, "segspool_jobs{state=\"dead\"} 0"));
	CHECK(has_line(t, "segspool_attempts_total{outcome=\"ok\"} 3"));
	CHECK(has_line(t, "segspool_attempts_total{outcome=\"retry\"} 2"));
	CHECK(has_line(t, "segspool_attempts_total{outcome=\"failed\"} 1"));
	CHECK(has_line(t, "segspool_attempts_total{outcome=\"unknown\"} 0"));
	CHECK(has_line(t, "segspool_attempts_total{outcome=\"later_outcome\"} 1"));
	/* codes in ascending order */
	const char *c200 = strstr(t, "segspool_http_responses_total{code=\"200\"} 3\n");
	const char *c201 = strstr(t, "segspool_http_responses_total{code=\"201\"} 1\n");
	const char *c404 = strstr(t, "segspool_http_responses_total{code=\"404\"} 1\n");
	const char *c503 = strstr(t, "segspool_http_responses_total{code=\"503\"} 1\n");
	CHECK(c200 && c201 && c404 && c503 && c200 < c201 && c201 < c404 && c404 < c503);
	CHECK(!strstr(t, "code=\"0\""));
	/* cumulative: 3 ms x2 and 5 ms in le 0.005, 7 ms by 0.01, 1.5 s by 2.5, 120 s only
	 * in +Inf */
	CHECK(has_line(t, "segspool_request_duration_seconds_bucket{le=\"0.005\"} 3"));
	CHECK(has_line(t, "segspool_request_duration_seconds_bucket{le=\"0.01\"} 4"));
	CHECK(has_line(t, "segspool_request_duration_seconds_bucket{le=\"1\"} 4"));
	CHECK(has_line(t, "segspool_request_duration_seconds_bucket{le=\"2.5\"} 5"));
	CHECK(has_line(t, "segspool_request_duration_seconds_bucket{le=\"60\"} 5"));
	CHECK(has_line(t, "segspool_request_duration_seconds_bucket{le=\"+Inf\"} 6"));
	CHECK(has_line(t, "segspool_request_duration_seconds_count 6"));
	/* 3+3+7+1500+5+120000 ms */
	CHECK(has_line(t, "segspool_request_duration_seconds_sum 121.518"));
	free(t);
	metrics_free(m);
}

TEST(test_oldest_due)
{
	struct metrics *m = metrics_new(METRICS_STORE);
	metrics_set_next_due(m, 1000);
	char *t = format(m, 3500);
	CHECK(has_line(t, "segspool_queue_oldest_due_seconds 2.500"));
	free(t);
	t = format(m, 999); /* not due yet */
	CHECK(has_line(t, "segspool_queue_oldest_due_seconds 0.000"));
	free(t);
	metrics_set_next_due(m, 0); /* none */
	t = format(m, 3500);
	CHECK(has_line(t, "segspool_queue_oldest_due_seconds 0.000"));
	free(t);
	metrics_free(m);
}

TEST(test_daemon_source)
{
	struct metrics *m = metrics_new(METRICS_DAEMON);
	metrics_set_start(m, 1764633600123);
	metrics_rate_wait(m, "ws:default/op:getEventsVolumeFromWorkspace", 250);
	metrics_rate_wait(m, "ws:default", 1000);
	metrics_rate_wait(m, "ws:default", 1500);
	metrics_rate_wait(m, "ws:zero", 0); /* no wait is no sample */
	metrics_rate_wait(m, "ws:a\"b\\c\nd", 1);
	char *t = format(m, 1764633600123);
	CHECK(well_formed(t));
	CHECK(has_line(t, "# TYPE segspool_start_time_seconds gauge"));
	CHECK(has_line(t, "segspool_start_time_seconds 1764633600.123"));
	CHECK(has_line(t, "# TYPE segspool_rate_limit_wait_seconds_total counter"));
	const char *ws = strstr(t, "segspool_rate_limit_wait_seconds_total{bucket=\"ws:default\"} "
	                           "2.500\n");
	const char *op = strstr(t, "segspool_rate_limit_wait_seconds_total{bucket=\"ws:default/"
	                           "op:getEventsVolumeFromWorkspace\"} 0.250\n");
	CHECK(ws && op && ws < op); /* by bucket name */
	CHECK(!strstr(t, "ws:zero"));
	CHECK(has_line(t, "segspool_rate_limit_wait_seconds_total{bucket=\"ws:a\\\"b\\\\c\\nd\"} "
	                  "0.001"));
	CHECK(strstr(t, "since this daemon started") != NULL);
	free(t);
	metrics_free(m);
}

TEST(test_daemon_source_no_wait)
{
	/* a daemon that held no job yet: the family is described, without samples */
	struct metrics *m = metrics_new(METRICS_DAEMON);
	char *t = format(m, 0);
	CHECK(well_formed(t));
	CHECK(has_line(t, "# TYPE segspool_rate_limit_wait_seconds_total counter"));
	CHECK(!strstr(t, "segspool_rate_limit_wait_seconds_total{"));
	CHECK(has_line(t, "segspool_start_time_seconds 0.000"));
	free(t);
	metrics_free(m);
}

/* end_attempt - one attempt of job id, begun and ended with this outcome. */
static void end_attempt(struct store *st, int64_t id, int no, const char *outcome, int status,
                        int64_t ms)
{
	int64_t aid = 0;
	CHECK_INT(store_attempt_begin(st, id, no, 1000, "GET /sources", &aid), 0);
	struct attempt_end ae = {.http_status = status,
	                         .outcome = outcome,
	                         .duration_ms = ms,
	                         .retry_after_ms = -1,
	                         .rl_remaining = -1};
	CHECK_INT(store_attempt_end(st, aid, &ae), 0);
}

TEST(test_read_store)
{
	struct store *st = open_fresh("metrics.db");
	struct job_new j = new_job("listSources", NULL, 0, 0);
	int64_t a = insert(st, &j, 1000), b = insert(st, &j, 2000);
	j.not_before_ms = 9000;
	CHECK(insert(st, &j, 2000) > 0); /* not due yet */
	end_attempt(st, a, 1, "retry", 503, 12);
	end_attempt(st, a, 2, "ok", 200, 3);
	end_attempt(st, b, 1, "retry", 0, 0);
	end_attempt(st, b, 2, "ok", 200, 3);
	int64_t open_id = 0; /* begun, not ended: in no count */
	CHECK_INT(store_attempt_begin(st, b, 3, 1000, "GET /sources", &open_id), 0);

	struct metrics *m = metrics_new(METRICS_STORE);
	CHECK_INT(metrics_read_queue(m, st), 0);
	CHECK_INT(metrics_read_attempts(m, st), 0);
	char *t = format(m, 4000);
	CHECK(well_formed(t));
	CHECK(has_line(t, "segspool_jobs{state=\"queued\"} 3"));
	CHECK(has_line(t, "segspool_attempts_total{outcome=\"ok\"} 2"));
	CHECK(has_line(t, "segspool_attempts_total{outcome=\"retry\"} 2"));
	CHECK(has_line(t, "segspool_http_responses_total{code=\"200\"} 2"));
	CHECK(has_line(t, "segspool_http_responses_total{code=\"503\"} 1"));
	CHECK(has_line(t, "segspool_request_duration_seconds_count 3"));
	CHECK(has_line(t, "segspool_request_duration_seconds_sum 0.018"));
	CHECK(has_line(t, "segspool_request_duration_seconds_bucket{le=\"0.005\"} 2"));
	/* the first job was due at 1000: 3 s ago at 4000 */
	CHECK(has_line(t, "segspool_queue_oldest_due_seconds 3.000"));
	free(t);
	metrics_free(m);
	store_close(st);
}

int main(void)
{
	log_set_level(LOG_WARN);
	fixture_begin("test_metrics");
	RUN(test_empty_store_source);
	RUN(test_attempts_and_histogram);
	RUN(test_oldest_due);
	RUN(test_daemon_source);
	RUN(test_daemon_source_no_wait);
	RUN(test_read_store);
	fixture_end();
	return tl_finish();
}
