/* job_canon.c - a job's canonical form, what the store keeps: printed by job_to_json,
 * read back (at every claim) by job_from_json. */
#include "job_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "json_print.h"
#include "strbuf.h"
#include "util.h"

/* add_member - ,"name": before a member's value; no comma first in an object. */
static void add_member(struct strbuf *sb, const char *name)
{
	/* names are this file's own identifiers: nothing in them to escape */
	sb_adds(sb, sb->len && sb->buf[sb->len - 1] != '{' ? ",\"" : "\"");
	sb_adds(sb, name);
	sb_adds(sb, "\":");
}

/* add_int - an integer member, printed exactly (cJSON prints numbers through doubles). */
static void add_int(struct strbuf *sb, const char *name, int64_t v)
{
	add_member(sb, name);
	sb_add_int(sb, v);
}

/* add_string_or_null - a string member, or null when s is NULL. */
static void add_string_or_null(struct strbuf *sb, const char *name, const char *s)
{
	add_member(sb, name);
	if (s)
		sb_add_json_string(sb, s);
	else
		sb_adds(sb, "null");
}

/* job_to_json - the canonical form; see job.h. A member at its default (job_defaults,
 * CANON_WORKSPACE, CANON_REGION) is left out: the form is read at every claim and kept
 * in every row. Printed directly: it runs once for every job ingested. */
char *job_to_json(const struct job *job)
{
	struct strbuf sb = STRBUF_INIT;

	sb_addch(&sb, '{');
	add_string_or_null(&sb, "op", job->op->operation_id);
	add_member(&sb, "params");
	if (job->params)
		sb_add_json_value(&sb, job->params);
	else
		sb_adds(&sb, "{}");
	if (job->workspace && strcmp(job->workspace, CANON_WORKSPACE))
		add_string_or_null(&sb, "workspace", job->workspace);
	if (job->region)
		add_string_or_null(&sb, "region", job->region);
	if (job->key)
		add_string_or_null(&sb, "key", job->key);
	if (job->no_output) {
		add_member(&sb, "output");
		sb_adds(&sb, "false");
	} else if (job->output) {
		add_string_or_null(&sb, "output", job->output);
	}
	if (job->paginate == PAGINATE_LIMIT) {
		add_member(&sb, "paginate");
		sb_addch(&sb, '{');
		add_int(&sb, "max_pages", job->max_pages);
		add_int(&sb, "count", job->page_count);
		sb_addch(&sb, '}');
	} else if (job->paginate == PAGINATE_ALL) {
		add_string_or_null(&sb, "paginate", "all");
	}
	if (job->max_attempts || job->initial_ms || job->max_ms || job->max_age_ms) {
		add_member(&sb, "retry");
		sb_addch(&sb, '{');
		add_int(&sb, "max_attempts", job->max_attempts);
		add_int(&sb, "initial_ms", job->initial_ms);
		add_int(&sb, "max_ms", job->max_ms);
		add_int(&sb, "max_age_ms", job->max_age_ms);
		sb_addch(&sb, '}');
	}
	if (job->not_before_ms)
		add_int(&sb, "not_before_ms", job->not_before_ms);
	if (job->priority)
		add_int(&sb, "priority", job->priority);
	if (job->split_ms)
		add_int(&sb, "split_ms", job->split_ms);
	if (job->on_unknown == ON_UNKNOWN_FAIL)
		add_string_or_null(&sb, "on_unknown", "fail");
	if (job->nafter_given) { /* the references' keys are found again in params */
		add_member(&sb, "after");
		sb_addch(&sb, '[');
		for (size_t i = 0; i < job->nafter_given; i++) {
			if (i)
				sb_addch(&sb, ',');
			sb_add_json_string(&sb, job->after[i]);
		}
		sb_addch(&sb, ']');
	}
	sb_addch(&sb, '}');
	return sb_detach(&sb, NULL);
}

/* The canonical form is read back at every claim, so it is read from the text's spans
 * (json_next_member) after one validity pass, without a cJSON tree for anything but the
 * params. Names are matched as written: the canonical form never escapes them. */

/* canon_collect - the first member of each of names[0..n) in the object span, or a NULL
 * value where absent; 0, or -1 when the span is not an object. */
