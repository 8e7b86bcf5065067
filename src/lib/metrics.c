/* metrics.c - the Prometheus text exposition (format 0.0.4) of segspool's metrics.
 *
 * One formatter for two sources: the daemon writes it to "metrics_file" every 5 s and
 * at exit (a temporary file in the same directory, then a rename: node_exporter's
 * textfile collector never reads half a file), and `segspool metrics` prints it from the
 * store, for scripts and a cron-driven textfile. Every family has # HELP and # TYPE
 * lines before its samples; no label carries a job id.
 *
 *   segspool_jobs{state}                        gauge    jobs in the store by state (every
 *                                                        state, zeros included); both sources
 *   segspool_attempts_total{outcome}            counter  attempts that ended, by outcome (ok,
 *                                                        retry, rate_limited, failed, unknown,
 *                                                        cancelled, interrupted: zeros included)
 *   segspool_http_responses_total{code}         counter  HTTP responses by status code
 *   segspool_request_duration_seconds           histogram  duration of the attempts that got
 *                                                        an HTTP response (_bucket{le}, _sum,
 *                                                        _count)
 *   segspool_rate_limit_wait_seconds_total{bucket}  counter  daemon only: time jobs were
 *                                                        held back by a rate-limit bucket
 *                                                        ("ws:default", "ws:default/op:...")
 *                                                        before their request could go
 *   segspool_queue_oldest_due_seconds           gauge    how long the oldest due job (queued
 *                                                        or waiting, not yet claimed) has
 *                                                        been due; 0 if none
 *   segspool_start_time_seconds                 gauge    daemon only: when it started (Unix
 *                                                        time)
 *
 * The counters of the daemon's file count since that daemon started (they are kept in
 * memory, counted where attempts end: Prometheus takes a restart's reset in its stride);
 * those of `segspool metrics` count every attempt the store holds. An attempt started
 * but not yet ended is in neither. Seconds are printed with millisecond precision, the
 * store's.
 */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "strbuf.h"
#include "util.h"

/* the outcomes the store records (retry.c's outcome_name, and recovery's): listed with
 * zeros so a rate over them exists before the first one happens */
static const char *const known_outcomes[] = {"ok",      "retry",     "rate_limited", "failed",
                                             "unknown", "cancelled", "interrupted"};

/* the histogram's upper bounds, in ms and as le prints them: loopback answers in a
 * millisecond, the API in tens to hundreds, a slow export page in seconds */
static const struct {
	int64_t ms;
	const char *le;
} bounds[] = {{5, "0.005"},  {10, "0.01"},  {25, "0.025"}, {50, "0.05"},  {100, "0.1"},
              {250, "0.25"}, {500, "0.5"},  {1000, "1"},   {2500, "2.5"}, {5000, "5"},
              {10000, "10"}, {30000, "30"}, {60000, "60"}};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

struct named_count {
	char *name;
	int64_t n;
};

struct code_count {
	int code;
	int64_t n;
};

struct metrics {
	enum metrics_source source;
	int64_t jobs[JS_COUNT];
	int64_t next_due_ms, start_ms;
	struct named_count *outcomes, *waits; /* waits: ms per bucket */
	size_t noutcomes, nwaits;
	struct code_count *codes; /* by code, ascending */
	size_t ncodes;
	int64_t buckets[NBOUNDS + 1]; /* per bound (not cumulative), the last for +Inf */
	int64_t duration_sum_ms, duration_count;
};

/* named_add - n more for name, which is added (at the end) when new. */
static void named_add(struct named_count **v, size_t *len, const char *name, int64_t n)
{
	for (size_t i = 0; i < *len; i++) {
		if (strcmp((*v)[i].name, name) == 0) {
			(*v)[i].n += n;
			return;
		}
	}
	*v = xrealloc(*v, (*len + 1) * sizeof(**v));
	(*v)[*len].name = xstrdup(name);
	(*v)[*len].n = n;
	(*len)++;
}

/* named_free - the names and the array. */
static void named_free(struct named_count *v, size_t len)
{
	for (size_t i = 0; i < len; i++)
		free(v[i].name);
	free(v);
}

