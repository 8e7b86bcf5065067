/* views.c - the JSON documents of list, show and stats, made from the store's rows; see
 * views.h. Nothing here knows how the store keeps them. */
#include "views.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store.h"
#include "util.h"

/* add_int - a number, or null for one the store does not have. */
static void add_int(cJSON *o, const char *name, int64_t v)
{
	if (v == STORE_NONE)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddNumberToObject(o, name, (double)v);
}

/* add_text - a string, or null. */
static void add_text(cJSON *o, const char *name, const char *t)
{
	if (t)
		cJSON_AddStringToObject(o, name, t);
	else
		cJSON_AddNullToObject(o, name);
}

/* add_time - milliseconds as RFC 3339 text, or null. */
static void add_time(cJSON *o, const char *name, int64_t ms)
{
	char when[48];
	if (ms == STORE_NONE) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	format_iso8601(ms, when);
	cJSON_AddStringToObject(o, name, when);
}

/* add_parsed - stored JSON text, parsed; kept as a string if it does not parse (we stored
 * it, so that means damage worth seeing), null if none. */
static void add_parsed(cJSON *o, const char *name, const char *t)
{
	cJSON *v = t ? cJSON_Parse(t) : NULL;
	if (v)
		cJSON_AddItemToObject(o, name, v);
	else
		add_text(o, name, t);
}