static int canon_collect(const char *text, size_t len, const char *const *names, size_t n,
                         struct json_member *found)
{
	struct json_member m;
	size_t pos = 0;
	int rc;
	for (size_t i = 0; i < n; i++)
		found[i].value = NULL;
	while ((rc = json_next_member(text, len, &pos, &m)) > 0)
		for (size_t i = 0; i < n; i++)
			if (!found[i].value && strlen(names[i]) == m.name_len &&
			    !memcmp(names[i], m.name, m.name_len)) {
				found[i] = m;
				break;
			}
	return rc;
}

/* span_is - whether a value's text is exactly word. */
static int span_is(const struct json_member *m, const char *word)
{
	return m->value && strlen(word) == m->value_len && !memcmp(m->value, word, m->value_len);
}

/* canon_int - a member that must be an integer in [lo, hi], written as digits; 0 when
 * absent. */
static int canon_int(const struct json_member *m, int64_t lo, int64_t hi, int64_t *out)
{
	*out = 0;
	if (!m->value)
		return 0;
	if (m->value_len > 20)
		return -1;
	char digits[24];
	memcpy(digits, m->value, m->value_len);
	digits[m->value_len] = '\0';
	char *end;
	errno = 0;
	long long v = strtoll(digits, &end, 10);
	if (end == digits || *end || errno || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* canon_string - a member that must be a string, or null when nullable; *out is a copy
 * (escapes decoded by cJSON, which the canonical form only needs for unusual text), or
 * of absent when the member is absent. */
static int canon_string(const struct json_member *m, int nullable, const char *absent, char **out)
{
	*out = NULL;
	if (!m->value) {
		*out = absent ? xstrdup(absent) : NULL;
		return 0;
	}
	if (span_is(m, "null"))
		return nullable ? 0 : -1;
	if (m->value_len < 2 || m->value[0] != '"')
		return -1;
	if (!memchr(m->value, '\\', m->value_len)) {
		*out = xstrndup(m->value + 1, m->value_len - 2);
		return 0;
	}
	cJSON *v = cJSON_ParseWithLength(m->value, m->value_len);
	if (cJSON_IsString(v))
		*out = xstrdup(v->valuestring);
	cJSON_Delete(v);
	return *out ? 0 : -1;
}

/* canon_paginate - "none", "all" or {"max_pages", "count"}. */
static int canon_paginate(const struct json_member *m, struct job *j)
{
	static const char *const names[] = {"max_pages", "count"};
	struct json_member f[ARRAY_SIZE(names)];
	int64_t pages, count;
	if (!m->value || span_is(m, "\"none\"")) {
		j->paginate = PAGINATE_NONE;
	} else if (span_is(m, "\"all\"")) {
		j->paginate = PAGINATE_ALL;
	} else if (m->value && m->value[0] == '{' &&
	           !canon_collect(m->value, m->value_len, names, ARRAY_SIZE(names), f) &&
	           !canon_int(&f[0], 0, INT_MAX, &pages) && !canon_int(&f[1], 0, INT_MAX, &count)) {
		j->paginate = PAGINATE_LIMIT;
		j->max_pages = (int)pages;
		j->page_count = (int)count;
	} else {
		return -1;
	}
	return 0;
}

/* canon_retry - {"max_attempts", "initial_ms", "max_ms", "max_age_ms"}. */
static int canon_retry(const struct json_member *m, struct job *j)
{
	static const char *const names[] = {"max_attempts", "initial_ms", "max_ms", "max_age_ms"};
	struct json_member f[ARRAY_SIZE(names)];
	const int64_t big = (int64_t)JSON_EXACT_INT_LIMIT;
	int64_t attempts;
	if (!m->value)
		return 0; /* the config's defaults */
	if (m->value[0] != '{' ||
	    canon_collect(m->value, m->value_len, names, ARRAY_SIZE(names), f) ||
	    canon_int(&f[0], 0, INT_MAX, &attempts) || canon_int(&f[1], 0, big, &j->initial_ms) ||
	    canon_int(&f[2], 0, big, &j->max_ms) || canon_int(&f[3], 0, big, &j->max_age_ms))
		return -1;
	j->max_attempts = (int)attempts;
	return 0;
}

enum canon_member {
	CM_OP,
	CM_PARAMS,
	CM_WORKSPACE,
	CM_REGION,
	CM_KEY,
	CM_OUTPUT,
	CM_PAGINATE,
	CM_RETRY,
	CM_NOT_BEFORE,
	CM_PRIORITY,
	CM_SPLIT,
	CM_ON_UNKNOWN,
	CM_AFTER,
	CM_COUNT
};

static const char *const canon_names[CM_COUNT] = {
    [CM_OP] = "op",
    [CM_PARAMS] = "params",
    [CM_WORKSPACE] = "workspace",
    [CM_REGION] = "region",
    [CM_KEY] = "key",
    [CM_OUTPUT] = "output",
    [CM_PAGINATE] = "paginate",
    [CM_RETRY] = "retry",
    [CM_NOT_BEFORE] = "not_before_ms",
    [CM_PRIORITY] = "priority",
    [CM_SPLIT] = "split_ms",
    [CM_ON_UNKNOWN] = "on_unknown",
    [CM_AFTER] = "after",
};

/* canon_after - the given "after" keys, then the references in params (job_refs.c). */
static int canon_after(const struct json_member *m, struct job *j)
{
	const cJSON *e;
	size_t n = 0;

	if (m->value) {
		cJSON *arr = cJSON_ParseWithLength(m->value, m->value_len);
		if (!cJSON_IsArray(arr)) {
			cJSON_Delete(arr);
			return -1;
		}
		cJSON_ArrayForEach(e, arr) n++;
		j->after = xmalloc((n ? n : 1) * sizeof(*j->after));
		cJSON_ArrayForEach(e, arr)
		{
			if (!cJSON_IsString(e)) {
				cJSON_Delete(arr);
				return -1;
			}
			j->after[j->nafter++] = xstrdup(e->valuestring);
		}
		cJSON_Delete(arr);
	}
	j->nafter_given = j->nafter;
	return job_refs_collect(NULL, j->params, j);
}

/* canon_fields - everything but op and params from a canonical object's members. */
static int canon_fields(const struct json_member *f, struct job *j)
{
	const int64_t big = (int64_t)JSON_EXACT_INT_LIMIT;
	int64_t priority;

	if (canon_string(&f[CM_WORKSPACE], 0, CANON_WORKSPACE, &j->workspace) ||
	    canon_string(&f[CM_REGION], 0, NULL, &j->region) ||
	    canon_string(&f[CM_KEY], 1, NULL, &j->key) ||
	    (!(j->no_output = span_is(&f[CM_OUTPUT], "false")) &&
	     canon_string(&f[CM_OUTPUT], 1, NULL, &j->output)) ||
	    canon_paginate(&f[CM_PAGINATE], j) || canon_retry(&f[CM_RETRY], j) ||
	    canon_int(&f[CM_NOT_BEFORE], -big, big, &j->not_before_ms) ||
	    canon_int(&f[CM_PRIORITY], INT_MIN, INT_MAX, &priority) ||
	    canon_int(&f[CM_SPLIT], 0, big, &j->split_ms))
		return -1;
	j->priority = (int)priority;
	if (span_is(&f[CM_ON_UNKNOWN], "\"fail\""))
		j->on_unknown = ON_UNKNOWN_FAIL;
	else if (!f[CM_ON_UNKNOWN].value || span_is(&f[CM_ON_UNKNOWN], "\"retry\""))
		j->on_unknown = ON_UNKNOWN_RETRY;
	else
		return -1;
	return 0;
}

/* job_from_json - parse a canonical form back; see job.h. */
int job_from_json(const char *text, struct job *out)
{
	struct json_member f[CM_COUNT];
	struct job j;
	char *op = NULL;
	size_t len = text ? strlen(text) : 0;

	job_defaults(&j);
	memset(out, 0, sizeof(*out));
	if (!text || !json_object_check(text, len, NULL, NULL, NULL) ||
	    canon_collect(text, len, canon_names, CM_COUNT, f) || !f[CM_OP].value ||
	    canon_string(&f[CM_OP], 0, NULL, &op) || !(j.op = catalog_find(op)) ||
	    !f[CM_PARAMS].value || f[CM_PARAMS].value[0] != '{' || canon_fields(f, &j))
		goto fail;
	j.params = cJSON_ParseWithLength(f[CM_PARAMS].value, f[CM_PARAMS].value_len);
	if (!cJSON_IsObject(j.params) || canon_after(&f[CM_AFTER], &j))
		goto fail;
	free(op);
	*out = j;
	return 0;
fail:
	free(op);
	job_release(&j);
	return -1;
}
