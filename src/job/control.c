/* control.c - retry and cancel over the store, for the CLI and the daemon alike. */
#include "control.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "util.h"

static const char *const action_names[] = {"retry", "cancel"};

/* control_action_name - "retry" or "cancel". */
const char *control_action_name(enum control_action a)
{
	return (unsigned)a < ARRAY_SIZE(action_names) ? action_names[a] : "unknown";
}

/* control_action_parse - the action named name; 0, or -1 if there is none. */
int control_action_parse(const char *name, enum control_action *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(action_names); i++) {
		if (strcmp(name, action_names[i]) == 0) {
			*out = (enum control_action)i;
			return 0;
		}
	}
	return -1;
}

/* control_request_release - frees the ids. */
void control_request_release(struct control_request *req)
{
	free(req->ids);
	req->ids = NULL;
	req->nids = 0;
}

/* control_request_to_json - the control file the CLI hands to a running daemon (ids
 * as integers: cJSON would print large ones in exponent form). */
char *control_request_to_json(const struct control_request *req)
{
	struct strbuf sb = STRBUF_INIT;
	sb_addf(&sb, "{\"action\":\"%s\",", control_action_name(req->action));
	if (req->by_state) {
		sb_addf(&sb, "\"state\":\"%s\"}", job_state_name(req->state));
	} else {
		sb_adds(&sb, "\"ids\":[");
		for (size_t i = 0; i < req->nids; i++) {
			if (i)
				sb_addch(&sb, ',');
			sb_add_int(&sb, req->ids[i]);
		}
		sb_adds(&sb, "]}");
	}
	return sb_detach(&sb, NULL);
}

/* control_request_parse - {"action":"retry"|"cancel", "ids":[N...]} or {..., "state":S}. */
int control_request_parse(const char *text, struct control_request *out, struct strbuf *why)
{
	memset(out, 0, sizeof(*out));
	cJSON *doc = cJSON_Parse(text);
	const cJSON *action = cJSON_GetObjectItemCaseSensitive(doc, "action");
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(doc, "ids");
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(doc, "state");
	int rc = -1;
	if (!cJSON_IsObject(doc))
		sb_adds(why, "not a JSON object");
	else if (!cJSON_IsString(action) || control_action_parse(action->valuestring, &out->action))
		sb_adds(why, "action is not \"retry\" or \"cancel\"");
	else if (state &&
	         (!cJSON_IsString(state) || job_state_parse(state->valuestring, &out->state) < 0))
		sb_adds(why, "state is not a job state");
	else if (!state && !cJSON_IsArray(ids))
		sb_adds(why, "neither ids nor state given");
	else
		rc = 0;
	out->by_state = rc == 0 && state;
	if (rc == 0 && !out->by_state) {
		out->ids = xcalloc((size_t)cJSON_GetArraySize(ids) + 1, sizeof(*out->ids));
		for (const cJSON *it = ids->child; it; it = it->next) {
			double v = cJSON_IsNumber(it) ? it->valuedouble : 0;
			if (v < 1 || v > JSON_EXACT_INT_LIMIT || v != floor(v)) {
				sb_adds(why, "ids holds something that is not a job number");
				control_request_release(out);
				rc = -1;
				break;
			}
			out->ids[out->nids++] = (int64_t)v;
		}
	}
	cJSON_Delete(doc);
	return rc;
}

/* --- a set of job ids, for the jobs already changed by this request ------------------ */

struct idset {
	int64_t *slots; /* open addressing; 0 is empty (job ids start at 1) */
	size_t cap, n;
};

/* idset_slot - where id is, or the empty slot where it goes. */
static size_t idset_slot(const struct idset *s, int64_t id)
{
	size_t i = (size_t)((uint64_t)id * 0x9e3779b97f4a7c15ULL) & (s->cap - 1);
	while (s->slots[i] && s->slots[i] != id)
		i = (i + 1) & (s->cap - 1);
	return i;
}

static int idset_has(const struct idset *s, int64_t id)
{
	return s->cap && s->slots[idset_slot(s, id)] == id;
}

