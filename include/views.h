/* views.h - the CLI's JSON views of the store (list, show, stats), built from the store's
 * row iterators: the documents `segspool list/show/stats --json` print. */
#ifndef SEGSPOOL_VIEWS_H
#define SEGSPOOL_VIEWS_H

#include <stdint.h>

#include "job_state.h"

struct cJSON;
struct store;

/* view_list - jobs newest first, optionally in one state: a JSON array of objects
 * {id, state, op, key, workspace, priority, attempts, created, next_run, parent, reason}
 * (reason: of the job's last state change, or its creation; null once it succeeded).
 * limit <= 0: all. NULL on error (store_errmsg says why). */
struct cJSON *view_list(struct store *st, const enum job_state *state, int limit);
/* view_show - one job whole: spec, state, transitions, attempts, pages (without items),
 * children's progress, result, error, read in one snapshot. NULL if not found or on error. */
struct cJSON *view_show(struct store *st, int64_t id);
/* view_stats - counts by state, attempts by outcome, requests made, and the
 * STORE_TOP_REASONS most common reasons of failed and dead jobs ("top_reasons"). */
struct cJSON *view_stats(struct store *st);

/* view_files - the spool files ingested as name (or submitted under it), oldest first:
 * {id, name, line?, njobs, duplicates, remaining, ended, results, results_written, jobs}
 * with jobs as view_list's rows in the file's order, limit of them (<= 0: all); remaining
 * and ended are null for a file without a results file (one job). A job's own file, with
 * its line, is "file" in view_show. NULL on error. */
struct cJSON *view_files(struct store *st, const char *name, int limit);

#endif
