/* views.c - the JSON documents of list, show and stats, made from the store's rows; see
 * views.h. Nothing here knows how the store keeps them. */
#include "views.h"

#include <cjson/cJSON.h>
#include <stdint.h>

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

/* list_entry - one job of view_list, appended to the array arg. */
static int list_entry(const struct job_summary *j, void *arg)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)j->id);
	cJSON_AddStringToObject(o, "state", job_state_name(j->state));
	add_text(o, "op", j->op_id);
	add_text(o, "key", j->key);
	add_text(o, "workspace", j->workspace);
	add_int(o, "priority", j->priority);
	add_int(o, "attempts", j->attempts);
	add_time(o, "created", j->created_ms);
	add_time(o, "next_run", j->next_run_ms);
	add_int(o, "parent", j->parent_id);
	add_text(o, "reason", j->reason);
	cJSON_AddItemToArray(arg, o);
	return 0;
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

/* job_fields - the job's own row, into the object arg. */
static int job_fields(const struct job_detail *j, void *arg)
{
	cJSON *o = arg;
	cJSON_AddNumberToObject(o, "id", (double)j->id);
	cJSON_AddStringToObject(o, "state", job_state_name(j->state));
	add_text(o, "op", j->op_id);
	add_text(o, "key", j->key);
	add_text(o, "workspace", j->workspace);
	add_int(o, "priority", j->priority);
	/* "attempts" is the history array; this is the count against the max */
	add_int(o, "attempts_counted", j->attempts_counted);
	add_int(o, "max_attempts", j->max_attempts);
	add_time(o, "created", j->created_ms);
	add_time(o, "updated", j->updated_ms);
	add_time(o, "next_run", j->next_run_ms);
	add_time(o, "finished", j->finished_ms);
	add_parsed(o, "spec", j->spec_json);
	add_text(o, "output", j->output_path);
	add_text(o, "source_file", j->source_file);
	add_int(o, "parent", j->parent_id);
	add_text(o, "cursor", j->cursor);
	add_int(o, "pages_done", j->pages_done);
	add_int(o, "items_done", j->items_done);
	add_int(o, "total_entries", j->total_entries);
	add_parsed(o, "result", j->result_json);
	add_parsed(o, "error", j->error_json);
	cJSON_AddBoolToObject(o, "cancel_requested", j->cancel_requested);
	cJSON_AddBoolToObject(o, "paginated", j->paginated);
	return 0;
}

/* add_state - a state by name, or null (a creation has no from). */
static void add_state(cJSON *o, const char *name, int state)
{
	if (state < 0)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddStringToObject(o, name, job_state_name((enum job_state)state));
}

/* transition_entry - {from, to, at, reason}. */
static int transition_entry(const struct transition_rec *t, void *arg)
{
	cJSON *o = cJSON_CreateObject();
	add_state(o, "from", t->from_state);
	add_state(o, "to", (int)t->to_state);
	add_time(o, "at", t->at_ms);
	add_text(o, "reason", t->reason);
	cJSON_AddItemToArray(arg, o);
	return 0;
}

/* attempt_entry - one attempt, as recorded. */
static int attempt_entry(const struct attempt_rec *a, void *arg)
{
	cJSON *o = cJSON_CreateObject();
	add_int(o, "attempt", a->attempt_no);
	add_time(o, "started", a->started_ms);
	add_int(o, "duration_ms", a->duration_ms);
	add_int(o, "http_status", a->http_status);
	add_text(o, "outcome", a->outcome);
	add_text(o, "error", a->error);
	add_int(o, "retry_after_ms", a->retry_after_ms);
	add_int(o, "rl_remaining", a->rl_remaining);
	add_text(o, "rl_reset", a->rl_reset);
	add_text(o, "request", a->request);
	add_text(o, "body", a->body);
	if (a->resolved) /* what its references were: the values sent */
		add_parsed(o, "resolved", a->resolved);
	cJSON_AddItemToArray(arg, o);
	return 0;
}

/* page_entry - one page without its items. */
static int page_entry(const struct page_rec *p, void *arg)
{
	cJSON *o = cJSON_CreateObject();
	add_int(o, "page_no", p->page_no);
	add_int(o, "nitems", p->nitems);
	add_text(o, "cursor", p->cursor);
	add_text(o, "next_cursor", p->next_cursor);
	add_time(o, "at", p->at_ms);
	cJSON_AddItemToArray(arg, o);
	return 0;
}

/* child_entry - one child's progress. */
static int child_entry(const struct child_rec *c, void *arg)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)c->id);
	cJSON_AddStringToObject(o, "state", job_state_name(c->state));
	add_int(o, "pages_done", c->pages_done);
	add_int(o, "items_done", c->items_done);
	add_int(o, "total_entries", c->total_entries);
	cJSON_AddItemToArray(arg, o);
	return 0;
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
	    add_children(st, id, o) < 0) {
		cJSON_Delete(o);
		return NULL;
	}
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
