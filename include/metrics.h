/* metrics.h - segspool's metrics in the Prometheus text format (0.0.4): one formatter,
 * two sources. The daemon counts attempts as they end and writes metrics_file (for
 * node_exporter's textfile collector); `segspool metrics` reads the same from the store.
 * The metrics themselves are described at the top of src/lib/metrics.c. Pure but for
 * metrics_read_*: the time is an argument. */
#ifndef SEGSPOOL_METRICS_H
#define SEGSPOOL_METRICS_H

#include <stdint.h>

#include "job_state.h"

struct store;
struct strbuf;
struct metrics;

/* which counts the HELP lines describe, and which metrics there are: the store has no
 * start time and keeps no rate-limit waits */
enum metrics_source {
	METRICS_DAEMON, /* counters since this daemon started */
	METRICS_STORE,  /* counters over every attempt recorded in the store */
};

struct metrics *metrics_new(enum metrics_source source);
void metrics_free(struct metrics *m);

/* metrics_set_jobs - the jobs in each state (store_counts). */
void metrics_set_jobs(struct metrics *m, const int64_t counts[JS_COUNT]);
/* metrics_set_next_due - when the earliest queued or waiting job is due (store_next_due_ms;
 * 0 when there is none): segspool_queue_oldest_due_seconds is how long ago, if it is due. */
void metrics_set_next_due(struct metrics *m, int64_t next_due_ms);
/* metrics_set_start - when the daemon started (segspool_start_time_seconds). */
void metrics_set_start(struct metrics *m, int64_t start_ms);
/* metrics_attempt - n attempts ended with this outcome ("ok", "retry"...), HTTP status
 * (0 when no response came) and duration: the outcome counter, and for a status, the
 * response counter and the duration histogram. */
void metrics_attempt(struct metrics *m, const char *outcome, int http_status, int64_t duration_ms,
                     int64_t n);
/* metrics_rate_wait - a job was held ms by the rate-limit bucket named bucket. */
void metrics_rate_wait(struct metrics *m, const char *bucket, int64_t ms);

/* metrics_format - the text exposition, appended to out; now_ms for the oldest due job. */
void metrics_format(const struct metrics *m, int64_t now_ms, struct strbuf *out);

/* metrics_read_queue - jobs by state and the next due time, from the store. 0, or -1
 * (store_errmsg says why). */
int metrics_read_queue(struct metrics *m, struct store *st);
/* metrics_read_attempts - every ended attempt recorded in the store. 0, or -1. */
int metrics_read_attempts(struct metrics *m, struct store *st);

#endif