/* idset_add - records id (kept at most half full, so probes stay short). */
static void idset_add(struct idset *s, int64_t id)
{
	if ((s->n + 1) * 2 > s->cap) {
		struct idset bigger = {xcalloc(s->cap ? s->cap * 2 : 64, sizeof(int64_t)),
		                       s->cap ? s->cap * 2 : 64, 0};
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i])
				bigger.slots[idset_slot(&bigger, s->slots[i])] = s->slots[i];
		bigger.n = s->n;
		free(s->slots);
		*s = bigger;
	}
	size_t i = idset_slot(s, id);
	if (!s->slots[i]) {
		s->slots[i] = id;
		s->n++;
	}
}

/* --- applying a request --------------------------------------------------------------- */

struct apply {
	struct store *st;
	const struct control_hooks *hooks;
	int64_t now;
	struct idset done; /* changed by this request (as a child or by id) */
	struct strbuf why; /* the last outcome's reason */
	int store_failed;
	int dep_refused; /* the last refusal was for a failed dependency */
};

static enum control_outcome act(struct apply *a, enum control_action action, int64_t id,
                                size_t *nkids);

/* store_error - a failed store call: the request stops and is rolled back. */
static enum control_outcome store_error(struct apply *a)
{
	sb_reset(&a->why);
	sb_adds(&a->why, store_errmsg(a->st));
	a->store_failed = 1;
	return CONTROL_ERROR;
}

/* refused - a job not in a state the action allows: "BEFORE STATE AFTER". */
static enum control_outcome refused(struct apply *a, const char *before, enum job_state s,
                                    const char *after)
{
	sb_reset(&a->why);
	sb_addf(&a->why, "%s %s%s", before, job_state_name(s), after);
	return CONTROL_REFUSED;
}

/* cascade - the action on a parent's children; counts the ones it changed. */
static void cascade(struct apply *a, enum control_action action, int64_t parent, size_t *nkids)
{
	int64_t *kids = NULL;
	size_t n = 0;
	if (store_children_ids(a->st, parent, &kids, &n) < 0) {
		store_error(a);
		return;
	}
	for (size_t i = 0; i < n && !a->store_failed; i++) {
		if (idset_has(&a->done, kids[i]))
			continue;
		enum control_outcome o = act(a, action, kids[i], nkids);
		if (o == CONTROL_DONE || o == CONTROL_ABORTED)
			(*nkids)++;
	}
	free(kids);
}

/* cancel_job - any state but succeeded -> cancelled, a running job through the hook;
 * then its children. A parent already cancelled (e.g. by an older segspool that did
 * not follow fan-out) still takes its unfinished children along. */
static enum control_outcome cancel_job(struct apply *a, int64_t id, enum job_state state,
                                       size_t *nkids)
{
	enum control_outcome out = CONTROL_DONE;
	if (state == JS_SUCCEEDED)
		return refused(a, "it has already", state, "");
	if (state == JS_CANCELLED) {
		out = refused(a, "it is already", state, "");
	} else {
		int rc = store_job_cancel(a->st, id, a->now);
		if (rc < 0)
			return store_error(a);
		if (rc == 1)
			return refused(a, "it is", state, "");
		if (rc == 2 && a->hooks && a->hooks->running) {
			a->hooks->running(id, a->hooks->arg);
			out = CONTROL_ABORTED;
		} else if (rc == 2 && store_job_end(a->st, id, JS_CANCELLED, NULL,
		                                    "cancelled by the user", a->now) < 0) {
			return store_error(a);
		}
		idset_add(&a->done, id);
	}
	cascade(a, CONTROL_CANCEL, id, nkids);
	if (out == CONTROL_REFUSED && *nkids > 0)
		out = CONTROL_DONE;
	return a->store_failed ? CONTROL_ERROR : out;
}

#define RETRY_ONLY "; only failed, dead or cancelled jobs can be retried"

/* revive_dependants - the jobs that failed because id did wait for it again, with it;
 * marked done, so a retry by state does not meet them again as refused. */
