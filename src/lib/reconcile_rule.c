/* reconcile_rule.c - the operation table's reconcile rules and what a lookup's page says
 * (see reconcile_rule.h). Pure: the daemon brings the attempts and pages. */
#include "reconcile_rule.h"

#include <stddef.h>
#include <string.h>

#include <cjson/cJSON.h>

#define PARAM_REF "$params."
#define ITEM_REF "$item"

/* reconcile_rule_parse - the rule's JSON text into out. */
int reconcile_rule_parse(const char *text, struct reconcile_rule *out)
{
	memset(out, 0, sizeof(*out));
	out->root = text ? cJSON_Parse(text) : NULL;
	if (!cJSON_IsObject(out->root))
		goto bad;
	const cJSON *lookup = cJSON_GetObjectItemCaseSensitive(out->root, "lookup");
	const cJSON *when = cJSON_GetObjectItemCaseSensitive(out->root, "done_when");
	out->lookup = cJSON_GetStringValue(lookup);
	out->params = cJSON_GetObjectItemCaseSensitive(out->root, "params");
	out->match = cJSON_GetObjectItemCaseSensitive(out->root, "match");
	out->result = cJSON_GetObjectItemCaseSensitive(out->root, "result");
	out->gone_is_done =
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(out->root, "gone_is_done"));
	out->done_when_absent = cJSON_IsString(when) && strcmp(when->valuestring, "absent") == 0;
	if (!out->result || (lookup && !out->lookup))
		goto bad;
	if (out->lookup && (!cJSON_IsObject(out->match) || !out->match->child))
		goto bad;
	if (!out->lookup && !out->gone_is_done)
		goto bad;
	return 0;
bad:
	reconcile_rule_release(out);
	return -1;
}

/* reconcile_rule_release - frees the parsed rule. */
void reconcile_rule_release(struct reconcile_rule *r)
{
	cJSON_Delete(r->root);
	memset(r, 0, sizeof(*r));
}

/* is_lookup - a GET attempt, by its request line ("GET /sources?..."). */
static int is_lookup(const char *request)
{
	return request && strncmp(request, "GET ", 4) == 0;
}

/* reconcile_track_note - one attempt, in order; see reconcile_rule.h. */
void reconcile_track_note(struct reconcile_track *t, const char *request, const char *outcome)
{
	if (!outcome)
		return; /* still open: recovery gives it one before the job runs */
	if (!is_lookup(request))
		t->pending = strcmp(outcome, "unknown") == 0;
	else if (strcmp(outcome, RECONCILE_ABSENT) == 0 ||
	         strcmp(outcome, RECONCILE_RECONCILED) == 0)
		t->pending = 0;
}

/* param_ref - the job's parameter a "$params.NAME" string names, NULL if none; *is_ref
 * says whether v was such a reference at all. */
static const cJSON *param_ref(const cJSON *v, const cJSON *job_params, int *is_ref)
{
	const char *s = cJSON_GetStringValue(v);
	*is_ref = s && strncmp(s, PARAM_REF, strlen(PARAM_REF)) == 0;
	if (!*is_ref)
		return NULL;
	return cJSON_GetObjectItemCaseSensitive(job_params, s + strlen(PARAM_REF));
}

/* reconcile_lookup_params - the rule's params with the job's values; see the header. */
cJSON *reconcile_lookup_params(const struct reconcile_rule *r, const cJSON *job_params)
{
	cJSON *out = cJSON_CreateObject();
	const cJSON *v;
	cJSON_ArrayForEach(v, r->params)
	{
		int is_ref;
		const cJSON *given = param_ref(v, job_params, &is_ref);
		if (is_ref && !given)
			continue;
		cJSON_AddItemToObject(out, v->string, cJSON_Duplicate(is_ref ? given : v, 1));
	}
	return out;
}

/* reconcile_match - every member of match equal in item; see the header. */
int reconcile_match(const struct reconcile_rule *r, const cJSON *item, const cJSON *job_params)
{
	const cJSON *want;
	if (!cJSON_IsObject(item) || !r->match)
		return 0;
	cJSON_ArrayForEach(want, r->match)
	{
		int is_ref;
		const cJSON *given = param_ref(want, job_params, &is_ref);
		const cJSON *have = cJSON_GetObjectItemCaseSensitive(item, want->string);
		if (is_ref && !given)
			return 0;
		if (!have || !cJSON_Compare(have, is_ref ? given : want, 1))
			return 0;
	}
	return 1;
}

/* reconcile_page - one page's verdict; see the header. */
enum reconcile_verdict reconcile_page(const struct reconcile_rule *r, const cJSON *items,
                                      const char *next, const cJSON *job_params, const cJSON **item)
{
	const cJSON *it;
	*item = NULL;
	cJSON_ArrayForEach(it, items)
	{
		if (reconcile_match(r, it, job_params)) {
			*item = it;
			/* found: the answer either way, the later pages cannot change it */
			return r->done_when_absent ? RECONCILE_SEND : RECONCILE_DONE;
		}
	}
	if (next && *next)
		return RECONCILE_NEXT;
	return r->done_when_absent ? RECONCILE_DONE : RECONCILE_SEND;
}

/* reconcile_verdict_outcome - "reconciled", "absent" or "lookup". */
const char *reconcile_verdict_outcome(enum reconcile_verdict v)
{
	switch (v) {
	case RECONCILE_DONE:
		return RECONCILE_RECONCILED;
	case RECONCILE_SEND:
		return RECONCILE_ABSENT;
	case RECONCILE_NEXT:
		break;
	}
	return RECONCILE_LOOKUP;
}

/* fill_item - v with every "$item" string replaced by a copy of item (null if none). */
static cJSON *fill_item(const cJSON *v, const cJSON *item)
{
	const char *s = cJSON_GetStringValue(v);
	if (s && strcmp(s, ITEM_REF) == 0)
		return item ? cJSON_Duplicate(item, 1) : cJSON_CreateNull();
	if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
		return cJSON_Duplicate(v, 1);
	cJSON *out = cJSON_IsObject(v) ? cJSON_CreateObject() : cJSON_CreateArray();
	const cJSON *m;
	cJSON_ArrayForEach(m, v)
	{
		if (cJSON_IsObject(out))
			cJSON_AddItemToObject(out, m->string, fill_item(m, item));
		else
			cJSON_AddItemToArray(out, fill_item(m, item));
	}
	return out;
}

/* reconcile_result - the job's data when done; see the header. */
cJSON *reconcile_result(const struct reconcile_rule *r, const cJSON *item)
{
	return fill_item(r->result, item);
}

/* reconcile_gone - a 404 that means done; see the header. */
int reconcile_gone(const struct reconcile_rule *r, int status, int tries, int64_t lost_answers)
{
	return r->gone_is_done && status == 404 && tries >= 2 && lost_answers > 0;
}

/* reconcile_conflict - a 409 worth a second look; see the header. */
int reconcile_conflict(const struct reconcile_rule *r, int status, int tries, int64_t lost_answers)
{
	return r->lookup && !r->done_when_absent && status == 409 && tries >= 2 && lost_answers > 0;
}