/* metrics_new - all zero, the known outcomes listed. */
struct metrics *metrics_new(enum metrics_source source)
{
	struct metrics *m = xcalloc(1, sizeof(*m));
	m->source = source;
	for (size_t i = 0; i < ARRAY_SIZE(known_outcomes); i++)
		named_add(&m->outcomes, &m->noutcomes, known_outcomes[i], 0);
	return m;
}

/* metrics_free - everything. */
void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	named_free(m->outcomes, m->noutcomes);
	named_free(m->waits, m->nwaits);
	free(m->codes);
	free(m);
}

/* metrics_set_jobs - see metrics.h. */
void metrics_set_jobs(struct metrics *m, const int64_t counts[JS_COUNT])
{
	memcpy(m->jobs, counts, sizeof(m->jobs));
}

/* metrics_set_next_due - see metrics.h. */
void metrics_set_next_due(struct metrics *m, int64_t next_due_ms)
{
	m->next_due_ms = next_due_ms;
}

/* metrics_set_start - see metrics.h. */
void metrics_set_start(struct metrics *m, int64_t start_ms)
{
	m->start_ms = start_ms;
}

/* code_add - n more responses with this status, kept in ascending order. */
static void code_add(struct metrics *m, int code, int64_t n)
{
	size_t i = 0;
	while (i < m->ncodes && m->codes[i].code < code)
		i++;
	if (i < m->ncodes && m->codes[i].code == code) {
		m->codes[i].n += n;
		return;
	}
	m->codes = xrealloc(m->codes, (m->ncodes + 1) * sizeof(*m->codes));
	memmove(&m->codes[i + 1], &m->codes[i], (m->ncodes - i) * sizeof(*m->codes));
	m->codes[i].code = code;
	m->codes[i].n = n;
	m->ncodes++;
}

/* metrics_attempt - see metrics.h. */
void metrics_attempt(struct metrics *m, const char *outcome, int http_status, int64_t duration_ms,
                     int64_t n)
{
	named_add(&m->outcomes, &m->noutcomes, outcome ? outcome : "unknown", n);
	if (http_status <= 0)
		return;
	code_add(m, http_status, n);
	if (duration_ms < 0)
		duration_ms = 0;
	size_t b = 0;
	while (b < NBOUNDS && duration_ms > bounds[b].ms)
		b++;
	m->buckets[b] += n;
	m->duration_sum_ms += duration_ms * n;
	m->duration_count += n;
}

/* metrics_rate_wait - see metrics.h. */
void metrics_rate_wait(struct metrics *m, const char *bucket, int64_t ms)
{
	if (ms > 0)
		named_add(&m->waits, &m->nwaits, bucket, ms);
}

/* add_seconds - ms as seconds, exactly: "1.250" (no float rounding on the way). */
static void add_seconds(struct strbuf *out, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	sb_addf(out, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

/* add_label_value - a label value between quotes, with \, " and newline escaped as the
 * text format requires (a workspace name is the config's to choose). */
static void add_label_value(struct strbuf *out, const char *v)
{
	sb_addch(out, '"');
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			sb_addch(out, '\\');
		if (*v == '\n')
			sb_adds(out, "\\n");
		else
			sb_addch(out, *v);
	}
	sb_addch(out, '"');
}

/* family - the # HELP and # TYPE lines of a metric family. */
static void family(struct strbuf *out, const char *name, const char *type, const char *help)
{
	sb_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* since - what the counters count, at the end of their HELP text. */
static const char *since(const struct metrics *m)
{
	return m->source == METRICS_DAEMON ? "since this daemon started"
	                                   : "over the attempts recorded in the store";
}

/* by_name_cmp - qsort order of named counts: by name. */
static int by_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct named_count *)a)->name, ((const struct named_count *)b)->name);
}