static int revive_dependants(struct apply *a, int64_t id)
{
	int64_t *ids = NULL;
	size_t n = 0;
	if (store_deps_revive(a->st, id, a->now, &ids, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		idset_add(&a->done, ids[i]);
	free(ids);
	return 0;
}

/* retry_job - failed|dead|cancelled -> queued, with the children that ended so: a
 * fan-out parent queued alone would find them ended and fail again at once. */
static enum control_outcome retry_job(struct apply *a, int64_t id, enum job_state state,
                                      size_t *nkids)
{
	if (state != JS_FAILED && state != JS_DEAD && state != JS_CANCELLED)
		return refused(a, "it is", state, RETRY_ONLY);
	char *failed_dep = NULL;
	int rc = store_dep_failed(a->st, id, &failed_dep);
	if (rc < 0)
		return store_error(a);
	if (rc == 1) {
		/* it would only wait for a job that will not succeed */
		sb_reset(&a->why);
		sb_addf(&a->why,
		        "its dependency %s failed; retry that job, which brings this one back "
		        "with it",
		        failed_dep);
		free(failed_dep);
		a->dep_refused = 1;
		return CONTROL_REFUSED;
	}
	rc = store_job_retry(a->st, id, a->now);
	if (rc < 0)
		return store_error(a);
	if (rc == 1)
		return refused(a, "it is", state, RETRY_ONLY);
	idset_add(&a->done, id);
	if (revive_dependants(a, id) < 0)
		return store_error(a);
	cascade(a, CONTROL_RETRY, id, nkids);
	return a->store_failed ? CONTROL_ERROR : CONTROL_DONE;
}

/* act - one job: looks up its state, then retries or cancels it and its children. */
static enum control_outcome act(struct apply *a, enum control_action action, int64_t id,
                                size_t *nkids)
{
	struct job_row row;
	int rc = store_get(a->st, id, &row);
	if (rc < 0)
		return store_error(a);
	if (rc == 1) {
		sb_reset(&a->why);
		sb_adds(&a->why, "no such job");
		return CONTROL_ERROR;
	}
	enum job_state state = row.state;
	job_row_release(&row);
	return action == CONTROL_CANCEL ? cancel_job(a, id, state, nkids)
	                                : retry_job(a, id, state, nkids);
}

/* control_apply - the request, id by id; stops at the first store failure. */
int control_apply(struct store *st, const struct control_request *req, int64_t now_ms,
                  const struct control_hooks *hooks)
{
	struct apply a = {.st = st, .hooks = hooks, .now = now_ms, .why = STRBUF_INIT};
	int64_t *list = req->ids;
	size_t n = req->nids;
	if (req->by_state && store_ids_in_state(st, req->state, &list, &n) < 0)
		return -1;
	int bad = 0;
	/* retry by state: a job that failed for a dependency may come before that one in the
	 * list, and goes back with it; it is reported after the others */
	int64_t *later = NULL;
	size_t nlater = 0;
	for (size_t pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < (pass ? nlater : n) && !a.store_failed; i++) {
			int64_t id = pass ? later[i] : list[i];
			size_t nkids = 0;
			enum control_outcome o = CONTROL_DONE;
			sb_reset(&a.why);
			a.dep_refused = 0;
			/* a job listed after its parent (retry --state failed) went with the
			 * parent; one that failed for a dependency, with the dependency */
			if (!idset_has(&a.done, id))
				o = act(&a, req->action, id, &nkids);
			if (!pass && req->by_state && o == CONTROL_REFUSED && a.dep_refused) {
				later = xrealloc(later, (nlater + 1) * sizeof(*later));
				later[nlater++] = id;
				continue;
			}
			if (o == CONTROL_REFUSED || o == CONTROL_ERROR)
				bad++;
			if (hooks && hooks->report)
				hooks->report(id, o, nkids, a.why.len ? a.why.buf : NULL,
				              hooks->arg);
		}
	}
	free(later);
	if (list != req->ids)
		free(list);
	free(a.done.slots);
	sb_release(&a.why);
	return a.store_failed ? -1 : bad;
}