/* a member of a view: its name, how the record holds it, where */
enum field_kind { F_INT, F_TEXT, F_TIME, F_STATE, F_FROM_STATE, F_JSON, F_JSON_IF, F_BOOL };
struct field {
	const char *name;
	enum field_kind kind;
	size_t off;
};
/* the size each kind reads: FIELD refuses to compile for a member of another size */
#define F_INT_SIZE sizeof(int64_t)
#define F_TIME_SIZE sizeof(int64_t)
#define F_TEXT_SIZE sizeof(const char *)
#define F_JSON_SIZE sizeof(const char *)
#define F_JSON_IF_SIZE sizeof(const char *)
#define F_STATE_SIZE sizeof(enum job_state)
#define F_FROM_STATE_SIZE sizeof(int)
#define F_BOOL_SIZE sizeof(int)
#define FIELD(rec, name, kind, member)                                                             \
	{                                                                                          \
		name, kind,                                                                        \
		    offsetof(struct rec, member) +                                                 \
		        0 * sizeof(                                                                \
		                char[1 - 2 * (sizeof(((struct rec *)0)->member) != kind##_SIZE)])  \
	}

/* add_state - a state by name, or null (a creation has no from). */
static void add_state(cJSON *o, const char *name, int state)
{
	if (state < 0)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddStringToObject(o, name, job_state_name((enum job_state)state));
}

/* add_fields - the members of fields[0..n) read from rec, into o. */
static void add_fields(cJSON *o, const void *rec, const struct field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *at = (const char *)rec + fields[i].off;
		int64_t v;
		int flag;
		const char *t;
		enum job_state js;
		switch (fields[i].kind) {
		case F_INT:
		case F_TIME:
			memcpy(&v, at, sizeof(v));
			(fields[i].kind == F_INT ? add_int : add_time)(o, fields[i].name, v);
			break;
		case F_TEXT:
		case F_JSON:
			memcpy(&t, at, sizeof(t));
			(fields[i].kind == F_TEXT ? add_text : add_parsed)(o, fields[i].name, t);
			break;
		case F_JSON_IF: /* only when there is one */
			memcpy(&t, at, sizeof(t));
			if (t)
				add_parsed(o, fields[i].name, t);
			break;
		case F_STATE:
			memcpy(&js, at, sizeof(js));
			add_state(o, fields[i].name, (int)js);
			break;
		case F_FROM_STATE:
			memcpy(&flag, at, sizeof(flag));
			add_state(o, fields[i].name, flag);
			break;
		case F_BOOL:
			memcpy(&flag, at, sizeof(flag));
			cJSON_AddBoolToObject(o, fields[i].name, flag);
			break;
		}
	}
}

/* add_entry - a new object of fields from rec, appended to the array arr. */
static int add_entry(cJSON *arr, const void *rec, const struct field *fields, size_t n)
{
	cJSON *o = cJSON_CreateObject();
	add_fields(o, rec, fields, n);
	cJSON_AddItemToArray(arr, o);
	return 0;
}

static const struct field summary_fields[] = {
    FIELD(job_summary, "id", F_INT, id),
    FIELD(job_summary, "state", F_STATE, state),
    FIELD(job_summary, "op", F_TEXT, op_id),
    FIELD(job_summary, "key", F_TEXT, key),
    FIELD(job_summary, "workspace", F_TEXT, workspace),
    FIELD(job_summary, "priority", F_INT, priority),
    FIELD(job_summary, "attempts", F_INT, attempts),
    FIELD(job_summary, "created", F_TIME, created_ms),
    FIELD(job_summary, "next_run", F_TIME, next_run_ms),
    FIELD(job_summary, "parent", F_INT, parent_id),
    FIELD(job_summary, "reason", F_TEXT, reason),
};

/* list_entry - one job of view_list, appended to the array arg. */
static int list_entry(const struct job_summary *j, void *arg)
{
	return add_entry(arg, j, summary_fields, ARRAY_SIZE(summary_fields));
}

/* view_list - jobs newest first, in one state or all. */
cJSON *view_list(struct store *st, const enum job_state *state, int limit)
{
	cJSON *list = cJSON_CreateArray();
	if (store_list(st, state, limit, list_entry, list) < 0) {
		cJSON_Delete(list);
		return NULL;
	}
	return list;
}

/* "attempts" is the history array; attempts_counted the count against the max */
static const struct field detail_fields[] = {
    FIELD(job_detail, "id", F_INT, id),
    FIELD(job_detail, "state", F_STATE, state),
    FIELD(job_detail, "op", F_TEXT, op_id),
    FIELD(job_detail, "key", F_TEXT, key),
    FIELD(job_detail, "workspace", F_TEXT, workspace),
    FIELD(job_detail, "priority", F_INT, priority),
    FIELD(job_detail, "attempts_counted", F_INT, attempts_counted),
    FIELD(job_detail, "max_attempts", F_INT, max_attempts),
    FIELD(job_detail, "created", F_TIME, created_ms),
    FIELD(job_detail, "updated", F_TIME, updated_ms),
    FIELD(job_detail, "next_run", F_TIME, next_run_ms),
    FIELD(job_detail, "finished", F_TIME, finished_ms),
    FIELD(job_detail, "spec", F_JSON, spec_json),
    FIELD(job_detail, "output", F_TEXT, output_path),
    FIELD(job_detail, "source_file", F_TEXT, source_file),
    FIELD(job_detail, "parent", F_INT, parent_id),
    FIELD(job_detail, "cursor", F_TEXT, cursor),
    FIELD(job_detail, "pages_done", F_INT, pages_done),
    FIELD(job_detail, "items_done", F_INT, items_done),
    FIELD(job_detail, "total_entries", F_INT, total_entries),
    FIELD(job_detail, "result", F_JSON, result_json),
    FIELD(job_detail, "error", F_JSON, error_json),
    FIELD(job_detail, "cancel_requested", F_BOOL, cancel_requested),
    FIELD(job_detail, "paginated", F_BOOL, paginated),
};

static const struct field transition_fields[] = {
    FIELD(transition_rec, "from", F_FROM_STATE, from_state),
    FIELD(transition_rec, "to", F_STATE, to_state),
    FIELD(transition_rec, "at", F_TIME, at_ms),
    FIELD(transition_rec, "reason", F_TEXT, reason),
};

static const struct field attempt_fields[] = {
    FIELD(attempt_rec, "attempt", F_INT, attempt_no),
    FIELD(attempt_rec, "started", F_TIME, started_ms),
    FIELD(attempt_rec, "duration_ms", F_INT, duration_ms),
    FIELD(attempt_rec, "http_status", F_INT, http_status),
    FIELD(attempt_rec, "outcome", F_TEXT, outcome),
    FIELD(attempt_rec, "error", F_TEXT, error),
    FIELD(attempt_rec, "retry_after_ms", F_INT, retry_after_ms),
    FIELD(attempt_rec, "rl_remaining", F_INT, rl_remaining),
    FIELD(attempt_rec, "rl_reset", F_TEXT, rl_reset),
    FIELD(attempt_rec, "request", F_TEXT, request),
    FIELD(attempt_rec, "body", F_TEXT, body),
    /* what its references were: the values sent */
    FIELD(attempt_rec, "resolved", F_JSON_IF, resolved),
};

static const struct field page_fields[] = {
    FIELD(page_rec, "page_no", F_INT, page_no), FIELD(page_rec, "nitems", F_INT, nitems),
    FIELD(page_rec, "cursor", F_TEXT, cursor),  FIELD(page_rec, "next_cursor", F_TEXT, next_cursor),
    FIELD(page_rec, "at", F_TIME, at_ms),
};

static const struct field child_fields[] = {
    FIELD(child_rec, "id", F_INT, id),
    FIELD(child_rec, "state", F_STATE, state),
    FIELD(child_rec, "pages_done", F_INT, pages_done),
    FIELD(child_rec, "items_done", F_INT, items_done),
    FIELD(child_rec, "total_entries", F_INT, total_entries),
};

/* job_fields - the job's own row, into the object arg. */
static int job_fields(const struct job_detail *j, void *arg)
{
	add_fields(arg, j, detail_fields, ARRAY_SIZE(detail_fields));
	return 0;
}

/* transition_entry - {from, to, at, reason}. */
static int transition_entry(const struct transition_rec *t, void *arg)
{
	return add_entry(arg, t, transition_fields, ARRAY_SIZE(transition_fields));
}

/* attempt_entry - one attempt, as recorded. */
static int attempt_entry(const struct attempt_rec *a, void *arg)
{
	return add_entry(arg, a, attempt_fields, ARRAY_SIZE(attempt_fields));
}

/* page_entry - one page without its items. */
static int page_entry(const struct page_rec *p, void *arg)
{
	return add_entry(arg, p, page_fields, ARRAY_SIZE(page_fields));
}

/* child_entry - one child's progress. */
static int child_entry(const struct child_rec *c, void *arg)
{
	return add_entry(arg, c, child_fields, ARRAY_SIZE(child_fields));
}

/* add_children - {total, succeeded, ..., jobs: [...]} for a parent; 0 or -1. */
static int add_children(struct store *st, int64_t id, cJSON *o)
{
	struct child_counts c;
	if (store_children_counts(st, id, &c) < 0)
		return -1;
	if (!c.total)
		return 0;
	cJSON *ch = cJSON_AddObjectToObject(o, "children");
	cJSON_AddNumberToObject(ch, "total", c.total);
	cJSON_AddNumberToObject(ch, "succeeded", c.succeeded);
	cJSON_AddNumberToObject(ch, "failed", c.failed);
	cJSON_AddNumberToObject(ch, "dead", c.dead);
	cJSON_AddNumberToObject(ch, "cancelled", c.cancelled);
	cJSON_AddNumberToObject(ch, "active", c.active);
	return store_children_foreach(st, id, child_entry, cJSON_AddArrayToObject(ch, "jobs"));
}

/* file_fields - a spool file's progress towards its results file (issue 13): {id, name,
 * njobs, duplicates, remaining, ended, results, results_written}; line for a job's. */
static int file_fields(const struct file_rec *f, void *arg)
{
	cJSON *o = arg;
	cJSON_AddNumberToObject(o, "id", (double)f->id);
	add_text(o, "name", f->name);
	if (f->line != STORE_NONE)
		add_int(o, "line", f->line);
	add_int(o, "njobs", f->njobs);
	add_int(o, "duplicates", f->nduplicates);
	/* remaining: jobs not yet ended; none for a file without a results file */
	add_int(o, "remaining", f->remaining);
	add_int(o, "ended",
	        f->remaining == STORE_NONE
	            ? STORE_NONE
	            : f->njobs - f->nduplicates - (f->remaining > 0 ? f->remaining : 0));
	add_text(o, "results", f->results);
	cJSON_AddBoolToObject(o, "results_written", f->results_done);
	return 0;
}

/* show - the body of view_show, inside its snapshot. */
static cJSON *show(struct store *st, int64_t id)
{
	cJSON *o = cJSON_CreateObject();
	if (store_job_detail(st, id, job_fields, o) != 0 ||
	    store_transitions_foreach(st, id, transition_entry,
	                              cJSON_AddArrayToObject(o, "transitions")) < 0 ||
	    store_attempts_foreach(st, id, attempt_entry, cJSON_AddArrayToObject(o, "attempts")) <
	        0 ||
	    store_page_recs_foreach(st, id, page_entry, cJSON_AddArrayToObject(o, "pages")) < 0 ||
	    add_children(st, id, o) < 0 ||
	    store_file_of_job(st, id, file_fields, cJSON_AddObjectToObject(o, "file")) < 0) {
		cJSON_Delete(o);
		return NULL;
	}
	cJSON *file = cJSON_GetObjectItemCaseSensitive(o, "file");
	if (!file->child) /* not from a spool file */
		cJSON_DeleteItemFromObjectCaseSensitive(o, "file");
	return o;
}

/* view_show - one job whole, in one snapshot. */
cJSON *view_show(struct store *st, int64_t id)
{
	if (store_read_begin(st) < 0)
		return NULL;
	cJSON *o = show(st, id);
	store_read_end(st);
	return o;
}

/* add_tally - {name: n} into the object arg. */
static int add_tally(const char *name, int64_t n, void *arg)
{
	cJSON_AddNumberToObject(arg, name ? name : "", (double)n);
	return 0;
}

/* add_reason - {"reason": r, "jobs": n} appended to the array arg. */
static int add_reason(const char *reason, int64_t n, void *arg)
{
	cJSON *o = cJSON_CreateObject();
	add_text(o, "reason", reason);
	cJSON_AddNumberToObject(o, "jobs", (double)n);
	cJSON_AddItemToArray(arg, o);
	return 0;
}

/* view_stats - {"jobs": {state: n}, "attempts": {outcome: n}, "requests": n,
 * "top_reasons": [...]}. */
cJSON *view_stats(struct store *st)
{
	int64_t counts[JS_COUNT];
	if (store_counts(st, counts) < 0)
		return NULL;
	cJSON *o = cJSON_CreateObject();
	cJSON *jobs = cJSON_AddObjectToObject(o, "jobs");
	for (int i = 0; i < JS_COUNT; i++)
		cJSON_AddNumberToObject(jobs, job_state_name((enum job_state)i), (double)counts[i]);
	int64_t requests = -1;
	if (store_attempt_outcomes_foreach(st, add_tally, cJSON_AddObjectToObject(o, "attempts")) <
	        0 ||
	    (requests = store_count_requests(st)) < 0 ||
	    !cJSON_AddNumberToObject(o, "requests", (double)requests) ||
	    store_top_reasons_foreach(st, STORE_TOP_REASONS, add_reason,
	                              cJSON_AddArrayToObject(o, "top_reasons")) < 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

struct file_view {
	struct store *st;
	cJSON *files;
	int limit, failed;
};

/* file_entry - one file of view_files, with its jobs. */
static int file_entry(const struct file_rec *f, void *arg)
{
	struct file_view *v = arg;
	cJSON *o = cJSON_CreateObject();
	file_fields(f, o);
	cJSON_AddItemToArray(v->files, o);
	if (store_list_file(v->st, f->id, v->limit, list_entry, cJSON_AddArrayToObject(o, "jobs")) <
	    0)
		v->failed = 1;
	return v->failed;
}

/* view_files - the files ingested under name, oldest first, with their jobs. */
cJSON *view_files(struct store *st, const char *name, int limit)
{
	struct file_view v = {st, cJSON_CreateArray(), limit, 0};
	if (store_read_begin(st) < 0) {
		cJSON_Delete(v.files);
		return NULL;
	}
	if (store_files_named(st, name, file_entry, &v) < 0 || v.failed) {
		cJSON_Delete(v.files);
		v.files = NULL;
	}
	store_read_end(st);
	return v.files;
}
