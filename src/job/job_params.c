/* job_params.c - a job's params checked against its operation in the catalog: every
 * parameter known, of its type and values, every required one present. */
#include "job_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "catalog.h"
#include "strbuf.h"
#include "util.h"

/* describe_param - what a parameter of this type must look like. */
static void describe_param(struct strbuf *sb, const struct op_param *p)
{
	switch (p->type) {
	case PT_STRING:
		sb_adds(sb, p->in == PARAM_PATH ? "a non-empty string" : "a string");
		break;
	case PT_BOOLEAN:
		sb_adds(sb, "true or false");
		break;
	case PT_NUMBER:
		sb_adds(sb, "a number");
		break;
	case PT_OBJECT:
		sb_adds(sb, "an object");
		break;
	case PT_ARRAY:
		sb_adds(sb, "an array");
		break;
	case PT_STRING_ARRAY:
		sb_adds(sb, "an array of strings");
		if (p->enum_values) {
			sb_adds(sb, ", each one of ");
			sb_add_list(sb, p->enum_values, SIZE_MAX);
		}
		break;
	case PT_ENUM:
		if (p->enum_values) {
			sb_adds(sb, "one of ");
			sb_add_list(sb, p->enum_values, SIZE_MAX);
		} else {
			sb_adds(sb, "a string");
		}
		break;
	case PT_PAGINATION:
		sb_adds(sb,
		        "an object {\"count\": 1.." STR(MAX_PAGE_COUNT) ", \"cursor\": \"...\"}");
		break;
	case PT_DATETIME:
		sb_adds(sb, "an RFC 3339 time such as 2026-11-26T03:00:00Z");
		break;
	case PT_ANY:
		sb_adds(sb, "any JSON value");
		break;
	}
}

/* param_msg - where a parameter is and what it should be, as a problem with it says
 * them: built on first use, as a valid parameter (the usual case) needs neither. */
struct param_msg {
	const struct op_param *p;
	struct strbuf rel, expected;
};

/* pm_rel - "/params/NAME". */
static const char *pm_rel(struct param_msg *m)
{
	if (!m->rel.len)
		pointer2(&m->rel, "params", m->p->name);
	return m->rel.buf;
}

/* pm_expected - the parameter's description (describe_param). */
static const char *pm_expected(struct param_msg *m)
{
	if (!m->expected.len)
		describe_param(&m->expected, m->p);
	return m->expected.buf;
}

/* check_string_array - an array of strings, each in enum_values when there are any. */
static void check_string_array(struct ctx *c, struct param_msg *m, const cJSON *v)
{
	const struct op_param *p = m->p;
	char buf[SHOWN_BYTES + 4];
	struct strbuf elem_rel = STRBUF_INIT;
	const cJSON *e;
	size_t i = 0;

	if (!cJSON_IsArray(v)) {
		wrong_type(c, pm_rel(m), p->name, v, pm_expected(m));
		return;
	}
	cJSON_ArrayForEach(e, v)
	{
		if (is_ref_object(e)) { /* its value is checked against the result shape */
			i++;
			continue;
		}
		int bad_type = !cJSON_IsString(e);
		if (bad_type || (p->enum_values && !in_list(e->valuestring, p->enum_values))) {
			sb_reset(&elem_rel);
			sb_addf(&elem_rel, "%s/%zu", pm_rel(m), i);
			if (bad_type)
				ctx_problem(c, elem_rel.buf, pm_expected(m),
				            "wrong type for %s element %zu: got %s", p->name, i,
				            json_type_name(e));
			else
				ctx_problem(c, elem_rel.buf, pm_expected(m),
				            "invalid value \"%s\" in %s",
				            shown(e->valuestring, buf), p->name);
		}
		i++;
	}
	sb_release(&elem_rel);
}

/* check_pagination - {"count": 1..1000 (required), "cursor": string}, nothing else. */
static void check_pagination(struct ctx *c, struct param_msg *pm, const cJSON *v)
{
	const char *rel = pm_rel(pm);
	static const char *const keys[] = {"count", "cursor"};
	char buf[SHOWN_BYTES + 4];
	struct strbuf sub = STRBUF_INIT, exp = STRBUF_INIT;
	const cJSON *m;
	int64_t count;

	if (!cJSON_IsObject(v)) {
		wrong_type(c, rel, pm->p->name, v, pm_expected(pm));
		return;
	}
	cJSON_ArrayForEach(m, v)
	{
		sb_reset(&sub);
		sb_adds(&sub, rel);
		sb_add_pointer_token(&sub, m->string);
		if (!strcmp(m->string, "count")) {
			integer_field(c, m, sub.buf, "pagination count", 1, MAX_PAGE_COUNT, &count);
		} else if (!strcmp(m->string, "cursor")) {
			if (!cJSON_IsString(m))
				wrong_type(c, sub.buf, "pagination cursor", m, "a string");
		} else {
			sb_reset(&exp);
			suggestion(&exp, m->string, keys, ARRAY_SIZE(keys));
			ctx_problem(c, sub.buf, exp.buf, "unknown key \"%s\" in pagination",
			            shown(m->string, buf));
		}
	}
	if (!cJSON_GetObjectItemCaseSensitive(v, "count")) {
		sb_reset(&sub);
		sb_adds(&sub, rel);
		sb_adds(&sub, "/count");
		ctx_problem(c, sub.buf, "an integer from 1 to " STR(MAX_PAGE_COUNT),
		            "missing count in pagination");
	}
	sb_release(&sub);
	sb_release(&exp);
}