/* metrics_format - see metrics.h. */
void metrics_format(const struct metrics *m, int64_t now_ms, struct strbuf *out)
{
	struct strbuf help = STRBUF_INIT;
	family(out, "segspool_jobs", "gauge", "Jobs in the store by state.");
	for (int s = 0; s < JS_COUNT; s++)
		sb_addf(out, "segspool_jobs{state=\"%s\"} %lld\n",
		        job_state_name((enum job_state)s), (long long)m->jobs[s]);

	sb_addf(&help, "Attempts (requests tried) that ended, by outcome, %s.", since(m));
	family(out, "segspool_attempts_total", "counter", help.buf);
	for (size_t i = 0; i < m->noutcomes; i++) {
		sb_adds(out, "segspool_attempts_total{outcome=");
		add_label_value(out, m->outcomes[i].name);
		sb_addf(out, "} %lld\n", (long long)m->outcomes[i].n);
	}

	sb_reset(&help);
	sb_addf(&help, "HTTP responses by status code, %s.", since(m));
	family(out, "segspool_http_responses_total", "counter", help.buf);
	for (size_t i = 0; i < m->ncodes; i++)
		sb_addf(out, "segspool_http_responses_total{code=\"%d\"} %lld\n", m->codes[i].code,
		        (long long)m->codes[i].n);

	sb_reset(&help);
	sb_addf(&help, "Duration of the attempts that got an HTTP response, %s.", since(m));
	family(out, "segspool_request_duration_seconds", "histogram", help.buf);
	int64_t cumulative = 0;
	for (size_t b = 0; b < NBOUNDS; b++) {
		cumulative += m->buckets[b];
		sb_addf(out, "segspool_request_duration_seconds_bucket{le=\"%s\"} %lld\n",
		        bounds[b].le, (long long)cumulative);
	}
	sb_addf(out, "segspool_request_duration_seconds_bucket{le=\"+Inf\"} %lld\n",
	        (long long)(cumulative + m->buckets[NBOUNDS]));
	sb_adds(out, "segspool_request_duration_seconds_sum ");
	add_seconds(out, m->duration_sum_ms);
	sb_addf(out, "\nsegspool_request_duration_seconds_count %lld\n",
	        (long long)m->duration_count);

	if (m->source == METRICS_DAEMON) {
		family(out, "segspool_rate_limit_wait_seconds_total", "counter",
		       "Time jobs were held back by a rate-limit bucket before their request "
		       "could go (the wait each deferral was given), by bucket, since this "
		       "daemon started.");
		struct named_count *sorted = xmalloc((m->nwaits + 1) * sizeof(*sorted));
		if (m->nwaits) { /* memcpy from NULL is undefined, even of 0 bytes */
			memcpy(sorted, m->waits, m->nwaits * sizeof(*sorted));
			qsort(sorted, m->nwaits, sizeof(*sorted), by_name_cmp);
		}
		for (size_t i = 0; i < m->nwaits; i++) {
			sb_adds(out, "segspool_rate_limit_wait_seconds_total{bucket=");
			add_label_value(out, sorted[i].name);
			sb_adds(out, "} ");
			add_seconds(out, sorted[i].n);
			sb_addch(out, '\n');
		}
		free(sorted);
	}

	family(out, "segspool_queue_oldest_due_seconds", "gauge",
	       "How long the oldest due job (queued or waiting, not yet claimed) has been "
	       "due; 0 if none is.");
	sb_adds(out, "segspool_queue_oldest_due_seconds ");
	add_seconds(out,
	            m->next_due_ms > 0 && m->next_due_ms <= now_ms ? now_ms - m->next_due_ms : 0);
	sb_addch(out, '\n');

	if (m->source == METRICS_DAEMON) {
		family(out, "segspool_start_time_seconds", "gauge",
		       "When this daemon started, in seconds since the Unix epoch.");
		sb_adds(out, "segspool_start_time_seconds ");
		add_seconds(out, m->start_ms);
		sb_addch(out, '\n');
	}
	sb_release(&help);
}

/* metrics_read_queue - see metrics.h. */
int metrics_read_queue(struct metrics *m, struct store *st)
{
	int64_t counts[JS_COUNT];
	if (store_counts(st, counts) < 0)
		return -1;
	int64_t due = store_next_due_ms(st);
	if (due < 0)
		return -1;
	metrics_set_jobs(m, counts);
	metrics_set_next_due(m, due);
	return 0;
}

/* add_group - one group of store_attempt_groups. */
static void add_group(const char *outcome, int http_status, int64_t duration_ms, int64_t n,
                      void *arg)
{
	metrics_attempt(arg, outcome, http_status, duration_ms, n);
}

/* metrics_read_attempts - see metrics.h. */
int metrics_read_attempts(struct metrics *m, struct store *st)
{
	return store_attempt_groups(st, add_group, m);
}