/* check_value_rules - checks beyond the JSON type: non-empty path params, enum values,
 * parseable times, and the raw request's path. */
static void check_value_rules(struct ctx *c, const struct op_def *op, struct param_msg *m,
                              const cJSON *v)
{
	const struct op_param *p = m->p;
	char buf[SHOWN_BYTES + 4];
	int64_t ms;

	if (p->in == PARAM_PATH && cJSON_IsString(v) && !*v->valuestring)
		ctx_problem(c, pm_rel(m), pm_expected(m), "empty path parameter %s", p->name);
	if (p->type == PT_ENUM && p->enum_values && !in_list(v->valuestring, p->enum_values))
		ctx_problem(c, pm_rel(m), pm_expected(m), "invalid value \"%s\" for %s",
		            shown(v->valuestring, buf), p->name);
	if (p->type == PT_DATETIME && parse_iso8601(v->valuestring, &ms))
		ctx_problem(c, pm_rel(m), pm_expected(m), "invalid time \"%s\" for %s",
		            shown(v->valuestring, buf), p->name);
	if (op->is_raw && !strcmp(p->name, "path") && cJSON_IsString(v)) {
		const char *why = catalog_raw_path_problem(v->valuestring);
		if (why)
			ctx_problem(c, pm_rel(m),
			            "an API path such as /sources, without scheme, host or ..",
			            "invalid raw path \"%s\": %s", shown(v->valuestring, buf), why);
	}
}

/* check_param_value - one present parameter against its catalog entry. */
static void check_param_value(struct ctx *c, const struct op_def *op, const struct op_param *p,
                              const cJSON *v)
{
	struct param_msg m = {p, STRBUF_INIT, STRBUF_INIT};
	int type_ok = 0;

	switch (p->type) {
	case PT_STRING:
	case PT_ENUM:
	case PT_DATETIME:
		type_ok = cJSON_IsString(v);
		break;
	case PT_BOOLEAN:
		type_ok = cJSON_IsBool(v);
		break;
	case PT_NUMBER:
		type_ok = cJSON_IsNumber(v) && isfinite(v->valuedouble);
		break;
	case PT_OBJECT:
		type_ok = cJSON_IsObject(v);
		break;
	case PT_ARRAY:
		type_ok = cJSON_IsArray(v);
		break;
	case PT_STRING_ARRAY:
		check_string_array(c, &m, v);
		goto out;
	case PT_PAGINATION:
		check_pagination(c, &m, v);
		goto out;
	case PT_ANY:
		goto out;
	}
	if (!type_ok)
		wrong_type(c, pm_rel(&m), p->name, v, pm_expected(&m));
	else
		check_value_rules(c, op, &m, v);
out:
	sb_release(&m.rel);
	sb_release(&m.expected);
}

/* unknown_param - a parameter the operation does not take, with the nearest name. */
static void unknown_param(struct ctx *c, const struct op_def *op, const char *name)
{
	const char *names[64];
	size_t n = op->nparams < ARRAY_SIZE(names) ? op->nparams : ARRAY_SIZE(names);
	struct strbuf rel = STRBUF_INIT, expected = STRBUF_INIT;
	char buf[SHOWN_BYTES + 4];

	for (size_t i = 0; i < n; i++)
		names[i] = op->params[i].name;
	if (n)
		suggestion(&expected, name, names, n);
	else
		sb_addf(&expected, "no parameters: %s takes none", op->operation_id);
	ctx_problem(c, pointer2(&rel, "params", name), expected.buf,
	            "unknown parameter \"%s\" for %s", shown(name, buf), op->operation_id);
	sb_release(&rel);
	sb_release(&expected);
}

/* param_time - params.NAME as milliseconds when it is a valid time string. */
int param_time(const cJSON *params, const char *name, int64_t *ms)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
	return cJSON_IsString(v) && !parse_iso8601(v->valuestring, ms) ? 0 : -1;
}

/* check_params - every parameter known and well-typed, every required one present. */
void check_params(struct ctx *c, const struct op_def *op, const cJSON *params)
{
	struct strbuf rel = STRBUF_INIT, expected = STRBUF_INIT;
	const cJSON *m;
	int64_t start, end;

	cJSON_ArrayForEach(m, params)
	{
		const struct op_param *p = catalog_param(op, m->string);
		if (p && is_ref_object(m))
			continue; /* a reference: its value is known at claim (job_refs.c) */
		if (p)
			check_param_value(c, op, p, m);
		else
			unknown_param(c, op, m->string);
	}
	for (size_t i = 0; i < op->nparams; i++) {
		const struct op_param *p = &op->params[i];
		if (!(p->required || p->in == PARAM_PATH) ||
		    cJSON_GetObjectItemCaseSensitive(params, p->name))
			continue;
		sb_reset(&expected);
		describe_param(&expected, p);
		ctx_problem(c, pointer2(&rel, "params", p->name), expected.buf,
		            "missing required parameter %s for %s", p->name, op->operation_id);
	}
	if (!strcmp(op->operation_id, EVENTS_VOLUME_OP) &&
	    !param_time(params, "startTime", &start) && !param_time(params, "endTime", &end) &&
	    start >= end)
		ctx_problem(c, "/params/endTime", "an endTime later than startTime",
		            "startTime is not before endTime");
	sb_release(&rel);
	sb_release(&expected);
}
